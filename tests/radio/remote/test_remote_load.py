"""Load: 16 simulated radio servers on loopback, one controller receiving from all of them in turn. No call is lost
(every call answers with all its samples), every stream is contiguous (no sample dropped or repeated between calls)
and the first radio's samples are bit-identical to the same radio simulated locally."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from _remote_testlib import insecure_client, served, sim_spy
from radio.sim import SimulatedAir

N_SERVERS = 16
SAMPLES = 1920  # 1 ms at 1.92 MS/s
RATE = 1.92e6


def run_load(n_servers: int, calls: int) -> None:
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(served(sim_spy(f"sim{i}", seed=100 + i))) for i in range(n_servers)]
        radios = [stack.enter_context(insecure_client(s.endpoint, f"r{i}", timeout_s=30.0))
                  for i, s in enumerate(servers)]
        replica = SimulatedAir(seed=100).radio("sim0")  # what radio 0 must deliver, simulated here
        for r in (*radios, replica):
            r.configure(lo_hz=2.44e9, rate_sps=RATE, rx_gain_db=40.0)
        last_t = [None] * n_servers
        for k in range(calls):
            expected = replica.receive(SAMPLES).samples if k % 10 == 0 else None
            if expected is None:
                replica.receive(SAMPLES)
            for i, r in enumerate(radios):
                samples, meta = r.receive(SAMPLES)
                assert samples.shape == (SAMPLES,) and meta.overflow_count == 0
                if last_t[i] is not None:
                    assert meta.timestamp_s == pytest.approx(last_t[i] + SAMPLES / RATE, abs=0.1 / RATE)
                last_t[i] = meta.timestamp_s
                if i == 0 and expected is not None:
                    assert np.array_equal(samples.view(np.uint64), expected.view(np.uint64))
        for s in servers:
            assert s.stats.receives == calls and s.stats.errors == 0 and s.stats.malformed == 0
        replica.close()


def test_sixteen_servers_hundred_calls_each_no_loss():
    run_load(N_SERVERS, 100)


@pytest.mark.slow
def test_sixteen_servers_thousand_calls_each_no_loss():
    run_load(N_SERVERS, 1000)
