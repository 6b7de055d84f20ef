"""``testbed train``: continual shared-DQN training in the twin with physical episodes (Algorithm 2).

The run directory holds ``config.json`` (the resolved DQN and twin configuration and the physical
network), ``metrics.jsonl`` (one line per episode), ``checkpoint.pt`` (everything needed to resume,
written atomically) and, at the end, ``policy.pt`` and ``summary.json``. ``--resume`` continues the run in
``--out`` from its checkpoint, losing at most the episode that was in flight.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import click

from testbed.cliutil import PHYSICAL_FORMS, BadInput, emit, handle_errors, json_option, parse_physical, progress
from testbed.rundir import truncate_metrics

__all__ = ["load_train_config", "train"]

def load_train_config(path: str | None) -> dict[str, Any]:
    """Read a TOML or JSON training config: DQN fields at the top level, a ``[twin]`` table of twin fields,
    and an optional ``physical`` string. Unknown keys are rejected later, naming the allowed ones."""
    if path is None:
        return {}
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"--config {path}: cannot be read ({e.strerror})") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadInput(f"--config {path}: not valid {'JSON' if file.suffix.lower() == '.json' else 'TOML'} ({e})") \
            from None
    if not isinstance(data, dict):
        raise BadInput(f"--config {path}: expected a table of settings")
    return data


@click.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML/JSON file: DQN fields at top level, [twin] table, optional physical = '...'.")
@click.option("--episodes", type=int, default=None, help="Z: episodes to train (default 2000, the paper's).")
@click.option("--ota-every", "ota_every", type=int, default=None,
              help="Z_k: every Z_k-th episode runs on the physical network (1: physical only, 0: twin only).")
@click.option("--physical", "physical_spec", default=None, help=f"Physical network: {PHYSICAL_FORMS}.")
@click.option("--seed", type=int, default=None, help="Seed of the whole run.")
@click.option("--num-envs", "num_envs", type=int, default=None, help="B: networks stepped together.")
@click.option("--agent", type=click.Choice(["madrl", "sadrl"]), default="madrl", show_default=True,
              help="madrl: shared DQN per link; sadrl: one centralised agent (N <= 3).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/train-<time>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--eval-episodes", "eval_episodes", type=int, default=3, show_default=True,
              help="Greedy evaluation episodes on the physical network at the end (0: none).")
@json_option
@handle_errors
def train(config_path: str | None, episodes: int | None, ota_every: int | None, physical_spec: str | None,
          seed: int | None, num_envs: int | None, agent: str, out_dir: str | None, resume: bool,
          eval_episodes: int, as_json: bool) -> None:
    """Train the shared-DQN link-adaptation policy in the twin, every Z_k episodes on the physical network."""
    from testbed.cliutil import single_thread_torch

    single_thread_torch()
    from agents.baselines import MaxPowerCQIPolicy, OllaPolicy, RandomPolicy
    from agents.dqn import evaluate_policy

    for name, value, low in (("--episodes", episodes, 0), ("--ota-every", ota_every, 0), ("--num-envs", num_envs, 1),
                             ("--eval-episodes", eval_episodes, 0)):
        if value is not None and value < low:
            raise BadInput(f"{name} {value}; allowed: an integer >= {low}")
    if resume and out_dir is None:
        raise BadInput("--resume needs --out naming the run directory to continue")
    run_dir = Path(out_dir) if out_dir else Path("runs") / time.strftime("train-%Y%m%d-%H%M%S")
    checkpoint = run_dir / "checkpoint.pt"

    if resume:
        if not (run_dir / "config.json").exists() or not checkpoint.exists():
            raise BadInput(f"--resume: {run_dir} holds no config.json and checkpoint.pt to continue")
        resolved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        if episodes is not None:
            resolved["dqn"]["episodes"] = episodes
    else:
        file_values = load_train_config(config_path)
        twin_values = file_values.pop("twin", {})
        if not isinstance(twin_values, dict):
            raise BadInput(f"--config {config_path}: [twin] must be a table")
        file_physical = str(file_values.pop("physical", "analytic"))
        physical = parse_physical(physical_spec if physical_spec is not None else file_physical)
        overrides = {"episodes": episodes, "ota_every": ota_every, "seed": seed, "num_envs": num_envs}
        dqn_values = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
        resolved = {"dqn": dqn_values, "twin": twin_values, "physical": physical, "agent": agent}

    from testbed.controller import build_trainer

    try:
        trainer, _ = build_trainer(resolved["dqn"], resolved["twin"], resolved["physical"], run_dir,
                                   resolved.get("agent", "madrl"))
    except TypeError as e:  # a config value of the wrong type
        raise BadInput(f"config: {e}") from None
    resolved["dqn"] = trainer.config.as_dict()
    resolved["twin"] = {k: v for k, v in dataclasses.asdict(trainer.twin.config).items()}
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        trainer.load_checkpoint(checkpoint)
        truncate_metrics(run_dir / "metrics.jsonl", trainer.episode)
    else:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    (run_dir / "config.json").write_text(json.dumps(resolved, indent=2, sort_keys=True), encoding="utf-8")

    started = time.perf_counter()
    first = trainer.episode
    for episode in progress(range(first + 1, trainer.config.episodes + 1), total=trainer.config.episodes - first,
                            desc="train", enabled=sys.stderr.isatty()):
        trainer.run(until_episode=episode)
    if trainer.episode == first:
        trainer.save_checkpoint(checkpoint)
    elapsed = time.perf_counter() - started
    policy = trainer.policy()
    policy_path = run_dir / "policy.pt"
    policy.save(policy_path)

    evaluation: dict[str, float] = {}
    if eval_episodes:
        physical_network = trainer.physical.context_network
        eval_seed = trainer.config.seed + 10_000
        num_actions = trainer.twin.config.num_actions
        twin_config = trainer.twin.config
        for label, candidate in (("policy", policy), ("maxp-3gpp-cqi", MaxPowerCQIPolicy(twin_config.num_power_levels)),
                                 ("olla", OllaPolicy(twin_config.num_power_levels,
                                                     code_block_bits=twin_config.packet_bits)),
                                 ("random", RandomPolicy(num_actions, seed=eval_seed))):
            evaluation[label] = evaluate_policy(candidate, physical_network, eval_episodes, eval_seed).mean_reward
    played = [m for m in trainer.history if not m.get("calibration")]
    summary = {
        "out": str(run_dir),
        "episodes": trainer.episode,
        "episodes_this_call": len(played),
        "physical_episodes": sum(m["source"] == "physical" for m in played),
        "physical": resolved["physical"],
        "agent": resolved.get("agent", "madrl"),
        "seconds": elapsed,
        "mean_sps": (sum(m["charts/sps"] for m in played) / len(played)) if played else None,
        "final_episode_reward": played[-1]["charts/episode_reward"] if played else None,
        "last_measured_phi": next((m["ota/measured_phi"] for m in reversed(played) if m.get("ota/measured_phi")
                                   is not None), None),
        "eval_mean_reward_mbps": evaluation,
        "checkpoint": str(checkpoint),
        "policy": str(policy_path),
        "replay": trainer.memory.source_counts(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")

    def human(result: dict[str, Any]) -> None:
        click.echo(f"trained {result['episodes']} episodes ({result['physical_episodes']} physical this call) "
                   f"in {result['seconds']:.1f} s -> {result['out']}")
        for label, value in result["eval_mean_reward_mbps"].items():
            click.echo(f"  {label:<14} {value:.3f} Mbit/s per slot (physical network, greedy)")

    emit(summary, as_json, human)

