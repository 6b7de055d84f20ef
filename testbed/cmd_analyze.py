"""``testbed analyze FILE``: cell search on a SigMF recording (LTE PSS/SSS/CRS, or NR SSB anywhere in the band).

A cell is reported (exit 0, ``status: "cell"``) only when its PSS and SSS clear thresholds set for a false-alarm
probability of 1 % per recording; otherwise the command prints the best candidate's numbers and exits 2
(``status: "no cell"`` in the ``--json`` object).
"""

from __future__ import annotations

from typing import Any

import click

from testbed.cliutil import BadInput, emit, handle_errors, json_option


def _human(r: dict[str, Any]) -> None:
    click.echo(f"{r['file']}: {r['samples']} samples at {r['sample_rate_hz'] / 1e6:g} MS/s "
               f"({1e3 * r['duration_s']:.2f} ms)")
    if r["rat"] == "lte":
        click.echo(f"LTE cell id {r['cell_id']} (N_ID1 {r['n_id1']}, N_ID2 {r['n_id2']}), frame starts at sample "
                   f"{r['frame_start']}, CFO {r['cfo_hz']:+.1f} Hz")
        click.echo(f"PSS correlation {r['pss_metric']:.3f} (threshold {r['pss_threshold']:.3f}, "
                   f"{r['pss_windows']} PSS), SSS score {r['sss_metric']:.1f} (threshold {r['sss_threshold']:.1f}), "
                   f"SSS margin {r['sss_margin_db']:.1f} dB, occupied bandwidth {r['occupied_bw_hz'] / 1e6:.3f} MHz")
        click.echo(f"CRS (central 6 RB, {r['crs_symbols']} symbols): RS EVM {r['rs_evm_percent']:.2f} % "
                   f"(SNR {r['rs_snr_db']:.1f} dB), channel {min(r['channel_db']):.1f} to "
                   f"{max(r['channel_db']):.1f} dB across 72 subcarriers")
    else:
        click.echo(f"NR cell id {r['cell_id']} (N_ID1 {r['n_id1']}, N_ID2 {r['n_id2']}), SSB SCS "
                   f"{r['scs_hz'] / 1e3:g} kHz, SSB centre {r['ssb_offset_hz'] / 1e3:+.3f} kHz from the recording "
                   f"centre, PSS at sample {r['pss_start']}")
        click.echo(f"PSS correlation {r['pss_metric']:.3f} (threshold {r['pss_threshold']:.3f}), SSS score "
                   f"{r['sss_metric']:.1f} (threshold {r['sss_threshold']:.1f}), SSS margin "
                   f"{r['sss_margin_db']:.1f} dB")
    click.echo(f"thresholds set for a false-alarm probability of {100 * r['false_alarm_per_recording']:g} % "
               "per recording")


@click.command("analyze")
@click.argument("file", type=click.Path())
@click.option("--rat", type=click.Choice(["auto", "lte", "nr"]), default="auto", show_default=True,
              help="Which cell search to run (auto: LTE, then NR when no LTE cell is found).")
@click.option("--max-cfo", "max_cfo_hz", type=click.FloatRange(0, 200e3), default=22.5e3, show_default=True,
              help="Largest |CFO| the LTE search tries (Hz). The NR search covers the whole recorded band.")
@json_option
@handle_errors
def analyze(file: str, rat: str, max_cfo_hz: float, as_json: bool) -> None:
    """Cell search on the SigMF recording FILE: cell id, frame timing, CFO, CRS channel estimate and
    reference-signal EVM (LTE), or SSB cell id and frequency (NR). Exits 2 when no cell clears the 1 %
    false-alarm thresholds."""
    from radio.ofdm.cellsearch import NoCellFound, analyze_recording

    try:
        result = analyze_recording(file, rat=rat, max_cfo_hz=max_cfo_hz)
    except NoCellFound as e:
        if as_json:
            emit(e.result, True)
        raise BadInput(str(e)) from None
    emit(result, as_json, _human)
