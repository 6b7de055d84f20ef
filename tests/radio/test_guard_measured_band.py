"""The TX guard decides from the samples: the band a buffer is measured to occupy (99 % power bandwidth at its
offset from the LO) must lie in an allowed band whatever bandwidth the caller declares, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from radio import LoopbackRadio, RadioConfigError, TxGuard, TxGuardRefused
from radio.guard import OBW_SEGMENT, measure_occupied_band
from radio.pluto import PlutoRadio
from radio.sim import SimulatedAir
from radio.usrp import UsrpRadio
from tests.fakes import fake_adi, fake_uhd

BAND = (2400e6, 2483.5e6)
GUARD = TxGuard.from_config({"allowed_bands": [list(BAND)], "max_tx_gain_db": 60.0})


def band_limited_noise(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """White noise kept only between ``low`` and ``high`` (fractions of the sample rate), as a cyclic buffer."""
    spectrum = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    freqs = np.fft.fftfreq(n)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    x = np.fft.ifft(spectrum)
    return (0.3 * x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


def out_of_band_fraction(x: np.ndarray, lo_hz: float, rate: float, bands: list[tuple[float, float]]) -> float:
    """Share of the power of ``x`` (as repeated cyclically, its exact line spectrum) outside every band."""
    power = np.abs(np.fft.fft(x.astype(np.complex128))) ** 2
    freqs = lo_hz + np.fft.fftfreq(x.size) * rate
    inside = np.zeros(x.size, bool)
    for low, high in bands:
        inside |= (freqs >= low) & (freqs <= high)
    return float(power[~inside].sum() / power.sum())


# ---- the measurement ------------------------------------------------------------------------------------------
def test_white_noise_occupies_99_percent_of_the_sample_rate_band():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(1 << 16) + 1j * rng.standard_normal(1 << 16)).astype(np.complex64)
    band = measure_occupied_band(x)
    assert band.high - band.low == pytest.approx(0.99, abs=0.01)
    assert band.low == pytest.approx(-0.495, abs=0.01) and band.high == pytest.approx(0.495, abs=0.01)


@pytest.mark.parametrize("n", [300, 4096, 76_800])
def test_a_tone_occupies_a_few_bins_at_its_offset(n):
    x = (0.5 * np.exp(2j * np.pi * 0.2173 * np.arange(n))).astype(np.complex64)
    band = measure_occupied_band(x)
    resolution = 1.0 / min(n, OBW_SEGMENT)
    assert band.low <= 0.2173 <= band.high
    # A rectangular window leaks a tone between bins: 99 % of it within ~20 bins each side.
    assert band.high - band.low <= 45 * resolution


def test_band_limited_noise_is_measured_where_it_is():
    rng = np.random.default_rng(2)
    x = band_limited_noise(rng, 61_440, 0.10, 0.30)
    band = measure_occupied_band(x)
    assert band.low == pytest.approx(0.101, abs=0.003) and band.high == pytest.approx(0.299, abs=0.003)


def test_a_buffer_without_power_has_no_band_and_bad_fractions_are_named():
    assert measure_occupied_band(np.zeros(1000, np.complex64)) is None
    with pytest.raises(RadioConfigError, match="power_fraction = 1.5"):
        measure_occupied_band(np.ones(10, np.complex64), power_fraction=1.5)


def test_a_short_wideband_burst_cannot_hide_in_a_long_quiet_buffer():
    """Every sample weighs the same: a burst holding most of the energy sets the band wherever it sits."""
    rng = np.random.default_rng(3)
    x = np.zeros(100_000, np.complex64)
    x[50_000:50_000 + 3000] = (rng.standard_normal(3000) + 1j * rng.standard_normal(3000)) * 0.7
    x += (0.01 * np.exp(2j * np.pi * 0.01 * np.arange(x.size))).astype(np.complex64)
    band = measure_occupied_band(x)
    assert band.high - band.low > 0.9


# ---- every backend ---------------------------------------------------------------------------------------------
def _loopback():
    return LoopbackRadio("loop0", GUARD)


def _sim():
    return SimulatedAir(seed=4).radio("sim0", GUARD)


def _pluto():
    return PlutoRadio("pluto0", "ip:192.168.2.1", GUARD, adi_module=fake_adi)


def _usrp():
    return UsrpRadio("usrp0", "type=b200", GUARD, uhd_module=fake_uhd)


BACKENDS = {"loopback": _loopback, "sim": _sim, "pluto": _pluto, "usrp": _usrp}


@pytest.fixture(params=sorted(BACKENDS))
def spied_radio(request, monkeypatch):
    """A radio of each backend whose device hook records every buffer that reaches it."""
    radio = BACKENDS[request.param]()
    reached: list[np.ndarray] = []
    inner = radio._transmit

    def spy(samples, cyclic):
        reached.append(np.array(samples))
        inner(samples, cyclic)

    monkeypatch.setattr(radio, "_transmit", spy)
    yield radio, reached
    radio.close()


def test_wideband_noise_declared_narrow_is_refused_on_every_backend(spied_radio):
    radio, reached = spied_radio
    rate = 30.72e6 if radio.capabilities.rate_sps.high >= 30.72e6 else radio.capabilities.rate_sps.high
    radio.configure(lo_hz=2.483e9, rate_sps=rate, bandwidth_hz=min(20e6, radio.capabilities.bandwidth_hz.high),
                    tx_gain_db=radio.capabilities.tx_gain_db.low)
    rng = np.random.default_rng(5)
    noise = (0.2 * (rng.standard_normal(8192) + 1j * rng.standard_normal(8192))).astype(np.complex64)
    for declared in (1.0, 100e3, 1e6):
        with pytest.raises(TxGuardRefused, match="samples occupy"):
            radio.transmit(noise, cyclic=True, occupied_bw_hz=declared)
    assert reached == [] and not radio.transmitting
    # The same buffer centred in the band passes: the refusal came from where the samples lie, not their kind.
    radio.configure(lo_hz=2.44e9)
    radio.transmit(noise, cyclic=True, occupied_bw_hz=1.0)
    assert len(reached) == 1


def test_a_tone_offset_out_of_band_is_refused_and_the_declared_band_only_tightens(spied_radio):
    radio, reached = spied_radio
    radio.configure(lo_hz=2.482e9, rate_sps=7.68e6, bandwidth_hz=5e6, tx_gain_db=radio.capabilities.tx_gain_db.low)
    offset = 2e6 / 7.68e6
    above = (0.5 * np.exp(2j * np.pi * offset * np.arange(7680))).astype(np.complex64)  # 2484 MHz
    below = np.conj(above)  # 2480 MHz
    with pytest.raises(TxGuardRefused, match="samples occupy 2483.9"):
        radio.transmit(above, occupied_bw_hz=10e3)
    assert reached == []
    radio.transmit(below, occupied_bw_hz=10e3)
    assert len(reached) == 1
    with pytest.raises(TxGuardRefused, match="5 MHz wide"):  # 2479.5-2484.5 MHz declared: stricter, refused
        radio.transmit(below, occupied_bw_hz=5e6)
    assert len(reached) == 1


def test_retuning_a_cyclic_transmission_rechecks_the_measured_band(spied_radio):
    radio, reached = spied_radio
    radio.configure(lo_hz=2.44e9, rate_sps=7.68e6, bandwidth_hz=5e6, tx_gain_db=radio.capabilities.tx_gain_db.low)
    n = 7680
    tone = (0.5 * np.exp(2j * np.pi * 0.25 * np.arange(n))).astype(np.complex64)  # +1.92 MHz
    radio.transmit(tone, cyclic=True, occupied_bw_hz=10e3)
    # LO 2482 MHz: the declared 10 kHz around the LO fits, the tone at 2483.92 MHz does not.
    with pytest.raises(TxGuardRefused, match="samples occupy"):
        radio.configure(lo_hz=2.482e9)
    assert radio.settings.lo_hz == 2.44e9
    # Doubling the sample rate doubles the tone's offset: 2440 + 3.84 MHz is still inside.
    radio.configure(rate_sps=15.36e6, bandwidth_hz=min(10e6, radio.capabilities.bandwidth_hz.high))
    with pytest.raises(TxGuardRefused, match="samples occupy"):
        radio.configure(lo_hz=2.4805e9)  # 2480.5 + 3.84 MHz leaves the band
    radio.stop_transmit()


def test_fuzz_no_buffer_whose_band_leaves_the_allowed_bands_reaches_the_radio():
    """Random declared bandwidths, rates, LOs near the band edges, tones and band-limited noise: every buffer that
    reaches the radio keeps at least 99 % of its power inside the allowed band (measured independently, on the
    buffer's exact line spectrum), and refusals leave nothing behind."""
    rng = np.random.default_rng(6)
    radio = LoopbackRadio("loop0", GUARD)
    reached: list[tuple[np.ndarray, float, float]] = []
    inner = radio._transmit

    def spy(samples, cyclic):
        reached.append((np.array(samples), radio.settings.lo_hz, radio.settings.rate_sps))
        inner(samples, cyclic)

    radio._transmit = spy
    accepted = refused = 0
    for _ in range(400):
        rate = float(rng.choice([1e6, 1.92e6, 7.68e6, 30.72e6]))
        lo = float(rng.uniform(BAND[0] - rate, BAND[1] + rate))
        radio.configure(lo_hz=lo, rate_sps=rate)
        n = int(rng.choice([64, 1000, 4096, 9000, 40_000]))
        kind = rng.random()
        if kind < 0.4:
            x = (0.5 * np.exp(2j * np.pi * rng.uniform(-0.5, 0.5) * np.arange(n))).astype(np.complex64)
        elif kind < 0.8:
            low = rng.uniform(-0.5, 0.45)
            x = band_limited_noise(rng, n, low, min(0.5, low + rng.uniform(0.01, 0.5)))
        else:
            x = (rng.uniform(0.1, 3.0) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)
        declared = None if rng.random() < 0.2 else float(rng.uniform(1.0, rate))
        before = len(reached)
        try:
            radio.transmit(x, cyclic=bool(rng.random() < 0.5), occupied_bw_hz=declared)
            accepted += 1
            sent, sent_lo, sent_rate = reached[-1]
            assert out_of_band_fraction(sent, sent_lo, sent_rate, [BAND]) <= 0.0101
        except TxGuardRefused:
            refused += 1
            assert len(reached) == before
        radio.stop_transmit()
    assert accepted > 50 and refused > 50  # both sides of the guard were exercised
