"""Contrast-agent leakage correction of ΔR2* curves: BSW and the bidirectional model.

In an enhancing tumour the agent leaks out of the vessels. The leaked agent
shortens T1 (the signal rises, ``ΔR2*`` falls below its vascular part) and
adds a T2* effect of its own (``ΔR2*`` rises); both bias CBV and CBF. See
``docs/user_guide/leakage.rst`` and the pure formulas in
:mod:`skperfusion.physics.leakage`.
"""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from .._options import LEAKAGE_METHODS
from .._warnings import warn
from ..curves import AIF, TISSUE, validate_curves
from ..physics.leakage import (
    bsw_design_matrix,
    bsw_fit,
    convolution_matrix,
    cumulative_integral,
    exchange_fit,
)
from .concentration import detect_baseline_frames

__all__ = ["CORRECTION_METHODS", "LeakageCorrector", "LeakageWarning"]

CORRECTION_METHODS = tuple(method for method in LEAKAGE_METHODS if method != "none")
"""Correction methods of :class:`LeakageCorrector`: the exam pipeline's ``leakage``
options (``skperfusion._options.LEAKAGE_METHODS``) but ``"none"``."""

BOLUS_SD = 5.0
"""A voxel has a bolus where its ΔR2* peak exceeds this many baseline sd."""

VESSEL_PEAK = 3.0
"""Voxels peaking above this many times the median peak are vessels, not tissue."""

TAIL_TOLERANCE = 0.02
"""Tail deviation, as a fraction of the voxel's peak, always tolerated (noise-free data)."""

MIN_REFERENCE_VOXELS = 10
"""Fewer non-enhancing voxels than this gives a warning (a noisy reference)."""

MIN_FRAMES = 8
"""Fewest frames that can carry a leakage correction (baseline, bolus, tail)."""

_N_KEP = 41


class LeakageWarning(UserWarning):
    """Leakage correction of doubtful or no use: few, noisy or no reference voxels.

    :class:`LeakageCorrector` warns with it; the exam step
    (:class:`~skperfusion.exam.ExamToCurves`) gathers a corrector's warnings
    into one per exam, naming the subject, so a study can filter or count
    them by this category.
    """


class LeakageCorrector(TransformerMixin, BaseEstimator):
    """Correct ΔR2* curves for contrast-agent leakage (BSW or bidirectional).

    ``fit`` finds the **non-enhancing voxels** of ``X`` and averages their
    tissue curves into the reference ``R̄`` (:attr:`reference_curve_`);
    ``transform`` returns the curves with the leakage term removed (the
    arterial channel is passed through). Rule for non-enhancing voxels:

    1. baseline frames from the arterial channel (``n_baseline``, or detected
       with :func:`~skperfusion.preprocessing.detect_baseline_frames`); ``σ``
       is each voxel's baseline standard deviation (1/s);
    2. the *tail* is the last ``tail_fraction`` of the frames, after the
       first pass; ``tail`` its mean and ``peak`` the voxel's maximum;
    3. voxels with a bolus (``peak > 5 σ``) set the normal tail-to-peak ratio
       ``ρ`` (median; recirculation keeps it above 0); voxels peaking above
       3 times their median peak are vessels (arteries, sinus) and left out;
    4. a voxel is non-enhancing where
       ``|tail - ρ · peak| <= n_sd · σ / sqrt(n_tail) + 0.02 · peak``: its
       post-bolus tail mean stays within ``n_sd`` standard errors (baseline sd
       over the ``n_tail`` tail frames) of where a non-leaky curve of that peak
       returns, plus 2 % of the peak for the spread of normal transit times.
       Leaky voxels sit below (T1) or above (T2*) it; a tail below the
       baseline (``tail < -tolerance``) is T1 leakage in any case.

    Fit it on whole-brain voxels (mostly normal tissue), not on the tumour
    or a few voxels; :class:`~skperfusion.exam.ExamToCurves` fits it on
    each exam's brain voxels whatever voxels it is asked for.

    **BSW** (Boxerman, Schmainda & Weisskoff 2006, eq. 4 there)::

        ΔR2*(t) = K1 · R̄(t) - K2 · ∫_0^t R̄(s) ds,
        ΔR2*_corrected(t) = ΔR2*(t) + K2 · ∫_0^t R̄(s) ds,

    one least-squares solve shared by all voxels (:func:`~skperfusion.physics.bsw_fit`).
    It assumes that the tissue's transit is that of ``R̄``; a tumour with
    a longer MTT is then partly mis-read as leakage.

    **Bidirectional** (Bjørnerud, Sorensen, Mouridsen & Emblem 2011): the
    curve is the AIF ``Ca`` convolved with an apparent impulse response that
    holds the vascular part and a bidirectional (efflux ``kep``) exchange
    term::

        C(t) = Ca ⊗ [f · R(t) - K2 · exp(-kep · t)],
        C_corrected(t) = C(t) + K2 · (Ca ⊗ exp(-kep · t))(t).

    The apparent impulse response is obtained by a Tikhonov-regularised
    linear deconvolution with the voxel's AIF, and ``K2 · exp(-kep t)`` is
    fitted to its samples after ``tail_start`` seconds, when ``f · R`` has
    decayed (capillary transit: seconds; exchange: minutes, hence
    ``kep <= max_kep``). Fitted in the residue domain, it does not assume the
    tissue's MTT. ``kep`` is picked on a grid of 41 values in ``[0, max_kep]``.

    Parameters
    ----------
    method : {"bsw", "bidirectional"}, default="bsw"
        Leakage model.
    tr : float, default=1.0
        Sampling interval in seconds (> 0).
    n_baseline : int or None, default=None
        Pre-bolus frames; None detects them from the arterial channel.
    n_sd : float, default=2.0
        Tolerance of the non-enhancing rule, in baseline sd.
    tail_fraction : float, default=0.25
        Fraction of the last frames that make the post-bolus tail, in (0, 1).
    tail_start : float, default=30.0
        Bidirectional only: first lag (s) of the residue tail that is fitted.
    max_kep : float, default=0.02
        Bidirectional only: largest efflux rate (1/s) of the kep grid.
    regularization : float, default=0.1
        Bidirectional only: Tikhonov parameter relative to the largest
        singular value of the convolution matrix.
    significance : float, default=2.0
        A voxel's ``K2`` is kept only where ``|K2| > significance`` times its
        standard error (from the fit residuals); elsewhere ``K2 = 0`` and the
        curve is left as it is, so that noise and small transit differences
        of normal tissue are not "corrected". 0 corrects every voxel.

    Attributes
    ----------
    reference_curve_ : ndarray of shape (n_times,)
        Mean tissue ΔR2* of the non-enhancing voxels, in the unit of ``X``.
    reference_voxels_ : ndarray of bool, shape (n_samples_fit,)
        Which fitted samples made the reference.
    n_baseline_ : int
        Baseline frames used in ``fit``.
    correctable_ : bool
        False where the data cannot carry a correction (a warning said so);
        ``transform`` is then the identity.
    n_times_ : int
        Time points per channel.
    n_features_in_ : int
        Number of flat features seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    skperfusion.physics.bsw_design_matrix : The BSW design matrix.
    skperfusion.physics.exchange_fit : The bidirectional tail fit.

    Notes
    -----
    Rows with NaN (voxels marked degenerate upstream) give NaN, without
    touching the others. ``K2`` is in 1/s in both models, positive for
    T1-dominant leakage; in BSW relative to ``R̄``, in the bidirectional
    model relative to the AIF.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.preprocessing import LeakageCorrector
    >>> t = np.arange(60.0)
    >>> bolus = np.where(t > 10, (t - 10) ** 3 * np.exp(-(t - 10) / 1.5), 0.0)
    >>> reference = bolus / bolus.max()
    >>> aif = 5 * reference
    >>> leaky = reference - 0.01 * np.cumsum(reference)
    >>> X = np.stack([np.stack([c, aif]) for c in [reference] * 20 + [leaky]])
    >>> corrector = LeakageCorrector(tr=1.0, n_baseline=8).fit(X)
    >>> round(float(corrector.leakage_parameters(X)["K2"][-1]), 3)
    0.01
    """

    _parameter_constraints: ClassVar[dict] = {
        "method": [StrOptions(set(CORRECTION_METHODS))],
        "tr": [Interval(Real, 0, None, closed="neither")],
        "n_baseline": [Interval(Integral, 2, None, closed="left"), None],
        "n_sd": [Interval(Real, 0, None, closed="left")],
        "tail_fraction": [Interval(Real, 0, 1, closed="neither")],
        "tail_start": [Interval(Real, 0, None, closed="left")],
        "max_kep": [Interval(Real, 0, None, closed="left")],
        "regularization": [Interval(Real, 0, None, closed="neither")],
        "significance": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, method="bsw", tr=1.0, n_baseline=None, n_sd=2.0, tail_fraction=0.25,
                 tail_start=30.0, max_kep=0.02, regularization=0.1, significance=2.0):
        self.method = method
        self.tr = tr
        self.n_baseline = n_baseline
        self.n_sd = n_sd
        self.tail_fraction = tail_fraction
        self.tail_start = tail_start
        self.max_kep = max_kep
        self.regularization = regularization
        self.significance = significance

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Find the non-enhancing voxels and their mean curve ``R̄``.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Tissue and arterial ΔR2* (1/s) of many voxels, mostly normal tissue.
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted corrector.

        Raises
        ------
        ValueError
            Every sample holds NaN, or no non-enhancing voxel is found (e.g.
            only leaky tumour voxels were given).

        Warns
        -----
        LeakageWarning
            Data that cannot carry a leakage correction (fewer than 8 frames,
            no post-bolus tail after the baseline, a zero or degenerate
            reference): ``transform`` then returns the curves unchanged and
            the parameters are NaN. Also a noise-like or few-voxel reference.
        """
        curves, _ = validate_curves(self, X, reset=True, allow_nan=True)
        n_times = curves.shape[2]
        finite = np.all(np.isfinite(curves), axis=(1, 2))
        if not finite.any():
            raise ValueError("every sample of X holds NaN; no reference curve can be formed.")
        tissue = curves[:, TISSUE].astype(float)
        n_baseline = self._baseline_frames(curves[finite, AIF], n_times)
        n_tail = max(2, int(np.ceil(self.tail_fraction * n_times)))
        self.n_times_ = n_times
        self.n_baseline_ = n_baseline
        if n_baseline >= n_times:
            return self._uncorrectable(tissue, finite, "the arterial channel shows no bolus "
                                       "(every frame is baseline)")
        if n_times < MIN_FRAMES or n_baseline + n_tail > n_times:
            return self._uncorrectable(
                tissue, finite, f"{n_times} frames with {n_baseline} baseline and {n_tail} "
                f"tail frames (tail_fraction={self.tail_fraction}) leave no post-bolus tail")
        reference = _non_enhancing(tissue, finite, n_baseline, n_tail, self.n_sd)
        n_reference = int(reference.sum())
        if n_reference == 0:
            raise ValueError(
                "no non-enhancing voxels found: no curve returns to the normal post-bolus "
                f"level within n_sd={self.n_sd} baseline sd; fit on whole-brain voxels.")
        if n_reference < MIN_REFERENCE_VOXELS:
            warn(f"only {n_reference} non-enhancing voxel(s) make the leakage "
                 "reference curve; it will be noisy.", LeakageWarning)
        curve = tissue[reference].mean(axis=0)
        noise = curve[:n_baseline].std(ddof=1)
        if not curve.max() > BOLUS_SD * noise:
            warn(
                f"the leakage reference curve (mean of {n_reference} voxels) peaks at "
                f"{curve.max():.3g}, not above {BOLUS_SD:g} times its baseline sd "
                f"({noise:.3g}): it looks like noise, and so will the correction.",
                LeakageWarning)
        singular = np.linalg.svd(bsw_design_matrix(curve, self.tr), compute_uv=False)
        if not singular[-1] > 1e-8 * singular[0]:
            return self._uncorrectable(tissue, finite, "the reference curve is zero or "
                                       "degenerate")
        self.reference_curve_ = curve
        self.reference_voxels_ = reference
        self.correctable_ = True
        if self.method == "bidirectional":
            _tail_lags(n_times, self.tr, self.tail_start, self.tail_fraction,
                       int(np.argmax(curves[finite, AIF][0])))
        return self

    def _uncorrectable(self, tissue, finite, reason):
        warn(f"{reason}: these data cannot carry a leakage correction; transform "
             "returns the curves unchanged and the leakage parameters are NaN.",
             LeakageWarning)
        self.reference_curve_ = tissue[finite].mean(axis=0)
        self.reference_voxels_ = finite
        self.correctable_ = False
        return self

    def _baseline_frames(self, aif, n_times):
        if self.n_baseline is not None:
            return min(self.n_baseline, n_times)
        # The arterial ΔR2* rises with the bolus: the signal-drop detector on -ΔR2*.
        return int(max(2, detect_baseline_frames(-aif[:1])[0]))

    def transform(self, X):
        """Remove the leakage term from the tissue curves.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Tissue and arterial ΔR2* with the ``n_times`` seen in ``fit``.

        Returns
        -------
        X_corrected : ndarray of the shape of ``X``
            Corrected tissue curves and the unchanged arterial ones, in the
            unit of ``X``; NaN rows stay NaN.
        """
        corrected, _ = self._correct(X)
        return corrected

    def leakage_parameters(self, X):
        """Per-voxel leakage parameters (for the K2 map).

        Parameters
        ----------
        X : array_like
            The curves, as for :meth:`transform`.

        Returns
        -------
        parameters : dict of str to ndarray of shape (n_samples,)
            ``"K2"`` in 1/s for both methods (> 0: T1-dominant leakage); BSW
            adds ``"K1"`` (dimensionless scale of ``R̄``), bidirectional
            ``"kep"`` (efflux rate, 1/s). NaN for NaN samples.
        """
        _, parameters = self._correct(X)
        return parameters

    def _correct(self, X):
        check_is_fitted(self)
        curves, was_channel_form = validate_curves(self, X, reset=False, allow_nan=True)
        corrected = curves.copy()
        tissue = curves[:, TISSUE]
        if not self.correctable_:
            names = ("K1", "K2") if self.method == "bsw" else ("K2", "kep")
            parameters = {name: np.full(len(curves), np.nan) for name in names}
        elif self.method == "bsw":
            integral = cumulative_integral(self.reference_curve_, self.tr)
            k1, k2, k2_se = bsw_fit(tissue, bsw_design_matrix(self.reference_curve_, self.tr))
            k2 = _significant(k2, k2_se, self.significance)
            corrected[:, TISSUE] += k2[:, None] * integral.astype(curves.dtype)
            parameters = {"K1": k1, "K2": k2}
        else:
            leakage, parameters = self._exchange(tissue, curves[:, AIF])
            corrected[:, TISSUE] -= leakage
        if was_channel_form and _get_output_config("transform", self)["dense"] == "default":
            return corrected, parameters
        return corrected.reshape(corrected.shape[0], -1), parameters

    def _exchange(self, tissue, aif):
        n_samples, n_times = tissue.shape
        kep_grid = np.linspace(0.0, self.max_kep, _N_KEP)
        leakage = np.full(tissue.shape, np.nan, dtype=tissue.dtype)
        k2, kep = np.full(n_samples, np.nan), np.full(n_samples, np.nan)
        flat = 0
        for rows, curve in _aif_groups(aif):
            if not np.any(curve != 0):
                flat += len(rows)  # no AIF to deconvolve with: NaN, as for a zero AIF
                continue
            tail = _tail_lags(n_times, self.tr, self.tail_start, self.tail_fraction,
                              int(np.argmax(curve)))
            leakage[rows], k2[rows], kep[rows] = _exchange_group(
                tissue[rows], curve, tail, kep_grid, self.tr, self.regularization,
                self.significance)
        if flat:
            warn(f"{flat} sample(s) have an all-zero AIF: no exchange term can be "
                 "fitted; their curves and parameters are NaN.", LeakageWarning)
        return leakage, {"K2": k2, "kep": kep}

    def get_feature_names_out(self, input_features=None):
        """Names of the flat output columns (those of the input).

        Parameters
        ----------
        input_features : array_like of str or None, default=None
            Input column names; default ``feature_names_in_`` if ``X`` had
            names, else ``tissue_t<k>`` then ``aif_t<k>``.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features, generate_names=False)
        if names is None:
            frames = range(self.n_times_)
            names = np.asarray([f"tissue_t{k}" for k in frames] + [f"aif_t{k}" for k in frames],
                               dtype=object)
        return names

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = False
        return tags


def _non_enhancing(tissue, finite, n_baseline, n_tail, n_sd):
    """Boolean mask of the non-enhancing voxels (rule in :class:`LeakageCorrector`)."""
    selected = np.zeros(tissue.shape[0], dtype=bool)
    curves = tissue[finite]
    sd = curves[:, :n_baseline].std(axis=1, ddof=1)
    peak = curves.max(axis=1)
    tail = curves[:, -n_tail:].mean(axis=1)
    bolus = peak > BOLUS_SD * sd
    if not bolus.any():
        warn(f"no voxel shows a bolus (a ΔR2* peak above {BOLUS_SD:g} baseline sd): "
             "the data look like noise; every finite voxel is a reference candidate.",
             LeakageWarning)
        bolus = np.ones_like(bolus)
    ratio = np.median(tail[bolus] / np.where(peak[bolus] > 0, peak[bolus], np.inf))
    deviation = np.abs(tail - ratio * peak)
    tolerance = n_sd * sd / np.sqrt(n_tail) + TAIL_TOLERANCE * np.abs(peak)
    # Vessels (arteries, sinus) peak far above tissue: left out of a tissue reference.
    vessel = peak > VESSEL_PEAK * np.median(peak[bolus])
    # A curve ending below its baseline is T1-leaky whatever the others do.
    selected[finite] = bolus & ~vessel & (deviation <= tolerance) & (tail >= -tolerance)
    return selected


def _tail_lags(n_times, tr, tail_start, tail_fraction, aif_peak=0):
    """Residue lags (bool mask) on which :class:`LeakageCorrector` fits the exchange term.

    Lags from ``tail_start`` seconds on; lags past ``n_times - 1 - aif_peak``
    only see the AIF's rise and are left out. Fewer than 3 such lags fall
    back, with a :class:`LeakageWarning`, to the last ``tail_fraction`` of
    the usable lags (at least 3).
    """
    # Lags past n_times - 1 - (AIF peak frame) only see the AIF's rise: undetermined.
    lags = np.arange(n_times)
    usable = lags <= n_times - 1 - aif_peak
    tail = usable & (lags * tr >= tail_start)
    if tail.sum() < 3:
        tail = usable & (lags >= usable.sum() - max(3, int(np.ceil(tail_fraction
                                                                   * usable.sum()))))
        warn(
            f"the series ({n_times} frames of {tr:g} s, AIF peak at frame "
            f"{aif_peak}) ends before the residue lag tail_start={tail_start:g} s "
            f"plus 3 frames; the exchange term is fitted on lags {int(np.argmax(tail))}"
            f"-{int(usable.sum()) - 1} instead, where the vascular residue may not have "
            "decayed.", LeakageWarning)
    return tail


def _aif_groups(aif):
    """(rows, AIF) of each distinct finite AIF of ``aif`` (n_samples, n_times)."""
    finite_aif = np.all(np.isfinite(aif), axis=1)
    # All voxels of an exam share one AIF: one deconvolution matrix per distinct AIF.
    if finite_aif.all() and np.all(aif == aif[:1]):
        return [(np.arange(len(aif)), aif[0])]
    unique, inverse = np.unique(aif[finite_aif], axis=0, return_inverse=True)
    rows = np.flatnonzero(finite_aif)
    return [(rows[inverse.ravel() == g], unique[g]) for g in range(len(unique))]


def _exchange_group(tissue, aif, tail, kep_grid, tr, regularization, significance):
    """Leakage curves, K2 (1/s) and kep (1/s) of the samples sharing one AIF.

    ``tail`` masks the residue lags fitted (:func:`_tail_lags`), ``kep_grid``
    the efflux rates tried (1/s), ``tr`` the sampling interval (s);
    ``regularization`` and ``significance`` as in :class:`LeakageCorrector`.
    """
    lags = np.arange(len(aif)) * tr
    matrix = convolution_matrix(aif, tr)
    u, s, vt = np.linalg.svd(matrix)
    damping = s / (s**2 + (regularization * s[0]) ** 2)
    inverse_tail = (vt.T[tail] * damping) @ u.T
    # In float64: the kep grid's argmax must not hinge on float32 rounding, which
    # differs with the number of rows (a voxel's kep then depends on its block).
    residue_tail = tissue.astype(float) @ inverse_tail.T
    amplitude, best, k2_se = exchange_fit(residue_tail, lags[tail], kep_grid)
    k2 = _significant(amplitude, k2_se, significance)
    kernels = matrix @ np.exp(-np.outer(lags, kep_grid))
    kep = np.where(np.isnan(k2), np.nan, kep_grid[best])
    return -k2[:, None] * kernels.T[best], k2, kep


def _significant(k2, k2_se, significance):
    """``k2`` where ``|k2| > significance · k2_se``, else 0 (NaN stays NaN)."""
    # Leakage not told apart from noise is not corrected (K2 = 0 there).
    return np.where(np.abs(k2) > significance * k2_se, k2, np.where(
        np.isnan(k2), np.nan, 0.0)).astype(k2.dtype)
