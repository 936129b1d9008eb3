"""TikhonovDeconvolver against explicit matrices and ground truth."""

import functools

import numpy as np
import pytest
import scipy.linalg
from sklearn.utils._param_validation import InvalidParameterError

from skperfusion import TikhonovDeconvolver, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.deconvolution.tikhonov import LAMBDA_GRID

AIF = functools.partial(gamma_variate, t0=10.0, peak=100.0)
MTTS = np.array([2.0, 4.0, 8.0, 12.0])
# Worst noise-free CBF error measured (benchmarks/bench_accuracy.py) plus ~2 %;
# the residue peak misses CBF at short MTT as for SVD (see test_svd.py). The
# L-curve never goes below λ = σmin, which regularises short MTTs a bit more.
CBF_TOLERANCE = {
    "gcv": {2.0: 0.40, 4.0: 0.21, 8.0: 0.11, 12.0: 0.14},
    "lcurve": {2.0: 0.44, 4.0: 0.23, 8.0: 0.11, 12.0: 0.14},
}


def _noisy(tr=1.0, n_times=30, n=6, seed=0):
    rng = np.random.default_rng(seed)
    tissue, aif = simulate_concentration(AIF, tr, rng.uniform(10, 70, n), rng.uniform(2, 12, n),
                                         n_times=n_times)
    tissue += rng.normal(0.0, 0.05 * tissue.max(), tissue.shape)
    return pair_curves(tissue, aif)


def _dense(X, tr):
    n_times = X.shape[-1]
    matrix = scipy.linalg.circulant(tr * np.r_[X[0, 1], np.zeros(n_times)])
    tissue = np.c_[X[:, 0], np.zeros((len(X), n_times))]
    return matrix, tissue


def _dense_solution(matrix, tissue, lam):
    gram = matrix.T @ matrix + lam**2 * np.eye(len(matrix))
    return np.linalg.solve(gram, matrix.T @ tissue)


def test_fixed_lambda_matches_explicit_solution():
    tr = 1.5
    X = _noisy(tr)
    matrix, tissue = _dense(X, tr)
    lam = 0.1 * np.linalg.norm(matrix, 2)
    expected = _dense_solution(matrix, tissue.T, lam).T
    residues = TikhonovDeconvolver(tr=tr, lambda_selection="fixed").fit(X).residues(X)
    np.testing.assert_allclose(residues, expected, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("criterion", ["gcv", "lcurve"])
def test_lambda_selection_matches_explicit_criterion(criterion):
    tr = 1.0
    X = _noisy(tr)
    matrix, tissue = _dense(X, tr)
    lambdas = np.linalg.norm(matrix, 2) * LAMBDA_GRID
    residual, norm, trace = [], [], []
    for lam in lambdas:
        solution = _dense_solution(matrix, tissue.T, lam)
        influence = matrix @ _dense_solution(matrix, np.eye(len(matrix)), lam)
        residual.append(np.sum((matrix @ solution - tissue.T) ** 2, axis=0))
        norm.append(np.sum(solution**2, axis=0))
        trace.append(np.trace(np.eye(len(matrix)) - influence))
    residual, norm, trace = np.array(residual).T, np.array(norm).T, np.array(trace)
    if criterion == "gcv":
        best = np.argmin(residual / trace**2, axis=1)
    else:
        x, y = np.log(residual), np.log(norm)
        dx, dy = np.gradient(x, axis=1), np.gradient(y, axis=1)
        curvature = (dx * np.gradient(dy, axis=1) - np.gradient(dx, axis=1) * dy) / (
            dx**2 + dy**2) ** 1.5
        best = 1 + np.argmax(curvature[:, 1:-1], axis=1)
    assert len(set(best)) > 1 or criterion == "lcurve"     # λ really is per voxel
    expected = np.stack([_dense_solution(matrix, tissue[i], lambdas[k])
                         for i, k in enumerate(best)])
    residues = TikhonovDeconvolver(tr=tr, lambda_selection=criterion).fit(X).residues(X)
    np.testing.assert_allclose(residues, expected, atol=1e-8 * np.abs(expected).max())


@pytest.mark.parametrize("criterion", ["gcv", "lcurve"])
@pytest.mark.parametrize("tr", [1.0, 1.5])
@pytest.mark.parametrize("family", ["exponential", "gamma"])
def test_noise_free_accuracy_and_delay(family, tr, criterion):
    mtt, cbf = (g.ravel() for g in np.meshgrid(MTTS, [10.0, 70.0]))
    estimator = TikhonovDeconvolver(tr=tr, lambda_selection=criterion)
    maps = []
    for delay in (0.0, 3.0):
        tissue, aif = simulate_concentration(AIF, tr, cbf, mtt, family=family, delay=delay,
                                             n_times=90)
        maps.append(estimator.fit_transform(pair_curves(tissue, aif)))
    tolerance = np.vectorize(CBF_TOLERANCE[criterion].get)(mtt)
    assert np.all(np.abs(maps[0][:, 0] / cbf - 1) <= tolerance)
    np.testing.assert_allclose(maps[0][:, 1], cbf * mtt / 60, rtol=0.02)
    assert np.all(np.abs(maps[0][:, 2] / mtt - 1) <= 1.02 / (1 - tolerance) - 1)
    np.testing.assert_allclose(maps[1][:, 0], maps[0][:, 0], rtol=0.05)
    np.testing.assert_allclose(maps[1][:, 3] - maps[0][:, 3], 3.0, atol=tr)


def test_invalid_parameters_are_rejected():
    X = _noisy()
    for params in ({"lambda_selection": "aic"}, {"lambda_fraction": 0.0}, {"chunk_size": 0}):
        with pytest.raises(InvalidParameterError):
            TikhonovDeconvolver(**params).fit(X)
