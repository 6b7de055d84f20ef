"""``testbed capture``: record a radio's receive stream into a SigMF recording, chunk by chunk.

A capture never holds more than one chunk in memory: each chunk goes straight to the data file (with its SHA-512
computed as it goes, :class:`radio.recording.SigMFStreamWriter`), the metadata is written at the end, and on a
radio fault, Ctrl-C or any other error nothing is left under the destination's names. Before anything is received
the size is checked against the free space of the output directory.

Consecutive ``receive`` calls of one radio are contiguous by the radio contract as long as nothing retunes it (the
simulated air guarantees it: each receive continues at its radio's cursor). A gap is recorded, not hidden: a buffer
that reports overflows, or (on radios with hardware timestamps) whose first sample is not where the previous
buffer ended, starts a new SigMF capture segment, and the overflow total is ``testbed:overflow_count``.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from testbed.cliutil import BadInput

CHUNK_SAMPLES = 1 << 20
"""Samples per receive call (less when the radio's buffer is smaller): 8 MiB of complex64."""
MAX_SAMPLES = 1 << 40
"""The most samples one capture may ask for (8 TiB of complex64)."""
BYTES_PER_SAMPLE = 8
"""cf32_le: two float32 per sample."""
DISK_MARGIN_BYTES = 64 << 20
"""Free space a capture leaves on the output file system beyond its data (metadata, the rest of the system)."""


def _existing_ancestor(path: Path) -> Path:
    """``path``'s directory, or its nearest existing ancestor (the output directory may not exist yet)."""
    directory = path.resolve().parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def check_capture_size(num_samples: int, out_path: str | Path) -> int:
    """Refuse (BadInput) a sample count outside 1..:data:`MAX_SAMPLES` or one whose data would not fit on the
    output file system with :data:`DISK_MARGIN_BYTES` to spare; returns the data size in bytes."""
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise BadInput(f"--samples {num_samples}; allowed: an integer from 1 to 2^40 = {MAX_SAMPLES}")
    needed = num_samples * BYTES_PER_SAMPLE
    where = _existing_ancestor(Path(out_path))
    free = shutil.disk_usage(where).free
    if needed + DISK_MARGIN_BYTES > free:
        raise BadInput(f"--samples {num_samples} needs {_size(needed)} (+ {_size(DISK_MARGIN_BYTES)} margin) but "
                       f"{where} has {_size(free)} free; record fewer samples or write elsewhere")
    return needed


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    raise AssertionError("unreachable")


@dataclass
class CaptureResult:
    """What a finished capture wrote and saw."""

    meta_path: Path
    data_path: Path
    samples: int
    clip_count: int
    """Samples with I or Q at ADC full scale, summed over the chunks."""
    overflow_count: int
    """Overflows the radio reported, summed over the chunks (samples were lost before those buffers)."""
    segments: int
    """Contiguous stretches of the recording (1: no sample was lost)."""
    temperature_c: float | None
    """The radio's last temperature reading, when it has a sensor."""
    power_dbfs: float | None
    """Mean power of all samples, dB relative to full scale (None: all zero)."""


def capture_to_sigmf(radio: Any, settings: Any, num_samples: int, out_path: str | Path, *, radio_name: str,
                     overwrite: bool, on_chunk: Callable[[int], None] | None = None) -> CaptureResult:
    """Receive ``num_samples`` from the configured ``radio`` in chunks of at most :data:`CHUNK_SAMPLES` (and the
    radio's largest buffer) and stream them into ``out_path`` (SigMF pair). ``on_chunk(n)``: progress callback.
    Any exception leaves no recording under the destination names."""
    from radio.recording import SigMFStreamWriter

    caps = radio.capabilities
    chunk = max(1, min(CHUNK_SAMPLES, caps.max_buffer_samples))
    clipped = overflows = 0
    temperature: float | None = None
    energy = 0.0
    next_timestamp: float | None = None
    with SigMFStreamWriter(out_path, overwrite=overwrite) as writer:
        done = 0
        while done < num_samples:
            n = min(chunk, num_samples - done)
            samples, meta = radio.receive(n)
            if meta.overflow_count:
                overflows += int(meta.overflow_count)
                writer.mark_discontinuity()
            elif (caps.has_timestamp and meta.timestamp_s is not None and next_timestamp is not None
                  and abs(meta.timestamp_s - next_timestamp) * settings.rate_sps > 0.5):
                writer.mark_discontinuity()
            writer.write(samples)
            clipped += int(meta.clip_count)
            if meta.temperature_c is not None:
                temperature = meta.temperature_c
            energy += float((samples.real.astype("f8") ** 2 + samples.imag.astype("f8") ** 2).sum())
            next_timestamp = None if meta.timestamp_s is None else meta.timestamp_s + n / settings.rate_sps
            done += n
            if on_chunk is not None:
                on_chunk(n)
        ident = radio.identity()
        meta_path, data_path = writer.finish(
            rate_sps=settings.rate_sps, lo_hz=settings.rx_lo, radio=radio_name, driver=radio.driver,
            gain_db=settings.rx_gain_db, temperature_c=temperature, clip_count=clipped, overflow_count=overflows,
            hw=" ".join(f"{k}={v}" for k, v in ident.items() if v is not None))
        segments = 1 + len(writer.segment_starts)
    power = energy / num_samples
    return CaptureResult(meta_path, data_path, num_samples, clipped, overflows, segments, temperature,
                         10 * math.log10(power) if power > 0 else None)
