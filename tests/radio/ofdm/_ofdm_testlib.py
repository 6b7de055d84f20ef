"""Shared helpers of the OFDM tests: noise for a target SNR, BLER-crossing search, the shared data folder."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from tests.helpers.channels import awgn
from radio.ofdm.slot import TxSlot

REPO = Path(__file__).resolve().parents[3]


def shared_data_dir() -> Path:
    """TESTBED_SHARED_DATA, else the repository's ../shared/data."""
    return Path(os.environ.get("TESTBED_SHARED_DATA", REPO.parent / "shared" / "data"))


def noise_rms_for_snr(tx: TxSlot, snr_db: float, power_db: float = 0.0) -> float:
    """Time-domain noise RMS giving ``snr_db`` per RE (Es/N0) for a link at ``power_db``."""
    return tx.re_scale * 10 ** (power_db / 20) * 10 ** (-snr_db / 20)


def cyclic_rx(tx: TxSlot, rng: np.random.Generator, snr_db: float | None = None, offset: int = 0,
              power_db: float = 0.0) -> np.ndarray:
    """Two slot lengths of the cyclic waveform starting ``offset`` samples into it, with AWGN at ``snr_db``."""
    x = np.roll(np.tile(tx.waveform.astype(np.complex128), 2), -offset)
    if snr_db is not None:
        x = awgn(x, noise_rms_for_snr(tx, snr_db, power_db), rng)
    return x


def snr_at_bler(run: Callable[[float], tuple[int, int]], start_db: float, target: float = 0.1,
                step_db: float = 0.5, max_steps: int = 14) -> float:
    """SNR where BLER crosses ``target``: step from ``start_db`` until the BLER brackets the target, then
    interpolate log10(BLER) linearly. ``run(snr) -> (block errors, blocks)``."""
    def bler(snr: float) -> float:
        err, n = run(snr)
        return max(err, 0.5) / n
    snr = start_db
    b = bler(snr)
    direction = 1.0 if b > target else -1.0
    for _ in range(max_steps):
        nxt = snr + direction * step_db
        bn = bler(nxt)
        if (bn <= target) == (direction > 0):
            lo_snr, lo_b, hi_snr, hi_b = (snr, b, nxt, bn) if direction > 0 else (nxt, bn, snr, b)
            # lo_snr has BLER above the target, hi_snr below
            f = (math.log10(lo_b) - math.log10(target)) / (math.log10(lo_b) - math.log10(hi_b))
            return lo_snr + f * (hi_snr - lo_snr)
        snr, b = nxt, bn
    raise AssertionError(f"BLER never crossed {target} between {start_db} and {snr} dB")
