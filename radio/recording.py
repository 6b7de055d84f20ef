"""SigMF recordings: write what a radio received, read a recording back (with clear errors when it is broken).

Recordings are ``cf32_le`` (complex64 at full scale 1.0, as the radio contract delivers them). Besides the core
fields (datatype, sample rate, frequency, datetime, hw, recorder) the global object carries ``testbed:`` keys:
radio name and driver, RX gain, clip count and, when the radio has a sensor, its temperature.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radio.errors import RecordingError

EXTENSION = {"name": "testbed", "version": "1.0.0", "optional": True}


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``x``, ``x.sigmf``, ``x.sigmf-meta`` or ``x.sigmf-data`` -> (meta path, data path)."""
    p = Path(path)
    name = p.name
    for suffix in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    base = p.with_name(name)
    return base.with_name(name + ".sigmf-meta"), base.with_name(name + ".sigmf-data")


@dataclass
class Recording:
    """A recording in memory."""

    samples: np.ndarray
    """Shape [n], complex64, full scale 1.0 as recorded."""
    rate_sps: float
    """Sample rate, samples/s."""
    lo_hz: float | None
    """Centre frequency of the first capture, Hz (None when the file does not say)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """The whole SigMF metadata object."""
    meta_path: str = ""


def write_sigmf(path: str | os.PathLike[str], samples: np.ndarray, *, rate_sps: float, lo_hz: float,
                radio: str, driver: str, gain_db: float | None = None, temperature_c: float | None = None,
                clip_count: int | None = None, description: str = "", hw: str = "",
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``samples`` (shape [n], complex) as a SigMF pair; returns (meta path, data path).

    The metadata is validated against the SigMF schema before it is written; nothing is left behind on failure.
    """
    import sigmf as keys
    from sigmf import SigMFFile
    from sigmf.error import SigMFError

    meta_path, data_path = _paths(path)
    if not overwrite and (meta_path.exists() or data_path.exists()):
        raise RecordingError(f"{meta_path} or {data_path} already exists; pass overwrite to replace it")
    arr = np.asarray(samples)
    if arr.ndim != 1 or arr.size == 0 or not np.iscomplexobj(arr):
        raise RecordingError(f"samples must be a non-empty 1-D complex array, got {arr.dtype} {arr.shape}")
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_data = data_path.with_name(data_path.name + ".tmp")
    arr.astype("<c8").tofile(tmp_data)
    global_info: dict[str, Any] = {
        keys.DATATYPE_KEY: "cf32_le",
        keys.SAMPLE_RATE_KEY: float(rate_sps),
        keys.VERSION_KEY: "1.2.0",
        keys.NUM_CHANNELS_KEY: 1,
        keys.RECORDER_KEY: "testbed",
        keys.DESCRIPTION_KEY: description or f"capture from {radio} ({driver})",
        keys.EXTENSIONS_KEY: [EXTENSION],
        "testbed:radio": radio,
        "testbed:driver": driver,
    }
    if hw:
        global_info[keys.HW_KEY] = hw
    if gain_db is not None:
        global_info["testbed:gain_db"] = float(gain_db)
    if temperature_c is not None:
        global_info["testbed:temperature_c"] = float(temperature_c)
    if clip_count is not None:
        global_info["testbed:clip_count"] = int(clip_count)
    try:
        handle = SigMFFile(data_file=str(tmp_data), global_info=global_info)
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        handle.add_capture(0, metadata={keys.FREQUENCY_KEY: float(lo_hz), keys.DATETIME_KEY: now})
        handle.validate()
        tmp_meta = meta_path.with_name(meta_path.name + ".tmp")
        metadata = handle.ordered_metadata()
        # The data file is written under a temporary name first; the final pair is the conforming dataset.
        metadata["global"].pop(keys.DATASET_KEY, None)
        tmp_meta.write_text(json.dumps(metadata, indent=4))
    except (SigMFError, ValueError) as e:
        tmp_data.unlink(missing_ok=True)
        raise RecordingError(f"could not write SigMF metadata for {meta_path}: {e}") from None
    os.replace(tmp_data, data_path)
    os.replace(tmp_meta, meta_path)
    return meta_path, data_path


def read_sigmf(path: str | os.PathLike[str]) -> Recording:
    """Read a SigMF recording (meta or data path, with or without suffix). Complex datatypes only.

    Raises RecordingError when a file is missing, the metadata is not valid SigMF, the checksum does not match,
    or the data size disagrees with the datatype.
    """
    import sigmf as keys
    from sigmf import sigmffile
    from sigmf.error import SigMFError

    meta_path, data_path = _paths(path)
    if not meta_path.is_file():
        raise RecordingError(f"SigMF metadata {meta_path} does not exist")
    if not data_path.is_file():
        raise RecordingError(f"SigMF data file {data_path} (named by {meta_path}) does not exist")
    try:
        json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordingError(f"{meta_path} is not valid JSON: {e}") from None
    try:
        handle = sigmffile.fromfile(str(meta_path))
        datatype = handle.get_global_field(keys.DATATYPE_KEY)
        rate = handle.get_global_field(keys.SAMPLE_RATE_KEY)
        if not isinstance(datatype, str) or not datatype.startswith("c"):
            raise RecordingError(f"{meta_path}: datatype {datatype!r} is not complex; allowed: c* types "
                                 "(cf32_le, ci16_le, ...)")
        if not isinstance(rate, (int, float)) or not rate > 0:
            raise RecordingError(f"{meta_path}: core:sample_rate = {rate!r}; allowed: a positive number")
        sample_bytes = handle.get_sample_size()
        data_bytes = data_path.stat().st_size
        if data_bytes % sample_bytes:
            raise RecordingError(f"{data_path}: {data_bytes} bytes is not a whole number of {datatype} samples "
                                 f"({sample_bytes} bytes each): the file is truncated or corrupted")
        samples = np.asarray(handle.read_samples(), dtype=np.complex64).reshape(-1)
        captures = handle.get_captures()
        lo = captures[0].get(keys.FREQUENCY_KEY) if captures else None
        meta = handle.ordered_metadata()
    except RecordingError:
        raise
    except (SigMFError, ValueError, KeyError, TypeError, OSError) as e:
        raise RecordingError(f"{meta_path}: not a readable SigMF recording: {type(e).__name__}: {e}") from None
    if samples.size == 0:
        raise RecordingError(f"{data_path} holds no samples")
    if not np.all(np.isfinite(samples.view(np.float32))):
        raise RecordingError(f"{data_path} contains NaN or infinite samples")
    return Recording(samples, float(rate), None if lo is None else float(lo), dict(meta), str(meta_path))
