"""The [sim] table: defaults, overrides, errors naming the file, key path, value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import tomllib

import pytest

from radio.errors import RadioConfigError
from radio.sim import LinkParams, RadioParams, SimConfig, example_table, field_docs
from radio.sim.params import AirParams

WHERE = "lab.toml"


def test_empty_table_gives_the_documented_defaults() -> None:
    cfg = SimConfig.from_table({}, WHERE)
    assert cfg.radio == RadioParams()
    assert cfg.link == LinkParams()
    assert cfg.seed == 0
    assert cfg.radio_params("sim7").tx_evm == RadioParams().tx_evm
    assert cfg.radio_params("sim7").ppm is None  # drawn per radio from the seed


def test_overrides_per_radio_and_per_link() -> None:
    cfg = SimConfig.from_table({
        "seed": 5, "tx_evm": 0.03, "path_loss_db": 60, "loopback_path_loss_db": 35.0, "fading": "jakes",
        "doppler_hz": 5.0,
        "radios": {"sim1": {"tx_evm": 0.08, "ppm": -2}},
        "links": {"sim0->sim1": {"path_loss_db": 70.5, "delay_samples": 2.25}},
    }, WHERE)
    assert cfg.seed == 5
    assert cfg.radio_params("sim0").tx_evm == 0.03
    assert cfg.radio_params("sim1").tx_evm == 0.08 and cfg.radio_params("sim1").ppm == -2.0
    assert cfg.link_params("sim0", "sim1") == LinkParams(70.5, 2.25, "jakes", 5.0)
    assert cfg.link_params("sim1", "sim0") == LinkParams(60.0, 0.0, "jakes", 5.0)
    # A self link is the loopback: its own path loss, no fading unless overridden.
    assert cfg.link_params("sim0", "sim0") == LinkParams(path_loss_db=35.0)


def test_to_table_round_trips() -> None:
    table = {"seed": 3, "pa_sat_dbfs": math.inf, "phase_noise_dbc_hz": -math.inf,
             "radios": {"sim2": {"ppm": 1.5}}, "links": {"a->b": {"fading": "jakes", "doppler_hz": 10}}}
    cfg = SimConfig.from_table(table, WHERE)
    again = SimConfig.from_table(cfg.to_table(), WHERE)
    assert again == cfg
    assert cfg.to_table()["radios"] == {"sim2": {"ppm": 1.5}}
    assert "ppm" not in cfg.to_table()  # drawn, so not part of the written config


def test_example_toml_parses_to_the_defaults_and_documents_every_key() -> None:
    text = SimConfig.example_toml()
    parsed = tomllib.loads(text)["sim"]
    assert SimConfig.from_table(parsed, "example") == SimConfig()
    assert parsed == example_table()
    for cls in (AirParams, RadioParams, LinkParams):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert len(docs.get(f.name, "")) > 30, f.name
            assert f"# {f.name} =" in text or f"\n{f.name} =" in text


@pytest.mark.parametrize("table, path, value_text, allowed_text", [
    ({"tx_evmm": 0.1}, "sim.tx_evmm", "tx_evmm", "allowed keys there"),
    ({"tx_evm": -0.1}, "sim.tx_evm", "-0.1", "a number from 0 to 0.999"),
    ({"tx_evm": True}, "sim.tx_evm", "True", "a number"),
    ({"adc_bits": 12.5}, "sim.adc_bits", "12.5", "an integer from 2 to 24"),
    ({"pa_sat_dbfs": -math.inf}, "sim.pa_sat_dbfs", "-inf", "or inf"),
    ({"phase_noise_dbc_hz": math.nan}, "sim.phase_noise_dbc_hz", "nan", "or -inf"),
    ({"fading": "rayleigh"}, "sim.fading", "'rayleigh'", '"none", "jakes"'),
    ({"tx_oversample": 3}, "sim.tx_oversample", "3", "one of 1, 2, 4, 8, 16"),
    ({"radios": {"sim1": {"noise_figure_db": "6"}}}, "sim.radios.sim1.noise_figure_db", "'6'", "a number"),
    ({"radios": {"sim1": {"path_loss_db": 3}}}, "sim.radios.sim1.path_loss_db", "path_loss_db", "tx_evm"),
    ({"links": {"sim0->sim1": {"delay_samples": -1}}}, 'sim.links."sim0->sim1".delay_samples', "-1",
     "from 0 to 65536"),
    ({"links": {"sim0->sim1": {"tx_evm": 0.1}}}, 'sim.links."sim0->sim1".tx_evm', "tx_evm", "path_loss_db"),
    ({"links": {"sim0-sim1": {}}}, 'sim.links."sim0-sim1"', "sim0-sim1", '"TX->RX"'),
    ({"radios": 3}, "sim.radios", "3", "a table"),
])
def test_bad_table_names_file_key_value_and_allowed(table, path, value_text, allowed_text) -> None:
    with pytest.raises(RadioConfigError) as err:
        SimConfig.from_table(table, WHERE)
    msg = str(err.value)
    assert msg.startswith(f"{WHERE}: ")
    assert path in msg
    assert value_text in msg
    assert "allowed" in msg and allowed_text in msg
