"""``testbed runs``: the runs recorded in the context store, listed or one shown, with their key results.

The status is the store's (running, interrupted, failed, finished); a run recorded as running whose directory lock
is free was killed (SIGKILL, power loss) and is shown as such: ``testbed run --resume DIR`` continues it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from testbed.cliutil import BadInput, emit, handle_errors, json_option
from testbed.cliutil import store_option
from testbed.rundir import lock_is_held

__all__ = ["runs"]


def _summary(run_dir: str) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """One run's listing: id, directory, status, when, mode (policy / physical network) and key metrics."""
    config = record["config"]
    policy = config.get("policy", "dqn")
    physical = (config.get("physical") or {}).get("kind", "ota")
    status = record["status"]
    if status == "running" and not lock_is_held(Path(record["run_dir"])):
        status = "killed"
    summary = _summary(record["run_dir"]) if status == "finished" else None
    metrics: dict[str, Any] = {}
    if summary is not None:
        metrics["episodes"] = summary.get("episodes")
        evaluation = summary.get("evaluation") or {}
        if policy == "maddqn-dmaddpg":
            metrics["policy_mbps"] = (evaluation.get("policy") or {}).get("throughput_mbps")
            metrics["beats_wmmse"] = summary.get("beats_wmmse")
        else:
            metrics["policy_mbps"] = evaluation.get("policy")
            metrics["beats_maxp"] = summary.get("beats_maxp")
            metrics["last_phi"] = summary.get("last_phi")
    return {"id": record["id"], "run_dir": record["run_dir"], "status": status,
            "created_at": record["created_at"], "mode": f"{policy}/{physical}",
            "radios": config.get("radios") or [], "calibration_id": record["calibration_id"], **metrics}


@click.command("runs")
@click.option("--show", "show_id", default=None, help="Show one run in full (its id), with its summary.")
@click.option("--limit", type=int, default=20, show_default=True, help="Runs to list.")
@store_option
@json_option
@handle_errors
def runs(show_id: str | None, limit: int, store_path: str | None, as_json: bool) -> None:
    """List the recorded runs (newest first), or show one."""
    from testbed.store import Store

    if limit < 1:
        raise BadInput(f"--limit {limit}; allowed: an integer >= 1")
    with Store(store_path) as store:
        if show_id is not None:
            record = store.run(show_id)
            if record is None:
                known = [r["id"] for r in store.runs(10)]
                raise BadInput(f"--show {show_id}: no such run; latest: {', '.join(known) or 'none'}")
            shown = {**_row(record), "config": record["config"], "summary": _summary(record["run_dir"])}
            emit(shown, as_json, lambda r: click.echo(json.dumps(r, indent=2, sort_keys=True, default=str)))
            return
        listing = [_row(r) for r in store.runs(limit)]

    def human(result: dict[str, Any]) -> None:
        if not result["runs"]:
            click.echo("no runs recorded")
        for r in result["runs"]:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"]))
            line = f"{r['id']:<22} {when}  {r['status']:<11} {r['mode']:<22} {r['run_dir']}"
            if r.get("policy_mbps") is not None:
                line += f"  policy {r['policy_mbps']:.3f} Mbit/s"
            click.echo(line)

    emit({"runs": listing}, as_json, human)
