"""The simulated air end to end: what one simulated radio transmits, another one receives with the physics of both
front ends and of the link between them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from radio.base import RadioSettings
from radio.errors import RadioConfigError, TxGuardRefused
from radio.guard import TxGuard
from radio.sim import SimConfig, SimulatedAir
from radio.sim import frontend as fe
from simsignals import (LO, RATE, aclr_db, band_power, cp_ofdm, db, ideal_table, open_guard, periodic_ofdm, scaled,
                        tone, tone_power)

STRONG = RadioSettings(tx_gain_db=0.0, rx_gain_db=0.0)


def make_air(table: dict, seed: int = 0) -> SimulatedAir:
    return SimulatedAir(SimConfig.from_table(table, "test"), seed=seed)


def rx_dbm(samples: np.ndarray, table: dict, rx_gain_db: float = 0.0) -> float:
    """Mean power of received samples converted back to dBm at the antenna."""
    full_scale = table.get("rx_fullscale_dbm", 0.0)
    return db(float(np.mean(np.abs(samples) ** 2))) + full_scale - rx_gain_db


# ---- EVM -----------------------------------------------------------------------------------------------------
def measure_ofdm_evm(received: np.ndarray, symbols: np.ndarray, bins: np.ndarray, nfft: int = 512,
                     cp: int = 36) -> float:
    """RMS EVM of a received cyclic CP-OFDM buffer, aligned at sample 0, after one best complex gain."""
    n_sym = symbols.shape[0]
    period = n_sym * (nfft + cp)
    periods = received.size // period
    body = received[:periods * period].reshape(periods, n_sym, nfft + cp)[:, :, cp:]
    got = np.fft.fft(body, axis=2)[:, :, bins]
    ref = np.broadcast_to(symbols, got.shape)
    gain = np.vdot(ref, got) / np.vdot(ref, ref)
    return math.sqrt(float(np.sum(np.abs(got - gain * ref) ** 2) / np.sum(np.abs(gain * ref) ** 2)))


@pytest.mark.parametrize("evm", [0.01, 0.05, 0.1])
def test_tx_evm_alone_is_measured_on_an_ofdm_signal(evm: float) -> None:
    table = ideal_table(tx_evm=evm, links={"sim0->sim1": {"path_loss_db": 20.0}})
    air = make_air(table)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    x, symbols, bins = cp_ofdm(np.random.default_rng(7), 14)
    tx.transmit(scaled(x, -15.0), cyclic=True)
    y, _ = rx.receive(1 << 18)
    assert measure_ofdm_evm(y, symbols, bins) == pytest.approx(evm, rel=0.05)


def test_tx_and_rx_evm_add_root_sum_square() -> None:
    table = ideal_table(tx_evm=0.04, rx_evm=0.03, links={"sim0->sim1": {"path_loss_db": 20.0}})
    air = make_air(table)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    x, symbols, bins = cp_ofdm(np.random.default_rng(8), 14)
    tx.transmit(scaled(x, -15.0), cyclic=True)
    y, _ = rx.receive(1 << 18)
    assert measure_ofdm_evm(y, symbols, bins) == pytest.approx(0.05, rel=0.05)


def test_default_front_ends_give_a_few_percent_evm() -> None:
    air = make_air({}, seed=1)
    tx, rx = air.radio("sim0", open_guard()), air.radio("sim1", open_guard())
    x, symbols, bins = cp_ofdm(np.random.default_rng(9), 14)
    tx.transmit(scaled(x, -15.0), cyclic=True)
    y, _ = rx.receive(14 * 548 * 8)
    # Remove the carrier offset between the two radios (their drawn ppm) before demodulating.
    truth = air.hidden_truth()["radios"]
    ppm_tx, ppm_rx = truth["sim0"]["params"]["ppm"], truth["sim1"]["params"]["ppm"]
    cfo = (ppm_tx - ppm_rx) * 1e-6 * LO
    y = y * np.exp(-2j * np.pi * cfo * np.arange(y.size) / RATE)
    evm = measure_ofdm_evm(y, symbols, bins)
    # EVM^2 budget of the independent impairments: TX and RX distortion, the TX IQ image, both LOs' phase jitter,
    # the Rapp p = 2 PA at 10 dB input back-off (-15 dBFS into a -5 dBFS saturation: 1.5 % EVM, reference section
    # 8.4), and the sample-clock drift this measurement does not remove (symbol s's bin k turned by
    # 2 pi k delta n_s / 512, one complex gain taken out).
    params = truth["sim0"]["params"]
    assert params["pa_sat_dbfs"] == -5.0 and params["pa_smoothness"] == 2.0
    jitter_rad = math.radians(truth["sim0"]["phase_noise_rms_deg"])
    delta = (1 + ppm_tx * 1e-6) / (1 + ppm_rx * 1e-6) - 1
    window_centres = np.arange(8 * 14) * 548 + 36 + 256
    signed_bins = np.concatenate([np.arange(-150, 0), np.arange(1, 151)])
    turn = np.exp(2j * np.pi * signed_bins[None, :] * delta * window_centres[:, None] / 512)
    budget = (params["tx_evm"] ** 2 + truth["sim1"]["params"]["rx_evm"] ** 2
              + 10 ** (-truth["sim0"]["iq_image_rejection_db"] / 10) + 2 * jitter_rad ** 2 + 0.015 ** 2
              + float(np.mean(np.abs(turn - turn.mean()) ** 2)))
    # Left out and only adding: the 12-bit converters (the ADC clips the peaks of a -5 dBFS OFDM signal) and cross
    # terms, together under (2 %)^2.
    assert budget <= evm ** 2 <= budget + 0.02 ** 2, (evm, math.sqrt(budget))


# ---- PA: ACLR against back-off --------------------------------------------------------------------------------
def independent_aclr(x: np.ndarray, smoothness: float, sat_dbfs: float) -> float:
    """Worst-side ACLR1 (dB) of a Rapp PA driven by the periodic signal ``x`` (7.68 MS/s): 8x polyphase
    interpolation, the Rapp formula written out here, and a Welch PSD."""
    up = scipy.signal.resample_poly(np.tile(x.astype(np.complex128), 3), 8, 1, window=("kaiser", 10.0))
    up = up[8 * x.size:16 * x.size]
    a_sat = 10 ** (sat_dbfs / 20)
    out = up / (1 + (np.abs(up) / a_sat) ** (2 * smoothness)) ** (1 / (2 * smoothness))
    f, psd = scipy.signal.welch(out, fs=8 * RATE, nperseg=8192, return_onesided=False, scaling="spectrum")

    def power(lo: float, hi: float) -> float:
        return float(psd[(f >= lo) & (f < hi)].sum())

    main = power(-2.25e6, 2.25e6)
    return db(main / max(power(-7.25e6, -2.75e6), power(2.75e6, 7.25e6)))


# Reference section 8.4: Rapp p = 2, LTE-5-like OFDM, ACLR1 (dB) at input back-off 0, 2, ..., 12 dB.
REFERENCE_ACLR_P2 = [22.1, 24.8, 28.2, 32.4, 37.6, 43.7, 50.6]


def test_aclr_improves_with_back_off_and_matches_an_independent_computation() -> None:
    sat = -15.0  # keeps every drive level's peaks inside the DAC's full scale
    table = ideal_table(pa_sat_dbfs=sat, pa_smoothness=2.0, links={"sim0->sim1": {"path_loss_db": 10.0}})
    x0 = periodic_ofdm(np.random.default_rng(11), 15360)
    measured = []
    for back_off, reference in zip(range(0, 13, 2), REFERENCE_ACLR_P2):
        air = make_air(table)
        tx = air.radio("sim0", open_guard(), STRONG)
        # A receiver 4x wider than the transmitter sees both adjacent channels.
        analyser = air.radio("sim1", open_guard(), RadioSettings(rate_sps=4 * RATE, rx_gain_db=0.0))
        x = scaled(x0, sat - back_off)
        tx.transmit(x, cyclic=True)
        y, _ = analyser.receive(4 * x.size)
        aclr = min(aclr_db(y, 4 * RATE))
        assert aclr == pytest.approx(independent_aclr(x, 2.0, sat), abs=0.5)
        assert aclr == pytest.approx(reference, abs=1.5)
        measured.append(aclr)
    assert all(np.diff(measured) > 1.0)


def test_default_pa_gives_about_30_db_aclr_at_full_drive() -> None:
    air = make_air({"seed": 2, "ppm": 0.0})
    tx = air.radio("sim0", open_guard(), STRONG)
    analyser = air.radio("sim1", open_guard(), RadioSettings(rate_sps=4 * RATE, rx_gain_db=30.0))
    x = periodic_ofdm(np.random.default_rng(12), 7680)
    results = []
    for level in (-10.0, -16.0):
        tx.transmit(scaled(x, level), cyclic=True)
        y, _ = analyser.receive(4 * x.size)
        results.append(min(aclr_db(y, 4 * RATE)))
    assert 27.0 < results[0] < 33.0
    assert results[1] > results[0] + 8.0


# ---- LO error -------------------------------------------------------------------------------------------------
def tone_frequency(y: np.ndarray, rate: float) -> float:
    """Frequency (Hz) of a clean tone from the slope of its unwrapped phase."""
    phase = np.unwrap(np.angle(y.astype(np.complex128)))
    return float(np.polyfit(np.arange(y.size) / rate, phase, 1)[0] / (2 * np.pi))


@pytest.mark.parametrize("ppm_tx, ppm_rx", [(5.0, 0.0), (-3.0, 2.0), (0.0, 0.0)])
def test_lo_error_in_ppm_appears_as_that_frequency_offset(ppm_tx: float, ppm_rx: float) -> None:
    table = ideal_table(radios={"sim0": {"ppm": ppm_tx}, "sim1": {"ppm": ppm_rx}})
    air = make_air(table)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    f_tone = 100e3
    tx.transmit(tone(7680, f_tone, 0.3), cyclic=True)
    y, _ = rx.receive(76800)
    offset = tone_frequency(y, RATE) - f_tone
    assert offset / LO * 1e6 == pytest.approx(ppm_tx - ppm_rx, abs=1e-3)


def test_own_transmission_has_no_frequency_offset_and_arrives_through_the_loopback() -> None:
    table = ideal_table(ppm=7.0, loopback_path_loss_db=35.0)
    air = make_air(table)
    radio = air.radio("sim0", open_guard(), STRONG)
    radio.transmit(tone(7680, 200e3, 0.5), cyclic=True)
    y, _ = radio.receive(76800)
    assert tone_frequency(y, RATE) == pytest.approx(200e3, abs=0.01)
    expected = 10.0 + db(0.25) + 0.0 - 35.0
    assert rx_dbm(y, table) == pytest.approx(expected, abs=0.05)


# ---- LNA ------------------------------------------------------------------------------------------------------
def test_two_tone_products_through_the_lna_have_3_to_1_slope_and_give_the_iip3() -> None:
    iip3 = -10.0
    # No thermal noise (0 K) so that the weakest products stay measurable.
    table = ideal_table(lna_iip3_dbm=iip3, temperature_c=-273.15, links={"sim0->sim1": {"path_loss_db": 10.0}})
    f1, f2, n = 1.0e6, 1.3e6, 7680
    two_tone = tone(n, f1, 0.2) + tone(n, f2, 0.2)
    per_tone_dbfs = db(0.04)
    p3 = fe.dbm_to_mw(iip3)
    inputs, fundamental, im_low, im_high = [], [], [], []
    air = make_air(table)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    for gain in (-26.0, -22.0, -18.0, -14.0, -10.0):
        tx.configure(tx_gain_db=gain)
        tx.transmit(two_tone, cyclic=True)
        y, meta = rx.receive(n)
        assert meta.clip_count == 0
        p_in = 10.0 + per_tone_dbfs + gain - 10.0
        inputs.append(p_in)
        fundamental.append(db(tone_power(y, RATE, f1)))
        im_low.append(db(tone_power(y, RATE, 2 * f1 - f2)))
        im_high.append(db(tone_power(y, RATE, 2 * f2 - f1)))
        # The cubic LNA exactly: fundamental A (1 - 3 A^2 / P3), products A^3 / P3 per tone of amplitude A.
        a2 = fe.dbm_to_mw(p_in)
        assert fundamental[-1] == pytest.approx(fe.mw_to_dbm(a2 * (1 - 3 * a2 / p3) ** 2), abs=0.02)
        assert im_low[-1] == pytest.approx(fe.mw_to_dbm(a2 ** 3 / p3 ** 2), abs=0.05)
    assert np.polyfit(inputs, im_low, 1)[0] == pytest.approx(3.0, abs=0.05)
    assert np.polyfit(inputs, im_high, 1)[0] == pytest.approx(3.0, abs=0.05)
    # Products elsewhere (e.g. 3 f1 - 2 f2) are far weaker: the LNA is third order.
    assert db(tone_power(y, RATE, 3 * f1 - 2 * f2)) < im_low[-1] - 20
    extrapolated = inputs[0] + (fundamental[0] - im_low[0]) / 2
    assert extrapolated == pytest.approx(iip3, abs=0.1)


def test_a_strong_adjacent_channel_signal_desensitises_the_lna() -> None:
    iip3 = -18.0
    table = ideal_table(lna_iip3_dbm=iip3, links={"sim0->sim2": {"path_loss_db": 60.0},
                                                   "sim1->sim2": {"path_loss_db": 32.0}})
    air = make_air(table)
    wanted = air.radio("sim0", open_guard(), STRONG)
    blocker = air.radio("sim1", open_guard(), RadioSettings(lo_hz=LO + 5e6, tx_gain_db=0.0))
    victim = air.radio("sim2", open_guard(), RadioSettings(rx_gain_db=40.0))
    wanted.transmit(tone(7680, 500e3, 0.5), cyclic=True)
    clean, _ = victim.receive(7680)
    blocker_dbm = 10.0 + db(0.5 ** 2) - 32.0  # a carrier at the blocker's LO, 5 MHz away: outside the ADC band
    blocker.transmit(np.full(7680, 0.5, np.complex64), cyclic=True)
    victim.receive(7680)  # skip the blocker's switch-on transient
    blocked, meta = victim.receive(7680)
    assert meta.extra["rx_oversample"] > 1  # the LNA is simulated wider than the ADC band
    # y = x (1 - |x|^2 / P3): a blocker of power P_B scales the wanted amplitude by 1 - 2 P_B / P3.
    expected_db = 20 * math.log10(1 - 2 * fe.dbm_to_mw(blocker_dbm) / fe.dbm_to_mw(iip3))
    change = db(tone_power(blocked, RATE, 500e3) / tone_power(clean, RATE, 500e3))
    assert change == pytest.approx(expected_db, abs=0.1)
    assert expected_db < -1.5
    # The blocker itself is outside the receiver's band: besides the tone only thermal noise is left.
    noise = fe.thermal_noise_mw(RATE, 6.0, 25.0) * 6.8 / 7.68 * fe.dbm_to_mw(40.0)
    # A long capture is computed in blocks: they must join without seams (which would raise the floor).
    long, _ = victim.receive(13 * 7680)
    for capture in (blocked, long):
        rest = band_power(capture, RATE, -3.4e6, 3.4e6) - tone_power(capture, RATE, 500e3)
        assert db(rest) == pytest.approx(db(noise), abs=0.5)
    assert db(tone_power(long, RATE, 500e3) / tone_power(clean, RATE, 500e3)) == pytest.approx(expected_db, abs=0.1)


# ---- adjacent channels ----------------------------------------------------------------------------------------
def test_adjacent_channel_transmitter_leaks_into_the_neighbour_receiver() -> None:
    table = ideal_table(pa_sat_dbfs=-5.0, pa_smoothness=2.0, path_loss_db=30.0)
    air = make_air(table)
    tx = air.radio("sim0", open_guard(), STRONG)
    neighbour = air.radio("sim1", open_guard(), RadioSettings(lo_hz=LO - 5e6, rx_gain_db=20.0))
    analyser = air.radio("sim2", open_guard(), RadioSettings(rate_sps=4 * RATE, rx_gain_db=20.0))
    x0 = periodic_ofdm(np.random.default_rng(13), 7680)
    leaked, from_aclr = [], []
    for level in (-25.0, -20.0, -15.0, -10.0, -7.0, -5.0):
        tx.transmit(scaled(x0, level), cyclic=True)
        neighbour.receive(7680)  # skip the splatter of the buffer change
        analyser.receive(4 * 7680)
        y, _ = neighbour.receive(7680)
        wide, _ = analyser.receive(4 * 7680)
        leaked.append(band_power(y, RATE, -2.25e6, 2.25e6))
        # What the transmitter's own ACLR says should land 5 MHz below its LO.
        from_aclr.append(band_power(wide, 4 * RATE, -7.25e6, -2.75e6))
    leaked_db = [db(p) for p in leaked]
    assert all(np.diff(leaked_db) > 0.5)
    assert leaked_db[-1] - leaked_db[0] > 30.0  # far more than the 20 dB of drive: spectral regrowth
    for got, want in zip(leaked_db[-3:], from_aclr[-3:]):
        assert got == pytest.approx(db(want), abs=0.5)


# ---- link: delay and path loss --------------------------------------------------------------------------------
def estimate_delay(received: np.ndarray, sent: np.ndarray, rate: float, band: float) -> float:
    """Delay in samples from the phase slope of the cross-spectrum over |f| < band."""
    spectrum = np.fft.fft(received) * np.conj(np.fft.fft(sent))
    f = np.fft.fftfreq(sent.size, 1 / rate)
    use = np.abs(f) < band
    slope = np.polyfit(f[use], np.unwrap(np.angle(spectrum[use][np.argsort(f[use])]))[np.argsort(np.argsort(f[use]))],
                       1)[0]
    return float(-slope / (2 * np.pi) * rate)


@pytest.mark.parametrize("delay", [0.0, 3.37, 20.5])
def test_fractional_delay_is_recovered(delay: float) -> None:
    table = ideal_table(links={"sim0->sim1": {"path_loss_db": 20.0, "delay_samples": delay}})
    air = make_air(table)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    x = scaled(periodic_ofdm(np.random.default_rng(14), 7680, bandwidth=6e6), -15.0)
    tx.transmit(x, cyclic=True)
    rx.receive(7680)  # the first samples precede the signal's arrival
    y, _ = rx.receive(7680)
    assert estimate_delay(y, x, RATE, 2.9e6) == pytest.approx(delay, abs=0.01)


def test_path_loss_sets_the_received_power() -> None:
    table = ideal_table(links={"sim0->sim1": {"path_loss_db": 30.0}, "sim0->sim2": {"path_loss_db": 45.0}})
    air = make_air(table)
    tx = air.radio("sim0", open_guard(), RadioSettings(tx_gain_db=-3.0))
    rx1, rx2 = air.radio("sim1", open_guard(), STRONG), air.radio("sim2", open_guard(), STRONG)
    tx.transmit(scaled(periodic_ofdm(np.random.default_rng(15), 7680), -12.0), cyclic=True)
    p1 = rx_dbm(rx1.receive(7680 * 4).samples, table)
    p2 = rx_dbm(rx2.receive(7680 * 4).samples, table)
    assert p1 == pytest.approx(10.0 - 12.0 - 3.0 - 30.0, abs=0.05)
    assert p1 - p2 == pytest.approx(15.0, abs=0.05)
    # Changing a link at run time takes effect from the next receive.
    assert air.set_link("sim0", "sim1", path_loss_db=42.0).path_loss_db == 42.0
    p1_later = rx_dbm(rx1.receive(7680 * 4).samples, table)
    assert p1 - p1_later == pytest.approx(12.0, abs=0.05)
    with pytest.raises(RadioConfigError, match="path_loss_db"):
        air.set_link("sim0", "sim1", path_loss_db=-3.0)


def test_received_noise_is_kTB_times_the_noise_figure() -> None:
    table = ideal_table(noise_figure_db=8.0, temperature_c=30.0, adc_bits=12)
    air = make_air(table)
    rx = air.radio("sim1", open_guard(), RadioSettings(rx_gain_db=60.0))
    y, meta = rx.receive(1 << 16)
    expected = fe.mw_to_dbm(fe.thermal_noise_mw(RATE, 8.0, 30.0))
    # The 12-bit ADC's own noise (step^2 / 6 = -74 dBFS) sits 35 dB below this noise.
    assert rx_dbm(y, table, 60.0) == pytest.approx(expected, abs=0.1)
    codes = y.view(np.float32) * 2048.0
    assert np.array_equal(codes, np.round(codes))
    assert meta.temperature_c == 30.0


# ---- guard ----------------------------------------------------------------------------------------------------
def test_guard_refusal_puts_nothing_on_the_air() -> None:
    table = ideal_table(links={"sim0->sim1": {"path_loss_db": 10.0}})
    guard = TxGuard.from_config({"allowed_bands": [[2.4e9, 2.4835e9]], "max_tx_gain_db": -10.0})
    air = make_air(table)
    tx = air.radio("sim0", guard, RadioSettings(lo_hz=2.5e9, tx_gain_db=-20.0))
    rx = air.radio("sim1", guard, RadioSettings(lo_hz=2.5e9, rx_gain_db=60.0))
    burst = scaled(periodic_ofdm(np.random.default_rng(16), 7680), -12.0)
    with pytest.raises(TxGuardRefused):
        tx.transmit(burst, cyclic=True)
    tx.configure(lo_hz=2.44e9, tx_gain_db=0.0)
    with pytest.raises(TxGuardRefused):
        tx.transmit(burst)
    rx.configure(lo_hz=2.44e9)
    y, _ = rx.receive(1 << 15)
    noise_dbm = fe.mw_to_dbm(fe.thermal_noise_mw(RATE, table.get("noise_figure_db", 6.0), 25.0))
    assert rx_dbm(y, table, 60.0) == pytest.approx(noise_dbm, abs=0.15)
    assert not tx.transmitting


# ---- time model, superposition, reproducibility ---------------------------------------------------------------
def test_one_shot_burst_is_captured_by_every_receiver_that_listens_after_it() -> None:
    table = ideal_table(path_loss_db=20.0, links={"sim0->sim2": {"path_loss_db": 20.0, "delay_samples": 5.0}})
    air = make_air(table)
    tx = air.radio("sim0", open_guard(), STRONG)
    rx1, rx2 = air.radio("sim1", open_guard(), STRONG), air.radio("sim2", open_guard(), STRONG)
    rx1.receive(1000)  # the air clock moves on; the burst starts now
    burst = scaled(periodic_ofdm(np.random.default_rng(17), 2000, bandwidth=3e6), -10.0)
    tx.transmit(burst)
    y1, m1 = rx1.receive(4000)
    y2, m2 = rx2.receive(4000)
    assert m1.timestamp_s == m2.timestamp_s == pytest.approx(1000 / RATE)
    p1 = np.abs(y1) ** 2
    on = p1 > 0.01 * p1.max()
    first, last = np.flatnonzero(on)[[0, -1]]
    assert abs(first - 0) <= 2 and abs(last - 1999) <= 2
    # Received waveform is the burst (scaled, rotated) and the second receiver hears it 5 samples later.
    corr = np.vdot(burst, y1[:2000]) / (np.linalg.norm(burst) * np.linalg.norm(y1[:2000]))
    assert abs(corr) > 0.999
    assert np.allclose(np.abs(y2[5:2005]), np.abs(y1[:2000]), rtol=0.05, atol=1e-4)
    after, _ = rx1.receive(4000)  # the burst is over: only noise
    assert rx_dbm(after, table) < -95.0


def test_cyclic_buffer_plays_from_its_start_and_is_heard_at_any_later_time() -> None:
    air = make_air(ideal_table(path_loss_db=20.0))
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    x = scaled(periodic_ofdm(np.random.default_rng(18), 1000, bandwidth=3e6), -10.0)
    tx.transmit(x, cyclic=True)
    air.advance(0.0123456)
    y, meta = rx.receive(3000)
    offset = round(meta.timestamp_s * RATE) % x.size
    expected = np.roll(np.tile(x, 4), -offset)[:3000]
    gain = np.vdot(expected, y) / np.vdot(expected, expected)
    assert np.linalg.norm(y - gain * expected) / np.linalg.norm(y) < 1e-3


def test_several_transmitters_superpose() -> None:
    table = ideal_table(path_loss_db=20.0, radios={"sim1": {"ppm": 0.0}})
    air = make_air(table)
    a, b = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    rx = air.radio("sim2", open_guard(), STRONG)
    a.transmit(tone(7680, 100e3, 0.3), cyclic=True)
    b.transmit(tone(7680, -700e3, 0.1))  # one-shot, at the same air time
    y, meta = rx.receive(7680)
    assert meta.extra["transmitters_heard"] == 2
    assert db(tone_power(y, RATE, 100e3)) + 0.0 == pytest.approx(10.0 + db(0.09) - 20.0, abs=0.05)
    assert db(tone_power(y, RATE, -700e3)) == pytest.approx(10.0 + db(0.01) - 20.0, abs=0.1)


def test_retuning_a_transmitter_moves_its_signal_and_keeps_it_playing() -> None:
    air = make_air(ideal_table(path_loss_db=20.0))
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    tx.transmit(tone(7680, 300e3, 0.3), cyclic=True)
    before, _ = rx.receive(7680)
    tx.configure(lo_hz=LO + 1e6)
    assert tx.transmitting
    rx.receive(100)
    after, _ = rx.receive(7680)
    assert db(tone_power(before, RATE, 300e3)) == pytest.approx(10.0 + db(0.09) - 20.0, abs=0.05)
    assert db(tone_power(after, RATE, 1.3e6)) == pytest.approx(10.0 + db(0.09) - 20.0, abs=0.05)
    assert tone_power(after, RATE, 300e3) < 1e-9


def test_adc_clips_and_counts_instead_of_wrapping() -> None:
    table = ideal_table(adc_bits=12, links={"sim0->sim1": {"path_loss_db": 10.0}})
    air = make_air(table)
    tx = air.radio("sim0", open_guard(), STRONG)
    rx = air.radio("sim1", open_guard(), RadioSettings(rx_gain_db=30.0))
    tx.transmit(tone(7680, 100e3, 0.5), cyclic=True)  # -6 dBFS + 10 dBm - 10 dB = -6 dBm: 24 dB over full scale
    y, meta = rx.receive(7680)
    assert meta.clip_count > 7000
    assert np.abs(y.real).max() <= 1.0 and np.abs(y.imag).max() <= 1.0
    rx.configure(rx_gain_db=0.0)
    y, meta = rx.receive(7680)
    assert meta.clip_count == 0
    codes = y.view(np.float32) * 2048.0  # 12 bits: samples sit on the ADC's codes
    assert np.array_equal(codes, np.round(codes)) and codes.max() <= 2047 and codes.min() >= -2048


def run_default_session(seed: int) -> list[np.ndarray]:
    air = make_air({"seed": 0, "fading": "jakes", "doppler_hz": 50.0}, seed=seed)
    a, b = air.radio("sim0", open_guard()), air.radio("sim1", open_guard())
    rng = np.random.default_rng(1)
    a.transmit(scaled(periodic_ofdm(rng, 7680), -12.0), cyclic=True)
    out = [b.receive(5000).samples, a.receive(3000).samples]
    b.transmit(scaled(periodic_ofdm(rng, 3000), -12.0))
    out += [a.receive(8000).samples, b.receive(8000).samples]
    return out


def test_same_seed_and_calls_give_bit_identical_samples() -> None:
    first, again, other = run_default_session(4), run_default_session(4), run_default_session(5)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not any(np.array_equal(x, y) for x, y in zip(first, other))


def test_hidden_truth_is_drawn_per_name_and_exposed() -> None:
    air = make_air({"ppm_spread": 3.0, "radios": {"sim1": {"ppm": -1.25}}}, seed=9)
    r0, r1 = air.radio("sim0", open_guard()), air.radio("sim1", open_guard())
    truth = r0.hidden_truth()
    assert abs(truth["params"]["ppm"]) <= 3.0
    assert r1.hidden_truth()["params"]["ppm"] == -1.25
    assert air.hidden_truth()["links"]["sim0->sim0"]["path_loss_db"] == 40.0
    # The same name on another air with the same seed has the same hidden draws.
    other = make_air({"ppm_spread": 3.0}, seed=9)
    other.radio("sim5", open_guard())
    assert other.radio("sim0", open_guard()).hidden_truth()["params"]["ppm"] == truth["params"]["ppm"]


def test_jakes_fading_has_unit_mean_power_and_the_doppler_correlation() -> None:
    fd = 100.0
    table = ideal_table(path_loss_db=20.0, fading="jakes", doppler_hz=fd)
    air = make_air(table, seed=3)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    tx.transmit(np.full(960, 0.3, np.complex64), cyclic=True)
    rate = RATE
    y = rx.receive(1 << 21).samples.astype(np.complex128)
    h = y[::96]  # 80 kS/s is plenty for a 100 Hz Doppler
    h = h / math.sqrt(fe.dbm_to_mw(10.0 + db(0.09) - 20.0))
    assert float(np.mean(np.abs(h) ** 2)) == pytest.approx(1.0, abs=0.35)
    lag_s = 0.3827 / fd  # J0 first crosses zero here
    lag = int(round(lag_s * rate / 96))
    rho = abs(np.vdot(h[:-lag], h[lag:])) / np.vdot(h, h).real
    assert rho < 0.3
    short = int(round(0.02 / fd * rate / 96))
    assert abs(np.vdot(h[:-short], h[short:])) / np.vdot(h, h).real > 0.9



def _tone_offset_hz(y: np.ndarray, freq: float) -> float:
    """Frequency (Hz) of the tone near ``freq`` in ``y`` relative to ``freq``: mixed to DC, averaged over 256
    samples (which rejects tones MHz away), phase slope."""
    z = y.astype(np.complex128) * np.exp(-2j * np.pi * freq * np.arange(y.size) / RATE)
    z = np.convolve(z, np.ones(256) / 256, "valid")[::64]
    t = np.arange(z.size) * 64 / RATE
    return float(np.polyfit(t, np.unwrap(np.angle(z)), 1)[0] / (2 * np.pi))


@pytest.mark.parametrize("ppm_tx, ppm_rx", [(30.0, -20.0), (-4.0, 1.0), (3.0, 3.0)])
def test_sample_clock_error_in_ppm_scales_baseband_frequencies(ppm_tx: float, ppm_rx: float) -> None:
    """Each radio's ppm scales its sample clock as well as its LO: two tones 4 MHz apart arrive with the carrier
    offset LO (ppm_tx - ppm_rx) 1e-6 common to both and 4 MHz apart times (1 + ppm_tx 1e-6) / (1 + ppm_rx 1e-6)
    (a delay drifting by -(ppm_tx - ppm_rx) 1e-6 samples per sample)."""
    table = ideal_table(path_loss_db=20.0, radios={"sim0": {"ppm": ppm_tx}, "sim1": {"ppm": ppm_rx}})
    air = make_air(table)
    tx, rx = air.radio("sim0", open_guard(), STRONG), air.radio("sim1", open_guard(), STRONG)
    f_low, f_high = -2.0e6, 2.0e6
    tx.transmit(tone(7680, f_low, 0.2) + tone(7680, f_high, 0.2), cyclic=True)
    y, _ = rx.receive(10 * 7680)
    # The receiver counts the LO difference in its own clock's Hz.
    carrier = (ppm_tx - ppm_rx) * 1e-6 * LO / (1 + ppm_rx * 1e-6)
    y = y * np.exp(-2j * np.pi * carrier * np.arange(y.size) / RATE)
    low, high = _tone_offset_hz(y, f_low), _tone_offset_hz(y, f_high)
    stretch = (1 + ppm_tx * 1e-6) / (1 + ppm_rx * 1e-6)
    # The phase-slope fit over 10 ms at this SNR resolves the tones to about 1 mHz; 10 mHz is 2000x below the
    # smallest stretch tested (5 ppm of 4 MHz = 20 Hz), so a stretch off by even 0.05 % of itself fails.
    assert (f_high + high) - (f_low + low) == pytest.approx((f_high - f_low) * stretch, abs=0.01)
    assert (low + high) / 2 == pytest.approx(0.0, abs=0.01)  # the rest of the offset is the carrier's
