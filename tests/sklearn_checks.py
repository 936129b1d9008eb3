"""Expected failures of scikit-learn's estimator checks shared by the curve estimators.

These checks feed a flat X with an odd number of columns (3 or 5 features),
which cannot be split into ``[tissue | aif]``: a clear error is the
right answer. :func:`check_odd_column_substitutes` checks the same properties
on valid even-column curves; each test module runs it on its estimators.
"""

import functools
import inspect
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

ODD_COLUMNS = "feeds a flat X with an odd number of columns, not [tissue | aif] of equal halves"

ODD_COLUMN_CHECKS = dict.fromkeys([
    "check_fit_score_takes_y",
    "check_dont_overwrite_parameters",
    "check_estimators_dtypes",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_dict_unchanged",
    "check_fit2d_predict1d",
], ODD_COLUMNS)


def check_odd_column_substitutes(estimator, X):
    """The properties of the ODD_COLUMN_CHECKS, on valid (even-width) curves ``X``.

    ``X`` is a channel-form array ``(n_samples, 2, n_times)`` of at least 20
    samples that ``estimator`` accepts (or ``(n_samples, 2, n_echoes,
    n_times)`` for an estimator without the ``two_d_array`` tag, which then
    gets ``X`` where the others get its flat form); ``estimator`` is
    unfitted and seeded (refits must give the same result).
    """
    tags = estimator.__sklearn_tags__().input_tags
    flat = X.reshape(len(X), -1) if tags.two_d_array else X
    close = functools.partial(np.testing.assert_allclose, rtol=1e-6)  # memory layouts differ

    def fitted(data=flat, y=None):
        return clone(estimator).fit(data, y)

    # check_fit_score_takes_y: y is the second parameter of every method, and ignored.
    for method in ("fit", "fit_transform", "score"):
        if hasattr(estimator, method):
            assert list(inspect.signature(getattr(estimator, method)).parameters)[1] == "y"
    reference = fitted().transform(flat)
    close(fitted(flat, np.arange(len(X))).transform(flat), reference)
    # check_dont_overwrite_parameters, check_dict_unchanged.
    model = clone(estimator)
    params = pickle.dumps(model.get_params())
    model.fit(flat)
    assert pickle.dumps(model.get_params()) == params
    state = dict(vars(model))  # as scikit-learn's check: the same attribute objects
    model.transform(flat)
    assert vars(model) == state
    # check_transformer_general, check_pipeline_consistency, check_estimators_pickle.
    close(clone(estimator).fit_transform(flat), reference)
    close(make_pipeline(clone(estimator)).fit(flat).transform(flat),
                                  reference)
    close(pickle.loads(pickle.dumps(model)).transform(flat), reference)
    close(np.reshape(model.transform(X), reference.shape), reference)  # transformers keep X's form
    # check_estimators_dtypes, check_transformer_preserve_dtypes.
    for dtype in (np.float32, np.float64):
        assert fitted(flat.astype(dtype)).transform(flat.astype(dtype)).dtype == dtype
    # check_f_contiguous_array_estimator, check_transformer_data_not_an_array.
    close(model.transform(np.asfortranarray(flat)), reference)
    close(model.transform(flat.tolist()), reference)
    # check_methods_sample_order_invariance, check_methods_subset_invariance.
    order = np.random.default_rng(0).permutation(len(X))
    close(model.transform(flat[order]), reference[order])
    close(np.concatenate([model.transform(part)
                                               for part in np.array_split(flat, 3)]),
                               reference)
    # check_estimators_nan_inf (run by scikit-learn unless the allow_nan tag
    # is set, e.g. NaN rows that stay NaN), check_fit2d_predict1d.
    for bad in () if tags.allow_nan else (np.nan, np.inf):
        corrupted = flat.copy()
        corrupted[0, 1] = bad
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            clone(estimator).fit(corrupted)
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            model.transform(corrupted)
    with pytest.raises(ValueError, match=r"1 dimensions|Reshape your data|shape"):
        model.transform(flat[0])
