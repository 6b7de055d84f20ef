"""testbed bench lists the benchmarks of the checkout and refuses unknown names."""

import json

from click.testing import CliRunner

from testbed.cli import main


def test_bench_lists_benchmarks_and_names_the_allowed_ones_on_a_bad_name():
    runner = CliRunner()
    listed = runner.invoke(main, ["bench", "--list"])
    assert listed.exit_code == 0
    names = listed.output.split()
    assert {"ofdm", "sim_air", "run", "calibrate"} <= set(names)
    as_json = runner.invoke(main, ["bench", "--list", "--json"])
    assert json.loads(as_json.output.strip().splitlines()[-1])["benchmarks"] == names
    bad = runner.invoke(main, ["bench", "nosuch"])
    assert bad.exit_code == 2
    assert "nosuch" in bad.output and "ofdm" in bad.output
