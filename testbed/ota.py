"""The over-the-air physical network: twin time slots rendered as OFDM slots on radios and measured.

Mapping of the twin onto the radios present (``ap_radios`` transmit, ``device_radio`` receives):

* twin AP ``k`` -> AP radio ``ap_radios[k % len(ap_radios)]``; every link an AP serves is a link of that radio's
  slot plan, so links of one radio share its DAC, PA and LO, and links of different radios are asynchronous
  (their own LO error, timing and phase noise) and leak into each other for real.
* twin RRB ``r`` -> RBs ``[r g, r g + g)`` of the carrier (``g = rbs_per_rrb``), so adjacent RRBs are adjacent RB
  groups in the waveform.
* twin device ``n`` -> the one device radio: the devices are rendered co-located. The large-scale gain of link
  ``n`` is applied digitally: its REs get the power that makes its SNR at the device radio equal to the twin's
  ``P_n g_n / N`` (from the calibrated SNR of the AP radio -> device radio pair at the reference power).
* modulation and code rate are the link's own (BPSK/QPSK/16QAM/64QAM, LDPC 1/2, 3/4, 5/6).

What it can and cannot represent: ACI, TX/RX distortion, phase noise, CFO and quantisation emerge from the
waveform; each link's SNR follows the twin within the transmitter's dynamic range (a link whose SNR would exceed
what the AP radio can deliver at ``max_power_db`` is capped there, one below ``min_power_db`` is raised). The
interferer's gain towards a *victim* device (g_{n,k(m)}) is not rendered: every device hears the other links at
their own level, as one receiver does. Fading comes from the twin (applied digitally per slot), not from the air.

Rewards in twin units: goodput = the twin's nominal rate of the link's MCS x the fraction of its code blocks whose
CRC passed; SINR is the post-equalisation SINR measured on the data REs.

A slot the device radio does not acquire is a radio fault (:class:`SlotNotAcquired`, the runner's outage path)
unless the model predicted it too weak to acquire (:data:`ACQUISITION_RB_SNR`: RBs x SINR per RE of the radio's
links, from the calibrated model of the rendered arrangement at the running phi), or, in an evaluation
(:attr:`RadioSlots.no_sync_is_outcome`), there was power on its RBs ("no sync"); then its links deliver nothing,
their stored measurements are null with the slot's status, and :attr:`RadioSlots.slots_not_acquired` counts it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

import torch

from radio.base import Radio
from radio.errors import RadioFault
from radio.ofdm import Link, SlotPlan, SlotReport, numerology, run_slot
from radio.ofdm.link import acquisition_failure, configure_radios
from radio.ofdm.receiver import NO_SYNC
from twin.config import CODE_RATES, MODULATION_NAMES, DTNConfig
from twin.link import SinrTerms, colocated_interference, link_rate_mbps, modulation_order_tensor
from twin.network import LinkAdaptationNetwork, SlotOutcome, evaluate_slot
from twin.phi import PhiEstimator

__all__ = ["OtaInterrupted", "OtaNetwork", "RadioSlots", "SlotNotAcquired"]


ACQUISITION_RB_SNR = 20.0
"""Pilot energy (sum over a slot plan's links of RBs x linear SNR per RE) below which the receiver's acquisition,
searching +-50 ppm at 1e-3 false alarms, is not reliable: measured on simulated links, 3 RBs were acquired in every
slot at 8 dB (3 x 6.3 = 19) and in 3 of 4 at 2 dB (4.7); 24 RBs in every slot at -3.6 dB (10.5) and 3 of 4 at -5.8 dB
(6.3). Above it a slot that is not acquired is a radio fault."""


class SlotNotAcquired(RadioFault):
    """The device radio did not acquire an AP radio's slot ("no signal" or "no sync"): the radios, not the
    learner's choices, failed, so the episode takes the radio-fault path instead of recording zero goodput."""



class OtaInterrupted(RuntimeError):
    """The operator asked to stop; raised between two slots, with every transmitter stopped."""


class RadioSlots:
    """The radio side every over-the-air runner shares: the AP radios transmit their links' slot plans cyclically
    and the one device radio receives and measures them all. A runner calls :meth:`_attach` once, then
    :meth:`play` per OFDM slot and :meth:`close` when done."""

    def _attach(self, radios: Mapping[str, Radio], ap_radios: Sequence[str], device_radio: str,
                numerology_name: str, lo_hz: float, min_power_db: float) -> None:
        missing = [n for n in list(ap_radios) + [device_radio] if n not in radios]
        if missing:
            raise ValueError(f"radios {missing} are not open; open: {sorted(radios)}")
        if device_radio in ap_radios:
            raise ValueError(f"the device radio {device_radio!r} cannot also be an AP radio")
        if not ap_radios:
            raise ValueError("at least one AP radio is needed")
        self.radios = dict(radios)
        self.ap_radios = list(ap_radios)
        self.device_radio = device_radio
        self.numerology = numerology(numerology_name)
        self.lo_hz = lo_hz
        self.min_power_db = min_power_db
        self.no_sync_is_outcome = False
        """Whether a slot found with power on its RBs but not acquired ("no sync") is an outcome (nothing delivered,
        counted in :attr:`slots_not_acquired`) rather than a fault: set for evaluations, where a stronger
        asynchronous transmitter beside a weak one is what the compared decisions did."""
        self.slots_not_acquired = 0
        """Slots of one transmitter played but not acquired and not counted as faults."""
        self._configured = False

    def _plan(self, links: list[Link], tx_id: int, slot_index: int) -> SlotPlan:
        if not links:
            links = [Link("idle", (0,), power_db=self.min_power_db)]
        return SlotPlan(self.numerology, tuple(links), tx_id=tx_id, payload_seed=slot_index + 1)

    def _configure(self) -> None:
        plans = [(self.radios[name], self._plan([], i, 0)) for i, name in enumerate(self.ap_radios)]
        configure_radios(plans, self.radios[self.device_radio], lo_hz=self.lo_hz)
        self._configured = True

    def play(self, per_radio: Mapping[str, list[Link]], slot_index: int, *,
             predicted_rb_snr: Mapping[str, float] | None = None) -> list[SlotReport]:
        """Transmit OFDM slot ``slot_index`` with every AP radio's ``per_radio`` links (a radio without links stops)
        and measure them at the device radio; returns the reports of the radios that transmitted (none: []).

        Raises :class:`SlotNotAcquired` (every transmitter stopped) when a transmitter's slot was not acquired,
        unless the caller predicted it too weak to acquire: ``predicted_rb_snr[radio]``, the sum over the radio's
        links of (RBs x predicted linear SNR per RE), below :data:`ACQUISITION_RB_SNR`. Such a slot is the expected
        outcome of the decisions (its report says ``no signal`` / ``no sync``, nothing is delivered), not a fault."""
        if not self._configured:
            self._configure()
        transmitters = []
        for i, name in enumerate(self.ap_radios):
            if per_radio.get(name):
                transmitters.append((self.radios[name], self._plan(per_radio[name], i, slot_index)))
            else:
                self.radios[name].stop_transmit()
        if not transmitters:
            return []
        reports, _clipped = run_slot(transmitters, self.radios[self.device_radio], slot_index)
        for (radio, _plan), report in zip(transmitters, reports):
            problem = acquisition_failure([report], f"{radio.name}->{self.device_radio}")
            expected_weak = (predicted_rb_snr is not None
                             and predicted_rb_snr.get(radio.name, math.inf) < ACQUISITION_RB_SNR)
            outcome = expected_weak or (self.no_sync_is_outcome and report.status == NO_SYNC)
            if problem is not None and not outcome:
                self.close()
                raise SlotNotAcquired(f"OTA slot {slot_index}: {problem}")
            if problem is not None:
                self.slots_not_acquired += 1
        return reports

    def close(self) -> None:
        """Stop every AP radio's transmission."""
        for name in self.ap_radios:
            try:
                self.radios[name].stop_transmit()
            except Exception:  # noqa: BLE001 - stopping is best effort on a radio that is already gone
                pass


class OtaNetwork(RadioSlots, LinkAdaptationNetwork):
    """A :class:`~twin.network.PhysicalNetwork` whose slots are played over radios (batch size 1).

    Args:
        config: the twin's parameters (geometry, channel, scheduling, action menu) for the deployment.
        radios: name -> opened radio.
        ap_radios: radios that transmit (AP k is ``ap_radios[k % len]``).
        device_radio: the radio that receives every link.
        snr_ref_db: per AP radio, the SNR per RE (dB) the device radio measures from it at link power 0 dB.
        numerology: carrier of the slots.
        rbs_per_rrb: RBs per twin RRB.
        lo_hz: carrier frequency (Hz).
        max_power_db, min_power_db: range of a link's digital power (dB re the slot's full power per RE).
        should_stop: polled after every slot; True stops the episode (:class:`OtaInterrupted`).
        phi_memory: weight of the previous episodes in the running phi estimate (0: last episode only).
    """

    def __init__(self, config: DTNConfig, radios: Mapping[str, Radio], ap_radios: Sequence[str], device_radio: str,
                 snr_ref_db: Mapping[str, float], *, numerology_name: str = "lte5", rbs_per_rrb: int = 3,
                 lo_hz: float = 2.45e9, max_power_db: float = 0.0, min_power_db: float = -50.0,
                 should_stop: Callable[[], bool] | None = None, phi_memory: float = 0.5) -> None:
        super().__init__(config, batch_size=1)
        num = numerology(numerology_name)
        if config.num_rrbs * rbs_per_rrb > num.n_rb:
            raise ValueError(f"{config.num_rrbs} RRBs x {rbs_per_rrb} RBs do not fit the {num.n_rb} RBs of "
                             f"{numerology_name}; allowed: num_rrbs * rbs_per_rrb <= {num.n_rb}")
        self._attach(radios, ap_radios, device_radio, numerology_name, lo_hz, min_power_db)
        self.snr_ref_db = {k: float(v) for k, v in snr_ref_db.items()}
        self.rbs_per_rrb = rbs_per_rrb
        self.max_power_db = max_power_db
        self.should_stop = should_stop
        self.phi_estimator = PhiEstimator(memory=phi_memory)
        """The running phi estimate (:meth:`measured_phi`), fed by every slot played."""
        self._model_config = config.with_updates(phi_aci=0.0, phi_hwi=0.0)
        self._slot_counter = 0
        self.transitions: list[dict[str, Any]] = []
        """Per scheduled link and slot since the last :meth:`drain`: state, action, reward, next state, measured."""
        self.kpms: list[dict[str, Any]] = []
        """Per slot: ``ota/sinr_db``, ``ota/evm``, ``ota/bler`` means over the slot's links."""
        self._last_measured: dict[int, dict[str, Any]] = {}
        self.delivered_bits_total = 0
        """Information bits of CRC-passed code blocks delivered over the air, all slots so far."""
        self.air_time_s_total = 0.0
        """Air time of the OFDM slots played so far (s): delivered bits over it is the real throughput."""

    # --- radios ----------------------------------------------------------------------------------------------
    def probe(self) -> bool:
        """Whether every radio answers again (a short receive on each); the next slot reconfigures them."""
        try:
            for radio in self.radios.values():
                radio.receive(64)
        except Exception:  # noqa: BLE001 - any failure means "not back yet"
            return False
        self._configured = False
        return True

    # --- episodes ----------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.phi_estimator.start_episode()
        return super().reset(seed)

    def step(self, action: torch.Tensor, power_dbm: torch.Tensor | None = None):
        before = self.observe()
        result = super().step(action, power_dbm)
        active = result.info["scheduled"][0]
        for n in torch.nonzero(active).flatten().tolist():
            self.transitions.append({
                "step": self.slot, "link": n, "state": before[0, n].tolist(), "action": int(action[0, n]),
                "reward": float(result.rate[0, n]), "next_state": result.observation[0, n].tolist(),
                "measured": self._last_measured.get(n, {})})
        if self.should_stop is not None and self.should_stop():
            self.close()
            raise OtaInterrupted("stopped between two slots")
        return result

    def drain(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The transitions and KPM samples recorded since the last call (and forget them)."""
        rows, kpms = self.transitions, self.kpms
        self.transitions, self.kpms = [], []
        return rows, kpms

    # --- phi ---------------------------------------------------------------------------------------------------
    def measured_phi(self) -> float | None:
        """Running least-squares phi: measured (ACI + HWI) over what the calibrated model predicts for the rendered
        links (their levels, kappa, RB-group ACIR1/ACIR2), earlier episodes weighted down by ``phi_memory`` each
        episode (:class:`twin.phi.PhiEstimator`). ``None`` before any usable slot."""
        return self.phi_estimator.phi()

    def end_episode(self) -> None:
        """Fold the episode's phi evidence into the running estimate."""
        self.phi_estimator.end_episode()

    @property
    def context_network(self) -> LinkAdaptationNetwork:
        """This network itself: a mirrored twin copies its deployment."""
        return self

    def state_dict(self) -> dict:
        base = super().state_dict() if self._ready else {}
        return {"network": base, "phi": self.phi_estimator.state(), "slot_counter": self._slot_counter}

    def load_state_dict(self, state: dict) -> None:
        if state.get("network"):
            super().load_state_dict(state["network"])
        self.phi_estimator.load_state(state.get("phi", (0.0, 0.0)))
        self._slot_counter = int(state.get("slot_counter", 0))

    # --- one slot over the air -----------------------------------------------------------------------------------
    def _play_slot(self, power_w: torch.Tensor, modulation_index: torch.Tensor,
                   code_rate_index: torch.Tensor) -> SlotOutcome:
        cfg = self.config
        state = self.network_state()
        model = evaluate_slot(state._replace(config=self._model_config), power_w, modulation_index, code_rate_index)
        rrb = state.rrb[0]
        gain = torch.gather(state.gain[0], 1, state.serving_ap[0].unsqueeze(-1)).squeeze(-1)
        noise = cfg.noise_power_w
        per_radio: dict[str, list[Link]] = {name: [] for name in self.ap_radios}
        capped: dict[int, bool] = {}
        rendered: dict[int, float] = {}
        radio_of: dict[int, str] = {}
        for n in torch.nonzero(rrb >= 0).flatten().tolist():
            radio_name = radio_of[n] = self.ap_radios[int(state.serving_ap[0, n]) % len(self.ap_radios)]
            snr_db = 10 * math.log10(max(float(power_w[0, n] * gain[n]) / noise, 1e-30))
            level = snr_db - self.snr_ref_db[radio_name]
            capped[n] = not (self.min_power_db <= level <= self.max_power_db)
            level = min(max(level, self.min_power_db), self.max_power_db)
            rendered[n] = 10 ** ((level + self.snr_ref_db[radio_name]) / 10) * noise
            r = int(rrb[n])
            per_radio[radio_name].append(Link(
                str(n), tuple(range(r * self.rbs_per_rrb, (r + 1) * self.rbs_per_rrb)),
                MODULATION_NAMES[int(modulation_index[0, n])].lower(),
                Fraction(CODE_RATES[int(code_rate_index[0, n])]).limit_denominator(8), level))
        # phi compares what was measured with what the calibrated model predicts for the arrangement that is
        # actually rendered (each link at its rendered level, neighbours heard at theirs), so that it measures the
        # model's error rather than what the rendering cannot represent (see the module docstring).
        level = torch.zeros(1, cfg.num_rrbs, dtype=torch.float64)
        for n, s_n in rendered.items():
            level[0, int(rrb[n])] = s_n
        aci_r, hwi_r = colocated_interference(level, level > 0, cfg.kappa_t ** 2 + cfg.kappa_r ** 2, cfg.acir1_db,
                                              cfg.acir2_db)
        # What each AP radio's slot should give the acquisition (RBs x SINR per RE, the model at the running phi):
        # a slot predicted below ACQUISITION_RB_SNR that is not acquired is the decisions' outcome, not a fault.
        phi_now = self.phi_estimator.phi() or 0.0
        predicted_rb_snr = {name: 0.0 for name in self.ap_radios}
        for n, s_n in rendered.items():
            disturbance = noise + (1.0 + phi_now) * float(aci_r[0, int(rrb[n])] + hwi_r[0, int(rrb[n])])
            predicted_rb_snr[radio_of[n]] += self.rbs_per_rrb * s_n / max(disturbance, 1e-300)
        sinr = torch.zeros_like(power_w)
        per = torch.ones_like(power_w)
        self._last_measured: dict[int, dict[str, Any]] = {}
        reports = self.play(per_radio, self._slot_counter, predicted_rb_snr=predicted_rb_snr)
        if reports:
            self.air_time_s_total += reports[0].plan.slot_length / reports[0].plan.rate_hz
        for rep in reports:
            for lr in rep.links:
                n = int(lr.link_id)
                if not rep.acquired:  # predicted too weak to acquire, and it was not: nothing delivered
                    self._last_measured[n] = {"sinr_db": None, "evm": None, "bler": None, "delivered_bits": 0,
                                              "capped": capped[n], "twin_sinr_db": None, "status": rep.status}
                    continue
                self.delivered_bits_total += int(lr.delivered_bits)
                sinr[0, n] = 10 ** (lr.sinr_db / 10) if math.isfinite(lr.sinr_db) else 0.0
                per[0, n] = 1.0 - lr.blocks_ok / max(lr.n_blocks, 1)
                twin_sinr = float(model.terms.sinr[0, n])
                self._last_measured[n] = {"sinr_db": lr.sinr_db, "evm": lr.evm, "bler": lr.bler,
                                          "delivered_bits": lr.delivered_bits, "capped": capped[n],
                                          "twin_sinr_db": 10 * math.log10(twin_sinr) if twin_sinr > 0 else None}
        self._slot_counter += 1
        active = rrb.unsqueeze(0) >= 0
        order = modulation_order_tensor(modulation_index)
        rate = link_rate_mbps(per, order, code_rate_index, cfg.rrb_symbol_rate, active)
        signal = torch.where(active, power_w * gain.unsqueeze(0), torch.zeros_like(power_w))
        # Interference + distortion as measured, in the twin's units: S / SINR - N, split like the model's terms.
        interference = torch.where(active & (sinr > 0), (signal / sinr.clamp(min=1e-30) - noise).clamp(min=0.0),
                                   torch.zeros_like(signal))
        modelled = model.terms.aci_w + model.terms.hwi_w
        share = torch.where(modelled > 0, model.terms.aci_w / modelled.clamp(min=1e-300), torch.full_like(modelled, 0.5))
        aci = interference * share
        hwi = interference - aci
        for n, s_n in rendered.items():
            if n not in self._last_measured or sinr[0, n] <= 0:
                continue
            expected = float(aci_r[0, int(rrb[n])] + hwi_r[0, int(rrb[n])])
            measured = max(s_n / float(sinr[0, n]) - noise, 0.0)
            self.phi_estimator.add(measured, expected)
        vals = [v for v in self._last_measured.values() if v["sinr_db"] is not None]
        if vals:
            self.kpms.append({"name": "ota/sinr_db", "value": sum(v["sinr_db"] for v in vals) / len(vals)})
            self.kpms.append({"name": "ota/evm", "value": sum(v["evm"] for v in vals) / len(vals)})
            self.kpms.append({"name": "ota/bler", "value": sum(v["bler"] for v in vals if math.isfinite(v["bler"]))
                              / max(sum(1 for v in vals if math.isfinite(v["bler"])), 1)})
        terms = SinrTerms(sinr=torch.where(active, sinr, torch.zeros_like(sinr)), signal_w=signal, aci_w=aci,
                          hwi_w=hwi, noise_w=torch.full_like(sinr, noise))
        return SlotOutcome(terms=terms, per=torch.where(active, per, torch.ones_like(per)), rate=rate)
