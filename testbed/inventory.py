"""The testbed config (``testbed.toml``) and the radio inventory built from it.

Where the config comes from, first match wins: ``--config FILE``; ``$TESTBED_CONFIG``; ``./testbed.toml``; built-in
defaults (simulated radios only, TX allowed in the 2.4 GHz ISM band at gain <= 0 dB). ``--sim-config FILE``
overrides the ``[sim]`` table (the file holds either a ``[sim]`` table or the sim keys at its top level).

Radio names: ``simN`` (any N) always exist and share one simulated air per :func:`open_radios` call; ``loopN``
always exist (ideal loopback); other names must be ``[radios.NAME]`` entries with a ``driver``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import click

from radio.base import Radio, RadioSettings
from radio.errors import RadioConfigError
from radio.guard import TxGuard
from radio.remote.client import OPTION_KEYS as _REMOTE_KEYS

DRIVERS = ("sim", "loopback", "replay", "pluto", "usrp", "remote")
SIM_NAME = re.compile(r"^sim\d+$")
LOOP_NAME = re.compile(r"^loop\d+$")

DEFAULT_SAFETY: dict[str, Any] = {"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": 0.0}

_ENTRY_KEYS: dict[str, set[str]] = {
    "sim": {"faults"},
    "loopback": {"delay_samples", "noise_rms", "faults"},
    "replay": {"path", "loop"},
    "pluto": {"uri", "extended_range"},
    "usrp": {"args", "channel", "subdev"},
    "remote": set(_REMOTE_KEYS),
}


class ConfigError(RadioConfigError):
    """A malformed config file; the message names the file and the offending key."""


@dataclass(frozen=True)
class RadioEntry:
    """One ``[radios.NAME]`` table."""

    name: str
    driver: str
    options: Mapping[str, Any] = field(default_factory=dict)
    """Driver-specific keys (uri, args, path, ...)."""


@dataclass
class TestbedConfig:
    """The resolved testbed configuration."""

    radios: dict[str, RadioEntry]
    guard: TxGuard
    sim_table: dict[str, Any]
    """The ``[sim]`` table after ``--sim-config`` overrides, passed as is to the simulator."""
    source: str
    """Where the config came from (a path, or 'built-in defaults')."""
    sim_source: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    """``[defaults]``: lo_hz, rate_sps, bandwidth_hz, tx_gain_db, rx_gain_db applied to every radio opened."""
    raw: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest class despite the name

    def known_names(self) -> list[str]:
        return sorted(self.radios) + ["sim0, sim1, ... (simulated)", "loop0, loop1, ... (ideal loopback)"]

    def entry(self, name: str) -> RadioEntry:
        if name in self.radios:
            return self.radios[name]
        if SIM_NAME.match(name):
            return RadioEntry(name, "sim")
        if LOOP_NAME.match(name):
            return RadioEntry(name, "loopback")
        raise RadioConfigError(f"unknown radio {name!r}; known: {', '.join(self.known_names())}")

    def resolved(self) -> dict[str, Any]:
        """A JSON/TOML-able description of everything in force, for run directories."""
        return {
            "source": self.source, "sim_source": self.sim_source,
            "radios": {n: {"driver": e.driver, **dict(e.options)} for n, e in self.radios.items()},
            "safety": self.guard.as_dict(), "sim": copy.deepcopy(self.sim_table), "defaults": dict(self.defaults),
        }


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: str | os.PathLike[str] | None = None,
                sim_config: str | os.PathLike[str] | None = None) -> TestbedConfig:
    """Read and validate the testbed config; see the module docstring for where it is looked for."""
    if path is None:
        env = os.environ.get("TESTBED_CONFIG")
        if env:
            path = env
        elif Path("testbed.toml").is_file():
            path = "testbed.toml"
    raw: dict[str, Any] = {} if path is None else _read_toml(Path(path))
    source = "built-in defaults" if path is None else str(path)

    known_top = {"radios", "safety", "sim", "defaults", "store", "run", "twin", "agent", "calibration"}
    for key in raw:
        if key not in known_top:
            raise ConfigError(f"{source}: unknown top-level key {key!r}; allowed: {sorted(known_top)}")

    radios: dict[str, RadioEntry] = {}
    table = raw.get("radios", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [radios] must be a table of [radios.NAME] tables")
    for name, spec in table.items():
        where = f"{source}: [radios.{name}]"
        if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", name):
            raise ConfigError(f"{where}: bad radio name {name!r}; allowed: letters, digits, '_' and '-'")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: must be a table")
        driver = spec.get("driver")
        if driver not in DRIVERS:
            raise ConfigError(f"{where} driver = {driver!r}; allowed: {', '.join(DRIVERS)}")
        options = {k: v for k, v in spec.items() if k != "driver"}
        bad = set(options) - _ENTRY_KEYS[driver]
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} for driver {driver!r}; "
                              f"allowed: {sorted(_ENTRY_KEYS[driver])}")
        if driver == "replay" and not isinstance(options.get("path"), str):
            raise ConfigError(f"{where}: driver 'replay' needs path = \"FILE.sigmf-meta\"")
        if driver == "replay":
            p = Path(options["path"])
            if not p.is_absolute() and path is not None:
                options["path"] = str((Path(path).resolve().parent / p))
        if "faults" in options:
            _check_faults(options["faults"], f"{where} faults")
        if driver == "remote":
            _check_remote(options, where, None if path is None else Path(path).resolve().parent)
        radios[name] = RadioEntry(name, driver, options)

    safety = raw.get("safety", DEFAULT_SAFETY if path is None else {})
    try:
        guard = TxGuard.from_config(safety, where=f"{source}: [safety]")
    except RadioConfigError as e:
        raise ConfigError(str(e)) from None

    defaults = raw.get("defaults", {})
    allowed_defaults = {f.name for f in dataclasses.fields(RadioSettings)}
    if not isinstance(defaults, dict) or set(defaults) - allowed_defaults:
        raise ConfigError(f"{source}: [defaults] keys {sorted(set(defaults) - allowed_defaults)} unknown; "
                          f"allowed: {sorted(allowed_defaults)}")

    sim_table = raw.get("sim", {})
    if not isinstance(sim_table, dict):
        raise ConfigError(f"{source}: [sim] must be a table")
    sim_source = None
    if sim_config is not None:
        over = _read_toml(Path(sim_config))
        if isinstance(over.get("sim"), dict) and len(over) == 1:
            over = over["sim"]
        sim_table = _merge(sim_table, over)
        sim_source = str(sim_config)
    cfg = TestbedConfig(radios, guard, sim_table, source, sim_source, dict(defaults), raw)
    if sim_table:
        _validate_sim(cfg)
    return cfg


def _check_faults(table: Any, where: str) -> None:
    from radio.sim.faults import FaultPlan

    try:
        FaultPlan.from_table(table, where)
    except RadioConfigError as e:
        raise ConfigError(str(e)) from None


def _check_remote(options: dict[str, Any], where: str, config_dir: Path | None) -> None:
    """Check a remote radio's keys; key file paths are made relative to the config file's directory."""
    from radio.remote.client import RemoteOptions

    try:
        RemoteOptions.from_table(options, where)
    except RadioConfigError as e:
        raise ConfigError(str(e)) from None
    if config_dir is None:
        return
    for key in ("client_key", "server_key"):
        value = options.get(key)
        # server_key may be the key itself (40 characters) rather than a file: only existing files are resolved.
        if isinstance(value, str) and not Path(value).expanduser().is_absolute() and (config_dir / value).exists():
            options[key] = str(config_dir / value)


def _validate_sim(cfg: TestbedConfig) -> None:
    """Parse the [sim] table now, so a bad key fails before any radio is opened."""
    from radio.sim import SimConfig

    where = cfg.sim_source or cfg.source
    try:
        SimConfig.from_table(cfg.sim_table, where)
    except RadioConfigError as e:
        raise ConfigError(str(e)) from None


def build_radio(entry: RadioEntry, cfg: TestbedConfig, *, air: Any = None) -> Radio:
    """Construct one radio (not yet configured). ``air`` is the shared simulated air for ``sim`` radios."""
    settings = RadioSettings(**cfg.defaults) if cfg.defaults else None
    opts = dict(entry.options)
    faults = opts.pop("faults", None)
    if entry.driver == "sim":
        return _with_faults(air.radio(entry.name, cfg.guard, settings), faults)
    if entry.driver == "loopback":
        from radio.loopback import LoopbackRadio
        return _with_faults(LoopbackRadio(entry.name, cfg.guard, settings, **opts), faults)
    if entry.driver == "remote":
        from radio.remote.client import RemoteOptions, RemoteRadio
        return RemoteRadio.from_options(entry.name, RemoteOptions.from_table(opts, f"[radios.{entry.name}]"),
                                        cfg.guard, settings)
    if entry.driver == "replay":
        from radio.replay import ReplayRadio
        return ReplayRadio(entry.name, opts["path"], cfg.guard, loop=bool(opts.get("loop", True)))
    if entry.driver == "pluto":
        from radio.pluto import PlutoRadio
        return PlutoRadio(entry.name, opts.get("uri", "ip:192.168.2.1"), cfg.guard, settings,
                          extended_range=bool(opts.get("extended_range", False)))
    if entry.driver == "usrp":
        from radio.usrp import UsrpRadio
        return UsrpRadio(entry.name, opts.get("args", ""), cfg.guard, settings, channel=int(opts.get("channel", 0)))
    raise RadioConfigError(f"driver {entry.driver!r} of radio {entry.name!r}; allowed: {', '.join(DRIVERS)}")


def _with_faults(radio: Radio, faults: Any) -> Radio:
    """Wrap ``radio`` in the fault injector when its config entry has a ``faults`` table."""
    if faults is None:
        return radio
    from radio.sim.faults import FaultPlan, FaultyRadio

    return FaultyRadio(radio, FaultPlan.from_table(faults, f"[radios.{radio.name}] faults"))


def make_air(cfg: TestbedConfig, seed: int | None = None) -> Any:
    """The simulated air shared by every ``sim`` radio opened together."""
    from radio.sim import SimConfig, SimulatedAir

    sim = SimConfig.from_table(cfg.sim_table, cfg.sim_source or cfg.source)
    return SimulatedAir(sim, seed=sim.seed if seed is None else seed)


@contextlib.contextmanager
def open_radios(names: Sequence[str], cfg: TestbedConfig, seed: int | None = None,
                air: Any = None) -> Iterator[dict[str, Radio]]:
    """Open the named radios (checked first: unknown names fail before anything opens); close them all on exit."""
    names = list(dict.fromkeys(names))
    if not names:
        raise RadioConfigError("no radios named; give at least one, e.g. sim0,sim1")
    entries = [cfg.entry(n) for n in names]
    if any(e.driver == "sim" for e in entries) and air is None:
        air = make_air(cfg, seed)
    opened: dict[str, Radio] = {}
    try:
        for e in entries:
            opened[e.name] = build_radio(e, cfg, air=air)
        yield opened
    finally:
        for r in opened.values():
            with contextlib.suppress(Exception):
                r.close()


def parse_radio_list(value: str) -> list[str]:
    """``"sim0,sim1"`` -> ``["sim0", "sim1"]`` (empty items rejected)."""
    names = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not n for n in names):
        raise RadioConfigError(f"--radios {value!r}; allowed: comma-separated radio names, e.g. sim0,sim1")
    return names


def radio_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` and ``--sim-config FILE`` for every command that uses radios."""
    f = click.option("--sim-config", type=click.Path(dir_okay=False), default=None,
                     help="TOML file overriding the [sim] table (simulated front ends and air).")(f)
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     envvar="TESTBED_CONFIG",
                     help="Testbed config (radios, safety, sim). Default: ./testbed.toml, else built-in.")(f)
    return f
