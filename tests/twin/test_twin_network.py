"""Invariants of the DTN environment, AnalyticPhysical, the PhysicalNetwork contract and from_calibration."""


import pytest
import torch

from calibration.record import TwinParameters

from twin import (AnalyticPhysical, DTNConfig, LinkAdaptationNetwork, PhysicalNetwork, decode_action, encode_action,
                  from_calibration)
from twin.config import geometric_power_levels_dbm


def _run(env, seed=0, steps=5, action_seed=1):
    obs = [env.reset(seed)]
    gen = torch.Generator().manual_seed(action_seed)
    results = []
    for _ in range(steps):
        action = torch.randint(0, env.num_actions, (env.batch_size, env.num_links), generator=gen)
        results.append(env.step(action))
    return obs, results


def measured(values: dict) -> TwinParameters:
    """Twin parameters as a calibration record carries them."""
    return TwinParameters.from_mapping(values)


def test_config_defaults_and_action_space():
    cfg = DTNConfig()
    assert cfg.num_actions == 48
    assert cfg.power_set_dbm == pytest.approx((5.0, 5 + 25 / 3, 5 + 50 / 3, 30.0))
    assert geometric_power_levels_dbm(5, 30, 2) == (5.0, 30.0)
    a = torch.arange(48)
    p, m, c = decode_action(a)
    assert torch.equal(encode_action(p, m, c), a)
    assert p.max() == 3 and m.max() == 3 and c.max() == 2
    with pytest.raises(ValueError):
        decode_action(torch.tensor([48]))
    with pytest.raises(ValueError):
        DTNConfig(num_rrbs=7)


def test_reward_is_sum_rate_and_idle_links_are_silent():
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=8)
    _, results = _run(env, steps=6)
    cfg = env.config
    for obs, reward, rate, info in results:
        assert torch.allclose(reward, rate.sum(-1))
        idle = ~info["scheduled"]
        assert torch.all(rate[idle] == 0) and torch.all(info["sinr"][idle] == 0)
        assert torch.all(info["aci_w"][idle] == 0) and torch.all(info["hwi_w"][idle] == 0)
        assert torch.all((info["per"] >= 0) & (info["per"] <= 1))
        assert torch.all(rate <= cfg.max_link_rate_mbps + 1e-9)
        assert int(info["scheduled"].sum(-1).max()) <= cfg.num_rrbs
        assert torch.all(torch.isfinite(obs))


def test_schedule_announced_before_acting_is_the_one_played():
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=4)
    env.reset(3)
    announced = env.scheduled.clone()
    _, _, _, info = env.step(torch.zeros(4, 20, dtype=torch.int64))
    assert torch.equal(info["scheduled"], announced)
    assert torch.equal(info["next_scheduled"], env.scheduled)


def test_unscheduled_links_keep_their_last_state():
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=4)
    env.reset(5)
    prev = env.observe()
    obs, _, rate, info = env.step(torch.full((4, 20), 47, dtype=torch.int64))
    idle = ~info["scheduled"]
    assert torch.equal(obs[..., 1:][idle], prev[..., 1:][idle])
    busy = info["scheduled"]
    assert torch.allclose(obs[..., 1][busy], info["sinr_db"][busy].clamp(min=-30) / 10)
    assert torch.allclose(obs[..., 4][busy], torch.ones_like(obs[..., 4][busy]))   # P_max played
    assert torch.allclose(obs[..., 5][busy] * env.config.max_link_rate_mbps, rate[busy])


def test_pf_serves_everyone_over_time():
    env = LinkAdaptationNetwork(DTNConfig(fading=False), batch_size=2)
    env.reset(0)
    served = torch.zeros(2, 20, dtype=torch.bool)
    for _ in range(30):
        served |= env.step(torch.full((2, 20), 13, dtype=torch.int64)).info["scheduled"]
    assert served.all()


def test_same_seed_same_trajectory_and_seeds_differ():
    a = _run(LinkAdaptationNetwork(DTNConfig(), batch_size=3), seed=11)
    b = _run(LinkAdaptationNetwork(DTNConfig(), batch_size=3), seed=11)
    c = _run(LinkAdaptationNetwork(DTNConfig(), batch_size=3), seed=12)
    assert all(torch.equal(x.reward, y.reward) for x, y in zip(a[1], b[1]))
    assert not torch.equal(a[0][0], c[0][0])


def test_geometry_annuli_and_clustering():
    cfg = DTNConfig()
    env = LinkAdaptationNetwork(cfg, batch_size=64)
    env.reset(0)
    nearest = env.distance_m.min(-1).values
    assert torch.all(nearest >= cfg.empty_radius_m - 1e-3) and torch.all(nearest <= cfg.coverage_radius_m + 1e-3)
    assert torch.equal(env.cluster, env.distance_m.argmin(-1))
    assert torch.allclose(torch.cdist(env.ap_xy, env.ap_xy).sort(-1).values[:, 1], torch.full((4,), 600.0))


def test_los_frequency_follows_38901_probability():
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=512, dtype=torch.float64)
    env.reset(0)
    from twin.channel import umi_los_probability
    expected = umi_los_probability(env.distance_m).mean().item()
    assert env.los.double().mean().item() == pytest.approx(expected, abs=0.01)


def test_analytic_physical_deviates_aci_and_hwi_by_phi():
    cfg = DTNConfig()
    twin_env = LinkAdaptationNetwork(cfg, batch_size=4, dtype=torch.float64)
    physical = AnalyticPhysical(0.4, cfg, batch_size=4, dtype=torch.float64)
    same = AnalyticPhysical(0.0, cfg, batch_size=4, dtype=torch.float64)
    _, twin_steps = _run(twin_env, seed=7)
    _, phy_steps = _run(physical, seed=7)
    _, same_steps = _run(same, seed=7)
    for t, p, s in zip(twin_steps, phy_steps, same_steps):
        assert torch.equal(t.reward, s.reward)
    t, p = twin_steps[0].info, phy_steps[0].info      # first slot: identical schedule and channel
    assert torch.allclose(p["aci_w"], 1.4 * t["aci_w"]) and torch.allclose(p["hwi_w"], 1.4 * t["hwi_w"])
    assert torch.allclose(p["signal_w"], t["signal_w"])
    assert torch.all(p["sinr"] <= t["sinr"])


def test_both_networks_satisfy_the_physical_network_protocol():
    assert isinstance(LinkAdaptationNetwork(), PhysicalNetwork)
    assert isinstance(AnalyticPhysical(), PhysicalNetwork)
    assert AnalyticPhysical().config.phi_aci == 0.4


def test_printed_ser_option_is_more_optimistic():
    exact = LinkAdaptationNetwork(DTNConfig(), batch_size=16)
    printed = LinkAdaptationNetwork(DTNConfig(ser_model="printed"), batch_size=16)
    _, e = _run(exact, seed=2, steps=3)
    _, p = _run(printed, seed=2, steps=1)
    assert torch.all(p[0].info["per"] <= e[0].info["per"] + 1e-7)
    assert p[0].reward.sum() >= e[0].reward.sum()


def test_continuous_power_override():
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=2, dtype=torch.float64)
    env.reset(0)
    action = torch.full((2, 20), 47, dtype=torch.int64)
    ref = env.step(action)
    env.reset(0)
    over = env.step(action, power_dbm=torch.full((2, 20), 30.0, dtype=torch.float64))
    assert torch.equal(ref.reward, over.reward)


def test_synchronised_twin_predicts_first_slot():
    physical = AnalyticPhysical(0.0, DTNConfig(sigma_rt=0.0), batch_size=3, dtype=torch.float64)
    twin_env = LinkAdaptationNetwork(DTNConfig(sigma_rt=0.0), batch_size=3, dtype=torch.float64)
    physical.reset(4)
    twin_env.synchronise_from(physical)
    action = torch.randint(0, 48, (3, 20), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(twin_env.step(action).reward, physical.step(action).reward)
    noisy = LinkAdaptationNetwork(DTNConfig(sigma_rt=0.05), batch_size=3, dtype=torch.float64)
    noisy.synchronise_from(physical)
    ratio = (noisy.large_scale_gain / physical.large_scale_gain).log()
    assert ratio.std().item() == pytest.approx(0.05, abs=0.01)


def test_env_requires_reset():
    with pytest.raises(RuntimeError):
        LinkAdaptationNetwork().step(torch.zeros(1, 20, dtype=torch.int64))


def test_from_calibration_maps_keys_and_validates():
    record = {"kappa_t": 0.08, "kappa_r": 0.03, "acir1_db": 28.0, "acir2_db": 41.0, "phi_aci": 0.3,
              "phi_hwi": 0.1, "phi": 0.2, "radios": ["sim0", "sim1"]}
    cfg = from_calibration(measured(record), DTNConfig(num_devices=8))
    assert (cfg.kappa_t, cfg.kappa_r, cfg.acir1_db, cfg.acir2_db) == (0.08, 0.03, 28.0, 41.0)
    assert (cfg.phi_aci, cfg.phi_hwi, cfg.phi, cfg.num_devices) == (0.3, 0.1, 0.2, 8)
    joint_only = from_calibration(measured({"kappa_t": 0.05, "kappa_r": 0.05, "acir1_db": 30, "acir2_db": 45, "phi": 0.25}))
    assert joint_only.phi_aci == joint_only.phi_hwi == 0.25
    minimal = from_calibration(measured({"kappa_t": 0.05, "kappa_r": 0.05, "acir1_db": 30, "acir2_db": 45}))
    assert minimal.phi_aci == minimal.phi_hwi == 0.0
    with pytest.raises(KeyError, match="acir2_db"):
        from_calibration(measured({"kappa_t": 0.05, "kappa_r": 0.05, "acir1_db": 30}))
    with pytest.raises(ValueError, match="kappa_t"):
        from_calibration(measured({"kappa_t": 5.0, "kappa_r": 0.05, "acir1_db": 30, "acir2_db": 45}))
    with pytest.raises(ValueError, match="phi_aci"):
        from_calibration(measured({"kappa_t": 0.05, "kappa_r": 0.05, "acir1_db": 30, "acir2_db": 45, "phi_aci": -1.5}))


def test_calibrated_twin_reproduces_the_deviated_physical_network():
    # A calibration that measured phi = 0.4 on the analytic physical network makes the twin exact.
    physical = AnalyticPhysical(0.4, DTNConfig(), batch_size=4, dtype=torch.float64)
    calibrated = LinkAdaptationNetwork(from_calibration(measured({"kappa_t": 0.05, "kappa_r": 0.05, "acir1_db": 30.0,
                                                         "acir2_db": 45.0, "phi": 0.4})), batch_size=4,
                                       dtype=torch.float64)
    _, a = _run(physical, seed=9)
    _, b = _run(calibrated, seed=9)
    assert all(torch.allclose(x.info["sinr"], y.info["sinr"]) for x, y in zip(a, b))


def test_state_dict_resumes_bit_identically(tmp_path):
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=3)
    _run(env, seed=1, steps=0)
    gen = torch.Generator().manual_seed(2)
    actions = [torch.randint(0, 48, (3, 20), generator=gen) for _ in range(8)]
    for a in actions[:3]:
        env.step(a)
    torch.save(env.state_dict(), tmp_path / "env.pt")
    first = [env.step(a) for a in actions[3:]]
    resumed = LinkAdaptationNetwork(DTNConfig(), batch_size=3)
    resumed.load_state_dict(torch.load(tmp_path / "env.pt"))
    second = [resumed.step(a) for a in actions[3:]]
    for x, y in zip(first, second):
        assert torch.equal(x.observation, y.observation) and torch.equal(x.reward, y.reward)
