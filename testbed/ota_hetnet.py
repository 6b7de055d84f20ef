"""HetNet slots over the air: association, sub-channel blocks and power split rendered as OFDM links on radios.

Mapping of :class:`twin.HetNetwork` (batch size 1) onto the radios present (``ap_radios`` transmit, ``device_radio``
receives):

* BS ``j`` (0 = the macro BS) -> AP radio ``ap_radios[j % len(ap_radios)]``: the association decides which radio
  carries a UE's resource blocks.
* block ``c`` -> RBs ``[c g, c g + g)`` of the carrier (``g = rbs_per_block``), so adjacent blocks are adjacent RB
  groups in the waveform.
* UE ``n`` -> a link of its BS's radio on its block's RBs, received by the one device radio (the UEs are rendered
  co-located, as in :mod:`testbed.ota`). Its digital gain makes its SNR at the device radio equal to the twin's
  SINR_n = p_n g_{n,a_n} / (I_n + N) with p_n = s_n P_{a_n,blk}: the power split sets the gain, and the co-channel
  interference of the other BSs, which the one device radio cannot hear at each victim's own path gain, enters as
  noise-equivalent power (what the twin assumes of it too). A link whose SINR exceeds what its radio delivers at
  ``max_power_db`` is capped there; one below ``min_power_db`` is raised.
* Co-channel UEs (the same block, any BS) never share the air: a twin slot is played as ``R`` OFDM slots
  ("rounds"), ``R`` the largest number of UEs on one block, and round ``r`` carries the ``r``-th UE of every
  block. Within a round the links of different blocks are on air together: adjacent-block leakage, the PA, the
  DACs, CFO, phase noise and (with two or more AP radios) the asynchronous radios' leakage into each other are
  real.
* MCS layer: the twin's rates are Shannon capacities; over the air every link needs a modulation and code rate.
  :func:`twin.mcs.choose_mcs` picks, from the SNR the link will be rendered at, the MCS of largest expected goodput
  under the calibrated link model (the DTN twin's PER with the calibration's kappa and decoder gains).

Two throughputs, kept apart by name:

* ``ota_throughput_mbps``: what the air delivered, in the carrier's real units: information bits of the UE's
  CRC-passed code blocks divided by the air time of the twin slot (its rounds x the OFDM slot duration). A UE on 3
  RBs of LTE 5 MHz carries at most about 2 Mbit/s while it is on air.
* ``credited_twin_mbps``: what the learner is credited, in the twin's units: UE n gets ``share_n W_b log2(M) c x
  (CRC-passed code blocks / blocks)``, ``share_n = 1 / (UEs of its BS on its block)`` as in the twin's OMA time
  sharing and ``W_b`` the twin's block bandwidth (2.5 MHz by default, while a block is 3 RBs = 540 kHz on air).
  Rewards and metrics (Jain, QoS, energy efficiency, handovers) are the twin's formulas
  (:meth:`twin.HetNetwork.score`) on these, and the UEs' next observations carry them, so the learner sees the
  measured decoding outcome on the scale it was trained on.
"""

from __future__ import annotations

import math
import statistics
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

import torch

from agents.policy import Policy
from radio.base import Radio
from radio.ofdm import Link, numerology
from twin.config import CODE_RATES, MODULATION_NAMES, MODULATION_ORDERS, DTNConfig
from twin.hetnet import HetNetAction, HetNetConfig, HetNetStep, HetNetwork, hetnet_rates
from twin.link import colocated_interference
from twin.mcs import choose_mcs
from testbed.ota import OtaInterrupted, RadioSlots

NOT_PLAYED_BELOW_BITS_PER_RE = 0.01 * min(math.log2(order) for order in MODULATION_ORDERS) * min(CODE_RATES)
"""Expected goodput (bit per RE) below which a link is not transmitted: 1 % of the lowest MCS's nominal rate."""

__all__ = ["HetNetOta", "NOT_PLAYED_BELOW_BITS_PER_RE", "evaluate_over_the_air", "predict_round_sinr", "rounds"]


def predict_round_sinr(snr: torch.Tensor, occupied: torch.Tensor, link_model: DTNConfig) -> torch.Tensor:
    """SINR of each block's link in one round as the calibrated model sees the rendering: every link heard by the
    one device radio, neighbouring blocks leaking at their own level through the RB-group ACIR1/ACIR2, each link's
    distortion ``kappa_t^2 + kappa_r^2`` times its own level (:func:`twin.link.colocated_interference`).

    Args:
        snr: [M_b] float, rendered SNR per RE of each block's link (linear; 0 on empty blocks).
        occupied: [M_b] bool, block carries a link in this round.
        link_model: calibrated DTN twin config (``kappa_t``, ``kappa_r``, ``acir1_db``, ``acir2_db``).

    Returns:
        [M_b] float linear SINR, 0 on empty blocks.
    """
    kappa2 = link_model.kappa_t ** 2 + link_model.kappa_r ** 2
    aci, hwi = colocated_interference(snr.unsqueeze(0), occupied.unsqueeze(0), kappa2, link_model.acir1_db,
                                      link_model.acir2_db)
    return torch.where(occupied, snr / (1.0 + aci[0] + hwi[0]), torch.zeros_like(snr))


def rounds(block: Sequence[int], association: Sequence[int], active: Sequence[bool]) -> list[list[int]]:
    """Which UEs go on air together: round ``r`` holds the ``r``-th active UE of every block (UEs of a block ordered
    by BS, then index), so no two UEs of one round share a block.

    Args:
        block, association: per UE, its block and BS.
        active: per UE, whether it transmits at all (a zero power split does not).

    Returns:
        The rounds, each a list of UE indices; every active UE appears in exactly one.
    """
    per_block: dict[int, list[int]] = {}
    for n in sorted(range(len(block)), key=lambda i: (association[i], i)):
        if active[n]:
            per_block.setdefault(int(block[n]), []).append(n)
    depth = max((len(v) for v in per_block.values()), default=0)
    return [[ues[r] for _, ues in sorted(per_block.items()) if r < len(ues)] for r in range(depth)]


class HetNetOta(RadioSlots):
    """A HetNet (batch size 1) whose slots are played over radios; the twin supplies mobility and channels.

    Args:
        config: the HetNet (its ``num_blocks`` x ``rbs_per_block`` must fit the carrier).
        link_model: calibrated DTN twin config for the MCS layer (:func:`twin.mcs.choose_mcs`).
        radios: name -> opened radio.
        ap_radios: radios that transmit (BS j is ``ap_radios[j % len]``).
        device_radio: the radio that receives every UE.
        snr_ref_db: per AP radio, the SNR per RE (dB) the device radio measures from it at link power 0 dB.
        numerology_name: carrier of the slots.
        rbs_per_block: RBs per block (default: as many as fit, at most 3).
        lo_hz: carrier frequency (Hz).
        max_power_db, min_power_db: range of a link's digital power (dB re the slot's full power per RE).
        should_stop: polled after every slot; True stops (:class:`testbed.ota.OtaInterrupted`).
    """

    def __init__(self, config: HetNetConfig, link_model: DTNConfig, radios: Mapping[str, Radio],
                 ap_radios: Sequence[str], device_radio: str, snr_ref_db: Mapping[str, float], *,
                 numerology_name: str = "lte5", rbs_per_block: int | None = None, lo_hz: float = 2.45e9,
                 max_power_db: float = 0.0, min_power_db: float = -50.0,
                 should_stop: Callable[[], bool] | None = None) -> None:
        num = numerology(numerology_name)
        if rbs_per_block is None:
            rbs_per_block = min(3, num.n_rb // config.num_blocks)
        if rbs_per_block < 1 or config.num_blocks * rbs_per_block > num.n_rb:
            raise ValueError(f"{config.num_blocks} blocks x {rbs_per_block} RBs do not fit the {num.n_rb} RBs of "
                             f"{numerology_name}; allowed: num_blocks * rbs_per_block <= {num.n_rb}, "
                             f"rbs_per_block >= 1")
        if config.noma or config.traffic != "bitstream":
            raise ValueError(f"noma={config.noma}, traffic={config.traffic!r}: over the air the HetNet is played with "
                             f"OMA time sharing and full buffers; allowed: noma=False, traffic='bitstream'")
        self.config = config
        self.link_model = link_model
        self.network = HetNetwork(config, batch_size=1, dtype=torch.float64)
        self._attach(radios, ap_radios, device_radio, numerology_name, lo_hz, min_power_db)
        self.snr_ref_db = {k: float(snr_ref_db[k]) for k in self.ap_radios}
        self.rbs_per_block = int(rbs_per_block)
        self.max_power_db = max_power_db
        self.should_stop = should_stop
        self.records: list[dict[str, Any]] = []
        """Per UE and slot since the last :meth:`drain`: decisions, the twin's SINR, the rendered SNR, the MCS, what
        was measured and the throughput credited."""
        self.ofdm_slots = 0
        """OFDM slots played (rounds of all twin slots)."""

    # --- radios ---------------------------------------------------------------------------------------------
    def radio_of(self, bs: int) -> str:
        """The AP radio that carries BS ``bs``."""
        return self.ap_radios[bs % len(self.ap_radios)]

    # --- episodes -------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start an episode of the twin's deployment ``seed``; returns [1, N, F] observations."""
        return self.network.reset(seed)

    def network_state(self):
        """The coming slot's channels and budgets (for centralised baselines)."""
        return self.network.network_state()

    def drain(self) -> list[dict[str, Any]]:
        """The per-UE records since the last call (and forget them)."""
        rows, self.records = self.records, []
        return rows

    def step(self, action: HetNetAction) -> HetNetStep:
        """Play one twin slot over the air; returns the twin's step with measured throughputs, rewards and metrics
        (``info`` adds ``twin_sum_throughput_mbps``, the twin's Shannon throughput for the same decisions)."""
        cfg = self.config
        net = self.network
        association = action.association.to(torch.int64).reshape(1, -1)
        block = action.block.to(torch.int64).reshape(1, -1)
        split = action.power_split.to(torch.float64).reshape(1, -1).clamp(0.0, 1.0)
        if association.numel() and (int(association.min()) < 0 or int(association.max()) >= cfg.num_bs):
            raise ValueError(f"association must lie in [0, {cfg.num_bs})")
        if block.numel() and (int(block.min()) < 0 or int(block.max()) >= cfg.num_blocks):
            raise ValueError(f"block must lie in [0, {cfg.num_blocks})")
        state = net.network_state()
        power_w = split * state.block_power_w[association]
        twin = hetnet_rates(state.gain, association, block, power_w, cfg.num_bs, cfg.num_blocks,
                            cfg.block_bandwidth_hz, state.noise_w)
        sinr = twin["sinr"][0]
        levels, rendered = {}, torch.zeros_like(sinr)
        for n in range(cfg.num_ues):
            if sinr[n] <= 0:
                continue
            ref = self.snr_ref_db[self.radio_of(int(association[0, n]))]
            level = min(max(10 * math.log10(float(sinr[n])) - ref, self.min_power_db), self.max_power_db)
            levels[n] = level
            rendered[n] = 10 ** ((level + ref) / 10)
        plays = rounds(block[0].tolist(), association[0].tolist(), [n in levels for n in range(cfg.num_ues)])
        predicted = self._predict(plays, block[0], rendered)
        modulation, code_rate, expected = choose_mcs(predicted.to(torch.float64), self.link_model)
        # A link no MCS of the menu can carry (PER above 99 % at the lowest) is not put on the air: it would deliver
        # nothing, and a round made only of such links is too weak for the receiver to acquire, which over the air
        # must mean a fault, not a policy's choice. It is credited nothing, as the twin's PER says.
        hopeless = [n for n in levels if float(expected[n]) < NOT_PLAYED_BELOW_BITS_PER_RE]
        if hopeless:
            for n in hopeless:
                del levels[n]
                rendered[n] = 0.0
            plays = rounds(block[0].tolist(), association[0].tolist(), [n in levels for n in range(cfg.num_ues)])
            predicted = self._predict(plays, block[0], rendered)
        measured, air_time_s = self._play(plays, association[0], block[0], levels, modulation, code_rate, predicted)
        throughput = torch.zeros(1, cfg.num_ues, dtype=torch.float64)
        delivered = torch.zeros(1, cfg.num_ues, dtype=torch.float64)
        share = twin["share"][0]
        for n, lr in measured.items():
            bits = math.log2(MODULATION_ORDERS[int(modulation[n])]) * CODE_RATES[int(code_rate[n])]
            ok = lr.blocks_ok / max(lr.n_blocks, 1)
            throughput[0, n] = float(share[n]) * cfg.block_bandwidth_hz * bits * ok / 1e6
            delivered[0, n] = float(lr.delivered_bits)
        ota_mbps = delivered / air_time_s / 1e6 if air_time_s > 0 else torch.zeros_like(delivered)
        for n in range(cfg.num_ues):
            lr = measured.get(n)
            self.records.append({
                "slot": net.slot, "ue": n, "bs": int(association[0, n]), "block": int(block[0, n]),
                "radio": self.radio_of(int(association[0, n])),
                "power_split": float(split[0, n]),
                "twin_sinr_db": 10 * math.log10(float(sinr[n])) if sinr[n] > 0 else None,
                "rendered_snr_db": 10 * math.log10(float(rendered[n])) if rendered[n] > 0 else None,
                "predicted_sinr_db": 10 * math.log10(float(predicted[n])) if predicted[n] > 0 else None,
                "capped": n in levels and not self.min_power_db < levels[n] < self.max_power_db,
                "not_played": ("no MCS carries it at the predicted SINR" if n in hopeless else
                               "zero power" if n not in levels else None),
                "modulation": MODULATION_NAMES[int(modulation[n])] if n in levels else None,
                "code_rate": CODE_RATES[int(code_rate[n])] if n in levels else None,
                "expected_bits_per_re": float(expected[n]) if n in levels else 0.0,
                "acquisition": lr.status if lr is not None else None,
                "sinr_db": lr.sinr_db if lr is not None else None,
                "bler": lr.bler if lr is not None else None,
                "delivered_bits": int(delivered[0, n]),
                "ota_throughput_mbps": float(ota_mbps[0, n]),
                "credited_twin_mbps": float(throughput[0, n]),
                "twin_capacity_mbps": float(twin["capacity_mbps"][0, n])})
        handovers = (association != net.association).sum(-1).to(torch.float64)
        reward, info = net.score(throughput, handovers, twin)
        outcome = net.step(HetNetAction(association, block, split))
        # The next observations carry what was delivered over the air, not the twin's capacity.
        net.last_throughput = throughput
        info["twin_sum_throughput_mbps"] = outcome.info["sum_throughput_mbps"]
        info["truncated"] = outcome.info["truncated"]
        info["rounds"] = torch.tensor([float(len(plays))])
        info["ota_sum_throughput_mbps"] = ota_mbps.sum(-1)
        info["air_time_s"] = torch.tensor([air_time_s])
        if self.should_stop is not None and self.should_stop():
            self.close()
            raise OtaInterrupted("stopped between two slots")
        return HetNetStep(net.observe(), reward, throughput, info)

    def _predict(self, plays: list[list[int]], block: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
        """[N] float64: every UE's SINR in its round as the calibrated model predicts it (:func:`predict_round_sinr`);
        0 for UEs not played."""
        predicted = torch.zeros_like(rendered)
        for members in plays:
            on_block = torch.zeros(self.config.num_blocks, dtype=torch.float64)
            occupied = torch.zeros(self.config.num_blocks, dtype=torch.bool)
            for n in members:
                on_block[int(block[n])] = rendered[n]
                occupied[int(block[n])] = True
            round_sinr = predict_round_sinr(on_block, occupied, self.link_model)
            for n in members:
                predicted[n] = round_sinr[int(block[n])]
        return predicted

    def _play(self, plays: list[list[int]], association: torch.Tensor, block: torch.Tensor, levels: dict[int, float],
              modulation: torch.Tensor, code_rate: torch.Tensor, predicted: torch.Tensor) -> tuple[dict[int, Any], float]:
        """Play the rounds as OFDM slots; returns (UE -> its :class:`radio.ofdm.LinkReport`, air time in s: the
        rounds' OFDM slot durations)."""
        measured: dict[int, Any] = {}
        air_time_s = 0.0
        for members in plays:
            per_radio: dict[str, list[Link]] = {name: [] for name in self.ap_radios}
            for n in members:
                c = int(block[n])
                per_radio[self.radio_of(int(association[n]))].append(Link(
                    str(n), tuple(range(c * self.rbs_per_block, (c + 1) * self.rbs_per_block)),
                    MODULATION_NAMES[int(modulation[n])].lower(),
                    Fraction(CODE_RATES[int(code_rate[n])]).limit_denominator(8), levels[n]))
            rb_snr = {name: sum(len(link.rbs) * float(predicted[int(link.id)]) for link in links)
                      for name, links in per_radio.items() if links}
            reports = self.play(per_radio, self.ofdm_slots, predicted_rb_snr=rb_snr)
            self.ofdm_slots += 1
            if reports:
                air_time_s += reports[0].plan.slot_length / reports[0].plan.rate_hz
            for rep in reports:
                for lr in rep.links:
                    measured[int(lr.link_id)] = lr
        return measured, air_time_s


METRICS = {"ota_throughput_mbps": "ota_sum_throughput_mbps", "credited_twin_mbps": "sum_throughput_mbps",
           "twin_throughput_mbps": "twin_sum_throughput_mbps",
           "jain": "jain_index", "qos_non_compliance": "qos_non_compliance",
           "energy_efficiency": "energy_efficiency_mbit_per_j", "handover_rate": "handover_rate",
           "rounds": "rounds"}
"""Evaluation metric -> the ``info`` key it averages over slots."""


def evaluate_over_the_air(policies: Mapping[str, Policy], ota: HetNetOta, seeds: Sequence[int], *,
                          records: list[dict[str, Any]] | None = None,
                          on_slot: Callable[[], None] | None = None) -> dict[str, dict[str, Any]]:
    """Play one greedy episode per seed with every policy on the same deployments and average the metrics.

    Returns, per policy label: the means over slots of :data:`METRICS` (the throughput delivered over the air in
    real Mbit/s, information bits of CRC-passed blocks per second of air time; the learner's credit in twin units;
    the twin's Shannon throughput for the same decisions, twin units; Jain; QoS non-compliance; energy efficiency, Mbit/J;
    handover rate; OFDM slots per twin slot), ``return`` (mean episode return, eq. 10 on measured throughputs),
    ``sinr_error_db`` (median over the UE-slots played of the measured SINR minus the model's prediction for the
    rendering, :func:`predict_round_sinr`)
    ``bler`` (mean code-block error rate of the links played) and ``slots_not_acquired`` (transmitter-slots not
    acquired that were outcomes, not faults: see :attr:`testbed.ota.RadioSlots.no_sync_is_outcome`). ``records``: receives every UE-slot's record
    (:attr:`HetNetOta.records`, with the policy's label); ``on_slot``: called after every slot.
    """
    out: dict[str, dict[str, Any]] = {}
    for label, policy in policies.items():
        not_acquired_before = ota.slots_not_acquired
        sums = {key: 0.0 for key in METRICS}
        returns: list[float] = []
        errors: list[float] = []
        blers: list[float] = []
        slots = 0
        for seed in seeds:
            observation = ota.reset(seed)
            episode_return = 0.0
            for _ in range(ota.config.slots_per_episode):
                state = ota.network_state() if policy.needs_state else None
                with torch.no_grad():
                    action = policy.act(observation.float() if not policy.needs_state else observation, state)
                outcome = ota.step(action)
                for key, name in METRICS.items():
                    sums[key] += float(outcome.info[name].float().mean())
                episode_return += float(outcome.reward.sum())
                observation = outcome.observation
                slots += 1
                for row in ota.drain():
                    if records is not None:
                        records.append({"policy": label, "seed": seed, **row})
                    if row["sinr_db"] is not None and math.isfinite(row["sinr_db"]):
                        errors.append(row["sinr_db"] - row["predicted_sinr_db"])
                    if row["bler"] is not None and math.isfinite(row["bler"]):
                        blers.append(row["bler"])
                if on_slot is not None:
                    on_slot()
            returns.append(episode_return)
        metrics: dict[str, Any] = {key: value / max(slots, 1) for key, value in sums.items()}
        metrics["return"] = statistics.fmean(returns) if returns else float("nan")
        metrics["sinr_error_db"] = statistics.median(errors) if errors else None
        metrics["bler"] = statistics.fmean(blers) if blers else None
        metrics["episodes"] = len(seeds)
        metrics["slots_not_acquired"] = ota.slots_not_acquired - not_acquired_before
        out[label] = metrics
    ota.close()
    return out
