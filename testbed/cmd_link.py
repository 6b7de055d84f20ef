"""``testbed link``: run OFDM slots with several links between radios and print per-link SINR, EVM, BLER and
throughput.

``--link`` specs are comma-separated ``key=value`` fields:

- ``rbs``: resource blocks, ranges and single RBs joined with ``+`` (``0-11``, ``0-5+12-17``, ``3``); required;
- ``mod``: ``bpsk``, ``qpsk``, ``16qam``, ``64qam``, ``256qam`` (default ``qpsk``);
- ``rate``: ``1/3``, ``1/2``, ``2/3``, ``3/4``, ``5/6`` (default ``1/2``);
- ``power_db``: link power relative to the slot's full power per RE (default 0);
- ``id``: link name (default ``L0``, ``L1``, ...);
- ``tx``: which ``--tx`` radio carries it (default the first).

Exit status 3 (the radio-fault class) with one line on stderr saying what went wrong when some transmitter's
slots were never acquired ("no signal": nothing above the noise floor on its RBs; "no sync": power there but
no slot found, e.g. a CFO beyond the search range); the ``--json`` output is still printed, with null SINR, EVM,
BLER and throughput for such links.

Radios come from the testbed inventory (``--config`` / ``--sim-config``): ``simN`` simulated radios sharing one
simulated air, ``loopN`` ideal loopback radios (``--tx loop0 --rx loop0``), or configured hardware.
"""

from __future__ import annotations

import math
from typing import Any

import click

from radio.ofdm.fec import CODE_RATES
from radio.ofdm.link import acquisition_failure, run_link
from radio.ofdm.modulation import MODULATIONS
from radio.ofdm.numerology import NUMEROLOGIES, numerology
from radio.ofdm.slot import POWER_DB_RANGE, Link, SlotPlan
from radio.ofdm.receiver import SlotReport
from testbed.cliutil import EXIT_RADIO_FAULT, BadInput, emit, handle_errors, json_option, progress
from testbed.inventory import load_config, open_radios, radio_options

LINK_FIELDS = ("rbs", "mod", "rate", "power_db", "id", "tx")


def parse_rbs(text: str, n_rb: int, spec: str) -> tuple[int, ...]:
    """``0-11+20-23`` -> (0, ..., 11, 20, ..., 23); BadInput names the field and the allowed range."""
    rbs: list[int] = []
    for part in text.replace(";", "+").split("+"):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
            else:
                a = b = int(part)
        except ValueError:
            raise BadInput(f"--link {spec!r}: rbs={text!r} is not a list of RB ranges; allowed: e.g. rbs=0-11 or "
                           f"rbs=0-5+12-17 with RBs 0 to {n_rb - 1}") from None
        if not (0 <= a <= b < n_rb):
            raise BadInput(f"--link {spec!r}: rbs={text!r} is outside the carrier; allowed RBs 0 to {n_rb - 1}")
        rbs.extend(range(a, b + 1))
    return tuple(rbs)


def parse_link_spec(spec: str, index: int, n_rb: int, tx_names: list[str]) -> tuple[Link, str]:
    """Parse one ``--link`` spec into a :class:`Link` and the name of its transmitter radio.

    Raises BadInput (exit code 2) naming the bad field and its allowed values.
    """
    fields: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise BadInput(f"--link {spec!r}: field {item!r} is not key=value; allowed keys: {', '.join(LINK_FIELDS)}")
        key, value = (s.strip() for s in item.split("=", 1))
        key = key.lower()
        if key not in LINK_FIELDS:
            raise BadInput(f"--link {spec!r}: unknown field {key!r}; allowed keys: {', '.join(LINK_FIELDS)}")
        fields[key] = value
    if "rbs" not in fields:
        raise BadInput(f"--link {spec!r}: field 'rbs' is required (e.g. rbs=0-11, RBs 0 to {n_rb - 1})")
    rbs = parse_rbs(fields["rbs"], n_rb, spec)
    mod = fields.get("mod", "qpsk").lower()
    if mod not in MODULATIONS:
        raise BadInput(f"--link {spec!r}: mod={mod!r}; allowed: {', '.join(MODULATIONS)}")
    rate = fields.get("rate", "1/2")
    if rate not in CODE_RATES:
        raise BadInput(f"--link {spec!r}: rate={rate!r}; allowed: {', '.join(CODE_RATES)}")
    lo, hi = POWER_DB_RANGE
    try:
        power = float(fields.get("power_db", "0"))
    except ValueError:
        power = math.nan
    if not (math.isfinite(power) and lo <= power <= hi):
        raise BadInput(f"--link {spec!r}: power_db={fields.get('power_db')!r}; allowed a number from {lo:g} to {hi:g}")
    tx = fields.get("tx", tx_names[0])
    if tx not in tx_names:
        raise BadInput(f"--link {spec!r}: tx={tx!r}; allowed: one of the --tx radios ({', '.join(tx_names)})")
    try:
        link = Link(fields.get("id", f"L{index}"), rbs, mod, CODE_RATES[rate], power)
    except ValueError as e:
        raise BadInput(f"--link {spec!r}: {e}") from None
    return link, tx


def _human(result: dict[str, Any]) -> None:
    click.echo(f"{result['numerology']}: {result['slots']} slots, tx {', '.join(result['tx'])} -> rx {result['rx']}")
    click.echo(f"{'link':<8}{'RBs':>5} {'mod':>7}{'rate':>6}{'P dB':>7}{'SINR dB':>9}{'EVM %':>8}{'BLER':>8}"
               f"{'bits/slot':>11}{'Mbit/s':>9}")
    def cell(value: float | None, width: int, fmt: str, scale: float = 1.0) -> str:
        return f"{'-':>{width}}" if value is None else f"{value * scale:>{width}{fmt}}"

    for lid, s in result["links"].items():
        c = s["config"]
        click.echo(f"{lid:<8}{len(c['rbs']):>5} {c['modulation']:>7}{c['rate']:>6}{c['power_db']:>7.1f}"
                   f"{cell(s['sinr_db'], 9, '.2f')}{cell(s['evm'], 8, '.2f', 100.0)}{cell(s['bler'], 8, '.3f')}"
                   f"{cell(s['bits_per_slot'], 11, '.0f')}{cell(s['throughput_mbps'], 9, '.3f')}")
        if s["slots_no_signal"] or s["slots_no_sync"]:
            click.echo(f"  {lid}: {s['slots_no_signal']} slots no signal, {s['slots_no_sync']} slots no sync")
    if result.get("clipped_samples"):
        click.echo(f"warning: the DAC clipped {result['clipped_samples']} samples; raise the back-off", err=True)


@click.command("link")
@click.option("--tx", "tx_names", multiple=True, required=True, help="Transmitting radio(s); repeat for several APs.")
@click.option("--rx", "rx_name", required=True, help="Receiving radio (may equal a --tx radio: loopback).")
@click.option("--numerology", "num_name", default="lte5", show_default=True,
              help=f"Carrier numerology: {', '.join(NUMEROLOGIES)}.")
@click.option("--link", "link_specs", multiple=True, required=True,
              help='Link spec, repeatable: "rbs=0-11,mod=16qam,rate=3/4,power_db=0[,id=a][,tx=NAME]".')
@click.option("--slots", type=click.IntRange(1, 100000), default=10, show_default=True, help="Slots to run.")
@click.option("--lo", "lo_hz", type=float, default=None, help="LO frequency (Hz); default: the radios' current LO.")
@click.option("--tx-gain", "tx_gain_db", type=float, default=None, help="TX gain (dB, radio convention).")
@click.option("--rx-gain", "rx_gain_db", type=float, default=None, help="RX gain (dB).")
@click.option("--backoff", "backoff_db", type=float, default=12.0, show_default=True,
              help="RMS of a fully loaded slot below DAC full scale (dB).")
@click.option("--wola", "wola_ramp", type=click.IntRange(0, 10000), default=0, show_default=True,
              help="Raised-cosine WOLA ramp (samples); 0 = off.")
@click.option("--seed", type=int, default=0, show_default=True, help="Payload and simulation seed.")
@radio_options
@json_option
@handle_errors
def link(tx_names: tuple[str, ...], rx_name: str, num_name: str, link_specs: tuple[str, ...], slots: int,
         lo_hz: float | None, tx_gain_db: float | None, rx_gain_db: float | None, backoff_db: float, wola_ramp: int,
         seed: int, config_path: str | None, sim_config: str | None, as_json: bool) -> None:
    """Run SLOTS OFDM slots carrying the given links from the TX radio(s) to the RX radio; print per link the
    mean SINR, EVM, BLER and throughput (bits/slot and Mbit/s)."""
    try:
        num = numerology(num_name)
    except ValueError as e:
        raise BadInput(f"--numerology: {e}") from None
    txs = list(dict.fromkeys(tx_names))
    per_tx: dict[str, list[Link]] = {t: [] for t in txs}
    for i, spec in enumerate(link_specs):
        lnk, tx = parse_link_spec(spec, i, num.n_rb, txs)
        per_tx[tx].append(lnk)
    ids = [l.id for ls in per_tx.values() for l in ls]
    if len(set(ids)) != len(ids):
        raise BadInput(f"--link ids must be unique, got {ids}")
    plans = []
    for tx_id, t in enumerate(txs):
        if per_tx[t]:
            try:
                plans.append((t, SlotPlan(num, tuple(per_tx[t]), tx_id=tx_id, backoff_db=backoff_db,
                                          wola_ramp=wola_ramp, payload_seed=seed)))
            except ValueError as e:
                raise BadInput(f"--link/--tx {t}: {e}") from None
    config = load_config(config_path, sim_config=sim_config)
    with open_radios(txs + [rx_name], config, seed=seed) as radios:
        transmitters = [(radios[t], p) for t, p in plans]
        result = run_link(transmitters, radios[rx_name], slots, lo_hz=lo_hz, tx_gain_db=tx_gain_db,
                          rx_gain_db=rx_gain_db,
                          iterate=lambda it: progress(it, total=slots, desc="slots", enabled=not as_json))
    configs = {l.id: l.as_dict() for _, p in plans for l in p.links}
    out = {"numerology": num.name, "tx": txs, "rx": rx_name, "slots": slots, "sample_rate_hz": num.sample_rate_hz,
           "clipped_samples": result.clipped_samples,
           "links": {lid: {**s.as_dict(), "config": configs[lid]} for lid, s in result.stats.items()}}
    emit(out, as_json, _human)
    failures = [acquisition_failure(reports, f"{t}->{rx_name}") for t, reports in _reports_by_tx(plans, result.reports)]
    failures = [f for f in failures if f]
    if failures:
        for line in failures:
            click.echo(f"Error: {line}", err=True)
        raise SystemExit(EXIT_RADIO_FAULT)


def _reports_by_tx(plans: list[tuple[str, SlotPlan]], reports: list[list[SlotReport]]
                   ) -> list[tuple[str, list[SlotReport]]]:
    """Every transmitter's slot reports (``run_link`` orders each slot's reports as ``plans``)."""
    return [(t, [slot[i] for slot in reports]) for i, (t, _) in enumerate(plans)]
