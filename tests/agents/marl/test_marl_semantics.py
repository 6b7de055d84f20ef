"""Semantics of the HetNet multi-agent learners: shared parameters, target formulas, mixer monotonicity,
attention masking, action ranges, schedules, the block-offset code and save/load."""

from __future__ import annotations

import pytest
import torch

from agents.marl import (DQNDDDPGPolicy, CompiledMADDQNDMADDPGPolicy, MADDPGPolicy, MADDQNDMADDPG, MADDQNDMADDPGConfig,
                         MADDQNDMADDPGPolicy, MAPPOPolicy, QMIXPolicy)
from agents.marl.common import (UserAttention, block_from_offset, clipped_double_q_target, double_q_target,
                                feature_size, linear_epsilon, local_features)
from agents.marl.qmix import MonotonicMixer
from agents.registry import load_policy
from twin import HetNetConfig, HetNetwork

CONFIG = HetNetConfig(num_small_cells=2, num_ues=6, num_subchannels=4, slots_per_episode=5)


def _observation(seed: int = 0, batch: int = 2, config: HetNetConfig = CONFIG) -> torch.Tensor:
    return HetNetwork(config, batch_size=batch).reset(seed)


def test_same_observation_gives_same_q_and_split_whichever_ue_holds_it():
    torch.manual_seed(0)
    policy = MADDQNDMADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks)
    observation = _observation()
    # UE 4 gets UE 1's observation: with shared parameters both must get the same values.
    observation[:, 4] = observation[:, 1]
    features = local_features(observation, CONFIG.num_bs, CONFIG.num_blocks)
    q = policy.q_network(features)
    assert torch.equal(q[:, 4], q[:, 1])
    assert not torch.equal(q[:, 0], q[:, 1])               # different observations do differ
    discrete, split = policy.decide(observation)
    assert torch.equal(discrete[:, 4], discrete[:, 1])
    assert torch.allclose(split[:, 4], split[:, 1])


def test_q_values_follow_a_permutation_of_the_ues():
    torch.manual_seed(1)
    policy = MADDQNDMADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks)
    observation = _observation(3)
    order = torch.tensor([5, 3, 0, 1, 4, 2])
    q = policy.q_network(local_features(observation, CONFIG.num_bs, CONFIG.num_blocks))
    q_permuted = policy.q_network(local_features(observation[:, order], CONFIG.num_bs, CONFIG.num_blocks))
    assert torch.allclose(q_permuted, q[:, order])


def test_double_q_target_uses_online_argmax_and_target_valuation():
    reward = torch.tensor([1.0, -0.5])
    online = torch.tensor([[[0.0, 5.0, 1.0], [2.0, 0.0, 1.0]],
                           [[3.0, 0.0, 0.0], [0.0, 0.0, 9.0]]])
    target = torch.tensor([[[7.0, 1.5, 9.0], [0.25, 8.0, 3.0]],
                           [[-1.0, 4.0, 4.0], [6.0, 6.0, 2.0]]])
    # Online argmax: (1, 0) and (0, 2); target values of those: (1.5, 0.25) and (-1.0, 2.0).
    # Aggregation 2 q_1 + q_2 (a non-symmetric stand-in for f), gamma 0.5.
    y = double_q_target(reward, 0.5, online, target, lambda chosen: 2 * chosen[:, 0] + chosen[:, 1])
    assert y.tolist() == pytest.approx([1.0 + 0.5 * (3.0 + 0.25), -0.5 + 0.5 * (-2.0 + 2.0)])
    # Not what the target network's own argmax would give (9 + 8 for the first slot).
    assert y[0] != pytest.approx(1.0 + 0.5 * (2 * 9.0 + 8.0))


def test_clipped_double_q_target_is_the_min_of_the_two_critics():
    reward = torch.tensor([0.0, 1.0, 2.0])
    q1, q2 = torch.tensor([3.0, -1.0, 5.0]), torch.tensor([4.0, -2.0, 5.0])
    y = clipped_double_q_target(reward, 0.9, q1, q2)
    assert y.tolist() == pytest.approx([0.9 * 3.0, 1.0 - 0.9 * 2.0, 2.0 + 0.9 * 5.0])


def test_qmix_mixer_is_monotonic_in_every_agent_value():
    torch.manual_seed(2)
    mixer = MonotonicMixer(CONFIG.num_bs, 16)
    features = torch.randn(16, 7, feature_size(CONFIG.num_bs)) * 3
    chosen = (torch.randn(16, 7) * 10).requires_grad_(True)
    gradient, = torch.autograd.grad(mixer(chosen, features).sum(), chosen)
    assert (gradient >= 0).all() and (gradient > 0).any()


def test_maddqn_aggregation_weights_are_non_negative():
    torch.manual_seed(3)
    learner = MADDQNDMADDPG(CONFIG, seed=0)
    features = local_features(_observation(), CONFIG.num_bs, CONFIG.num_blocks)
    chosen = torch.randn(2, CONFIG.num_ues, requires_grad=True)
    gradient, = torch.autograd.grad(learner.aggregation(chosen, features).sum(), chosen)
    assert (gradient >= 0).all()
    assert gradient.sum(-1).tolist() == pytest.approx([1.0, 1.0])        # softmax weights


def test_attention_weights_sum_to_one_and_ignore_users_out_of_range():
    torch.manual_seed(4)
    config = CONFIG.with_updates(num_ues=12)
    observation = _observation(5, config=config)
    attention = UserAttention(config.num_bs, 8)
    context, weights = attention(observation, return_weights=True)
    association = observation[..., config.num_bs:2 * config.num_bs].argmax(-1)
    same = association.unsqueeze(2) == association.unsqueeze(1)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 12))
    assert (weights[~same] == 0).all() and (weights[same] > 0).all()
    assert torch.allclose(context, attention(observation), atol=1e-5)      # the fused path agrees
    # Changing a user out of range of UE 0 leaves UE 0's context unchanged.
    outsider = int((~same[0, 0]).nonzero()[0])
    changed = observation.clone()
    changed[0, outsider, :config.num_bs] += 3.0
    assert torch.allclose(attention(changed)[0, 0], context[0, 0], atol=1e-6)


def test_power_split_stays_in_unit_interval_for_extreme_inputs():
    torch.manual_seed(5)
    policies = [MADDQNDMADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks), MADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks),
                MAPPOPolicy(CONFIG.num_bs, CONFIG.num_blocks), QMIXPolicy(CONFIG.num_bs, CONFIG.num_blocks),
                DQNDDDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks, CONFIG.num_ues)]
    observation = _observation()
    observation[..., :CONFIG.num_bs] *= 1e3
    for policy in policies:
        action = policy.act(observation)
        assert ((action.power_split >= 0) & (action.power_split <= 1)).all(), policy.name
        assert ((action.association >= 0) & (action.association < CONFIG.num_bs)).all()
        assert ((action.block >= 0) & (action.block < CONFIG.num_blocks)).all()


def test_epsilon_schedule_endpoints():
    assert linear_epsilon(0, 1000) == pytest.approx(0.9)
    assert linear_epsilon(400, 1000) == pytest.approx(0.9 - 0.85 / 2)
    assert linear_epsilon(800, 1000) == pytest.approx(0.05)
    assert linear_epsilon(1000, 1000) == pytest.approx(0.05)
    learner = MADDQNDMADDPG(CONFIG, seed=0)
    assert learner.epsilon(0.0) == pytest.approx(0.9) and learner.epsilon(0.8) == pytest.approx(0.05)
    assert not learner.exploration_done(0.5) and learner.exploration_done(0.8)
    with pytest.raises(ValueError, match="total_steps must be > 0"):
        linear_epsilon(0, 0)


def test_block_offsets_never_put_two_ues_of_one_bs_and_offset_on_one_block():
    generator = torch.Generator().manual_seed(6)
    association = torch.randint(0, 3, (50, 10), generator=generator)
    offset = torch.randint(0, 4, (50, 10), generator=generator)
    block = block_from_offset(association, offset, 3, 4, num_blocks=12)
    for b in range(50):
        for j in range(3):
            for o in range(4):
                chosen = block[b][(association[b] == j) & (offset[b] == o)]
                assert len(set(chosen.tolist())) == len(chosen)          # at most 10 UEs <= 12 blocks
                if len(chosen):
                    assert int(chosen[0]) == o * 3                       # the offset's first block comes first


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    torch.manual_seed(7)
    observation = _observation(9)
    policies = [MADDQNDMADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks, hidden=16, attention_width=8),
                MADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks), MAPPOPolicy(CONFIG.num_bs, CONFIG.num_blocks),
                QMIXPolicy(CONFIG.num_bs, CONFIG.num_blocks, power_levels=(0.5, 1.0)),
                DQNDDDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks, CONFIG.num_ues, hidden=32)]
    for policy in policies:
        path = tmp_path / f"{policy.name}.pt"
        policy.save(path)
        loaded = load_policy(path)
        assert type(loaded) is type(policy) and loaded.name == policy.name
        before, after = policy.act(observation), loaded.act(observation)
        for x, y in zip(before, after):
            assert torch.equal(x, y), policy.name
    assert load_policy(tmp_path / "maddqn-dmaddpg.pt").name == "maddqn-dmaddpg"


def test_compiled_maddqn_dmaddpg_acts_as_the_eager_policy_on_any_n_and_round_trips(tmp_path):
    torch.manual_seed(3)
    eager = MADDQNDMADDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks, hidden=16, attention_width=8)
    compiled = eager.compiled()
    for num_ues in (5, 9, 40):
        observation = _observation(1, config=CONFIG.with_updates(num_ues=num_ues))
        want, got = eager.act(observation), compiled.act(observation)
        assert torch.equal(want.association, got.association) and torch.equal(want.block, got.block), num_ues
        assert torch.allclose(want.power_split, got.power_split, atol=1e-6), num_ues
    path = tmp_path / "compiled.pt"
    compiled.save(path)
    loaded = load_policy(path)
    assert type(loaded) is CompiledMADDQNDMADDPGPolicy and loaded.name == "maddqn-dmaddpg"
    observation = _observation(9)
    assert torch.equal(loaded.act(observation).block, eager.act(observation).block)
    with pytest.raises(ValueError, match=r"observation must be \[\.\.\., B, N, 11\] for 4 BSs"):
        MADDQNDMADDPGPolicy(4, 4).compiled().act(_observation())


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="built for N = 6 UEs, got observations of 7"):
        DQNDDDPGPolicy(CONFIG.num_bs, CONFIG.num_blocks, 6).act(_observation(config=CONFIG.with_updates(num_ues=7)))
    with pytest.raises(ValueError, match=r"observation must be \[\.\.\., B, N, 11\] for 4 BSs"):
        MADDQNDMADDPGPolicy(4, 4).act(_observation())
    with pytest.raises(ValueError, match="reward must be 'eq10' or 'throughput'"):
        MADDQNDMADDPGConfig(reward="sum")


def _same(a, b) -> bool:
    """Exact equality of nested state dicts (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_training_resumed_from_a_checkpoint_continues_bit_identically(tmp_path):
    """A 4-episode run killed after its second episode (checkpoint: learner state and history as plain data, a
    tensors-only file), then resumed by a fresh learner from the file read with ``weights_only=True``: the same
    returns, weights, replay memory and generator state as the run that was never interrupted."""
    import dataclasses

    from agents.checkpoint import atomic_save
    from agents.marl import TrainingHistory, train

    small = MADDQNDMADDPGConfig(learning_starts=4, batch_size=4)
    straight = MADDQNDMADDPG(CONFIG, small, seed=3)
    full = train(straight, CONFIG, 4, 2, seed=5, stop_window=0)

    killed = MADDQNDMADDPG(CONFIG, small, seed=3)

    def checkpoint_then_die(episode: int, history) -> None:
        atomic_save({"learner": killed.state_dict(), "history": dataclasses.asdict(history)},
                    tmp_path / "checkpoint.pt")
        if episode == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(killed, CONFIG, 4, 2, seed=5, stop_window=0, on_episode=checkpoint_then_die)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert len(saved["history"]["returns"]) == 2
    resumed = MADDQNDMADDPG(CONFIG, small, seed=99)           # another init: everything must come from the file
    resumed.load_state_dict(saved["learner"])
    history = train(resumed, CONFIG, 4, 2, seed=5, stop_window=0, history=TrainingHistory(**saved["history"]))
    assert history.returns == full.returns and history.slots == full.slots
    for name in ("q_network", "actor", "aggregation", "critics", "actor_target", "q_optimizer"):
        assert _same(getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()), name
    assert torch.equal(straight.replay.observation, resumed.replay.observation)
    assert straight.updates == resumed.updates
    assert torch.equal(straight.generator.get_state(), resumed.generator.get_state())
