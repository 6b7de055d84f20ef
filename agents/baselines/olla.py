"""OLLA: 3GPP-style outer-loop link adaptation with Sionna's PHY abstraction (``sionna.sys``) BLER tables.

Every link transmits at P_max (3GPP link adaptation adapts the MCS, not the power) with the highest MCS of
the twin's menu (modulation x code rate) whose BLER at the offset-corrected effective SINR does not exceed
the BLER target. Each link keeps an SINR offset (dB) that HARQ feedback moves:

    NACK: offset -= delta_down
    ACK:  offset += delta_up,   delta_up = delta_down * BLER_target / (1 - BLER_target)

so the offset settles where the fraction of NACKs equals the BLER target (Pedersen et al. 2005). This is the
rule of ``sionna.sys.OuterLoopLinkAdaptation`` written with the offset *added* to the SINR; Sionna subtracts
it, so Sionna's ``offset`` is minus this one and its ``delta_up`` (the NACK step, 1 dB by default) is this
``delta_down_db``.

Why the rule is re-implemented instead of calling ``sionna.sys.OuterLoopLinkAdaptation``: that class holds
its state for one batch shape fixed at construction, accepts only binary HARQ feedback, and selects among
the NR MCS indices of a 38.214 table, whereas a :class:`agents.policy.Policy` must act on any [B, N] batch
and pick from the twin's 12 (modulation, code rate) pairs. Sionna provides the BLER tables: the SINR at
which each NR MCS of PDSCH MCS table 1 reaches the BLER target (``sionna.sys.PHYAbstraction.get_bler`` at
the packet's code-block size) is read off, fitted per modulation order as a straight line in the code rate
and evaluated at the twin's code rates (1/2 and 5/6 lie outside NR's QPSK and 16QAM ranges, hence the fit
rather than a nearest neighbour). BPSK, absent from the NR tables, gets QPSK's threshold for the same code
rate minus 10 log10(2) dB: Gray QPSK is two BPSK streams at half the symbol energy each.

HARQ feedback is inferred from the observation alone, so the policy also runs on the observations a physical
network produces. A link transmitted in the previous slot exactly when its "last ..." entries (SINR, ACI,
HWI, power, rate) changed since the previous call (a link that is not scheduled keeps them). Its feedback is
the fraction of its transport block that was decoded, ``last_rate / nominal rate of the MCS it played``,
clipped to [0, 1], and the offset moves by ``delta_up * f - delta_down * (1 - f)``. Over the air the measured
goodput counts the bits of code blocks whose CRC passed, so a single-block link gives f = 1 (ACK) or
f = 0 (NACK) and this is the binary rule above. The twin reports the expected goodput (1 - PER) x nominal
rate instead of a drawn outcome, so there f = 1 - PER and the step is the expected step of the binary rule;
"last_rate > 0" would not do as an ACK there, since the twin's rate stays positive until the PER is
within float precision of 1 (several dB below the 10 % BLER point). Either way the offset stops drifting
only when the mean PER equals the target: the increments sum to the offset's net change, so over T feedback
slots without hitting a bound the mean PER is within |change| / ((delta_up + delta_down) T) of the target.

SINR estimate (``sinr_estimate``). ``"corrected"`` (default): the coming slot's SNR at P_max (observation
feature 0, which P_max transmission turns into the signal term) over noise, the last slot's ACI (feature 2)
and the hardware distortion scaled to the coming channel (the last slot's distortion-to-signal ratio from
features 1-3, which does not depend on the channel):

    SINR_est = Q / (1 + A + Q * D),   Q = 10^(q/10), A = 10^(a/10) - 1,
    D = (10^(h/10) - 1) / (SINR_last (10^(a/10) + 10^(h/10) - 1))      (HWI_last / S_last)

with q, a, h the features in dB. The fading of the default twin loses much of its correlation from one
slot to the next (rho = J0(2 pi f_d T) = 0.64 at 10 Hz and 20 ms) and PF serves a link only every few
slots, so the last SINR (feature 1) is stale by one or more fading steps; the offset can remove the mean
bias of an estimate but not its slot-to-slot spread, so a stale estimate forces a larger back-off and a
lower MCS (on the default twin "last" delivers about 4 % less goodput than "corrected"). This estimate
plays the role of a CSI report with the interference measured on the last transmission (a CSI-IM-style
measurement). ``"last"``: the last SINR alone (what :class:`MaxPowerCQIPolicy` uses), for physical
networks whose channel-quality feature is not trustworthy.

Offsets start at ``initial_offset_db`` (0 dB, as in Sionna). The twin's link model needs about 3-5 dB
more SINR than Sionna's LDPC curves for the same BLER, so each link spends its first few transmissions
walking the offset down; in 100-slot episodes that start-up raises the episode's BLER above the target.

State. Per link: the offset (dB), the previous observation and the previous action ([B, N] tensors,
allocated on the first call and again whenever the batch shape changes). :meth:`reset` (call it at the
start of every episode) returns every link to ``initial_offset_db`` and forgets the previous observation.
Harnesses that never call it are covered too: an environment whose links all show the pre-transmission
state of a fresh episode (last ACI, HWI and rate all exactly 0) while they did not at the previous call
is reset on its own. One instance must follow one stream of observations: interleaving networks of the
same shape would mix their feedback.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from twin import CODE_RATES, MODULATION_ORDERS, encode_action
from twin.config import NUM_CODE_RATES, NUM_MODULATIONS, decode_action

from ..policy import Policy

__all__ = ["OllaPolicy", "menu_from_thresholds", "sionna_menu_thresholds_db"]

SINR_ESTIMATES: tuple[str, ...] = ("corrected", "last")
"""Allowed values of :class:`OllaPolicy`'s ``sinr_estimate``."""

_MENU_SIZE = NUM_MODULATIONS * NUM_CODE_RATES
# Spectral efficiency (bit per resource element) of every menu entry, in action order m * 3 + c.
_MENU_EFFICIENCY: tuple[float, ...] = tuple(math.log2(order) * rate for order in MODULATION_ORDERS
                                            for rate in CODE_RATES)
# Observation feature 5 is goodput over this efficiency times the RRB symbol rate (64QAM 5/6, no error).
_MAX_EFFICIENCY = math.log2(MODULATION_ORDERS[-1]) * CODE_RATES[-1]
_QPSK_OVER_BPSK_DB = 10.0 * math.log10(2.0)


@functools.lru_cache(maxsize=1)
def _sionna_phy_abstraction() -> tuple[Any, Any]:
    # Importing sionna and interpolating its BLER tables takes seconds: once per process.
    import sionna.sys
    from sionna.phy.nr.utils import MCSDecoderNR

    return (sionna.sys.PHYAbstraction(precision="double", device="cpu"),
            MCSDecoderNR(precision="double", device="cpu"))


@functools.lru_cache(maxsize=16)
def sionna_menu_thresholds_db(bler_target: float = 0.1, code_block_bits: int = 1000, mcs_table_index: int = 1,
                              mcs_category: int = 1) -> tuple[float, ...]:
    """SINR (dB) at which each (modulation, code rate) of the twin's menu reaches ``bler_target``, from Sionna.

    For every NR MCS of the chosen 38.214 table that ``sionna.sys.PHYAbstraction`` has a BLER table for, the
    threshold is the lowest SINR of its interpolation grid from which the BLER stays at or below the
    target (the tables come from Monte Carlo runs and wiggle near the crossing). Per modulation order the
    thresholds are fitted by least squares as a straight line in the code rate and the line is evaluated
    at the twin's code rates; BPSK uses QPSK's line minus 10 log10(2) dB.

    Args:
        bler_target: block error rate target in (0, 1).
        code_block_bits: information bits per code block (the twin's ``packet_bits``); Sionna's tables
            cover 24..2000 and clamp above.
        mcs_table_index: 38.214 MCS table (1: 64QAM table).
        mcs_category: 1 for PDSCH (downlink), 0 for PUSCH.

    Returns:
        12 floats in action order ``modulation_index * 3 + code_rate_index`` (dB).

    Raises:
        ValueError: bad target, or the table lacks two crossings for a modulation order the menu needs.
    """
    if not 0.0 < bler_target < 1.0:
        raise ValueError(f"bler_target must lie in (0, 1), got {bler_target}")
    phy, decoder = _sionna_phy_abstraction()
    try:
        available = sorted(phy.bler_table["category"][mcs_category]["index"][mcs_table_index]["MCS"])
    except KeyError:
        raise ValueError(f"sionna.sys has no BLER tables for MCS category {mcs_category}, table "
                         f"{mcs_table_index}; allowed: category 1 (PDSCH) tables 1-4, category 0 (PUSCH) "
                         "tables 1-2") from None
    low, high, step = phy.snr_db_interp_min_max_delta
    grid_db = torch.arange(low, high, step, dtype=torch.float64)
    points: dict[int, list[tuple[float, float]]] = {}
    for mcs in available:
        bler = phy.get_bler(mcs, mcs_table_index, mcs_category, int(code_block_bits), 10.0 ** (grid_db / 10.0))
        if not bool(torch.isfinite(bler).all()):
            continue
        ok = bler <= bler_target
        # ok_from_here[i]: the target holds at grid point i and every point above it.
        ok_from_here = ok.flip(0).to(torch.int64).cumprod(0).flip(0).bool()
        if not bool(ok_from_here[-1]) or bool(ok_from_here[0]):
            continue                                    # never crosses inside the grid: no usable threshold
        threshold = float(grid_db[int(torch.nonzero(ok_from_here)[0, 0])])
        order, rate = decoder(torch.tensor(mcs), torch.tensor(mcs_table_index), torch.tensor(mcs_category))
        points.setdefault(2 ** int(order), []).append((float(rate), threshold))

    lines: dict[int, tuple[float, float]] = {}
    for order in sorted({max(m, 4) for m in MODULATION_ORDERS}):
        pairs = points.get(order, [])
        if len(pairs) < 2:
            raise ValueError(f"sionna.sys table {mcs_table_index} (category {mcs_category}) gives {len(pairs)} "
                             f"BLER crossings for {order}-QAM at target {bler_target}; at least 2 are needed")
        rates = torch.tensor([r for r, _ in pairs], dtype=torch.float64)
        values = torch.tensor([t for _, t in pairs], dtype=torch.float64)
        design = torch.stack([torch.ones_like(rates), rates], dim=-1)
        intercept, slope = torch.linalg.lstsq(design, values.unsqueeze(-1)).solution.squeeze(-1).tolist()
        lines[order] = (intercept, slope)

    thresholds = []
    for order in MODULATION_ORDERS:
        intercept, slope = lines[max(order, 4)]
        shift = -_QPSK_OVER_BPSK_DB if order == 2 else 0.0
        thresholds.extend(intercept + slope * rate + shift for rate in CODE_RATES)
    return tuple(thresholds)


def menu_from_thresholds(thresholds_db: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The menu entries worth choosing, in increasing threshold and efficiency.

    An entry is kept only if no entry with a threshold at or below its own has at least its efficiency
    (e.g. BPSK 3/4 loses to QPSK 1/2, which carries more bits from a lower SINR). Choosing the last kept
    entry whose threshold the effective SINR reaches is then "the highest-efficiency MCS whose BLER
    stays under the target", and the chosen efficiency never decreases as the SINR grows.

    Args:
        thresholds_db: 12 thresholds (dB) in action order ``modulation_index * 3 + code_rate_index``.

    Returns:
        (thresholds in dB, increasing; menu indices ``m * 3 + c`` of the kept entries).
    """
    order = sorted(range(_MENU_SIZE), key=lambda i: (thresholds_db[i], -_MENU_EFFICIENCY[i]))
    kept: list[int] = []
    for index in order:
        if not kept or _MENU_EFFICIENCY[index] > _MENU_EFFICIENCY[kept[-1]]:
            kept.append(index)
    return tuple(float(thresholds_db[i]) for i in kept), tuple(kept)


class OllaPolicy(Policy):
    """Outer-loop link adaptation at P_max over Sionna's PHY-abstraction BLER tables (see the module docstring).

    Args:
        num_power_levels: size of the power set (P_max is the last level).
        bler_target: BLER target in (0, 1).
        delta_down_db: offset decrease on a NACK (dB, > 0); the ACK increase follows from the target.
        initial_offset_db: offset of every link after :meth:`reset` (dB).
        offset_min_db, offset_max_db: bounds of the offset (dB), as Sionna's -20 / +20 defaults.
        sinr_estimate: ``"corrected"`` (coming SNR with the last interference rise) or ``"last"`` (last
            SINR), see the module docstring.
        code_block_bits: code-block size for Sionna's BLER tables (the twin's ``packet_bits``).
        mcs_table_index, mcs_category: which 38.214 table of Sionna's to map onto the menu (PDSCH table 1).
        thresholds_db: 12 explicit thresholds (dB, action order ``m * 3 + c``) instead of Sionna's tables.
    """

    name = "olla"

    def __init__(self, num_power_levels: int = 4, bler_target: float = 0.1, delta_down_db: float = 1.0,
                 initial_offset_db: float = 0.0, offset_min_db: float = -20.0, offset_max_db: float = 20.0,
                 sinr_estimate: str = "corrected", code_block_bits: int = 1000, mcs_table_index: int = 1,
                 mcs_category: int = 1, thresholds_db: tuple[float, ...] | None = None) -> None:
        if not 0.0 < bler_target < 1.0:
            raise ValueError(f"bler_target must lie in (0, 1), got {bler_target}")
        if not delta_down_db > 0.0:
            raise ValueError(f"delta_down_db must be > 0 dB, got {delta_down_db}")
        if not offset_min_db <= initial_offset_db <= offset_max_db:
            raise ValueError(f"need offset_min_db <= initial_offset_db <= offset_max_db, got {offset_min_db}, "
                             f"{initial_offset_db}, {offset_max_db}")
        if sinr_estimate not in SINR_ESTIMATES:
            raise ValueError(f"sinr_estimate {sinr_estimate!r}; allowed: {', '.join(SINR_ESTIMATES)}")
        if num_power_levels < 1:
            raise ValueError(f"num_power_levels must be >= 1, got {num_power_levels}")
        if thresholds_db is not None and len(thresholds_db) != _MENU_SIZE:
            raise ValueError(f"thresholds_db needs {_MENU_SIZE} values (action order m * 3 + c), "
                             f"got {len(thresholds_db)}")
        self.num_power_levels = int(num_power_levels)
        self.bler_target = float(bler_target)
        self.delta_down_db = float(delta_down_db)
        self.delta_up_db = self.delta_down_db * self.bler_target / (1.0 - self.bler_target)
        self.initial_offset_db = float(initial_offset_db)
        self.offset_min_db = float(offset_min_db)
        self.offset_max_db = float(offset_max_db)
        self.sinr_estimate = sinr_estimate
        self.code_block_bits = int(code_block_bits)
        self.mcs_table_index = int(mcs_table_index)
        self.mcs_category = int(mcs_category)
        self._explicit_thresholds = None if thresholds_db is None else tuple(float(t) for t in thresholds_db)
        self.thresholds_db: tuple[float, ...] = self._explicit_thresholds or sionna_menu_thresholds_db(
            self.bler_target, self.code_block_bits, self.mcs_table_index, self.mcs_category)
        """SINR (dB) at which each menu entry (action order m * 3 + c) reaches the BLER target."""
        frontier_db, frontier_menu = menu_from_thresholds(self.thresholds_db)
        self._frontier_db = torch.tensor(frontier_db, dtype=torch.float64)
        self._frontier_menu = torch.tensor(frontier_menu, dtype=torch.int64)
        self._menu_efficiency = torch.tensor(_MENU_EFFICIENCY, dtype=torch.float64)
        self.offset_db: torch.Tensor | None = None
        """[B, N] float64 SINR offset of every link (dB); ``None`` before the first :meth:`act`."""
        self._previous_observation: torch.Tensor | None = None
        self._previous_action: torch.Tensor | None = None

    # --- Policy interface -----------------------------------------------------------------------
    def act(self, observation: torch.Tensor, state: Any = None) -> torch.Tensor:
        """Update the offsets from the feedback in ``observation``, then choose every link's action.

        Args:
            observation: [B, N, 6] float local states (see :mod:`twin.network`); any B and N.
            state: ignored (OLLA is decentralised).

        Returns:
            [B, N] int64 joint actions: P_max and the chosen modulation and code rate.
        """
        if observation.dim() != 3 or observation.shape[-1] != 6:
            raise ValueError(f"observation must be [B, N, 6], got {list(observation.shape)}")
        obs = observation.detach().to(device="cpu", dtype=torch.float64)
        if self.offset_db is None or self.offset_db.shape != obs.shape[:2]:
            self._allocate(obs.shape[0], obs.shape[1])
        self._restart_fresh_episodes(obs)
        self.update(obs)
        modulation, code_rate = self.select_mcs(self.estimate_sinr_db(obs) + self.offset_db)
        power = torch.full_like(modulation, self.num_power_levels - 1)
        action = encode_action(power, modulation, code_rate)
        self._previous_observation = obs.clone()
        self._previous_action = action.clone()
        return action.to(observation.device)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_power_levels": self.num_power_levels, "bler_target": self.bler_target,
                "delta_down_db": self.delta_down_db, "initial_offset_db": self.initial_offset_db,
                "offset_min_db": self.offset_min_db, "offset_max_db": self.offset_max_db,
                "sinr_estimate": self.sinr_estimate, "code_block_bits": self.code_block_bits,
                "mcs_table_index": self.mcs_table_index, "mcs_category": self.mcs_category,
                "thresholds_db": self._explicit_thresholds}

    def state_dict(self) -> dict[str, Any]:
        """Offsets (dB), previous observation and previous action (``None`` before the first call)."""
        def copy(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()
        return {"offset_db": copy(self.offset_db), "previous_observation": copy(self._previous_observation),
                "previous_action": copy(self._previous_action)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"offset_db", "previous_observation", "previous_action"} - set(state)
        if missing:
            raise ValueError(f"OllaPolicy state lacks {sorted(missing)}")
        self.offset_db = None if state["offset_db"] is None else state["offset_db"].to(torch.float64).clone()
        self._previous_observation = (None if state["previous_observation"] is None
                                      else state["previous_observation"].to(torch.float64).clone())
        self._previous_action = (None if state["previous_action"] is None
                                 else state["previous_action"].to(torch.int64).clone())

    # --- OLLA ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start of an episode: every link back to ``initial_offset_db``, no feedback pending."""
        if self.offset_db is not None:
            self.offset_db.fill_(self.initial_offset_db)
        self._previous_observation = None
        self._previous_action = None

    reset_state = reset

    def update(self, observation: torch.Tensor) -> torch.Tensor:
        """Apply the HARQ feedback that ``observation`` carries to the offsets.

        Args:
            observation: [B, N, 6] float64 on the CPU, the batch shape of the current state.

        Returns:
            [B, N] float64 decoded fraction of each link that gave feedback, NaN where none arrived.
        """
        fraction = torch.full(observation.shape[:2], math.nan, dtype=torch.float64)
        if self._previous_observation is None or self._previous_action is None:
            return fraction
        transmitted = (observation[..., 1:] != self._previous_observation[..., 1:]).any(dim=-1)
        _, modulation, code_rate = decode_action(self._previous_action, self.num_power_levels)
        nominal = self._menu_efficiency[modulation * NUM_CODE_RATES + code_rate] / _MAX_EFFICIENCY
        decoded = (observation[..., 5] / nominal).clamp(0.0, 1.0)
        step = self.delta_up_db * decoded - self.delta_down_db * (1.0 - decoded)
        moved = (self.offset_db + step).clamp(self.offset_min_db, self.offset_max_db)
        self.offset_db = torch.where(transmitted, moved, self.offset_db)
        return torch.where(transmitted, decoded, fraction)

    def estimate_sinr_db(self, observation: torch.Tensor) -> torch.Tensor:
        """Each link's SINR estimate for the coming slot at P_max, before the offset (dB).

        Args:
            observation: [B, N, 6] float local states.

        Returns:
            [B, N] float (observation's dtype) SINR estimate (dB), per ``sinr_estimate``.
        """
        last_db = observation[..., 1] * 10.0
        if self.sinr_estimate == "last":
            return last_db
        snr = 10.0 ** observation[..., 0]                                 # feature 0 is dB / 10
        aci_rise = 10.0 ** observation[..., 2]                            # 1 + ACI / N
        hwi_rise = 10.0 ** observation[..., 3]                            # 1 + HWI / N
        last_signal = 10.0 ** observation[..., 1] * (aci_rise + hwi_rise - 1.0)   # S / N of the last slot
        distortion_ratio = (hwi_rise - 1.0) / last_signal.clamp(min=1e-30)
        sinr = snr / (aci_rise + snr * distortion_ratio)
        return 10.0 * torch.log10(sinr.clamp(min=1e-30))

    def select_mcs(self, effective_sinr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The highest-efficiency menu entry whose threshold the effective SINR reaches.

        Below every threshold the most robust entry is chosen (as Sionna's ILLA falls back to the lowest MCS).

        Args:
            effective_sinr_db: [...] float, offset-corrected SINR (dB).

        Returns:
            (modulation index [...] int64, code-rate index [...] int64).
        """
        table = self._frontier_db.to(device=effective_sinr_db.device, dtype=effective_sinr_db.dtype)
        pick = (torch.bucketize(effective_sinr_db, table, right=True) - 1).clamp(min=0)
        menu = self._frontier_menu.to(effective_sinr_db.device)[pick]
        return torch.div(menu, NUM_CODE_RATES, rounding_mode="floor"), menu % NUM_CODE_RATES

    # --- internals ----------------------------------------------------------------------------
    def _allocate(self, batch: int, links: int) -> None:
        self.offset_db = torch.full((batch, links), self.initial_offset_db, dtype=torch.float64)
        self._previous_observation = None
        self._previous_action = None

    def _restart_fresh_episodes(self, observation: torch.Tensor) -> None:
        # An environment whose links all carry the blank "last ..." entries of a fresh episode was reset
        # since the previous call: its links are new, and the change to blank entries is no feedback.
        blank = (observation[..., [2, 3, 5]] == 0.0).all(dim=-1).all(dim=-1)          # [B]
        if self._previous_observation is None or not bool(blank.any()):
            return
        was_blank = (self._previous_observation[..., [2, 3, 5]] == 0.0).all(dim=-1).all(dim=-1)
        restarted = blank & ~was_blank
        if bool(restarted.any()):
            self.offset_db[restarted] = self.initial_offset_db
            self._previous_observation[restarted] = observation[restarted]
