"""Fault injection (radio/sim/faults.py): each fault on its schedule, from the testbed config too."""

from __future__ import annotations

import numpy as np
import pytest

from radio import RadioConfigError, RadioDisconnected, RadioOverflow, RadioTimeout
from radio.sim import SimulatedAir
from radio.sim.faults import FaultPlan, FaultyRadio
from testbed.inventory import ConfigError, load_config, open_radios

RATE = 1.92e6


def pair(plan: FaultPlan, seed: int = 4):
    """A faulty simulated radio and an identical healthy one on an identical air, both configured."""
    faulty = FaultyRadio(SimulatedAir(seed=seed).radio("sim0"), plan)
    healthy = SimulatedAir(seed=seed).radio("sim0")
    for r in (faulty, healthy):
        r.configure(rate_sps=RATE)
    return faulty, healthy


def test_disconnect_after_n_calls_is_permanent():
    faulty, _ = pair(FaultPlan(disconnect_after=3))  # configure was call 1
    faulty.receive(16)
    faulty.receive(16)
    for _ in range(3):
        with pytest.raises(RadioDisconnected, match="injected after 3 calls"):
            faulty.receive(16)
    with pytest.raises(RadioDisconnected):
        faulty.configure(lo_hz=2.42e9)
    faulty.close()
    assert faulty.injected["disconnect"] == 1


def test_a_timeout_consumes_no_samples():
    faulty, healthy = pair(FaultPlan(timeout_every=2))
    n = 256
    first = faulty.receive(n).samples
    with pytest.raises(RadioTimeout, match="injected timeout, receive 2"):
        faulty.receive(n)
    third = faulty.receive(n).samples
    assert np.array_equal(first, healthy.receive(n).samples)
    assert np.array_equal(third, healthy.receive(n).samples)  # the stream goes on where it was
    assert faulty.injected["timeout"] == 1


def test_overflow_leaves_a_gap_of_exactly_one_buffer():
    faulty, _ = pair(FaultPlan(overflow_every=2))
    n = 480
    t1 = faulty.receive(n).meta.timestamp_s
    with pytest.raises(RadioOverflow, match="480 samples lost"):
        faulty.receive(n)
    t3 = faulty.receive(n).meta.timestamp_s
    assert t3 == pytest.approx(t1 + 2 * n / RATE)


@pytest.mark.parametrize("kind", ["corrupt", "nan"])
def test_corrupted_and_nan_buffers_differ_only_in_the_marked_run(kind):
    faulty, healthy = pair(FaultPlan(**{f"{kind}_every": 2}, seed=9))
    n = 1024
    for k in range(1, 5):
        got, meta = faulty.receive(n)
        ref = healthy.receive(n).samples
        if k % 2:
            assert np.array_equal(got, ref) and "injected_fault" not in meta.extra
            continue
        start, stop = meta.extra["injected_span"]
        assert meta.extra["injected_fault"] == kind and 0 <= start < stop <= n
        assert np.array_equal(got[:start], ref[:start]) and np.array_equal(got[stop:], ref[stop:])
        bad = got[start:stop]
        if kind == "nan":
            assert np.all(np.isnan(bad))
        else:
            assert np.all(np.isfinite(bad)) and np.all(np.abs(bad.view(np.float32)) <= 1.0)
            assert not np.array_equal(bad, ref[start:stop])


def test_fault_plan_errors_name_the_key_and_the_allowed_values():
    with pytest.raises(RadioConfigError, match="unknown key 'disconect_after'; allowed: disconnect_after, down_for, "
                                               "timeout_every"):
        FaultPlan.from_table({"disconect_after": 3})
    with pytest.raises(RadioConfigError, match="faults.nan_every = -1; allowed: an integer from 0"):
        FaultPlan.from_table({"nan_every": -1})
    with pytest.raises(RadioConfigError, match="allowed: a table"):
        FaultPlan.from_table(5)


def test_faults_from_the_testbed_config(tmp_path):
    p = tmp_path / "testbed.toml"
    p.write_text('[safety]\nallowed_bands = [[2.4e9, 2.5e9]]\nmax_tx_gain_db = 0\n'
                 '[radios.sim0]\ndriver = "sim"\nfaults = {disconnect_after = 2, nan_every = 1}\n'
                 '[radios.lb0]\ndriver = "loopback"\nfaults = {timeout_every = 1}\n')
    cfg = load_config(p)
    with open_radios(["sim0", "sim1", "lb0"], cfg) as radios:
        assert isinstance(radios["sim0"], FaultyRadio) and not isinstance(radios["sim1"], FaultyRadio)
        assert radios["sim0"].hidden_truth()["params"] is not None  # the simulated radio's own API still works
        radios["sim0"].configure(rate_sps=RATE)
        assert np.isnan(radios["sim0"].receive(64).samples).any()
        with pytest.raises(RadioDisconnected):
            radios["sim0"].receive(64)
        with pytest.raises(RadioTimeout):
            radios["lb0"].receive(64)
    p.write_text('[radios.sim0]\ndriver = "sim"\nfaults = {overflow = 3}\n')
    with pytest.raises(ConfigError, match=r"\[radios.sim0\] faults: unknown key 'overflow'; allowed: "
                                          r"disconnect_after"):
        load_config(p)


def test_an_outage_ends_after_down_for_refused_calls():
    """disconnect_after + down_for: the radio refuses exactly down_for calls, then answers again for good."""
    from radio.loopback import LoopbackRadio

    radio = FaultyRadio(LoopbackRadio("loop0"), FaultPlan(disconnect_after=2, down_for=3))
    outcomes = []
    for _ in range(12):
        try:
            outcomes.append(radio.receive(16).samples.size == 16)
        except RadioDisconnected:
            outcomes.append(False)
    first_down = outcomes.index(False)
    assert outcomes[first_down:first_down + 3] == [False] * 3
    assert all(outcomes[first_down + 3:]) and all(outcomes[:first_down])
