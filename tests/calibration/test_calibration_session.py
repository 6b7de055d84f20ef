"""Calibration sessions on simulated radios whose front ends are known: the TX/RX EVM split (kappa_t, kappa_r),
phi_hwi against the twin's nominal model, ACLR against an independent long capture, and the handling of sweep
points that fail.

The truths are the simulator's ``tx_evm`` / ``rx_evm`` (its additive-distortion model). Where a test isolates the
distortion, every other impairment that adds error (IQ imbalance, phase noise, LO leakage, PA compression, coarse
converters) is switched off; thermal noise stays, and the session must remove it itself.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import pytest

from calibration.measurements import band_power, power_spectral_density
from calibration.settings import CalibrationSettings
from calibration.session import full_band_plan, run_calibration
from radio.errors import RadioTimeout
from radio.guard import TxGuard
from radio.ofdm import build_slot, numerology
from radio.sim import SimConfig, SimulatedAir
from radio.sim.frontend import DISTORTION_BANDWIDTH_RATIO

NAMES = ("sim0", "sim1")
GUARD = {"allowed_bands": [[2.4e9, 2.4835e9]], "max_tx_gain_db": 0}
ONLY_DISTORTION = {"iq_gain_db": 0.0, "iq_phase_deg": 0.0, "phase_noise_dbc_hz": float("-inf"),
                   "lo_leakage_dbc": float("-inf"), "pa_sat_dbfs": float("inf"), "dac_bits": 16, "adc_bits": 16}
NOMINAL_HWI = 0.05 ** 2 + 0.05 ** 2
"""kappa_t^2 + kappa_r^2 of the twin's nominal model (CalibrationSettings().nominal)."""
REL_TOL = 0.10
PHI_TOL = 0.05

# Seeds of the log-uniform truth draws. The two of the default run were picked among the first 40 seeds so that
# phi_hwi's truth lies near both ends of the range the twin meets (-0.65 and +1.80); the slow ones are 100..105
# as they come (phi_hwi 0.17 .. 1.67).
DEFAULT_SEEDS = (25, 4)
DEFAULT_RANGE = (0.02, 0.12)
SLOW_SEEDS = (100, 101, 102, 103, 104, 105)
SLOW_RANGE = (0.01, 0.15)

Truth = dict[str, tuple[float, float]]
"""radio name -> (tx_evm, rx_evm)."""


def draw_truth(seed: int, low: float, high: float) -> Truth:
    """tx_evm and rx_evm of both radios, each log-uniform in [low, high]."""
    v = np.exp(np.random.default_rng(seed).uniform(math.log(low), math.log(high), 4))
    return {"sim0": (float(v[0]), float(v[1])), "sim1": (float(v[2]), float(v[3]))}


def in_band_fraction(num: str = "lte5") -> float:
    """Share of the simulator's multiplicative distortion that lands on the carrier's used subcarriers.

    The distortion ``x m(t)`` has the signal's spectrum convolved with m's Gaussian spectrum (standard deviation
    DISTORTION_BANDWIDTH_RATIO x rate), so a little of it spills beyond the band edges and into the DC null, where no receiver measures it.
    What a receiver can see, and the twin needs, is the in-band part: tx_evm^2 times this fraction.
    """
    geo = numerology(num)
    rate, scs = geo.sample_rate_hz, geo.scs_hz
    half = geo.n_rb * 6
    used = np.array([k for k in range(-half, half + 1) if k != 0])  # LTE: DC subcarrier empty
    step = scs / 16
    f = np.arange(-rate / 2, rate / 2, step)
    occupied = np.zeros_like(f)
    for k in used:
        occupied[(f >= (k - 0.5) * scs) & (f < (k + 0.5) * scs)] = 1.0
    sigma = DISTORTION_BANDWIDTH_RATIO * rate
    kernel_f = np.arange(-6 * sigma, 6 * sigma + step, step)
    kernel = np.exp(-0.5 * (kernel_f / sigma) ** 2)
    spread = np.convolve(occupied, kernel / kernel.sum(), mode="same")
    return float(np.sum(spread * occupied) / np.sum(occupied))


IN_BAND = in_band_fraction()
"""About 0.976 for LTE 5 MHz: the measurable share of tx_evm^2 and rx_evm^2."""


def phi_hwi_true(truth: Truth) -> float:
    """Mean over the two directed pairs of the in-band (tx_evm_T^2 + rx_evm_R^2) over the nominal sum, minus one."""
    pairs = [("sim0", "sim1"), ("sim1", "sim0")]
    return float(np.mean([IN_BAND * (truth[t][0] ** 2 + truth[r][1] ** 2) for t, r in pairs])) / NOMINAL_HWI - 1.0


def open_air(table: dict[str, Any], seed: int) -> tuple[SimulatedAir, dict[str, Any]]:
    air = SimulatedAir(SimConfig.from_table(table, "test"), seed=seed)
    guard = TxGuard.from_config(GUARD)
    return air, {n: air.radio(n, guard) for n in NAMES}


def distortion_only_table(truth: Truth) -> dict[str, Any]:
    return {**ONLY_DISTORTION,
            "radios": {n: {"tx_evm": tx, "rx_evm": rx} for n, (tx, rx) in truth.items()}}


@functools.lru_cache(maxsize=None)
def evm_record(seed: int, low: float, high: float, loopback: bool,
               sweep: tuple[tuple[str, Any], ...] = ()) -> tuple[Truth, dict[str, Any]]:
    """The record of an EVM-only session (the default EVM sweep unless ``sweep`` changes it) on radios with a drawn
    truth; cached, so the kappa and phi tests share one session per truth."""
    truth = draw_truth(seed, low, high)
    _, radios = open_air(distortion_only_table(truth), seed)
    settings = CalibrationSettings(leakage_levels_db=(), aclr_levels_db=(), mcs_levels_db=(), loopback=loopback,
                                   **dict(sweep))
    return truth, run_calibration(radios, settings)


def kappa_failures(truth: Truth, record: dict[str, Any], *, accept_interval: bool) -> list[str]:
    """Every kappa whose estimate misses its truth by more than REL_TOL (and, when ``accept_interval``, whose 95 %
    interval also misses it), with the numbers."""
    kappa = record.results["kappa"]
    bad = []
    for which, index in (("kappa_t", 0), ("kappa_r", 1)):
        for name in NAMES:
            true = truth[name][index] * math.sqrt(IN_BAND)
            e = kappa[which][name]
            rel = e["value"] / true - 1.0
            inside = e["ci95"][0] <= true <= e["ci95"][1]
            if abs(rel) > REL_TOL and not (accept_interval and inside):
                bad.append(f"{which}[{name}]: true {true:.4f}, estimate {e['value']:.4f} "
                           f"(95 % [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]), relative error {rel:+.1%}")
    return bad


# ---------------------------------------------------------------------------------------------------------------
# kappa split and phi_hwi
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_kappa_split_recovers_tx_and_rx_evm(seed):
    """With loopback every transmission is heard by two receivers; the error they share is the transmitter's
    distortion, so kappa_t and kappa_r of both radios come out separately and within 10 % of the simulator's
    tx_evm / rx_evm (log-uniform truths in [0.02, 0.12])."""
    truth, record = evm_record(seed, *DEFAULT_RANGE, True)
    assert record.results["kappa"]["separated"] is True
    assert not any("equal split" in n for n in record.notes)
    bad = kappa_failures(truth, record, accept_interval=False)
    assert not bad, f"seed {seed}, truth {truth}:\n" + "\n".join(bad)


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_phi_hwi_matches_distortion_truth(seed):
    """phi_hwi is the measured TX+RX distortion of the directed pairs over the nominal 0.05^2 + 0.05^2, minus one:
    it must match the simulator's (tx_evm_T^2 + rx_evm_R^2) averaged over the pairs within 0.05, and its 95 %
    interval must be a proper interval around its value."""
    truth, record = evm_record(seed, *DEFAULT_RANGE, True)
    phi = record.results["phi_hwi"]
    true = phi_hwi_true(truth)
    assert phi["ci95"][0] <= phi["value"] <= phi["ci95"][1]
    assert abs(phi["value"] - true) <= PHI_TOL, (
        f"seed {seed}, truth {truth}: phi_hwi true {true:+.4f}, estimate {phi['value']:+.4f} "
        f"(95 % [{phi['ci95'][0]:+.4f}, {phi['ci95'][1]:+.4f}])")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_kappa_split_and_phi_over_wider_truths(seed):
    """Six truths log-uniform in [0.01, 0.15]: each kappa within 10 % of its truth or with the truth inside its
    95 % interval, and phi_hwi within 0.05 of its truth."""
    truth, record = evm_record(seed, *SLOW_RANGE, True)
    bad = kappa_failures(truth, record, accept_interval=True)
    phi = record.results["phi_hwi"]
    true = phi_hwi_true(truth)
    if abs(phi["value"] - true) > PHI_TOL:
        bad.append(f"phi_hwi: true {true:+.4f}, estimate {phi['value']:+.4f} "
                   f"(95 % [{phi['ci95'][0]:+.4f}, {phi['ci95'][1]:+.4f}])")
    assert not bad, f"seed {seed}, truth {truth}:\n" + "\n".join(bad)


def test_without_loopback_the_split_is_equal_and_the_sum_is_right():
    """Two radios without loopback: no transmission is heard twice, so TX and RX distortion cannot be told apart.
    The record says the split is an equal one, and kappa_t(T)^2 + kappa_r(R)^2 of each directed pair still
    matches tx_evm_T^2 + rx_evm_R^2 within 10 % (a lighter EVM sweep: five levels, three slots each)."""
    truth, record = evm_record(1, *DEFAULT_RANGE, False,
                               (("evm_levels_db", (-24.0, -18.0, -12.0, -6.0, 0.0)), ("slots_per_point", 3)))
    kappa = record.results["kappa"]
    assert kappa["separated"] is False
    assert any("equal split" in n for n in record.notes), record.notes
    for t, r in (("sim0", "sim1"), ("sim1", "sim0")):
        est = kappa["kappa_t"][t]["value"] ** 2 + kappa["kappa_r"][r]["value"] ** 2
        true = truth[t][0] ** 2 + truth[r][1] ** 2
        assert abs(est / true - 1.0) <= REL_TOL, f"{t}->{r}: true sum {true:.5f}, estimated {est:.5f}"
    # Each half of the split is the same number: the sum says nothing about where it comes from.
    assert kappa["kappa_t"]["sim0"]["value"] == pytest.approx(kappa["kappa_r"]["sim1"]["value"], rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# ACLR
# ---------------------------------------------------------------------------------------------------------------

def reference_aclr(tx: Any, rx: Any, settings: CalibrationSettings, level_db: float,
                   capture_slots: int) -> tuple[float, float]:
    """ACLR1/ACLR2 (dB, the worse side of each) of ``tx`` seen by ``rx`` from one long wide capture with the
    transmitter on and one with it off, the off PSD subtracted. The difference is integrated as it is (no clipping
    of negative bins), so the noise removal is unbiased however far below the noise the leakage lies."""
    wide = settings.wide_rate_sps
    num = numerology(settings.numerology)
    width, spacing = num.n_rb * 12 * num.scs_hz, num.channel_bw_hz
    plan = full_band_plan(settings.numerology, level_db, rate_sps=wide, tx_id=1)
    sent = build_slot(plan, 0)
    n = capture_slots * plan.slot_length
    tx.configure(rate_sps=wide, bandwidth_hz=wide, lo_hz=settings.lo_hz)
    rx.configure(rate_sps=wide, bandwidth_hz=wide, lo_hz=settings.lo_hz, rx_lo_hz=settings.lo_hz)
    tx.stop_transmit()
    rx.receive(plan.slot_length)
    quiet, _ = rx.receive(n)
    tx.transmit(sent.waveform, cyclic=True, occupied_bw_hz=plan.occupied_bw_hz)
    rx.receive(plan.slot_length)
    on, meta = rx.receive(n)
    tx.stop_transmit()
    assert meta.clip_count == 0
    f, p_on = power_spectral_density(on, wide, nfft=4096)
    _, p_off = power_spectral_density(quiet, wide, nfft=4096)
    net = p_on - p_off
    main = band_power(f, net, 0.0, width)
    aclr = {k: 10 * math.log10(main / band_power(f, net, k * spacing, width)) for k in (-2, -1, 1, 2)}
    return min(aclr[-1], aclr[1]), min(aclr[-2], aclr[2])


def test_aclr_matches_a_long_reference_capture():
    """On the default simulated front ends (PA regrowth, phase noise, IQ imbalance, 12-bit converters) the
    session's ACLR1/ACLR2 at each power level agree within 0.5 dB with ACLR computed independently from a capture
    20 times longer, the transmitter-off noise PSD removed; ACLR improves as the carrier power drops."""
    _, radios = open_air({}, seed=5)
    settings = CalibrationSettings(evm_levels_db=(-12.0, -6.0, 0.0), slots_per_point=1, leakage_levels_db=(),
                                   mcs_levels_db=(), aclr_levels_db=(-6.0, 0.0))
    record = run_calibration(radios, settings)
    rows = {row["level_db"]: row for row in record.results["aclr"]["sim0->sim1"]}
    assert sorted(rows) == [-6.0, 0.0]
    got = {}
    for level in settings.aclr_levels_db:
        ref1, ref2 = reference_aclr(radios["sim0"], radios["sim1"], settings, level,
                                    20 * settings.aclr_capture_slots)
        got[level] = (rows[level]["aclr1_db"], ref1, rows[level]["aclr2_db"], ref2)
    message = "; ".join(f"level {lv:g} dB: ACLR1 session {a1:.2f} / reference {r1:.2f}, ACLR2 session {a2:.2f} / "
                        f"reference {r2:.2f}" for lv, (a1, r1, a2, r2) in got.items())
    for a1, r1, a2, r2 in got.values():
        assert abs(a1 - r1) <= 0.5 and abs(a2 - r2) <= 0.5, message
        assert 20.0 < r1 < r2, message
    assert got[-6.0][1] > got[0.0][1] + 1.0, message


# ---------------------------------------------------------------------------------------------------------------
# Failing sweep points
# ---------------------------------------------------------------------------------------------------------------

SMALL = dict(evm_levels_db=(-12.0, -6.0, 0.0), slots_per_point=1, leakage_levels_db=(0.0,),
             aclr_levels_db=(0.0,), aclr_capture_slots=2, mcs_levels_db=())
SWEEPS = ("evm", "leakage", "aclr")


def failing_receive(radio: Any, fails: Callable[[Any], bool]) -> dict[str, int]:
    """Make ``radio.receive`` raise RadioTimeout (consuming nothing) on the calls where ``fails(radio)``."""
    original = radio.receive
    count = {"calls": 0, "failed": 0}

    def receive(num_samples: int, **kwargs: Any) -> Any:
        count["calls"] += 1
        if fails(radio):
            count["failed"] += 1
            raise RadioTimeout(f"{radio.name}: injected timeout on receive {count['calls']}")
        return original(num_samples, **kwargs)

    radio.receive = receive
    return count


def track_sweeps(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Follow which sweep of the session is running (``state["sweep"]``: "evm", "leakage", "aclr" or None)."""
    import calibration.session as session

    state: dict[str, Any] = {"sweep": None}
    for name in SWEEPS:
        original = getattr(session, f"_{name}_sweep")

        def wrapped(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            state["sweep"] = _name
            try:
                return _original(*args, **kwargs)
            finally:
                state["sweep"] = None

        monkeypatch.setattr(session, f"_{name}_sweep", wrapped)
    return state


def sweep_counts(record: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in record.raw["points"]:
        key = p["sweep"] if p["sweep"] != "evm" else f"evm:{p['tx']}:{p['level_db']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_timeout_is_retried_and_the_record_is_complete(monkeypatch):
    """A receiver that times out once in each sweep (its second receive call of the EVM, leakage and ACLR sweep)
    costs a retry of those points, not the points: the record has every point and no note of a dropped one."""
    _, radios = open_air(distortion_only_table({"sim0": (0.04, 0.03), "sim1": (0.06, 0.02)}), seed=7)
    settings = CalibrationSettings(**SMALL)
    state = track_sweeps(monkeypatch)
    calls: dict[str | None, int] = {}

    def fails(_radio: Any) -> bool:
        sweep = state["sweep"]
        calls[sweep] = calls.get(sweep, 0) + 1
        return sweep in SWEEPS and calls[sweep] == 2

    count = failing_receive(radios["sim1"], fails)
    record = run_calibration(radios, settings)
    assert count["failed"] == 3 and sorted(calls) == sorted(SWEEPS) and min(calls.values()) > 2, calls
    assert not any("dropped" in n for n in record.notes), record.notes
    counts = sweep_counts(record)
    # Per transmitter and level: one total per listener (2, loopback) and one cross term.
    assert all(counts[f"evm:{t}:{lv}"] == 3 for t in NAMES for lv in SMALL["evm_levels_db"]), counts
    assert counts["leakage"] == 2 and counts["aclr"] == 2, counts
    assert sorted(record.results["aclr"]) == ["sim0->sim1", "sim1->sim0"]
    assert record.results["kappa"]["kappa_t"]["sim1"]["value"] == pytest.approx(0.06, rel=REL_TOL)


def test_a_receiver_failing_every_aclr_capture_drops_those_points_only():
    """sim1 times out whenever it receives at the ACLR sweep's wide rate: the ACLR points sim0->sim1 are dropped
    after 1 + retries attempts each and the notes say so, the other direction and the EVM fit are kept, and both
    radios are back at the carrier's own rate afterwards."""
    _, radios = open_air(distortion_only_table({"sim0": (0.04, 0.03), "sim1": (0.06, 0.02)}), seed=8)
    settings = CalibrationSettings(**{**SMALL, "leakage_levels_db": (), "aclr_levels_db": (-6.0, 0.0)})
    count = failing_receive(radios["sim1"], lambda r: r.settings.rate_sps == settings.wide_rate_sps)
    record = run_calibration(radios, settings)
    dropped = [n for n in record.notes if n.startswith("dropped ACLR point sim0->sim1")]
    assert len(dropped) == 2 and all("RadioTimeout" in n and "3 attempts" in n for n in dropped), record.notes
    # Plus sim1's loopback capture of each sim1->sim0 point (the ACLR's second receiver): those points stay,
    # without the analyser floor removed.
    assert count["failed"] == 2 * (settings.retries + 1) + len(settings.aclr_levels_db)
    assert sum("no second capture" in n for n in record.notes) == len(settings.aclr_levels_db), record.notes
    assert list(record.results["aclr"]) == ["sim1->sim0"]
    assert len(record.results["aclr"]["sim1->sim0"]) == 2
    assert record.results["kappa"]["separated"] is True
    rate = numerology(settings.numerology).sample_rate_hz
    assert all(r.settings.rate_sps == rate for r in radios.values())
