"""Constellations, soft demapping and the LDPC/CRC code-block chain."""

import dataclasses

import numpy as np
import pytest

from radio.ofdm.fec import CODE_RATES, code_rate, decode_blocks, decode_groups, encode_blocks, plan_code_blocks
from radio.ofdm.modulation import MODULATIONS, constellation, demap_llr, evm_rms, map_bits


@pytest.mark.parametrize("mod", ["qpsk", "16qam", "64qam", "256qam"])
def test_constellations_equal_sionna_38_211_labelling(mod):
    from sionna.phy.mapping import Constellation

    ref = Constellation("qam", MODULATIONS[mod]).points.numpy()
    np.testing.assert_allclose(constellation(mod), ref, atol=1e-6)


@pytest.mark.parametrize("mod", list(MODULATIONS))
def test_unit_energy_and_llr_signs(mod):
    pts = constellation(mod)
    assert np.mean(np.abs(pts) ** 2) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 600 * MODULATIONS[mod]).astype(np.uint8)
    llr = demap_llr(map_bits(bits, mod), 1e-3, mod)
    np.testing.assert_array_equal((llr > 0).astype(np.uint8), bits)


def test_llrs_match_sionna_app_demapper():
    import torch
    from sionna.phy.mapping import Demapper

    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, 4000).astype(np.uint8)
    y = map_bits(bits, "16qam") + 0.2 * (rng.standard_normal(1000) + 1j * rng.standard_normal(1000))
    ref = Demapper("app", "qam", 4)(torch.from_numpy(y.astype(np.complex64)), torch.tensor(0.08)).numpy()
    np.testing.assert_allclose(demap_llr(y, 0.08, "16qam"), ref.reshape(-1), rtol=1e-3, atol=1e-3)


def test_evm_helper():
    x = constellation("qpsk")
    assert evm_rms(x, x) == 0.0
    assert evm_rms(x * 1.1, x) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        evm_rms(x[:2], x)


def test_segmentation_fills_the_capacity_with_equal_blocks():
    lay = plan_code_blocks(19200, code_rate("5/6"), 6, max_block_bits=1024)
    assert lay.n_blocks == 16 and lay.n % 6 == 0 and lay.coded_bits <= 19200 < lay.coded_bits + 16 * 6
    assert lay.k / lay.n == pytest.approx(5 / 6, abs=1e-3)
    assert lay.crc == "CRC24B"
    small = plan_code_blocks(144, code_rate("1/2"), 2)
    assert (small.n_blocks, small.crc) == (1, "CRC16")
    with pytest.raises(ValueError, match="fewer than 24"):
        plan_code_blocks(30, code_rate("1/2"), 1)
    with pytest.raises(ValueError, match="allowed: 1/3, 1/2"):
        code_rate("7/8")


def test_code_blocks_round_trip_and_crc_catches_errors():
    lay = plan_code_blocks(4000, CODE_RATES["1/2"], 4, max_block_bits=512)
    rng = np.random.default_rng(3)
    u = rng.integers(0, 2, (lay.n_blocks, lay.info_bits_per_block)).astype(np.uint8)
    llr = (2.0 * encode_blocks(u, lay) - 1.0) * 8.0
    bits, ok = decode_blocks(llr, lay)
    assert ok.all() and np.array_equal(bits, u)
    llr[1] = rng.standard_normal(lay.n) * 8.0  # pure noise: the decoder cannot recover it
    one = dataclasses.replace(lay, n_blocks=1)
    (bits, ok), (bits2, ok2) = decode_groups([(llr, lay), (llr[:1], one)])
    assert ok[0] and not ok[1] and ok2[0]
