"""Checkpoint and resume: a resumed run continues bit-identically; checkpoints are written atomically."""

from __future__ import annotations

import pytest
import torch

import agents.checkpoint as checkpoint_module
from agents.checkpoint import atomic_save, load_checkpoint
from agents.continual import ContinualTrainer
from agents.dqn import DQNConfig
from twin.config import DTNConfig
from twin.network import AnalyticPhysical, LinkAdaptationNetwork
from twin.phi import AnalyticPhiProbe

# Small enough to be quick, large enough that every part of the state matters: the replay memory wraps,
# the target network is copied, physical episodes measure phi and re-calibrate the twin.
DTN = DTNConfig(num_aps=2, num_devices=6, num_rrbs=4, slots_per_episode=8)
CONFIG = DQNConfig(episodes=6, ota_every=2, num_envs=2, replay_capacity=150, batch_size=16, learning_starts=16,
                   target_update_every=5, sync_phi=True, seed=5)


def _trainer(out_dir=None) -> ContinualTrainer:
    twin = LinkAdaptationNetwork(DTN, batch_size=CONFIG.num_envs)
    physical = AnalyticPhiProbe(AnalyticPhysical(0.7, DTN, batch_size=CONFIG.num_envs), seed=CONFIG.seed + 3)
    return ContinualTrainer(CONFIG, twin, physical, out_dir=out_dir)


def _assert_same_state(a: ContinualTrainer, b: ContinualTrainer) -> None:
    for x, y in zip(a.agent.q_network.parameters(), b.agent.q_network.parameters()):
        assert torch.equal(x, y)
    for x, y in zip(a.agent.target_network.parameters(), b.agent.target_network.parameters()):
        assert torch.equal(x, y)
    opt_a, opt_b = a.agent.optimizer.state_dict(), b.agent.optimizer.state_dict()
    assert all(torch.equal(x, y) for x, y in zip(opt_a["square_avg"], opt_b["square_avg"]))
    assert opt_a["steps"] == opt_b["steps"] > 0 and opt_a["lr"] == opt_b["lr"]
    assert all(torch.equal(x, y) for x, y in zip(a.memory.transitions(), b.memory.transitions()))
    assert a.memory.added == b.memory.added
    assert (a.agent.steps, a.agent.episodes, a.agent.gradient_updates) == \
        (b.agent.steps, b.agent.episodes, b.agent.gradient_updates)
    assert a.twin.config == b.twin.config and a.twin_phi == b.twin_phi
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    uninterrupted = _trainer()
    uninterrupted.run()

    first = _trainer(out_dir=tmp_path)
    first.run(until_episode=3)                      # checkpoints after every episode
    del first
    torch.manual_seed(1234)                         # a new process would start from other global RNG states
    resumed = _trainer(out_dir=tmp_path)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed.episode == 3
    resumed.run()

    _assert_same_state(uninterrupted, resumed)
    # The metrics of the resumed episodes match too (apart from wall-clock rates).
    timing = {"charts/sps", "charts/link_slots_per_s"}
    strip = [{k: v for k, v in m.items() if k not in timing} for m in uninterrupted.history[3:]]
    assert strip == [{k: v for k, v in m.items() if k not in timing} for m in resumed.history]
    assert uninterrupted.twin_phi is not None and resumed.history[-1]["source"] == "physical"


def test_checkpoint_restores_global_generators_and_rejects_another_config(tmp_path):
    trainer = _trainer(out_dir=tmp_path)
    trainer.run(until_episode=1)
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    trainer.save_checkpoint(tmp_path / "c.pt")
    torch.rand(10)
    trainer.load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(torch.rand(3), expected)

    other = ContinualTrainer(CONFIG.with_updates(discount=0.7), LinkAdaptationNetwork(DTN, 2),
                             AnalyticPhiProbe(AnalyticPhysical(0.7, DTN, 2)))
    with pytest.raises(ValueError, match=r"different config: \['discount'\]"):
        other.load_checkpoint(tmp_path / "c.pt")


def test_a_crash_while_writing_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_save({"episode": 1, "weights": torch.arange(4)}, path)

    def crash_midway(obj, stream):
        stream.write(b"partial bytes of a checkpoint")
        raise OSError("disk vanished")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk vanished"):
        atomic_save({"episode": 2, "weights": torch.arange(8)}, path)
    monkeypatch.undo()
    survived = load_checkpoint(path)
    assert survived["episode"] == 1 and torch.equal(survived["weights"], torch.arange(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]     # no temporary file left behind
