"""The server's TX guard decides from the samples that arrive, not from the bandwidth a client declares: a
client whose own guard is lax (or lies) cannot make the served radio radiate outside the server's bands."""

from __future__ import annotations

import numpy as np
import pytest

from _remote_testlib import SpyRadio, insecure_client, served
from radio import RadioSettings, TxGuard, TxGuardRefused
from radio.sim import SimulatedAir

SERVER_BAND = (2400e6, 2483.5e6)
LAX = TxGuard.from_config({"allowed_bands": [[2300e6, 2700e6]], "max_tx_gain_db": 0.0})


class RecordingSpy(SpyRadio):
    """Keeps every buffer that reaches the radio below the server, with the LO and rate it went out at."""

    def __init__(self, inner):
        super().__init__(inner)
        self.reached: list[tuple[np.ndarray, float, float]] = []

    def _transmit(self, samples, cyclic):
        self.reached.append((np.array(samples), self.settings.lo_hz, self.settings.rate_sps))
        super()._transmit(samples, cyclic)


def server_radio() -> RecordingSpy:
    guard = TxGuard.from_config({"allowed_bands": [list(SERVER_BAND)], "max_tx_gain_db": 0.0})
    return RecordingSpy(SimulatedAir(seed=7).radio("sim0", guard))


def test_wideband_noise_declared_one_hertz_is_refused_by_the_server():
    spy = server_radio()
    with served(spy) as server:
        with insecure_client(server.endpoint, guard=LAX) as remote:
            remote.configure(RadioSettings(lo_hz=2.483e9, rate_sps=30.72e6, bandwidth_hz=20e6, tx_gain_db=-10))
            rng = np.random.default_rng(8)
            noise = (0.2 * (rng.standard_normal(16384) + 1j * rng.standard_normal(16384))).astype(np.complex64)
            with pytest.raises(TxGuardRefused, match="sim0's samples occupy"):
                remote.transmit(noise, cyclic=True, occupied_bw_hz=1.0)
            assert not remote.transmitting
    assert spy.transmits_reaching_radio == 0 and not spy.transmitting


def test_fuzz_through_the_server_nothing_outside_the_servers_band_reaches_the_radio():
    """Random LOs around the band edges, rates, declared bandwidths, tones and noise, sent by a client whose own
    guard allows all of it: what reaches the served radio keeps 99 % of its power inside the server's band."""
    rng = np.random.default_rng(9)
    spy = server_radio()
    accepted = refused = 0
    with served(spy) as server:
        with insecure_client(server.endpoint, guard=LAX) as remote:
            for _ in range(60):
                rate = float(rng.choice([1.92e6, 7.68e6, 15.36e6]))
                lo = float(rng.uniform(SERVER_BAND[1] - 2 * rate, SERVER_BAND[1] + rate / 2))
                remote.configure(RadioSettings(lo_hz=lo, rate_sps=rate, bandwidth_hz=min(rate, 10e6),
                                               tx_gain_db=-10))
                n = int(rng.choice([512, 4096, 12_000]))
                if rng.random() < 0.5:
                    x = (0.5 * np.exp(2j * np.pi * rng.uniform(-0.5, 0.5) * np.arange(n))).astype(np.complex64)
                else:
                    x = (0.3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)
                before = len(spy.reached)
                try:
                    remote.transmit(x, occupied_bw_hz=float(rng.choice([1.0, 1e3, 1e5, rate / 2])))
                    accepted += 1
                except TxGuardRefused:
                    refused += 1
                    assert len(spy.reached) == before
    assert accepted > 5 and refused > 5
    for sent, lo, rate in spy.reached:
        power = np.abs(np.fft.fft(sent.astype(np.complex128))) ** 2
        freqs = lo + np.fft.fftfreq(sent.size) * rate
        outside = (freqs < SERVER_BAND[0]) | (freqs > SERVER_BAND[1])
        assert power[outside].sum() <= 0.0101 * power.sum()
