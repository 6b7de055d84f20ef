"""SigMF recordings: round trip, metadata, corruption detection; the replay radio serves them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radio import RadioConfigError, RadioDisconnected, RecordingError, TxGuard, TxGuardRefused
from radio.recording import read_sigmf, write_sigmf
from radio.replay import ReplayRadio


@pytest.fixture
def rec(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.1 * (rng.standard_normal(5000) + 1j * rng.standard_normal(5000))).astype(np.complex64)
    meta, data = write_sigmf(tmp_path / "cap", x, rate_sps=3.84e6, lo_hz=2.44e9, radio="sim0", driver="sim",
                             gain_db=30, temperature_c=41.5, clip_count=2)
    return x, meta, data


def test_round_trip_is_exact_and_carries_the_metadata(rec):
    x, meta, _ = rec
    r = read_sigmf(meta)
    np.testing.assert_array_equal(r.samples, x)
    assert r.rate_sps == 3.84e6 and r.lo_hz == 2.44e9
    g = json.loads(meta.read_text())["global"]
    assert g["core:datatype"] == "cf32_le" and g["testbed:radio"] == "sim0"
    assert g["testbed:gain_db"] == 30 and g["testbed:temperature_c"] == 41.5 and g["testbed:clip_count"] == 2
    assert "core:dataset" not in g


def test_existing_recording_is_not_overwritten_by_default(rec, tmp_path):
    x, meta, _ = rec
    with pytest.raises(RecordingError, match="already exists"):
        write_sigmf(tmp_path / "cap", x, rate_sps=1e6, lo_hz=1e9, radio="a", driver="sim")
    np.testing.assert_array_equal(read_sigmf(meta).samples, x)


@pytest.mark.parametrize("damage", ["truncate", "flip", "json", "missing_data", "rate"])
def test_corrupted_recordings_give_a_clear_error(rec, damage):
    _, meta, data = rec
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-3])
    elif damage == "flip":
        b = bytearray(data.read_bytes())
        b[100] ^= 0xFF
        data.write_bytes(bytes(b))
    elif damage == "json":
        meta.write_text(meta.read_text()[:-20])
    elif damage == "missing_data":
        data.unlink()
    elif damage == "rate":
        m = json.loads(meta.read_text())
        m["global"]["core:sample_rate"] = -5
        meta.write_text(json.dumps(m))
    with pytest.raises(RecordingError, match=str(meta.with_suffix("").stem)):
        read_sigmf(meta)


def test_shared_lte_recording_reads(lte_recording):
    r = read_sigmf(lte_recording)
    assert r.rate_sps == 1.92e6 and r.samples.size == 19200


def test_replay_serves_the_recording_in_order_and_loops(rec):
    x, meta, _ = rec
    radio = ReplayRadio("rec0", meta, TxGuard.from_config({"allowed_bands": [[2.4e9, 2.5e9]],
                                                            "max_tx_gain_db": 0}))
    a, m = radio.receive(3000)
    b, _ = radio.receive(3000)
    np.testing.assert_array_equal(np.concatenate([a, b])[:5000], x)
    np.testing.assert_array_equal(b[2000:], x[:1000])
    assert m.rate_sps == 3.84e6 and m.timestamp_s == 0.0
    with pytest.raises(RadioConfigError, match="rate_sps"):
        radio.configure(rate_sps=1e6)
    with pytest.raises(RadioConfigError, match="cannot transmit"):
        radio.transmit(x[:10])
    radio.configure(lo_hz=2.6e9)
    with pytest.raises(TxGuardRefused):
        radio.transmit(x[:10])  # out of band: the guard refuses first, as on every radio


def test_replay_without_loop_ends_with_a_disconnect(rec):
    _, meta, _ = rec
    radio = ReplayRadio("rec0", meta, loop=False)
    radio.receive(4000)
    with pytest.raises(RadioDisconnected, match="1000 left"):
        radio.receive(4000)
