"""``testbed``: the command-line entry point (a click group).

Every command has ``--help``, takes ``--json`` (one JSON object on stdout as the last line), shows progress on
stderr for long work, and exits 0 on success, 2 on bad input, 3 on a radio fault, 1 otherwise.
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import click

from testbed.cliutil import EXIT_RADIO_FAULT, emit, handle_errors, json_option
from testbed.inventory import load_config, open_radios, parse_radio_list, radio_options

# Commands that live in their own modules; a module missing from this checkout is simply not offered.
_COMMAND_MODULES = {
    "link": "testbed.cmd_link",
    "analyze": "testbed.cmd_analyze",
    "train": "testbed.cmd_train",
    "repro": "testbed.cmd_repro",
    "calibrate": "testbed.cmd_calibrate",
    "calibrations": "testbed.cmd_calibrate",
    "runs": "testbed.cmd_runs",
    "run": "testbed.cmd_run",
    "eval": "testbed.cmd_run",
    "serve": "testbed.cmd_serve",
    "keys": "testbed.cmd_serve",
    "bench": "testbed.cmd_bench",
    "sweep": "testbed.cmd_sweep",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | {n for n in _COMMAND_MODULES if self._load(n)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        module = _COMMAND_MODULES.get(name)
        if module is None:
            return None
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="testbed")
def main() -> None:
    """Hardware-in-the-loop testbed for SDR OFDM links, front-end measurements and RL link adaptation.

    Radios: sim0, sim1, ... are simulated (always available); others come from testbed.toml.
    """


@main.command()
@click.option("--radios", "radio_list", default=None,
              help="Comma-separated radios to list (default: every configured radio plus sim0,sim1).")
@radio_options
@json_option
@handle_errors
def radios(radio_list: str | None, config_path: str | None, sim_config: str | None, as_json: bool) -> None:
    """List radios: driver, whether each answers, and its capabilities.

    Exit 3 when a radio named with --radios does not answer (the listing of every configured radio exits 0)."""
    cfg = load_config(config_path, sim_config)
    names = parse_radio_list(radio_list) if radio_list else sorted(cfg.radios) + ["sim0", "sim1"]
    for n in names:
        cfg.entry(n)  # unknown names are bad input, before anything opens
    rows: list[dict[str, Any]] = []
    for name in names:
        entry = cfg.entry(name)
        row: dict[str, Any] = {"name": name, "driver": entry.driver, "answers": False}
        try:
            with open_radios([name], cfg) as opened:
                radio = opened[name]
                row.update(answers=True, identity=radio.identity(), capabilities=radio.capabilities.as_dict())
        except Exception as e:  # noqa: BLE001 - a radio that does not answer is a row, not a failure
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)

    def human(result: dict[str, Any]) -> None:
        for r in result["radios"]:
            state = "answers" if r["answers"] else f"does not answer ({r.get('error', '')})"
            click.echo(f"{r['name']:<10} {r['driver']:<9} {state}")
            if r["answers"]:
                c = r["capabilities"]
                click.echo(f"{'':<10} LO {c['lo_hz']['low'] / 1e6:g}-{c['lo_hz']['high'] / 1e6:g} MHz, "
                           f"rate {c['rate_sps']['low'] / 1e6:g}-{c['rate_sps']['high'] / 1e6:g} MS/s, "
                           f"TX gain {c['tx_gain_db']['low']:g}..{c['tx_gain_db']['high']:g} dB, "
                           f"RX gain {c['rx_gain_db']['low']:g}..{c['rx_gain_db']['high']:g} dB")

    emit({"radios": rows, "config": cfg.source}, as_json, human)
    silent = [r["name"] for r in rows if not r["answers"]]
    if radio_list and silent:
        click.echo(f"Error: {', '.join(silent)} did not answer", err=True)
        sys.exit(EXIT_RADIO_FAULT)


class _SampleCount(click.ParamType):
    """A whole number of samples, also written as 1e7 or 2.5e6 (a value with a fraction is refused)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number != int(number):
            self.fail(f"{value!r}; allowed: a whole number of samples such as 1000000 or 1e6", param, ctx)
        return int(number)


@main.command()
@click.option("--radio", "radio_name", required=True, help="Radio to capture from (e.g. sim0, pluto0).")
@click.option("--lo", "lo_hz", type=float, required=True, help="RX LO frequency, Hz.")
@click.option("--rate", "rate_sps", type=float, required=True, help="Sample rate, samples/s.")
@click.option("--samples", "num_samples", type=_SampleCount(), required=True,
              help="Number of samples to record (1e7 notation accepted); streamed to disk, checked against the free "
                   "space first.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Output recording (FILE.sigmf-meta and FILE.sigmf-data are written).")
@click.option("--gain", "rx_gain_db", type=float, default=None, help="RX gain, dB (manual). Default: config.")
@click.option("--bandwidth", "bandwidth_hz", type=float, default=None,
              help="Analogue bandwidth, Hz (default: the sample rate, within the radio's range).")
@click.option("--overwrite", is_flag=True, help="Replace an existing recording.")
@click.option("--seed", type=int, default=None, help="Seed of the simulated air (simulated radios only).")
@radio_options
@json_option
@handle_errors
def capture(radio_name: str, lo_hz: float, rate_sps: float, num_samples: int, out_path: str,
            rx_gain_db: float | None, bandwidth_hz: float | None, overwrite: bool, seed: int | None,
            config_path: str | None, sim_config: str | None, as_json: bool) -> None:
    """Record samples from one radio into a SigMF recording.

    Exit 2 when the size is beyond 2^40 samples or the free space of the output directory; exit 3 on a radio fault,
    leaving no recording behind."""
    from testbed.capture import capture_to_sigmf, check_capture_size

    check_capture_size(num_samples, out_path)
    cfg = load_config(config_path, sim_config)
    with open_radios([radio_name], cfg, seed=seed) as opened:
        radio = opened[radio_name]
        caps = radio.capabilities
        bw = bandwidth_hz if bandwidth_hz is not None else min(max(rate_sps, caps.bandwidth_hz.low),
                                                               caps.bandwidth_hz.high)
        changes: dict[str, Any] = {"lo_hz": lo_hz, "rx_lo_hz": lo_hz, "rate_sps": rate_sps, "bandwidth_hz": bw}
        if rx_gain_db is not None:
            changes["rx_gain_db"] = rx_gain_db
        settings = radio.configure(**changes)
        with click.progressbar(length=num_samples, label="capturing", file=sys.stderr,
                               hidden=num_samples < 4 * (1 << 20)) as bar:
            done = capture_to_sigmf(radio, settings, num_samples, out_path, radio_name=radio_name,
                                    overwrite=overwrite, on_chunk=bar.update)
    result = {"meta": str(done.meta_path), "data": str(done.data_path), "samples": done.samples,
              "rate_sps": settings.rate_sps, "lo_hz": settings.rx_lo, "gain_db": settings.rx_gain_db,
              "clip_count": done.clip_count, "overflow_count": done.overflow_count, "segments": done.segments,
              "temperature_c": done.temperature_c, "power_dbfs": done.power_dbfs}
    emit(result, as_json, lambda r: click.echo(
        f"wrote {r['samples']} samples to {r['meta']} (power {r['power_dbfs'] or float('-inf'):.1f} dBFS, "
        f"{r['clip_count']} clipped)"))


if __name__ == "__main__":  # pragma: no cover
    main()
