"""Which stored calibration a run may reuse: only one that measured the very same units (identity keys: a Pluto's
or USRP's serial, a remote server's radio, a simulated radio's resolved parameters, links and seed) at the same
settings and depth. Records from before identities were stored, records of other units under the same names,
--quick records and records of unidentifiable radios are never reused; each skip says why.

The calibration itself is replaced by a stand-in here (what is stored, and how it is matched, is the real code):
these tests are about the matching, the CLI tests in test_run_cli.py run the real thing.
"""

from __future__ import annotations

from typing import Any

import pytest

import calibration.report
import calibration.session
from calibration.record import CalibrationRecord, TwinParameters
from calibration.settings import CalibrationSettings, calibration_depth, settings_key
from radio.identity import identity_key
from radio.ofdm import numerology
from radio.pluto import PlutoRadio
from radio.sim import SimConfig, SimulatedAir
from testbed.calibration_reuse import CalibrationChoice, calibrate_or_reuse
from testbed.store import Store
from tests.fakes import fake_adi

DAY_S = 24 * 3600.0


@pytest.fixture
def stand_in_calibration(monkeypatch):
    """Replace the sweeps and the report by a stand-in that returns a record shaped like the real one; returns the
    list of radio-name tuples it was called for."""
    calls: list[tuple[str, ...]] = []

    def run_calibration(radios: dict[str, Any], settings: CalibrationSettings, *, progress=None, on_total=None,
                        fit_link_abstraction=None):
        calls.append(tuple(radios))
        rate = numerology(settings.numerology).sample_rate_hz
        meta = {"radios": {n: r.identity() for n, r in radios.items()}, "settings": settings.as_dict(),
                "rate_sps": rate, "settings_key": settings_key(settings, rate), "temperature_c": None}
        return CalibrationRecord(twin=TwinParameters(kappa_t=0.01, kappa_r=0.01, acir1_db=30.0, acir2_db=40.0),
                                 settings=settings, results={}, raw={"points": []}, notes=[], meta=meta)

    monkeypatch.setattr(calibration.session, "run_calibration", run_calibration)
    monkeypatch.setattr(calibration.report, "write_report", lambda record, out: {})
    return calls


def open_sims(table: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    air = SimulatedAir(SimConfig.from_table(table or {}), seed=seed)
    return {name: air.radio(name) for name in ("sim0", "sim1")}


def keys(radios: dict[str, Any]) -> dict[str, str | None]:
    return {name: identity_key(radio.identity()) for name, radio in radios.items()}


def pluto(name: str, serial: str | None, uri: str = "ip:192.168.2.1") -> PlutoRadio:
    radio = PlutoRadio(name, uri, adi_module=fake_adi)
    if serial is None:
        del radio._sdr.ctx.attrs["hw_serial"]
    else:
        radio._sdr.ctx.attrs["hw_serial"] = serial
    return radio


def reuse(radios: dict[str, Any], store: Store, settings: CalibrationSettings | None = None,
          max_age_s: float | None = DAY_S) -> tuple[CalibrationRecord, CalibrationChoice]:
    return calibrate_or_reuse(list(radios), radios, store, settings or CalibrationSettings(), recalibrate=False,
                              max_age_s=max_age_s, out_dir=None, show_progress=False)


# --- identity keys ------------------------------------------------------------------------------------------------

def test_a_simulated_radio_is_identified_by_its_parameters_links_and_seed_not_its_settings():
    """The key is a pure function of the [sim] config and the seed (two airs built alike agree, hidden draws
    included); retuning does not change it; another tx_evm changes only that radio's key; a link between the
    two, or the seed, changes both."""
    base = keys(open_sims())
    assert None not in base.values() and base["sim0"] != base["sim1"]
    again = open_sims()
    assert keys(again) == base
    again["sim0"].configure(lo_hz=2.44e9, rx_gain_db=20.0, tx_gain_db=-20.0)
    assert keys(again) == base

    evm = keys(open_sims({"radios": {"sim0": {"tx_evm": 0.05}}}))
    assert evm["sim0"] != base["sim0"] and evm["sim1"] == base["sim1"]
    link = keys(open_sims({"links": {"sim0->sim1": {"path_loss_db": 70.0}}}))
    assert link["sim0"] != base["sim0"] and link["sim1"] != base["sim1"]
    seeded = keys(open_sims(seed=1))
    assert seeded["sim0"] != base["sim0"] and seeded["sim1"] != base["sim1"]


def test_a_pluto_is_identified_by_its_serial_not_by_where_it_is_plugged_in():
    a = identity_key(pluto("pluto0", "104473dc5993000a").identity())
    assert a is not None
    assert identity_key(pluto("pluto0", "104473dc5993000a", uri="usb:1.4.5").identity()) == a
    assert identity_key(pluto("pluto0", "1044730000000bbb").identity()) != a
    assert identity_key(pluto("pluto0", None).identity()) is None       # no serial: cannot be told apart


def test_a_remote_radio_is_identified_by_the_servers_radio_not_the_session_or_address():
    served = {"name": "sim0", "driver": "sim", "air": {"kind": "simulated air", "seed": 0}, "fingerprint": "ab"}
    remote = {"name": "r0", "driver": "remote", "endpoint": "tcp://10.0.0.2:5555", "server": served, "session": "s1"}
    key = identity_key(remote)
    assert key is not None
    assert identity_key({**remote, "endpoint": "tcp://lab:5555", "session": "s2"}) == key
    assert identity_key({**remote, "server": {**served, "fingerprint": "cd"}}) != key
    assert identity_key({**remote, "server": None}) is None
    assert identity_key({**remote, "server": {"name": "p", "driver": "pluto", "serial": None}}) is None


def test_depth_of_the_default_and_quick_settings():
    assert calibration_depth(CalibrationSettings.at_depth().as_dict()) == "full"
    assert calibration_depth(CalibrationSettings.at_depth(lo_hz=2.44e9).as_dict()) == "full"    # the carrier is not depth
    assert calibration_depth(CalibrationSettings.at_depth(quick=True).as_dict()) == "quick"
    assert calibration_depth(CalibrationSettings(slots_per_point=2).as_dict()) == "custom"


# --- reuse decisions -------------------------------------------------------------------------------------------

def test_the_same_simulated_radios_reuse_and_other_front_ends_do_not(tmp_path, stand_in_calibration, capsys):
    with Store(tmp_path / "s.sqlite") as store:
        first, choice = reuse(open_sims(), store)
        assert not choice.reused and stand_in_calibration == [("sim0", "sim1")]
        assert first.meta["depth"] == "full"
        assert store.calibration(first.id).identity_keys == keys(open_sims())

        again, choice = reuse(open_sims(), store)
        assert choice.reused and again.id == first.id and len(stand_in_calibration) == 1
        message = choice.message
        sim0_id = keys(open_sims())["sim0"][:8]
        assert message.startswith(f"reusing calibration {first.id} (")
        assert f"sim0 [id {sim0_id}]" in message and "full depth" in message
        assert message in capsys.readouterr().err

        other, choice = reuse(open_sims({"radios": {"sim0": {"tx_evm": 0.05}}}), store)
        assert not choice.reused and other.id != first.id and len(stand_in_calibration) == 2
        assert choice.skipped == [
            f"skipped calibration {first.id} (0 min old): sim0 is not the radio it measured "
            f"(id {sim0_id}, now {keys(open_sims({'radios': {'sim0': {'tx_evm': 0.05}}}))['sim0'][:8]})"]
        # The newest record is of the other front end; the default radios still find theirs behind it.
        back, choice = reuse(open_sims(), store)
        assert choice.reused and back.id == first.id
        assert choice.skipped[0].startswith(f"skipped calibration {other.id} ")


def test_a_pluto_with_another_serial_under_the_same_name_does_not_reuse(tmp_path, stand_in_calibration):
    with Store(tmp_path / "s.sqlite") as store:
        first, _ = reuse({"pluto0": pluto("pluto0", "aaaa0001"), "pluto1": pluto("pluto1", "bbbb0002")}, store)
        moved, choice = reuse({"pluto0": pluto("pluto0", "aaaa0001", uri="usb:1.4.5"),
                               "pluto1": pluto("pluto1", "bbbb0002")}, store)
        assert choice.reused and moved.id == first.id
        swapped, choice = reuse({"pluto0": pluto("pluto0", "cccc0003"), "pluto1": pluto("pluto1", "bbbb0002")},
                                store)
        assert not choice.reused and swapped.id != first.id
        assert "pluto0 is not the radio it measured" in choice.skipped[0]
        assert "pluto1" not in choice.skipped[0]
        unknown, choice = reuse({"pluto0": pluto("pluto0", None), "pluto1": pluto("pluto1", "bbbb0002")}, store)
        assert not choice.reused and "pluto0 cannot be identified" in choice.message
        # ... and its record is not reused either, even by the same unidentified radio.
        _, choice = reuse({"pluto0": pluto("pluto0", None), "pluto1": pluto("pluto1", "bbbb0002")}, store)
        assert not choice.reused and len(stand_in_calibration) == 4


def test_a_quick_record_is_not_reused_for_a_full_depth_request(tmp_path, stand_in_calibration):
    with Store(tmp_path / "s.sqlite") as store:
        quick, _ = reuse(open_sims(), store, settings=CalibrationSettings.at_depth(quick=True))
        assert quick.meta["depth"] == "quick"
        again, choice = reuse(open_sims(), store, settings=CalibrationSettings.at_depth(quick=True))
        assert choice.reused and again.id == quick.id
        full, choice = reuse(open_sims(), store)
        assert not choice.reused and full.id != quick.id
        assert choice.skipped == [f"skipped calibration {quick.id} (0 min old): a quick calibration; "
                                            f"this needs full depth"]


def test_other_gains_or_an_old_record_are_not_reused(tmp_path, stand_in_calibration):
    """The radios' configured gains, which the settings key leaves open, must match; a record without identity
    keys (written before they were stored) and one older than the limit are never reused."""
    with Store(tmp_path / "s.sqlite") as store:
        first, _ = reuse(open_sims(), store)
        louder = open_sims()
        louder["sim0"].configure(tx_gain_db=-3.0)
        other, choice = reuse(louder, store)
        assert not choice.reused and "other gains" in choice.skipped[0]
        legacy = store.add_calibration(["sim0", "sim1"], first.meta["settings_key"], first.stored_results(), {},
                                       meta=first.meta)
        newest, choice = reuse(open_sims(), store)
        assert choice.reused and newest.id == first.id
        assert choice.skipped[0] == (f"skipped calibration {legacy} (0 min old): made before radio "
                                                 f"identities were recorded, so which units it measured is unknown")
        _, choice = reuse(open_sims(), store, max_age_s=0.0)
        assert not choice.reused
