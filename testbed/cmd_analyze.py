"""``testbed analyze FILE``: cell search on a SigMF recording (LTE PSS/SSS/CRS, or NR SSB)."""

from __future__ import annotations

from typing import Any

import click

from testbed.cliutil import emit, handle_errors, json_option


def _human(r: dict[str, Any]) -> None:
    click.echo(f"{r['file']}: {r['samples']} samples at {r['sample_rate_hz'] / 1e6:g} MS/s "
               f"({1e3 * r['duration_s']:.2f} ms)")
    if r["rat"] == "lte":
        click.echo(f"LTE cell id {r['cell_id']} (N_ID1 {r['n_id1']}, N_ID2 {r['n_id2']}), frame starts at sample "
                   f"{r['frame_start']}, CFO {r['cfo_hz']:+.1f} Hz")
        click.echo(f"PSS correlation {r['pss_metric']:.3f}, SSS margin {r['sss_margin_db']:.1f} dB, "
                   f"occupied bandwidth {r['occupied_bw_hz'] / 1e6:.3f} MHz")
        click.echo(f"CRS (central 6 RB, {r['crs_symbols']} symbols): RS EVM {r['rs_evm_percent']:.2f} % "
                   f"(SNR {r['rs_snr_db']:.1f} dB), channel {min(r['channel_db']):.1f} to "
                   f"{max(r['channel_db']):.1f} dB across 72 subcarriers")
    else:
        click.echo(f"NR cell id {r['cell_id']} (N_ID1 {r['n_id1']}, N_ID2 {r['n_id2']}), SSB SCS "
                   f"{r['scs_hz'] / 1e3:g} kHz, PSS at sample {r['pss_start']}, CFO {r['cfo_hz']:+.1f} Hz")
        click.echo(f"PSS correlation {r['pss_metric']:.3f}, SSS margin {r['sss_margin_db']:.1f} dB")


@click.command("analyze")
@click.argument("file", type=click.Path())
@click.option("--rat", type=click.Choice(["auto", "lte", "nr"]), default="auto", show_default=True,
              help="Which cell search to run (auto: LTE, then NR when no LTE cell stands out).")
@click.option("--max-cfo", "max_cfo_hz", type=click.FloatRange(0, 1e6), default=22.5e3, show_default=True,
              help="Largest |CFO| the LTE search tries (Hz).")
@json_option
@handle_errors
def analyze(file: str, rat: str, max_cfo_hz: float, as_json: bool) -> None:
    """Cell search on the SigMF recording FILE: cell id, frame timing, CFO, CRS channel estimate and
    reference-signal EVM (LTE), or SSB cell id (NR)."""
    from radio.ofdm.cellsearch import analyze_recording
    from radio.errors import RecordingError

    try:
        result = analyze_recording(file, rat=rat, max_cfo_hz=max_cfo_hz)
    except RecordingError:
        raise
    except ValueError as e:
        # The file was fine but holds no cell: not the user's input error.
        raise click.ClickException(str(e)) from None
    emit(result, as_json, _human)
