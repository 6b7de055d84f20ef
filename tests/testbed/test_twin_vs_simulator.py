"""A twin calibrated on the waveform simulator predicts the simulator's measured per-link SINR.

Eight 3-RB links on the carrier (the twin's interleaved RRBs of two APs, both rendered by one AP radio, devices
co-located so that every gain is the same) are sent over simulated radios at a sweep of powers and MCS; the twin,
built from a calibration of the same radios, evaluates eq. 14 for the same decisions. Target: median absolute
error at most 1 dB.
"""

import math
import statistics

import pytest
import torch

from calibration.session import CalibrationSettings, run_calibration
from radio.guard import TxGuard
from radio.ofdm import Link, SlotPlan, run_slot
from radio.ofdm.link import configure_radios
from radio.sim import SimConfig, SimulatedAir
from twin import DTNConfig, from_calibration
from twin.config import MODULATION_NAMES
from twin.network import NetworkState, evaluate_slot

RATE_NAMES = ("1/2", "3/4", "5/6")
"""The twin's code rates in code-rate-index order."""
GUARD = {"allowed_bands": [[2.4e9, 2.4835e9]], "max_tx_gain_db": 0}


@pytest.fixture(scope="module")
def calibrated():
    air = SimulatedAir(SimConfig.from_table({}, "test"), seed=11)
    guard = TxGuard.from_config(GUARD)
    radios = {n: air.radio(n, guard) for n in ("sim0", "sim1")}
    settings = CalibrationSettings(evm_levels_db=(-21.0, -15.0, -9.0, -3.0, 0.0), slots_per_point=3,
                                   leakage_levels_db=(-3.0, 3.0), aclr_levels_db=(), mcs_levels_db=())
    record = run_calibration(radios, settings)
    yield radios, record
    for r in radios.values():
        r.close()


def test_calibrated_twin_predicts_measured_sinr_within_one_db(calibrated):
    radios, record = calibrated
    results = record["results"]
    config = from_calibration(results["twin"], DTNConfig(num_aps=2, num_rrbs=8))
    snr_ref_db = -10 * math.log10(results["kappa"]["noise_term"]["sim0->sim1"])
    noise_w = config.noise_power_w
    generator = torch.Generator().manual_seed(3)
    errors = []
    slot = 0
    predicted_and_measured = []
    for level_db in (-30.0, -24.0, -18.0, -12.0, -6.0, 0.0):
        # The twin's gain that gives the rendered SNR at this level with 1 W.
        gain = 10 ** ((snr_ref_db + level_db) / 10) * noise_w
        modulation = torch.randint(0, 4, (1, 8), generator=generator)
        code_rate = torch.randint(0, 3, (1, 8), generator=generator)
        links = tuple(Link(str(r), tuple(range(3 * r, 3 * r + 3)), MODULATION_NAMES[int(modulation[0, r])].lower(),
                           RATE_NAMES[int(code_rate[0, r])], level_db) for r in range(8))
        plan = SlotPlan("lte5", links)
        configure_radios([(radios["sim0"], plan)], radios["sim1"], lo_hz=2.45e9)
        reports, _ = run_slot([(radios["sim0"], plan)], radios["sim1"], slot)
        slot += 1
        measured = {int(lr.link_id): lr.sinr_db for lr in reports[0].links}
        state = NetworkState(gain=torch.full((1, 8, 2), gain, dtype=torch.float64),
                             serving_ap=(torch.arange(8) % 2).unsqueeze(0), rrb=torch.arange(8).unsqueeze(0),
                             rrb_owner=torch.arange(8) % 2, config=config)
        twin = evaluate_slot(state, torch.ones(1, 8, dtype=torch.float64), modulation, code_rate)
        for r in range(8):
            predicted = 10 * math.log10(float(twin.terms.sinr[0, r]))
            predicted_and_measured.append((round(predicted, 1), round(measured[r], 1)))
            errors.append(abs(measured[r] - predicted))
    radios["sim0"].stop_transmit()
    assert statistics.median(errors) <= 1.0, predicted_and_measured
