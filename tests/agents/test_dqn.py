"""Shared DQN and the Algorithm 2 trainer: semantics of transitions, schedules, target copies, policies."""

from __future__ import annotations

import math

import pytest
import torch

from agents.continual import ContinualTrainer, SharedLinkView
from agents.dqn import DQNAgent, DQNConfig, DQNPolicy, RMSprop, decayed_value, evaluate_policy
from agents.policy import Policy
from agents.replay import SOURCE_PHYSICAL, SOURCE_TWIN, ReplayMemory, TransitionBatch
from agents.sadrl import JointActionView, SADRLPolicy, decode_joint_action, encode_joint_action
from twin.config import DTNConfig
from twin.network import AnalyticPhysical, LinkAdaptationNetwork, StepResult
from twin.phi import AnalyticPhiProbe


class LabelledNetwork:
    """A fake network whose observations say where they come from.

    Observation of link n in network b at slot t of the episode started with seed s:
    ``[s mod 1000, t, n, b, is_physical, 0]``. Link n transmits in slot t iff (n + t) mod 3 != 0. Its rate is
    its action number (so rewards are checkable) and the shared reward is the sum over transmitting links.
    """

    def __init__(self, num_links: int = 4, batch_size: int = 2, slots: int = 5, physical: bool = False) -> None:
        self.config = DTNConfig(num_devices=num_links, slots_per_episode=slots)
        self.batch_size = batch_size
        self.num_links = num_links
        self.physical = physical
        self.slot = 0
        self.tag = 0.0

    @property
    def scheduled(self) -> torch.Tensor:
        links = torch.arange(self.num_links)
        return ((links + self.slot) % 3 != 0).expand(self.batch_size, -1)

    def observe(self) -> torch.Tensor:
        b, n = torch.meshgrid(torch.arange(self.batch_size), torch.arange(self.num_links), indexing="ij")
        return torch.stack([torch.full(b.shape, self.tag), torch.full(b.shape, float(self.slot)), n.float(),
                            b.float(), torch.full(b.shape, float(self.physical)), torch.zeros(b.shape)], dim=-1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.tag = float((seed or 0) % 1000)
        self.slot = 0
        return self.observe()

    def step(self, action: torch.Tensor) -> StepResult:
        scheduled = self.scheduled.clone()
        rate = torch.where(scheduled, action.float(), torch.zeros(action.shape))
        self.slot += 1
        truncated = torch.full((self.batch_size,), self.slot >= self.config.slots_per_episode)
        info = {"scheduled": scheduled, "truncated": truncated}
        return StepResult(self.observe(), rate.sum(-1), rate, info)


def _labelled_trainer(**changes) -> ContinualTrainer:
    config = DQNConfig(**{"episodes": 6, "ota_every": 3, "num_envs": 2, "twin_context": "independent",
                          "replay_capacity": 10_000, "learning_starts": 8, "batch_size": 8, **changes})
    twin = LabelledNetwork(batch_size=2)
    physical = LabelledNetwork(batch_size=1, physical=True)
    return ContinualTrainer(config, twin, physical)  # type: ignore[arg-type]


def test_transitions_stay_inside_an_episode_and_only_scheduled_links_are_stored():
    trainer = _labelled_trainer()
    trainer.run()
    held = trainer.memory.transitions()
    s, s_next = held.state, held.next_state
    # s' is the same link of the same network in the same episode, one slot later: nothing crosses a reset.
    assert torch.equal(s_next[:, 0], s[:, 0])
    assert torch.equal(s_next[:, 1], s[:, 1] + 1)
    assert torch.equal(s_next[:, 2:5], s[:, 2:5])
    # Only links PF scheduled in the slot made a transition, and every scheduled one did.
    slot, link = s[:, 1].long(), s[:, 2].long()
    assert bool(((link + slot) % 3 != 0).all())
    scheduled_per_slot = [int(((torch.arange(4) + t) % 3 != 0).sum()) for t in range(5)]
    twin_episodes, physical_episodes = 4, 2
    expected = sum(scheduled_per_slot) * (twin_episodes * 2 + physical_episodes * 1)
    assert len(trainer.memory) == expected
    # Source tags match where the transition came from; episodes 3 and 6 were physical.
    assert torch.equal(held.source == SOURCE_PHYSICAL, s[:, 4] == 1.0)
    assert [m["source"] for m in trainer.history] == ["twin", "twin", "physical", "twin", "twin", "physical"]
    assert trainer.memory.source_counts()["physical"] == sum(scheduled_per_slot) * physical_episodes


def test_shared_reward_is_the_network_sum_and_link_reward_is_the_links_own():
    for mode in ("shared", "link"):
        trainer = _labelled_trainer(reward=mode, episodes=2)
        trainer.run()
        held = trainer.memory.transitions()
        if mode == "link":
            assert torch.equal(held.reward, held.action.float())
            continue
        # Group by (episode, slot, network): each member's reward is the sum of the group's actions.
        keys = held.state[:, [0, 1, 3]]
        for key in torch.unique(keys, dim=0):
            members = (keys == key).all(dim=1)
            assert torch.allclose(held.reward[members], held.action[members].float().sum().expand(int(members.sum())))


def test_last_slot_bootstraps_or_terminates_as_configured():
    for bootstrap in (True, False):
        trainer = _labelled_trainer(episodes=1, bootstrap_on_truncation=bootstrap)
        trainer.run()
        held = trainer.memory.transitions()
        last_slot = held.next_state[:, 1] == 5
        assert bool(last_slot.any())
        assert torch.equal(held.done, last_slot & (not bootstrap))


def test_ota_schedule_of_algorithm_2():
    trainer = _labelled_trainer(ota_every=100)
    assert [e for e in range(1, 401) if trainer.is_physical_episode(e)] == [100, 200, 300, 400]
    assert not any(_labelled_trainer(ota_every=0).is_physical_episode(e) for e in range(1, 50))
    assert all(_labelled_trainer(ota_every=1).is_physical_episode(e) for e in range(1, 50))


def test_same_observation_gives_the_same_q_for_every_link():
    agent = DQNAgent(DQNConfig(seed=4), state_size=6, num_actions=48)
    batch = TransitionBatch(torch.randn(64, 6), torch.randint(0, 48, (64,)), torch.randn(64), torch.randn(64, 6),
                            torch.zeros(64, dtype=torch.bool), torch.zeros(64, dtype=torch.uint8))
    for _ in range(20):
        agent.learn(batch)
    single = torch.randn(6)
    observation = torch.randn(3, 5, 6)
    observation[0, 1] = observation[2, 4] = observation[1, 0] = single      # three links, two networks
    view = SharedLinkView(48, 6)
    q = agent.q_values(view.states(observation)).reshape(3, 5, 48)
    assert torch.equal(q[0, 1], q[2, 4]) and torch.equal(q[0, 1], q[1, 0])
    # Alone, the observation gets the same Q (up to the float rounding of a different batch size).
    assert torch.allclose(agent.q_values(single.unsqueeze(0))[0], q[0, 1], rtol=0, atol=1e-5)
    # Decentralised execution: permuting the links permutes the policy's actions.
    policy = DQNPolicy.from_network(agent.q_network)
    permutation = torch.randperm(5)
    assert torch.equal(policy.act(observation[:, permutation]), policy.act(observation)[:, permutation])


def _target_changes(target_update_every: int, updates: int) -> list[int]:
    """Update numbers after which the target network differed from before (and then equalled the online one)."""
    agent = DQNAgent(DQNConfig(target_update_every=target_update_every, seed=1, batch_size=8), 6, 48)
    generator = torch.Generator().manual_seed(0)
    batch = TransitionBatch(torch.randn(8, 6, generator=generator), torch.randint(0, 48, (8,), generator=generator),
                            torch.randn(8, generator=generator), torch.randn(8, 6, generator=generator),
                            torch.zeros(8, dtype=torch.bool), torch.zeros(8, dtype=torch.uint8))
    previous = [p.clone() for p in agent.target_network.parameters()]
    changed_at = []
    for update in range(1, updates + 1):
        agent.learn(batch)
        current = list(agent.target_network.parameters())
        if any(not torch.equal(a, b) for a, b in zip(previous, current)):
            changed_at.append(update)
            assert all(torch.equal(t, q) for t, q in zip(current, agent.q_network.parameters()))
        previous = [p.clone() for p in current]
    return changed_at


def test_target_network_changes_only_every_target_update_every_updates():
    assert DQNConfig().target_update_every == 500
    assert _target_changes(500, 501) == [500]
    assert _target_changes(7, 30) == [7, 14, 21, 28]


def test_epsilon_and_learning_rate_follow_their_factors():
    config = DQNConfig()
    agent = DQNAgent(config, 6, 48)
    for steps in (0, 1, 10, 1000, 4000, 10_000):
        agent.steps = steps
        assert agent.epsilon == pytest.approx(max(0.01, 0.7 * (1 - 1e-3) ** steps), rel=1e-12)
    for episodes in (0, 1, 500, 2000):
        agent.episodes = episodes
        assert agent.learning_rate == pytest.approx(5e-3 * (1 - 1e-3) ** episodes, rel=1e-12)
    assert agent.epsilon == 0.01                                              # the floor, reached at ~4250 steps
    # The optimiser really uses the scheduled rate.
    batch = TransitionBatch(torch.randn(8, 6), torch.zeros(8, dtype=torch.long), torch.zeros(8), torch.randn(8, 6),
                            torch.zeros(8, dtype=torch.bool), torch.zeros(8, dtype=torch.uint8))
    agent.learn(batch)
    assert agent.optimizer.lr == pytest.approx(5e-3 * (1 - 1e-3) ** 2000)
    # Switching units: per-episode epsilon, per-step learning rate.
    swapped = DQNAgent(DQNConfig(epsilon_decay_unit="episode", learning_rate_decay_unit="step"), 6, 48)
    swapped.steps, swapped.episodes = 300, 7
    assert swapped.epsilon == pytest.approx(0.7 * (1 - 1e-3) ** 7)
    assert swapped.learning_rate == pytest.approx(5e-3 * (1 - 1e-3) ** 300)
    assert decayed_value(1.0, 0.5, 3, floor=0.2) == 0.2


def test_trainer_logs_the_schedules_it_played():
    trainer = _labelled_trainer(episodes=4)
    metrics = trainer.run()
    for index, m in enumerate(metrics):
        assert m["charts/epsilon"] == pytest.approx(0.7 * (1 - 1e-3) ** (5 * index))
        assert m["charts/learning_rate"] == pytest.approx(5e-3 * (1 - 1e-3) ** (index + 1))
        assert m["charts/sps"] > 0 and m["global_step"] == 5 * (index + 1)
    assert metrics[2]["ota/episode_reward"] == metrics[2]["charts/episode_reward"]


def test_physical_exploration_is_capped():
    trainer = _labelled_trainer(episodes=3, physical_max_epsilon=0.05)
    metrics = trainer.run()
    assert metrics[0]["charts/epsilon"] == pytest.approx(0.7)
    assert metrics[2]["source"] == "physical" and metrics[2]["charts/epsilon"] == pytest.approx(0.05)


def test_rmsprop_matches_torch():
    torch.manual_seed(0)
    ours, reference = torch.nn.Linear(6, 5), torch.nn.Linear(6, 5)
    reference.load_state_dict(ours.state_dict())
    optimiser = RMSprop(ours.parameters(), lr=5e-3, alpha=0.99, eps=1e-8)
    reference_optimiser = torch.optim.RMSprop(reference.parameters(), lr=5e-3, alpha=0.99, eps=1e-8)
    for step in range(5):
        x = torch.randn(16, 6)
        for model, opt in ((ours, optimiser), (reference, reference_optimiser)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(ours.parameters(), reference.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7)


def test_config_rejects_bad_values_naming_what_is_allowed():
    with pytest.raises(ValueError, match="reward='mine'; allowed: shared, link"):
        DQNConfig(reward="mine")
    with pytest.raises(ValueError, match="discount=1.0; allowed: 0 <= value < 1"):
        DQNConfig(discount=1.0)
    with pytest.raises(ValueError, match=r"unknown DQN config key\(s\) \['gama'\]"):
        DQNConfig.from_mapping({"gama": 0.9})
    with pytest.raises(ValueError, match="twin_context='mirror' needs a physical network"):
        ContinualTrainer(DQNConfig(num_envs=2), LabelledNetwork(), LabelledNetwork(batch_size=1))  # type: ignore[arg-type]


def test_policies_act_on_a_batch_and_survive_save_and_load(tmp_path):
    agent = DQNAgent(DQNConfig(seed=2), 6, 48)
    policy = DQNPolicy.from_network(agent.q_network, {"note": "x"})
    observation = torch.randn(4, 9, 6)
    path = tmp_path / "policy.pt"
    policy.save(path)
    loaded = Policy.load(path)
    assert isinstance(loaded, DQNPolicy) and loaded.metadata == {"note": "x"}
    assert torch.equal(loaded.act(observation), policy.act(observation))
    assert policy.act(observation).dtype == torch.int64 and policy.act(observation).shape == (4, 9)
    assert not list(tmp_path.glob("*.tmp"))

    view = JointActionView(num_links=2, link_actions=48, link_state_size=6)
    joint_agent = DQNAgent(DQNConfig(seed=2), view.state_size, view.num_actions)
    sadrl = view.policy(joint_agent.q_network, {})
    sadrl.save(tmp_path / "sadrl.pt")
    reloaded = Policy.load(tmp_path / "sadrl.pt")
    assert isinstance(reloaded, SADRLPolicy)
    small = torch.randn(5, 2, 6)
    assert torch.equal(reloaded.act(small), sadrl.act(small))
    joint = joint_agent.q_values(small.reshape(5, 12)).argmax(-1)
    assert torch.equal(encode_joint_action(sadrl.act(small), 48), joint)


def test_joint_actions_decode_digit_by_digit():
    joint = torch.tensor([0, 1, 48, 48 * 48 + 47, 48 ** 3 - 1])
    per_link = decode_joint_action(joint, 3, 48)
    assert per_link.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 47], [47, 47, 47]]
    assert torch.equal(encode_joint_action(per_link, 48), joint)
    with pytest.raises(ValueError, match="at most"):
        JointActionView(num_links=4, link_actions=48, link_state_size=6)


def test_sadrl_trainer_stores_one_transition_per_network_and_slot():
    config = DQNConfig(episodes=2, ota_every=2, num_envs=2, twin_context="independent", learning_starts=4,
                       batch_size=4, replay_capacity=1000)
    view = JointActionView(num_links=2, link_actions=48, link_state_size=6)
    twin, physical = LabelledNetwork(num_links=2, batch_size=2), LabelledNetwork(num_links=2, batch_size=1, physical=True)
    trainer = ContinualTrainer(config, twin, physical, view=view)  # type: ignore[arg-type]
    trainer.run()
    held = trainer.memory.transitions()
    # Link pairs (0, 1): at slot t at least one of them transmits unless both (n + t) % 3 == 0, never here.
    assert len(trainer.memory) == 5 * 2 + 5 * 1
    assert held.state.shape[1] == 12 and int(held.action.max()) < 48 ** 2
    per_link = decode_joint_action(held.action, 2, 48)
    # The shared reward is the sum of the transmitting links' actions (their rates in the fake network).
    slot = held.state[:, 1].long()
    transmitting = (torch.arange(2).unsqueeze(0) + slot.unsqueeze(1)) % 3 != 0
    assert torch.equal(held.reward, (per_link * transmitting).sum(1).float())


def test_phi_probe_measures_the_hidden_deviation():
    config = DTNConfig(num_aps=2, num_devices=8, num_rrbs=8, slots_per_episode=20)
    for phi in (0.4, 0.9):
        probe = AnalyticPhiProbe(AnalyticPhysical(phi, config, batch_size=2), seed=1)
        probe.reset(5)
        generator = torch.Generator().manual_seed(0)
        for _ in range(20):
            probe.step(torch.randint(0, 48, (2, 8), generator=generator))
        assert probe.measured_phi() == pytest.approx(phi, abs=0.03)


def test_sync_phi_sets_the_twin_to_the_measured_phi():
    dtn = DTNConfig(num_aps=2, num_devices=6, num_rrbs=4, slots_per_episode=10)
    config = DQNConfig(episodes=2, ota_every=2, num_envs=2, sync_phi=True, learning_starts=16, batch_size=16)
    trainer = ContinualTrainer(config, LinkAdaptationNetwork(dtn, 2),
                               AnalyticPhiProbe(AnalyticPhysical(0.9, dtn, 2), seed=0))
    trainer.run()
    assert trainer.twin.config.phi_aci == trainer.twin.config.phi_hwi == trainer.twin_phi
    assert trainer.twin_phi == pytest.approx(0.9, abs=0.05)
    assert trainer.history[-1]["ota/measured_phi"] == trainer.twin_phi


def test_mirrored_twin_copies_the_physical_deployment():
    dtn = DTNConfig(num_aps=2, num_devices=6, num_rrbs=4, slots_per_episode=10, sigma_rt=0.0)
    physical = AnalyticPhysical(0.4, dtn, batch_size=1)
    twin = LinkAdaptationNetwork(dtn, batch_size=3)
    from agents.continual import mirror_twin

    mirror_twin(twin, physical, twin_seed=1, context_seed=2)
    assert torch.equal(twin.device_xy, physical.device_xy.expand(3, -1, -1))
    assert torch.allclose(twin.large_scale_gain, physical.large_scale_gain.expand(3, -1, -1))
    assert torch.equal(twin.rrb, physical.rrb.expand(3, -1))


def test_evaluation_is_a_fixed_function_of_its_seed():
    dtn = DTNConfig(num_aps=2, num_devices=6, num_rrbs=4, slots_per_episode=10)
    physical = AnalyticPhysical(0.4, dtn, batch_size=2)
    policy = DQNPolicy.from_network(DQNAgent(DQNConfig(), 6, 48).q_network)
    first = evaluate_policy(policy, physical, episodes=2, seed=11)
    second = evaluate_policy(policy, physical, episodes=2, seed=11)
    assert first.episode_rewards == second.episode_rewards and first.slots == 20
    assert math.isfinite(first.mean_reward)
