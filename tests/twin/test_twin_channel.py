"""UMi path loss / LoS probability against the reference test vectors; Jakes rho and AR(1) statistics."""


import pytest
import torch

from twin.channel import (gauss_markov_step, jakes_correlation, umi_breakpoint_distance, umi_los_probability,
                          umi_path_loss_db, umi_shadow_fading_std_db)

# Reference test vectors (h_BS = 10 m, h_UT = 1.5 m): f_c -> (d'_BP, {d_2D: (LOS, NLOS)}).
UMI_VECTORS = {
    0.868e9: (52.1, {10: (54.65, 60.56), 100: (78.50, 91.75), 200: (90.50, 102.33), 500: (106.40, 116.37)}),
    2.0e9: (120.1, {10: (61.90, 68.28), 100: (80.45, 99.47), 200: (90.95, 110.05), 500: (106.85, 124.09)}),
    3.5e9: (210.1, {10: (66.76, 73.46), 100: (85.31, 104.64), 200: (91.61, 115.23), 500: (107.11, 129.26)}),
}


@pytest.mark.parametrize("fc", sorted(UMI_VECTORS))
def test_umi_path_loss_matches_reference_vectors(fc):
    d_bp, table = UMI_VECTORS[fc]
    assert umi_breakpoint_distance(fc, 10.0, 1.5) == pytest.approx(d_bp, abs=0.05)
    distance = torch.tensor(sorted(table), dtype=torch.float64)
    los = umi_path_loss_db(distance, torch.tensor(True), fc)
    nlos = umi_path_loss_db(distance, torch.tensor(False), fc)
    expected_los = torch.tensor([table[d][0] for d in sorted(table)], dtype=torch.float64)
    expected_nlos = torch.tensor([table[d][1] for d in sorted(table)], dtype=torch.float64)
    assert torch.allclose(los, expected_los, atol=0.006)
    assert torch.allclose(nlos, expected_nlos, atol=0.006)


def test_breakpoint_uses_effective_heights():
    # With raw heights it would be 700 m at 3.5 GHz; with h - 1 m it is 210 m.
    assert umi_breakpoint_distance(3.5e9, 10.0, 1.5) == pytest.approx(4 * 9 * 0.5 * 3.5e9 / 299_792_458.0)


def test_nlos_never_below_los_and_loss_grows_with_distance():
    d = torch.linspace(10, 3000, 500, dtype=torch.float64)
    los = umi_path_loss_db(d, torch.tensor(True), 6.5e9)
    nlos = umi_path_loss_db(d, torch.tensor(False), 6.5e9)
    assert torch.all(nlos >= los - 1e-12)
    assert torch.all(los.diff() > 0) and torch.all(nlos.diff() > 0)


def test_los_probability_reference_values():
    p = umi_los_probability(torch.tensor([5.0, 18.0, 50.0, 100.0, 200.0], dtype=torch.float64))
    assert p[0] == 1.0 and p[1] == pytest.approx(1.0)
    assert p[2:].tolist() == pytest.approx([0.520, 0.231, 0.0935], abs=6e-4)


def test_shadow_fading_std_depends_on_los():
    sigma = umi_shadow_fading_std_db(torch.tensor([True, False]), torch.float64)
    assert sigma.tolist() == [4.0, 7.82]


@pytest.mark.parametrize("fc, kmh, slot, rho", [
    (868e6, 3, 20e-3, 0.9771), (2.4e9, 3, 20e-3, 0.832), (3.5e9, 3, 10e-3, 0.909), (868e6, 30, 10e-3, 0.503),
])
def test_jakes_rho_is_bessel_j0(fc, kmh, slot, rho):
    doppler = kmh / 3.6 * fc / 299_792_458.0
    assert jakes_correlation(doppler, slot) == pytest.approx(rho, abs=1.5e-3)


def test_jakes_reference_point_and_clamp():
    assert jakes_correlation(10.0, 20e-3) == pytest.approx(0.6425, abs=1e-4)
    # f_d T beyond the first zero of J0: negative rho is clamped to 0 unless asked otherwise.
    assert jakes_correlation(24.1, 20e-3) == 0.0
    assert jakes_correlation(24.1, 20e-3, clamp_negative=False) == pytest.approx(-0.271, abs=2e-3)


def test_gauss_markov_keeps_unit_power_and_has_rho_correlation():
    rho = jakes_correlation(10.0, 20e-3)
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(4000, dtype=torch.complex128, generator=gen)
    samples = [h]
    for _ in range(200):
        samples.append(gauss_markov_step(samples[-1], rho, gen))
    x = torch.stack(samples[50:])                                       # [T, paths], stationary part
    power = x.abs().square().mean().item()
    lag1 = (x[1:] * x[:-1].conj()).mean().real.item() / power
    lag2 = (x[2:] * x[:-2].conj()).mean().real.item() / power
    assert power == pytest.approx(1.0, abs=0.01)
    assert lag1 == pytest.approx(rho, abs=0.01)
    assert lag2 == pytest.approx(rho ** 2, abs=0.01)                    # AR(1): rho^k at lag k
    # Real and imaginary parts each carry half the power (circular symmetry).
    assert x.real.square().mean().item() == pytest.approx(0.5, abs=0.01)
