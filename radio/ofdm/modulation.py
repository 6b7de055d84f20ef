"""Constellations (TS 38.211 section 5.1 labelling, unit average energy), bit mapping, soft demapping, EVM.

Square QAM with ``m`` bits per symbol is two Gray-labelled PAMs: bits ``0, 2, 4, ...`` select the in-phase level
and bits ``1, 3, 5, ...`` the quadrature level, exactly as 38.211 writes 16/64/256QAM (and as Sionna's ``qam``
constellation does, so LLRs here and there agree). BPSK is real, +-1.

LLRs follow Sionna's convention: ``log p(b = 1) / p(b = 0)`` (positive means "1").
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

MODULATIONS: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
"""Modulation name -> bits per symbol."""


def bits_per_symbol(modulation: str) -> int:
    """Bits per symbol of ``modulation`` (case-insensitive); ValueError lists the allowed names."""
    key = str(modulation).strip().lower()
    if key not in MODULATIONS:
        raise ValueError(f"unknown modulation {modulation!r}; allowed: {', '.join(MODULATIONS)}")
    return MODULATIONS[key]


def _pam_gray(bits: tuple[int, ...]) -> int:
    if len(bits) == 1:
        return 1 - 2 * bits[0]
    return (1 - 2 * bits[0]) * (2 ** (len(bits) - 1) - _pam_gray(bits[1:]))


@lru_cache(maxsize=None)
def pam_levels(bits_per_dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Gray PAM of one dimension.

    Returns ``levels`` (float64, shape ``[2**b]``, the level of label ``i``, MSB first) and ``labels`` (uint8,
    shape ``[2**b, b]``, the bits of label ``i``).
    """
    b = bits_per_dimension
    labels = np.array([[(i >> (b - 1 - j)) & 1 for j in range(b)] for i in range(2 ** b)], dtype=np.uint8)
    levels = np.array([_pam_gray(tuple(int(x) for x in row)) for row in labels], dtype=np.float64)
    return levels, labels


def _scale(m: int) -> float:
    if m == 1:
        return 1.0
    levels, _ = pam_levels(m // 2)
    return float(np.sqrt(2.0 * np.mean(levels ** 2)))


@lru_cache(maxsize=None)
def _points(modulation: str) -> np.ndarray:
    """complex64 ``[2**m]``: the point of each label (MSB = first bit), unit mean energy."""
    m = bits_per_symbol(modulation)
    if m == 1:
        return np.array([1.0, -1.0], dtype=np.complex64)
    half = m // 2
    levels, _ = pam_levels(half)
    label = np.arange(2 ** m)
    # Bits 0, 2, 4, ... of a label select the in-phase level, bits 1, 3, 5, ... the quadrature one (MSB first).
    i_idx = sum(((label >> (m - 1 - 2 * j)) & 1) << (half - 1 - j) for j in range(half))
    q_idx = sum(((label >> (m - 2 - 2 * j)) & 1) << (half - 1 - j) for j in range(half))
    return ((levels[i_idx] + 1j * levels[q_idx]) / _scale(m)).astype(np.complex64)


@lru_cache(maxsize=None)
def constellation(modulation: str) -> np.ndarray:
    """All points of ``modulation`` (complex128, shape ``[2**m]``, unit mean energy); point ``i`` has the label
    whose binary representation (MSB = first bit) is ``i``."""
    return _points(modulation).astype(np.complex128)


def map_bits(bits: np.ndarray, modulation: str) -> np.ndarray:
    """Map bits to symbols.

    ``bits``: uint8 (0/1), shape ``[n * m]``. Returns complex64, shape ``[n]``, unit mean energy.
    """
    m = bits_per_symbol(modulation)
    # Each symbol's m bits packed MSB first into one byte (m <= 8): its label.
    labels = np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1, m), axis=1)[:, 0] >> (8 - m)
    return _points(modulation)[labels]


@lru_cache(maxsize=None)
def _bit_partition(bits_per_dimension: int) -> np.ndarray:
    """int64 ``[2**(b-1), b, 2]``: for each bit of a Gray-PAM label, the levels where it is 1 (``[..., 0]``) and 0
    (``[..., 1]``), in level order along the first axis."""
    _, labels = pam_levels(bits_per_dimension)
    return np.stack([np.stack([np.nonzero(labels[:, j] == 1)[0], np.nonzero(labels[:, j] == 0)[0]], axis=1)
                     for j in range(bits_per_dimension)], axis=1)


def _pam_llr(y: np.ndarray, noise_var_dim: np.ndarray, b: int, scale: float) -> np.ndarray:
    """Exact APP LLRs of one Gray-PAM dimension: y float (n,), noise variance per dimension (n,) -> (n, b)."""
    levels, _ = pam_levels(b)
    # Every bit's two log-sum-exps at once, each over its own half of the levels with its own maximum. The
    # levels run along the first axis and the symbols along the last, so every step is a long whole-array loop.
    pts = (levels / scale)[_bit_partition(b)]  # [2**(b-1), b, 2]
    metric = y - pts[..., None]  # [2**(b-1), b, 2, n]
    np.square(metric, out=metric)
    np.divide(metric, -2.0 * noise_var_dim, out=metric)
    mx = metric.max(axis=0)
    metric -= mx
    # exp below -708 returns subnormals on a slow path (ten times slower); a term under e^-700 next to the
    # maximum's e^0 = 1 leaves the sum unchanged to the last bit, so clipping there is exact.
    np.maximum(metric, -700.0, out=metric)
    np.exp(metric, out=metric)
    total = metric[0]
    for term in metric[1:]:
        total += term
    lse = np.log(total, out=total)
    lse += mx
    return (lse[:, 0] - lse[:, 1]).T


def demap_llr(symbols: np.ndarray, noise_var: np.ndarray | float, modulation: str) -> np.ndarray:
    """Exact (log-APP) bit LLRs of equalised symbols in complex AWGN.

    ``symbols``: complex, shape ``[n]``. ``noise_var``: float, scalar or shape ``[n]``, the complex noise variance
    per symbol (``E|z - x|^2`` with unit-energy ``x``). Returns float32, shape ``[n * m]``, in the bit order of
    :func:`map_bits`, ``log p(1)/p(0)``.
    """
    m = bits_per_symbol(modulation)
    y = np.asarray(symbols)
    nv = np.broadcast_to(np.maximum(np.asarray(noise_var, dtype=np.float64), 1e-12), y.shape).astype(np.float64)
    if m == 1:
        # The imaginary part carries only noise; the real part sees half the complex variance.
        return (-2.0 * y.real / (nv / 2.0)).astype(np.float32)
    half = m // 2
    scale = _scale(m)
    # I and Q in one pass (the PAM LLRs are computed row by row).
    both = _pam_llr(np.concatenate([y.real, y.imag]).astype(np.float64), np.tile(nv / 2.0, 2), half, scale)
    out = np.empty((y.size, m), dtype=np.float32)
    out[:, 0::2] = both[:y.size]
    out[:, 1::2] = both[y.size:]
    return out.reshape(-1)


def evm_rms(received: np.ndarray, ideal: np.ndarray) -> float:
    """RMS EVM (ratio, not %): ``sqrt(sum |received - ideal|^2 / sum |ideal|^2)``.

    ``received`` and ``ideal``: complex, same shape, equalised symbols and the symbols that were sent.
    """
    r = np.asarray(received).reshape(-1)
    x = np.asarray(ideal).reshape(-1)
    if r.shape != x.shape or x.size == 0:
        raise ValueError(f"evm_rms needs two non-empty arrays of the same size, got {r.shape} and {x.shape}")
    ref = float(np.sum(np.abs(x) ** 2))
    if ref <= 0:
        raise ValueError("evm_rms: the ideal symbols have zero energy")
    return float(np.sqrt(np.sum(np.abs(r - x) ** 2) / ref))


def evm_db(evm: float) -> float:
    """EVM ratio -> dB (20 log10)."""
    return float(20.0 * np.log10(max(evm, 1e-15)))
