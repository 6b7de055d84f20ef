"""The MCS menu's expected goodput at a SINR, and the MCS that maximises it.

The menu is every (modulation, code rate) of :data:`twin.config.MODULATION_ORDERS` x :data:`twin.config.CODE_RATES`,
numbered modulation-major: MCS ``i`` is modulation ``i // NUM_CODE_RATES``, code rate ``i % NUM_CODE_RATES``. The
expected goodput of an MCS at a SINR is ``log2(M) c (1 - PER)`` with the twin's PER (eq. 16: the SER in Es/N0 with the
code rate's decoder gain, ``packet_bits`` per packet). The exhaustive-search baselines pick every link's MCS with it,
and the over-the-air HetNet picks the MCS of each rendered link with it.
"""

from __future__ import annotations

import torch

from .config import CODE_RATES, MODULATION_ORDERS, NUM_CODE_RATES, DTNConfig
from .link import link_rate_mbps, lookup, packet_error_rate

__all__ = ["NUM_MCS", "choose_mcs", "expected_goodput", "mcs_menu"]

NUM_MCS = len(MODULATION_ORDERS) * NUM_CODE_RATES
"""Entries of the MCS menu (12)."""


def mcs_menu(device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """([NUM_MCS] int64 modulation index, [NUM_MCS] int64 code-rate index) of every MCS, modulation-major."""
    modulation = torch.arange(len(MODULATION_ORDERS), device=device).repeat_interleave(NUM_CODE_RATES)
    code_rate = torch.arange(NUM_CODE_RATES, device=device).repeat(len(MODULATION_ORDERS))
    return modulation, code_rate


def expected_goodput(sinr: torch.Tensor, link_model: DTNConfig, symbol_rate: float | None = None,
                     active: torch.Tensor | None = None) -> torch.Tensor:
    """Expected goodput of every MCS of the menu at each SINR.

    Args:
        sinr: [...] float, linear SINR per RE (> 0).
        link_model: the twin config whose link model applies (``packet_bits``, ``coding_gain_db``, ``ser_model``).
        symbol_rate: ``None``: the goodput in bit per RE, ``log2(M) c (1 - PER)``. Else REs per second of the link,
            and the goodput is :func:`twin.link.link_rate_mbps`'s (Mbit/s; 0 where not ``active``).
        active: [...] bool, with ``symbol_rate``: the link transmits (default: all).

    Returns:
        [..., NUM_MCS] float, in the menu's order.
    """
    modulation, code_rate = mcs_menu(sinr.device)
    order = torch.tensor(MODULATION_ORDERS, device=sinr.device)[modulation]
    shape = sinr.shape + (NUM_MCS,)
    order, code_rate = order.expand(shape), code_rate.expand(shape)
    per = packet_error_rate(sinr.unsqueeze(-1).expand(shape), order, code_rate, link_model.packet_bits,
                            link_model.coding_gain_db, link_model.ser_model)
    if symbol_rate is None:
        bits = torch.log2(order.to(per.dtype)) * lookup(CODE_RATES, code_rate, per.dtype)
        return bits * (1.0 - per)
    active = torch.ones(sinr.shape, dtype=torch.bool, device=sinr.device) if active is None else active
    return link_rate_mbps(per, order, code_rate, symbol_rate, active.unsqueeze(-1).expand(shape))


def choose_mcs(sinr: torch.Tensor, link_model: DTNConfig, symbol_rate: float | None = None,
               active: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The MCS of largest expected goodput at each SINR (the first of the menu's order on a tie).

    Args:
        sinr: [...] float, linear SINR per RE; values below 1e-30 (an idle link's 0) are taken as 1e-30.
        link_model, symbol_rate, active: as :func:`expected_goodput`.

    Returns:
        ([...] int64 modulation index into :data:`twin.config.MODULATION_ORDERS`, [...] int64 code-rate index into
        :data:`twin.config.CODE_RATES`, [...] float its expected goodput in :func:`expected_goodput`'s unit).
    """
    goodput = expected_goodput(sinr.clamp(min=1e-30), link_model, symbol_rate, active)
    value, mcs = goodput.max(-1)
    modulation = torch.div(mcs, NUM_CODE_RATES, rounding_mode="floor")
    return modulation, mcs - modulation * NUM_CODE_RATES, value
