"""testbed bench lists the benchmarks of the checkout and refuses unknown names."""

import json

from click.testing import CliRunner

from testbed.cli import main


def test_bench_lists_benchmarks_and_names_the_allowed_ones_on_a_bad_name():
    runner = CliRunner()
    listed = runner.invoke(main, ["bench", "--list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    names = [line.split()[0] for line in lines]
    assert {"ofdm", "sim_air", "run", "calibrate"} <= set(names)
    as_json = runner.invoke(main, ["bench", "--list", "--json"])
    result = json.loads(as_json.output.strip().splitlines()[-1])
    assert result["benchmarks"] == names
    # One line per benchmark with the first sentence of its module docstring.
    assert result["descriptions"]["sim_air"].startswith("Throughput of the simulated air: received samples")
    assert all(line.split(None, 1)[1] == result["descriptions"][n] for line, n in zip(lines, names))
    assert all(0 < len(d) <= 104 for d in result["descriptions"].values())
    bad = runner.invoke(main, ["bench", "nosuch"])
    assert bad.exit_code == 2
    assert "nosuch" in bad.output and "ofdm" in bad.output
