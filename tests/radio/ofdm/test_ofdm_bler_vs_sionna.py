"""BLER vs SNR in AWGN: the whole OFDM link (sync, channel estimation, demapping, LDPC) against Sionna's own
link-level chain (LDPC5GEncoder -> Mapper -> AWGN -> APP Demapper -> LDPC5GDecoder) with the same code blocks.
The SNR where BLER crosses 0.1 must agree within 1 dB. The default run checks three MCSs; ``-m slow`` checks
every modulation x code rate."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

from _ofdm_testlib import cyclic_rx, snr_at_bler
from radio.ofdm import Link, SlotPlan, build_slot, receive_slot
from radio.ofdm.fec import CODE_RATES, torch_threads
from radio.ofdm.modulation import MODULATIONS
from radio.ofdm.slot import geometry

BLOCKS_PER_POINT = 48
MAX_BLOCK_BITS = 512


def _plan(mod: str, rate: str) -> SlotPlan:
    return SlotPlan("lte5", (Link("a", tuple(range(25)), mod, rate, max_block_bits=MAX_BLOCK_BITS),))


@lru_cache(maxsize=64)
def _slot(plan: SlotPlan, index: int):
    return build_slot(plan, index)


def ofdm_chain(mod: str, rate: str):
    plan = _plan(mod, rate)
    rng = np.random.default_rng(1)

    def run(snr_db: float) -> tuple[int, int]:
        errors = blocks = 0
        index = 0
        while blocks < BLOCKS_PER_POINT:
            tx = _slot(plan, index % 8)
            rep = receive_slot(cyclic_rx(tx, rng, snr_db, offset=int(rng.integers(plan.slot_length))), plan,
                               index % 8, reference=tx).links[0]
            errors += rep.n_blocks - rep.blocks_ok
            blocks += rep.n_blocks
            index += 1
        return errors, blocks
    return run, geometry(plan).links[0].layout


def sionna_chain(layout):
    import torch
    from sionna.phy.channel import AWGN
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
    from sionna.phy.mapping import Demapper, Mapper

    qm = layout.bits_per_symbol
    encoder = LDPC5GEncoder(layout.k, layout.n, num_bits_per_symbol=qm if qm > 1 else None)
    decoder = LDPC5GDecoder(encoder, num_iter=20)
    kind = "pam" if qm == 1 else "qam"
    mapper, demapper, channel = Mapper(kind, qm), Demapper("app", kind, qm), AWGN()
    torch.manual_seed(2)

    def run(snr_db: float) -> tuple[int, int]:
        # One torch thread, as the link's own decoder uses (small batches; fair timing on a busy machine).
        with torch.no_grad(), torch_threads(1):
            u = torch.randint(0, 2, (BLOCKS_PER_POINT, layout.k)).float()
            no = torch.tensor(10 ** (-snr_db / 10))
            x = mapper(encoder(u))
            y = channel(x, no)
            u_hat = decoder(demapper(y, no))
            errors = int((u_hat != u).any(dim=1).sum())
        return errors, BLOCKS_PER_POINT
    return run


def _shannon_db(mod: str, rate: str) -> float:
    eff = MODULATIONS[mod] * float(CODE_RATES[rate])
    return 10 * math.log10(2 ** eff - 1)


def _check(mod: str, rate: str) -> tuple[float, float]:
    """Full comparison: both crossing SNRs, within 1 dB."""
    ours, layout = ofdm_chain(mod, rate)
    start = round((_shannon_db(mod, rate) + 1.5) * 2) / 2
    snr_ref = snr_at_bler(sionna_chain(layout), start)
    snr_ours = snr_at_bler(ours, round(snr_ref * 2) / 2)
    assert snr_ours == pytest.approx(snr_ref, abs=1.0), (mod, rate, snr_ours, snr_ref)
    return snr_ours, snr_ref


@pytest.mark.parametrize("mod,rate", [("qpsk", "1/2"), ("16qam", "3/4"), ("64qam", "5/6")])
def test_bler_crossing_matches_sionna(mod, rate):
    # Sionna's crossing, then the OFDM link 1 dB either side of it: the BLER must be above 0.1 at -1 dB and
    # below it at +1 dB, i.e. the link's own crossing lies within 1 dB of Sionna's.
    ours, layout = ofdm_chain(mod, rate)
    snr_ref = snr_at_bler(sionna_chain(layout), round((_shannon_db(mod, rate) + 1.5) * 2) / 2)
    err_lo, n_lo = ours(snr_ref - 1.0)
    err_hi, n_hi = ours(snr_ref + 1.0)
    assert err_lo / n_lo > 0.1, (mod, rate, snr_ref, err_lo, n_lo)
    assert err_hi / n_hi < 0.1, (mod, rate, snr_ref, err_hi, n_hi)


@pytest.mark.slow
@pytest.mark.parametrize("mod", list(MODULATIONS))
@pytest.mark.parametrize("rate", ["1/2", "3/4", "5/6"])
def test_bler_crossing_matches_sionna_every_mcs(mod, rate):
    _check(mod, rate)
