"""Policy and checkpoint files are tensors-only: what is written loads with ``weights_only=True``, and a file whose
unpickling would run code is refused without running it."""

from __future__ import annotations

import builtins

import pytest
import torch

from agents.baselines import OllaPolicy, RandomHetNetPolicy
from agents.checkpoint import UnsafeCheckpointError, atomic_save, load_checkpoint
from agents.dqn import DQNPolicy
from agents.registry import load_policy


class _WritesAMarker:
    """Unpickling this opens (creates) a file: the stand-in for any code a crafted file could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def craft(path, marker) -> None:
    """A file shaped like a saved policy / checkpoint, with a code-running object inside."""
    torch.save({"class": "agents.baselines.random_policy.RandomPolicy", "name": "random",
                "hyper_parameters": {"num_actions": 48, "seed": 0}, "state": {"generator": _WritesAMarker(str(marker))},
                "learner": {}, "history": {}}, path)


def test_a_crafted_policy_file_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "ran"
    craft(tmp_path / "policy.pt", marker)
    with pytest.raises(UnsafeCheckpointError) as refused:
        load_policy(tmp_path / "policy.pt")
    assert isinstance(refused.value, ValueError)
    message = str(refused.value)
    assert str(tmp_path / "policy.pt") in message and "not a tensors-only checkpoint" in message
    assert "open" in message                         # names what the file asked to call
    assert not marker.exists()


def test_a_crafted_checkpoint_or_a_foreign_file_is_refused(tmp_path):
    marker = tmp_path / "ran"
    craft(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match="checkpoint.pt is not a tensors-only checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(UnsafeCheckpointError, match="junk.pt is not a tensors-only checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_saving_anything_but_plain_data_and_tensors_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"ck.pt\['history'\]\['best'\] is a builtins.object"):
        atomic_save({"weights": torch.zeros(2), "history": {"best": object()}}, tmp_path / "ck.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("policy", [DQNPolicy(), OllaPolicy(), RandomHetNetPolicy(3, 4, seed=7)])
def test_saved_policies_load_with_weights_only(policy, tmp_path):
    """The files the runs write read back with torch's weights-only loader, and rebuild the same policy."""
    policy.save(tmp_path / "policy.pt")
    payload = torch.load(tmp_path / "policy.pt", weights_only=True)
    assert payload["hyper_parameters"] == policy.hyper_parameters()
    assert load_policy(tmp_path / "policy.pt").hyper_parameters() == policy.hyper_parameters()
