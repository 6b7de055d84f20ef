"""Cell search: the shared LTE recording (cell id 1), synthetic LTE at other rates with CFO and timing offsets,
synthetic NR SSBs, and broken files."""

import json
import shutil

import numpy as np
import pytest

from _ofdm_testlib import shared_data_dir
from radio.errors import RecordingError
from radio.ofdm.cellsearch import (
    analyze_recording, lte_cell_search, nr_cell_search, resample, synth_lte_downlink, synth_nr_ssb,
)
from radio.recording import read_sigmf
from tests.helpers.channels import awgn, frequency_offset
from radio.ofdm.sequences import lte_sss, nr_sss

SHARED = shared_data_dir() / "lte_dl_6prb_pci1_1.92Msps.sigmf-meta"


def _noisy(x, snr_db, rng):
    return awgn(x, np.sqrt(np.mean(np.abs(x) ** 2)) * 10 ** (-snr_db / 20), rng)


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared recording not found at {SHARED} (set TESTBED_SHARED_DATA)")
def test_shared_recording_is_cell_1():
    r = analyze_recording(str(SHARED))
    assert r["rat"] == "lte" and r["cell_id"] == 1 and (r["n_id1"], r["n_id2"]) == (0, 1)
    assert r["pss_metric"] > 0.9
    assert r["crs_symbols"] == 40              # every port-0 CRS symbol of the 10 ms frame
    assert r["rs_evm"] < 0.08                  # a clean commercial eNB capture
    assert abs(r["cfo_hz"]) < 500
    assert 1.0e6 < r["occupied_bw_hz"] < 1.4e6  # 6 RB = 1.08 MHz
    json.dumps(r)


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared recording not found at {SHARED} (set TESTBED_SHARED_DATA)")
def test_shared_recording_resampled_and_shifted_is_still_cell_1():
    rec = read_sigmf(str(SHARED))
    x = frequency_offset(resample(rec.samples, 1.92e6, 3.2e6), 9.1e3, 3.2e6)
    cell = lte_cell_search(x, 3.2e6)
    assert cell.cell_id == 1
    assert cell.cfo_hz == pytest.approx(9.1e3 + lte_cell_search(rec.samples, 1.92e6).cfo_hz, abs=60)


@pytest.mark.parametrize("cell_id,n_rb,rate,cfo,offset", [
    (301, 25, None, 7300.0, 5000), (77, 15, 5e6, -12000.0, 1000), (503, 50, None, 3000.0, 40000),
    (168, 6, 2.4e6, 21000.0, 7777),
])
def test_synthetic_lte_cells_at_other_rates_and_cfo(cell_id, n_rb, rate, cfo, offset):
    rng = np.random.default_rng(cell_id)
    x, fs = synth_lte_downlink(cell_id, n_rb, n_frames=1.0, rng=rng, frame_offset=offset)
    expected_start = (-offset) % int(round(0.01 * fs))
    if rate is not None:
        x = resample(x, fs, rate)
        expected_start = expected_start * rate / fs
        fs = rate
    x = _noisy(frequency_offset(x, cfo, fs), 8.0, rng)
    cell = lte_cell_search(x, fs)
    assert cell.cell_id == cell_id
    assert cell.cfo_hz == pytest.approx(cfo, abs=150)
    frame = 0.01 * fs
    assert min(abs(cell.frame_start - expected_start), frame - abs(cell.frame_start - expected_start)) <= 2 * fs / 1.92e6
    assert cell.rs_snr_db > 8.0


@pytest.mark.parametrize("cell_id,scs,rate,cfo", [
    (0, 30e3, None, 0.0), (1007, 30e3, None, 20e3), (517, 15e3, None, -9000.0), (42, 15e3, 11.52e6, 4000.0),
    (335 * 3 + 1, 30e3, 23.04e6, -31e3),
])
def test_synthetic_nr_ssb_cell_ids(cell_id, scs, rate, cfo):
    rng = np.random.default_rng(cell_id + 1)
    x, fs = synth_nr_ssb(cell_id, scs, sample_rate_hz=rate, rng=rng)
    x = _noisy(frequency_offset(np.concatenate([np.zeros(3000), x]), cfo, fs), 3.0, rng)
    cell = nr_cell_search(x, fs)
    assert (cell.cell_id, cell.scs_hz) == (cell_id, scs)
    assert cell.cfo_hz == pytest.approx(cfo, abs=0.02 * scs)


def test_sequences_are_distinct():
    # every SSS hypothesis differs from every other: the search has something to tell apart
    lte = np.stack([lte_sss(n1, 1, False) for n1 in range(168)])
    gram = lte @ lte.T / 62
    assert np.max(np.abs(gram - np.eye(168))) < 0.6
    nr = np.stack([nr_sss(n1, 2) for n1 in range(336)])
    gram = nr @ nr.T / 127
    assert np.max(np.abs(gram - np.eye(336))) < 0.3


def test_nr_recording_through_analyze(tmp_path):
    from sigmf import SigMFFile

    x, fs = synth_nr_ssb(722, 30e3, rng=np.random.default_rng(4))
    data = tmp_path / "nr.sigmf-data"
    x.astype(np.complex64).tofile(data)
    meta = SigMFFile(data_file=str(data), global_info={"core:datatype": "cf32_le", "core:sample_rate": fs,
                                                      "core:version": "1.0.0"})
    meta.add_capture(0, metadata={"core:frequency": 3.5e9})
    meta.tofile(str(tmp_path / "nr.sigmf-meta"))
    r = analyze_recording(str(tmp_path / "nr.sigmf-meta"))
    assert (r["rat"], r["cell_id"], r["scs_hz"]) == ("nr", 722, 30e3)


@pytest.mark.filterwarnings("ignore:Data source ends before the final annotation")
def test_missing_and_corrupted_recordings_raise_recording_error(tmp_path):
    with pytest.raises(RecordingError, match="missing"):
        read_sigmf(str(tmp_path / "nothing.sigmf-meta"))
    (tmp_path / "bad.sigmf-meta").write_text("{not json")
    (tmp_path / "bad.sigmf-data").write_bytes(b"\0" * 64)
    with pytest.raises(RecordingError, match="bad.sigmf-meta"):
        read_sigmf(str(tmp_path / "bad.sigmf-meta"))
    if SHARED.exists():
        shutil.copy(SHARED, tmp_path / "cut.sigmf-meta")
        (tmp_path / "cut.sigmf-data").write_bytes(SHARED.with_suffix(".sigmf-data").read_bytes()[:1000])
        with pytest.raises(RecordingError):
            read_sigmf(str(tmp_path / "cut.sigmf-meta"))
