"""Replay memory: ring order, source tags, independence from the number of links, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from agents.replay import SOURCE_PHYSICAL, SOURCE_TWIN, ReplayMemory


def _transitions(count: int, start: int, state_size: int = 6):
    """Transitions whose every field encodes their index, so order and identity can be checked."""
    index = torch.arange(start, start + count, dtype=torch.float32)
    state = index.unsqueeze(1).repeat(1, state_size)
    return state, index.long() % 48, index, state + 0.5, index.long() % 2 == 0


def test_ring_keeps_the_newest_in_order_and_counts_sources():
    memory = ReplayMemory(capacity=10, state_size=6)
    memory.add(*_transitions(7, 0), source=SOURCE_TWIN)
    memory.add(*_transitions(6, 7), source=SOURCE_PHYSICAL)
    held = memory.transitions()
    assert len(memory) == 10
    assert held.reward.tolist() == list(range(3, 13))                     # 0, 1, 2 were overwritten
    assert torch.equal(held.next_state, held.state + 0.5)
    assert held.source.tolist() == [SOURCE_TWIN] * 4 + [SOURCE_PHYSICAL] * 6
    assert memory.source_counts() == {"twin": 4, "physical": 6}
    assert memory.added == {"twin": 7, "physical": 6}


def test_adding_more_than_capacity_at_once_keeps_the_last_ones():
    memory = ReplayMemory(capacity=5, state_size=6)
    memory.add(*_transitions(3, 0), source=SOURCE_TWIN)
    memory.add(*_transitions(12, 100), source=SOURCE_TWIN)
    assert sorted(memory.transitions().reward.tolist()) == [107, 108, 109, 110, 111]
    assert memory.added["twin"] == 15


def test_agnostic_to_the_number_of_links():
    # Slots of networks with 3 and with 7 links land in the same memory: it stores per-agent rows.
    memory = ReplayMemory(capacity=100, state_size=6)
    for links in (3, 7):
        observation = torch.randn(2, links, 6)
        memory.add(observation.reshape(-1, 6), torch.zeros(2 * links, dtype=torch.long), torch.ones(2 * links),
                   observation.reshape(-1, 6), torch.zeros(2 * links, dtype=torch.bool), SOURCE_TWIN)
    assert len(memory) == 2 * 3 + 2 * 7


def test_sample_draws_distinct_held_transitions():
    memory = ReplayMemory(capacity=50, state_size=6, seed=3)
    memory.add(*_transitions(40, 0), source=SOURCE_TWIN)
    batch = memory.sample(32)
    assert len(set(batch.reward.tolist())) == 32
    assert set(batch.reward.tolist()) <= set(range(40))
    assert torch.equal(batch.state[:, 0], batch.reward)                   # rows stay aligned across fields
    assert len(memory.sample(100).reward) == 40


def test_state_dict_round_trip_continues_identically():
    memory = ReplayMemory(capacity=30, state_size=6, seed=7)
    memory.add(*_transitions(45, 0), source=SOURCE_PHYSICAL)
    memory.sample(8)
    copy = ReplayMemory(capacity=30, state_size=6, seed=999)
    copy.load_state_dict(memory.state_dict())
    for _ in range(3):
        a, b = memory.sample(8), copy.sample(8)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    memory.add(*_transitions(4, 1000), source=SOURCE_TWIN)
    copy.add(*_transitions(4, 1000), source=SOURCE_TWIN)
    assert all(torch.equal(x, y) for x, y in zip(memory.transitions(), copy.transitions()))
    assert copy.added == memory.added


def test_rejects_mismatched_memories_and_bad_input():
    memory = ReplayMemory(capacity=30, state_size=6)
    with pytest.raises(ValueError, match="capacity 30 and state size 6 cannot be loaded into one of capacity 20"):
        ReplayMemory(capacity=20, state_size=6).load_state_dict(memory.state_dict())
    with pytest.raises(ValueError, match="source must be"):
        memory.add(*_transitions(2, 0), source=5)
    with pytest.raises(ValueError, match=r"state and next_state must be \[2, 6\]"):
        state, action, reward, next_state, done = _transitions(2, 0, state_size=4)
        memory.add(state, action, reward, next_state, done, SOURCE_TWIN)
    with pytest.raises(ValueError, match="empty"):
        memory.sample(4)
