"""OFDM PHY timing: the over-the-air slot that ``testbed run`` renders (LTE 5 MHz, 8 links of 3 RBs, mixed MCS up
to 64QAM 5/6: build + transmit on simulated radios + receive + measure + LDPC-decode every link, one core) against
its 20 ms target, with the same slots decoded by Sionna's decoder (per code, batched) as the peer in the same run;
then TX + RX time per slot for 25 RB of 64QAM, with and without LDPC decoding, the real-time factor against a 1 ms
subframe and the 20 ms twin time slot, one OTA slot of 2 AP radios sharing the 25 RB, and LDPC decoding
throughput of this package's call against Sionna's default call in the same run.

``cfo_search`` (also with ``--ota-only``): the receiver's cost per OTA slot plan (8 links of 3 RBs) with the
narrow search (+-1 SCS) against the wide one (+-50 ppm at 5.8 GHz, +-19.3 SCS: the widest default), on the same
received buffer in the same run, for ``receive_slot`` (measure + decode) and ``synchronise`` alone, with their
ratios (wide / narrow).

``tx_guard`` (also with ``--ota-only``): the TX guard's measurement of the occupied band of one OTA slot buffer,
against building that slot in the same run.

The OTA slot is measured as ``run_slot`` runs it in ``testbed run``: the plan changes every slot (payload seed; the
link powers stay at -2 to -4 dB), the AP radio transmits the new slot cyclically, the device radio receives two slot lengths and
every link is measured and decoded. ``ota_slot_8_links`` has one AP radio (``sim0 -> sim1``, as ``testbed run
--radios sim0,sim1``), ``ota_slot_8_links_2_aps`` two (4 links each) and a third device radio. Next to that full
figure (``this_package``), ``host_processing`` is what the host itself computes per slot: building the slots and
receiving, measuring and decoding them, without the simulated radios' TX chain, air and RX chain (work that real
radios do in hardware); it is a part of the full figure, not a replacement for it.

The LDPC comparison decodes the same LLRs of one slot's code blocks (k = 1000, n = 1200 at rate 5/6; 16 blocks)
several ways: Sionna's default call (``LDPC5GDecoder(encoder)(llr)``, 20 flooding iterations, torch's default
thread count), the same per block (batch 1), in float64, and this package's ``decode_groups`` (one run over the
union of the blocks' graphs, CRC-checked early stopping). The high-SNR case is what a working link sees; the
waterfall case (BLER near 0.1) is the decoder's worst working point.

One core: BLAS/OpenMP threads are pinned to 1 before numpy/torch load, except the "default threads" Sionna
case, which sets torch back to its default. Each case runs ``--repeat`` times; best and median wall-clock times
and the best process-CPU time are reported (on a shared machine the CPU time is the steadier figure).

Usage: ``python bench/bench_ofdm.py [--repeat K] [--slots N] [--ota-slots M] [--ota-only]``. Prints one JSON
object.
"""

from __future__ import annotations

import os

_DEFAULT_THREADS = os.cpu_count() or 1
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers (the channel models)

from radio.base import RadioSettings  # noqa: E402
from radio.guard import TxGuard  # noqa: E402
from radio.ofdm import Link, SlotPlan, build_slot, receive_slot, run_slot  # noqa: E402
from radio.ofdm import fec, receiver  # noqa: E402
from radio.ofdm.receiver import cfo_search_scs, synchronise  # noqa: E402
from tests.helpers.channels import awgn  # noqa: E402
from radio.ofdm.fec import decode_groups  # noqa: E402
from radio.ofdm.modulation import demap_llr, map_bits  # noqa: E402
from radio.ofdm.link import configure_radios  # noqa: E402
from radio.ofdm.slot import geometry  # noqa: E402
from radio.sim import SimConfig, SimulatedAir  # noqa: E402

SUBFRAME_S = 1e-3
TWIN_SLOT_S = 20e-3
TARGET_OTA_SLOT_S = 20e-3
OTA_MCS = (("qpsk", "1/2"), ("16qam", "1/2"), ("16qam", "3/4"), ("64qam", "3/4"), ("64qam", "5/6"), ("qpsk", "3/4"),
           ("64qam", "2/3"), ("16qam", "2/3"))
"""MCS of the 8 links (3 RBs each, RBs 0-23) of the OTA slot."""


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    walls, cpus = [], []
    fn()  # warm-up: caches, decoder graphs
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"best_s": min(walls), "median_s": statistics.median(walls), "best_cpu_s": min(cpus)}


def rx_buffer(tx, snr_db: float, rng: np.random.Generator, offset: int = 1234) -> np.ndarray:
    x = np.roll(np.tile(tx.waveform.astype(np.complex128), 2), -offset)
    return awgn(x, tx.re_scale * 10 ** (-snr_db / 20), rng).astype(np.complex64)


def ota_plans(aps: list, slot: int) -> list[tuple[Any, SlotPlan]]:
    """The OTA slot's plans: 8 links of 3 RBs (RBs 0-23), MCS :data:`OTA_MCS`, powers -2 to -4 dB, spread over the
    AP radios in turn; payload seed = slot + 1 (as the OTA runner does)."""
    per: list[list[Link]] = [[] for _ in aps]
    for i, (mod, rate) in enumerate(OTA_MCS):
        per[i % len(aps)].append(Link(str(i), tuple(range(3 * i, 3 * i + 3)), mod, rate, -2.0 - (i % 3)))
    return [(radio, SlotPlan("lte5", tuple(links), tx_id=k, payload_seed=slot + 1))
            for k, (radio, links) in enumerate(zip(aps, per))]


def ota_case(n_aps: int, slots: int, repeat: int) -> dict[str, Any]:
    """Time ``run_slot`` of the OTA slot on simulated radios (``n_aps`` AP radios, one device radio): per slot,
    best/median wall and best CPU over ``repeat`` runs of ``slots`` slots; the same with Sionna's decoder (per
    code, batched, the same early stopping) as the peer; one run's CPU split into build / transmit / receive /
    measure+decode; and the host processing alone (build + measure+decode, best/median over ``repeat`` runs)."""
    guard = TxGuard.from_config({"allowed_bands": [[2.3e9, 2.7e9]], "max_tx_gain_db": 0.0})
    air = SimulatedAir(SimConfig.from_table({"seed": 0}, "bench"))
    settings = RadioSettings(lo_hz=2.45e9, rate_sps=7.68e6)
    aps = [air.radio(f"sim{i}", guard, settings) for i in range(n_aps)]
    device = air.radio(f"sim{n_aps}", guard, settings)
    configure_radios(ota_plans(aps, 0), device, lo_hz=2.45e9)
    counter = {"slot": 0}
    outcome: dict[str, Any] = {}

    def run_slots() -> None:
        for _ in range(slots):
            counter["slot"] += 1
            reports, _ = run_slot(ota_plans(aps, counter["slot"]), device, counter["slot"])
            outcome["links"] = [(lr.link_id, lr.blocks_ok, lr.n_blocks, round(lr.sinr_db, 1))
                                for rep in reports for lr in rep.links]

    def per_slot(t: dict[str, float]) -> dict[str, float]:
        return {k: v / slots for k, v in t.items()}

    def split_run() -> dict[str, dict[str, float]]:
        """One run of ``slots`` slots as ``run_slot`` does them, CPU and wall time summed per stage."""
        cpu = dict.fromkeys(("build", "transmit", "receive", "measure_and_decode"), 0.0)
        wall = dict(cpu)
        for _ in range(slots):
            counter["slot"] += 1
            lap = _Lap(cpu, wall)
            sent = [(radio, build_slot(plan, counter["slot"])) for radio, plan in ota_plans(aps, counter["slot"])]
            lap("build")
            for radio, tx in sent:
                radio.transmit(tx.waveform, cyclic=True, occupied_bw_hz=tx.plan.occupied_bw_hz)
            lap("transmit")
            samples, _ = device.receive(2 * sent[0][1].plan.slot_length + 64)
            lap("receive")
            for _, tx in sent:
                receive_slot(samples, tx.plan, counter["slot"], reference=tx)
            lap("measure_and_decode")
        return {"cpu": cpu, "wall": wall}

    out: dict[str, Any] = {"aps": n_aps, "links": len(OTA_MCS), "rbs_per_link": 3, "slots_per_run": slots}
    out["this_package"] = per_slot(timed(run_slots, repeat))
    out["last_slot_links"] = outcome["links"]
    own = receiver.decode_groups
    receiver.decode_groups = fec._decode_groups_sionna
    try:
        out["peer_sionna_decoder"] = per_slot(timed(run_slots, repeat))
    finally:
        receiver.decode_groups = own
    out["speedup_vs_peer_cpu"] = out["peer_sionna_decoder"]["best_cpu_s"] / out["this_package"]["best_cpu_s"]
    out["target_s"] = TARGET_OTA_SLOT_S
    out["meets_target_wall"] = out["this_package"]["best_s"] <= TARGET_OTA_SLOT_S
    out["meets_target_cpu"] = out["this_package"]["best_cpu_s"] <= TARGET_OTA_SLOT_S

    # Where one slot's time goes (CPU, mean over the slots of the first run), and the host's own processing per
    # slot: build + measure and decode, without the simulated radios' TX chain, air and RX chain (which real
    # radios do in hardware), best and median over ``repeat`` runs.
    runs = [split_run() for _ in range(repeat)]
    out["cpu_split_s"] = {k: v / slots for k, v in runs[0]["cpu"].items()}
    host_wall = [(r["wall"]["build"] + r["wall"]["measure_and_decode"]) / slots for r in runs]
    host_cpu = [(r["cpu"]["build"] + r["cpu"]["measure_and_decode"]) / slots for r in runs]
    out["host_processing"] = {"best_s": min(host_wall), "median_s": statistics.median(host_wall),
                              "best_cpu_s": min(host_cpu)}
    out["host_processing_meets_target_cpu"] = out["host_processing"]["best_cpu_s"] <= TARGET_OTA_SLOT_S
    for radio in aps:
        radio.stop_transmit()
    return out


class _Lap:
    """Adds the CPU and wall time since the previous lap (or construction) to a stage's totals."""

    def __init__(self, cpu: dict[str, float], wall: dict[str, float]):
        self.cpu, self.wall = cpu, wall
        self.c, self.w = time.process_time(), time.perf_counter()

    def __call__(self, stage: str) -> None:
        c, w = time.process_time(), time.perf_counter()
        self.cpu[stage] += c - self.c
        self.wall[stage] += w - self.w
        self.c, self.w = c, w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--slots", type=int, default=4, help="different payloads cycled through per case")
    ap.add_argument("--ota-slots", type=int, default=20, help="slots timed per OTA case")
    ap.add_argument("--ota-only", action="store_true", help="only the OTA slot cases")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {}
    results["ota_slot_8_links"] = ota_case(1, args.ota_slots, args.repeat)
    results["ota_slot_8_links_2_aps"] = ota_case(2, args.ota_slots, args.repeat)
    results["cfo_search"] = cfo_search_case(args.repeat, rng)
    results["tx_guard"] = tx_guard_case(args.repeat)
    results["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                          "processor": platform.processor() or platform.machine(), "cpus": _DEFAULT_THREADS,
                          "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if args.ota_only:
        print(json.dumps(results, indent=1, sort_keys=True))
        return
    full = SlotPlan("lte5", (Link("a", tuple(range(25)), "64qam", "5/6"),))
    txs = [build_slot(full, i) for i in range(args.slots)]
    high = [rx_buffer(t, 30.0, rng) for t in txs]
    counter = {"i": 0}

    def next_index() -> int:
        counter["i"] = (counter["i"] + 1) % args.slots
        return counter["i"]

    results["tx_build"] = timed(lambda: build_slot(full, next_index()), args.repeat)
    results["rx_no_decoding"] = timed(
        lambda: (lambda i: receive_slot(high[i], full, i, reference=txs[i], decode=False))(next_index()), args.repeat)
    results["rx_decoding_30dB"] = timed(
        lambda: (lambda i: receive_slot(high[i], full, i, reference=txs[i]))(next_index()), args.repeat)
    waterfall = [rx_buffer(t, 17.6, rng) for t in txs]
    results["rx_decoding_waterfall"] = timed(
        lambda: (lambda i: receive_slot(waterfall[i], full, i, reference=txs[i]))(next_index()), args.repeat)
    per_slot = {
        "tx_plus_rx_no_decoding_s": results["tx_build"]["best_s"] + results["rx_no_decoding"]["best_s"],
        "tx_plus_rx_decoding_s": results["tx_build"]["best_s"] + results["rx_decoding_30dB"]["best_s"],
        "tx_plus_rx_decoding_waterfall_s": results["tx_build"]["best_s"] + results["rx_decoding_waterfall"]["best_s"],
    }
    results["per_slot"] = per_slot
    results["real_time_factor_vs_1ms_subframe"] = {k: v / SUBFRAME_S for k, v in per_slot.items()}
    results["real_time_factor_vs_20ms_twin_slot"] = {k: v / TWIN_SLOT_S for k, v in per_slot.items()}

    # One OTA slot: two AP radios sharing the 25 RB, each built, received and decoded.
    ap0 = SlotPlan("lte5", (Link("x", tuple(range(0, 12)), "64qam", "5/6"),), tx_id=0)
    ap1 = SlotPlan("lte5", (Link("y", tuple(range(12, 25)), "64qam", "5/6"),), tx_id=1)
    t0, t1 = build_slot(ap0), build_slot(ap1)
    air = np.roll(np.tile(t0.waveform, 2), -300) + np.roll(np.tile(t1.waveform, 2), -310)
    air = awgn(air, t0.re_scale * 10 ** (-30 / 20), rng).astype(np.complex64)

    def ota() -> None:
        i = next_index()
        a, b = build_slot(ap0, i), build_slot(ap1, i)
        receive_slot(air, ap0, 0, reference=t0)
        receive_slot(air, ap1, 0, reference=t1)
        del a, b
    results["ota_slot_2_aps"] = timed(ota, args.repeat)
    results["ota_slot_2_aps"]["target_s"] = TARGET_OTA_SLOT_S
    results["ota_slot_2_aps"]["meets_target"] = results["ota_slot_2_aps"]["best_s"] <= TARGET_OTA_SLOT_S

    results["ldpc"] = ldpc_comparison(full, txs[0], rng, args.repeat)
    print(json.dumps(results, indent=1, sort_keys=True))


def cfo_search_case(repeat: int, rng: np.random.Generator) -> dict[str, Any]:
    """Per-slot cost of the wide CFO search against the narrow one (module docstring, ``cfo_search``)."""
    plan = ota_plans([None], 1)[0][1]
    tx = build_slot(plan, 1)
    x = rx_buffer(tx, 25.0, rng)
    wide = cfo_search_scs(5.8e9, plan.numerology.scs_hz)
    out: dict[str, Any] = {"plan": "lte5, 8 links x 3 RBs", "wide_max_cfo_scs": wide}
    for name, scs in (("narrow", 1.0), ("wide", wide)):
        out[f"receive_slot_{name}"] = timed(lambda: receive_slot(x, plan, 1, reference=tx, max_cfo_scs=scs), repeat)
        out[f"synchronise_{name}"] = timed(lambda: synchronise(x, plan, max_cfo_scs=scs), repeat)
    for step in ("receive_slot", "synchronise"):
        out[f"{step}_ratio_wide_over_narrow"] = (out[f"{step}_wide"]["best_cpu_s"]
                                                 / out[f"{step}_narrow"]["best_cpu_s"])
    out["wide_search_extra_s_per_plan"] = (out["synchronise_wide"]["best_cpu_s"]
                                           - out["synchronise_narrow"]["best_cpu_s"])
    return out


def tx_guard_case(repeat: int) -> dict[str, Any]:
    """What the TX guard's measurement of the occupied band costs on one OTA slot buffer (the 1 ms waveform a radio
    transmits, 7,680 samples on LTE 5 MHz), against building that slot, the peer in the same run."""
    from radio.guard import measure_occupied_band

    plan = ota_plans([None], 1)[0][1]
    waveform = build_slot(plan, 1).waveform
    out: dict[str, Any] = {"samples": int(waveform.size),
                           "measure_occupied_band": timed(lambda: measure_occupied_band(waveform), repeat),
                           "build_slot_peer": timed(lambda: build_slot(plan, 1), repeat)}
    out["ratio_guard_over_build"] = (out["measure_occupied_band"]["best_cpu_s"]
                                     / out["build_slot_peer"]["best_cpu_s"])
    return out


def ldpc_comparison(plan: SlotPlan, tx, rng: np.random.Generator, repeat: int) -> dict[str, Any]:
    import torch
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    layout = geometry(plan).links[0].layout
    bits = tx.links[0].coded_bits
    out: dict[str, Any] = {"k": layout.k, "n": layout.n, "blocks": layout.n_blocks}
    for label, snr in (("high_snr_30dB", 30.0), ("waterfall_17.6dB", 17.6)):
        syms = map_bits(bits.reshape(-1), "64qam")
        nv = 10 ** (-snr / 10)
        y = syms + np.sqrt(nv / 2) * (rng.standard_normal(syms.size) + 1j * rng.standard_normal(syms.size))
        llr = demap_llr(y, nv, "64qam").reshape(layout.n_blocks, layout.n)
        info_bits = layout.n_blocks * layout.info_bits_per_block
        case: dict[str, Any] = {}
        enc = LDPC5GEncoder(layout.k, layout.n, num_bits_per_symbol=6)
        dec32 = LDPC5GDecoder(enc)
        dec64 = LDPC5GDecoder(LDPC5GEncoder(layout.k, layout.n, num_bits_per_symbol=6, precision="double"),
                              precision="double")
        t32 = torch.from_numpy(np.clip(llr, -20, 20))
        t64 = t32.double()

        def sionna_default() -> None:
            with torch.no_grad():
                dec32(t32)
        torch.set_num_threads(_DEFAULT_THREADS)
        case["sionna_default_call"] = timed(sionna_default, repeat)
        torch.set_num_threads(1)
        case["sionna_batched_1_thread"] = timed(sionna_default, repeat)

        def per_block() -> None:
            with torch.no_grad():
                for b in range(layout.n_blocks):
                    dec32(t32[b:b + 1])
        case["sionna_per_block_1_thread"] = timed(per_block, max(1, repeat // 2))

        def double() -> None:
            with torch.no_grad():
                dec64(t64)
        case["sionna_float64_1_thread"] = timed(double, max(1, repeat // 2))
        case["this_package_decode_groups"] = timed(lambda: decode_groups([(llr, layout)]), repeat)
        for v in case.values():
            v["info_mbit_per_s"] = info_bits / v["best_s"] / 1e6
        ours = case["this_package_decode_groups"]["best_s"]
        case["speedup_vs_sionna_default"] = case["sionna_default_call"]["best_s"] / ours
        out[label] = case
    return out


if __name__ == "__main__":
    main()
