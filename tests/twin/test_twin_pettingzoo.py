"""The PettingZoo adapter passes PettingZoo's own parallel API test."""

import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test  # noqa: E402

from twin import DTNConfig  # noqa: E402
from twin.pettingzoo_env import LinkAdaptationParallelEnv  # noqa: E402


def test_parallel_api():
    env = LinkAdaptationParallelEnv(DTNConfig(num_devices=8, slots_per_episode=30))
    parallel_api_test(env, num_cycles=60)


def test_shared_reward_and_truncation():
    env = LinkAdaptationParallelEnv(DTNConfig(num_devices=6, slots_per_episode=3))
    observations, infos = env.reset(seed=0)
    assert set(observations) == set(env.possible_agents)
    for t in range(3):
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)
        assert len(set(rewards.values())) == 1
        total = sum(info["rate_mbps"] for info in infos.values())
        assert next(iter(rewards.values())) == pytest.approx(total, rel=1e-5)
    assert all(truncations.values()) and env.agents == []
