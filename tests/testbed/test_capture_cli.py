"""``testbed capture`` streams to disk: a capture of several chunks is exactly what the radio delivered, with a
valid SHA-512 and replayable; a size beyond the free space or beyond 2^40 samples exits 2 before anything is
received or written; a radio fault or Ctrl-C mid-capture leaves no recording at the destination."""

from __future__ import annotations

import hashlib
import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import testbed.capture as capture_module
from radio.loopback import LoopbackRadio
from radio.recording import read_sigmf
from testbed.cli import main

SAFETY = "[safety]\nallowed_bands = [[2.4e9, 2.5e9]]\nmax_tx_gain_db = 0\n"
COMMON = ("--lo", "2.44e9", "--rate", "1.92e6")
Usage = namedtuple("Usage", "total used free")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"TESTBED_CONFIG": None})
    return result.exit_code, result.output


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def config(tmp_path: Path, radios: str = "") -> Path:
    path = tmp_path / "testbed.toml"
    path.write_text(SAFETY + radios)
    return path


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def small_chunks(monkeypatch):
    """1000-sample receives, so a short capture spans several chunks."""
    monkeypatch.setattr(capture_module, "CHUNK_SAMPLES", 1000)


@pytest.fixture
def delivered(monkeypatch):
    """Every buffer the loopback radio hands out, in order."""
    buffers: list[np.ndarray] = []
    inner = LoopbackRadio._receive

    def spy(self, num_samples, timeout_s):
        reception = inner(self, num_samples, timeout_s)
        buffers.append(reception.samples.copy())
        return reception

    monkeypatch.setattr(LoopbackRadio, "_receive", spy)
    return buffers


def test_a_capture_of_several_chunks_is_what_the_radio_delivered_sample_for_sample(tmp_path, small_chunks,
                                                                                   delivered):
    cfg = config(tmp_path, "[radios.loop0]\ndriver = 'loopback'\nnoise_rms = 0.1\n")
    code, out = run("capture", "--config", str(cfg), "--radio", "loop0", *COMMON, "--samples", "4500",
                    "--out", str(tmp_path / "rec" / "cap"), "--json")
    assert code == 0, out
    assert [b.size for b in delivered] == [1000, 1000, 1000, 1000, 500]
    info = last_json(out)
    assert info["samples"] == 4500 and info["segments"] == 1 and info["overflow_count"] == 0
    recording = read_sigmf(info["meta"])  # verifies the SHA-512 in the metadata
    np.testing.assert_array_equal(recording.samples, np.concatenate(delivered))
    meta = json.loads(Path(info["meta"]).read_text())["global"]
    assert meta["core:sha512"] == hashlib.sha512(Path(info["data"]).read_bytes()).hexdigest()
    expected_power = 10 * np.log10(np.mean(np.abs(np.concatenate(delivered).astype(np.complex128)) ** 2))
    assert info["power_dbfs"] == pytest.approx(expected_power, abs=1e-6)
    assert files_under(tmp_path / "rec") == ["cap.sigmf-data", "cap.sigmf-meta"]  # no temporary left


def test_a_chunked_sim_capture_is_contiguous_and_replays_exactly(tmp_path, small_chunks):
    """The simulated air continues each receive where the previous one ended (one capture segment, by the
    buffers' air timestamps); replaying the recording through the replay driver gives it back sample for sample."""
    first = tmp_path / "sim"
    code, out = run("capture", "--radio", "sim0", *COMMON, "--samples", "3500", "--seed", "3", "--out", str(first),
                    "--json")
    assert code == 0, out
    info = last_json(out)
    assert info["segments"] == 1 and info["samples"] == 3500
    recorded = read_sigmf(info["meta"])
    assert len(recorded.meta["captures"]) == 1 and recorded.samples.size == 3500
    cfg = config(tmp_path, f"[radios.rec0]\ndriver = 'replay'\npath = '{info['meta']}'\n")
    code, out = run("capture", "--config", str(cfg), "--radio", "rec0", *COMMON, "--samples", "3500",
                    "--out", str(tmp_path / "again"), "--json")
    assert code == 0, out
    np.testing.assert_array_equal(read_sigmf(last_json(out)["meta"]).samples, recorded.samples)


def test_a_capture_beyond_the_free_space_exits_2_before_receiving(tmp_path, monkeypatch, delivered):
    monkeypatch.setattr(capture_module.shutil, "disk_usage", lambda path: Usage(10 << 30, 9 << 30, 1 << 30))
    out_dir = tmp_path / "out"
    code, out = run("capture", "--radio", "loop0", *COMMON, "--samples", "1e11", "--out", str(out_dir / "big"))
    assert code == 2, out
    assert "--samples 100000000000 needs 745.1 GiB" in out and "1.0 GiB free" in out
    assert delivered == [] and not out_dir.exists() and files_under(tmp_path) == []
    # 1 GiB free holds 120 Mi samples of 8 bytes with the margin, not 130 Mi.
    code, out = run("capture", "--radio", "loop0", *COMMON, "--samples", str(130 << 20), "--out", str(out_dir / "b"))
    assert code == 2 and "free" in out and delivered == []


@pytest.mark.parametrize("samples, says", [
    ("2e12", "allowed: an integer from 1 to 2^40"),
    ("0", "allowed: an integer from 1 to 2^40"),
    ("1.5", "allowed: a whole number of samples"),
    ("many", "allowed: a whole number of samples"),
])
def test_absurd_sample_counts_exit_2_naming_the_allowed_range(tmp_path, delivered, samples, says):
    code, out = run("capture", "--radio", "loop0", *COMMON, "--samples", samples, "--out", str(tmp_path / "x"))
    assert code == 2 and says in out, out
    assert delivered == [] and files_under(tmp_path) == []


def test_a_radio_timeout_in_the_third_chunk_leaves_no_recording_and_exits_3(tmp_path, small_chunks):
    cfg = config(tmp_path, "[radios.sim0]\ndriver = 'sim'\nfaults = {timeout_every = 3}\n")
    out_dir = tmp_path / "out"
    code, out = run("capture", "--config", str(cfg), "--radio", "sim0", *COMMON, "--samples", "5000",
                    "--out", str(out_dir / "cap"))
    assert code == 3, out
    assert "radio fault" in out
    assert files_under(out_dir) == []


def test_a_failed_overwrite_keeps_the_previous_recording(tmp_path, small_chunks):
    cfg = config(tmp_path, "[radios.sim0]\ndriver = 'sim'\nfaults = {timeout_every = 3}\n")
    code, out = run("capture", "--radio", "sim0", *COMMON, "--samples", "1500", "--out", str(tmp_path / "cap"),
                    "--json")
    assert code == 0, out
    before = read_sigmf(last_json(out)["meta"]).samples
    code, out = run("capture", "--config", str(cfg), "--radio", "sim0", *COMMON, "--samples", "5000",
                    "--out", str(tmp_path / "cap"), "--overwrite")
    assert code == 3, out
    np.testing.assert_array_equal(read_sigmf(tmp_path / "cap").samples, before)
    assert sorted(p.name for p in tmp_path.glob("cap*")) == ["cap.sigmf-data", "cap.sigmf-meta"]


def test_ctrl_c_mid_capture_leaves_no_recording(tmp_path, small_chunks, monkeypatch):
    inner = LoopbackRadio._receive
    calls = []

    def interrupted_second_time(self, num_samples, timeout_s):
        calls.append(num_samples)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return inner(self, num_samples, timeout_s)

    monkeypatch.setattr(LoopbackRadio, "_receive", interrupted_second_time)
    code, out = run("capture", "--radio", "loop0", *COMMON, "--samples", "3000", "--out", str(tmp_path / "o" / "c"))
    assert code != 0 and len(calls) == 2
    assert files_under(tmp_path / "o") == []
