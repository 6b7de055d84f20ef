"""Known sequences: Zadoff-Chu, binary m-sequences, the 3GPP length-31 Gold sequence, LTE PSS/SSS/CRS and NR
PSS/SSS (TS 36.211 sections 6.10.1, 6.11, 7.2; TS 38.211 sections 7.4.2.2, 7.4.2.3).

Every function returns a fresh numpy array; shapes and dtypes are in each docstring.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LTE_PSS_ROOTS = (25, 29, 34)
"""ZC root of the LTE PSS for N_ID^(2) = 0, 1, 2."""

LTE_N_RB_MAX = 110
"""N_RB^max,DL: the CRS sequence is defined for this many RBs and centred on the actual grid."""


def zadoff_chu(root: int, length: int) -> np.ndarray:
    """ZC sequence ``exp(-j pi u n (n + 1) / N)``, n = 0..N-1 (odd N). complex128, shape ``[N]``."""
    n = np.arange(length)
    return np.exp(-1j * np.pi * root * n * (n + 1) / length)


def largest_prime_at_most(n: int) -> int:
    """The largest prime <= ``n`` (n >= 2)."""
    def is_prime(p: int) -> bool:
        return p >= 2 and all(p % d for d in range(2, int(p ** 0.5) + 1))
    while not is_prime(n):
        n -= 1
    return n


def lfsr(taps: tuple[int, ...], init: tuple[int, ...], length: int) -> np.ndarray:
    """Binary sequence ``x(i + d) = sum_{t in taps} x(i + t) mod 2`` with ``x(0..d-1) = init``.
    uint8, shape ``[length]``."""
    d = len(init)
    x = np.zeros(length + d, dtype=np.uint8)
    x[:d] = init
    for i in range(length):
        x[i + d] = sum(int(x[i + t]) for t in taps) & 1
    return x[:length]


# Primitive polynomials x^d + x^t + 1 written as (degree, feedback taps of x(i + d) = x(i + t) + x(i)).
_M_SEQUENCE_POLYNOMIALS: dict[int, tuple[int, ...]] = {7: (4, 0), 9: (4, 0), 10: (3, 0), 11: (2, 0)}


def m_sequence_bpsk(length: int, shift: int = 0) -> np.ndarray:
    """BPSK (+-1) binary m-sequence of the smallest supported degree (7 = the NR PSS polynomial, 9, 10, 11) whose
    period covers ``length``, cyclically shifted by ``shift`` and truncated. float64, shape ``[length]``."""
    for degree, taps in sorted(_M_SEQUENCE_POLYNOMIALS.items()):
        period = 2 ** degree - 1
        if period >= length:
            init = (0, 1, 1, 0, 1, 1, 1) if degree == 7 else (1,) + (0,) * (degree - 1)
            x = lfsr(taps, init, period)
            return 1.0 - 2.0 * np.roll(x, -shift)[:length].astype(np.float64)
    raise ValueError(f"m-sequence of length {length} is longer than the longest supported period 2047")


def gold31(c_init: int, length: int) -> np.ndarray:
    """The 3GPP pseudo-random sequence c(n) (36.211 7.2, 38.211 5.2.1), N_c = 1600. uint8, shape ``[length]``."""
    nc = 1600
    total = length + nc
    x1 = np.zeros(total + 31, dtype=np.uint8)
    x2 = np.zeros(total + 31, dtype=np.uint8)
    x1[0] = 1
    x2[:31] = [(c_init >> i) & 1 for i in range(31)]
    for n in range(total):
        x1[n + 31] = x1[n + 3] ^ x1[n]
        x2[n + 31] = x2[n + 3] ^ x2[n + 2] ^ x2[n + 1] ^ x2[n]
    return (x1[nc:nc + length] ^ x2[nc:nc + length]).astype(np.uint8)


@lru_cache(maxsize=None)
def lte_pss(n_id2: int) -> np.ndarray:
    """LTE PSS d_u(n), n = 0..61 (the length-63 ZC with its centre punctured). complex128, shape ``[62]``."""
    u = LTE_PSS_ROOTS[n_id2]
    n = np.arange(62)
    m = np.where(n < 31, n * (n + 1), (n + 1) * (n + 2))
    return np.exp(-1j * np.pi * u * m / 63)


@lru_cache(maxsize=None)
def _lte_sss_base() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    init = (0, 0, 0, 0, 1)
    s = 1 - 2 * lfsr((2, 0), init, 31).astype(np.int64)
    c = 1 - 2 * lfsr((3, 0), init, 31).astype(np.int64)
    z = 1 - 2 * lfsr((4, 2, 1, 0), init, 31).astype(np.int64)
    return s, c, z


def lte_sss_indices(n_id1: int) -> tuple[int, int]:
    """(m0, m1) of the SSS for N_ID^(1) (36.211 Table 6.11.2.1-1 by its formula)."""
    qp = n_id1 // 30
    q = (n_id1 + qp * (qp + 1) // 2) // 30
    mp = n_id1 + q * (q + 1) // 2
    m0 = mp % 31
    m1 = (m0 + mp // 31 + 1) % 31
    return m0, m1


@lru_cache(maxsize=None)
def lte_sss(n_id1: int, n_id2: int, subframe5: bool) -> np.ndarray:
    """LTE SSS d(n), n = 0..61, for subframe 0 (``subframe5`` False) or 5. float64 (+-1), shape ``[62]``."""
    s, c, z = _lte_sss_base()
    m0, m1 = lte_sss_indices(n_id1)
    n = np.arange(31)
    s0, s1 = s[(n + m0) % 31], s[(n + m1) % 31]
    c0, c1 = c[(n + n_id2) % 31], c[(n + n_id2 + 3) % 31]
    z0, z1 = z[(n + m0 % 8) % 31], z[(n + m1 % 8) % 31]
    d = np.empty(62)
    if not subframe5:
        d[0::2] = s0 * c0
        d[1::2] = s1 * c1 * z0
    else:
        d[0::2] = s1 * c0
        d[1::2] = s0 * c1 * z1
    return d


def lte_crs(cell_id: int, slot: int, symbol: int, n_rb: int) -> np.ndarray:
    """LTE CRS values of port 0 on one OFDM symbol of slot ``slot`` (0..19), symbol 0 or 4, for a grid of
    ``n_rb`` RBs: complex128, shape ``[2 n_rb]``, lowest subcarrier first (see :func:`lte_crs_subcarriers`)."""
    c_init = (1 << 10) * (7 * (slot + 1) + symbol + 1) * (2 * cell_id + 1) + 2 * cell_id + 1
    c = gold31(c_init, 4 * LTE_N_RB_MAX)
    r = ((1 - 2 * c[0::2].astype(np.float64)) + 1j * (1 - 2 * c[1::2].astype(np.float64))) / np.sqrt(2)
    m = np.arange(2 * n_rb) + LTE_N_RB_MAX - n_rb
    return r[m]


def lte_crs_subcarriers(cell_id: int, symbol: int, n_rb: int) -> np.ndarray:
    """Subcarrier index k (0 = lowest of the 12 n_rb grid, DC not counted) of port-0 CRS on symbol 0 or 4 of a
    slot. int64, shape ``[2 n_rb]``."""
    v = 0 if symbol == 0 else 3
    return 6 * np.arange(2 * n_rb) + (v + cell_id % 6) % 6


@lru_cache(maxsize=None)
def nr_pss(n_id2: int) -> np.ndarray:
    """NR PSS d(n), n = 0..126. float64 (+-1), shape ``[127]``."""
    x = lfsr((4, 0), (0, 1, 1, 0, 1, 1, 1), 127)
    m = (np.arange(127) + 43 * n_id2) % 127
    return 1.0 - 2.0 * x[m]


@lru_cache(maxsize=None)
def _nr_sss_base() -> tuple[np.ndarray, np.ndarray]:
    init = (1, 0, 0, 0, 0, 0, 0)
    return lfsr((4, 0), init, 127), lfsr((1, 0), init, 127)


@lru_cache(maxsize=None)
def nr_sss(n_id1: int, n_id2: int) -> np.ndarray:
    """NR SSS d(n), n = 0..126, for N_ID^(1) in 0..335. float64 (+-1), shape ``[127]``."""
    x0, x1 = _nr_sss_base()
    m0 = 15 * (n_id1 // 112) + 5 * n_id2
    m1 = n_id1 % 112
    n = np.arange(127)
    return (1.0 - 2.0 * x0[(n + m0) % 127]) * (1.0 - 2.0 * x1[(n + m1) % 127])
