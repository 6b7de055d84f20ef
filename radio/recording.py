"""SigMF recordings: write what a radio received, read a recording back (with clear errors when it is broken).

Recordings are ``cf32_le`` (complex64 at full scale 1.0, as the radio contract delivers them). Besides the core
fields (datatype, sample rate, frequency, datetime, hw, recorder) the global object carries ``testbed:`` keys:
radio name and driver, RX gain, clip and overflow counts and, when the radio has a sensor, its temperature.
Recordings are written as a stream (:class:`SigMFStreamWriter`): a capture never has to fit in memory.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import uuid
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


class SigMFStreamWriter:
    """Write a SigMF recording chunk by chunk, so a capture never has to fit in memory.

    The samples go to a temporary data file beside the destination while the SHA-512 of their bytes is computed
    as they are written; :meth:`finish` writes the metadata (validated against the SigMF schema) under a temporary
    name too and only then renames both into place. :meth:`abort` (also on any exception, Ctrl-C included, when
    used as a context manager) removes the temporary files: no half recording is ever left under the final names.

    ``segment_starts`` are the sample indices where the stream was not contiguous with what came before (lost
    samples); each becomes a SigMF capture segment.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False):
        self.meta_path, self.data_path = _paths(path)
        if not overwrite and (self.meta_path.exists() or self.data_path.exists()):
            raise RecordingError(f"{self.meta_path} or {self.data_path} already exists; pass overwrite to replace it")
        self.overwrite = overwrite
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        # Unique temporary names, so two captures to one destination cannot tear each other's files.
        tag = f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        self._tmp_data = self.data_path.with_name(self.data_path.name + tag)
        self._tmp_meta = self.meta_path.with_name(self.meta_path.name + tag)
        self._file: Any = open(self._tmp_data, "wb")
        self._hash = hashlib.sha512()
        self.samples_written = 0
        self.segment_starts: list[int] = []
        self._done = False

    def write(self, samples: np.ndarray) -> None:
        """Append ``samples`` (shape [n], complex; stored as complex64 little-endian)."""
        arr = np.asarray(samples)
        if arr.ndim != 1 or arr.size == 0 or not np.iscomplexobj(arr):
            raise RecordingError(f"samples must be a non-empty 1-D complex array, got {arr.dtype} {arr.shape}")
        data = np.ascontiguousarray(arr, dtype="<c8").tobytes()
        self._file.write(data)
        self._hash.update(data)
        self.samples_written += int(arr.size)

    def mark_discontinuity(self) -> None:
        """The next sample written does not follow the previous one (samples were lost in between)."""
        if 0 < self.samples_written and (not self.segment_starts or self.segment_starts[-1] != self.samples_written):
            self.segment_starts.append(self.samples_written)

    def finish(self, *, rate_sps: float, lo_hz: float, radio: str, driver: str, gain_db: float | None = None,
               temperature_c: float | None = None, clip_count: int | None = None,
               overflow_count: int | None = None, description: str = "", hw: str = "") -> tuple[Path, Path]:
        """Close the data, write the metadata and move both into place; returns (meta path, data path)."""
        import sigmf as keys
        from sigmf import SigMFFile
        from sigmf.error import SigMFError

        self._file.close()
        if self.samples_written == 0:
            self.abort()
            raise RecordingError(f"no samples were written for {self.meta_path}")
        if not self.overwrite and (self.meta_path.exists() or self.data_path.exists()):
            self.abort()
            raise RecordingError(f"{self.meta_path} or {self.data_path} appeared while recording; not replaced")
        global_info: dict[str, Any] = {
            keys.DATATYPE_KEY: "cf32_le",
            keys.SAMPLE_RATE_KEY: float(rate_sps),
            keys.VERSION_KEY: "1.2.0",
            keys.NUM_CHANNELS_KEY: 1,
            keys.RECORDER_KEY: "testbed",
            keys.DESCRIPTION_KEY: description or f"capture from {radio} ({driver})",
            keys.EXTENSIONS_KEY: [EXTENSION],
            keys.SHA512_KEY: self._hash.hexdigest(),
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
        if overflow_count is not None:
            global_info["testbed:overflow_count"] = int(overflow_count)
        try:
            # The hash was computed while writing: reading a recording of any size back just to hash it is avoided.
            handle = SigMFFile(data_file=str(self._tmp_data), global_info=global_info, skip_checksum=True)
            now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            handle.add_capture(0, metadata={keys.FREQUENCY_KEY: float(lo_hz), keys.DATETIME_KEY: now})
            for start in self.segment_starts:
                handle.add_capture(start, metadata={keys.FREQUENCY_KEY: float(lo_hz)})
            handle.validate()
            metadata = handle.ordered_metadata()
            # The data file is written under a temporary name first; the final pair is the conforming dataset.
            metadata["global"].pop(keys.DATASET_KEY, None)
            self._tmp_meta.write_text(json.dumps(metadata, indent=4))
        except (SigMFError, ValueError) as e:
            self.abort()
            raise RecordingError(f"could not write SigMF metadata for {self.meta_path}: {e}") from None
        except BaseException:
            self.abort()
            raise
        # Data first: a metadata file under the final name always describes a complete data file.
        os.replace(self._tmp_data, self.data_path)
        os.replace(self._tmp_meta, self.meta_path)
        self._done = True
        return self.meta_path, self.data_path

    def abort(self) -> None:
        """Remove the temporary files (idempotent); the destination is left as it was."""
        if self._done:
            return
        self._file.close()
        self._tmp_data.unlink(missing_ok=True)
        self._tmp_meta.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> "SigMFStreamWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._done:
            self.abort()


def write_sigmf(path: str | os.PathLike[str], samples: np.ndarray, *, rate_sps: float, lo_hz: float,
                radio: str, driver: str, gain_db: float | None = None, temperature_c: float | None = None,
                clip_count: int | None = None, description: str = "", hw: str = "",
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``samples`` (shape [n], complex) as a SigMF pair; returns (meta path, data path).

    The metadata is validated against the SigMF schema before it is written; nothing is left behind on failure.
    """
    arr = np.asarray(samples)
    meta_path, data_path = _paths(path)
    if not overwrite and (meta_path.exists() or data_path.exists()):
        raise RecordingError(f"{meta_path} or {data_path} already exists; pass overwrite to replace it")
    if arr.ndim != 1 or arr.size == 0 or not np.iscomplexobj(arr):
        raise RecordingError(f"samples must be a non-empty 1-D complex array, got {arr.dtype} {arr.shape}")
    with SigMFStreamWriter(path, overwrite=overwrite) as writer:
        writer.write(arr)
        return writer.finish(rate_sps=rate_sps, lo_hz=lo_hz, radio=radio, driver=driver, gain_db=gain_db,
                             temperature_c=temperature_c, clip_count=clip_count, description=description, hw=hw)


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
