"""Behaviour shared by the SVD and Tikhonov deconvolvers."""

import functools
import pickle

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn_checks import ODD_COLUMN_CHECKS, check_odd_column_substitutes

from skperfusion import (
    ConcentrationTransformer,
    OSVDDeconvolver,
    TikhonovDeconvolver,
    pair_curves,
)
from skperfusion.datasets import gamma_variate, simulate_concentration

EXPECTED_FAILED_CHECKS = ODD_COLUMN_CHECKS  # see tests/sklearn_checks.py

DECONVOLVERS = [
    OSVDDeconvolver(),
    OSVDDeconvolver(method="cSVD"),
    OSVDDeconvolver(method="sSVD"),
    TikhonovDeconvolver(),
    TikhonovDeconvolver(lambda_selection="lcurve"),
    TikhonovDeconvolver(lambda_selection="fixed"),
]
AIF = functools.partial(gamma_variate, t0=10.0, peak=100.0)


# cSVD and the fixed-λ Tikhonov differ from these only in the filter; they
# share every sklearn-facing code path (tests below cover all six).
@parametrize_with_checks([DECONVOLVERS[i] for i in (0, 2, 3, 4)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", DECONVOLVERS, ids=repr)
def test_odd_column_checks_hold_on_even_width_curves(estimator):
    check_odd_column_substitutes(estimator, _curves(n=24)[0])


def _curves(n=6, tr=1.0, n_times=60, mtt=6.0, delay=0.0):
    cbf = np.linspace(10.0, 70.0, n)
    tissue, aif = simulate_concentration(AIF, tr, cbf, np.full(n, mtt), delay=delay,
                                         n_times=n_times)
    return pair_curves(tissue, aif), cbf


@pytest.mark.parametrize("estimator", DECONVOLVERS, ids=repr)
def test_pandas_output_pickle_and_dtype(estimator):
    X, _ = _curves()
    fitted = estimator.fit(X)
    maps = fitted.transform(X)
    frame = fitted.set_output(transform="pandas").transform(X)
    assert list(frame.columns) == ["CBF", "CBV", "MTT", "Tmax"]
    np.testing.assert_allclose(frame.to_numpy(), maps)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.transform(X).to_numpy(), maps)
    maps32 = estimator.set_output(transform="default").fit_transform(X.astype(np.float32))
    assert maps32.dtype == np.float32
    np.testing.assert_allclose(maps32, maps, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("deconvolver", [OSVDDeconvolver(tr=1.5), TikhonovDeconvolver(tr=1.5)],
                         ids=repr)
def test_pipeline_on_signals(deconvolver):
    te = 0.03
    concentration, cbf = _curves(tr=1.5)
    signals = 100.0 * np.exp(-te * concentration)
    pipe = Pipeline([("conc", ConcentrationTransformer(te=te, n_baseline=6)),
                     ("deconv", deconvolver)])
    maps = pipe.fit(signals).transform(signals)
    direct = deconvolver.fit_transform(concentration)
    np.testing.assert_allclose(maps, direct, rtol=1e-2, atol=1e-2)
    assert np.all(np.abs(maps[:, 0] / cbf - 1) < 0.25)


@pytest.mark.parametrize("estimator", DECONVOLVERS, ids=repr)
def test_per_sample_aif_matches_shared(estimator):
    X, _ = _curves()
    per_sample = X.copy()
    per_sample[1:, 1] *= 1.0 + 1e-12 * np.arange(1, len(X))[:, None]
    shared = estimator.fit_transform(X)
    np.testing.assert_allclose(estimator.fit_transform(per_sample), shared, rtol=1e-6)


@pytest.mark.parametrize("estimator", DECONVOLVERS, ids=repr)
def test_degenerate_voxels_are_isolated(estimator):
    X, _ = _curves(n=4)
    clean = estimator.fit_transform(X)
    rng = np.random.default_rng(0)
    bad = np.concatenate([X, X[:3]])
    bad[4, 0] = 0.0                                     # flat tissue
    bad[5, 0] = rng.normal(0.0, 0.1, X.shape[-1])       # noise only
    bad[6, 1] = 0.0                                     # zero AIF
    maps = estimator.fit_transform(bad)
    np.testing.assert_allclose(maps[:4], clean)
    assert not np.any(np.isinf(maps[4:]))
    assert np.all(np.isnan(maps[6, 1:3]))                # no AIF area: no CBV, MTT


@pytest.mark.parametrize("tr, n_times", [(1.0, 90), (1.5, 60)])
@pytest.mark.parametrize("family", ["exponential", "gamma"])
def test_cbv_matches_truth(family, tr, n_times):
    # CBV (eq. 2) does not depend on the deconvolution; 60 frames at TR = 1 s
    # truncate the MTT = 12 s tail (-3 %), hence 90 frames there.
    mtt = np.repeat([2.0, 4.0, 8.0, 12.0], 2)
    cbf = np.tile([10.0, 70.0], 4)
    tissue, aif = simulate_concentration(AIF, tr, cbf, mtt, family=family, n_times=n_times)
    for estimator in (OSVDDeconvolver(tr=tr), TikhonovDeconvolver(tr=tr)):
        cbv = estimator.fit_transform(pair_curves(tissue, aif))[:, 1]
        np.testing.assert_allclose(cbv, cbf * mtt / 60.0, rtol=0.02)


@pytest.mark.parametrize("estimator", DECONVOLVERS, ids=repr)
def test_conventions_on_curves(estimator):
    X, _ = _curves(n=7)
    flat = X.reshape(len(X), -1)
    maps = estimator.fit_transform(X)
    params = estimator.get_params()
    np.testing.assert_allclose(estimator.fit(flat).transform(flat), maps)
    np.testing.assert_allclose(estimator.transform(X[::-1]), maps[::-1], rtol=1e-10)
    np.testing.assert_allclose(estimator.transform(X[2:4]), maps[2:4], rtol=1e-10)
    assert estimator.get_params() == params
    read_only = np.asfortranarray(X)
    read_only.setflags(write=False)
    np.testing.assert_allclose(estimator.fit_transform(read_only), maps)


@pytest.mark.parametrize("estimator", DECONVOLVERS, ids=repr)
def test_wrong_time_length_is_rejected(estimator):
    X, _ = _curves()
    estimator.fit(X)
    with pytest.raises(ValueError, match="features"):
        estimator.transform(X[:, :, :-1])
