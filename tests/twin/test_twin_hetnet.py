"""HetNet mode: rate model (OMA time sharing, NOMA with SIC) on hand cases, metrics and mobility invariants."""

import math

import pytest
import torch

from twin import HetNetAction, HetNetConfig, HetNetwork, jain_index
from twin.hetnet import hetnet_rates


def test_jain_index_extremes():
    assert float(jain_index(torch.ones(10))) == pytest.approx(1.0)
    assert float(jain_index(torch.tensor([5.0, 0, 0, 0]))) == pytest.approx(0.25)
    assert float(jain_index(torch.zeros(3))) == 1.0
    assert float(jain_index(torch.tensor([1.0, 3.0]))) == pytest.approx(16 / (2 * 10))


def _two_cell_case():
    # 2 BSs, 2 blocks, 3 UEs. UE0, UE1 on BS0 block 0; UE2 on BS1 block 0.
    gain = torch.tensor([[[1e-8, 1e-10], [4e-9, 2e-10], [3e-10, 5e-9]]], dtype=torch.float64)
    association = torch.tensor([[0, 0, 1]])
    block = torch.tensor([[0, 0, 0]])
    power = torch.tensor([[0.2, 0.6, 0.5]], dtype=torch.float64)
    return gain, association, block, power


def test_oma_time_sharing_hand_case():
    gain, association, block, power = _two_cell_case()
    noise, bw = 1e-12, 1e6
    out = hetnet_rates(gain, association, block, power, 2, 2, bw, noise, noma=False)
    bs0 = (0.2 + 0.6) / 2                              # BS0 radiates the time-average of its two UEs
    i0, i1, i2 = 1e-10 * 0.5, 2e-10 * 0.5, 3e-10 * bs0
    sinr = [0.2 * 1e-8 / (i0 + noise), 0.6 * 4e-9 / (i1 + noise), 0.5 * 5e-9 / (i2 + noise)]
    capacity = [0.5 * bw * math.log2(1 + sinr[0]) / 1e6, 0.5 * bw * math.log2(1 + sinr[1]) / 1e6,
                bw * math.log2(1 + sinr[2]) / 1e6]
    assert out["sinr"][0].tolist() == pytest.approx(sinr, rel=1e-12)
    assert out["capacity_mbps"][0].tolist() == pytest.approx(capacity, rel=1e-12)


def test_noma_sic_hand_case():
    gain, association, block, power = _two_cell_case()
    noise, bw = 1e-12, 1e6
    out = hetnet_rates(gain, association, block, power, 2, 2, bw, noise, noma=True)
    # UE0 (stronger to BS0) cancels UE1; UE1 sees UE0's signal through its own channel.
    i0, i1, i2 = 1e-10 * 0.5, 2e-10 * 0.5, 3e-10 * 0.8
    sinr = [0.2 * 1e-8 / (i0 + noise), 0.6 * 4e-9 / (4e-9 * 0.2 + i1 + noise), 0.5 * 5e-9 / (i2 + noise)]
    assert out["sinr"][0].tolist() == pytest.approx(sinr, rel=1e-12)
    assert out["share"].eq(1).all()


def _play(env, steps=5, seed=0):
    obs = env.reset(seed)
    cfg = env.config
    gen = torch.Generator().manual_seed(1)
    results = []
    for _ in range(steps):
        action = HetNetAction(torch.randint(0, cfg.num_bs, (env.batch_size, cfg.num_ues), generator=gen),
                              torch.randint(0, cfg.num_blocks, (env.batch_size, cfg.num_ues), generator=gen),
                              torch.rand(env.batch_size, cfg.num_ues, generator=gen, dtype=env.dtype))
        results.append((action, env.step(action)))
    return obs, results


@pytest.mark.parametrize("noma, traffic", [(False, "bitstream"), (True, "bitstream"), (False, "bursty")])
def test_metrics_are_consistent(noma, traffic):
    cfg = HetNetConfig(noma=noma, traffic=traffic, num_ues=30, num_small_cells=3, num_subchannels=10)
    env = HetNetwork(cfg, batch_size=4, dtype=torch.float64)
    _, results = _play(env)
    for action, step in results:
        info = step.info
        total = step.throughput.sum(-1)
        assert torch.allclose(info["sum_throughput_mbps"], total)
        assert torch.allclose(info["spectral_efficiency"], total * 1e6 / cfg.bandwidth_hz)
        assert torch.allclose(info["energy_efficiency_mbit_per_j"], total / info["consumed_power_w"])
        assert torch.all(info["consumed_power_w"] >= cfg.mbs_static_power_w + 3 * cfg.sbs_static_power_w)
        assert torch.all((info["jain_index"] >= 1 / cfg.num_ues - 1e-12) & (info["jain_index"] <= 1 + 1e-12))
        assert torch.allclose(info["qos_non_compliance"], (step.throughput < env.min_rate).double().mean(-1))
        expected = total / cfg.throughput_scale_mbps - cfg.fairness_weight * (1 - info["jain_index"]) \
            - cfg.handover_weight * info["handovers"] / cfg.num_ues
        assert torch.allclose(step.reward, expected)
        assert torch.all(step.throughput <= info["capacity_mbps"] + 1e-12)
    if traffic == "bursty":
        assert torch.all(env.buffer_bits >= 0)


def test_handovers_count_association_changes():
    env = HetNetwork(HetNetConfig(num_ues=20), batch_size=2, dtype=torch.float64)
    env.reset(0)
    attach = env.association.clone()
    split = torch.full((2, 20), 0.5, dtype=torch.float64)
    step = env.step(HetNetAction(attach, torch.zeros_like(attach), split))
    assert step.info["handovers"].tolist() == [0.0, 0.0]
    moved = attach.clone()
    moved[0, :3] = (moved[0, :3] + 1) % env.config.num_bs
    step = env.step(HetNetAction(moved, torch.zeros_like(attach), split))
    assert step.info["handovers"].tolist() == [3.0, 0.0]
    assert step.info["handover_rate"][0].item() == pytest.approx(3 / 20)


def test_mobility_sensors_static_and_speed_bounded():
    cfg = HetNetConfig(num_ues=40)
    env = HetNetwork(cfg, batch_size=3, dtype=torch.float64)
    env.reset(0)
    for _ in range(20):
        before = env.ue_xy.clone()
        env.step(HetNetAction(env.association, torch.zeros_like(env.association),
                              torch.ones(3, 40, dtype=torch.float64)))
        moved = (env.ue_xy - before).norm(dim=-1)
        assert torch.all(moved[~env.is_mobile] == 0)
        # Walkers and group members move at most v TS per slot (reflection at the edges is 1-Lipschitz).
        assert torch.all(moved <= cfg.ue_speed_mps * cfg.slot_duration_s + 1e-9)
        assert torch.all((env.ue_xy >= 0) & (env.ue_xy <= cfg.area_side_m))
    walkers = env.is_mobile & ~env.in_group
    assert walkers.any() and env.in_group.any() and (~env.is_mobile).any()


def test_observation_layout():
    cfg = HetNetConfig(num_ues=20, num_small_cells=3)
    env = HetNetwork(cfg, batch_size=2)
    obs = env.reset(0)
    assert obs.shape[-1] == cfg.observation_size
    one_hot = obs[..., cfg.num_bs:2 * cfg.num_bs]
    assert torch.equal(one_hot.argmax(-1), env.association) and torch.all(one_hot.sum(-1) == 1)
    # The initial attach is the strongest per-block signal, i.e. the largest SNR feature.
    assert torch.equal(obs[..., :cfg.num_bs].argmax(-1), env.association)


def test_hetnet_state_dict_resumes_bit_identically():
    cfg = HetNetConfig(num_ues=20, traffic="bursty")
    env = HetNetwork(cfg, batch_size=2)
    env.reset(3)
    state = env.state_dict()
    action = HetNetAction(env.association.clone(), torch.zeros(2, 20, dtype=torch.int64), torch.full((2, 20), 0.7))
    first = [env.step(action) for _ in range(4)]
    resumed = HetNetwork(cfg, batch_size=2)
    resumed.load_state_dict(state)
    second = [resumed.step(action) for _ in range(4)]
    for x, y in zip(first, second):
        assert torch.equal(x.observation, y.observation) and torch.equal(x.reward, y.reward)
