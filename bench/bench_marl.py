"""Decision cost of the HetNet policies: latency of one slot's decisions for all N UEs on one CPU thread and
FLOPs per decision, against the paper's 12.45 ms per slot at N = 200.

    .venv/bin/python bench/bench_marl.py [--sizes 20,40,100,200] [--repeats 200] [--out results.json]

Prints one JSON object:

* ``latency``: for every scheme (MADDQN-DMADDPG, QMIX, MADDPG, MAPPO, WMMSE + strongest-signal association, and
  DQN-DDDPG at the sizes where its centralised networks stay small) and N, the median latency of ``policy.act`` on
  one network (ms), FLOPs per slot and per UE (``torch.utils.flop_counter``: matrix products, 2 per multiply-add);
* ``vs_paper_n200``: the paper's 12.45 ms divided by MADDQN-DMADDPG's latency at N = 200 (same decision, this
  machine, one thread);
* ``compiled_vs_eager_n200``: MADDQN-DMADDPG's eager latency over its compiled form's (``policy.compiled()``, the
  one timed in ``latency``), both measured in this run;
* ``attention_n200``: the actor's masked user attention at N = 200 against ``scaled_dot_product_attention`` with the
  boolean mask (the peer), median ms of each and their ratio.

The networks are untrained: latency and FLOPs do not depend on the weights.
"""

from __future__ import annotations

import argparse
import platform

import torch

from benchlib import emit_result
from testbed.repro.hetnet import PAPER, decision_cost
from testbed.timing import median_call_ms

SCHEMES = ("maddqn-dmaddpg", "qmix", "maddpg", "mappo", "wmmse-ssa", "dqn-dddpg")


def attention_cost(num_ues: int, repeats: int, num_small_cells: int = 4) -> dict[str, float]:
    """Median ms of the actor's masked user attention (``UserAttention``) on one HetNet observation, against the peer
    ``torch.nn.functional.scaled_dot_product_attention`` with the boolean in-range mask on the same projections;
    the largest difference of their outputs."""
    from agents.marl.common import UserAttention, in_range_mask, user_features
    from twin import HetNetConfig, HetNetwork

    config = HetNetConfig(num_small_cells=num_small_cells, num_ues=num_ues)
    observation = HetNetwork(config, batch_size=1).reset(0).float()
    attention = UserAttention(config.num_bs)

    def peer() -> torch.Tensor:
        q, k, v = attention.projection(user_features(observation, config.num_bs)).chunk(3, dim=-1)
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=in_range_mask(observation, config.num_bs))

    def ours() -> torch.Tensor:
        return attention(observation)

    out = {}
    with torch.no_grad():
        for name, fn in (("ours_ms", ours), ("sdpa_ms", peer)):
            out[name] = median_call_ms(fn, repeats)
        out["max_abs_difference"] = float((ours() - peer()).abs().max())
    out["sdpa_over_ours"] = out["sdpa_ms"] / out["ours_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,40,100,200", help="comma-separated N values")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--small-cells", type=int, default=4)
    parser.add_argument("--subchannels", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    try:
        sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}; allowed: comma-separated integers such as 20,40,100,200")
    torch.set_num_threads(1)
    latency: dict[str, dict[int, dict[str, float]]] = {}
    for scheme in SCHEMES:
        latency[scheme] = {}
        for n in sizes:
            if scheme == "dqn-dddpg" and n > 100:
                continue                                       # its first layer grows as N^2
            latency[scheme][n] = decision_cost(scheme, n, args.small_cells, args.subchannels, args.repeats)
    result = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1,
                    "processor": platform.processor() or platform.machine()},
        "network": {"num_small_cells": args.small_cells, "num_subchannels": args.subchannels},
        "latency": latency,
        "attention_n200": attention_cost(200, args.repeats, args.small_cells),
    }
    ours = latency["maddqn-dmaddpg"].get(200)
    if ours is not None:
        result["vs_paper_n200"] = PAPER["decision_time_ms_n200"] / ours["latency_ms"]
        result["compiled_vs_eager_n200"] = ours["eager_latency_ms"] / ours["latency_ms"]
    emit_result(result, args.out)


if __name__ == "__main__":
    main()
