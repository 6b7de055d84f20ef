"""``testbed train``: a short run end to end, resume, and bad input (exit code 2 naming the allowed form)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from agents.dqn import DQNPolicy
from agents.policy import Policy
from testbed.cliutil import parse_physical
from testbed.cmd_train import train

SMALL = """
episodes = 3
ota_every = 2
num_envs = 2
batch_size = 16
learning_starts = 16

[twin]
num_aps = 2
num_devices = 4
num_rrbs = 4
slots_per_episode = 6
"""


def _invoke(*args: str):
    result = CliRunner().invoke(train, list(args))
    return result.exit_code, result.output


def test_train_writes_a_resumable_run_and_reports_json(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text(SMALL)
    out = tmp_path / "run"
    code, output = _invoke("--config", str(config), "--physical", "analytic:phi=0.9", "--seed", "3",
                           "--out", str(out), "--eval-episodes", "1", "--json")
    assert code == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["episodes"] == 3 and summary["physical_episodes"] == 1
    assert summary["physical"] == {"kind": "analytic", "phi": 0.9}
    assert set(summary["eval_mean_reward_mbps"]) == {"policy", "maxp-3gpp-cqi", "olla", "random"}
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["source"] for m in metrics] == ["twin", "physical", "twin"]
    assert {"losses/td", "charts/sps", "charts/epsilon"} <= set(metrics[-1])
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["dqn"]["seed"] == 3 and resolved["twin"]["num_devices"] == 4
    policy = Policy.load(out / "policy.pt")
    assert isinstance(policy, DQNPolicy) and policy.act(torch.zeros(1, 4, 6)).shape == (1, 4)

    # Extend the finished run by two episodes from its checkpoint.
    code, output = _invoke("--out", str(out), "--resume", "--episodes", "5", "--eval-episodes", "0", "--json")
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["episodes"] == 5
    episodes = [json.loads(line)["episode"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert episodes == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("spec", ["analytic:phi=abc", "analytc", "analytic:phi=-1.5", "radios:pluto0", ""])
def test_malformed_physical_exits_2_naming_the_allowed_form(tmp_path, spec):
    code, output = _invoke("--physical", spec, "--out", str(tmp_path / "r"), "--episodes", "1")
    assert code == 2
    assert f"--physical {spec!r}" in output and "allowed: analytic or analytic:phi=X" in output
    assert not (tmp_path / "r").exists()


def test_bad_config_values_exit_2(tmp_path):
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("gama = 0.9\n")
    code, output = _invoke("--config", str(bad_key), "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown DQN config key(s) ['gama']" in output
    bad_twin = tmp_path / "twin.toml"
    bad_twin.write_text("[twin]\nnum_aps = 3\nnum_rrbs = 8\n")
    code, output = _invoke("--config", str(bad_twin), "--out", str(tmp_path / "r"))
    assert code == 2 and "num_rrbs (8) must be a multiple of num_aps (3)" in output
    code, output = _invoke("--episodes", "-3", "--out", str(tmp_path / "r"))
    assert code == 2 and "--episodes -3; allowed: an integer >= 0" in output
    code, output = _invoke("--resume", "--out", str(tmp_path / "nothing"))
    assert code == 2 and "holds no config.json and checkpoint.pt" in output


def test_parse_physical_forms():
    assert parse_physical("analytic") == {"kind": "analytic", "phi": None}
    assert parse_physical("analytic:phi=0.4") == {"kind": "analytic", "phi": 0.4}
    assert parse_physical(" analytic:phi=1e-1 ") == {"kind": "analytic", "phi": 0.1}
