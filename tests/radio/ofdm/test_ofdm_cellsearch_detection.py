"""Cell search detection: spec-built LTE (TS 36.211 6.11) and NR SSB (TS 38.211 7.4.2/7.4.3) signals at random
timing, frequency offset, SSB position and SNR are found; noise-only and other-RAT recordings say "no cell";
the detectors' noise statistics match the Beta laws their thresholds are derived from; the shared LTE recording
and a 5 ms cut of it still give cell 1.

SNR here is per resource element: the synthetic generators put unit-power REs on an OFDM grid scaled so that
the receiver's FFT / sqrt(N) returns them with unit power, so complex noise of variance sigma^2 per sample gives
an RE SNR of -20 log10(sigma)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from radio.ofdm.cellsearch import (
    LTE_MIN_SAMPLES, NoCellFound, analyze_recording, lte_cell_search, nr_cell_search, pss_tail, pss_threshold,
    sss_threshold, synth_lte_downlink, synth_nr_ssb,
)
from tests.helpers.channels import awgn, frequency_offset
from radio.recording import read_sigmf, write_sigmf
from testbed.cmd_analyze import analyze


def _re_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    return awgn(x, 10 ** (-snr_db / 20), rng)


def _lte_capture(rng: np.random.Generator, n_rb: int, duration_s: float, snr_db: float, cfo_hz: float
                 ) -> tuple[np.ndarray, float, int, int]:
    """Random cell id and frame timing; returns (samples, rate, cell id, expected frame start)."""
    cell_id = int(rng.integers(0, 504))
    _, fs = synth_lte_downlink(cell_id, n_rb, n_frames=0.01, rng=rng)  # the native rate of n_rb
    frame = int(round(0.01 * fs))
    offset = int(rng.integers(0, frame))
    x, fs = synth_lte_downlink(cell_id, n_rb, n_frames=duration_s / 0.01, rng=rng, frame_offset=offset)
    x = _re_noise(frequency_offset(x, cfo_hz, fs, phase=float(rng.uniform(0, 2 * np.pi))), snr_db, rng)
    return x, fs, cell_id, (-offset) % frame


def _nr_capture(rng: np.random.Generator, scs: float, fs: float, ssb_offset: int, cfo_hz: float, snr_db: float
                ) -> tuple[np.ndarray, int, list[int]]:
    """Random cell id, SSBs (2 slots, symbols 2..5) after a random lead; returns (samples, cell id, PSS body
    starts in samples)."""
    cell_id = int(rng.integers(0, 1008))
    x, fs = synth_nr_ssb(cell_id, scs, sample_rate_hz=fs, rng=rng, ssb_subcarrier_offset=ssb_offset)
    nfft = int(round(fs / scs))
    cp = 144 * nfft // 2048
    lead = int(rng.integers(0, 14 * (nfft + cp)))
    x = np.concatenate([np.zeros(lead), x, np.zeros(nfft)])
    x = _re_noise(frequency_offset(x, cfo_hz, fs, phase=float(rng.uniform(0, 2 * np.pi))), snr_db, rng)
    starts = [lead + (14 * b + 2) * (nfft + cp) + cp for b in range(2)]
    return x, cell_id, starts


def _write(tmp_path, name: str, x: np.ndarray, fs: float):
    meta, _ = write_sigmf(tmp_path / name, np.asarray(x, dtype=np.complex64), rate_sps=fs, lo_hz=2.6e9,
                          radio="synthetic", driver="test")
    return meta


# ---------------------------------------------------------------------------------------------------------------
# The statistics the thresholds rest on


def test_pss_statistic_on_white_noise_follows_its_beta_law():
    # rho = |<y, d>|^2 / (L |y|^2) of i.i.d. circular Gaussian y is Beta(1, L-1): P(rho > g) = (1 - g)^(L-1).
    rng = np.random.default_rng(5)
    length, draws = 62, 100_000
    y = rng.standard_normal((draws, length)) + 1j * rng.standard_normal((draws, length))
    d = np.exp(1j * rng.uniform(0, 2 * np.pi, length))
    rho = np.abs(y @ np.conj(d)) ** 2 / (length * np.sum(np.abs(y) ** 2, axis=1))
    for g in (0.03, 0.06, 0.1):
        expected = float(pss_tail(g, length))
        assert expected == pytest.approx((1 - g) ** (length - 1), rel=1e-9)
        assert np.mean(rho > g) == pytest.approx(expected, rel=5 * math.sqrt(1 / (draws * expected)))
    # The threshold spends the false-alarm budget over all hypotheses (union bound).
    g = pss_threshold(10 ** 6, length)
    assert 10 ** 6 * (1 - g) ** (length - 1) == pytest.approx(0.005, rel=1e-6)
    assert pss_threshold(10 ** 7, length) > g  # a wider search needs a higher peak


def test_sss_statistic_on_noise_follows_its_beta_law():
    # u = Re<z, s> / sqrt(|z|^2 / 2) for circular Gaussian z: u^2 / (2L) ~ Beta(1/2, L - 1/2).
    rng = np.random.default_rng(6)
    length, draws = 62, 100_000
    z = rng.standard_normal((draws, length)) + 1j * rng.standard_normal((draws, length))
    s = rng.choice([-1.0, 1.0], length)
    u = np.real(z @ s) / np.sqrt(0.5 * np.sum(np.abs(z) ** 2, axis=1))
    th = sss_threshold(1, length, false_alarm=0.01)
    assert np.mean(u > th) == pytest.approx(0.01, rel=0.15)  # 1000 expected exceedances: 3 sigma is 10 %
    assert sss_threshold(336, length) > sss_threshold(1, length)


# ---------------------------------------------------------------------------------------------------------------
# Detection at random timing, frequency and SSB position


@pytest.mark.parametrize("seed,n_rb,duration_s", [(11, 6, 0.0052), (12, 6, 0.02), (13, 25, 0.0052), (14, 25, 0.01)])
def test_lte_cell_found_at_random_timing_and_cfo(seed, n_rb, duration_s):
    # 1.92 MS/s (6 RB) and 7.68 MS/s (25 RB); 5.2 ms holds exactly one PSS/SSS pair wherever the frame starts.
    rng = np.random.default_rng(seed)
    cfo = float(rng.uniform(-8e3, 8e3))
    x, fs, cell_id, frame_start = _lte_capture(rng, n_rb, duration_s, snr_db=5.0, cfo_hz=cfo)
    cell = lte_cell_search(x, fs)
    assert cell.cell_id == cell_id
    assert cell.cfo_hz == pytest.approx(cfo, abs=150)
    frame = 0.01 * fs
    error = abs(cell.frame_start - frame_start) % frame
    assert min(error, frame - error) <= fs / 1.92e6
    assert cell.pss_metric >= cell.pss_threshold and cell.sss_metric >= cell.sss_threshold
    positions = int(round(duration_s * 1.92e6)) - LTE_MIN_SAMPLES + 1  # PSS timings with the SSS inside
    assert cell.pss_windows in (positions // 9600, positions // 9600 + 1)  # every PSS 5 ms apart is summed


@pytest.mark.parametrize("seed,scs,fs,ssb_offset", [(21, 15e3, 7.68e6, 20), (22, 15e3, 7.68e6, -27),
                                                     (23, 30e3, 15.36e6, 15), (24, 30e3, 15.36e6, -12)])
def test_nr_ssb_found_off_centre(seed, scs, fs, ssb_offset):
    # SSB centres 300, -405, 450 and -360 kHz from the recording centre, plus a random CFO.
    rng = np.random.default_rng(seed)
    cfo = float(rng.uniform(-3e3, 3e3))
    x, cell_id, starts = _nr_capture(rng, scs, fs, ssb_offset, cfo, snr_db=5.0)
    cell = nr_cell_search(x, fs)
    assert (cell.cell_id, cell.scs_hz) == (cell_id, scs)
    # The fine frequency comes from the CP of the 4 SSB symbols (72 sample pairs at 256 x SCS): at 5 dB its
    # standard deviation is about 0.011 SCS.
    assert cell.ssb_offset_hz == pytest.approx(ssb_offset * scs + cfo, abs=0.04 * scs)
    assert min(abs(cell.pss_start - s) for s in starts) <= 1.5 * fs / (256 * scs) + 1
    assert cell.pss_metric >= cell.pss_threshold and cell.sss_metric >= cell.sss_threshold


def test_nr_ssb_through_analyze_reports_offset_and_thresholds(tmp_path):
    rng = np.random.default_rng(31)
    x, cell_id, _ = _nr_capture(rng, 30e3, 15.36e6, -14, 1234.0, snr_db=3.0)
    res = CliRunner().invoke(analyze, [str(_write(tmp_path, "nr", x, 15.36e6)), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert (r["status"], r["rat"], r["cell_id"], r["scs_hz"]) == ("cell", "nr", cell_id, 30e3)
    assert r["ssb_offset_hz"] == pytest.approx(-14 * 30e3 + 1234.0, abs=600)
    assert r["pss_metric"] >= r["pss_threshold"] > 0 and r["false_alarm_per_recording"] == 0.01


# ---------------------------------------------------------------------------------------------------------------
# No cell: noise only, the other RAT


@pytest.mark.parametrize("seed,fs", [(41, 1.92e6), (42, 3.84e6), (43, 7.68e6)])
def test_noise_only_recording_says_no_cell_and_exits_2(tmp_path, seed, fs):
    rng = np.random.default_rng(seed)
    n = int(0.006 * fs)
    x = 0.1 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    res = CliRunner().invoke(analyze, [str(_write(tmp_path, "noise", x, fs)), "--json"])
    assert res.exit_code == 2, res.output
    r = json.loads([line for line in res.output.splitlines() if line.startswith("{")][-1])
    assert r["status"] == "no cell" and r["rat"] is None
    assert {c["rat"] for c in r["candidates"]} == {"lte", "nr"}
    for c in r["candidates"]:
        assert c["pss_metric"] < c["pss_threshold"]
    assert "no cell found" in res.output and "threshold" in res.output


@pytest.mark.parametrize("seed", [51, 52])
def test_lte_recording_gives_no_nr_cell(seed):
    rng = np.random.default_rng(seed)
    x, fs, _, _ = _lte_capture(rng, 25, 0.006, snr_db=20.0, cfo_hz=0.0)
    with pytest.raises(NoCellFound) as info:
        nr_cell_search(x, fs)
    assert info.value.candidate["pss_metric"] < info.value.candidate["pss_threshold"]


@pytest.mark.parametrize("seed,scs,fs", [(61, 15e3, 7.68e6), (62, 30e3, 7.68e6)])
def test_nr_recording_gives_no_lte_cell(seed, scs, fs):
    rng = np.random.default_rng(seed)
    x, _, _ = _nr_capture(rng, scs, fs, 0, 0.0, snr_db=20.0)
    x = np.concatenate([x, _re_noise(np.zeros(int(0.004 * fs)), 20.0, rng)])  # long enough for an LTE search
    with pytest.raises(NoCellFound):
        lte_cell_search(x, fs)


def test_too_short_for_any_cell_search_is_bad_input(tmp_path):
    x = np.ones(200, dtype=np.complex64)
    res = CliRunner().invoke(analyze, [str(_write(tmp_path, "short", x, 1.92e6)), "--rat", "lte"])
    assert res.exit_code == 2 and "allowed" in res.output and str(LTE_MIN_SAMPLES) in res.output


# ---------------------------------------------------------------------------------------------------------------
# The real recording


def test_shared_recording_and_its_5ms_cuts_give_cell_1(lte_recording, tmp_path):
    r = analyze_recording(str(lte_recording))
    assert (r["status"], r["rat"], r["cell_id"]) == ("cell", "lte", 1)
    assert r["pss_metric"] > r["pss_threshold"] and r["sss_metric"] > r["sss_threshold"]
    rec = read_sigmf(str(lte_recording))
    # The first half-frame holds subframe 0's SSS/PSS; the second holds subframe 5's, so the frame starts 5 ms
    # before the cut.
    for start, frame_start in ((0, r["frame_start"]), (9600, (r["frame_start"] - 9600) % 19200)):
        meta = _write(tmp_path, f"cut{start}", rec.samples[start:start + 9600], rec.rate_sps)
        cut = analyze_recording(str(meta), rat="lte")
        assert (cut["status"], cut["cell_id"], cut["frame_start"]) == ("cell", 1, frame_start)
        assert cut["pss_windows"] == 1 and abs(cut["cfo_hz"] - r["cfo_hz"]) < 100


# ---------------------------------------------------------------------------------------------------------------
# Statistics: detection rate vs SNR, false alarms on noise and on the other RAT


@pytest.mark.slow
def test_detection_rate_vs_snr_and_false_alarm_rate():
    rng = np.random.default_rng(2024)
    detect: dict[tuple[str, float], float] = {}
    trials = 40
    for snr in (-9.0, -3.0, 0.0):
        hits_lte = hits_nr = 0
        for _ in range(trials):
            x, fs, cell_id, _ = _lte_capture(rng, 6, 0.0052, snr, float(rng.uniform(-5e3, 5e3)))
            try:
                hits_lte += lte_cell_search(x, fs).cell_id == cell_id
            except NoCellFound:
                pass
            x, cell_id, _ = _nr_capture(rng, 15e3, 3.84e6, int(rng.integers(-8, 9)), float(rng.uniform(-3e3, 3e3)),
                                        snr)
            try:
                hits_nr += nr_cell_search(x, 3.84e6, scs_hz=(15e3,)).cell_id == cell_id
            except NoCellFound:
                pass
        detect[("lte", snr)], detect[("nr", snr)] = hits_lte / trials, hits_nr / trials
    print("detection rate (cell id right) vs RE SNR:", detect)
    for rat in ("lte", "nr"):
        assert detect[(rat, 0.0)] >= 0.95
        assert detect[(rat, -9.0)] <= detect[(rat, -3.0)] <= detect[(rat, 0.0)] + 0.05

    # False alarms: 300 recordings per case; at a true rate of 1 % at least one false alarm would come with
    # probability 0.95, so none resolves P_FA <= 1 %.
    runs = 300
    false_alarms = {"lte on noise": 0, "nr on noise": 0, "nr on lte": 0, "lte on nr": 0}
    for _ in range(runs):
        noise = 0.1 * (rng.standard_normal(int(0.0052 * 1.92e6)) + 1j * rng.standard_normal(int(0.0052 * 1.92e6)))
        for name, search in (("lte on noise", lte_cell_search), ("nr on noise", nr_cell_search)):
            try:
                search(noise, 1.92e6)
                false_alarms[name] += 1
            except NoCellFound:
                pass
        x, fs, _, _ = _lte_capture(rng, 6, 0.0052, 10.0, 0.0)
        try:
            nr_cell_search(x, fs)
            false_alarms["nr on lte"] += 1
        except NoCellFound:
            pass
        x, _, _ = _nr_capture(rng, 15e3, 3.84e6, int(rng.integers(-8, 9)), 0.0, 10.0)
        x = np.concatenate([x, _re_noise(np.zeros(int(0.004 * 3.84e6)), 10.0, rng)])
        try:
            lte_cell_search(x, 3.84e6)
            false_alarms["lte on nr"] += 1
        except NoCellFound:
            pass
    print(f"false alarms in {runs} recordings:", false_alarms)
    assert not any(false_alarms.values()), false_alarms
