"""Shared test configuration: hardware/GPU markers skip cleanly, the shared recordings are located once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TESTBED_SHARED_DATA", REPO.parent / "shared" / "data"))
LTE_RECORDING = SHARED_DATA / "lte_dl_6prb_pci1_1.92Msps.sigmf-meta"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hardware = os.environ.get("TESTBED_HARDWARE", "")
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch, no GPU
        has_gpu = False
    for item in items:
        if "hardware" in item.keywords and not hardware:
            item.add_marker(pytest.mark.skip(
                reason="needs real radios: set TESTBED_HARDWARE=pluto0,usrp0 (names from testbed.toml)"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none is present"))


@pytest.fixture
def lte_recording() -> Path:
    if not LTE_RECORDING.is_file():
        pytest.skip(f"shared LTE recording not found at {LTE_RECORDING} (set TESTBED_SHARED_DATA)")
    return LTE_RECORDING


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance with 2 CPUs for every Ray executor test (starting one takes seconds)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[cluster]'): Ray executor "
                                            "tests skipped")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
