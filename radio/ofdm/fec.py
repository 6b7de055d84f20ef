"""Forward error correction of a link: CRC + 5G NR LDPC (Sionna) with rate matching to the link's resource elements.

Segmentation: the coded-bit capacity ``G`` of a link in a slot (data REs x bits per symbol) is cut into ``C`` equal
code blocks, ``C = ceil(G R / max_block_bits)``, each block ``n = Qm floor(G / (Qm C))`` coded bits (a whole number of
symbols) carrying ``k = round(n R)`` bits of which the last ``crc_bits`` are its CRC (CRC16 up to 512 bits, else
CRC24B, TS 38.212 section 5.1). The ``G - C n`` left-over bits are filled with a known pattern and ignored. Small
blocks are allowed (down to ``k = 24``), so throughput is counted at a fine granularity: the information bits of
the blocks whose CRC passed.

Sionna's encoder does the 38.212 rate matching (shortening/puncturing) and the bit interleaving for the given
``Qm``; its decoder inverts both. Encoders and decoders are built once per ``(k, n, Qm)`` and cached. Encoding
uses each code's generator matrix, taken once from Sionna's encoder (the CRC -> LDPC -> rate matching ->
interleaver chain is linear over GF(2), so the coded bits are bit-identical). :func:`decode_groups` decodes every
block of a slot, whatever its code, in one flooding belief-propagation run over the union of the blocks' decoding
graphs (Sionna's pruned graphs and rate recovery, its boxplus-phi check-node and sum variable-node updates, its
message clip), with per-block CRC early stopping; ``_decode_groups_sionna`` is the same through Sionna's decoder,
per code, for reference.
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
"""Iterations between CRC checks of the early-stopping Sionna reference path (they add up to
:data:`LDPC_ITERATIONS`)."""

UNION_CHECKS = (1, 1, 1, 2, 3, 4, 4, 4)
"""Iterations between CRC checks of :func:`decode_groups` (they add up to :data:`LDPC_ITERATIONS`): a check costs
far less than an iteration there, and at a working link's SNR most blocks pass after one or two. A block stops at
the first check its CRC passes, so where it stops changes nothing but a CRC false positive (2^-16 to 2^-24)."""

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
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to ``n``, restoring the previous count afterwards."""
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


GENERATOR_MAX_ENTRIES = 1 << 22
"""Codes with ``(k - crc) n`` up to this are encoded with a cached generator matrix (bit-identical to Sionna's
encoder, the whole chain CRC -> LDPC -> rate matching -> interleaver being linear over GF(2)); larger ones by
Sionna's encoder."""


class _Generator:
    """``coded = info @ G mod 2`` for one code: the columns of ``G`` that copy one information bit, and the others
    bit-packed (64 columns a word), so a block's parity is the XOR of the packed rows of its 1 bits."""

    def __init__(self, k: int, n: int, qm: int, crc: str):
        import torch

        enc, _, crc_enc, _ = _codec(k, n, qm, crc)
        kinfo = k - int(crc_enc.crc_length)
        with torch.no_grad(), torch_threads(TORCH_THREADS):
            g = enc(crc_enc(torch.eye(kinfo, dtype=torch.float32))).numpy().astype(np.uint8)  # [kinfo, n]
        weight = g.sum(axis=0)
        single = weight == 1
        self.copy_cols = np.nonzero(single)[0]
        self.copy_src = np.argmax(g[:, single], axis=0)
        self.dense_cols = np.nonzero(weight > 1)[0]
        words = -(-self.dense_cols.size // 64)
        dense = np.zeros((kinfo, words * 64), dtype=np.uint8)
        dense[:, :self.dense_cols.size] = g[:, self.dense_cols]
        self.packed = np.packbits(dense, axis=1, bitorder="little").view(np.uint64)  # [kinfo, words]
        self.n = n

    def encode(self, u: np.ndarray) -> np.ndarray:
        out = np.zeros((u.shape[0], self.n), dtype=np.uint8)
        out[:, self.copy_cols] = u[:, self.copy_src]
        nd = self.dense_cols.size
        if nd:
            parity = np.empty((u.shape[0], self.packed.shape[1]), dtype=np.uint64)
            for b in range(u.shape[0]):
                np.bitwise_xor.reduce(self.packed[u[b] != 0], axis=0, out=parity[b])
            bits = np.unpackbits(parity.view(np.uint8), axis=1, bitorder="little")
            out[:, self.dense_cols] = bits[:, :nd]
        return out


@lru_cache(maxsize=64)
def _generator(k: int, n: int, qm: int, crc: str) -> _Generator:
    return _Generator(k, n, qm, crc)


def encode_blocks(info_bits: np.ndarray, layout: CodeBlockLayout) -> np.ndarray:
    """CRC-attach and LDPC-encode code blocks.

    ``info_bits``: uint8 0/1, shape ``[C, k - crc_bits]``. Returns the rate-matched, interleaved coded bits,
    uint8, shape ``[C, n]``.
    """
    u = np.asarray(info_bits)
    if u.shape != (layout.n_blocks, layout.info_bits_per_block):
        raise ValueError(f"info_bits shape {u.shape}; expected {(layout.n_blocks, layout.info_bits_per_block)}")
    if layout.info_bits_per_block * layout.n <= GENERATOR_MAX_ENTRIES:
        return _generator(layout.k, layout.n, layout.bits_per_symbol, layout.crc).encode(u.astype(np.uint8))
    return _encode_sionna(u, layout)


def _encode_sionna(u: np.ndarray, layout: CodeBlockLayout) -> np.ndarray:
    """Sionna's CRC encoder and LDPC encoder (with rate matching and interleaving): uint8 ``[C, n]``."""
    import torch

    enc, _, crc_enc, _ = _codec(layout.k, layout.n, layout.bits_per_symbol, layout.crc)
    with torch.no_grad(), torch_threads(TORCH_THREADS):
        t = torch.from_numpy(u.astype(np.float32))
        cw = enc(crc_enc(t))
    return cw.numpy().astype(np.uint8)


def decode_blocks(llrs: np.ndarray, layout: CodeBlockLayout) -> tuple[np.ndarray, np.ndarray]:
    """Decode code blocks of one layout (see :func:`decode_groups`).

    ``llrs``: float, shape ``[C, n]``, ``log p(1)/p(0)`` per coded bit. Returns ``(info_bits, crc_ok)``: uint8,
    shape ``[C, k - crc_bits]``, and bool, shape ``[C]``.
    """
    return decode_groups([(llrs, layout)])[0]


def decode_groups(items: Sequence[tuple[np.ndarray, CodeBlockLayout]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode several links' code blocks, all of them in one batched belief-propagation run over the union of
    their decoding graphs (whatever their codes), with CRC-checked early stopping per block (see
    :func:`_decode_union`). ``items``: ``(llrs [C_i, n_i] float, layout_i)``. Returns ``(info_bits, crc_ok)`` per
    item, in order."""
    blocks: list[tuple[_UnionCode, np.ndarray]] = []
    for llr, lay in items:
        if np.shape(llr) != (lay.n_blocks, lay.n):
            raise ValueError(f"llrs shape {np.shape(llr)}; expected {(lay.n_blocks, lay.n)}")
    for llr, lay in items:
        code = _union_code(lay.k, lay.n, lay.bits_per_symbol, lay.crc)
        x = np.clip(np.asarray(llr, dtype=np.float32), -LLR_CLIP, LLR_CLIP)
        for b in range(lay.n_blocks):
            blocks.append((code, x[b]))
    decoded = _decode_union(blocks)
    results = []
    pos = 0
    for _, lay in items:
        c = lay.n_blocks
        info = np.zeros((c, lay.info_bits_per_block), dtype=np.uint8)
        ok = np.zeros(c, dtype=bool)
        for b in range(c):
            info[b], ok[b] = decoded[pos + b]
        pos += c
        results.append((info, ok))
    return results


class _UnionCode:
    """One code's decoding graph as flat edge lists, taken from Sionna's ``LDPC5GDecoder`` (the same pruned graph
    and rate recovery), plus its CRC parity matrix.

    Edges are held in check-node (CN) order (each CN's edges contiguous) and in variable-node (VN) order;
    ``to_vn[q]`` is the CN-order position of VN-order edge ``q``, ``to_cn`` the inverse."""

    def __init__(self, k: int, n: int, qm: int, crc: str):
        import torch

        enc, dec, crc_enc, _ = _codec(k, n, qm, crc)
        self.key = (k, n, qm, crc)
        self.k, self.n = k, n
        self.crc_bits = int(crc_enc.crc_length)
        num_edges = int(dec._num_edges)
        v2c_perm = dec._v2c_perm.numpy().astype(np.int64)  # CN-order position -> VN-order edge
        vn_of_edge = dec._vn_idx_t.numpy().astype(np.int64)  # VN-order edge -> VN
        cn_splits = dec._cn_row_splits.numpy().astype(np.int64) if hasattr(dec, "_cn_row_splits") else None
        cn_mask = dec._cn_mask.numpy() > 0
        self.num_cns = int(cn_mask.shape[0])
        self.num_vns = int(dec._num_vns)
        self.num_edges = num_edges
        cn_deg = cn_mask.sum(axis=1).astype(np.int64)
        if cn_splits is not None:
            assert np.array_equal(np.diff(cn_splits), cn_deg)
        vn_of_cn_edge = vn_of_edge[v2c_perm]  # CN-order position -> VN
        # VN order: by VN, then by CN order (stable).
        order = np.argsort(vn_of_cn_edge, kind="stable")
        self.to_vn = order.astype(np.int64)  # VN-order q -> CN-order position
        self.to_cn = np.empty_like(self.to_vn)
        self.to_cn[self.to_vn] = np.arange(num_edges)
        vn_deg = np.bincount(vn_of_cn_edge, minlength=self.num_vns).astype(np.int64)
        if (cn_deg < 1).any() or (vn_deg < 1).any():
            raise AssertionError("LDPC graph with an unconnected node")
        self.cn_deg, self.vn_deg = cn_deg, vn_deg
        self.vn_of_cn_edge = vn_of_cn_edge
        # Rate recovery (Sionna's LDPC5GDecoder.call): VN v takes extended-input index src[v], where the extended
        # input is [the n channel LLRs, 0 (punctured), -llr_max (filler)].
        z, k_filler = enc.z, enc.k_filler
        buf_len = enc.n_cb_comp - dec._nb_pruned_nodes
        deint = (enc.out_int_inv.numpy().astype(np.int64) if enc.num_bits_per_symbol is not None
                 else np.arange(n, dtype=np.int64))
        buf = np.full(buf_len, n, np.int64)  # the buffer's padding reads the 0 slot
        buf[:n] = deint
        n_sys = k - 2 * z
        src = np.concatenate([np.full(2 * z, n, np.int64), buf[:n_sys], np.full(k_filler, n + 1, np.int64),
                              buf[n_sys:]])
        assert src.size == self.num_vns
        self.src = src
        self.llr_max = float(dec._llr_max)
        # CRC parity of the information bits, linear over GF(2).
        with torch.no_grad(), torch_threads(TORCH_THREADS):
            eye = torch.eye(k - self.crc_bits, dtype=torch.float32)
            self.crc_parity = crc_enc(eye).numpy()[:, k - self.crc_bits:].astype(np.float32)


@lru_cache(maxsize=256)
def _union_code(k: int, n: int, qm: int, crc: str) -> _UnionCode:
    return _UnionCode(k, n, qm, crc)


@dataclass
class _UnionGraph:
    """Flat index arrays of several blocks' graphs side by side (block-major in both edge orders)."""

    to_vn: np.ndarray
    to_cn: np.ndarray
    cn_starts: np.ndarray
    cn_deg: np.ndarray
    vn_starts: np.ndarray
    vn_deg: np.ndarray
    vn_of_cn_edge: np.ndarray
    edge_offsets: list[int]
    vn_offsets: list[int]


_GRAPH_CACHE: dict[tuple, _UnionGraph] = {}


def _union_graph(codes: Sequence[_UnionCode]) -> _UnionGraph:
    key = tuple(c.key for c in codes)
    graph = _GRAPH_CACHE.get(key)
    if graph is not None:
        return graph
    to_vn, to_cn, cn_deg, vn_deg, vn_of, e_off, v_off = [], [], [], [], [], [], []
    e0 = v0 = 0
    for c in codes:
        to_vn.append(c.to_vn + e0)
        to_cn.append(c.to_cn + e0)
        cn_deg.append(c.cn_deg)
        vn_deg.append(c.vn_deg)
        vn_of.append(c.vn_of_cn_edge + v0)
        e_off.append(e0)
        v_off.append(v0)
        e0 += c.num_edges
        v0 += c.num_vns
    cn_d = np.concatenate(cn_deg)
    vn_d = np.concatenate(vn_deg)
    graph = _UnionGraph(
        to_vn=np.concatenate(to_vn), to_cn=np.concatenate(to_cn),
        cn_starts=np.concatenate([[0], np.cumsum(cn_d)[:-1]]).astype(np.intp), cn_deg=cn_d,
        vn_starts=np.concatenate([[0], np.cumsum(vn_d)[:-1]]).astype(np.intp), vn_deg=vn_d,
        vn_of_cn_edge=np.concatenate(vn_of), edge_offsets=e_off + [e0], vn_offsets=v_off + [v0])
    if len(_GRAPH_CACHE) > 64:
        _GRAPH_CACHE.clear()
    _GRAPH_CACHE[key] = graph
    return graph


def _phi(x: np.ndarray) -> np.ndarray:
    """phi(x) = -log(tanh(x / 2)) = log((e^x + 1) / (e^x - 1)), float32, in place, with Sionna's clamp."""
    np.clip(x, 8.5e-8, 16.635532, out=x)
    np.exp(x, out=x)
    den = x - np.float32(1.0)
    x += np.float32(1.0)
    x /= den
    return np.log(x, out=x)


_SIGN_COUNT = 1024.0
"""Weight of one negative message in the CN sums: phi sums stay below 20 x 17, so sum / 1024 counts the signs."""


def _bp_iteration(v2c: np.ndarray, llr: np.ndarray, graph: "_UnionGraph",
                  llr_max: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """One flooding iteration on CN-order messages ``v2c`` (float32 [E]) with VN channel LLRs ``llr``: returns the
    new ``v2c`` and the VN totals (float64 [V]). CN: extrinsic boxplus, ``sign product x phi(sum of phi(|m|)
    over the others)``; the phi sum and the count of negative messages of a CN come from one float64 sum (each
    negative message adds :data:`_SIGN_COUNT`). VN: channel LLR plus the other CN messages, clipped."""
    neg = v2c < 0  # sign(0) counts as +1, as in Sionna
    p = _phi(np.abs(v2c))
    weighted = np.add(p, neg * _SIGN_COUNT)
    sums = np.add.reduceat(weighted, graph.cn_starts)
    negatives = np.floor(sums * (1.0 / _SIGN_COUNT))
    total = (sums - negatives * _SIGN_COUNT).astype(np.float32)
    e = np.repeat(total, graph.cn_deg)
    e -= p
    c2v = _phi(e)
    flip = np.repeat((negatives.astype(np.int64) & 1).astype(bool), graph.cn_deg)
    flip ^= neg
    bits = flip.view(np.uint8).astype(np.uint32)
    bits <<= 31
    c2v.view(np.uint32)[...] ^= bits  # exact negation where the extrinsic sign is negative
    x_tot = np.bincount(graph.vn_of_cn_edge, weights=c2v, minlength=graph.vn_deg.size)
    x_tot += llr
    ext = x_tot.astype(np.float32)[graph.vn_of_cn_edge]
    ext -= c2v
    np.clip(ext, -llr_max, llr_max, out=ext)
    return ext, x_tot


def _decode_union(blocks: Sequence[tuple[_UnionCode, np.ndarray]]) -> list[tuple[np.ndarray, bool]]:
    """Flooding sum-product (boxplus via phi, Sionna's ``cn_update_phi`` / ``vn_update_sum`` with the decoder's
    message clip) on the union of the blocks' graphs, in chunks of :data:`UNION_CHECKS` iterations; a block
    leaves the run as soon as its CRC passes (or after :data:`LDPC_ITERATIONS`). The blocks are independent
    sub-graphs, so this equals decoding each alone. Returns ``(info_bits uint8 [k - crc], crc_ok)`` per block."""
    out: list[tuple[np.ndarray, bool] | None] = [None] * len(blocks)
    if not blocks:
        return []
    llr_max = np.float32(blocks[0][0].llr_max)
    # Per block: channel LLRs of its VNs in the decoder's sign convention (log p(0)/p(1)).
    llr_vn = []
    for code, x in blocks:
        ext = np.concatenate([x, np.array([0.0, -code.llr_max], np.float32)])
        llr_vn.append(-np.clip(ext[code.src], -code.llr_max, code.llr_max))
    active = list(range(len(blocks)))
    v2c = None  # CN-order messages of the active blocks
    done_iter = 0
    for chunk in UNION_CHECKS:
        if not active or done_iter >= LDPC_ITERATIONS:
            break
        chunk = min(chunk, LDPC_ITERATIONS - done_iter)
        graph = _union_graph([blocks[i][0] for i in active])
        llr = np.concatenate([llr_vn[i] for i in active])
        if v2c is None:
            v2c = llr[graph.vn_of_cn_edge]
        for _ in range(chunk):
            v2c, x_tot = _bp_iteration(v2c, llr, graph, llr_max)
        done_iter += chunk
        hard = x_tot <= 0
        last = done_iter >= LDPC_ITERATIONS
        still = []
        keep = []
        for j, i in enumerate(active):
            code = blocks[i][0]
            v0 = graph.vn_offsets[j]
            kinfo = code.k - code.crc_bits
            info = hard[v0:v0 + kinfo].astype(np.uint8)
            parity = (info.astype(np.float32) @ code.crc_parity).astype(np.int64) & 1
            ok = bool(np.array_equal(parity.astype(bool), hard[v0 + kinfo:v0 + code.k]))
            if ok or last:
                out[i] = (info, ok)
            else:
                still.append(i)
                keep.append(slice(graph.edge_offsets[j], graph.edge_offsets[j + 1]))
        if still and len(still) < len(active):
            v2c = np.concatenate([v2c[s] for s in keep])
        active = still
    return [r for r in out if r is not None]


def _decode_groups_sionna(items: Sequence[tuple[np.ndarray, CodeBlockLayout]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Reference path: every group of blocks sharing a code decoded by Sionna's decoder (chunked early stop)."""
    import torch

    groups: dict[tuple[int, int, int, str], list[int]] = {}
    for i, (llr, lay) in enumerate(items):
        groups.setdefault((lay.k, lay.n, lay.bits_per_symbol, lay.crc), []).append(i)
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
    with torch.no_grad(), torch_threads(TORCH_THREADS):
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
