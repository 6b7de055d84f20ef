"""Learning signal: on a small twin the trained shared DQN beats random and MaxP-3GPP-CQI."""

from __future__ import annotations

from agents.baselines import MaxPowerCQIPolicy, RandomPolicy
from agents.dqn import ContinualTrainer, DQNConfig, evaluate_policy
from twin.config import DTNConfig
from twin.network import LinkAdaptationNetwork


def test_trained_policy_beats_random_and_maxp_cqi():
    # A small network with strong hardware impairments and the paper's printed eq. 17: the CQI table is then far
    # from the best MCS, so there is a clear margin for a learner to find (about 2x, the per-link oracle's).
    dtn = DTNConfig(num_aps=2, num_devices=4, num_rrbs=4, slots_per_episode=10, ser_model="printed",
                    kappa_t=0.15, kappa_r=0.15)
    config = DQNConfig(episodes=30, ota_every=0, num_envs=8, twin_context="independent", reward="link", seed=0)
    trainer = ContinualTrainer(config, LinkAdaptationNetwork(dtn, 8), LinkAdaptationNetwork(dtn, 8))
    trainer.run()

    evaluation = LinkAdaptationNetwork(dtn.with_updates(slots_per_episode=20), batch_size=8)
    trained = trainer.evaluate(evaluation, episodes=2, seed=7).mean_reward
    maxp = evaluate_policy(MaxPowerCQIPolicy(), evaluation, 2, 7).mean_reward
    uniform = evaluate_policy(RandomPolicy(seed=1), evaluation, 2, 7).mean_reward
    assert trained > 1.3 * maxp, (trained, maxp)
    assert trained > 2.0 * uniform, (trained, uniform)
