"""Batched PF scheduling against a literal Algorithm 1 loop."""

import numpy as np
import pytest
import torch

from twin.scheduling import interleaved_rrb_owner, proportional_fair_schedule, update_average_throughput


def _algorithm1(metric: np.ndarray, cluster: np.ndarray, num_aps: int, rrbs_per_ap: int) -> np.ndarray:
    """Literal Algorithm 1: for each AP, for each of its RRBs in order, give it to the unserved member
    with the largest PF metric (first index wins ties)."""
    batch, num_devices = metric.shape
    out = -np.ones((batch, num_devices), dtype=int)
    for b in range(batch):
        for k in range(num_aps):
            served = set()
            for j in range(rrbs_per_ap):
                best, best_value = None, -np.inf
                for n in range(num_devices):
                    if cluster[b, n] == k and n not in served and metric[b, n] > best_value:
                        best, best_value = n, metric[b, n]
                if best is None:
                    break
                served.add(best)
                out[b, best] = k + num_aps * j
    return out


@pytest.mark.parametrize("num_aps, rrbs_per_ap, num_devices", [(4, 2, 20), (3, 3, 7), (2, 5, 6), (1, 1, 4)])
def test_pf_matches_literal_algorithm1(num_aps, rrbs_per_ap, num_devices):
    rng = np.random.default_rng(num_aps * 10 + rrbs_per_ap)
    metric = rng.exponential(size=(16, num_devices))
    metric[0, :3] = 1.0                                               # ties
    cluster = rng.integers(0, num_aps, size=(16, num_devices))
    batched = proportional_fair_schedule(torch.tensor(metric), torch.tensor(cluster), num_aps, rrbs_per_ap)
    assert np.array_equal(batched.numpy(), _algorithm1(metric, cluster, num_aps, rrbs_per_ap))


def test_schedule_respects_ownership_and_exclusivity():
    rng = np.random.default_rng(0)
    metric = torch.tensor(rng.random((32, 20)))
    cluster = torch.tensor(rng.integers(0, 4, (32, 20)))
    rrb = proportional_fair_schedule(metric, cluster, 4, 2)
    owner = interleaved_rrb_owner(8, 4)
    for b in range(32):
        used = rrb[b][rrb[b] >= 0]
        assert len(set(used.tolist())) == len(used)                   # one link per RRB
        assert torch.equal(owner[used], cluster[b][rrb[b] >= 0])      # a link uses its own AP's RRBs
        for k in range(4):                                             # every RRB used if the AP has enough members
            assert int(((cluster[b] == k) & (rrb[b] >= 0)).sum()) == min(2, int((cluster[b] == k).sum()))


def test_pf_average_update():
    avg = update_average_throughput(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0]), 0.1)
    assert avg.tolist() == pytest.approx([1.2, 1.8])
