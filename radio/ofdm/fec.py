"""Forward error correction of a link: CRC + 5G NR LDPC (Sionna) with rate matching to the link's resource elements.

Segmentation: the coded-bit capacity ``G`` of a link in a slot (data REs x bits per symbol) is cut into ``C`` equal
code blocks, ``C = ceil(G R / max_block_bits)``, each block ``n = Qm floor(G / (Qm C))`` coded bits (a whole number of
symbols) carrying ``k = round(n R)`` bits of which the last ``crc_bits`` are its CRC (CRC16 up to 512 bits, else
CRC24B, TS 38.212 section 5.1). The ``G - C n`` left-over bits are filled with a known pattern and ignored. Small
blocks are allowed (down to ``k = 24``), so throughput is counted at a fine granularity: the information bits of
the blocks whose CRC passed.

Sionna's encoder does the 38.212 rate matching (shortening/puncturing) and the bit interleaving for the given
``Qm``; its decoder inverts both. Encoders and decoders are built once per ``(k, n, Qm)`` and cached, and
:func:`decode_groups` decodes every block of a slot that shares a code in one batched call.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Iterator, Sequence

import numpy as np

CODE_RATES: dict[str, Fraction] = {
    "1/3": Fraction(1, 3), "1/2": Fraction(1, 2), "2/3": Fraction(2, 3), "3/4": Fraction(3, 4),
    "5/6": Fraction(5, 6),
}
"""Supported code rates by name."""

DEFAULT_MAX_BLOCK_BITS = 1024
"""Default upper bound on ``k`` (information + CRC bits) of one code block."""

LDPC_ITERATIONS = 20
"""Belief-propagation iterations of the decoder (Sionna's default)."""

EARLY_STOP_CHUNKS = (3, 3, 4, 4, 6)
"""Iterations between CRC checks of the early-stopping decoder (they add up to :data:`LDPC_ITERATIONS`)."""

LLR_CLIP = 20.0
"""Channel LLRs are clipped to +-this before decoding (the decoder's own message clip)."""


def code_rate(value: Any) -> Fraction:
    """Parse a code rate (``"3/4"``, ``0.75``, ``Fraction(3, 4)``) into one of :data:`CODE_RATES`;
    ValueError lists the allowed rates."""
    if isinstance(value, Fraction):
        frac = value
    else:
        text = str(value).strip()
        try:
            frac = Fraction(text).limit_denominator(16)
        except (ValueError, ZeroDivisionError):
            frac = None
    if frac is None or frac not in CODE_RATES.values():
        raise ValueError(f"unknown code rate {value!r}; allowed: {', '.join(CODE_RATES)}")
    return frac


@dataclass(frozen=True)
class CodeBlockLayout:
    """How one link's coded bits in one slot are split into LDPC code blocks."""

    n_blocks: int
    """Number of code blocks ``C``."""
    k: int
    """Bits per block entering the LDPC encoder (information + CRC)."""
    n: int
    """Coded bits per block after rate matching (a multiple of :attr:`bits_per_symbol`)."""
    crc: str
    """CRC polynomial name (Sionna/38.212): ``CRC16`` or ``CRC24B``."""
    crc_bits: int
    """CRC length (bits)."""
    bits_per_symbol: int
    """Modulation order ``Qm`` (bits per symbol), used for the 38.212 bit interleaver."""
    capacity_bits: int
    """Coded-bit capacity ``G`` of the link's data REs."""

    @property
    def info_bits_per_block(self) -> int:
        """Information bits of one block (CRC excluded)."""
        return self.k - self.crc_bits

    @property
    def info_bits(self) -> int:
        """Information bits of all blocks."""
        return self.n_blocks * self.info_bits_per_block

    @property
    def coded_bits(self) -> int:
        """Coded bits actually carried (``C n``)."""
        return self.n_blocks * self.n

    @property
    def filler_bits(self) -> int:
        """Capacity left unused (``G - C n``)."""
        return self.capacity_bits - self.coded_bits

    @property
    def effective_rate(self) -> float:
        """``k / n`` of one block, CRC included."""
        return self.k / self.n

    def as_dict(self) -> dict[str, Any]:
        return {"n_blocks": self.n_blocks, "k": self.k, "n": self.n, "crc": self.crc,
                "info_bits_per_block": self.info_bits_per_block, "info_bits": self.info_bits,
                "coded_bits": self.coded_bits, "capacity_bits": self.capacity_bits}


def plan_code_blocks(capacity_bits: int, rate: Fraction, bits_per_symbol: int,
                     max_block_bits: int = DEFAULT_MAX_BLOCK_BITS) -> CodeBlockLayout:
    """Segment a capacity of ``capacity_bits`` coded bits at code rate ``rate`` (see the module docstring).

    Raises ValueError when the capacity is too small for one block of at least 24 bits.
    """
    qm = int(bits_per_symbol)
    rate = code_rate(rate)
    if max_block_bits < 64 or max_block_bits > 8448:
        raise ValueError(f"max_block_bits = {max_block_bits}; allowed 64 to 8448")
    g = int(capacity_bits)
    c = max(1, math.ceil(g * float(rate) / max_block_bits))
    n = qm * (g // (qm * c))
    k = int(round(n * float(rate)))
    if k < 24 or n < 1:
        raise ValueError(f"{g} coded bits at rate {rate} hold fewer than 24 bits; give the link more resource blocks "
                         f"or a higher modulation order")
    crc, crc_bits = ("CRC16", 16) if k <= 512 else ("CRC24B", 24)
    return CodeBlockLayout(c, k, n, crc, crc_bits, qm, g)


TORCH_THREADS = 1
"""Torch intra-op threads while coding. A slot's code blocks are small tensors: one thread avoids OpenMP
start-up and, on a busy machine, spin-wait collapse (measured 0.15 s with 1 thread against up to 5 s with 2
on a loaded 2-core box for the same 7 blocks)."""


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@lru_cache(maxsize=256)
def _codec(k: int, n: int, qm: int, crc: str) -> tuple[Any, Any, Any, Any]:
    from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    with warnings.catch_warnings():
        # Rates just above 948/1024 (5/6 after CRC rounding) are legal for the code; Sionna warns about them.
        warnings.simplefilter("ignore", UserWarning)
        enc = LDPC5GEncoder(k, n, num_bits_per_symbol=qm if qm > 1 else None, check_input=False)
    dec = LDPC5GDecoder(enc, num_iter=LDPC_ITERATIONS, hard_out=True, return_infobits=True, return_state=True)
    crc_enc = CRCEncoder(crc)
    crc_dec = CRCDecoder(crc_enc)
    return enc, dec, crc_enc, crc_dec


def ldpc_codec(layout: CodeBlockLayout) -> tuple[Any, Any]:
    """The cached Sionna ``(LDPC5GEncoder, LDPC5GDecoder)`` pair of a layout (for reference chains)."""
    enc, dec, _, _ = _codec(layout.k, layout.n, layout.bits_per_symbol, layout.crc)
    return enc, dec


def encode_blocks(info_bits: np.ndarray, layout: CodeBlockLayout) -> np.ndarray:
    """CRC-attach and LDPC-encode code blocks.

    ``info_bits``: uint8 0/1, shape ``[C, k - crc_bits]``. Returns the rate-matched, interleaved coded bits,
    uint8, shape ``[C, n]``.
    """
    import torch

    u = np.asarray(info_bits)
    if u.shape != (layout.n_blocks, layout.info_bits_per_block):
        raise ValueError(f"info_bits shape {u.shape}; expected {(layout.n_blocks, layout.info_bits_per_block)}")
    enc, _, crc_enc, _ = _codec(layout.k, layout.n, layout.bits_per_symbol, layout.crc)
    with torch.no_grad(), _torch_threads(TORCH_THREADS):
        t = torch.from_numpy(u.astype(np.float32))
        cw = enc(crc_enc(t))
    return cw.numpy().astype(np.uint8)


def decode_blocks(llrs: np.ndarray, layout: CodeBlockLayout) -> tuple[np.ndarray, np.ndarray]:
    """Decode code blocks of one layout in one batched call.

    ``llrs``: float, shape ``[C, n]``, ``log p(1)/p(0)`` per coded bit. Returns ``(info_bits, crc_ok)``: uint8,
    shape ``[C, k - crc_bits]``, and bool, shape ``[C]``.
    """
    return decode_groups([(llrs, layout)])[0]


def decode_groups(items: Sequence[tuple[np.ndarray, CodeBlockLayout]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode several links' code blocks, batching every group that shares ``(k, n, Qm, CRC)`` into one decoder
    call. ``items``: ``(llrs [C_i, n_i] float, layout_i)``. Returns ``(info_bits, crc_ok)`` per item, in order."""
    import torch

    groups: dict[tuple[int, int, int, str], list[int]] = {}
    for i, (llr, lay) in enumerate(items):
        if np.shape(llr) != (lay.n_blocks, lay.n):
            raise ValueError(f"llrs shape {np.shape(llr)}; expected {(lay.n_blocks, lay.n)}")
        groups.setdefault((lay.k, lay.n, lay.bits_per_symbol, lay.crc), []).append(i)
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
    with torch.no_grad(), _torch_threads(TORCH_THREADS):
        for key, members in groups.items():
            _, dec, _, crc_dec = _codec(*key)
            stacked = np.concatenate([np.asarray(items[i][0], dtype=np.float32) for i in members], axis=0)
            np.clip(stacked, -LLR_CLIP, LLR_CLIP, out=stacked)
            info_np, ok_np = _decode_early_stop(dec, crc_dec, torch.from_numpy(stacked))
            start = 0
            for i in members:
                c = items[i][1].n_blocks
                results[i] = (info_np[start:start + c], ok_np[start:start + c])
                start += c
    return [r for r in results if r is not None]


def _decode_early_stop(dec: Any, crc_dec: Any, llr: "torch.Tensor") -> tuple[np.ndarray, np.ndarray]:
    """Flooding BP in chunks of iterations, resuming from the decoder's variable-node messages (an exact
    continuation for the flooding schedule); a block leaves the batch as soon as its CRC passes, so easy blocks
    cost a few iterations and only the hard ones run all :data:`LDPC_ITERATIONS`."""
    import torch

    total = llr.shape[0]
    k = dec.encoder.k
    crc_len = crc_dec.encoder.crc_length
    info_out = np.zeros((total, k - crc_len), dtype=np.uint8)
    ok_out = np.zeros(total, dtype=bool)
    active = np.arange(total)
    state = None
    done_iter = 0
    for chunk in EARLY_STOP_CHUNKS:
        if active.size == 0 or done_iter >= LDPC_ITERATIONS:
            break
        chunk = min(chunk, LDPC_ITERATIONS - done_iter)
        bits, state = dec(llr[active], num_iter=chunk, msg_v2c=state)
        done_iter += chunk
        info, ok = crc_dec(bits)
        ok_np = ok.numpy().reshape(-1).astype(bool)
        info_np = info.numpy().astype(np.uint8)
        last = done_iter >= LDPC_ITERATIONS
        finished = ok_np | last
        info_out[active[finished]] = info_np[finished]
        ok_out[active[finished]] = ok_np[finished]
        keep = ~finished
        active = active[keep]
        state = state[torch.from_numpy(np.nonzero(keep)[0])] if keep.any() else None
    return info_out, ok_out
