"""The twin's decoder gains fitted to code-block outcomes: recovers known gains, keeps unobserved rates."""

import math

import pytest
import torch

from calibration.record import TwinParameters

from twin import DTNConfig, fit_coding_gain, from_calibration
from twin.link import packet_error_rate


def _synthetic_blocks(gains: tuple[float, ...], seed: int = 0) -> list[dict]:
    """Blocks drawn from the twin's own PER model with ``gains``: 16 blocks per (MCS, SINR) point."""
    cfg = DTNConfig()
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for modulation, order in (("bpsk", 2), ("qpsk", 4), ("16qam", 16), ("64qam", 64)):
        for c, rate in enumerate(("1/2", "3/4", "5/6")):
            for sinr_db in torch.arange(-10.0, 32.0, 0.5).tolist():
                per = float(packet_error_rate(torch.tensor([10 ** (sinr_db / 10)], dtype=torch.float64),
                                              torch.tensor([order]), torch.tensor([c]), cfg.packet_bits, gains,
                                              cfg.ser_model))
                ok = int((torch.rand(16, generator=gen, dtype=torch.float64) >= per).sum())
                rows.append({"modulation": modulation, "rate": rate, "sinr_db": sinr_db, "blocks": 16,
                             "blocks_ok": ok})
    return rows


def measured(values: dict) -> TwinParameters:
    """Twin parameters as a calibration record carries them."""
    return TwinParameters.from_mapping(values)


def test_fit_recovers_the_gains_that_generated_the_blocks():
    truth = (10.0, 6.5, 4.0)
    gains, details = fit_coding_gain(_synthetic_blocks(truth))
    assert gains == pytest.approx(truth, abs=0.3)
    assert set(details) == {"1/2", "3/4", "5/6"}
    assert all(d["blocks"] > 0 and math.isfinite(d["log_likelihood"]) for d in details.values())


def test_rates_without_blocks_keep_the_config_gain_and_bad_records_are_refused():
    blocks = [b for b in _synthetic_blocks((9.0, 6.0, 5.0), seed=1) if b["rate"] == "3/4"]
    gains, details = fit_coding_gain(blocks)
    base = DTNConfig().coding_gain_db
    assert gains[0] == base[0] and gains[2] == base[2]
    assert gains[1] == pytest.approx(6.0, abs=0.4)
    assert list(details) == ["3/4"]
    record = {"kappa_t": 0.02, "kappa_r": 0.01, "acir1_db": 35.0, "acir2_db": 48.0}
    assert from_calibration(measured({**record, "coding_gain_db": list(gains)})).coding_gain_db == gains
    with pytest.raises(ValueError, match="coding_gain_db"):
        from_calibration(measured({**record, "coding_gain_db": [1.0, 2.0]}))
