"""Training throughput of the shared-DQN continual trainer (Algorithm 2), vectorised over B twin networks.

    .venv/bin/python bench/bench_dqn.py [--episodes 6] [--slots 20] [--threads 1] [--out results.json]

Prints one JSON object:

* ``trainer``: for B in {1, 8, 32} at the paper's K = 4, N = 20, the trainer's slots/s (one vectorised step of
  the B networks + action selection + replay insertion + one TD update) and link-slots/s, and the ratio of
  link-slots/s to B = 1's: what vectorising the twin buys against running the B networks one after another.
* ``td_update_ms``: median time of one TD update (batch 64, the paper's 6 -> 64 -> 128 -> 48 tanh network).
* ``act_ms``: median time of epsilon-greedy action selection for B x N = 1 x 20 and 32 x 100 links.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from benchlib import emit_result
from agents.continual import ContinualTrainer
from agents.dqn import DQNAgent, DQNConfig
from agents.replay import ReplayMemory
from testbed.timing import median_call_ms
from twin import AnalyticPhysical, DTNConfig, LinkAdaptationNetwork


def trainer_throughput(batch: int, episodes: int, slots: int) -> dict[str, float]:
    """Slots/s and link-slots/s of twin episodes on B networks (after one warm-up episode)."""
    dtn = DTNConfig(slots_per_episode=slots)
    config = DQNConfig(episodes=episodes + 1, ota_every=0, num_envs=batch, learning_starts=64)
    trainer = ContinualTrainer(config, LinkAdaptationNetwork(dtn, batch), AnalyticPhysical(0.4, dtn, batch))
    trainer.run(until_episode=1)
    started = time.perf_counter()
    trainer.run()
    elapsed = time.perf_counter() - started
    played = episodes * slots
    return {"B": batch, "slots_per_s": played / elapsed, "link_slots_per_s": played * batch * dtn.num_devices / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = [trainer_throughput(b, args.episodes, args.slots) for b in (1, 8, 32)]
    for row in rows:
        row["vs_B1_link_slots"] = row["link_slots_per_s"] / rows[0]["link_slots_per_s"]

    agent = DQNAgent(DQNConfig(), 6, 48)
    memory = ReplayMemory(5000, 6)
    memory.add(torch.randn(5000, 6), torch.randint(0, 48, (5000,)), torch.randn(5000), torch.randn(5000, 6),
               torch.zeros(5000, dtype=torch.bool), 0)
    batch = memory.sample(64)
    generator = torch.Generator().manual_seed(0)
    result = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                    "processor": platform.processor() or platform.machine()},
        "trainer": rows,
        "td_update_ms": median_call_ms(lambda: agent.learn(batch), 200, warmup=5),
        "replay_sample_ms": median_call_ms(lambda: memory.sample(64), 200, warmup=5),
        "act_ms": {f"{b}x{n}": median_call_ms(lambda b=b, n=n: agent.act(torch.randn(b * n, 6), 0.1, generator), 200,
                                              warmup=5)
                   for b, n in ((1, 20), (32, 100))},
    }
    emit_result(result, args.out)


if __name__ == "__main__":
    main()
