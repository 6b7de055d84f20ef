"""Pluto and USRP backends against faithful fakes of ``adi`` and ``uhd`` (ranges, manual-gain rule,
cyclic-buffer rule, int16 / 12-bit scaling, error mapping); real-radio tests are marked ``hardware``."""

from __future__ import annotations

import errno
import os
import time

import numpy as np
import pytest

from radio import (RadioConfigError, RadioDisconnected, RadioOverflow, RadioTimeout, TxGuard, TxGuardRefused)
from radio.pluto import PlutoRadio
from radio.usrp import UsrpRadio
from tests.fakes import fake_adi, fake_uhd

GUARD = TxGuard.from_config({"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": -10.0,
                             "radios": {"usrp0": {"max_tx_gain_db": 60.0}}})


def tone(n=1000, amp=0.5):
    return (amp * np.exp(2j * np.pi * 0.01 * np.arange(n))).astype(np.complex64)


@pytest.fixture
def pluto():
    r = PlutoRadio("pluto0", "ip:192.168.2.1", GUARD, adi_module=fake_adi)
    r.configure(lo_hz=2.44e9, rate_sps=7.68e6, bandwidth_hz=5e6, tx_gain_db=-20, rx_gain_db=40)
    return r


def test_pluto_manual_gain_rule(pluto):
    sdr = pluto._sdr
    assert sdr.gain_control_mode_chan0 == "manual"
    assert sdr.rx_hardwaregain_chan0 == 40
    # The fake, like pyadi-iio, ignores a gain write in AGC mode: the backend must not rely on it.
    sdr.gain_control_mode_chan0 = "slow_attack"
    sdr.rx_hardwaregain_chan0 = 10
    assert sdr.rx_hardwaregain_chan0 == 40
    pluto.configure(rx_gain_db=12)
    assert sdr.gain_control_mode_chan0 == "manual" and sdr.rx_hardwaregain_chan0 == 12


def test_pluto_ranges_are_checked_before_the_device(pluto):
    with pytest.raises(RadioConfigError, match=r"lo_hz = 5e\+09 Hz is out of range; allowed 3.25e\+08 to 3.8e\+09"):
        pluto.configure(lo_hz=5e9)
    with pytest.raises(RadioConfigError, match="tx_gain_db"):
        pluto.configure(tx_gain_db=3)
    assert pluto._sdr.tx_lo == 2440000000


def test_pluto_cyclic_buffers_are_destroyed_before_reuse(pluto):
    pluto.transmit(tone(), cyclic=True, occupied_bw_hz=5e6)
    pluto.transmit(tone(2000), cyclic=True, occupied_bw_hz=5e6)  # the fake raises if not destroyed first
    pluto.transmit(tone(500), cyclic=False, occupied_bw_hz=5e6)
    assert [s.size for s in pluto._sdr.sent] == [2000, 4000, 1000]


def test_pluto_int16_scaling_never_wraps(pluto):
    x = np.array([1.0 + 0j, -1.0 + 0.5j, 2.0 - 2.0j, 0.25j], np.complex64)
    report = pluto.transmit(x, occupied_bw_hz=5e6)
    assert report.clipped == 1
    sent = pluto._sdr.sent[-1]
    np.testing.assert_array_equal(sent, [32767, 0, -32767, 16384, 32767, -32767, 0, 8192])


def test_pluto_rx_12bit_scaling_and_clip_count(pluto):
    pluto._sdr.rx_source = lambda n: np.r_[np.full(10, 4000.0 + 0j), np.full(n - 10, 1024.0 + 512j)]
    x, meta = pluto.receive(100)
    assert meta.clip_count == 10
    np.testing.assert_allclose(x[10:], 0.5 + 0.25j)
    assert np.max(np.abs(x.real)) <= 1.0
    assert meta.temperature_c == 38.5


def test_pluto_loopback_carries_the_tone(pluto):
    pluto.configure(tx_gain_db=-10, rx_gain_db=60)
    pluto.transmit(tone(amp=0.7), cyclic=True, occupied_bw_hz=5e6)
    x, _ = pluto.receive(1000)
    f = np.fft.fft(x)
    assert np.argmax(np.abs(f)) == 10  # 0.01 cycles/sample * 1000


def test_pluto_guard_refusal_sends_nothing(pluto):
    pluto.configure(tx_gain_db=-5)
    with pytest.raises(TxGuardRefused):
        pluto.transmit(tone(), occupied_bw_hz=5e6)
    pluto.configure(tx_gain_db=-20, lo_hz=2.6e9)
    with pytest.raises(TxGuardRefused):
        pluto.transmit(tone(), occupied_bw_hz=5e6)
    assert pluto._sdr.sent == []


def test_pluto_faults_map_to_typed_exceptions(pluto):
    pluto._sdr.fail_rx_with = OSError(errno.ETIMEDOUT, "Connection timed out")
    with pytest.raises(RadioTimeout):
        pluto.receive(10)
    pluto._sdr.fail_rx_with = OSError(errno.ENODEV, "No such device")
    with pytest.raises(RadioDisconnected):
        pluto.receive(10)
    with pytest.raises(RadioDisconnected, match="does not answer"):
        PlutoRadio("pluto9", "ip:192.0.2.1", GUARD, adi_module=fake_adi)


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
