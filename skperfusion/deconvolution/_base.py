"""Shared base of the voxel-level deconvolvers."""

import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from joblib import cpu_count
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._docs import fill_doc
from .._warnings import warn
from ..curves import validate_curves
from ..physics import DEFAULT_DENSITY, DEFAULT_HEMATOCRIT_FACTOR


def _thread_limit():
    """Threads for the chunks: the usable cores, capped by ``OMP_NUM_THREADS`` when set.

    joblib's process workers and dask's set ``OMP_NUM_THREADS`` to their share
    of the cores, so nested parallelism does not oversubscribe them.
    """
    limit = cpu_count()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(limit, int(omp)) if omp.isdigit() and int(omp) > 0 else limit


PERFUSION_MAPS = ("CBF", "CBV", "MTT", "Tmax")
"""Output columns of every deconvolver, with units ml/100g/min, ml/100g, s, s."""


class BaseDeconvolver(TransformerMixin, BaseEstimator):
    """Base class of the deconvolvers: ``(C, Ca)`` curves to perfusion maps.

    Subclasses implement ``_deconvolve(tissue, aif)`` returning an array of
    shape ``(n_samples, 4)`` with the columns of :data:`PERFUSION_MAPS` (or
    ``_deconvolve_curves(curves)`` taking the paired chunk), and
    may override ``_fit_curves(tissue, aif)`` to learn from the curves
    (the PHAE); the SVD and Tikhonov deconvolvers are stateless.

    Parameters
    ----------
    tr : float
        Sampling interval (repetition time) in seconds.
    kh : float
        Haematocrit correction factor ``kH``, dimensionless.
    rho : float
        Brain density in g/ml.
    chunk_size : int or None
        Voxels processed at once in ``transform``; bounds the memory. None
        (torch deconvolvers) takes the class's default for the estimator's
        ``device``, :attr:`default_chunk_sizes`.
    """

    _parameter_constraints: dict = {
        "tr": [Interval(Real, 0, None, closed="neither")],
        "kh": [Interval(Real, 0, None, closed="neither")],
        "rho": [Interval(Real, 0, None, closed="neither")],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
    }

    default_chunk_sizes = {"cpu": 4096}
    """Voxels per chunk where ``chunk_size`` is None, by device type: a GPU needs
    chunks large enough to keep it busy, a CPU small ones that stay in cache."""

    _threaded_chunks = False
    # A model fit bounded in its parameters: voxels ending on a bound are NaN (QC counts them).
    _bounded_fit = False

    def __init__(self, tr=1.0, kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY,
                 chunk_size=4096):
        self.tr = tr
        self.kh = kh
        self.rho = rho
        self.chunk_size = chunk_size

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the curves and record the number of time points.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Tissue and arterial concentration curves, see
            :func:`skperfusion.pair_curves`.
        y : None
            Ignored; deconvolution needs no target.

        Returns
        -------
        self : object
            Fitted deconvolver.
        """
        curves, _ = validate_curves(self, X, reset=True)
        self.n_times_ = curves.shape[2]
        self._fit_curves(curves[:, 0], curves[:, 1])
        return self

    def _fit_curves(self, tissue, aif):
        """Learn from training curves; stateless deconvolvers learn nothing."""

    @fill_doc
    def transform(self, X):
        """Compute perfusion maps for every sample.

        %(X_fitted_curves_returns)s
        maps : ndarray of shape (n_samples, 4)
            Columns ``CBF`` (ml/100g/min), ``CBV`` (ml/100g), ``MTT`` (s) and
            ``Tmax`` (s); NaN where a voxel has no defined value (e.g. a
            non-positive AIF area) and for Tmax where the method does not
            estimate it. Every map is NaN for a sample whose AIF has no
            positive value (a zero AIF: no bolus to deconvolve by), with one
            warning counting them.
        """
        without_aif = []

        def deconvolve(curves):
            maps = self._deconvolve_curves(curves)
            no_bolus = ~(curves[:, 1].max(axis=1) > 0)
            if no_bolus.any():
                maps[no_bolus] = np.nan
                without_aif.append(int(no_bolus.sum()))
            return maps

        maps = np.concatenate(list(self._map_chunks(X, deconvolve)))
        if without_aif:
            warn(f"{sum(without_aif)} of {len(maps)} sample(s) have an AIF with no "
                 f"positive value (a zero AIF); {type(self).__name__} gives them NaN "
                 "maps (CBF is undefined, not 0).", UserWarning)
        return maps

    def _deconvolve_curves(self, curves):
        """Maps of a chunk of paired curves of shape ``(n, 2, n_times)``.

        Splits them for :meth:`_deconvolve`; a torch deconvolver overrides it
        to move each chunk to its device in one copy.
        """
        return self._deconvolve(curves[:, 0], curves[:, 1])

    def _chunk_length(self):
        """``chunk_size``, or where it is None the default for the device type."""
        if self.chunk_size is not None:
            return self.chunk_size
        device_type = str(getattr(self, "device", "cpu")).split(":")[0]
        return self.default_chunk_sizes.get(device_type, self.default_chunk_sizes["cpu"])

    def _map_chunks(self, X, function):
        """Validate ``X`` against ``fit`` and apply ``function(curves)`` chunk by chunk.

        ``curves`` is a chunk of shape ``(n, 2, n_times)`` (tissue, AIF).

        Chunks of ``chunk_size`` voxels bound the memory of the intermediate
        arrays; each result is cast to the input's floating dtype. Where
        ``_threaded_chunks`` is true (numpy and scipy work that releases the
        GIL), the chunks run in a thread per available core (at most
        ``OMP_NUM_THREADS`` when set).
        """
        check_is_fitted(self)
        curves, _ = validate_curves(self, X, reset=False)

        chunk_length = self._chunk_length()

        def run(start):
            with np.errstate(all="ignore"):
                return function(curves[start:start + chunk_length]).astype(curves.dtype,
                                                                           copy=False)

        starts = range(0, curves.shape[0], chunk_length)
        threads = min(_thread_limit(), len(starts)) if self._threaded_chunks else 1
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                yield from pool.map(run, starts)
        else:
            yield from map(run, starts)

    def get_feature_names_out(self, input_features=None):
        """Names of the output maps.

        Parameters
        ----------
        input_features : array_like of str or None, default=None
            Ignored; the outputs do not depend on the input names.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``["CBF", "CBV", "MTT", "Tmax"]``.
        """
        check_is_fitted(self)
        return np.asarray(PERFUSION_MAPS, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = False
        return tags
