"""The agents package's structure: a policy base that imports none of its subclasses (no import circle anywhere:
tests/test_architecture.py), the registry that loads any policy, the MARL configs' shared base and their validated
constructor."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from agents.marl import (DQNDDDPGConfig, MADDPGConfig, MADDQNDMADDPGConfig, MADDQNDMADDPGPolicy, MAPPOConfig,
                         MARLConfig, QMIXConfig, config_from_mapping)
from agents.baselines import RandomHetNetPolicy, WMMSEPolicy
from agents.registry import load_policy
from tests.helpers.imports import import_graph

def test_the_policy_base_imports_no_policy_module():
    assert import_graph()["agents.policy"] <= {"agents.checkpoint"}


def test_the_registry_loads_a_saved_policy_and_for_blocks_keeps_the_weights(tmp_path):
    policy = MADDQNDMADDPGPolicy(3, 4)
    policy.save(tmp_path / "p.pt")
    loaded = load_policy(tmp_path / "p.pt")
    other = loaded.for_blocks(7)
    assert type(other) is MADDQNDMADDPGPolicy and other.num_blocks == 7
    assert all(torch.equal(a, b) for a, b in zip(other.q_network.state_dict().values(),
                                                 policy.q_network.state_dict().values()))
    assert RandomHetNetPolicy(3, 4).for_blocks(7).hyper_parameters()["num_blocks"] == 7
    without_blocks = WMMSEPolicy()
    assert without_blocks.for_blocks(7) is without_blocks


CONFIGS = (MADDQNDMADDPGConfig, DQNDDDPGConfig, QMIXConfig, MADDPGConfig, MAPPOConfig)


@pytest.mark.parametrize("config_class", CONFIGS)
def test_every_marl_config_shares_the_base_and_builds_from_a_mapping(config_class):
    assert issubclass(config_class, MARLConfig)
    assert config_from_mapping(config_class, {}) == config_class()
    changed = config_from_mapping(config_class, {"hidden": 16, "discount": 0.5})
    assert (changed.hidden, changed.discount) == (16, 0.5)
    with pytest.raises(ValueError, match=r"unknown .* settings \['gama'\]; allowed: .*'discount'"):
        config_from_mapping(config_class, {"gama": 0.9})
    with pytest.raises(ValueError, match="hidden must be an integer, got '64'"):
        config_from_mapping(config_class, {"hidden": "64"})
    with pytest.raises(ValueError, match="hidden must be an integer >= 1, got 0"):
        config_from_mapping(config_class, {"hidden": 0})
    with pytest.raises(ValueError, match=r"discount must be a number in \[0, 1\], got 1.5"):
        config_from_mapping(config_class, {"discount": 1.5})


def test_config_specific_fields_are_checked_and_lists_become_tuples():
    assert config_from_mapping(QMIXConfig, {"power_levels": [0.5, 1.0]}).power_levels == (0.5, 1.0)
    with pytest.raises(ValueError, match="reward must be 'eq10' or 'throughput', got 'sum'"):
        config_from_mapping(MADDQNDMADDPGConfig, {"reward": "sum"})
    with pytest.raises(ValueError, match="double_q must be true or false, got 1"):
        config_from_mapping(MADDQNDMADDPGConfig, {"double_q": 1})
    with pytest.raises(ValueError, match=r"tau must be a number in \(0, 1\], got 0"):
        config_from_mapping(MADDPGConfig, {"tau": 0})


def test_per_algorithm_defaults():
    """The defaults each learner had before the shared base (paper settings)."""
    assert DQNDDDPGConfig().hidden == 256 and MADDQNDMADDPGConfig().hidden == 64
    assert MAPPOConfig().grad_clip_norm == 0.5 and QMIXConfig().grad_clip_norm == 10.0
    assert MADDPGConfig().tau == 0.01 and MADDQNDMADDPGConfig().tau == 0.005
    assert {f.name for f in dataclasses.fields(MADDPGConfig)}.isdisjoint({"num_offsets", "epsilon_start"})
    assert QMIXConfig().learning_rate == 1e-3 and MAPPOConfig().learning_rate == 3e-4
