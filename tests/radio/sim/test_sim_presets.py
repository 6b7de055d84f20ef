"""Radio presets of the [sim] table: each resolves to its documented datasheet values, explicit keys win, unknown
names are refused, and pluto-preset radios behave like Plutos (reference error, an OFDM link that still decodes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from radio.errors import RadioConfigError
from radio.sim import RadioParams, SimConfig, SimulatedAir
from radio.sim import frontend as fe
from radio.sim.params import RADIO_PRESETS
from testbed.cli import main

WHERE = "lab.toml"
REPO = Path(__file__).resolve().parents[3]

# The values the module documentation's preset table gives, key by key.
DOCUMENTED = {
    "pluto": dict(ppm_spread=25.0, iq_gain_db=0.02, iq_phase_deg=0.2, lo_leakage_dbc=-50.0,
                  phase_noise_dbc_hz=-103.6, phase_noise_offset_hz=100e3, phase_noise_corner_hz=100e3,
                  noise_figure_db=3.0, lna_iip3_dbm=-14.0, tx_evm=0.02, rx_evm=0.02, dac_bits=12, adc_bits=12,
                  tx_fullscale_dbm=7.0, rx_fullscale_dbm=0.0, pa_smoothness=1.0, pa_sat_dbfs=9.0, am_pm_deg=0.0),
    "b210": dict(ppm_spread=2.0, iq_gain_db=0.22, iq_phase_deg=1.44, lo_leakage_dbc=-50.0,
                 phase_noise_dbc_hz=-96.2, phase_noise_offset_hz=100e3, phase_noise_corner_hz=100e3,
                 noise_figure_db=8.0, lna_iip3_dbm=-20.0, tx_evm=0.01, rx_evm=0.01, dac_bits=12, adc_bits=12,
                 tx_fullscale_dbm=10.0, rx_fullscale_dbm=0.0, pa_smoothness=1.0, pa_sat_dbfs=6.0, am_pm_deg=0.0),
}


@pytest.mark.parametrize("preset", ["pluto", "b210"])
def test_preset_resolves_to_the_documented_values_per_radio_and_as_defaults(preset: str) -> None:
    per_radio = SimConfig.from_table({"radios": {"sim0": {"preset": preset}}}, WHERE)
    as_default = SimConfig.from_table({"preset": preset}, WHERE)
    for cfg in (per_radio, as_default):
        params = cfg.radio_params("sim0")
        for key, value in DOCUMENTED[preset].items():
            assert getattr(params, key) == value, key
        assert params.ppm is None  # still drawn from ppm_spread
        assert params.temperature_c == RadioParams().temperature_c
    # A per-radio preset leaves the other radios at the built-in defaults.
    assert per_radio.radio_params("sim1") == RadioParams()


def test_ideal_preset_switches_every_impairment_off() -> None:
    p = SimConfig.from_table({"radios": {"sim0": {"preset": "ideal"}}}, WHERE).radio_params("sim0")
    assert (p.tx_evm, p.rx_evm, p.am_pm_deg, p.iq_gain_db, p.iq_phase_deg) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert p.pa_sat_dbfs == math.inf and p.lna_iip3_dbm == math.inf
    assert p.phase_noise_dbc_hz == -math.inf and p.lo_leakage_dbc == -math.inf
    assert (p.ppm, p.ppm_spread, p.noise_figure_db) == (0.0, 0.0, 0.0)
    assert (p.dac_bits, p.adc_bits) == (24, 24)


def test_datasheet_figures_survive_the_mapping_onto_the_model() -> None:
    """The preset values reproduce the datasheet figures they were derived from, through the simulator's own
    model functions: integrated phase jitter, TX image rejection, and the PA's third-order intercept."""
    for preset, rms_deg in (("pluto", 0.3), ("b210", 1.0 * 2.45 / 3.5)):
        p = RADIO_PRESETS[preset]
        jitter = fe.phase_noise_rms_rad(p["phase_noise_dbc_hz"], p["phase_noise_offset_hz"],
                                        p["phase_noise_corner_hz"])
        assert math.degrees(jitter) == pytest.approx(rms_deg, rel=0.01)
    mu, nu = fe.iq_imbalance_coefficients(RADIO_PRESETS["b210"]["iq_gain_db"], RADIO_PRESETS["b210"]["iq_phase_deg"])
    assert 10 * math.log10(abs(nu) ** 2 / abs(mu) ** 2) == pytest.approx(-35.0, abs=0.3)  # SSB suppression 35 dBc

    # Two-tone test of the Rapp PA at low drive: IM3 rises 3 dB/dB, its intercept is the AD9361's 19 dBm OIP3.
    p = RADIO_PRESETS["pluto"]
    n = 4096
    t = np.arange(n)
    tone_dbfs = -20.0
    amp = 10 ** (tone_dbfs / 20)
    x = amp * (np.exp(2j * np.pi * 100 * t / n) + np.exp(2j * np.pi * 110 * t / n))
    spec = np.fft.fft(fe.rapp_pa(x, p["pa_smoothness"], p["pa_sat_dbfs"], p["am_pm_deg"])) / n
    fund_dbfs = 20 * math.log10(abs(spec[100]))
    im3_dbfs = 20 * math.log10(abs(spec[90]))
    oip3_dbfs = fund_dbfs + (fund_dbfs - im3_dbfs) / 2
    assert oip3_dbfs + p["tx_fullscale_dbm"] == pytest.approx(19.0, abs=0.2)


def test_explicit_keys_override_a_preset_and_a_radio_preset_overrides_the_defaults() -> None:
    cfg = SimConfig.from_table({
        "preset": "b210", "noise_figure_db": 9.5,
        "radios": {"sim0": {"preset": "pluto", "noise_figure_db": 7.0, "ppm_spread": 10.0},
                   "sim1": {"tx_evm": 0.05}},
    }, WHERE)
    sim0, sim1 = cfg.radio_params("sim0"), cfg.radio_params("sim1")
    assert sim0.noise_figure_db == 7.0 and sim0.ppm_spread == 10.0
    assert sim0.lna_iip3_dbm == -14.0 and sim0.tx_fullscale_dbm == 7.0  # the rest is the radio's preset
    assert sim1.noise_figure_db == 9.5 and sim1.tx_evm == 0.05  # defaults: preset, then explicit keys
    assert sim1.iq_phase_deg == 1.44 and sim1.ppm_spread == 2.0
    # Explicit keys win whatever their order in the table.
    reordered = SimConfig.from_table({"radios": {"sim0": {"tx_evm": 0.1, "preset": "pluto"}}}, WHERE)
    assert reordered.radio_params("sim0").tx_evm == 0.1


def test_to_table_round_trips_a_preset_configuration() -> None:
    cfg = SimConfig.from_table({"preset": "pluto", "radios": {"sim1": {"preset": "b210", "ppm": 1.5}}}, WHERE)
    again = SimConfig.from_table(cfg.to_table(), WHERE)
    assert again.radio_params("sim0") == cfg.radio_params("sim0")
    assert again.radio_params("sim1") == cfg.radio_params("sim1")


@pytest.mark.parametrize("table, path", [
    ({"preset": "hackrf"}, "sim.preset"),
    ({"radios": {"sim0": {"preset": "Pluto"}}}, "sim.radios.sim0.preset"),
    ({"radios": {"sim0": {"preset": 3}}}, "sim.radios.sim0.preset"),
])
def test_unknown_preset_is_refused_naming_the_allowed_ones(table: dict, path: str) -> None:
    with pytest.raises(RadioConfigError) as err:
        SimConfig.from_table(table, WHERE)
    message = str(err.value)
    assert WHERE in message and path in message
    assert '"ideal"' in message and '"pluto"' in message and '"b210"' in message


def test_example_toml_documents_every_preset_value() -> None:
    text = SimConfig.example_toml()
    assert "preset" in text
    for line_key in ("ppm_spread", "noise_figure_db", "phase_noise_dbc_hz", "lo_leakage_dbc"):
        row = next(line for line in text.splitlines() if line.startswith(f"#   {line_key} "))
        for name in ("ideal", "pluto", "b210"):
            value = RADIO_PRESETS[name][line_key]
            shown = "inf" if value == math.inf else "-inf" if value == -math.inf else repr(float(value))
            assert shown in row, (line_key, name)


def test_pluto_radios_draw_their_reference_error_within_25_ppm_and_differ_between_units() -> None:
    table = {"radios": {"sim0": {"preset": "pluto"}, "sim1": {"preset": "pluto"}}}
    differences = []
    for seed in range(6):
        air = SimulatedAir(SimConfig.from_table(table, WHERE), seed=seed)
        air.radio("sim0"), air.radio("sim1")
        truth = air.hidden_truth()["radios"]
        ppms = [truth[name]["params"]["ppm"] for name in ("sim0", "sim1")]
        assert all(abs(ppm) <= 25.0 for ppm in ppms)
        differences.append(abs(ppms[0] - ppms[1]))
    # With the default +-1 ppm two radios never differ by more than 2 ppm: a Pluto pair must, at least once.
    assert max(differences) > 5.0


@pytest.mark.parametrize("config", ["sim-pluto.toml", "sim-b210.toml"])
def test_shipped_configs_give_both_radios_their_preset(config: str) -> None:
    import tomllib
    table = tomllib.loads((REPO / "docs" / "configs" / config).read_text())["sim"]
    cfg = SimConfig.from_table(table, config)
    preset = config.removeprefix("sim-").removesuffix(".toml")
    for name in ("sim0", "sim1", "sim2"):
        assert cfg.radio_params(name).ppm_spread == DOCUMENTED[preset]["ppm_spread"]


def test_link_between_two_pluto_radios_at_2_45_ghz_decodes(tmp_path: Path) -> None:
    """QPSK 1/2 on 25 RBs of an LTE 5 MHz carrier: the pluto impairments (including up to 50 ppm of reference
    offset between the radios, 122 kHz at 2.45 GHz) still leave the link error-free or nearly."""
    config = tmp_path / "pluto.toml"
    config.write_text('[sim]\nseed = 4\n[sim.radios.sim0]\npreset = "pluto"\n[sim.radios.sim1]\npreset = "pluto"\n')
    result = CliRunner().invoke(main, ["link", "--tx", "sim0", "--rx", "sim1", "--lo", "2.45e9", "--slots", "8",
                                       "--link", "rbs=0-24,mod=qpsk,rate=1/2", "--sim-config", str(config),
                                       "--json"], env={"TESTBED_CONFIG": None, "TESTBED_STORE": None})
    assert result.exit_code == 0, result.stderr
    link = json.loads(result.stdout.strip().splitlines()[-1])["links"]["L0"]
    assert link["slots_no_sync"] == 0
    assert link["bler"] <= 0.05
    # The pluto EVM floor (-34 dB per direction) shows: the link is not the near-perfect default radio.
    assert -34.0 < link["evm_db"] < -20.0
