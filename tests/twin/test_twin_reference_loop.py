"""The batched environment against the literal per-environment, per-link loop of bench/bench_twin.py.

With a static channel the two must agree slot after slot, which checks PF scheduling (Algorithm 1),
its averaging, eq. 14 and the goodput of eqs. 15-17 end to end.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from twin import DTNConfig, LinkAdaptationNetwork

_BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_twin.py"


def _reference_loop_class():
    # The benchmark imports its sibling benchlib as a script would (its directory first on the path).
    sys.path.insert(0, str(_BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_twin_reference", _BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(_BENCH.parent))
    return module.ReferenceLoop


def test_batched_twin_equals_per_link_loop_over_an_episode():
    reference_cls = _reference_loop_class()
    cfg = DTNConfig(fading=False, phi_aci=0.3, phi_hwi=0.2, kappa_t=0.1, acir1_db=15.0, acir2_db=25.0)
    env = LinkAdaptationNetwork(cfg, batch_size=4, dtype=torch.float64)
    env.reset(21)
    state = {"large_scale_gain": env.large_scale_gain.numpy(), "fading": np.ones(env.large_scale_gain.shape, complex),
             "cluster": env.cluster.numpy(), "average_throughput": env.average_throughput.numpy(),
             "rrb": env.rrb.numpy()}
    reference = reference_cls(cfg, state, rho=1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):
        action = torch.randint(0, 48, (4, 20), generator=gen)
        reward = env.step(action).reward.numpy()
        expected = reference.step(action.numpy())
        assert np.allclose(reward, expected, rtol=1e-10, atol=1e-12)
        assert np.array_equal(env.rrb.numpy(), reference.rrb)
