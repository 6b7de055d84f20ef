"""The USRP backend against a fake of ``uhd`` (device ranges, bursts, cyclic resend, RX metadata errors), and the
real-radio loop marked ``hardware``. The Pluto backend is tested through the real pyadi-iio in
test_pluto_real_pyadi.py; the names the USRP backend takes from ``uhd`` are checked in test_usrp_uhd_names.py."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from radio import (RadioConfigError, RadioDisconnected, RadioOverflow, RadioTimeout, TxGuard, TxGuardRefused)
from radio.usrp import UsrpRadio
from tests.fakes import fake_uhd

GUARD = TxGuard.from_config({"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": -10.0,
                             "radios": {"usrp0": {"max_tx_gain_db": 60.0}}})


def tone(n=1000, amp=0.5):
    return (amp * np.exp(2j * np.pi * 0.01 * np.arange(n))).astype(np.complex64)


@pytest.fixture
def usrp():
    r = UsrpRadio("usrp0", "type=b200", GUARD, uhd_module=fake_uhd)
    r.configure(lo_hz=2.44e9, rate_sps=7.68e6, bandwidth_hz=5e6, tx_gain_db=50, rx_gain_db=40)
    yield r
    r.close()


def test_usrp_ranges_come_from_the_device(usrp):
    assert usrp.capabilities.rx_gain_db.high == 76 and usrp.capabilities.tx_gain_db.step == 0.25
    with pytest.raises(RadioConfigError, match="rx_gain_db = 80"):
        usrp.configure(rx_gain_db=80)
    assert usrp._usrp.agc is False and usrp._usrp.rx_gain == 40


def test_usrp_burst_and_cyclic_transmit(usrp):
    usrp.transmit(tone(), occupied_bw_hz=5e6)
    assert usrp._tx_stream.bursts[-1] == (True, True, 1000)
    usrp.transmit(tone(), cyclic=True, occupied_bw_hz=5e6)
    deadline = time.time() + 2
    while usrp._usrp.sent_samples < 5000 and time.time() < deadline:
        time.sleep(0.01)
    usrp.stop_transmit()
    assert usrp._usrp.sent_samples >= 5000  # the buffer was repeated
    assert usrp._tx_stream.bursts[-1][1] is True  # and closed with end of burst


def test_usrp_receive_fc32_with_timestamp_and_errors(usrp):
    usrp._usrp.last_tx = tone(1000, 0.5)
    x, meta = usrp.receive(5000)
    assert x.dtype == np.complex64 and x.size == 5000 and meta.timestamp_s is not None
    usrp._usrp.inject_rx_error = fake_uhd.RXMetadataErrorCode.overflow
    with pytest.raises(RadioOverflow):
        usrp.receive(100)
    usrp._usrp.inject_rx_error = fake_uhd.RXMetadataErrorCode.timeout
    with pytest.raises(RadioTimeout):
        usrp.receive(100)
    usrp._usrp.inject_underflow = True
    usrp.transmit(tone(), occupied_bw_hz=5e6)
    assert usrp.receive(10).meta.underflow_count == 1


def test_usrp_guard_uses_the_per_radio_limit(usrp):
    usrp.configure(tx_gain_db=61)
    with pytest.raises(TxGuardRefused, match="maximum 60 dB"):
        usrp.transmit(tone(), occupied_bw_hz=5e6)
    assert usrp._usrp.sent_samples == 0
    with pytest.raises(RadioDisconnected):
        UsrpRadio("usrp9", "serial=DEADBEEF", GUARD, uhd_module=fake_uhd)


@pytest.mark.hardware
def test_real_radios_answer_and_loop_a_tone():
    """With TESTBED_HARDWARE=name1,name2 and a testbed.toml naming them: every radio configures, and a tone
    sent by the first is seen by the second at the right frequency."""
    from testbed.inventory import load_config, open_radios

    names = os.environ["TESTBED_HARDWARE"].split(",")
    cfg = load_config()
    with open_radios(names, cfg) as radios:
        tx, rx = radios[names[0]], radios[names[-1]]
        for r in radios.values():
            r.configure(lo_hz=2.44e9, rate_sps=1.92e6, bandwidth_hz=1.5e6, rx_gain_db=30,
                        tx_gain_db=r.capabilities.tx_gain_db.low + 10)
        tx.transmit(tone(1920, 0.5), cyclic=True, occupied_bw_hz=1e6)
        x, _ = rx.receive(19200)
        tx.stop_transmit()
        spectrum = np.abs(np.fft.fftshift(np.fft.fft(x)))
        peak_hz = (np.argmax(spectrum) - x.size // 2) * 1.92e6 / x.size
        assert abs(peak_hz - 19.2e3) < 2e3
