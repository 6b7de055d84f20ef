"""The TX guard and the contract rules every backend shares (validation, clipping, context manager)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radio import LoopbackRadio, RadioConfigError, RadioDisconnected, TxGuard, TxGuardRefused
from radio.base import Range, clip_to_full_scale

ISM = {"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": -5.0, "radios": {"loop1": {"max_tx_gain_db": 0.0}}}


def tone(n: int = 256, amp: float = 0.5) -> np.ndarray:
    return (amp * np.exp(2j * np.pi * 0.05 * np.arange(n))).astype(np.complex64)


def test_guard_checks_both_band_edges_and_gain():
    g = TxGuard.from_config(ISM)
    g.check("loop0", 2441e6, 20e6, -10)  # 2431-2451 MHz: inside
    with pytest.raises(TxGuardRefused, match="2400-2483.5 MHz"):
        g.check("loop0", 2405e6, 20e6, -10)  # lower edge 2395 MHz sticks out
    with pytest.raises(TxGuardRefused, match="2400-2483.5 MHz"):
        g.check("loop0", 2480e6, 10e6, -10)  # upper edge 2485 MHz sticks out
    with pytest.raises(TxGuardRefused, match="exceeds the maximum -5 dB"):
        g.check("loop0", 2441e6, 1e6, -4.75)
    g.check("loop1", 2441e6, 1e6, -1)  # per-radio override raises the limit for loop1 only


def test_guard_fails_closed_and_rejects_malformed_tables():
    with pytest.raises(TxGuardRefused, match="none"):
        TxGuard.from_config({}).check("x", 2.44e9, 1e6, -50)
    with pytest.raises(RadioConfigError, match="low_hz < high_hz"):
        TxGuard.from_config({"allowed_bands": [[2.5e9, 2.4e9]]})
    with pytest.raises(RadioConfigError, match="unknown key 'max_gain'"):
        TxGuard.from_config({"max_gain": 3})


def test_refused_transmission_reaches_nothing():
    r = LoopbackRadio(guard=TxGuard.from_config(ISM))
    r.configure(lo_hz=2.6e9, rate_sps=1e6)
    with pytest.raises(TxGuardRefused):
        r.transmit(tone(), cyclic=True)
    assert not r.transmitting
    assert np.all(r.receive(512).samples == 0)


def test_retuning_a_running_transmitter_out_of_band_is_refused_and_changes_nothing():
    r = LoopbackRadio(guard=TxGuard.from_config(ISM))
    r.configure(lo_hz=2.44e9, rate_sps=1e6, tx_gain_db=-10)
    r.transmit(tone(), cyclic=True)
    with pytest.raises(TxGuardRefused):
        r.configure(lo_hz=2.7e9)
    with pytest.raises(TxGuardRefused):
        r.configure(tx_gain_db=0.0)
    assert r.settings.lo_hz == 2.44e9 and r.settings.tx_gain_db == -10
    r.stop_transmit()
    r.configure(lo_hz=2.7e9)  # not transmitting: tuning anywhere is fine


def test_occupied_bandwidth_defaults_to_the_whole_sample_rate_band():
    r = LoopbackRadio(guard=TxGuard.from_config(ISM))
    r.configure(lo_hz=2.402e9, rate_sps=10e6)
    with pytest.raises(TxGuardRefused):
        r.transmit(tone())  # 2397-2407 MHz
    r.transmit(tone(), occupied_bw_hz=3e6)  # 2400.5-2403.5 MHz
    with pytest.raises(RadioConfigError, match="occupied_bw_hz"):
        r.transmit(tone(), occupied_bw_hz=20e6)


def test_clipping_never_wraps_and_is_counted():
    x = np.array([0.5 + 0.5j, 1.5 - 0.2j, -3 + 2j, 0.99 - 1.01j], np.complex64)
    y, n = clip_to_full_scale(x)
    assert n == 3
    np.testing.assert_allclose(y, [0.5 + 0.5j, 1.0 - 0.2j, -1 + 1j, 0.99 - 1j], atol=1e-7)
    r = LoopbackRadio(guard=TxGuard.from_config(ISM))
    r.configure(lo_hz=2.44e9, rate_sps=1e6)
    assert r.transmit(x, occupied_bw_hz=1e6).clipped == 3
    got = r.receive(4).samples
    assert np.max(np.abs(got.real)) <= 1.0 and np.max(np.abs(got.imag)) <= 1.0
    assert np.sign(got[2].real) == -1  # -3 clipped to -1, not wrapped to positive


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 4), np.complex64), "1-D"), (np.zeros(0, np.complex64), "empty"),
    (np.array([1 + 1j, np.nan], np.complex64), "NaN"), (np.array(["a", "b"]), "dtype"),
])
def test_bad_transmit_buffers_are_rejected_before_the_guard(bad, match):
    r = LoopbackRadio(guard=TxGuard.from_config(ISM))
    r.configure(lo_hz=2.44e9, rate_sps=1e6)
    with pytest.raises(RadioConfigError, match=match):
        r.transmit(bad, occupied_bw_hz=1e6)


def test_settings_are_validated_and_named():
    r = LoopbackRadio()
    with pytest.raises(RadioConfigError, match=r"loop0: rate_sps = 1e\+09 S/s is out of range; allowed 1000 to"):
        r.configure(rate_sps=1e9)
    with pytest.raises(RadioConfigError, match="unknown radio setting"):
        r.configure(frequency=1e9)
    with pytest.raises(RadioConfigError, match="not a finite number"):
        r.configure(lo_hz=math.nan)
    assert Range(-89.75, 0, 0.25, "dB").check("g", -10.1) == -10.0


def test_context_manager_closes_and_closed_radio_is_a_disconnect():
    with LoopbackRadio(guard=TxGuard.from_config(ISM)) as r:
        r.configure(lo_hz=2.44e9, rate_sps=1e6)
        r.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
    assert not r.transmitting
    with pytest.raises(RadioDisconnected):
        r.receive(10)
    r.close()  # idempotent


def test_loopback_cyclic_and_one_shot_time_model():
    r = LoopbackRadio(guard=TxGuard.from_config(ISM), delay_samples=5)
    r.configure(lo_hz=2.44e9, rate_sps=1e6)
    x = tone(100)
    r.transmit(x, occupied_bw_hz=1e6)  # one shot
    got = r.receive(300).samples
    np.testing.assert_array_equal(got[5:105], x)
    assert np.all(got[:5] == 0) and np.all(got[105:] == 0)
    r.transmit(x, cyclic=True, occupied_bw_hz=1e6)
    got = r.receive(1000).samples
    np.testing.assert_array_equal(got[5:105], x)
    np.testing.assert_array_equal(got[805:905], x)
