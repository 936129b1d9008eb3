"""Signals to perfusion maps in one sklearn Pipeline, with interchangeable deconvolvers."""

from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from skperfusion import ConcentrationTransformer, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.deconvolution import OSVDDeconvolver, TikhonovDeconvolver
from skperfusion.physics import cbv_from_curves

TE = 0.03
CBF = np.array([10.0, 25.0, 40.0, 55.0, 70.0, 30.0])
MTT = np.array([2.0, 4.0, 6.0, 8.0, 12.0, 3.0])
DECONVOLVERS = [OSVDDeconvolver, TikhonovDeconvolver]


def _concentrations(tr, n_times, family="exponential", n_skip=0):
    """Tissue and arterial concentrations of simulated voxels with known CBF and MTT."""
    aif = partial(gamma_variate, t0=10.0 + n_skip * tr, peak=40.0)
    return simulate_concentration(aif, tr, CBF, MTT, family=family, n_times=n_times + n_skip)


def _signals(tr, n_times, family="exponential", n_skip=0):
    """DSC signals S = S0 exp(-TE C) of :func:`_concentrations`, zero before the bolus."""
    tissue, arterial = _concentrations(tr, n_times, family, n_skip)
    X = pair_curves(400.0 * np.exp(-TE * tissue), 900.0 * np.exp(-TE * arterial))
    X[:, :, :n_skip] *= 2.5  # non-steady-state frames, to be skipped
    return X


def _pipeline(deconvolver, tr, **conc_params):
    return Pipeline([("conc", ConcentrationTransformer(te=TE, **conc_params)),
                     ("deconv", deconvolver(tr=tr))])


@pytest.mark.parametrize("deconvolver", DECONVOLVERS)
@pytest.mark.parametrize("family", ["exponential", "gamma"])
@pytest.mark.parametrize(("tr", "n_times"), [(1.0, 80), (1.5, 60)])
def test_pipeline_recovers_cbv_from_signals(deconvolver, family, tr, n_times):
    X = _signals(tr, n_times, family)
    maps = _pipeline(deconvolver, tr).fit(X).transform(X)
    assert maps.shape == (6, 4)
    # The signals' baseline is exactly S0 (no agent before the bolus), so the
    # conversion is exact and CBV is eq. 2 on the simulated concentrations, to
    # rounding (the central volume theorem itself is tested in test_physics.py).
    np.testing.assert_allclose(maps[:, 1], cbv_from_curves(*_concentrations(tr, n_times, family)),
                               rtol=1e-9)
    assert np.all(np.isfinite(maps[:, :3]))


def test_swapping_the_deconvolver_changes_nothing_else():
    X = _signals(1.0, 80)
    pipeline = _pipeline(OSVDDeconvolver, 1.0)
    osvd = pipeline.fit_transform(X)
    tikhonov = pipeline.set_params(deconv=TikhonovDeconvolver(tr=1.0)).fit_transform(X)
    # Same columns; CBV comes from eq. 2 on the same concentrations in both.
    assert list(pipeline.get_feature_names_out()) == ["CBF", "CBV", "MTT", "Tmax"]
    np.testing.assert_allclose(tikhonov[:, 1], osvd[:, 1], rtol=1e-10)


@pytest.mark.parametrize("deconvolver", DECONVOLVERS)
def test_pipeline_takes_the_flat_form_and_gives_pandas(deconvolver):
    X = _signals(1.0, 60)
    pipeline = _pipeline(deconvolver, 1.0)
    expected = pipeline.fit(X).transform(X)
    np.testing.assert_allclose(pipeline.fit(X.reshape(6, -1)).transform(X.reshape(6, -1)),
                               expected, rtol=1e-10)
    frame = pipeline.set_output(transform="pandas").fit(X).transform(X)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["CBF", "CBV", "MTT", "Tmax"]
    np.testing.assert_allclose(frame.to_numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("deconvolver", DECONVOLVERS)
def test_skipping_frames_and_aif_peak_normalisation_leave_the_maps_unchanged(deconvolver):
    reference = _signals(1.0, 70)
    expected = _pipeline(deconvolver, 1.0).fit_transform(reference)
    # Skipped non-steady-state frames (signal 2.5x too high) would otherwise spoil S0.
    shifted = _signals(1.0, 70, n_skip=3)
    maps = _pipeline(deconvolver, 1.0, n_skip=3).fit_transform(shifted)
    np.testing.assert_allclose(maps, expected, rtol=1e-8)
    # Dividing both channels by the AIF peak cancels in every map.
    maps = _pipeline(deconvolver, 1.0, normalize_by_aif_peak=True).fit_transform(reference)
    np.testing.assert_allclose(maps, expected, rtol=1e-8)
