"""Throughput of the batched DTN against a per-environment Python/numpy loop, measured in the same run.

    .venv/bin/python bench/bench_twin.py [--steps 50] [--threads 1] [--no-sionna] [--out results.json]

Prints one JSON object:

* ``env_steps``: for B in {1, 64, 1024} at K = 4, N = 20 (the paper's setting), env-steps/s and
  link-slots/s of :class:`twin.LinkAdaptationNetwork` and of ``ReferenceLoop``, a literal per-environment,
  per-link implementation of the same slot (Algorithm 1 PF, eq. 14 SINR, eqs. 15-17 goodput, PF update,
  Gauss-Markov fading), and their ratio. The reference is timed on min(B, 16) environments and scaled
  (its cost is linear in B). ``reference_check`` is the largest reward difference between the two on the
  same slot (they implement the same equations, so it should be at float32 round-off).
* ``link_slots``: link-slots/s of the twin for B x N = 1 x 20, 64 x 100 and 16 x 1000 (R = 8 RRBs, so
  most links are idle in a slot, as PF intends).
* ``sionna_sys``: the twin's whole slot against Sionna's PF scheduler + OLLA + PHY abstraction
  (``sionna.sys``) on the same links, for the same three shapes (skipped when Sionna is missing).
* ``decision_latency_ms``: Algorithm 3's per-slot decision on one CPU thread, nearest-AP clustering + PF
  + one forward pass of the paper's shared DQN (6 -> 64 -> 128 -> 48, tanh) for every link, for
  N = 20, 100, 1000 (median of repeated runs), beside the paper's 12.5 ms (N = 20) and 15.1 ms (N = 100).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import numpy as np
import torch

from benchlib import emit_result
from twin import DTNConfig, LinkAdaptationNetwork
from twin.geometry import nearest_ap
from twin.scheduling import proportional_fair_schedule


class ReferenceLoop:
    """The DTN slot written per environment and per link with Python scalars and numpy (no batching)."""

    def __init__(self, config: DTNConfig, state: dict[str, np.ndarray], rho: float, seed: int = 0) -> None:
        self.cfg = config
        self.rho = rho
        self.rng = np.random.default_rng(seed)
        self.large = state["large_scale_gain"].astype(np.float64)          # [B, N, K]
        self.fading = state["fading"].astype(np.complex128)               # [B, N, K]
        self.cluster = state["cluster"].astype(int)                       # [B, N]
        self.average = state["average_throughput"].astype(np.float64)     # [B, N]
        self.rrb = state["rrb"].astype(int)                               # [B, N]
        self.levels_w = [10 ** ((p - 30) / 10) for p in config.power_set_dbm]

    @staticmethod
    def _q(x: float) -> float:
        return 0.5 * math.erfc(x / math.sqrt(2))

    def _ser(self, gamma: float, order: int) -> float:
        if order == 2:
            return self._q(math.sqrt(2 * gamma))
        p = 2 * (1 - 1 / math.sqrt(order)) * self._q(math.sqrt(3 * gamma / (order - 1)))
        return 2 * p - p * p

    def step_env(self, b: int, action: np.ndarray) -> float:
        cfg = self.cfg
        num_links, num_aps = cfg.num_devices, cfg.num_aps
        gain = self.large[b] * np.abs(self.fading[b]) ** 2
        rrb = self.rrb[b]
        power = [0.0] * num_links
        occupant = [-1] * cfg.num_rrbs
        ap_total = [0.0] * num_aps
        for n in range(num_links):
            if rrb[n] >= 0:
                power[n] = self.levels_w[action[n] // 12]
                occupant[rrb[n]] = n
                ap_total[self.cluster[b, n]] += power[n]
        k2 = cfg.kappa_t ** 2 + cfg.kappa_r ** 2
        acir = {1: 10 ** (-cfg.acir1_db / 10), 2: 10 ** (-cfg.acir2_db / 10)}
        reward = 0.0
        achieved = [0.0] * num_links
        for n in range(num_links):
            r = rrb[n]
            if r < 0:
                continue
            k = self.cluster[b, n]
            g = gain[n, k]
            hwi = (1 + cfg.phi_hwi) * k2 * ap_total[k] / cfg.rrbs_per_ap * g
            aci = 0.0
            for offset in (-2, -1, 1, 2):
                neighbour = r + offset
                if 0 <= neighbour < cfg.num_rrbs and neighbour % num_aps != k and occupant[neighbour] >= 0:
                    aci += power[occupant[neighbour]] * gain[n, neighbour % num_aps] * acir[abs(offset)]
            aci *= 1 + cfg.phi_aci
            sinr = power[n] * g / (hwi + aci + cfg.noise_power_w)
            modulation, code = (action[n] % 12) // 3, action[n] % 3
            order = (2, 4, 16, 64)[modulation]
            gamma = sinr * 10 ** (cfg.coding_gain_db[code] / 10)
            ber = min(self._ser(gamma, order) / math.log2(order), 0.5)
            per = -math.expm1(cfg.packet_bits * math.log1p(-ber))
            rate = cfg.rrb_symbol_rate * math.log2(order) * (0.5, 0.75, 5 / 6)[code] * (1 - per) / 1e6
            achieved[n] = rate * 1e6 / cfg.rrb_symbol_rate
            reward += rate
        for n in range(num_links):
            self.average[b, n] = (1 - cfg.pf_alpha) * self.average[b, n] + cfg.pf_alpha * achieved[n]
        innovation = (self.rng.standard_normal(self.fading[b].shape)
                      + 1j * self.rng.standard_normal(self.fading[b].shape)) / math.sqrt(2)
        self.fading[b] = self.rho * self.fading[b] + math.sqrt(1 - self.rho ** 2) * innovation
        gain = self.large[b] * np.abs(self.fading[b]) ** 2
        p_max_w = 10 ** ((cfg.p_max_dbm - 30) / 10)
        metric = [math.log2(1 + p_max_w * gain[n, self.cluster[b, n]] / cfg.noise_power_w)
                  / max(self.average[b, n], 1e-9) for n in range(num_links)]
        new_rrb = [-1] * num_links
        for k in range(num_aps):                                           # Algorithm 1
            served: set[int] = set()
            for j in range(cfg.rrbs_per_ap):
                best, best_value = -1, -math.inf
                for n in range(num_links):
                    if self.cluster[b, n] == k and n not in served and metric[n] > best_value:
                        best, best_value = n, metric[n]
                if best < 0:
                    break
                served.add(best)
                new_rrb[best] = k + num_aps * j
        self.rrb[b] = new_rrb
        return reward

    def step(self, action: np.ndarray) -> np.ndarray:
        return np.array([self.step_env(b, action[b]) for b in range(action.shape[0])])


def _state_of(env: LinkAdaptationNetwork, envs: int) -> dict[str, np.ndarray]:
    return {"large_scale_gain": env.large_scale_gain[:envs].double().numpy(),
            "fading": env.fading[:envs].numpy(), "cluster": env.cluster[:envs].numpy(),
            "average_throughput": env.average_throughput[:envs].double().numpy(), "rrb": env.rrb[:envs].numpy()}


def _time(fn, repeats: int) -> float:
    fn()                                                                   # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_env_steps(batch_sizes: list[int], steps: int) -> list[dict]:
    out = []
    cfg = DTNConfig()
    for batch in batch_sizes:
        env = LinkAdaptationNetwork(cfg, batch_size=batch)
        env.reset(0)
        gen = torch.Generator().manual_seed(0)
        action = torch.randint(0, cfg.num_actions, (batch, cfg.num_devices), generator=gen)
        ref_envs = min(batch, 16)
        reference = ReferenceLoop(cfg, _state_of(env, ref_envs), env.fading_rho)
        # Same slot, same equations: the reference's first reward must match the twin's.
        first_twin = env.step(action).reward[:ref_envs].double().numpy()
        first_ref = reference.step(action[:ref_envs].numpy())
        check = float(np.max(np.abs(first_twin - first_ref)))
        twin_s = _time(lambda: env.step(action), steps)
        ref_s = _time(lambda: reference.step(action[:ref_envs].numpy()), max(3, steps // 10)) * batch / ref_envs
        out.append({"B": batch, "N": cfg.num_devices, "K": cfg.num_aps,
                    "twin_env_steps_per_s": batch / twin_s, "twin_link_slots_per_s": batch * cfg.num_devices / twin_s,
                    "reference_env_steps_per_s": batch / ref_s,
                    "reference_link_slots_per_s": batch * cfg.num_devices / ref_s,
                    "speedup": ref_s / twin_s, "reference_check_max_abs_reward_diff_mbps": check})
    return out


def bench_link_slots(shapes: list[tuple[int, int]], steps: int) -> list[dict]:
    out = []
    for batch, links in shapes:
        env = LinkAdaptationNetwork(DTNConfig(num_devices=links), batch_size=batch)
        env.reset(0)
        action = torch.randint(0, 48, (batch, links), generator=torch.Generator().manual_seed(0))
        seconds = _time(lambda: env.step(action), steps)
        out.append({"B": batch, "N": links, "link_slots_per_s": batch * links / seconds, "step_ms": seconds * 1e3})
    return out


def bench_decision_latency(link_counts: list[int], repeats: int) -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    try:
        for links in link_counts:
            cfg = DTNConfig(num_devices=links)
            env = LinkAdaptationNetwork(cfg, batch_size=1)
            observation = env.reset(0)
            dqn = torch.nn.Sequential(torch.nn.Linear(6, 64), torch.nn.Tanh(), torch.nn.Linear(64, 128), torch.nn.Tanh(),
                                      torch.nn.Linear(128, cfg.num_actions))
            metric = torch.rand(1, links)

            @torch.no_grad()
            def decide():
                cluster, _ = nearest_ap(env.device_xy, env.ap_xy)
                proportional_fair_schedule(metric, cluster, cfg.num_aps, cfg.rrbs_per_ap)
                return dqn(observation).argmax(-1)

            for _ in range(20):
                decide()
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                decide()
                samples.append(time.perf_counter() - start)
            paper = {20: 12.5, 100: 15.1}.get(links)
            out.append({"N": links, "median_ms": statistics.median(samples) * 1e3,
                        "p90_ms": sorted(samples)[int(0.9 * len(samples))] * 1e3, "paper_table4_ms": paper})
    finally:
        torch.set_num_threads(threads)
    return out


def bench_sionna(shapes: list[tuple[int, int]], steps: int) -> list[dict] | dict:
    """The twin's full slot against Sionna's ``sionna.sys`` PF scheduler + OLLA + PHY abstraction.

    Equal work: the same B x N links in K sectors (num_ut = N / K, num_freq_res = R / K, one scheduling
    symbol, 12 x 14 REs per RRB). Sionna gets each link's SINR precomputed (it has no ACI/HWI model), so
    the twin additionally pays for eq. 14, the fading update and the observation.
    """
    try:
        import sionna.sys as sionna_sys
    except Exception as error:                                             # noqa: BLE001 - optional peer
        return {"skipped": f"sionna.sys unavailable: {error!r}"}
    out = []
    for batch, links in shapes:
        cfg = DTNConfig(num_devices=links)
        env = LinkAdaptationNetwork(cfg, batch_size=batch)
        env.reset(0)
        action = torch.randint(0, 48, (batch, links), generator=torch.Generator().manual_seed(0))
        twin_s = _time(lambda: env.step(action), steps)

        sectors, users, resources = batch * cfg.num_aps, links // cfg.num_aps, cfg.rrbs_per_ap
        scheduler = sionna_sys.PFSchedulerSUMIMO(users, resources, 1, batch_size=sectors, precision="single")
        phy = sionna_sys.PHYAbstraction(precision="single")
        olla = sionna_sys.OuterLoopLinkAdaptation(phy, num_ut=users, batch_size=sectors, bler_target=0.1,
                                                  precision="single")
        sinr = 10 ** (torch.rand(sectors, users) * 3)                      # 0..30 dB
        state = {"rate": torch.zeros(sectors, users), "harq": torch.full((sectors, users), -1, dtype=torch.int32),
                 "sinr_eff": sinr.clone()}

        def sionna_slot():
            achievable = torch.log2(1 + sinr).view(sectors, 1, 1, users).expand(sectors, 1, resources, users)
            scheduled = scheduler(state["rate"], achievable)
            allocated = scheduled.sum(dim=(-4, -3, -1)).to(torch.int32) * (12 * 14)
            mcs = olla(allocated, state["harq"], state["sinr_eff"])
            bits, harq, sinr_eff, _, _ = phy(mcs, sinr_eff=sinr, num_allocated_re=allocated)
            state.update(rate=bits.to(torch.float32), harq=harq.to(torch.int32), sinr_eff=sinr_eff)

        sionna_s = _time(sionna_slot, max(3, steps // 5))
        out.append({"B": batch, "N": links, "twin_slot_ms": twin_s * 1e3, "sionna_slot_ms": sionna_s * 1e3,
                    "speedup": sionna_s / twin_s})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the same single core the Python reference uses)")
    parser.add_argument("--no-sionna", action="store_true", help="skip the sionna.sys comparison")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {
        "benchmark": "twin",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "env_steps": bench_env_steps([1, 64, 1024], args.steps),
        "link_slots": bench_link_slots([(1, 20), (64, 100), (16, 1000)], args.steps),
        "decision_latency_ms": bench_decision_latency([20, 100, 1000], 200),
    }
    if not args.no_sionna:
        result["sionna_sys"] = bench_sionna([(1, 20), (64, 100), (16, 1000)], args.steps)
    emit_result(result, args.out, indent=None)


if __name__ == "__main__":
    main()
