"""OLLA baseline: Sionna-derived thresholds, the offset steps, the SINR estimate, BLER convergence to the
target on the twin, state save / load, episode restarts, and its standing against MaxP-3GPP-CQI and random."""

from __future__ import annotations

import math

import pytest
import torch

from agents.baselines import MaxPowerCQIPolicy, OllaPolicy, RandomPolicy, sionna_menu_thresholds_db
from agents.registry import load_policy
from twin import CODE_RATES, MODULATION_ORDERS, DTNConfig, LinkAdaptationNetwork, decode_action

_EFFICIENCY = torch.tensor([math.log2(m) * c for m in MODULATION_ORDERS for c in CODE_RATES], dtype=torch.float64)


def _efficiency(action: torch.Tensor) -> torch.Tensor:
    _, m, c = decode_action(action)
    return _EFFICIENCY[m * 3 + c]


def _observation(quality_db, last_sinr_db=None, aci_db=0.0, hwi_db=0.0, power=1.0, rate=0.0) -> torch.Tensor:
    """[1, N, 6] observation from per-link values in dB (scaled by 1/10 as the twin does)."""
    quality = torch.as_tensor(quality_db, dtype=torch.float64).reshape(-1)

    def column(value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=torch.float64).expand_as(quality)

    last = quality if last_sinr_db is None else column(last_sinr_db)
    columns = [quality / 10, last / 10, column(aci_db) / 10, column(hwi_db) / 10, column(power), column(rate)]
    return torch.stack(columns, dim=-1).unsqueeze(0)


def test_menu_thresholds_follow_sionna_bler_tables():
    import sionna.sys

    thresholds = torch.tensor(sionna_menu_thresholds_db(0.1, 1000)).view(4, 3)      # [modulation, code rate]
    assert torch.all(thresholds[:, 1:] > thresholds[:, :-1])                        # higher rate needs more SINR
    assert torch.all(thresholds[2:, 0] > thresholds[1:-1, 0] + 3.0)                  # and a denser constellation
    assert torch.allclose(thresholds[0], thresholds[1] - 10 * math.log10(2), atol=1e-9)   # BPSK = QPSK - 3 dB

    # The fitted line sits on Sionna's own curves: NR PDSCH table 1 MCS 7 is QPSK 0.514 and MCS 24 is
    # 64QAM 0.754, next to the menu's QPSK 1/2 and 64QAM 3/4.
    phy = sionna.sys.PHYAbstraction(precision="double", device="cpu")
    for mcs, threshold in ((7, float(thresholds[1, 0])), (24, float(thresholds[3, 1]))):
        sinr = 10.0 ** (torch.tensor([threshold - 1.5, threshold + 1.5], dtype=torch.float64) / 10)
        below, above = phy.get_bler(mcs, 1, 1, 1000, sinr).tolist()
        assert below > 0.1 >= above


def test_offset_moves_by_the_olla_steps_on_nack_ack_and_partial_decoding():
    policy = OllaPolicy(offset_min_db=-1.5)
    assert policy.delta_up_db == pytest.approx(1.0 * 0.1 / 0.9)
    first = policy.act(_observation([15.0, 15.0, 15.0]))                  # fresh episode: no feedback yet
    assert torch.equal(policy.offset_db, torch.zeros(1, 3, dtype=torch.float64))
    nominal = float(_efficiency(first[0, 0])) / 5.0                       # feature 5 is rate / (6 x 5/6 bits)

    # Link 0 decoded its block (ACK), link 1 lost it (NACK), link 2 was not scheduled (entries unchanged).
    obs = _observation([15.0, 15.0, 15.0], last_sinr_db=[14.0, 14.0, 15.0], hwi_db=[0.2, 0.2, 0.0],
                       rate=[nominal, 0.0, 0.0])
    second = policy.act(obs)
    assert policy.offset_db[0].tolist() == pytest.approx([1 / 9, -1.0, 0.0])
    assert _efficiency(second[0, 1]) <= _efficiency(second[0, 0])            # the NACKed link backs off

    # Half of link 0's block decoded; link 1 NACKs again and stops at offset_min_db.
    half = float(_efficiency(second[0, 0])) / 5.0 / 2
    obs = _observation([15.0, 15.0, 15.0], last_sinr_db=[13.0, 13.0, 15.0], hwi_db=[0.2, 0.2, 0.0],
                       rate=[half, 0.0, 0.0])
    policy.act(obs)
    assert policy.offset_db[0].tolist() == pytest.approx([1 / 9 + 0.5 / 9 - 0.5, -1.5, 0.0])


def test_mcs_is_monotone_in_sinr_at_full_power_and_shifts_with_the_offset():
    quality = torch.arange(-10.0, 40.0, 0.25, dtype=torch.float64)
    policy = OllaPolicy()
    action = policy.act(_observation(quality))[0]
    power, _, _ = decode_action(action)
    assert torch.all(power == 3)                                            # P_max, whatever the SINR
    efficiency = _efficiency(action)
    assert torch.all(efficiency[1:] >= efficiency[:-1])
    assert float(efficiency[0]) == 0.5 and float(efficiency[-1]) == 5.0     # BPSK 1/2 ... 64QAM 5/6
    assert len(set(efficiency.tolist())) == 9                              # every non-dominated menu entry

    # An offset of -o dB picks at SINR x what no offset picks at x - o.
    shifted = OllaPolicy(initial_offset_db=-4.0).act(_observation(quality))[0]
    assert torch.equal(shifted[16:], action[:-16])                           # 16 grid steps = 4 dB


def test_corrected_sinr_estimate_predicts_the_coming_slot_on_a_single_ap():
    # One AP with every RRB busy: no ACI, and the distortion-to-signal ratio is the same every slot, so the
    # coming SNR and the last slot's distortion give the coming SINR exactly while the fading moves it.
    env = LinkAdaptationNetwork(DTNConfig(num_aps=1, num_rrbs=4, num_devices=4, kappa_t=0.08), batch_size=3,
                                dtype=torch.float64)
    corrected, last = OllaPolicy(), OllaPolicy(sinr_estimate="last")
    obs = env.reset(4)
    result = env.step(corrected.act(obs))
    errors = {"corrected": [], "last": []}
    for _ in range(20):
        obs = result.observation
        predicted = {"corrected": corrected.estimate_sinr_db(obs), "last": last.estimate_sinr_db(obs)}
        result = env.step(corrected.act(obs))
        for name in errors:
            errors[name].append((predicted[name] - result.info["sinr_db"]).abs())
    assert float(torch.stack(errors["corrected"]).max()) < 1e-9
    assert float(torch.stack(errors["last"]).mean()) > 0.5


def test_long_run_bler_settles_at_the_target_on_stationary_links():
    # 32 single-link cells (always scheduled), fixed geometry, Gauss-Markov fading: a stationary link each.
    config = DTNConfig(num_aps=1, num_rrbs=1, num_devices=1, slots_per_episode=10_000, shadowing=False,
                       empty_radius_m=150.0, noise_figure_db=12.0)
    env = LinkAdaptationNetwork(config, batch_size=32, dtype=torch.float64)
    policy = OllaPolicy()
    obs = env.reset(7)
    per, offset = [], []
    for _ in range(400):
        action = policy.act(obs)
        offset.append(policy.offset_db[:, 0].clone())      # after the feedback of every earlier slot
        result = env.step(action)
        per.append(result.info["per"][:, 0])
        obs = result.observation
    per, offset = torch.stack(per), torch.stack(offset)
    start, end = 100, 399
    window = offset[start:end + 1]
    saturated = (window <= policy.offset_min_db).any(0) | (window >= policy.offset_max_db).any(0)
    bler = per[start:end].mean(0)
    assert int((~saturated).sum()) >= 24
    # Away from the bounds the steps sum to the offset's net change: mean PER = target - change / ((up + down) T).
    expected = 0.1 - (offset[end] - offset[start]) / ((policy.delta_up_db + policy.delta_down_db) * (end - start))
    assert torch.allclose(bler[~saturated], expected[~saturated], atol=1e-9)
    assert torch.all((bler[~saturated] - 0.1).abs() < 0.05)
    assert abs(float(bler[~saturated].mean()) - 0.1) < 0.02
    # Links whose best MCS already beats the target run the offset up to its ceiling, under the target.
    assert torch.all(window[:, saturated].max(0).values == policy.offset_max_db)
    assert torch.all(bler[saturated] < 0.1)


def test_state_round_trips_through_save_and_load_policy(tmp_path):
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=2)
    policy = OllaPolicy(bler_target=0.2, delta_down_db=0.5)
    obs = env.reset(3)
    for _ in range(30):
        obs = env.step(policy.act(obs)).observation
    assert float(policy.offset_db.abs().max()) > 0
    path = tmp_path / "olla.pt"
    policy.save(path)
    loaded = load_policy(path)
    assert isinstance(loaded, OllaPolicy) and loaded.hyper_parameters() == policy.hyper_parameters()
    assert torch.equal(loaded.offset_db, policy.offset_db)
    for _ in range(20):
        action = policy.act(obs)
        assert torch.equal(loaded.act(obs), action)
        obs = env.step(action).observation
    assert torch.equal(loaded.offset_db, policy.offset_db)


def test_new_episode_restarts_the_links_with_or_without_reset():
    env = LinkAdaptationNetwork(DTNConfig(slots_per_episode=20), batch_size=2)
    explicit, implicit = OllaPolicy(), OllaPolicy()
    for episode in range(2):
        obs = env.reset(10 + episode)
        explicit.reset()
        for _ in range(20):
            action = explicit.act(obs)
            assert torch.equal(implicit.act(obs), action)
            assert torch.equal(implicit.offset_db, explicit.offset_db)
            obs = env.step(action).observation
        assert float(explicit.offset_db.abs().max()) > 0
    explicit.reset()
    assert torch.all(explicit.offset_db == 0.0)


def test_acts_on_any_batch_shape():
    policy = OllaPolicy()
    env = LinkAdaptationNetwork(DTNConfig(num_devices=5), batch_size=2)
    assert policy.act(env.reset(0)).shape == (2, 5)
    other = LinkAdaptationNetwork(DTNConfig(num_aps=2, num_rrbs=2, num_devices=7), batch_size=3)
    assert policy.act(other.reset(0)).shape == (3, 7) and policy.offset_db.shape == (3, 7)


def test_bad_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"bler_target must lie in \(0, 1\), got 1.0"):
        OllaPolicy(bler_target=1.0)
    with pytest.raises(ValueError, match="sinr_estimate 'stale'; allowed: corrected, last"):
        OllaPolicy(sinr_estimate="stale")
    with pytest.raises(ValueError, match="delta_down_db must be > 0 dB, got 0.0"):
        OllaPolicy(delta_down_db=0.0)
    with pytest.raises(ValueError, match="thresholds_db needs 12 values"):
        OllaPolicy(thresholds_db=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"observation must be \[B, N, 6\], got \[2, 5\]"):
        OllaPolicy().act(torch.zeros(2, 5))


def _rate_and_bler(policy, seed: int) -> tuple[float, float]:
    env = LinkAdaptationNetwork(DTNConfig(), batch_size=16)
    reward, errors, transmissions, slots = 0.0, 0.0, 0, 0
    for episode in range(2):
        obs = env.reset(seed + episode)
        while True:
            result = env.step(policy.act(obs))
            scheduled = result.info["scheduled"]
            reward += float(result.reward.mean())
            errors += float(result.info["per"][scheduled].sum())
            transmissions += int(scheduled.sum())
            slots += 1
            obs = result.observation
            if bool(result.info["truncated"].all()):
                break
    return reward / slots, errors / transmissions


def test_beats_random_and_keeps_up_with_maxp_on_the_default_twin():
    olla_rate, olla_bler = _rate_and_bler(OllaPolicy(), seed=0)
    maxp_rate, _ = _rate_and_bler(MaxPowerCQIPolicy(), seed=0)
    random_rate, random_bler = _rate_and_bler(RandomPolicy(seed=0), seed=0)
    assert olla_rate > 2.5 * random_rate
    assert 0.97 * maxp_rate < olla_rate < 1.25 * maxp_rate
    assert 0.05 < olla_bler < 0.15 < random_bler
