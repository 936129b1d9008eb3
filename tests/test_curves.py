"""Input conventions: pairing, splitting and validating curves."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from skperfusion import pair_curves, split_curves
from skperfusion.curves import validate_curves


class _Probe(BaseEstimator):
    """Bare estimator for exercising the shared validation path."""


def test_pair_broadcasts_one_aif():
    tissue = np.arange(12.0).reshape(3, 4)
    aif = np.array([5.0, 6.0, 7.0, 8.0])
    X = pair_curves(tissue, aif)
    assert X.shape == (3, 2, 4)
    np.testing.assert_array_equal(X[:, 0], tissue)
    np.testing.assert_array_equal(X[:, 1], np.tile(aif, (3, 1)))


def test_pair_takes_one_aif_per_sample_and_a_single_tissue_curve():
    tissue = np.arange(12.0).reshape(3, 4)
    aifs = tissue[::-1] + 100
    np.testing.assert_array_equal(pair_curves(tissue, aifs)[:, 1], aifs)
    single = pair_curves(np.arange(4.0), np.ones(4))
    assert single.shape == (1, 2, 4)


def test_flat_form_is_tissue_then_aif_and_splits_back():
    tissue = np.arange(12.0).reshape(3, 4)
    aif = np.array([5.0, 6.0, 7.0, 8.0])
    flat = pair_curves(tissue, aif, flat=True)
    assert flat.shape == (3, 8)
    np.testing.assert_array_equal(flat[1], [4, 5, 6, 7, 5, 6, 7, 8])
    for X in (flat, pair_curves(tissue, aif)):
        got_tissue, got_aif = split_curves(X)
        np.testing.assert_array_equal(got_tissue, tissue)
        np.testing.assert_array_equal(got_aif, np.tile(aif, (3, 1)))


def test_pair_keeps_float32_and_promotes_integers():
    assert pair_curves(np.ones((2, 3), np.float32), np.ones(3, np.float32)).dtype == np.float32
    assert pair_curves(np.ones((2, 3), int), np.ones(3, int)).dtype == np.float64


@pytest.mark.parametrize(
    ("tissue", "aif", "message"),
    [
        (np.ones((2, 3, 4)), np.ones(4), "tissue must have shape"),
        (np.ones((2, 4)), np.ones((2, 2, 4)), "aif must have shape"),
        (np.ones((2, 4)), np.ones(5), "tissue has 4 time points but aif has 5"),
        (np.ones((3, 4)), np.ones((2, 4)), "aif has 2 curves for 3 tissue curves"),
    ],
)
def test_pair_rejects_wrong_shapes(tissue, aif, message):
    with pytest.raises(ValueError, match=message):
        pair_curves(tissue, aif)


def test_validate_returns_channel_form_and_records_features():
    probe = _Probe()
    X = pair_curves(np.ones((5, 6)), np.full(6, 2.0))
    curves, was_channel = validate_curves(probe, X, reset=True)
    assert was_channel and curves.shape == (5, 2, 6) and probe.n_features_in_ == 12
    curves, was_channel = validate_curves(probe, X.reshape(5, -1), reset=False)
    assert not was_channel and curves.shape == (5, 2, 6)
    np.testing.assert_array_equal(curves, X)


def test_validate_keeps_dataframe_column_names():
    probe = _Probe()
    frame = pd.DataFrame(np.ones((3, 4)), columns=["t0", "t1", "a0", "a1"])
    curves, was_channel = validate_curves(probe, frame, reset=True)
    assert not was_channel and curves.shape == (3, 2, 2)
    assert list(probe.feature_names_in_) == ["t0", "t1", "a0", "a1"]


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.ones((4, 3, 5)), "3 channels; expected 2"),
        (np.ones((4, 1, 5)), "1 channels; expected 2"),
        (np.ones((4, 7)), "7 feature\\(s\\).*even number of columns"),
        (np.ones((4, 1)), "1 feature\\(s\\)"),
        (np.ones(8), "got an array with 1 dimensions"),
        (np.ones((2, 2, 3, 4)), "got an array with 4 dimensions"),
        (np.ones((0, 8)), "0 sample"),
    ],
)
def test_validate_rejects_wrong_shapes(X, message):
    with pytest.raises(ValueError, match=message):
        validate_curves(_Probe(), X, reset=True)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_rejects_non_finite_values(bad):
    X = np.ones((3, 2, 5))
    X[1, 1, 2] = bad
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        validate_curves(_Probe(), X, reset=True)


def test_validate_rejects_a_different_number_of_time_points_than_in_fit():
    probe = _Probe()
    validate_curves(probe, np.ones((3, 2, 5)), reset=True)
    with pytest.raises(ValueError, match="X has 12 features, but _Probe is expecting 10"):
        validate_curves(probe, np.ones((3, 2, 6)), reset=False)


def test_validate_requires_enough_time_points():
    with pytest.raises(ValueError, match="X has 2 time point\\(s\\); _Probe needs at least 3"):
        validate_curves(_Probe(), np.ones((3, 2, 2)), reset=True, min_times=3)


@pytest.mark.parametrize(("value", "kind"), [(0.0, "Zero"), (-1.0, "Negative")])
def test_validate_positive_rejects_non_positive_signal(value, kind):
    X = np.ones((3, 2, 5))
    X[2, 0, 4] = value
    validate_curves(_Probe(), X, reset=True)  # fine for concentrations
    with pytest.raises(ValueError, match=f"{kind} values in data passed to _Probe.*> 0"):
        validate_curves(_Probe(), X, reset=True, positive=True)
