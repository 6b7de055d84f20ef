"""A calibration session on real or simulated radios: sweeps, fits and one self-contained record.

What is measured (every directed pair of the radios given; a radio that can hear itself also in loopback):

1. **EVM versus TX power.** Each transmitter sends a full-band OFDM slot (QPSK, pilots) cyclically at several
   levels; every listener (the other radios, and the transmitter itself when it supports loopback) receives the
   same air time. From each receiver's equalised symbols ``e = y_eq - s`` the session keeps the error power
   ``mean |e|^2`` and, for every two receivers of the same transmission, ``Re mean(e_1 conj(e_2))``: the part of
   the error the receivers share, which is the transmitter's distortion. :func:`calibration.fit.fit_kappa` solves
   for kappa_t of each transmitter and kappa_r of each receiver.
   The EVM the record quotes is the 3GPP one (TS 36.104 Annex E: equaliser from the reference symbols averaged
   over the capture, EVM window W of the carrier's table, the larger of the two window extremities); the link
   receiver's tracked EVM (per-symbol common phase removed) is kept beside it as a diagnostic and is what feeds
   kappa (see :data:`KAPPA_INPUT_REASON`): the twin's kappa is the distortion its links suffer.
2. **Leakage between RB groups** (the twin's RRB-level ACIR): a transmitter sends one link on a group of RBs in
   the middle of the carrier; the receiver measures the power on the groups at offsets +-1 and +-2 (the same FFT
   timing, noise floor from a capture with the transmitter off removed).
3. **ACLR, ACS and ACIR** (TS 36.104 / 38.104 definitions): the transmitter sends the carrier at a wide sample rate;
   the receiver measures ACLR1/2 on a wide capture (noise floor removed), then tunes its narrow channel to the
   adjacent channels to measure how much of the transmitter lands there (ACIR); ACS = 1 / (1/ACIR - 1/ACLR).
   The receiving radio is the analyser, so its own distortion, phase noise and LNA products add to the adjacent
   channels. A second receiver captures the same air time (the transmitter in loopback, else a third radio); the
   cross-spectrum of the two keeps only what they share, the transmitter's emission, which is its ACLR; what the
   receiver measured beyond it is its floor. Chosen over solving the power equations of both directions: with two
   radios those (A->B, B->A and the loopbacks) leave one unknown free, as the TX/RX split of kappa does without a
   shared observation. Each ACLR carries a 95 % interval from blocks of the capture, and one within
   ANALYSER_LIMITED_MARGIN_DB of the floor is flagged analyser-limited (a record field and a note).
4. **phi** against the twin's nominal model (its paper defaults unless told): phi_hwi from the distortion
   (kt^2 + kr^2 of every directed pair of different radios, per power) against nominal kappa; phi_aci from the
   RB-group leakage against the nominal ACIR1/ACIR2 (a victim with occupied neighbours at +-1 and +-2); the joint
   phi from their sum.

Robustness: a sweep point that fails (timeout, lost sync, clipping) is retried ``retries`` times, then dropped
and noted in the record. Nothing is written here: the caller stores the record in one transaction.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from calibration.fit import EvmObservation, KappaFit, combine_phi, fit_kappa, fit_ratio
from calibration.measurements import (ADJACENT_OFFSETS, Evm3gpp, acir_from_channel_powers, acs_from_acir_db,
                                      channel_power, common_adjacent_ratios, evm_3gpp, evm_window_length, net_aclr)
from calibration.record import CalibrationRecord, LinkAbstraction, TwinParameters
from calibration.settings import CalibrationSettings, settings_key
from radio.base import Radio
from radio.errors import RadioFault, RadioTimeout
from radio.ofdm import Link, SlotPlan, build_slot, numerology, receive_slot
from radio.ofdm.numerology import Numerology
from radio.ofdm.receiver import rb_power_profile
from radio.ofdm.slot import REFERENCE_SYMBOLS, SYMBOLS_PER_SLOT, TxSlot, geometry

__all__ = ["LinkAbstractionFit", "SweepPointFailed", "run_calibration"]


LinkAbstractionFit = Callable[[Sequence[Mapping[str, Any]]], LinkAbstraction]
"""Fits the twin's decoder gains to the MCS sweep's code-block outcomes (see :func:`run_calibration`)."""


class SweepPointFailed(RuntimeError):
    """A sweep point could not be measured (lost sync, clipping, nothing received)."""


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------

def full_band_plan(num: str, level_db: float, rate_sps: float | None = None, tx_id: int = 0) -> SlotPlan:
    """The calibration's test signal: one QPSK 1/2 link over every RB of numerology ``num`` at ``level_db``."""
    n_rb = numerology(num).n_rb
    return SlotPlan(num, (Link("cal", tuple(range(n_rb)), "qpsk", "1/2", level_db),), tx_id=tx_id,
                    sample_rate_hz=rate_sps, payload_seed=7919)


def _group_plan(num: str, level_db: float, group: int) -> tuple[SlotPlan, int]:
    n_rb = numerology(num).n_rb
    centre = n_rb // 2 - group // 2
    return SlotPlan(num, (Link("leak", tuple(range(centre, centre + group)), "qpsk", "1/2", level_db),),
                    payload_seed=7927), centre


def plan_rms_power(plan: SlotPlan) -> float:
    """RMS power (re full scale) of the plan's waveform as the slot scaling defines it."""
    n_rb = plan.numerology.n_rb
    used = sum(len(l.rbs) * 10 ** (l.power_db / 10) for l in plan.links)
    return 10 ** (-plan.backoff_db / 10) * used / n_rb


def _retry(attempts: int, notes: list[str], what: str, action: Callable[[], Any]) -> Any:
    last: Exception | None = None
    for attempt in range(attempts + 1):
        try:
            return action()
        except (SweepPointFailed, RadioTimeout, RadioFault, ValueError) as e:
            last = e
    notes.append(f"dropped {what} after {attempts + 1} attempts: {type(last).__name__}: {last}")
    return None


def _check_clean(radio: Radio, report: Any, meta: Any) -> None:
    if getattr(report, "clipped", 0):
        raise SweepPointFailed(f"{radio.name}: {report.clipped} TX samples clipped")
    if getattr(meta, "clip_count", 0):
        raise SweepPointFailed(f"receiver clipped {meta.clip_count} samples (lower the RX gain)")
    if getattr(meta, "overflow_count", 0):
        raise SweepPointFailed(f"receiver overflowed {meta.overflow_count} times")


# --------------------------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------------------------

def evm_window_of(num: Numerology, rate_sps: float) -> int | None:
    """The 3GPP EVM window W (samples at ``rate_sps``) of a carrier, scaled from its standard rate; None where the
    spec table is not at hand (NR FR1)."""
    try:
        w = evm_window_length(num.rat, num.fft_size)
    except ValueError:
        return None
    return max(int(round(w * rate_sps / num.sample_rate_hz)), 1)


def _evm_3gpp_of_capture(samples: np.ndarray, plan: SlotPlan, sent: TxSlot, starts: Sequence[int],
                         cfo_hz: float, window: int | None) -> Evm3gpp:
    """The 3GPP EVM of consecutive repetitions of one cyclic slot in ``samples``.

    ``starts``: the first sample (preamble CP) of each repetition, as the receiver synchronised it; ``cfo_hz`` is
    removed from the whole capture (one frequency correction, as the analyser makes). The equaliser averages the
    reference symbols (preamble, DMRS) of every repetition, per subcarrier, and never tracks a per-symbol phase:
    the common phase error of phase noise is counted, as TS 36.104 Annex E counts it. ``window`` None (no table
    for the carrier): one FFT position at the centre of each CP.
    """
    geo = geometry(plan)
    x = np.asarray(samples, np.complex128)
    n = np.arange(x.size)
    x = x * np.exp(-2j * np.pi * cfo_hz / plan.rate_hz * n)
    length = plan.slot_length
    if len(starts) >= 2:
        # One frequency for the whole capture, as the analyser estimates it: the receiver's per-slot CFOs carry
        # each slot's slow phase-noise drift, and over several slots that residual would count as EVM. The phase
        # of each repetition against the known waveform, fitted by a straight line over the capture, refines it.
        at = np.asarray(starts, np.int64)
        phases = np.unwrap([np.angle(np.vdot(sent.waveform, x[a: a + length])) for a in at])
        slope = float(np.polyfit(at.astype(float), phases, 1)[0])
        x = x * np.exp(-1j * slope * n)
    # Sample-clock drift: each repetition's fractional delay from the peak of its correlation with the known
    # waveform (parabola through the three largest values; its shape bias is the same in every repetition and
    # the equaliser takes a common delay anyway). The receiver's integer starts leave up to half a sample, which
    # the capture-long equaliser would otherwise see as a phase error growing towards the band edges.
    reference = np.conj(np.fft.fft(sent.waveform))
    delays = []
    for a in starts:
        c = np.abs(np.fft.ifft(np.fft.fft(x[int(a): int(a) + length]) * reference))
        peak = int(np.argmax(c))
        lo, mid, hi = c[peak - 1], c[peak], c[(peak + 1) % length]
        curvature = lo - 2 * mid + hi
        frac = 0.5 * (lo - hi) / curvature if curvature < 0 else 0.0
        lag = peak if peak <= length // 2 else peak - length
        delays.append(lag + frac)
    bins = geo.rb_bins.reshape(-1)
    ideal_slot = sent.grid[:, bins]
    pilots = geo.pilots[:, bins] != 0
    is_reference = np.zeros(SYMBOLS_PER_SLOT, bool)
    is_reference[list(REFERENCE_SYMBOLS)] = True
    pilot_slot = pilots & is_reference[:, None]
    data_slot = (ideal_slot != 0) & ~pilots
    reps = len(starts)
    symbol_starts = np.concatenate([int(a) + geo.symbol_start for a in starts])
    cps = np.tile(geo.cp, reps)
    w = window if window is not None else 1
    return evm_3gpp(x, symbol_starts, cps, geo.fft_size, bins, np.tile(ideal_slot, (reps, 1)),
                    np.tile(data_slot, (reps, 1)), np.tile(pilot_slot, (reps, 1)), w,
                    delays=np.repeat(delays, SYMBOLS_PER_SLOT))


def _evm_sweep(radios: Mapping[str, Radio], listeners: Mapping[str, list[str]], s: CalibrationSettings,
               notes: list[str], raw: list[dict[str, Any]], tick: Callable[[], None],
               constellation: dict[str, Any], evm_rows: list[dict[str, Any]]) -> list[EvmObservation]:
    obs: list[EvmObservation] = []
    reps = s.slots_per_point
    window = evm_window_of(numerology(s.numerology), numerology(s.numerology).sample_rate_hz)
    for tx_name, tx in radios.items():
        for level in s.evm_levels_db:
            plan = full_band_plan(s.numerology, level)
            sent = build_slot(plan, 0)
            power = plan_rms_power(plan)
            length = plan.slot_length

            def point() -> list[EvmObservation]:
                report = tx.transmit(sent.waveform, cyclic=True, occupied_bw_hz=plan.occupied_bw_hz)
                captures = {}
                for rx_name in listeners[tx_name]:
                    samples, meta = radios[rx_name].receive((reps + 1) * length + 64)
                    _check_clean(tx, report, meta)
                    captures[rx_name] = samples
                errors: dict[str, list[np.ndarray]] = {name: [] for name in captures}
                slot_starts: dict[str, list[int]] = {name: [] for name in captures}
                cfos: dict[str, list[float]] = {name: [] for name in captures}
                first: int | None = None
                for rep_index in range(reps):
                    for rx_name, samples in captures.items():
                        if first is None:
                            rep = receive_slot(samples[: length + length // 2], plan, 0, reference=sent,
                                               keep_symbols=True, decode=False,
                                               lo_hz=radios[rx_name].settings.lo_hz)
                            first = rep.sync.start
                            offset = 0
                        else:
                            # Every receiver analyses the same repetitions of the cyclic slot (the same air time),
                            # so that the transmitter's distortion is the same in all of them.
                            at = first + rep_index * length
                            offset = max(at - 32, 0)
                            rep = receive_slot(samples[offset: at + length + 32], plan, 0, reference=sent,
                                               keep_symbols=True, decode=False,
                                               lo_hz=radios[rx_name].settings.lo_hz)
                        slot_starts[rx_name].append(offset + rep.sync.start)
                        cfos[rx_name].append(rep.sync.cfo_hz)
                        link = rep.links[0]
                        if not rep.acquired:
                            raise SweepPointFailed(f"{tx_name}->{rx_name}: lost sync ({rep.status})")
                        if link.equalized is None or not np.isfinite(link.evm) or link.evm > 0.7:
                            raise SweepPointFailed(f"{tx_name}->{rx_name}: lost sync (EVM {link.evm:.2f})")
                        errors[rx_name].append(link.equalized.astype(np.complex128) - link.sent)
                        if tx_name != rx_name and level == max(s.evm_levels_db) and rep_index == 0:
                            keep = link.equalized[:1200]
                            constellation[f"{tx_name}->{rx_name}"] = {
                                "level_db": level, "i": np.round(keep.real, 4).tolist(),
                                "q": np.round(keep.imag, 4).tolist()}
                joined = {name: np.concatenate(e) for name, e in errors.items()}
                rows = []
                for rx_name, samples in captures.items():
                    last = slot_starts[rx_name][-1] + length + 64
                    if last > samples.size:  # the last repetition's late EVM window must fit in the capture
                        slot_starts[rx_name].pop()
                    r3 = _evm_3gpp_of_capture(samples, plan, sent, slot_starts[rx_name],
                                              float(np.mean(cfos[rx_name])), window)
                    tracked = math.sqrt(float(np.mean(np.abs(joined[rx_name]) ** 2)))
                    rows.append({"tx": tx_name, "rx": rx_name, "level_db": level, "power": power,
                                 "evm": r3.evm, "evm_low": r3.evm_low, "evm_high": r3.evm_high,
                                 "evm_tracked": tracked, "slots": len(slot_starts[rx_name])})
                got: list[Any] = [rows]
                names = sorted(joined)
                for rx_name in names:
                    e = joined[rx_name]
                    sq = np.abs(e) ** 2
                    got.append(EvmObservation("total", tx_name, rx_name, None, power, float(np.mean(sq)), e.size,
                                              float(np.std(sq) / math.sqrt(e.size))))
                for i, a in enumerate(names):
                    for b in names[i + 1:]:
                        c = np.real(joined[a] * np.conj(joined[b]))
                        got.append(EvmObservation("cross", tx_name, a, b, power, float(np.mean(c)), c.size,
                                                  float(np.std(c) / math.sqrt(c.size))))
                return got

            got = _retry(s.retries, notes, f"EVM point {tx_name} level {level:g} dB", point)
            tick()
            if got:
                evm_rows.extend(got[0])
                got = got[1:]
                obs.extend(got)
                raw.extend({"sweep": "evm", "level_db": level, **asdict(o)} for o in got)
        tx.stop_transmit()
    return obs


def _leakage_sweep(radios: Mapping[str, Radio], pairs: Sequence[tuple[str, str]], s: CalibrationSettings,
                   notes: list[str], raw: list[dict[str, Any]], tick: Callable[[], None]) -> list[dict[str, Any]]:
    points = []
    for tx_name, rx_name in pairs:
        tx, rx = radios[tx_name], radios[rx_name]
        for level in s.leakage_levels_db:
            plan, first = _group_plan(s.numerology, level, s.rb_group)
            sent = build_slot(plan, 0)
            g = s.rb_group

            def point() -> dict[str, Any]:
                report = tx.transmit(sent.waveform, cyclic=True, occupied_bw_hz=plan.occupied_bw_hz)
                samples, meta = rx.receive(2 * plan.slot_length + 64)
                _check_clean(tx, report, meta)
                rep = receive_slot(samples, plan, 0, reference=sent, decode=False, lo_hz=rx.settings.lo_hz)
                if not rep.acquired or not np.isfinite(rep.links[0].evm) or rep.links[0].evm > 0.7:
                    raise SweepPointFailed(f"{tx_name}->{rx_name}: lost sync")
                on = rb_power_profile(samples, plan, rep.sync)
                tx.stop_transmit()
                quiet, meta2 = rx.receive(2 * plan.slot_length + 64)
                off = rb_power_profile(quiet, plan, rep.sync)
                # Noise removed from group totals, not bin by bin: clipping each noisy difference at zero would
                # add power where the leakage lies below the noise.
                net = on - off
                own = float(np.mean(net[first:first + g]))
                if own <= 0:
                    raise SweepPointFailed(f"{tx_name}->{rx_name}: no power on the transmitted group")
                ratio = {}
                for k in (-2, -1, 1, 2):
                    lo = first + k * g
                    if lo < 0 or lo + g > net.size:
                        raise SweepPointFailed(f"group at offset {k} falls outside the carrier")
                    ratio[k] = max(float(np.mean(net[lo:lo + g])), 0.0) / own
                return {"sweep": "leakage", "tx": tx_name, "rx": rx_name, "level_db": level,
                        "leak": {str(k): v for k, v in ratio.items()}, "own_power": own,
                        "noise_per_re": float(np.mean(off))}

            got = _retry(s.retries, notes, f"leakage point {tx_name}->{rx_name} level {level:g} dB", point)
            tick()
            if got:
                points.append(got)
                raw.append(got)
        tx.stop_transmit()
    return points


def _mcs_sweep(radios: Mapping[str, Radio], pairs: Sequence[tuple[str, str]], s: CalibrationSettings,
               notes: list[str], tick: Callable[[], None]) -> list[dict[str, Any]]:
    """Code blocks of every (modulation, code rate) of the menu against the SINR measured on them: the LDPC
    decoder's real operating points, from which the twin's link abstraction is calibrated."""
    group = s.rb_group
    per_slot = min(numerology(s.numerology).n_rb // group, 8)
    menu = list(s.mcs_menu)
    layouts = [menu[i:i + per_slot] for i in range(0, len(menu), per_slot)]
    if len(layouts) > 1 and len(layouts[-1]) < per_slot:  # fill the last slot with repeats
        layouts[-1] = layouts[-1] + menu[: per_slot - len(layouts[-1])]
    blocks: list[dict[str, Any]] = []
    slot_index = 0
    for tx_name, rx_name in pairs:
        tx, rx = radios[tx_name], radios[rx_name]
        for level in s.mcs_levels_db:
            for layout in layouts:
                links = tuple(Link(f"{m}:{r}:{i}", tuple(range(i * group, (i + 1) * group)), m, r, level)
                              for i, (m, r) in enumerate(layout))
                plan = SlotPlan(s.numerology, links, payload_seed=104729 + slot_index)
                sent = build_slot(plan, slot_index)
                slot_index += 1

                def point() -> list[dict[str, Any]]:
                    report = tx.transmit(sent.waveform, cyclic=True, occupied_bw_hz=plan.occupied_bw_hz)
                    samples, meta = rx.receive(2 * plan.slot_length + 64)
                    _check_clean(tx, report, meta)
                    rep = receive_slot(samples, plan, sent.slot_index, reference=sent, lo_hz=rx.settings.lo_hz)
                    if not rep.acquired or rep.sync.metric < 0.2:
                        raise SweepPointFailed(f"{tx_name}->{rx_name}: lost sync (metric {rep.sync.metric:.2f})")
                    return [{"tx": tx_name, "rx": rx_name, "level_db": level, "modulation": lr.link_id.split(":")[0],
                             "rate": lr.link_id.split(":")[1], "sinr_db": lr.sinr_db, "blocks": lr.n_blocks,
                             "blocks_ok": lr.blocks_ok, "info_bits_per_block": lr.info_bits_per_block}
                            for lr in rep.links]

                got = _retry(s.retries, notes, f"MCS point {tx_name}->{rx_name} level {level:g} dB", point)
                tick()
                if got:
                    blocks.extend(got)
        tx.stop_transmit()
    return blocks


def _narrow_power(radio: Radio, lo_hz: float, n: int, width_hz: float) -> float:
    radio.configure(rx_lo_hz=lo_hz)
    radio.receive(n // 4)  # flush the retune
    samples, meta = radio.receive(n)
    if meta.clip_count:
        raise SweepPointFailed(f"receiver clipped {meta.clip_count} samples at LO {lo_hz / 1e6:g} MHz")
    return channel_power(samples, radio.settings.rate_sps, width_hz, nfft=1024)


ANALYSER_LIMITED_MARGIN_DB = 3.0
"""An ACLR within this much of the analyser's floor (the best ACLR the receiving radio itself can show) is marked
analyser-limited: the receiver's own contribution is then at least half of what it measured."""

ACLR_BLOCKS = 4
"""Each ACLR capture is analysed as this many consecutive blocks (repeated captures) for its confidence interval."""


def _ratio_stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean of per-block linear ratios and the half-width of its 95 % interval (Student t)."""
    v = np.asarray(values, float)
    if v.size < 2:
        return float(v.mean()), math.inf
    return float(v.mean()), float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def _db_interval(mean: float, half: float) -> tuple[float | None, list[float | None]]:
    """ACLR (dB) of a linear leakage ratio and its 95 % interval; None where the ratio is not resolved (<= 0)."""
    if not math.isfinite(half):
        return (10 * math.log10(1 / mean) if mean > 0 else None), [None, None]
    if mean <= 0:
        return None, [10 * math.log10(1 / (mean + half)) if mean + half > 0 else None, None]
    low = 10 * math.log10(1 / (mean + half))
    high = 10 * math.log10(1 / (mean - half)) if mean - half > 0 else None
    return 10 * math.log10(1 / mean), [low, high]


def _analyse_aclr(wide: np.ndarray, quiet: np.ndarray, witness: np.ndarray | None, rate: float, width: float,
                  spacing: float) -> dict[str, Any]:
    """Per adjacent offset: the measured ACLR (the receiver as the analyser), the transmitter's own ACLR (the part
    of the adjacent power the witness capture shares), the analyser floor (what is left: the receiver's own
    contribution, as an ACLR), 95 % intervals from ACLR_BLOCKS blocks, and the analyser-limited flag."""
    total = min(wide.size, quiet.size, witness.size if witness is not None else wide.size)
    nfft = 4096
    blocks = max(min(ACLR_BLOCKS, total // (4 * nfft)), 1)  # short captures: fewer blocks (no interval at one)
    size = total // blocks
    nfft = min(nfft, 1 << int(math.log2(max(size // 4, 16))))
    measured: dict[int, list[float]] = {k: [] for k in ADJACENT_OFFSETS}
    common: dict[int, list[float]] = {k: [] for k in ADJACENT_OFFSETS}
    for i in range(blocks):
        part = slice(i * size, (i + 1) * size)
        try:
            block = net_aclr(wide[part], quiet[part], rate, spacing, width, nfft=nfft)
        except ValueError as e:
            raise SweepPointFailed(str(e)) from None
        for k, ratio in block.leakage_ratios.items():
            measured[k].append(ratio)
        if witness is not None:
            shared = common_adjacent_ratios(witness[part], wide[part], rate, spacing, width, nfft=nfft)
            for k in common:
                common[k].append(shared.common[k])
    out: dict[str, Any] = {}
    for k in ADJACENT_OFFSETS:
        m, m_half = _ratio_stats(measured[k])
        row: dict[str, Any] = {}
        row["measured_db"], row["measured_ci95"] = _db_interval(m, m_half)
        if witness is not None:
            t, t_half = _ratio_stats(common[k])
            row["tx_db"], row["tx_ci95"] = _db_interval(t, t_half)
            floor = m - max(t, 0.0)
            row["floor_db"] = 10 * math.log10(1 / floor) if floor > 0 else None
            # Limited: the transmitter's leakage is unresolved, or at most ANALYSER_LIMITED_MARGIN_DB above what
            # the receiver adds itself.
            row["analyser_limited"] = bool(t <= 0 or (floor > 0 and 10 * math.log10(t / floor)
                                                      < ANALYSER_LIMITED_MARGIN_DB))
        else:
            row["tx_db"], row["tx_ci95"], row["floor_db"], row["analyser_limited"] = (
                row["measured_db"], row["measured_ci95"], None, None)
        out[str(k)] = row
    return out


def _aclr_sweep(radios: Mapping[str, Radio], pairs: Sequence[tuple[str, str]], s: CalibrationSettings,
                narrow_rate: float, notes: list[str], raw: list[dict[str, Any]],
                tick: Callable[[], None], witnesses: Mapping[str, str | None] | None = None
                ) -> list[dict[str, Any]]:
    num = numerology(s.numerology)
    width = num.n_rb * 12 * num.scs_hz          # BW_Config
    spacing = num.channel_bw_hz
    points = []
    for tx_name, rx_name in pairs:
        tx, rx = radios[tx_name], radios[rx_name]
        witness_name = (witnesses or {}).get(tx_name)
        if witness_name == rx_name:
            witness_name = None
        witness = radios[witness_name] if witness_name else None
        base = {name: radios[name].settings for name in {tx_name, rx_name, witness_name} if name}
        try:
            for level in s.aclr_levels_db:
                plan = full_band_plan(s.numerology, level, rate_sps=s.wide_rate_sps, tx_id=1)
                sent = build_slot(plan, 0)
                n_wide = s.aclr_capture_slots * plan.slot_length
                n_narrow = int(round(narrow_rate * 2e-3))

                def point() -> dict[str, Any]:
                    tx.configure(rate_sps=s.wide_rate_sps, bandwidth_hz=min(s.wide_rate_sps,
                                                                             tx.capabilities.bandwidth_hz.high))
                    rx.configure(rate_sps=s.wide_rate_sps, rx_lo_hz=s.lo_hz,
                                 bandwidth_hz=min(s.wide_rate_sps, rx.capabilities.bandwidth_hz.high))
                    if witness is not None and witness is not tx:
                        witness.configure(rate_sps=s.wide_rate_sps, rx_lo_hz=s.lo_hz,
                                          bandwidth_hz=min(s.wide_rate_sps, witness.capabilities.bandwidth_hz.high))
                    tx.stop_transmit()
                    rx.receive(n_wide // 4)
                    quiet, _ = rx.receive(n_wide)
                    report = tx.transmit(sent.waveform, cyclic=True, occupied_bw_hz=plan.occupied_bw_hz)
                    wide, meta = rx.receive(n_wide)
                    _check_clean(tx, report, meta)
                    heard = None
                    if witness is not None:
                        # The same air time at a second receiver: what it shares with ``wide`` is the transmitter's.
                        # Without it the point still stands, uncorrected (no floor, no analyser-limited flag).
                        try:
                            heard, meta_w = witness.receive(n_wide)
                            _check_clean(tx, report, meta_w)
                        except (SweepPointFailed, RadioTimeout, RadioFault) as e:
                            heard = None
                            notes.append(f"ACLR point {tx_name}->{rx_name} level {level:g} dB: no second capture "
                                         f"({type(e).__name__}: {e}); the analyser floor is not removed")
                    try:
                        measured = net_aclr(wide, quiet, s.wide_rate_sps, spacing, width, nfft=4096)
                    except ValueError as e:
                        raise SweepPointFailed(f"{tx_name}->{rx_name}: {e}") from None
                    f, p_on, p_off = measured.freqs, measured.psd_on, measured.psd_off
                    main, aclr = measured.channel_power, measured.aclr_db
                    analysis = _analyse_aclr(wide, quiet, heard, s.wide_rate_sps, width, spacing)
                    # Narrow captures: the receiver on its own channel, then on each adjacent channel.
                    rx.configure(rate_sps=narrow_rate, bandwidth_hz=min(max(width, rx.capabilities.bandwidth_hz.low),
                                                                        rx.capabilities.bandwidth_hz.high))
                    tx.stop_transmit()
                    noise = {k: _narrow_power(rx, s.lo_hz + k * spacing, n_narrow, width) for k in (0, -1, 1, -2, 2)}
                    tx.transmit(sent.waveform, cyclic=True, occupied_bw_hz=plan.occupied_bw_hz)
                    heard = {k: _narrow_power(rx, s.lo_hz + k * spacing, n_narrow, width) for k in (0, -1, 1, -2, 2)}
                    try:
                        acir = acir_from_channel_powers(heard, noise)
                    except ValueError as e:
                        raise SweepPointFailed(f"{tx_name}->{rx_name}: {e}") from None
                    tx.stop_transmit()
                    # A decimated spectrum for the report (dB re the channel's peak density).
                    step = max(f.size // 512, 1)
                    spectrum = {"freq_hz": f[::step].tolist(),
                                "psd_db": (10 * np.log10(np.maximum(p_on[::step], 1e-30))).round(2).tolist(),
                                "noise_db": (10 * np.log10(np.maximum(p_off[::step], 1e-30))).round(2).tolist(),
                                "channel_bw_hz": spacing, "measurement_bw_hz": width}
                    return {"sweep": "aclr", "tx": tx_name, "rx": rx_name, "level_db": level, "spectrum": spectrum,
                            "channel_power_dbfs": 10 * math.log10(main),
                            "aclr_db": {str(k): v for k, v in aclr.items()},
                            "acir_db": {str(k): v for k, v in acir.items()},
                            "aclr_analysis": analysis, "witness": witness_name}

                got = _retry(s.retries, notes, f"ACLR point {tx_name}->{rx_name} level {level:g} dB", point)
                tick()
                if got:
                    points.append(got)
                    raw.append(got)
        finally:
            tx.stop_transmit()
            for name, st in base.items():
                radios[name].configure(rate_sps=st.rate_sps, bandwidth_hz=st.bandwidth_hz, rx_lo_hz=st.rx_lo_hz)
    return points


# --------------------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------------------

def _db_from_linear_ratios(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v > 0]
    return 10 * math.log10(1.0 / float(np.mean(vals))) if vals else None


def _summarise_aclr(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per pair and level: the transmitter's ACLR1/ACLR2 (worse side; the analyser's contribution removed where a
    second receiver heard the same air time), with 95 % intervals, the measured value, the analyser floor and the
    analyser-limited flag; ACIR as measured and ACS derived from ACIR and the transmitter's ACLR."""
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        by_pair.setdefault(f"{p['tx']}->{p['rx']}", []).append(p)
    out: dict[str, Any] = {}
    for pair, pts in by_pair.items():
        rows = []
        for p in pts:
            a, c = p["aclr_db"], p["acir_db"]
            acir1, acir2 = min(c["-1"], c["1"]), min(c["-2"], c["2"])
            row: dict[str, Any] = {"level_db": p["level_db"], "channel_power_dbfs": p["channel_power_dbfs"]}
            analysis = p.get("aclr_analysis")
            for order, acir in ((1, acir1), (2, acir2)):
                if analysis:
                    sides = [analysis[str(-order)], analysis[str(order)]]
                    # The worse side: the lower transmitter ACLR (an unresolved one counts as the better).
                    worst = min(sides, key=lambda r: r["tx_db"] if r["tx_db"] is not None else math.inf)
                    tx_db = worst["tx_db"]
                    row[f"aclr{order}_db"] = tx_db if tx_db is not None else None
                    row[f"aclr{order}_ci95"] = worst["tx_ci95"]
                    row[f"aclr{order}_measured_db"] = min(r["measured_db"] for r in sides if r["measured_db"]
                                                          is not None) if any(r["measured_db"] is not None
                                                                              for r in sides) else None
                    floors = [r["floor_db"] for r in sides if r["floor_db"] is not None]
                    row[f"aclr{order}_floor_db"] = min(floors) if floors else None
                    row[f"aclr{order}_analyser_limited"] = (any(r["analyser_limited"] for r in sides)
                                                            if sides[0]["analyser_limited"] is not None else None)
                else:
                    row[f"aclr{order}_db"] = min(a[str(-order)], a[str(order)])
                    row[f"aclr{order}_ci95"] = None
                    row[f"aclr{order}_measured_db"] = row[f"aclr{order}_db"]
                    row[f"aclr{order}_floor_db"] = None
                    row[f"aclr{order}_analyser_limited"] = None
                row[f"acir{order}_db"] = acir
                aclr_tx = row[f"aclr{order}_db"]
                row[f"acs{order}_db"] = acs_from_acir_db(acir, aclr_tx) if aclr_tx is not None else None
            rows.append(row)
        out[pair] = rows
    return out


def _aclr_notes(aclr: Mapping[str, Any]) -> list[str]:
    """One line per pair and level whose ACLR is analyser-limited (shown with the record's other notes)."""
    lines = []
    for pair, rows in sorted(aclr.items()):
        for r in rows:
            for order in (1, 2):
                if r.get(f"aclr{order}_analyser_limited"):
                    floor = r.get(f"aclr{order}_floor_db")
                    measured = r.get(f"aclr{order}_measured_db")
                    lines.append(
                        f"ACLR{order} {pair} at {r['channel_power_dbfs']:.1f} dBFS is analyser-limited: measured "
                        f"{measured:.1f} dB, the receiving radio's own floor {floor:.1f} dB (within "
                        f"{ANALYSER_LIMITED_MARGIN_DB:g} dB); quote it as a lower bound of the transmitter's ACLR"
                        if floor is not None and measured is not None else
                        f"ACLR{order} {pair} at {r['channel_power_dbfs']:.1f} dBFS is analyser-limited: the "
                        "transmitter's own leakage is not resolved")
    return lines


KAPPA_INPUT_REASON = (
    "kappa_t and kappa_r are fitted to the receiver's tracked EVM (data-aided, with the per-symbol common-phase "
    "correction of the link receiver), not to the 3GPP EVM: the twin's kappa is the distortion a link actually "
    "suffers, and the link receiver removes the common phase error of phase noise that the 3GPP equaliser counts. "
    "The 3GPP EVM is larger by that common phase error; it is what a signal analyser shows and what a 3GPP EVM "
    "limit is checked against.")
"""Why the kappa fit uses the tracked EVM (stored in every record)."""


def _summarise_evm(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per ``"tx->rx"`` of different radios: the 3GPP EVM and the tracked EVM at the highest level measured."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["tx"] == row["rx"]:
            continue
        key = f"{row['tx']}->{row['rx']}"
        if key not in out or row["level_db"] > out[key]["level_db"]:
            out[key] = {"level_db": row["level_db"], "evm": row["evm"], "evm_tracked": row["evm_tracked"]}
    return out


def run_calibration(radios: Mapping[str, Radio], settings: CalibrationSettings | None = None, *,
                    progress: Callable[[int], None] | None = None,
                    on_total: Callable[[int], None] | None = None,
                    fit_link_abstraction: LinkAbstractionFit | None = None) -> CalibrationRecord:
    """Calibrate ``radios`` (two or more, opened and not transmitting) and return the record.

    Args:
        radios: name -> radio.
        settings: the sweeps (default :class:`CalibrationSettings`).
        progress: called with 1 after each sweep point (for a progress bar).
        on_total: called once with the number of sweep points.
        fit_link_abstraction: fits the twin's decoder gains to the MCS sweep's code blocks (the twin's own link
            model, :func:`twin.calibration_record.fit_link_abstraction`, passed in because calibration sits below
            the twin); None: no fit, the twin keeps its nominal gains.

    Returns:
        The whole :class:`CalibrationRecord`: the twin's parameters (with the decoder gains when fitted), results
        (kappa per radio with 95 % intervals, ACLR/ACS/ACIR per pair and power, RB-group leakage, phi_aci/phi_hwi/phi
        with intervals, the MCS sweep), every sweep point, notes (dropped points, assumptions), meta (radios,
        settings, temperature, duration).

    Raises:
        ValueError: fewer than two radios, or so many dropped points that nothing can be fitted.
    """
    s = settings or CalibrationSettings()
    names = list(radios)
    if len(names) < 2:
        raise ValueError(f"calibration needs at least two radios, got {names}")
    started = time.time()
    num = numerology(s.numerology)
    rate = num.sample_rate_hz
    for name, radio in radios.items():
        caps = radio.capabilities
        changes: dict[str, Any] = {"lo_hz": s.lo_hz, "rx_lo_hz": None, "rate_sps": rate,
                                   "bandwidth_hz": min(max(num.channel_bw_hz, caps.bandwidth_hz.low),
                                                       caps.bandwidth_hz.high)}
        if s.tx_gain_db is not None:
            changes["tx_gain_db"] = s.tx_gain_db
        if s.rx_gain_db is not None:
            changes["rx_gain_db"] = s.rx_gain_db
        radio.configure(**changes)
    loop = {n: (radios[n].capabilities.loopback if s.loopback is None else s.loopback) for n in names}
    listeners = {t: [r for r in names if r != t or loop[t]] for t in names}
    pairs = [(t, r) for t in names for r in names if t != r]

    n_mcs_slots = -(-len(s.mcs_menu) // min(num.n_rb // s.rb_group, 8)) if s.mcs_levels_db else 0
    n_points = (len(names) * len(s.evm_levels_db) + len(pairs) * len(s.mcs_levels_db) * n_mcs_slots + len(pairs) * len(s.leakage_levels_db)
                + len(pairs) * len(s.aclr_levels_db))
    if on_total:
        on_total(n_points)
    tick = (lambda: progress(1)) if progress else (lambda: None)
    notes: list[str] = []
    raw: list[dict[str, Any]] = []
    constellation: dict[str, Any] = {}
    evm_rows: list[dict[str, Any]] = []
    evm_obs = _evm_sweep(radios, listeners, s, notes, raw, tick, constellation, evm_rows)
    leak_points = _leakage_sweep(radios, pairs, s, notes, raw, tick)
    mcs_blocks = _mcs_sweep(radios, pairs, s, notes, tick) if s.mcs_levels_db and s.mcs_menu else []
    # The second receiver of each ACLR point: the transmitter itself in loopback, else any third radio.
    witnesses = {t: (t if loop[t] else next((r for r in names if r != t and len(names) > 2), None)) for t in names}
    aclr_points = _aclr_sweep(radios, pairs, s, rate, notes, raw, tick, witnesses)

    kfit: KappaFit = fit_kappa(evm_obs)
    notes.extend(kfit.notes)
    nominal = s.nominal
    # phi_hwi: distortion of every directed pair of different radios at every power, receiver noise removed.
    hwi_measured, hwi_modelled, hwi_rows = [], [], []
    nominal_hwi = nominal.kappa_t ** 2 + nominal.kappa_r ** 2
    for o in evm_obs:
        if o.kind != "total" or o.tx == o.rx:
            continue
        u = o.power / 10 ** (-12 / 10)
        d = o.value - kfit.noise[f"{o.tx}->{o.rx}"] / u
        hwi_measured.append(d)
        hwi_modelled.append(nominal_hwi)
        hwi_rows.append({"tx": o.tx, "rx": o.rx, "power": o.power, "distortion": d})
    # phi_aci: leakage of an occupied neighbour at +-1 and +-2 groups, against the nominal ACIRs.
    nominal_aci = 2 * 10 ** (-nominal.acir1_db / 10) + 2 * 10 ** (-nominal.acir2_db / 10)
    aci_measured = [sum(p["leak"].values()) for p in leak_points]
    aci_modelled = [nominal_aci] * len(aci_measured)
    phi_hwi = (fit_ratio(hwi_measured, hwi_modelled, [f"{r['tx']}->{r['rx']}" for r in hwi_rows])
               if len(hwi_measured) >= 2 else None)
    phi_aci = (fit_ratio(aci_measured, aci_modelled, [f"{p['tx']}->{p['rx']}" for p in leak_points])
               if len(aci_measured) >= 2 else None)
    # Joint: a victim whose own AP and every neighbour transmit at the same power sees HWI + ACI; the paper's
    # scalar phi is the deviation of that sum.
    phi = combine_phi([(phi_hwi, nominal_hwi), (phi_aci, nominal_aci)]) if phi_hwi and phi_aci else None

    # The twin's parameters: network averages over the AP-to-device directions actually measured.
    ap_kt2 = float(np.mean([kfit.kappa_t[t].value ** 2 for t in names if t in kfit.kappa_t]))
    dev_kr2 = float(np.mean([kfit.kappa_r[r].value ** 2 for r in names if r in kfit.kappa_r]))
    leak1 = [v for p in leak_points for k, v in p["leak"].items() if abs(int(k)) == 1]
    leak2 = [v for p in leak_points for k, v in p["leak"].items() if abs(int(k)) == 2]
    rrb_acir1 = _db_from_linear_ratios(leak1)
    rrb_acir2 = _db_from_linear_ratios(leak2)
    abstraction = fit_link_abstraction(mcs_blocks) if fit_link_abstraction is not None and mcs_blocks else None
    twin = TwinParameters(kappa_t=math.sqrt(ap_kt2), kappa_r=math.sqrt(dev_kr2),
                          acir1_db=rrb_acir1 if rrb_acir1 is not None else nominal.acir1_db,
                          acir2_db=rrb_acir2 if rrb_acir2 is not None else nominal.acir2_db,
                          coding_gain_db=None if abstraction is None else abstraction.coding_gain_db)
    if rrb_acir1 is None or rrb_acir2 is None:
        notes.append("no usable leakage points: the twin keeps the nominal ACIR1/ACIR2")
    aclr = _summarise_aclr(aclr_points)
    notes.extend(_aclr_notes(aclr))
    evm_window = evm_window_of(num, rate)
    if evm_window is None:
        notes.append(f"no 3GPP EVM window table for {num.name}: the 3GPP EVM uses one FFT position per symbol, at "
                     "the centre of its CP")
    evm = {
        "method": "3GPP TS 36.104 Annex E / 38.104 Annex B: reference-symbol equaliser averaged over the capture "
                  "per subcarrier and smoothed over 19 reference subcarriers, no per-symbol phase tracking, the "
                  "larger EVM of the two FFT positions at the EVM-window extremities",
        "window_samples": evm_window,
        "kappa_input": "evm_tracked",
        "kappa_input_reason": KAPPA_INPUT_REASON,
        "points": evm_rows,
        "by_pair": _summarise_evm(evm_rows),
    }
    temps = [r.last_temperature_c for r in radios.values() if getattr(r, "last_temperature_c", None) is not None]
    results = {
        "evm": evm,
        "kappa": kfit.as_dict(),
        "rrb_acir_db": {"acir1_db": rrb_acir1, "acir2_db": rrb_acir2, "points": len(leak_points)},
        "aclr": aclr,
        "phi_hwi": phi_hwi.as_dict() if phi_hwi else None,
        "phi_aci": phi_aci.as_dict() if phi_aci else None,
        "phi": phi.as_dict() if phi else None,
        "nominal": asdict(nominal),
        "hwi_points": hwi_rows,
        "constellation": constellation,
        "mcs_sweep": mcs_blocks,
    }
    meta = {"radios": {n: radios[n].identity() for n in names}, "settings": s.as_dict(), "rate_sps": rate,
            "settings_key": settings_key(s, rate), "loopback": loop, "duration_s": time.time() - started,
            "started_at": started, "temperature_c": float(np.mean(temps)) if temps else None}
    return CalibrationRecord(twin=twin, settings=s, results=results, raw={"points": raw}, notes=notes, meta=meta,
                             link_abstraction=abstraction)
