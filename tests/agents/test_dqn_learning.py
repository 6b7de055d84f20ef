"""Learning signal: on a small twin the trained shared DQN beats random and MaxP-3GPP-CQI."""

from __future__ import annotations

import pytest

from agents.baselines import MaxPowerCQIPolicy, RandomPolicy
from agents.continual import ContinualTrainer
from agents.dqn import DQNConfig, evaluate_policy
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


@pytest.mark.slow
def test_the_run_learner_settings_beat_maxp_cqi_on_the_default_twin_with_measured_decoder_gains():
    # `testbed run`'s learner (myopic, exploring 10 % in the twin, 50k replay) on the default network with the decoder
    # gains a calibration of the default simulator measures: it should find most of what choosing the MCS from the
    # coming slot's SNR is worth over the CQI table of the last SINR (+4.9 % with docs/configs/twin-myopic.toml).
    dtn = DTNConfig(coding_gain_db=(11.1, 6.85, 5.1))
    config = DQNConfig(episodes=200, ota_every=0, num_envs=8, twin_context="independent", reward="link", seed=0,
                       discount=0.0, epsilon_end=0.1, replay_capacity=50_000)
    trainer = ContinualTrainer(config, LinkAdaptationNetwork(dtn, 8), LinkAdaptationNetwork(dtn, 8))
    trainer.run()
    evaluation = LinkAdaptationNetwork(dtn.with_updates(slots_per_episode=40), batch_size=8)
    trained = trainer.evaluate(evaluation, episodes=4, seed=12345).mean_reward
    maxp = evaluate_policy(MaxPowerCQIPolicy(), evaluation, 4, 12345).mean_reward
    assert trained > 1.03 * maxp, (trained, maxp)
