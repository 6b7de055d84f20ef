"""``testbed run`` and ``testbed eval`` end to end: a short run on two simulated radios and one on the analytic
network write every artifact; the store holds exactly the OTA transitions played; resume after SIGKILL, after a
crash between the store write and the checkpoint, and after Ctrl-C continues without duplicates; bad input exits 2
naming the problem; a TX-guard refusal stops the run without marking it finished.

Budgets are tiny (an episode of the default twin is 100 slots x 8 networks; OTA episodes have 3-4 slots); one full
calibration per module is stored and reused by every run on radios.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.checkpoint import load_checkpoint
from testbed.store import Store
from tests.testbed.run_helpers import (WAIT_S, experiences, invoke, last_json, metric_lines, physical_in_replay,
                                       run_row, spawn as _spawn, wait_until as _wait_until)

RADIOS = "sim0,sim1"
PLOTS = ("training.png", "phi.png", "evaluation.png")
EVAL_KEYS = {"policy", "maxp-3gpp-cqi", "olla", "random"}
MAX_LINKS_PER_SLOT = 8          # the default twin's RRBs: at most one link per RRB and slot


def check_experiences(rows: list[dict[str, Any]], ota_episodes: set[int], slots: int) -> None:
    """Rows of OTA episodes only, one per (episode, slot, link), at most one link per RRB and slot, non-negative
    goodput, and the measurement of each link."""
    keys = [(r["episode"], r["step"], r["link"]) for r in rows]
    assert len(keys) == len(set(keys)), "an experience is stored twice"
    assert {r["episode"] for r in rows} == ota_episodes
    assert all(1 <= r["step"] <= slots for r in rows)
    per_slot: dict[tuple[int, int], int] = {}
    for r in rows:
        per_slot[(r["episode"], r["step"])] = per_slot.get((r["episode"], r["step"]), 0) + 1
    assert max(per_slot.values()) <= MAX_LINKS_PER_SLOT
    for r in rows:
        assert r["reward"] >= 0
        assert {"sinr_db", "bler"} <= set(r["measured"]), r["measured"]
        assert len(r["state"]) == len(r["next_state"]) == 6


@dataclass
class Lab:
    root: Path
    store: Path
    calibration_id: int


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store holding one full-depth calibration of sim0,sim1 (reused by every run on them: a run never reuses a
    --quick one); cwd is a scratch dir."""
    root = tmp_path_factory.mktemp("run")
    store = root / "store.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        code, out, err = invoke("calibrate", "--radios", RADIOS, "--json", "--store", str(store))
        assert code == 0, err
        yield Lab(root, store, last_json(out)["id"])


@pytest.fixture(scope="module")
def ota_run(lab):
    """Two episodes on the radios, the second over the air (3 slots), two OTA evaluation episodes per policy."""
    run_dir = lab.root / "ota"
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "2", "--ota-every", "2", "--ota-slots", "3",
                            "--eval-episodes", "2", "--run-dir", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    return run_dir, last_json(out)


@pytest.fixture(scope="module")
def analytic_run(lab):
    """Two episodes against the analytic physical network (phi 0.4), the second one 'physical'; no radios."""
    run_dir = lab.root / "analytic"
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--episodes", "2", "--ota-every", "2",
                            "--eval-episodes", "0", "--run-dir", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    return run_dir, last_json(out)


# --- end to end --------------------------------------------------------------------------------------------------

def test_ota_run_writes_every_artifact_and_reuses_the_stored_calibration(lab, ota_run):
    """Exit 0; config.json (versions, calibration id), metrics.jsonl (one line per episode, 'physical' exactly on
    the episodes divisible by --ota-every), checkpoint, calibration.json, policy, evaluation, summary and the report
    with its plots; the calibration made before is reused, not redone."""
    run_dir, summary = ota_run
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "calibration.json", "policy.pt",
                 "evaluation.json", "summary.json", "report.html") + PLOTS:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name

    config = json.loads((run_dir / "config.json").read_text())
    assert config["calibration_id"] == lab.calibration_id and config["radios"] == ["sim0", "sim1"]
    assert {"python", "testbed", "torch", "numpy"} <= set(config["versions"])
    assert config["ota_slots"] == 3 and config["dqn"]["episodes"] == 2 and config["dqn"]["ota_every"] == 2
    # The run's learner: myopic, exploring in the twin, OTA exploration capped, replay of several twin episodes.
    assert config["dqn"]["discount"] == 0.0 and config["dqn"]["epsilon_end"] == 0.1
    assert config["dqn"]["physical_max_epsilon"] == 0.1 and config["dqn"]["replay_capacity"] == 50_000
    assert json.loads((run_dir / "calibration.json").read_text())["id"] == lab.calibration_id

    metrics = metric_lines(run_dir)
    assert [m["episode"] for m in metrics] == [1, 2]
    assert [m["source"] for m in metrics] == ["twin", "physical"]
    assert metrics[1]["ota/measured_phi"] is not None

    assert summary == json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == 2 and summary["ota_episodes"] == 1
    assert summary["calibration_id"] == lab.calibration_id and summary["calibration_reused"] is True
    # Why it was reused: the same units (identity keys) at the same settings and depth.
    choice = summary["calibration_choice"]
    assert choice["reused"] is True and choice["skipped"] == []
    assert choice["message"].startswith(f"reusing calibration {lab.calibration_id} (")
    assert "same radios sim0 [id " in choice["message"] and "full depth" in choice["message"]
    assert set(summary["evaluation"]) == EVAL_KEYS
    assert json.loads((run_dir / "evaluation.json").read_text()) == summary["evaluation"]
    # The twin's fidelity on these radios: every OTA link-slot's measured SINR against the twin's prediction.
    assert (run_dir / "sinr.png").is_file() and 'alt="sinr.png"' in (run_dir / "report.html").read_text()
    assert 0 < summary["ota_sinr"]["link_slots"] <= 3 * MAX_LINKS_PER_SLOT
    # The run's twin hears the links as the device radio does: from the stored calibration it predicts them within
    # a couple of dB (0.96 dB median absolute error here; eq. 14's geometric view misses by more, see test_ota.py).
    assert summary["ota_sinr"]["median_abs_error_db"] < 2.5
    assert all(v >= 0 for v in summary["evaluation"].values())
    # Delivered over the air, in real units: within what LTE 5 MHz carries (25 RB x 12 x 14 REs x 6 bit per 1 ms =
    # 25.2 Mbit/s before pilots and coding), and the 8 RRBs of 3 RBs use at most 24 of the 25 RBs.
    delivered = summary["evaluation_ota_throughput_mbps"]
    assert set(delivered) == EVAL_KEYS
    assert all(0.0 <= v < 25.2 * 24 / 25 for v in delivered.values())
    assert delivered["policy"] > delivered["random"] > 0
    assert 0 < summary["ota_share"] <= 1
    page = (run_dir / "report.html").read_text()
    assert all(f'<img src="data:image/png;base64,' in page and f'alt="{p}"' in page for p in PLOTS)
    assert f"Calibration {lab.calibration_id}" in page
    assert load_checkpoint(run_dir / "checkpoint.pt")["episode"] == 2

    with Store(lab.store) as store:
        assert len(store.calibrations()) == 1           # reused: no second record
        row = store.run("ota")
    assert row["status"] == "finished" and row["calibration_id"] == lab.calibration_id


def test_ota_experiences_are_exactly_the_link_slots_played_over_the_air(lab, ota_run):
    """The store holds one row per scheduled link and slot of the OTA episode: as many as the physical transitions
    the replay memory received, goodputs that add up to the episode's reward, each with its measured SINR and
    BLER; one KPM sample per slot."""
    run_dir, _ = ota_run
    metrics = metric_lines(run_dir)
    rows = experiences(lab.store, "ota")
    check_experiences(rows, {2}, slots=3)
    assert len(rows) == physical_in_replay(metrics[-1]) > 0
    assert sum(r["reward"] for r in rows) / 3 == pytest.approx(metrics[1]["ota/episode_reward"], rel=1e-5)
    with Store(lab.store) as store:
        assert len(store.kpms("ota/sinr_db", "ota")) == len({r["step"] for r in rows})


def test_eval_of_a_finished_run_compares_the_policy_with_the_baselines_over_the_air(lab, ota_run):
    """``testbed eval --run DIR --json`` replays the run's radios and calibration: the four policies, each a mean
    goodput per slot."""
    run_dir, _ = ota_run
    code, out, err = invoke("eval", "--run", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    result = last_json(out)
    assert set(result["evaluation"]) == EVAL_KEYS
    assert all(v >= 0 for v in result["evaluation"].values())
    assert result["radios"] == ["sim0", "sim1"] and result["episodes"] == 1


def test_the_learner_and_twin_view_of_a_run_are_options_it_records(lab, tmp_path):
    """``--twin-view geometric --twin-exploration 0.01 --replay-capacity 5000`` (the paper's settings) reach the
    twin and the learner and are recorded, so a comparison quoted in the docs is one command; without radios the
    twin view is refused, and a resumed run refuses another view."""
    run_dir = tmp_path / "paper"
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "2", "--ota-every", "2", "--ota-slots", "2",
                            "--eval-episodes", "0", "--twin-view", "geometric", "--twin-exploration", "0.01",
                            "--replay-capacity", "5000", "--run-dir", str(run_dir), "--store", str(lab.store),
                            "--json")
    assert code == 0, err
    config = json.loads((run_dir / "config.json").read_text())
    assert config["twin"]["interference"] == "geometric"
    assert config["dqn"]["epsilon_end"] == 0.01 and config["dqn"]["replay_capacity"] == 5000
    code, out, err = invoke("run", "--resume", str(run_dir), "--twin-view", "colocated", "--store", str(lab.store))
    assert code == 2 and "--twin-view" in out + err
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--twin-view", "geometric")
    assert code == 2 and "--twin-view" in out + err
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--replay-capacity", "10")
    assert code == 2 and "--replay-capacity 10" in out + err


def test_analytic_run_needs_no_radios(lab, analytic_run):
    """``--physical analytic:phi=0.4``: no calibration, no OTA experiences; the measured phi is near the hidden
    0.4; every other artifact as on radios; the run is finished."""
    run_dir, summary = analytic_run
    assert not (run_dir / "calibration.json").exists()
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "policy.pt", "summary.json", "report.html",
                 "training.png", "phi.png"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["radios"] == [] and config["physical"] == {"kind": "analytic", "phi": 0.4}
    assert config["calibration_id"] is None and {"python", "torch"} <= set(config["versions"])
    assert [m["source"] for m in metric_lines(run_dir)] == ["twin", "physical"]
    assert summary["episodes"] == 2 and summary["ota_episodes"] == 1 and summary["evaluation"] == {}
    assert summary["calibration_id"] is None and summary["radios"] == []
    assert summary["ota_sinr"] is None and not (run_dir / "sinr.png").exists()
    assert abs(summary["last_phi"] - 0.4) < 0.15
    assert "No calibration" in (run_dir / "report.html").read_text()
    assert run_row(lab.store, "analytic")["status"] == "finished"
    assert experiences(lab.store, "analytic") == []


# --- resume ------------------------------------------------------------------------------------------------------

def test_resume_after_sigkill_continues_without_duplicate_episodes(lab, tmp_path):
    """SIGKILL an analytic run of 12 episodes once two are done (and tear its last metrics line); ``--resume`` finishes
    it: metrics hold exactly one line per episode 1..Z, the summary counts Z, the store says finished."""
    run_dir = tmp_path / "killed"
    proc = _spawn(["run", "--physical", "analytic:phi=0.4", "--episodes", "12", "--ota-every", "2",
                   "--eval-episodes", "0", "--run-dir", str(run_dir), "--store", str(lab.store), "--json"],
                  tmp_path, "killed")
    try:
        _wait_until(proc, lambda: len(metric_lines(run_dir)) >= 2 and (run_dir / "checkpoint.pt").exists(),
                    "two episodes and a checkpoint", tmp_path, "killed")
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert run_row(lab.store, "killed")["status"] == "running"
    # Metrics reach the file just before the checkpoint: a kill between them leaves the checkpoint one behind.
    assert 1 <= load_checkpoint(run_dir / "checkpoint.pt")["episode"] < 12
    # A kill can also land in the middle of writing a metrics line: the torn tail belongs to the episode in flight.
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as stream:
        stream.write('{"episode": 9, "source": "tw')

    code, out, err = invoke("run", "--resume", str(run_dir), "--discount", "0.9", "--store", str(lab.store))
    assert code == 2 and "--discount 0.9" in err and "keeps its learner" in err
    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    assert last_json(out)["episodes"] == 12
    assert [m["episode"] for m in metric_lines(run_dir)] == list(range(1, 13))
    assert [m["source"] for m in metric_lines(run_dir)] == ["twin", "physical"] * 6
    assert json.loads((run_dir / "summary.json").read_text())["episodes"] == 12
    assert run_row(lab.store, "killed")["status"] == "finished"


class _Crash(RuntimeError):
    """Stands in for a SIGKILL at the worst moment: after the store has an episode, before its checkpoint."""


def test_resume_drops_the_stored_experiences_of_an_episode_without_checkpoint(lab, tmp_path, monkeypatch):
    """An OTA run dies after episode 2's experiences are stored but before its checkpoint: the store is ahead of
    the checkpoint. ``--resume`` drops them and replays episode 2: in the end the store holds each link-slot
    once, as many as the replay memory's physical transitions, and metrics one line per episode."""
    from agents.continual import ContinualTrainer

    real = ContinualTrainer.save_checkpoint

    def crash_at_episode_2(self, path):
        if self.episode == 2:
            raise _Crash("killed")
        return real(self, path)

    run_dir = tmp_path / "crashed"
    args = ["--radios", RADIOS, "--episodes", "3", "--ota-every", "1", "--ota-slots", "3", "--eval-episodes", "0",
            "--run-dir", str(run_dir), "--store", str(lab.store), "--json"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ContinualTrainer, "save_checkpoint", crash_at_episode_2)
    with pytest.raises(_Crash):
        invoke("run", *args)
    monkeypatch.undo()
    assert load_checkpoint(run_dir / "checkpoint.pt")["episode"] == 1
    assert {r["episode"] for r in experiences(lab.store, "crashed")} == {1, 2}       # ahead of the checkpoint
    assert [m["episode"] for m in metric_lines(run_dir)] == [1, 2]

    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    summary = last_json(out)
    assert summary["episodes"] == 3 and summary["ota_episodes"] == 3
    assert summary["calibration_id"] == lab.calibration_id
    metrics = metric_lines(run_dir)
    assert [m["episode"] for m in metrics] == [1, 2, 3] and {m["source"] for m in metrics} == {"physical"}
    rows = experiences(lab.store, "crashed")
    check_experiences(rows, {1, 2, 3}, slots=3)
    assert len(rows) == physical_in_replay(metrics[-1])
    assert run_row(lab.store, "crashed")["status"] == "finished"


def test_a_run_that_dies_in_its_first_episode_resumes_from_the_start_keeping_none_of_its_experiences(
        lab, tmp_path, monkeypatch):
    """The first attempt dies after episode 1's experiences are stored, before that episode's checkpoint: the
    directory holds a run (checkpointed at episode 0), so the same command is refused and ``--resume`` starts
    from episode 1 again; the store ends with the new attempt's rows only."""
    from agents.continual import ContinualTrainer

    real = ContinualTrainer.save_checkpoint

    def crash_at_episode_1(self, path):
        if self.episode == 1:
            raise _Crash("killed")
        return real(self, path)

    run_dir = tmp_path / "again"
    args = ["run", "--radios", RADIOS, "--episodes", "1", "--ota-every", "1", "--ota-slots", "3", "--eval-episodes",
            "0", "--run-dir", str(run_dir), "--store", str(lab.store), "--json"]
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as mp:
        mp.setattr(ContinualTrainer, "save_checkpoint", crash_at_episode_1)
        with pytest.raises(_Crash):
            invoke(*args)
    assert load_checkpoint(run_dir / "checkpoint.pt")["episode"] == 0
    assert {r["episode"] for r in experiences(lab.store, "again")} == {1}
    code, out, err = invoke(*args)
    assert code == 2 and "already holds a run" in err
    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    rows = experiences(lab.store, "again")
    check_experiences(rows, {1}, slots=3)
    assert len(rows) == physical_in_replay(metric_lines(run_dir)[-1])
    assert [m["episode"] for m in metric_lines(run_dir)] == [1]
    assert run_row(lab.store, "again")["status"] == "finished"


def test_runs_in_directories_of_the_same_name_do_not_share_a_record(lab, tmp_path, monkeypatch):
    """Two runs whose directories have the same name (a/same, b/same) get distinct run records; each holds its
    own directory and only its own experiences."""
    monkeypatch.chdir(tmp_path)
    ids = []
    for parent in ("a", "b"):
        run_dir = tmp_path / parent / "same"
        code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "1", "--ota-every", "1", "--ota-slots", "3",
                                "--eval-episodes", "0", "--run-dir", str(run_dir), "--store", str(lab.store),
                                "--json")
        assert code == 0, err
        run_id = last_json(out)["run"]
        assert json.loads((run_dir / "config.json").read_text())["run_id"] == run_id
        assert Path(run_row(lab.store, run_id)["run_dir"]) == run_dir.resolve()
        rows = experiences(lab.store, run_id)
        check_experiences(rows, {1}, slots=3)
        assert len(rows) == physical_in_replay(metric_lines(run_dir)[-1])
        ids.append(run_id)
    assert ids[0] != ids[1]


def test_sigint_stops_an_ota_run_cleanly_and_resume_continues(lab, tmp_path):
    """Ctrl-C during OTA episodes: the run stops after the slot in flight, exits 130 (interrupted, resumable) and
    says it was interrupted (the store too); nothing of the unfinished episode is kept; ``--resume`` plays the
    remaining episodes."""
    run_dir = tmp_path / "stopped"
    proc = _spawn(["run", "--radios", RADIOS, "--episodes", "3", "--ota-every", "1", "--ota-slots", "4",
                   "--eval-episodes", "0", "--run-dir", str(run_dir), "--store", str(lab.store), "--json"],
                  tmp_path, "stopped")
    try:
        _wait_until(proc, lambda: len(metric_lines(run_dir)) >= 1, "a finished episode", tmp_path, "stopped")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = (tmp_path / "stopped.err").read_text()
    assert proc.returncode == 130, err
    assert f"continue with: testbed run --resume {run_dir}" in err
    stopped = last_json((tmp_path / "stopped.out").read_text())
    assert stopped["interrupted"] is True and stopped["resume"].endswith(str(run_dir))
    done = stopped["episodes"]
    assert 1 <= done < 3
    assert [m["episode"] for m in metric_lines(run_dir)] == list(range(1, done + 1))
    assert load_checkpoint(run_dir / "checkpoint.pt")["episode"] == done
    assert run_row(lab.store, "stopped")["status"] == "interrupted"
    assert {r["episode"] for r in experiences(lab.store, "stopped")} == set(range(1, done + 1))
    assert not (run_dir / "summary.json").exists()

    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    assert last_json(out)["episodes"] == 3
    metrics = metric_lines(run_dir)
    assert [m["episode"] for m in metrics] == [1, 2, 3]
    rows = experiences(lab.store, "stopped")
    check_experiences(rows, {1, 2, 3}, slots=4)
    assert len(rows) == physical_in_replay(metrics[-1])
    assert run_row(lab.store, "stopped")["status"] == "finished"


@pytest.fixture(scope="module")
def hetnet_run(lab):
    """``--policy maddqn-dmaddpg``: two twin episodes, one over-the-air evaluation episode of 2 slots per policy."""
    run_dir = lab.root / "hetnet"
    code, out, err = invoke("run", "--radios", RADIOS, "--policy", "maddqn-dmaddpg", "--episodes", "2",
                            "--ota-slots", "2", "--eval-episodes", "1", "--run-dir", str(run_dir),
                            "--store", str(lab.store), "--json")
    assert code == 0, err
    return run_dir, last_json(out)


def test_hetnet_run_trains_in_the_twin_and_compares_with_wmmse_over_the_air(lab, hetnet_run):
    """``--policy maddqn-dmaddpg``: trains in the HetNet twin (one metrics line per episode), evaluates the policy,
    WMMSE + SSA and random over the air on the same deployments with the stored calibration, records every UE-slot
    played and writes the report; the store marks the run finished."""
    run_dir, summary = hetnet_run
    for name in ("config.json", "calibration.json", "metrics.jsonl", "policy.pt", "evaluation.json",
                 "ota_records.jsonl", "summary.json", "report.html", "training.png", "evaluation.png", "sinr.png"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["policy"] == "maddqn-dmaddpg" and config["calibration_id"] == lab.calibration_id
    assert config["calibration_reused"] is True and {"python", "torch"} <= set(config["versions"])
    assert [m["episode"] for m in metric_lines(run_dir)] == [1, 2]
    evaluation = summary["evaluation"]
    assert set(evaluation) == {"policy", "wmmse-ssa", "random"}
    for metrics in evaluation.values():
        assert 0.0 <= metrics["credited_twin_mbps"] <= metrics["twin_throughput_mbps"] * 1.05
        assert 0.0 <= metrics["ota_throughput_mbps"] < 25.2  # what LTE 5 MHz carries at most, in real Mbit/s
        assert 0.0 < metrics["jain"] <= 1.0 and metrics["rounds"] >= 1.0
    num_ues = config["hetnet"]["num_ues"]
    records = [json.loads(line) for line in (run_dir / "ota_records.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 2 * num_ues
    assert summary["ofdm_slots"] >= 3 * 2
    assert run_row(lab.store, summary["run"])["status"] == "finished"
    assert 'alt="sinr.png"' in (run_dir / "report.html").read_text()


def test_eval_of_a_hetnet_run_replays_the_same_deployments_over_the_air(lab, hetnet_run):
    """``testbed eval --run DIR`` of a HetNet run: the same three policies over the air with the run's calibration;
    WMMSE + SSA decides from the channels alone, so on the same deployments the twin's throughput of its decisions
    is the run's to float rounding."""
    run_dir, summary = hetnet_run
    code, out, err = invoke("eval", "--run", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    result = last_json(out)
    assert result["calibration_id"] == lab.calibration_id
    assert set(result["evaluation"]) == {"policy", "wmmse-ssa", "random"}
    again, before = result["evaluation"]["wmmse-ssa"], summary["evaluation"]["wmmse-ssa"]
    assert again["twin_throughput_mbps"] == pytest.approx(before["twin_throughput_mbps"], rel=1e-6)
    assert again["ota_throughput_mbps"] > 0


def test_hetnet_run_resumed_from_its_checkpoint_trains_the_same_policy(lab, tmp_path, monkeypatch):
    """A 3-episode HetNet run killed right after its first checkpoint and resumed (``--resume DIR``) ends with the
    same policy, bit for bit, as a run that was never interrupted; its metrics hold each episode once."""
    import torch

    from testbed.controller import HetNetController

    monkeypatch.chdir(tmp_path)
    common = ("--radios", RADIOS, "--policy", "maddqn-dmaddpg", "--episodes", "3", "--eval-episodes", "0",
              "--store", str(lab.store), "--json")
    code, _, err = invoke("run", *common, "--run-dir", str(tmp_path / "hetnet-straight"))
    assert code == 0, err
    save = HetNetController.save_checkpoint

    def save_then_die(*args):
        save(*args)
        raise RuntimeError("killed after the first checkpoint")

    monkeypatch.setattr(HetNetController, "save_checkpoint", save_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        invoke("run", *common, "--run-dir", str(tmp_path / "hetnet-killed"))
    monkeypatch.setattr(HetNetController, "save_checkpoint", save)
    run_id = json.loads((tmp_path / "hetnet-killed" / "config.json").read_text())["run_id"]
    assert run_row(lab.store, run_id)["status"] == "failed"
    code, out, err = invoke("run", "--resume", str(tmp_path / "hetnet-killed"), "--store", str(lab.store), "--json")
    assert code == 0, err
    assert last_json(out)["episodes"] == 3
    assert [m["episode"] for m in metric_lines(tmp_path / "hetnet-killed")] == [1, 2, 3]
    a = torch.load(tmp_path / "hetnet-straight" / "policy.pt", weights_only=True)["state"]
    b = torch.load(tmp_path / "hetnet-killed" / "policy.pt", weights_only=True)["state"]
    for part in ("q_network", "actor"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert run_row(lab.store, run_id)["status"] == "finished"


def test_hetnet_run_stopped_in_training_says_where_and_resumes_to_the_end(lab, tmp_path, monkeypatch):
    """Ctrl-C during HetNet training (the stop flag set while the first episode is checkpointed) ends the run with
    exit 130 after that episode: the summary names episode 1 and the resume command, the store says interrupted,
    and ``--resume`` trains episodes 2 and 3 only."""
    from testbed.controller import HetNetController

    monkeypatch.chdir(tmp_path)
    save = HetNetController.save_checkpoint

    def save_then_stop(self, learner, history):
        save(self, learner, history)
        self.flag.stop = True

    monkeypatch.setattr(HetNetController, "save_checkpoint", save_then_stop)
    run_dir = tmp_path / "hetnet-stopped"
    code, out, err = invoke("run", "--radios", RADIOS, "--policy", "maddqn-dmaddpg", "--episodes", "3",
                            "--eval-episodes", "0", "--store", str(lab.store), "--run-dir", str(run_dir), "--json")
    assert code == 130, err
    stopped = last_json(out)
    assert stopped["interrupted"] is True and stopped["episodes"] == 1
    assert stopped["resume"] == f"testbed run --resume {run_dir}"
    assert run_row(lab.store, stopped["run"])["status"] == "interrupted"
    assert [m["episode"] for m in metric_lines(run_dir)] == [1]
    monkeypatch.setattr(HetNetController, "save_checkpoint", save)
    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(lab.store), "--json")
    assert code == 0, err
    assert last_json(out)["episodes"] == 3
    assert [m["episode"] for m in metric_lines(run_dir)] == [1, 2, 3]
    assert run_row(lab.store, stopped["run"])["status"] == "finished"


# --- bad input ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--radios", "sim0"], "two or more different radios"),
    (["--radios", "sim0,sim0"], "two or more different radios"),
    (["--radios", "sim0,nosuch"], "nosuch"),
    ([], "--radios is required"),
    (["--radios", RADIOS, "--physical", "analytic:phi=0.4"], "either --radios or --physical"),
    (["--physical", "analytic:phi=0.4", "--episodes", "0"], "--episodes 0"),
    (["--physical", "analytic:phi=0.4", "--ota-slots", "0"], "--ota-slots 0"),
    (["--physical", "analytic:phi=0.4", "--discount", "1"], "--discount 1.0"),
    (["--physical", "analytic:phi=0.4", "--discount", "-0.1"], "0 <= gamma < 1"),
    (["--resume", "/nonexistent/run"], "/nonexistent/run"),
    (["--policy", "maddqn-dmaddpg"], "--radios is required"),
    (["--policy", "maddqn-dmaddpg", "--physical", "analytic:phi=0.4"], "--physical: not used by --policy"),
    (["--policy", "maddqn-dmaddpg", "--radios", RADIOS, "--ota-every", "5"], "--ota-every: not used by"),
    (["--policy", "maddqn-dmaddpg", "--radios", "sim0"], "two or more different radios"),
])
def test_bad_input_exits_2_naming_the_problem(tmp_path, monkeypatch, args, says):
    """Exit 2 with a message naming the bad value, before anything is calibrated, trained or stored."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.sqlite"
    code, out, err = invoke("run", *args, "--run-dir", str(tmp_path / "r"), "--store", str(store))
    assert code == 2, (out, err)
    assert says in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    if store.exists():
        with Store(store) as s:
            assert s.calibrations() == [] and s.run("r") is None


def test_run_dir_of_an_existing_run_exits_2(lab, analytic_run):
    """A directory that already holds a run is not overwritten: exit 2 pointing at --resume; the run is intact."""
    run_dir, _ = analytic_run
    before = (run_dir / "metrics.jsonl").read_text()
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--episodes", "1", "--run-dir", str(run_dir),
                            "--store", str(lab.store))
    assert code == 2 and "already holds a run" in err and "--resume" in err
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_eval_of_a_directory_without_a_policy_exits_2(tmp_path):
    code, out, err = invoke("eval", "--run", str(tmp_path), "--store", str(tmp_path / "s.sqlite"))
    assert code == 2 and "policy.pt" in err


# --- the TX guard ------------------------------------------------------------------------------------------------

GUARD_5_8 = "[safety]\nallowed_bands = [[5725e6, 5875e6]]\nmax_tx_gain_db = 0.0\n"


def test_a_guard_that_excludes_the_carrier_refuses_the_calibration(tmp_path, monkeypatch):
    """[safety] allows 5.8 GHz only: the calibration's first transmission at 2.45 GHz is refused. The run exits
    with the guard's message (exit 2: the CLI maps a TX-guard refusal to bad input, the configuration forbids
    it); no calibration, no run row, no checkpoint."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "guard.toml"
    config.write_text(GUARD_5_8)
    store = tmp_path / "s.sqlite"
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "2", "--ota-every", "1", "--ota-slots", "3",
                            "--run-dir", str(tmp_path / "r"), "--store", str(store), "--config", str(config))
    assert code == 2, (out, err)
    assert "TX guard" in err and "2450" in err
    with Store(store) as s:
        assert s.calibrations() == [] and s.run("r") is None
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_a_guard_that_excludes_the_carrier_refuses_the_run_before_it_starts(lab, tmp_path, monkeypatch):
    """With a stored calibration to reuse, nothing would transmit before the first OTA episode: the run's carrier is
    checked against the guard before anything starts, so the run exits 2 with the guard's message and leaves no run
    directory, no run record and no experience."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "guard.toml"
    config.write_text(GUARD_5_8)
    run_dir = tmp_path / "guarded"
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "2", "--ota-every", "1", "--ota-slots", "3",
                            "--run-dir", str(run_dir), "--store", str(lab.store), "--config", str(config))
    assert code == 2, (out, err)
    assert "TX guard" in err and "5725-5875 MHz" in err
    assert run_row(lab.store, "guarded") is None and experiences(lab.store, "guarded") == []
    assert not run_dir.exists()


@pytest.mark.slow
def test_recalibrate_makes_a_new_record_even_with_a_fresh_one_stored(lab, tmp_path, monkeypatch):
    """``--recalibrate`` runs the full calibration although the store has a record younger than 24 h: the run uses
    the new record (not reused), and the store holds one more."""
    import sqlite3

    store = tmp_path / "copy.sqlite"
    with sqlite3.connect(lab.store) as src, sqlite3.connect(store) as dst:
        src.backup(dst)
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "1", "--ota-every", "1", "--ota-slots", "3",
                            "--eval-episodes", "0", "--recalibrate", "--run-dir", str(tmp_path / "recal"),
                            "--store", str(store), "--json")
    assert code == 0, err
    summary = last_json(out)
    assert summary["calibration_reused"] is False and summary["calibration_id"] != lab.calibration_id
    with Store(store) as s:
        assert [r.id for r in s.calibrations()] == [summary["calibration_id"], lab.calibration_id]
    assert json.loads((tmp_path / "recal" / "calibration.json").read_text())["id"] == summary["calibration_id"]


# --- files from elsewhere: tensors-only loading ------------------------------------------------------------------

class _WritesAMarker:
    """Unpickling this opens (creates) a file: the stand-in for any code a crafted file could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import builtins

        return (builtins.open, (self.path, "w"))


def _crafted_run_dir(source: Path, target: Path, file_name: str) -> Path:
    """``target`` with ``source``'s config.json and a crafted ``file_name`` whose unpickling would create
    ``target/ran``; returns the marker's path."""
    import shutil

    import torch

    target.mkdir()
    shutil.copy(source / "config.json", target / "config.json")
    marker = target / "ran"
    torch.save({"class": "agents.marl.maddqn_dmaddpg.MADDQNDMADDPGPolicy", "hyper_parameters": {},
                "state": {"q_network": _WritesAMarker(str(marker))}, "learner": {}, "history": {}},
               target / file_name)
    return marker


@pytest.mark.parametrize("fixture", ["hetnet_run", "analytic_run"])
def test_eval_refuses_a_policy_file_that_is_not_tensors_only(request, lab, tmp_path, fixture):
    """A run directory copied from elsewhere whose policy.pt would run code when unpickled: ``testbed eval`` exits
    2 naming the file, and the code never runs."""
    run_dir, _ = request.getfixturevalue(fixture)
    marker = _crafted_run_dir(run_dir, tmp_path / "copied", "policy.pt")
    code, out, err = invoke("eval", "--run", str(tmp_path / "copied"), "--store", str(lab.store))
    assert code == 2, (out, err)
    assert f"{tmp_path / 'copied' / 'policy.pt'} is not a tensors-only checkpoint" in err
    assert not marker.exists()


@pytest.mark.parametrize("fixture", ["hetnet_run", "analytic_run"])
def test_resume_refuses_a_checkpoint_that_is_not_tensors_only(request, lab, tmp_path, fixture):
    """The same with checkpoint.pt and ``testbed run --resume``: exit 2 naming the file, nothing run or stored."""
    run_dir, _ = request.getfixturevalue(fixture)
    marker = _crafted_run_dir(run_dir, tmp_path / "copied", "checkpoint.pt")
    with Store(lab.store) as store:
        before = len(store.calibrations())
    code, out, err = invoke("run", "--resume", str(tmp_path / "copied"), "--store", str(lab.store))
    assert code == 2, (out, err)
    assert f"{tmp_path / 'copied' / 'checkpoint.pt'} is not a tensors-only checkpoint" in err
    assert not marker.exists()
    with Store(lab.store) as store:
        assert len(store.calibrations()) == before


# --- which calibration a run reuses ------------------------------------------------------------------------------

def _store_copy(lab: Lab, target: Path) -> Path:
    import sqlite3

    with sqlite3.connect(lab.store) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def test_a_run_on_other_front_ends_does_not_reuse_the_calibration_of_the_default_ones(lab, tmp_path, monkeypatch):
    """--sim-config gives sim0 another TX EVM: the stored record (same names, same settings, 24 h young) measured
    another front end, so the run calibrates anew and says why; a second run on those front ends reuses the new
    record."""
    monkeypatch.chdir(tmp_path)
    store = _store_copy(lab, tmp_path / "copy.sqlite")
    sim_config = tmp_path / "evm.toml"
    sim_config.write_text("[sim.radios.sim0]\ntx_evm = 0.06\n", encoding="utf-8")
    common = ("--radios", RADIOS, "--policy", "maddqn-dmaddpg", "--episodes", "1", "--eval-episodes", "0",
              "--sim-config", str(sim_config), "--store", str(store), "--json")
    code, out, err = invoke("run", *common, "--run-dir", str(tmp_path / "first"))
    assert code == 0, err
    summary = last_json(out)
    assert summary["calibration_reused"] is False and summary["calibration_id"] != lab.calibration_id
    skipped = summary["calibration_choice"]["skipped"]
    assert len(skipped) == 1 and skipped[0].startswith(f"skipped calibration {lab.calibration_id} (")
    assert "sim0 is not the radio it measured" in skipped[0] and "sim1" not in skipped[0]
    assert skipped[0] in err and summary["calibration_choice"]["message"] in err
    code, out, err = invoke("run", *common, "--run-dir", str(tmp_path / "second"))
    assert code == 0, err
    again = last_json(out)
    assert again["calibration_reused"] is True and again["calibration_id"] == summary["calibration_id"]
    assert again["calibration_choice"]["message"].startswith(f"reusing calibration {summary['calibration_id']} (")
    assert html_text(tmp_path / "second" / "report.html").count(again["calibration_choice"]["message"]) == 1


def test_a_younger_quick_calibration_is_skipped_by_a_run(lab, tmp_path, monkeypatch):
    """A --quick record of the same radios, younger than the full one: the run skips it (saying so) and reuses the
    full-depth record."""
    monkeypatch.chdir(tmp_path)
    store = _store_copy(lab, tmp_path / "copy.sqlite")
    code, out, err = invoke("calibrate", "--radios", RADIOS, "--quick", "--json", "--store", str(store))
    assert code == 0, err
    quick_id = last_json(out)["id"]
    code, out, err = invoke("run", "--radios", RADIOS, "--policy", "maddqn-dmaddpg", "--episodes", "1",
                            "--eval-episodes", "0", "--run-dir", str(tmp_path / "r"), "--store", str(store), "--json")
    assert code == 0, err
    summary = last_json(out)
    assert summary["calibration_reused"] is True and summary["calibration_id"] == lab.calibration_id
    line = f"skipped calibration {quick_id} (0 min old): a quick calibration; this needs full depth"
    assert summary["calibration_choice"]["skipped"] == [line] and line in err


def html_text(path: Path) -> str:
    import html

    return html.unescape(path.read_text(encoding="utf-8"))


# --- self-contained reports, the evaluation's spread, the carrier of eval ---------------------------------------

def _embedded_pngs(page: str) -> list[bytes]:
    import base64
    import re

    return [base64.b64decode(b) for b in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


@pytest.mark.parametrize("fixture", ["ota_run", "hetnet_run"])
def test_a_report_is_self_contained_and_renders_from_a_moved_run_directory(request, lab, tmp_path, fixture):
    """report.html and the calibration report copied beside it embed every figure and link only inside the run
    directory: moved elsewhere without a single PNG file, nothing they show is missing."""
    import re
    import shutil

    run_dir, _ = request.getfixturevalue(fixture)
    moved = tmp_path / "elsewhere"
    shutil.copytree(run_dir, moved)
    figures_written = sorted(p.name for p in moved.glob("*.png"))
    for png in moved.rglob("*.png"):
        png.unlink()
    pages = {"report": moved / "report.html", "calibration": moved / "calibration" / "report.html"}
    for name, path in pages.items():
        page = path.read_text(encoding="utf-8")
        assert re.findall(r'src="(?!data:)[^"]*"', page) == [], name
        assert str(lab.root) not in page and str(run_dir) not in page, name
        images = _embedded_pngs(page)
        assert images and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images), name
        for href in re.findall(r'href="([^"]*)"', page):
            assert not Path(href).is_absolute() and (path.parent / href).resolve().is_file(), (name, href)
    page = pages["report"].read_text(encoding="utf-8")
    assert len(_embedded_pngs(page)) == len(figures_written)
    assert 'href="calibration/report.html"' in page
    stored = json.loads((run_dir / "calibration.json").read_text())["meta"]["report"]["html"]
    stored_figures = re.findall(r'<img src="([^"]+\.png)"', Path(stored).read_text(encoding="utf-8"))
    assert len(stored_figures) >= 3
    assert len(_embedded_pngs(pages["calibration"].read_text(encoding="utf-8"))) == len(stored_figures)


def test_the_summary_gives_each_policy_a_95_ci_over_its_evaluation_episodes(ota_run):
    """evaluation_ci95: per policy the per-episode values whose mean is the evaluation's value, and the Student-t
    interval of that mean over n = 2 episodes (t_0.975,1 = 12.706); the report shows the same numbers."""
    import html as html_module
    import statistics

    run_dir, summary = ota_run
    spread = summary["evaluation_ci95"]
    assert set(spread) == set(summary["evaluation"]) == EVAL_KEYS
    page = html_module.unescape((run_dir / "report.html").read_text(encoding="utf-8"))
    for label, ci in spread.items():
        value = summary["evaluation"][label]
        assert ci["n"] == 2 == len(ci["episode_values"])
        assert ci["mean"] == pytest.approx(statistics.fmean(ci["episode_values"]), rel=1e-12)
        assert ci["mean"] == pytest.approx(value, rel=1e-5, abs=1e-9)
        assert ci["low"] <= ci["mean"] <= ci["high"]
        half = 12.7062047 * statistics.stdev(ci["episode_values"]) / 2 ** 0.5
        assert ci["high"] - ci["mean"] == pytest.approx(half, rel=1e-6, abs=1e-12)
        assert f"<td>{ci['low']:.3f} to {ci['high']:.3f}</td><td>2</td>" in page


def test_a_hetnet_summary_gives_each_policy_its_episodes_ota_throughput(hetnet_run):
    """HetNet: evaluation_ci95 holds each policy's per-episode ota_throughput_mbps, whose mean is the evaluation's;
    one episode has no interval (low = high = None)."""
    _, summary = hetnet_run
    assert summary["evaluation"], summary.get("radio_outage")
    assert set(summary["evaluation_ci95"]) == {"policy", "wmmse-ssa", "random"}
    for label, ci in summary["evaluation_ci95"].items():
        assert ci["n"] == 1 and ci["low"] is None and ci["high"] is None
        assert ci["episode_values"][0] == pytest.approx(summary["evaluation"][label]["ota_throughput_mbps"],
                                                        rel=1e-5, abs=1e-9)


def test_hetnet_episode_throughputs_are_each_episodes_slot_mean_of_the_ue_sum():
    """Per-episode ota_throughput_mbps from the UE-slot records: per seed, the sum over its UE-slots / its slots."""
    from testbed.controller import episode_throughputs

    records = [{"policy": label, "seed": seed, "ota_throughput_mbps": value}
               for label, seed, values in (("a", 7, [1.0, 2.0, 0.0, 3.0]), ("a", 8, [0.5] * 4),
                                           ("b", 7, [0.0] * 4), ("b", 8, [4.0, 0.0, 0.0, 0.0]))
               for value in values]
    assert episode_throughputs(records, [7, 8], slots=2) == {"a": [3.0, 1.0], "b": [0.0, 2.0]}


@pytest.mark.parametrize("fixture", ["ota_run", "hetnet_run"])
def test_eval_on_other_radios_calibrates_at_the_run_carrier(request, lab, tmp_path, monkeypatch, fixture):
    """``testbed eval --run DIR --radios ...`` needing a calibration asks for one at the carrier the run recorded
    (config.json lo_hz; a run recorded without one: its calibration's), not at the default carrier."""
    import shutil

    import testbed.controller as controller

    run_dir, _ = request.getfixturevalue(fixture)
    copied = tmp_path / "copied"
    shutil.copytree(run_dir, copied)
    config = json.loads((copied / "config.json").read_text())
    calibration = json.loads((copied / "calibration.json").read_text())
    if config.get("policy") == "maddqn-dmaddpg":
        config["lo_hz"] = 2.42e9
    else:
        del config["lo_hz"]
        calibration["meta"]["settings"]["lo_hz"] = 2.42e9
    (copied / "config.json").write_text(json.dumps(config))
    (copied / "calibration.json").write_text(json.dumps(calibration))
    asked = []

    def calibrate_or_reuse(names, radios, store, settings, **kwargs):
        asked.append(settings.lo_hz)
        raise RuntimeError("stop before calibrating")

    monkeypatch.setattr(controller, "calibrate_or_reuse", calibrate_or_reuse)
    with pytest.raises(RuntimeError, match="stop before calibrating"):
        invoke("eval", "--run", str(copied), "--radios", "sim1,sim0", "--store", str(tmp_path / "s.sqlite"))
    assert asked == [2.42e9]


# --- the documented schema of a run directory ---------------------------------------------------------------------

def _schema(mode: str, kind: str) -> dict[str, str]:
    """The table under ``<!-- schema: MODE KIND -->`` in docs/run-directory.md: name -> its 'present' column."""
    from tests.conftest import REPO

    lines = (REPO / "docs" / "run-directory.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"<!-- schema: {mode} {kind} -->") + 1
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows: dict[str, str] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rows[cells["name"].strip("`")] = cells["present"]
    assert rows, f"no rows under the {mode} {kind} marker"
    return rows


def _summary_fields(obj: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of every field of a summary; the keys of evaluation objects (policy labels) become <policy>."""
    out: set[str] = set()
    for key, value in obj.items():
        name = f"{prefix}{key}"
        out.add(name)
        if isinstance(value, dict) and name in ("evaluation", "evaluation_ci95", "evaluation_ota_throughput_mbps",
                                                 "evaluation_ota_slots_not_acquired"):
            for inner in value.values():
                out.add(f"{name}.<policy>")
                if isinstance(inner, dict):
                    out |= _summary_fields(inner, f"{name}.<policy>.")
        elif isinstance(value, dict):
            out |= _summary_fields(value, f"{name}.")
    return out


@pytest.mark.parametrize("mode, fixtures", [("dqn", ["ota_run", "analytic_run"]), ("hetnet", ["hetnet_run"])])
def test_the_run_directory_holds_exactly_the_documented_files_and_fields(request, mode, fixtures):
    """docs/run-directory.md lists every file, metrics.jsonl field and summary.json field a run writes: nothing a
    run writes is missing from it, and what it says is always there is there (metrics lines: 'every line' and, for
    'physical lines', exactly on the physical episodes' lines)."""
    files, metrics, summary_doc = _schema(mode, "files"), _schema(mode, "metrics"), _schema(mode, "summary")
    written_summary: set[str] = set()
    for fixture in fixtures:
        run_dir, summary = request.getfixturevalue(fixture)
        present = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
        assert present <= set(files), present - set(files)
        assert {n for n, when in files.items() if when == "always"} <= present
        for line in metric_lines(run_dir):
            assert set(line) <= set(metrics), set(line) - set(metrics)
            always = {n for n, when in metrics.items() if when == "always"}
            assert always <= set(line), always - set(line)
            physical = {n for n, when in metrics.items() if when == "physical lines"}
            assert (physical <= set(line)) if line["source"] == "physical" else not physical & set(line)
        fields = _summary_fields(json.loads((run_dir / "summary.json").read_text()))
        assert fields <= set(summary_doc), fields - set(summary_doc)
        assert {n for n, when in summary_doc.items() if when == "always"} <= fields
        written_summary |= fields
    if mode == "dqn":
        # Between a run on radios with an evaluation and one on the analytic network, every summary field occurs.
        assert written_summary == set(summary_doc)
