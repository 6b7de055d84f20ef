"""Classical baselines: ESA against brute force, batched FP / WMMSE against scalar references, CQI mapping,
and the common save / load interface."""


import numpy as np
import pytest
import torch

from agents.baselines import (ExhaustiveFPPolicy, ExhaustiveSearchPolicy, MaxPowerCQIPolicy, RandomHetNetPolicy,
                              RandomPolicy, WMMSEPolicy, fractional_programming_power,
                              fractional_programming_power_reference, mcs_for_efficiency, round_robin_blocks,
                              strongest_signal_association, wmmse_power, wmmse_power_reference)
from agents.policy import Policy
from agents.registry import load_policy
from twin import DTNConfig, HetNetConfig, HetNetwork, LinkAdaptationNetwork, decode_action, evaluate_slot
from twin.network import NetworkState


def _small_network(num_aps=3, num_rrbs=3, num_devices=6, batch=3, seed=0, **kw):
    env = LinkAdaptationNetwork(DTNConfig(num_aps=num_aps, num_rrbs=num_rrbs, num_devices=num_devices,
                                          ap_spacing_m=350.0, **kw), batch_size=batch, dtype=torch.float64)
    obs = env.reset(seed)
    return env, obs


def test_esa_equals_brute_force_over_all_joint_actions():
    env, _ = _small_network()
    state = env.network_state()
    action, value = ExhaustiveSearchPolicy().search(state)
    for b in range(env.batch_size):
        links = torch.nonzero(state.rrb[b] >= 0).squeeze(-1)
        num = links.numel()
        joint = torch.cartesian_prod(*[torch.arange(48)] * num).view(-1, num)         # every joint action
        count = joint.shape[0]
        full = torch.zeros(count, env.num_links, dtype=torch.int64)
        full[:, links] = joint
        p, m, c = decode_action(full)
        sub = NetworkState(state.gain[b:b + 1].expand(count, -1, -1), state.serving_ap[b:b + 1].expand(count, -1),
                           state.rrb[b:b + 1].expand(count, -1), state.rrb_owner, state.config)
        power_w = env.power_set_w[p]
        totals = evaluate_slot(sub, power_w, m, c).rate.sum(-1)
        assert float(value[b]) == pytest.approx(float(totals.max()), rel=1e-10)
    reward = env.step(action).reward
    assert torch.allclose(reward, value)


def test_esa_beats_heuristics_every_slot():
    env, obs = _small_network(num_aps=2, num_rrbs=4, num_devices=8, batch=6, seed=1, kappa_t=0.1)
    esa, maxp, rnd = ExhaustiveSearchPolicy(), MaxPowerCQIPolicy(), RandomPolicy(seed=3)
    state = env.network_state()
    best = esa.search(state)[1]
    for policy in (maxp, rnd):
        action = policy.act(obs)
        p, m, c = decode_action(action)
        achieved = evaluate_slot(state, env.power_set_w[p], m, c).rate.sum(-1)
        assert torch.all(achieved <= best + 1e-9)


def test_esa_refuses_large_networks():
    env, _ = _small_network(num_aps=4, num_rrbs=12, num_devices=20)
    with pytest.raises(ValueError, match="max_candidates"):
        ExhaustiveSearchPolicy().act(env.observe(), env.network_state())
    with pytest.raises(ValueError, match="network_state"):
        ExhaustiveSearchPolicy().act(env.observe())


def _random_coupling(batch, links, seed):
    gen = torch.Generator().manual_seed(seed)
    direct = torch.rand(batch, links, generator=gen, dtype=torch.float64) * 1e-9 + 1e-11
    coupling = torch.rand(batch, links, links, generator=gen, dtype=torch.float64) * 3e-11
    direct[0, -1] = 0.0                                 # an idle link
    coupling[0, -1, :] = 0.0
    coupling[0, :, -1] = 0.0
    weight = torch.rand(batch, links, generator=gen, dtype=torch.float64) * 5 + 0.5
    return direct, coupling, weight


def test_batched_fp_equals_scalar_reference():
    direct, coupling, weight = _random_coupling(5, 6, 0)
    batched = fractional_programming_power(direct, coupling, 1e-12, weight, 1e-3 * 10 ** 0.5, 1.0, iterations=40)
    for b in range(5):
        ref = fractional_programming_power_reference(direct[b].numpy(), coupling[b].numpy(), 1e-12,
                                                     weight[b].numpy(), 1e-3 * 10 ** 0.5, 1.0, iterations=40)
        assert np.allclose(batched[b].numpy(), ref, rtol=1e-9, atol=1e-15)


def test_fp_does_not_lower_the_weighted_sum_rate():
    direct, coupling, weight = _random_coupling(8, 6, 1)

    def objective(power):
        sinr = direct * power / (torch.einsum("bnm,bm->bn", coupling, power) + 1e-12)
        return (weight * torch.log2(1 + sinr)).sum(-1)

    full = torch.where(direct > 0, torch.ones_like(direct), torch.zeros_like(direct))
    values = [objective(fractional_programming_power(direct, coupling, 1e-12, weight, 1e-3, 1.0, iterations=i))
              for i in (0, 1, 5, 50)]
    assert torch.allclose(values[0], objective(full))
    for earlier, later in zip(values, values[1:]):
        assert torch.all(later >= earlier - 1e-9)


def test_esa_fp_decision_reaches_its_reported_goodput():
    env, obs = _small_network(num_aps=2, num_rrbs=2, num_devices=5, batch=3, seed=2)
    policy = ExhaustiveFPPolicy(iterations=30)
    decision, value = policy.search(env.network_state())
    cfg = env.config
    assert torch.all((decision.power_dbm >= cfg.p_min_dbm - 1e-9) & (decision.power_dbm <= cfg.p_max_dbm + 1e-9))
    reward = env.step(decision.action, power_dbm=decision.power_dbm).reward
    assert torch.allclose(reward, value)


def test_batched_wmmse_equals_scalar_reference():
    gen = torch.Generator().manual_seed(4)
    channel = torch.rand(4, 7, 7, generator=gen, dtype=torch.float64) * 1e-10
    channel = channel + torch.diag_embed(torch.rand(4, 7, generator=gen, dtype=torch.float64) * 1e-8)
    p_max = torch.rand(4, 7, generator=gen, dtype=torch.float64) + 0.1
    weight = torch.rand(4, 7, generator=gen, dtype=torch.float64) + 0.2
    batched = wmmse_power(channel, 1e-11, p_max, weight, iterations=50)
    for b in range(4):
        ref = wmmse_power_reference(channel[b].numpy(), 1e-11, p_max[b].numpy(), weight[b].numpy(), iterations=50)
        assert np.allclose(batched[b].numpy(), ref, rtol=1e-9, atol=1e-15)
    assert torch.all((batched >= 0) & (batched <= p_max + 1e-12))


def test_wmmse_in_float32_matches_float64_on_dense_hetnets():
    # 200 UEs: gains of 1e-13..1e-6 and SINRs up to ~1e8, where the textbook 1 / (1 - u h v) cancels to 1 / 0 in
    # float32 (4 of these 4 x 5 networks came out NaN before).
    env = HetNetwork(HetNetConfig(num_ues=200), batch_size=4)
    for seed in range(5):
        env.reset(seed)
        state = env.network_state()
        assert state.gain.dtype == torch.float32
        single = WMMSEPolicy().act(None, state).power_split
        exact = WMMSEPolicy().act(None, state._replace(gain=state.gain.double(),
                                                         block_power_w=state.block_power_w.double())).power_split
        assert torch.isfinite(single).all()
        assert torch.allclose(single.double(), exact, atol=1e-3)


def test_wmmse_policy_on_hetnet():
    env = HetNetwork(HetNetConfig(num_ues=30, num_small_cells=3, num_subchannels=10), batch_size=2,
                     dtype=torch.float64)
    obs = env.reset(0)
    state = env.network_state()
    action = WMMSEPolicy(iterations=50).act(obs, state)
    assert torch.equal(action.association, (state.gain * state.block_power_w).argmax(-1))
    for b in range(2):                                    # round robin: the i-th UE of a BS gets block i mod M_b
        for j in range(env.config.num_bs):
            members = torch.nonzero(action.association[b] == j).squeeze(-1)
            assert action.block[b, members].tolist() == [i % env.config.num_blocks for i in range(members.numel())]
    assert torch.all((action.power_split >= 0) & (action.power_split <= 1))
    wmmse = env.step(action).info["sum_throughput_mbps"]
    env.reset(0)
    random = env.step(RandomHetNetPolicy(env.config.num_bs, env.config.num_blocks).act(obs)).info["sum_throughput_mbps"]
    assert torch.all(wmmse > random)


def test_round_robin_and_strongest_signal_helpers():
    association = torch.tensor([[0, 1, 0, 0, 1]])
    assert round_robin_blocks(association, 2, 2).tolist() == [[0, 0, 1, 0, 1]]
    gain = torch.tensor([[[1.0, 2.0], [3.0, 0.1]]])
    assert strongest_signal_association(gain, torch.tensor([1.0, 0.4])).tolist() == [[0, 0]]


@pytest.mark.parametrize("sinr_db, expected", [
    (25.0, ("64QAM", 5 / 6)), (0.0, ("BPSK", 1 / 2)), (11.0, ("16QAM", 1 / 2)), (14.5, ("16QAM", 3 / 4)),
    (-20.0, ("BPSK", 1 / 2)), (4.5, ("QPSK", 1 / 2)),
])
def test_maxp_cqi_maps_sinr_through_the_cqi_table(sinr_db, expected):
    from twin import CODE_RATES, MODULATION_NAMES
    obs = torch.zeros(1, 1, 6)
    obs[..., 1] = sinr_db / 10
    power, modulation, rate = decode_action(MaxPowerCQIPolicy().act(obs))
    assert int(power) == 3
    assert (MODULATION_NAMES[int(modulation)], CODE_RATES[int(rate)]) == (expected[0], pytest.approx(expected[1]))


def test_mcs_for_efficiency_never_exceeds_target():
    target = torch.linspace(0.5, 6, 200)
    modulation, rate = mcs_for_efficiency(target)
    orders = torch.tensor([2, 4, 16, 64])[modulation]
    efficiency = torch.log2(orders.float()) * torch.tensor([0.5, 0.75, 5 / 6])[rate]
    assert torch.all(efficiency <= target + 1e-6)


def test_random_policy_is_uniform():
    from scipy.stats import chisquare
    actions = RandomPolicy(seed=0).act(torch.zeros(200, 50, 6))
    counts = torch.bincount(actions.flatten(), minlength=48)
    assert actions.min() >= 0 and actions.max() <= 47
    assert chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("policy", [RandomPolicy(48, seed=5), MaxPowerCQIPolicy(), ExhaustiveSearchPolicy(4 ** 4),
                                    ExhaustiveFPPolicy(12 ** 2, 10), WMMSEPolicy(20), RandomHetNetPolicy(4, 10, 2)])
def test_save_load_roundtrip(policy, tmp_path):
    path = tmp_path / "policy.pt"
    obs = torch.randn(2, 5, 6)
    policy.save(path)
    restored = type(policy).load(path)
    generic = load_policy(path)
    assert restored.hyper_parameters() == policy.hyper_parameters() == generic.hyper_parameters()
    if isinstance(policy, (RandomPolicy, MaxPowerCQIPolicy)):
        assert torch.equal(policy.act(obs), restored.act(obs))       # same state -> same decisions
    with pytest.raises(ValueError):
        (MaxPowerCQIPolicy if not isinstance(policy, MaxPowerCQIPolicy) else RandomPolicy).load(path)
    assert isinstance(restored, Policy)
