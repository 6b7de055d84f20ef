"""``twin.phi.PhiEstimator``: least squares through the origin, per episode and running with a memory."""

from __future__ import annotations

import pytest
import torch

from twin.phi import PhiEstimator


def test_no_evidence_is_none_and_one_episode_is_the_least_squares_scale():
    est = PhiEstimator()
    assert est.phi() is None
    measured, modelled = torch.tensor([2.0, 3.1, 0.5]), torch.tensor([1.0, 2.0, 0.4])
    est.add(measured, modelled)
    expected = float((measured * modelled).sum() / (modelled * modelled).sum()) - 1.0
    assert est.phi() == pytest.approx(expected, rel=1e-6)
    est.start_episode()
    assert est.phi() is None


def test_floats_and_tensors_accumulate_alike():
    pairs = [(2.0, 1.0), (3.0, 2.5), (0.1, 0.2)]
    by_float, by_tensor = PhiEstimator(), PhiEstimator()
    for m, e in pairs:
        by_float.add(m, e)
    by_tensor.add(torch.tensor([m for m, _ in pairs], dtype=torch.float64),
                  torch.tensor([e for _, e in pairs], dtype=torch.float64))
    assert by_float.phi() == pytest.approx(by_tensor.phi(), rel=1e-12)


def test_memory_weighs_earlier_episodes_down_and_state_round_trips():
    est = PhiEstimator(memory=0.5)
    est.add(3.0, 1.0)            # episode 1: ratio 3
    est.end_episode()
    est.add(1.0, 1.0)            # episode 2: ratio 1, in flight
    assert est.phi() == pytest.approx((0.5 * 3.0 + 1.0) / (0.5 * 1.0 + 1.0) - 1.0)
    est.end_episode()
    other = PhiEstimator(memory=0.5)
    other.load_state(est.state())
    assert other.phi() == pytest.approx(est.phi())
    assert PhiEstimator(memory=0.0).phi() is None
