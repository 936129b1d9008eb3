"""Physics core: residues, the convolution discretisation, parameters, units, torch twins."""

from functools import partial

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.physics import (
    RESIDUE_FAMILIES,
    aif_peak_scale,
    cbf_from_cbv_mtt,
    cbf_to_flow_rate,
    cbv_from_cbf_mtt,
    cbv_from_curves,
    circulant_aif_spectrum,
    convolve_aif,
    exponential_residue,
    flow_rate_to_cbf,
    gamma_residue,
    mtt_from_cbv_cbf,
    residue_function,
    tmax_from_residue,
)
from skperfusion.physics.torch_ops import (
    aif_peak_scale_torch,
    cbf_from_cbv_mtt_torch,
    cbv_from_curves_torch,
    convolve_aif_torch,
    residue_function_torch,
)

FAMILIES = [
    ("lorentzian", {}),
    ("exponential", {}),
    ("gamma", {"shape": 1.0}),
    ("gamma", {"shape": 3.5}),
    ("boxcar", {}),
]


# --- residues ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "kw"), FAMILIES)
@pytest.mark.parametrize("mtt", [1.5, 9.0])
@pytest.mark.parametrize("delay", [0.0, 3.3])
def test_residue_starts_at_one_and_integrates_to_mtt(family, kw, mtt, delay):
    residue = residue_function(family)

    def value(t):
        return float(residue(t, mtt, delay=delay, **kw))

    assert value(delay) == 1.0
    before = np.linspace(-2.0, delay, 7, endpoint=False)
    np.testing.assert_array_equal(residue(before, mtt, delay=delay, **kw), 0.0)
    # Split at delay + MTT, where the boxcar ends, so quad never straddles a jump.
    area = quad(value, delay, delay + mtt)[0] + quad(value, delay + mtt, np.inf, limit=200)[0]
    assert area == pytest.approx(mtt, rel=1e-7)


def test_residue_functions_broadcast_samples_against_time():
    t = np.linspace(0.0, 30.0, 31)
    mtt = np.array([[2.0], [5.0], [11.0]])
    delay = np.array([[0.0], [1.0], [2.5]])
    for name, function in RESIDUE_FAMILIES.items():
        batch = function(t, mtt, delay=delay)
        assert batch.shape == (3, 31), name
        for row in range(3):
            np.testing.assert_array_equal(
                batch[row], function(t, mtt[row, 0], delay=delay[row, 0]), err_msg=name
            )


def test_gamma_residue_with_shape_one_is_exponential():
    t = np.linspace(0.0, 40.0, 81)
    np.testing.assert_allclose(
        gamma_residue(t, 4.0, delay=1.0, shape=1.0), exponential_residue(t, 4.0, delay=1.0),
        rtol=1e-12, atol=1e-15,
    )


def test_unknown_residue_family_is_named():
    with pytest.raises(ValueError, match=r"'weibull'.*expected one of"):
        residue_function("weibull")


# --- the convolution discretisation -----------------------------------------------------------

def test_convolution_of_constants_is_exact():
    # ∫_0^t 1 · 1 ds = t and ∫_0^t (t - s) · 1 ds = t²/2: the trapezoidal rule is exact
    # for integrands linear in s.
    tr = 0.7
    t = tr * np.arange(12)
    np.testing.assert_allclose(convolve_aif(np.ones(12), np.ones(12), tr), t, atol=1e-12)
    np.testing.assert_allclose(convolve_aif(t, np.ones(12), tr), t**2 / 2, atol=1e-12)


def test_convolution_of_quadratic_integrand_by_hand():
    # Ca(t) = t, h(t) = t: C(t_i) = TR³ Σ_j (i - j) j = TR³ (i³ - i) / 6 (end terms vanish),
    # against the exact t³/6: the trapezoidal error -t TR² / 6.
    tr = 1.5
    i = np.arange(10)
    t = tr * i
    C = convolve_aif(t, t, tr)
    np.testing.assert_allclose(C, tr**3 * (i**3 - i) / 6, atol=1e-10)
    np.testing.assert_allclose(C - t**3 / 6, -t * tr**2 / 6, atol=1e-10)


def test_convolution_matches_the_direct_sum_of_its_definition():
    rng = np.random.default_rng(0)
    aif = rng.uniform(0, 5, size=(3, 37))
    impulse = rng.uniform(0, 1, size=(3, 37))
    tr = 1.2
    expected = np.empty_like(aif)
    for row in range(3):
        full = np.convolve(aif[row], impulse[row])[:37]
        ends = 0.5 * (aif[row] * impulse[row, 0] + aif[row, 0] * impulse[row])
        expected[row] = tr * (full - ends)
    expected[:, 0] = 0.0
    np.testing.assert_allclose(convolve_aif(aif, impulse, tr), expected, rtol=1e-10, atol=1e-12)
    # One AIF broadcast against several impulse responses.
    np.testing.assert_allclose(
        convolve_aif(aif[0], impulse, tr)[1], convolve_aif(aif[0], impulse[1], tr), atol=1e-12
    )


@pytest.mark.parametrize("mtt", [2.0, 8.0])
def test_convolution_of_constant_aif_with_exponential_residue(mtt):
    # C(t) = Ca f ∫_0^t exp(-s/MTT) ds = Ca f MTT (1 - exp(-t/MTT)); the trapezoidal error is
    # bounded by t TR² max|∂²_s integrand| / 12 = t TR² Ca f / (12 MTT²) and is second order.
    ca, flow = 3.0, 0.01
    errors = []
    for tr in (1.0, 0.5):
        t = tr * np.arange(int(60 / tr))
        C = convolve_aif(np.full(t.size, ca), flow * exponential_residue(t, mtt), tr)
        exact = ca * flow * mtt * (1 - np.exp(-t / mtt))
        error = np.abs(C - exact)
        assert np.all(error <= t * tr**2 * ca * flow / (12 * mtt**2) + 1e-15)
        errors.append(error.max())
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)


def test_convolution_converges_to_the_integral_for_a_bolus():
    # Gamma-variate AIF with a Lorentzian residue against adaptive quadrature of the integral.
    aif = partial(gamma_variate, t0=4.0, alpha=3.0, beta=1.5, peak=5.0)
    mtt, flow = 4.0, 0.012
    t_check = np.array([6.0, 9.0, 12.0, 18.0, 30.0])
    exact = np.array([
        quad(lambda s, t=t: aif(t - s) * flow / (1 + (np.pi * s / (2 * mtt)) ** 2), 0, t,
             points=[t - 4.0], limit=200)[0]
        for t in t_check
    ])
    errors = []
    for tr in (1.0, 0.5, 0.25):
        t = tr * np.arange(round(30 / tr) + 1)
        impulse = flow / (1 + (np.pi * t / (2 * mtt)) ** 2)
        C = convolve_aif(aif(t), impulse, tr)
        errors.append(np.abs(C[np.searchsorted(t, t_check)] - exact).max() / exact.max())
    # Measured 1.4e-2, 3.4e-3, 8.5e-4 of the peak: second order.
    assert errors[0] < 0.02
    assert errors[1] < errors[0] / 3.5
    assert errors[2] < errors[1] / 3.5


def test_convolution_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="aif has 10 time points but impulse_response has 9"):
        convolve_aif(np.ones(10), np.ones(9), 1.0)


def test_circulant_spectrum_diagonalises_the_padded_circulant():
    rng = np.random.default_rng(1)
    aif = rng.uniform(0, 2, size=8)
    tr = 1.3
    padded = np.concatenate([aif, np.zeros(8)])
    circulant = tr * np.array([[padded[(i - j) % 16] for j in range(16)] for i in range(16)])
    eigenvalues = np.fft.fft(circulant[:, 0])
    np.testing.assert_allclose(circulant_aif_spectrum(aif, tr), eigenvalues[:9], atol=1e-12)
    np.testing.assert_allclose(
        np.sort(np.abs(np.fft.fft(padded) * tr)), np.sort(np.linalg.svd(circulant)[1]), atol=1e-10
    )


# --- torch twins ------------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "kw"), FAMILIES)
@pytest.mark.parametrize("n_times", [79, 80])
def test_one_registry_serves_numpy_and_torch(family, kw, n_times):
    rng = np.random.default_rng(2)
    t = np.linspace(0.0, 60.0, n_times)
    mtt = rng.uniform(1.0, 15.0, size=(16, 1))
    delay = rng.uniform(0.0, 5.0, size=(16, 1))
    expected = residue_function(family)(t, mtt, delay=delay, **kw)
    got = residue_function_torch(family)(torch.from_numpy(t), torch.from_numpy(mtt),
                                         torch.from_numpy(delay), **kw)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-13)


def test_every_family_is_registered_once():
    assert set(RESIDUE_FAMILIES) == {"lorentzian", "exponential", "gamma", "boxcar"}
    assert all(name == family.name for name, family in RESIDUE_FAMILIES.items())
    # Only the boxcar's step in MTT has no gradient, so only it is unfit for a decoder.
    assert [n for n, f in RESIDUE_FAMILIES.items() if not f.differentiable] == ["boxcar"]
    with pytest.raises(ValueError, match="expected one of"):
        residue_function_torch("weibull")


@pytest.mark.parametrize("n_times", [69, 70])
def test_torch_convolution_and_parameters_match_numpy(n_times):
    rng = np.random.default_rng(3)
    t = np.arange(n_times) * 1.2
    aif = gamma_variate(t, t0=rng.uniform(3, 10, size=(32, 1)), peak=rng.uniform(1, 10, (32, 1)))
    cbf = rng.uniform(10, 70, size=(32, 1))
    mtt = rng.uniform(2, 12, size=(32, 1))
    impulse = cbf_to_flow_rate(cbf) * RESIDUE_FAMILIES["lorentzian"](t, mtt)
    expected = convolve_aif(aif, impulse, 1.2)
    got = convolve_aif_torch(torch.from_numpy(aif), torch.from_numpy(impulse), 1.2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-12 * expected.max())
    aif[0] = 0.0  # no AIF area, no peak: NaN CBV, scale 1
    aif[1] *= -1.0
    tissue = torch.from_numpy(expected)
    cbv = cbv_from_curves_torch(tissue, torch.from_numpy(aif), 0.7, 1.1).numpy()
    np.testing.assert_allclose(cbv, cbv_from_curves(expected, aif, 0.7, 1.1), rtol=1e-12,
                               equal_nan=True)
    assert np.isnan(cbv[:2]).all()
    mtt_or_zero = np.r_[0.0, -1.0, mtt[2:, 0]]
    np.testing.assert_allclose(
        cbf_from_cbv_mtt_torch(torch.from_numpy(cbv), torch.from_numpy(mtt_or_zero)).numpy(),
        cbf_from_cbv_mtt(cbv, mtt_or_zero), rtol=1e-12, equal_nan=True)
    for got_part, part in zip(aif_peak_scale_torch(torch.from_numpy(aif)), aif_peak_scale(aif),
                              strict=True):
        np.testing.assert_array_equal(got_part.numpy(), part)
    np.testing.assert_array_equal(aif_peak_scale(aif)[0][:3], [1.0, 1.0, aif[2].max()])


def test_torch_twins_are_differentiable_in_mtt_and_delay():
    t = torch.linspace(0.0, 25.0, 26, dtype=torch.float64)
    aif = torch.from_numpy(gamma_variate(t.numpy(), t0=3.0))[None]
    mtt = torch.tensor([[3.0], [7.0]], dtype=torch.float64, requires_grad=True)
    delay = torch.tensor([[0.4], [1.7]], dtype=torch.float64, requires_grad=True)
    for family in ("lorentzian", "exponential", "gamma"):
        residue = residue_function_torch(family)
        assert torch.autograd.gradcheck(
            lambda m, d, residue=residue: convolve_aif_torch(aif, 0.01 * residue(t, m, d), 1.0),
            (mtt, delay), fast_mode=True,  # a random directional derivative: 10x faster
        )


# --- parameters and units ---------------------------------------------------------------------

def test_flow_rate_by_hand_and_round_trip():
    # 60 ml/100g/min with kH = 0.73, ρ = 1.04 g/ml: f = 60 · 1.04 / (0.73 · 100 · 60) 1/s.
    assert float(cbf_to_flow_rate(60.0)) == pytest.approx(1.04 / 73.0, rel=1e-14)
    rng = np.random.default_rng(4)
    cbf = rng.uniform(1, 150, size=50)
    kh, rho = 0.69, 1.05
    np.testing.assert_allclose(flow_rate_to_cbf(cbf_to_flow_rate(cbf, kh, rho), kh, rho), cbf,
                               rtol=1e-14)


def test_central_volume_theorem_by_hand():
    # CBV 4 ml/100g flowing at 60 ml/100g/min = 1 ml/100g/s is renewed every 4 s.
    assert float(cbf_from_cbv_mtt(4.0, 4.0)) == pytest.approx(60.0)
    assert float(mtt_from_cbv_cbf(4.0, 60.0)) == pytest.approx(4.0)
    assert float(cbv_from_cbf_mtt(60.0, 4.0)) == pytest.approx(4.0)
    np.testing.assert_array_equal(cbf_from_cbv_mtt(np.array([4.0, 4.0]), np.array([0.0, -1.0])),
                                  np.nan)
    np.testing.assert_array_equal(mtt_from_cbv_cbf(4.0, np.array([0.0])), np.nan)


def test_cbv_from_curve_areas_by_hand():
    # C = 0.05 Ca: CBV = kH / ρ · 100 · 0.05 = 0.73 / 1.04 · 5 ml/100g, any curve shape.
    aif = gamma_variate(np.arange(50.0), t0=5.0, peak=7.0)
    cbv = cbv_from_curves(np.stack([0.05 * aif, 0.1 * aif]), aif)
    np.testing.assert_allclose(cbv, [0.73 / 1.04 * 5, 0.73 / 1.04 * 10], rtol=1e-12)
    assert cbv_from_curves(np.ones(4), np.ones(4), kh=1.0, rho=1.0) == pytest.approx(100.0)
    assert np.isnan(cbv_from_curves(np.ones(4), np.zeros(4)))


def test_tmax_wraps_the_second_half_of_the_circle_to_negative_delays():
    tr = 1.5
    for length in (10, 9):
        impulse = np.zeros((length, length))
        impulse[np.arange(length), np.arange(length)] = 1.0
        # A lone spike is its own maximum; the onset lies one sample before it.
        first = (length + 1) // 2  # the sample of the most negative time
        expected = [k - 1 if k < first else k - length - 1 for k in range(length)]
        np.testing.assert_array_equal(tmax_from_residue(impulse, tr), tr * np.array(expected))
    # Maxima in [-L/2, L/2) · TR for even L, onsets one sample earlier.
    assert tmax_from_residue(np.eye(10)[5], 1.0) == -6.0
    assert tmax_from_residue(np.eye(10)[4], 1.0) == 3.0


# --- ground-truth simulator -------------------------------------------------------------------

@pytest.mark.parametrize(("family", "kw"), [("exponential", {}), ("gamma", {"shape": 2.5})])
@pytest.mark.parametrize("tr", [1.0, 1.5])
def test_simulated_curves_obey_the_central_volume_theorem(family, kw, tr):
    # ∫C = f MTT ∫Ca over a window holding both whole curves, so eq. 2 gives CBF · MTT / 60.
    cbf = np.array([10.0, 35.0, 70.0, 20.0])
    mtt = np.array([2.0, 6.0, 12.0, 4.0])
    delay = np.array([0.0, 3.0, -2.2, 1.7])
    tissue, aif = simulate_concentration(partial(gamma_variate, t0=8.0), tr, cbf, mtt,
                                         family=family, delay=delay, n_times=int(200 / tr), **kw)
    assert tissue.shape == (4, int(200 / tr)) and aif.shape == (int(200 / tr),)
    # Measured within 2.5e-4 (the coarse-grid trapezoidal areas).
    np.testing.assert_allclose(cbv_from_curves(tissue, aif), cbf * mtt / 60, rtol=1e-3)


def test_simulated_delay_is_a_time_shift():
    aif = partial(gamma_variate, t0=6.0)
    cbf, mtt = np.array([30.0, 50.0]), np.array([3.0, 9.0])
    undelayed, _ = simulate_concentration(aif, 1.2, cbf, mtt, n_times=60)
    delayed, _ = simulate_concentration(aif, 1.2, cbf, mtt, delay=3 * 1.2, n_times=60)
    np.testing.assert_allclose(delayed[:, 3:], undelayed[:, :-3], rtol=1e-9, atol=1e-12)
    # Before the bolus reaches the tissue (FFT round-off only).
    np.testing.assert_allclose(delayed[:, :9], 0.0, atol=1e-15)


def test_simulated_curves_converge_with_oversampling():
    aif = partial(gamma_variate, t0=5.0)
    args = (aif, 1.5, [20.0, 60.0], [2.0, 8.0])
    fine, _ = simulate_concentration(*args, delay=[0.7, 2.9], oversample=320)
    errors = [np.abs(simulate_concentration(*args, delay=[0.7, 2.9], oversample=k)[0]
                     - fine).max() / fine.max() for k in (10, 20, 40)]
    # The trapezoidal rule on the fine grid: second order, each halving of
    # the fine step divides the error by 4 (measured 4.0; 4e-4 of the peak at 10).
    assert errors[0] < 1e-3
    assert errors[1] < errors[0] / 3.5 and errors[2] < errors[1] / 3.5


@pytest.mark.parametrize("tau", [0.05, 0.7, 3.0])
def test_dispersion_kernel_has_unit_area_and_its_torch_twin_agrees(tau):
    from skperfusion.physics import dispersion_kernel
    from skperfusion.physics.torch_ops import dispersion_kernel_torch

    tr = 0.5
    t = np.arange(80) * tr
    kernel = dispersion_kernel(t, tau, tr)
    # Unit area under the convolution's own rule, even for tau << tr.
    assert tr * np.trapezoid(kernel) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(kernel, np.exp(-t / tau) / (tr * np.trapezoid(np.exp(-t / tau))))
    taus = torch.tensor([[tau], [2 * tau]], dtype=torch.float64)
    twin = dispersion_kernel_torch(torch.as_tensor(t), taus, tr)
    np.testing.assert_allclose(twin[0].numpy(), kernel, rtol=1e-12)
    np.testing.assert_allclose(twin[1].numpy(), dispersion_kernel(t, 2 * tau, tr), rtol=1e-12)
    # Convolving a bolus with it conserves the bolus area.
    bolus = np.exp(-0.5 * ((t - 10.0) / 1.5) ** 2)
    dispersed = convolve_aif(bolus, kernel, tr)
    assert np.trapezoid(dispersed) == pytest.approx(np.trapezoid(bolus), rel=1e-3)
