"""Model-based deconvolution: per-voxel nonlinear least squares of the PHAE's decoder model.

The physics-informed autoencoder amortises one optimisation: for each voxel,
find the MTT (and bolus delay) whose physics-decoded curve best matches the
tissue curve. :class:`ParametricDeconvolver` solves that same objective per
voxel, without a network, for every voxel at once: a batched
Levenberg-Marquardt iteration in torch (CPU or GPU), with CBF eliminated in
closed form (variable projection), bounded parameters through smooth maps,
initial values from a coarse grid (or from another fitted deconvolver, e.g.
a PHAE, to measure its amortisation gap) and, with ``family="auto"``, the
residue family chosen per voxel by an information criterion.
"""

import math
import threading
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._docs import fill_doc
from .._warnings import warn
from ..curves import pair_curves
from ..physics import (
    DEFAULT_DENSITY,
    DEFAULT_HEMATOCRIT_FACTOR,
    cbv_from_curves,
    flow_rate_to_cbf,
)
from ..physics.convolution import CONVOLUTION_RULES
from ..physics.torch_ops import (
    TORCH,
    aif_peak_scale_torch,
    cbv_from_curves_torch,
    convolve_aif_torch,
    dispersion_kernel_torch,
    residue_function_torch,
    torch_device,
)
from ._base import BaseDeconvolver
from .svd import OSVDDeconvolver
from .tikhonov import baseline_noise_variance

__all__ = ["FIT_FAMILIES", "FitBoundsWarning", "ParametricDeconvolver", "delay_curve_torch"]

FIT_FAMILIES = ("lorentzian", "exponential", "gamma")
"""Residue families the parametric fit can use; ``"auto"`` chooses among them per voxel."""

_GAMMA_SHAPE_RANGE = (1.0, 20.0)
"""Bounds of the fitted gamma shape ``k``: from the exponential (k = 1) towards plug flow."""

_MAX_DISPERSION = 4.0
"""Upper bound of the fitted dispersion time constant in seconds."""

_TABLE_MTT_NODES = 256
_TABLE_SHAPE_NODES = 24
_TABLE_DISPERSION_NODES = 12
_TABLE_BLOCK = 2048
_GRID_MTTS = 14
_GRID_DELAYS = 9
_GRID_SHAPES = (1.5, 3.0, 6.0)
_GRID_DISPERSIONS = (0.0, 1.0)
_FD_STEP = 1e-5
_BOUND_FRACTION = 0.01
"""A fit ends on a bound when its MTT or delay lies within this fraction of the
bounded range (log MTT, delay) from either end."""
_PRIOR_WIDTHS = (0.25, 1.0)
"""Standard deviations of the population prior: log MTT (MTT within a factor
1.3 of the brain's typical value, as grey matter, white matter and tumours
differ) and delay in seconds (bolus arrival spread over a brain). Measured on
8 mixed-family exams at SNR 30 (``benchmarks/bench_accuracy.py``): rCBF / MTT
error 0.89x / 0.55x oSVD's with (0.4, 2 s), 0.80x / 0.51x with (0.3, 2 s),
0.74x / 0.45x with (0.25, 1 s), 0.70x / 0.47x with (0.2, 1 s) at a NAWM MTT
bias of +7 % (+4 % here)."""
_RULE_SAMPLE = 512
"""Curves of ``fit`` on which ``discretisation="auto"`` compares the two rules."""
_MIN_DAMPING, _MAX_DAMPING = 1e-9, 1e9
_START_BLOCK = 16_384
"""Curves paired and mapped at once by the initialising deconvolver."""


def _logistic_bounds(u, low, high):
    """Map an unconstrained value smoothly into ``[low, high]`` (logistic)."""
    return low + (high - low) * torch.sigmoid(u)


def _logit_bounds(x, low, high):
    """Inverse of :func:`_logistic_bounds`, clipped inside the open interval."""
    z = ((x - low) / (high - low)).clamp(1e-3, 1 - 1e-3)
    return torch.log(z) - torch.log1p(-z)


def delay_curve_torch(curve, delay, tr):
    """Delay sampled curves by a fractional time, ``C(t) → C(t - delay)``.

    The curve is read at ``t_i - delay`` by linear interpolation between its
    samples (zero before ``t = 0``, held at its last value beyond the end),
    as the simulator delays tissue curves
    (:func:`skperfusion.datasets.simulate_concentration`): delaying the
    residue instead would put its arrival jump between samples, which the
    trapezoidal convolution integrates to first order in ``TR`` only.

    A negative delay advances the curve (tissue leading the AIF).

    Parameters
    ----------
    curve : torch.Tensor of shape (batch, n_times)
        Curves sampled at ``t_i = i · TR`` with ``curve[:, 0]`` at ``t = 0``.
    delay : torch.Tensor of shape (batch,)
        Delay in seconds, of either sign.
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    delayed : torch.Tensor of shape (batch, n_times)
        The delayed curves.
    """
    n_times = curve.shape[-1]
    position = (torch.arange(n_times, dtype=curve.dtype, device=curve.device)
                - delay[:, None] / tr)
    before = position < 0
    position = position.clamp(0.0, n_times - 1.0)
    lower = position.floor().clamp(max=n_times - 2).long()
    weight = position - lower
    values = ((1 - weight) * curve.gather(-1, lower) + weight * curve.gather(-1, lower + 1))
    return torch.where(before, 0.0, values)


class FitBoundsWarning(UserWarning):
    """Some voxels' parametric fit ended on a bound of MTT or delay: their maps are NaN."""


class _Family:
    """One residue family's nonlinear parameters, bounds and model curves.

    The physical parameters are ``(log MTT, delay, [log k], [τ])``. Model
    curves of unit flow rate are computed on a grid ``oversample`` times
    finer than the acquisition (the AIF interpolated onto it by cubic
    Hermite splines) with the trapezoidal convolution, then delayed and read
    at the acquisition times (:meth:`direct`). When all voxels share one AIF,
    the undelayed fine curves are tabulated once over the delay-free
    parameters and each evaluation interpolates the table (multilinear in
    the parameters, linear in time): a few gathers per voxel instead of
    fine-grid convolutions, to ~1e-4 of the direct curves.
    """

    def __init__(self, name, estimator, n_times, device, rule):
        self.name = name
        self.rule = rule
        self.tr = float(estimator.tr)
        # The rectangular rule is the sum over the acquisition samples themselves.
        self.oversample = int(estimator.oversample) if rule == "trapezoidal" else 1
        self.fine_tr = self.tr / self.oversample
        self.n_times = n_times
        self.n_fine = (n_times - 1) * self.oversample + 1
        self.t = torch.arange(self.n_fine, dtype=torch.float64, device=device) * self.fine_tr
        self.dispersion = estimator.dispersion
        self.bounds = [(math.log(estimator.mtt_min), math.log(estimator.mtt_max)),
                       (float(estimator.min_delay), float(estimator.max_delay))]
        # Frames a delayed curve reads before t = 0, and a leading one beyond its end.
        self.delay_frames = math.ceil(estimator.max_delay / self.tr)
        self.lead_frames = math.ceil(-estimator.min_delay / self.tr)
        nodes = [_TABLE_MTT_NODES]
        self.gamma_shape = estimator.gamma_shape
        if name == "gamma" and self.gamma_shape is None:
            self.bounds.append(tuple(math.log(k) for k in _GAMMA_SHAPE_RANGE))
            nodes = [_TABLE_MTT_NODES // 2, _TABLE_SHAPE_NODES]
        if self.dispersion:
            self.bounds.append((0.0, _MAX_DISPERSION))
            nodes = [*(max(n // 2, 32) for n in nodes), _TABLE_DISPERSION_NODES]
        # Table axes: every parameter but the delay (column 1).
        self.table_columns = [0, *range(2, len(self.bounds))]
        self.table_nodes = nodes
        self.residue = residue_function_torch(name)
        self.table = None

    @property
    def n_params(self):
        """Fitted parameters, CBF included."""
        return len(self.bounds) + 1

    def prepare(self, aif):
        """Set the AIF (``(1, n_times)`` shared or ``(n, n_times)``); tabulate if shared."""
        self.fine_aif = self._fine_aif(aif)
        self.table = None
        if aif.shape[0] == 1:
            axes = [torch.linspace(*self.bounds[c], n, dtype=torch.float64, device=aif.device)
                    for c, n in zip(self.table_columns, self.table_nodes, strict=True)]
            grid = torch.cartesian_prod(*axes).reshape(-1, len(axes))
            values = torch.zeros(grid.shape[0], len(self.bounds), dtype=torch.float64,
                                 device=aif.device)
            values[:, self.table_columns] = grid
            self._tabulate(torch.cat([self._undelayed(values[i:i + _TABLE_BLOCK])
                                      for i in range(0, len(values), _TABLE_BLOCK)]))
        return self

    def _tabulate(self, rows):
        """Store fine model curves ``(n_rows, n_fine)`` for reading at delayed times.

        The fine sample ``j · oversample + p`` of a row is stored at ``[p, j]``
        of its ``(oversample + 1, n_times)`` block (phase ``oversample`` is
        phase 0 one sample later), so that a voxel's reads at
        ``t_i - delay``, ``i = 0 .. n_times - 1``, are one contiguous window
        of ``table`` (a row copy, not ``n_times`` gathers) and their right
        neighbours the window one phase on. ``table_ends`` holds each row's
        last value and last difference, read beyond the end of the curve.
        """
        n_times, oversample = self.n_times, self.oversample
        padded = torch.cat([rows, rows[:, -1:].expand(-1, oversample)], dim=1)
        phases = torch.stack([padded[:, p:p + n_times * oversample:oversample]
                              for p in range(oversample + 1)], dim=1)
        # Margins for windows that start before a block or run past it (the
        # samples before t = 0 and beyond the end are replaced on reading).
        self.table_margin = max(self.lead_frames, self.delay_frames) + 2
        margin = torch.zeros(self.table_margin, dtype=rows.dtype, device=rows.device)
        flat = torch.cat([margin, phases.flatten(), margin, margin.new_zeros(n_times)])
        self.table = flat.as_strided((flat.numel() - n_times + 1, n_times), (1, 1))
        before_last = rows[:, -min(2, rows.shape[1])]        # one sample: no slope
        self.table_ends = torch.stack([rows[:, -1], rows[:, -1] - before_last], dim=1)

    def _fine_aif(self, aif):
        """AIF samples interpolated onto the fine grid (cubic Catmull-Rom)."""
        if self.oversample == 1:
            return aif
        # Slopes from centred differences (one-sided at the ends), in units per sample.
        slope = torch.cat([aif[:, 1:2] - aif[:, :1], 0.5 * (aif[:, 2:] - aif[:, :-2]),
                           aif[:, -1:] - aif[:, -2:-1]], dim=1)
        x = torch.arange(self.oversample, dtype=aif.dtype, device=aif.device) / self.oversample
        h00, h10 = 2 * x**3 - 3 * x**2 + 1, x**3 - 2 * x**2 + x
        h01, h11 = -2 * x**3 + 3 * x**2, x**3 - x**2
        steps = (h00 * aif[:, :-1, None] + h10 * slope[:, :-1, None]
                 + h01 * aif[:, 1:, None] + h11 * slope[:, 1:, None])
        return torch.cat([steps.flatten(1), aif[:, -1:]], dim=1)

    def physical(self, u):
        """Physical parameters (log MTT, delay, [log shape], [dispersion]) from ``u``."""
        return torch.stack([_logistic_bounds(u[:, k], *self.bounds[k])
                            for k in range(len(self.bounds))], dim=1)

    def at_bounds(self, u):
        """Whether the fitted MTT or delay ends within ``_BOUND_FRACTION`` of a bound."""
        fraction = torch.sigmoid(u[:, :2])
        return ((fraction < _BOUND_FRACTION) | (fraction > 1 - _BOUND_FRACTION)).any(dim=1)

    def bound_derivatives(self, u):
        """``d physical / d u`` of the logistic bounds, shape ``(n, p)``."""
        sigmoid = torch.sigmoid(u)
        spans = torch.tensor([high - low for low, high in self.bounds], dtype=u.dtype,
                             device=u.device)
        return spans * sigmoid * (1 - sigmoid)

    def unconstrained(self, values):
        """Inverse of :meth:`physical`."""
        return torch.stack([_logit_bounds(values[:, k], *self.bounds[k])
                            for k in range(len(self.bounds))], dim=1)

    def _undelayed(self, values):
        """Undelayed unit-flow model curves on the fine grid, by direct convolution."""
        mtt = torch.exp(values[:, :1])
        kwargs = {}
        if self.name == "gamma":
            kwargs["shape"] = (torch.exp(values[:, 2:3]) if self.gamma_shape is None
                               else float(self.gamma_shape))
        residue = self.residue(self.t, mtt, 0.0, **kwargs)
        aif = self.fine_aif
        if self.dispersion:
            # tau = 0 is the identity: floored so that the kernel stays finite.
            tau = values[:, -1:].clamp(min=1e-3 * self.fine_tr)
            kernel = dispersion_kernel_torch(self.t, tau, self.fine_tr)
            aif = convolve_aif_torch(aif, kernel, self.fine_tr)
        return convolve_aif_torch(aif, residue, self.fine_tr, rule=self.rule)

    def direct(self, values):
        """Unit-flow model curves at the acquisition times by direct convolution."""
        delayed = delay_curve_torch(self._undelayed(values), values[:, 1], self.fine_tr)
        return delayed[:, ::self.oversample]

    def unit_response(self, values, jacobian=False):
        """Unit-flow model curves ``(n, n_times)`` at the acquisition times.

        With ``jacobian=True``, ``(n, 1 + p, n_times)``: the curves followed
        by their derivatives with respect to the ``p`` physical parameters,
        exact derivatives of the table interpolant, or forward differences
        of :meth:`direct`.
        """
        if self.table is None:
            curves = self.direct(values)
            if not jacobian:
                return curves
            steps = torch.eye(values.shape[1], dtype=values.dtype, device=values.device)
            return torch.stack([curves, *((self.direct(values + _FD_STEP * step) - curves)
                                          / _FD_STEP for step in steps)], dim=1)
        n = values.shape[0]
        # The cell of every voxel: table row of its lower corner, and per
        # table axis (fastest-varying last) the fraction within the cell.
        row = torch.zeros(n, dtype=torch.long, device=values.device)
        stride, strides, fractions, scales = 1, [], [], []
        for column, n_nodes in zip(reversed(self.table_columns), reversed(self.table_nodes),
                                   strict=True):
            low, high = self.bounds[column]
            scale = (n_nodes - 1) / (high - low)
            position = ((values[:, column] - low) * scale).clamp(0.0, n_nodes - 1.0)
            lower = position.floor().clamp(max=n_nodes - 2)
            row = row + lower.long() * stride
            strides.insert(0, stride)
            fractions.insert(0, position - lower)
            scales.insert(0, scale)
            stride *= n_nodes
        corners = torch.cartesian_prod(*([torch.tensor([0, 1], device=values.device)]
                                         * len(strides))).reshape(-1, len(strides))
        # Offsets summed, not a matrix product: CUDA has no integer matmul.
        rows = row[:, None] + (corners * torch.tensor(strides, device=values.device)).sum(-1)
        # Fine position of t_i - delay: i · oversample + shift + fraction.
        shift = torch.floor(-values[:, 1] / self.fine_tr)
        fraction = -values[:, 1] / self.fine_tr - shift
        shift = shift.long()
        lag = torch.div(shift, self.oversample, rounding_mode="floor")
        phase = shift - lag * self.oversample
        start = (self.table_margin + (rows * (self.oversample + 1) + phase[:, None])
                 * self.n_times + lag[:, None])
        # Every curve and derivative is a weighted sum of the same windows:
        # per corner, the one left of the delayed times and its right neighbour.
        start = torch.stack([start, start + self.n_times], dim=-1)      # (n, corners, 2)
        windows = self.table.index_select(0, start.flatten()).view(n, -1, self.n_times)
        # Multilinear weights of the corners: per axis the fraction (upper
        # node) or its complement (lower node), and their derivatives.
        fractions = torch.stack(fractions, dim=1)[:, None]
        factors = torch.where(corners.bool(), fractions, 1 - fractions)  # (n, corners, k)
        corner_weight = factors.prod(-1)
        sides = torch.stack([1 - fraction, fraction], dim=-1)[:, None]    # (n, 1, 2)
        weights = [corner_weight[..., None] * sides]
        if jacobian:
            signs = (2 * corners - 1).to(values.dtype)
            by_column = {1: (corner_weight / self.fine_tr)[..., None]
                         * torch.tensor([1.0, -1.0], dtype=values.dtype, device=values.device)}
            for axis, (column, scale) in enumerate(zip(self.table_columns, scales,
                                                       strict=True)):
                others = factors.clone()
                others[..., axis] = signs[:, axis]
                by_column[column] = (scale * others.prod(-1))[..., None] * sides
            weights += [by_column[c] for c in range(values.shape[1])]
        weights = torch.stack(weights, dim=1).flatten(2)          # (n, 1 [+ p], corners * 2)
        responses = torch.bmm(weights, windows)
        position = (torch.arange(self.n_times, dtype=values.dtype, device=values.device)
                    * self.oversample - values[:, 1:2] / self.fine_tr)
        # Beyond the last fine sample (only the last frames, where the tissue
        # leads): the windows read as the row's last value continued by its
        # last difference, ``end - fraction · difference`` on the left and
        # ``end + (1 - fraction) · difference`` on the right: the curve holds
        # its last value, with the last difference as slope.
        tail = slice(self.n_times - min(self.n_times, self.lead_frames + 1), None)
        end, difference = self.table_ends.index_select(0, rows.flatten()).view(
            n, -1, 1, 2).unbind(-1)
        ends = (end + torch.stack([-fraction, 1 - fraction], dim=-1)[:, None] * difference)
        beyond = (weights * ends.flatten(1)[:, None]).sum(-1)
        responses[..., tail] = torch.where(position[:, None, tail] >= self.n_fine - 1,
                                           beyond[..., None], responses[..., tail])
        # Before t = 0 (only the first frames, delayed by up to max_delay): zero,
        # derivatives included.
        head = slice(0, min(self.n_times, self.delay_frames + 1))
        responses[..., head] *= position[:, None, head] >= 0
        return responses if jacobian else responses[:, 0]


@fill_doc
class ParametricDeconvolver(BaseDeconvolver):
    """Model-based deconvolution: per-voxel least-squares fit of the PHAE decoder model.

    For each voxel, minimises ``||C - Ca ⊗ f · R(t - delay; MTT)||²`` over
    the flow rate ``f`` (CBF), the MTT, the bolus delay and, optionally, a
    gamma shape and a dispersion time constant, where ``R`` is a residue
    family of the physics core (:mod:`skperfusion.physics`) and ``⊗`` its
    trapezoidal convolution (:func:`skperfusion.physics.convolve_aif`), the
    decoder of :class:`PHAEDeconvolver`. All voxels are fitted at once:

    - ``f`` enters linearly and is eliminated in closed form for every trial
      of the other parameters (variable projection, ``f >= 0``);
    - the other parameters are kept in their bounds by smooth logistic maps
      (MTT in log scale) and fitted by a batched Levenberg-Marquardt
      iteration in torch, with Jacobians that are exact (derivatives of
      the tabulated model) when the AIF is shared, forward differences
      otherwise;
    - initial values come from oSVD's MTT and Tmax (default), from a
      coarse grid of MTT x delay (x shape x dispersion) scored for all
      voxels by one matrix product when the AIF is shared, or from another
      fitted deconvolver (``init``);
    - ``family="auto"`` fits every family of :data:`FIT_FAMILIES` and keeps,
      per voxel, the one with the smallest information criterion
      (``n log(RSS / n) + penalty · n_params``).

    The delay shifts the undelayed model curve by linear interpolation, as
    the simulator does (:func:`delay_curve_torch`); it may be negative
    (``min_delay``): tissue that leads the measured AIF (an AIF taken
    downstream of the tissue's supply), or data whose convolution rule
    leads the model by part of a frame. CBF is the fitted flow rate in
    ml/100g/min, MTT the fitted MTT, Tmax the fitted delay (the residue's
    peak), and CBV comes from the curve areas (Fayolle et al. 2025, eq. 2)
    as for every deconvolver; ``CBF · MTT / 60`` agrees with it when the
    acquisition covers the bolus passage.

    **Convolution rule.** Continuous-time data (the simulator, tissue) are
    modelled with the trapezoidal rule on the fine grid; data made with
    the rectangle rule ``TR · Σ Ca[k] h[n-k]`` (the OSIPI DSC reference
    curves) differ from them by ``TR/2 · Ca(t) h(0)``, which no delay
    absorbs (an exponential fit of the OSIPI curves with the wrong rule
    overestimates CBF). ``discretisation="auto"`` fits both rules to (up to
    512 of) the curves ``fit`` learns from (see ``max_fit_samples``) and
    keeps the one with the smaller residual (``discretisation_``).

    **Population prior.** At clinical SNR, low-CBF voxels (white matter)
    fit a short MTT with a long delay (a scaled, delayed AIF) almost as well
    as the truth: a few such voxels with many times the true CBF dominate
    the NAWM mean and with it every relative CBF. With
    ``prior="population"`` the fit is a maximum a posteriori estimate
    under a Gaussian prior on (log MTT, delay) centred on the median
    initial values over the curves ``fit`` learns from (``prior_``; at most
    ``max_fit_samples``, drawn at random), of widths 0.25 in
    log MTT and 1 s, each weighed as one sample at the voxel's baseline
    noise level: the sd of its frames before the bolus, those before the
    AIF's arrival less ``-min_delay`` (the most the tissue may lead it by),
    so that noise-free curves are unaffected even where the tissue leads. The
    measured errors with and without the prior are in the user guide
    (:doc:`/user_guide/deconvolvers`) and ``benchmarks/bench_accuracy.py``.

    **Fits on a bound.** A voxel whose fitted MTT or delay ends within 1 %
    of the range from one of its bounds is not an estimate: its CBF, MTT
    and Tmax are NaN (CBV, from the curve areas, is kept) and
    ``transform`` issues one :class:`FitBoundsWarning` counting them. A
    finite CBV with a NaN CBF therefore marks the voxels at a bound (the
    fraction a quality control reports).

    Parameters
    ----------
    tr : float, default=1.0
        Sampling interval (repetition time) in seconds.
    family : {"gamma", "auto", "lorentzian", "exponential"}, default="gamma"
        Residue family; ``"auto"`` fits each and chooses per voxel by
        ``criterion``. On mixed-family curves (exponential, gamma,
        Lorentzian, boxcar) the gamma family with a free shape has the
        smallest MTT error at noise (the information criterion then often
        prefers a family with fewer parameters but a wrong shape);
        noise-free, ``"auto"`` recovers every modelled family best. The
        measured errors are in the user guide (:doc:`/user_guide/deconvolvers`).
    gamma_shape : float or None, default=None
        Shape ``k`` of the gamma residue (dimensionless); None fits it in
        ``[1, 20]`` (``k = 1`` is the exponential, large ``k`` approaches plug
        flow). A free shape trades off against MTT and delay on noise-free
        curves (a flat residue start looks like a delay), so a fixed shape
        recovers MTT better when it is known.
    dispersion : bool, default=False
        Also fit the time constant (0-4 s) of an exponential dispersion of
        the AIF (Calamante et al. 2000), :func:`skperfusion.physics.dispersion_kernel`.
    criterion : {"bic", "aic"}, default="bic"
        Information criterion of ``family="auto"``: penalty ``log(n_times)``
        (BIC) or 2 (AIC) per parameter.
    init : {"osvd", "grid"} or estimator, default="osvd"
        Initial values: the MTT and Tmax of oSVD (:class:`OSVDDeconvolver`
        with this ``tr``), the best point of a coarse grid, or the MTT and
        Tmax of another deconvolver (e.g. a fitted :class:`PHAEDeconvolver`;
        a missing Tmax means zero delay). An unfitted estimator is cloned
        and fitted on the curves given to ``fit``. From oSVD the fit lands
        closer to the truth than from the grid's best point, though often at
        a slightly higher residual (measured in the user guide).
    mtt_min, mtt_max : float, default=0.5, 30.0
        Bounds of the fitted MTT in seconds.
    min_delay, max_delay : float, default=-3.0, 10.0
        Bounds of the fitted bolus delay in seconds (``min_delay <= 0``).
    discretisation : {"auto", "trapezoidal", "rectangular"}, default="auto"
        Convolution rule of the model (:func:`skperfusion.physics.convolve_aif`);
        ``"auto"`` chooses it in ``fit`` (see above).
    prior : {"population"} or None, default="population"
        Population prior on (log MTT, delay), see above; None for plain
        least squares.
    max_iter : int, default=10
        Levenberg-Marquardt iterations; 10 reach the converged errors on
        simulated curves.
    oversample : int, default=4
        Model curves are computed on a grid this many times finer than
        ``tr`` (AIF interpolated onto it by cubic Hermite, Catmull-Rom,
        splines) before being read at the acquisition times: the
        trapezoidal rule on the acquisition grid alone misses
        fast-decaying residues (MTT of a few TR) by several %.
    device : str or torch.device, default="cpu"
        Torch device of the fit, e.g. ``"cuda"``; float64 throughout.
    kh : float, default=0.73
        Haematocrit correction factor ``kH``, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.
    chunk_size : int or None, default=None
        Voxels fitted at once; bounds the memory. None takes
        :attr:`default_chunk_sizes` for the device type: 2048 on a CPU
        (intermediate arrays near the cache; the chunks run in a thread per
        core, each with single-threaded torch operations), 65,536 on a GPU
        (few large solves keep it busy; about 25 kB per voxel at 120
        frames, 1.6 GB).
    max_fit_samples : int or None, default=20_000
        Most curves ``fit`` learns from: given more, it draws this many at
        random (``random_state``) and computes the prior's centre, chooses
        the convolution rule and fits an unfitted ``init`` on them; None
        uses every curve. The centre is a median, whose sampling error
        falls as ``1 / sqrt(max_fit_samples)``: 20,000 curves put it within
        about 1 % of the prior's widths of the all-curves one on a whole
        exam, at a tenth of the cost of its 180,000 brain voxels (the
        measured differences are in the user guide).
    random_state : int, RandomState instance or None, default=0
        Seed of the sample of ``fit`` curves (``max_fit_samples``). The
        default draws the same sample every time, so that the maps are
        reproducible, also from the recorded parameters
        (:func:`skperfusion.derivatives.rerun_settings`).

    Attributes
    ----------
    init_ : estimator or None
        The fitted initialising deconvolver (None with ``init="grid"``).
    discretisation_ : {"trapezoidal", "rectangular"}
        Convolution rule of the model.
    prior_ : ndarray of shape (2,) or None
        Centre of the population prior: MTT and delay in seconds (None
        without a prior).
    %(fitted_curve_attributes)s

    See Also
    --------
    PHAEDeconvolver : the amortised (trained encoder) solution of the same objective.
    OSVDDeconvolver : model-free block-circulant SVD deconvolution.

    References
    ----------
    .. [1] Mehndiratta A. et al., "Modeling the residue function in DSC-MRI
       simulations: analytical approximation to in vivo data", Magn Reson
       Med 72:1486-1491, 2014; Mehndiratta A. et al., "Control point
       interpolation for DSC-MRI", NeuroImage 64:560-574, 2013.
    .. [2] Mouridsen K. et al., "Bayesian estimation of cerebral perfusion
       using a physiological model of microvasculature", NeuroImage
       33:570-579, 2006.
    .. [3] Calamante F., Gadian D. G., Connelly A., "Delay and dispersion
       effects in dynamic susceptibility contrast MRI: simulations using
       singular value decomposition", Magn Reson Med 44:466-473, 2000.
    .. [4] Golub G., Pereyra V., "Separable nonlinear least squares: the
       variable projection method and its applications", Inverse Problems
       19:R1-R26, 2003.

    Examples
    --------
    >>> import functools
    >>> from skperfusion import pair_curves
    >>> from skperfusion.deconvolution import ParametricDeconvolver
    >>> from skperfusion.datasets import gamma_variate, simulate_concentration
    >>> tissue, aif = simulate_concentration(
    ...     functools.partial(gamma_variate, t0=10), tr=1.0, cbf=[50.0], mtt=[4.0],
    ...     delay=1.5)
    >>> maps = ParametricDeconvolver(tr=1.0, family="exponential").fit_transform(
    ...     pair_curves(tissue, aif))
    >>> [round(float(v), 1) for v in maps[0, [0, 2, 3]]]
    [50.0, 4.0, 1.5]
    """

    _bounded_fit = True

    default_chunk_sizes = {"cpu": 2048, "cuda": 65_536}

    _parameter_constraints: dict = {
        **BaseDeconvolver._parameter_constraints,
        "family": [StrOptions({"auto", *FIT_FAMILIES})],
        "gamma_shape": [Interval(Real, 0, None, closed="neither"), None],
        "dispersion": ["boolean"],
        "criterion": [StrOptions({"bic", "aic"})],
        "init": [StrOptions({"osvd", "grid"}), HasMethods(["fit", "transform"])],
        "mtt_min": [Interval(Real, 0, None, closed="neither")],
        "mtt_max": [Interval(Real, 0, None, closed="neither")],
        "min_delay": [Interval(Real, None, 0, closed="right")],
        "max_delay": [Interval(Real, 0, None, closed="neither")],
        "discretisation": [StrOptions({"auto", *CONVOLUTION_RULES})],
        "prior": [StrOptions({"population"}), None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "oversample": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "max_fit_samples": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(self, tr=1.0, family="gamma", gamma_shape=None, dispersion=False, criterion="bic",
                 init="osvd", mtt_min=0.5, mtt_max=30.0, min_delay=-3.0, max_delay=10.0,
                 discretisation="auto", prior="population", max_iter=10, oversample=4, device="cpu",
                 kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY, chunk_size=None,
                 max_fit_samples=20_000, random_state=0):
        super().__init__(tr=tr, kh=kh, rho=rho, chunk_size=chunk_size)
        self.family = family
        self.gamma_shape = gamma_shape
        self.dispersion = dispersion
        self.criterion = criterion
        self.init = init
        self.mtt_min = mtt_min
        self.mtt_max = mtt_max
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.discretisation = discretisation
        self.prior = prior
        self.max_iter = max_iter
        self.oversample = oversample
        self.device = device
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def _fit_curves(self, tissue, aif):
        if self.mtt_min >= self.mtt_max:
            raise ValueError(
                f"mtt_min={self.mtt_min} must be smaller than mtt_max={self.mtt_max} (seconds)."
            )
        torch_device(self.device)
        if self.max_fit_samples is not None and len(tissue) > self.max_fit_samples:
            drawn = np.sort(check_random_state(self.random_state).choice(
                len(tissue), self.max_fit_samples, replace=False))
            tissue, aif = tissue[drawn], aif[drawn]
        self.init_ = None
        if self.init == "osvd":
            # Stateless: its fit only records the curves' length.
            self.init_ = OSVDDeconvolver(tr=self.tr, kh=self.kh, rho=self.rho).fit(
                pair_curves(tissue[:1], aif[:1]))
        elif not isinstance(self.init, str):
            try:
                check_is_fitted(self.init)
                self.init_ = self.init
            except NotFittedError:
                self.init_ = clone(self.init).fit(pair_curves(tissue, aif))
        with self._shared_models():
            self.prior_ = None
            if self.prior == "population":
                self.prior_ = self._population_centre(tissue, aif)
            self.discretisation_ = self.discretisation
            if self.discretisation == "auto":
                self.discretisation_ = self._choose_rule(tissue, aif)

    def _population_centre(self, tissue, aif):
        """Median (MTT in s, delay in s) of the initial values over the fit curves."""
        usable = np.isfinite(cbv_from_curves(tissue, aif, self.kh, self.rho))
        if not usable.any():
            return np.array([np.sqrt(self.mtt_min * self.mtt_max), 0.0])
        if not usable.all():
            tissue, aif = tissue[usable], aif[usable]
        start = self._start_values(tissue, aif)
        if start is None:
            tissue_t, aif_t, _ = self._tensors(pair_curves(tissue, aif))
            family = self._family(self._families()[0], CONVOLUTION_RULES[0], aif_t,
                                  tissue.shape[1])
            values = family.physical(_grid_start(family, tissue_t))[:, :2].cpu().numpy()
        else:
            values = self._start_physical(start)
        log_mtt, delay = np.median(values, axis=0)
        return np.array([np.exp(log_mtt), delay])

    def _choose_rule(self, tissue, aif):
        """The convolution rule with the smaller residual on (a sample of) the fit curves."""
        sample = np.unique(np.linspace(0, len(tissue) - 1, _RULE_SAMPLE).astype(int))
        tissue, aif = tissue[sample], aif[sample]
        usable = np.isfinite(cbv_from_curves(tissue, aif, self.kh, self.rho))
        if not usable.any():
            return CONVOLUTION_RULES[0]
        tissue, aif = tissue[usable], aif[usable]
        start = self._start_values(tissue, aif)
        tensors = self._tensors(pair_curves(tissue, aif))
        rss = {rule: float(self._fit(*tensors, rule, start)[3].sum())
               for rule in CONVOLUTION_RULES}
        return min(CONVOLUTION_RULES, key=rss.get)

    def _families(self):
        return FIT_FAMILIES if self.family == "auto" else (self.family,)

    def _start_values(self, tissue, aif):
        """MTT and Tmax of the initialising deconvolver, or None for the grid."""
        if self.init_ is None:
            return None
        # In blocks: pairing copies the curves (all of fit's for the prior's centre).
        return np.concatenate([
            self.init_.transform(pair_curves(tissue[i:i + _START_BLOCK], aif[i:i + _START_BLOCK]))
            [:, 2:4] for i in range(0, len(tissue), _START_BLOCK)])

    @contextmanager
    def _shared_models(self):
        """Let the chunks of one ``fit`` or ``transform`` share their tabulated models.

        Tabulating a family costs as much as fitting thousands of voxels;
        the chunks of an exam share one AIF (see :meth:`_family`).
        """
        self._models = {}
        self._models_lock = threading.Lock()
        try:
            yield
        finally:
            del self._models, self._models_lock

    def _family(self, name, rule, aif, n_times):
        """A family prepared for ``aif``, from :meth:`_shared_models`' cache when shared."""
        models = getattr(self, "_models", None)
        if models is None or aif.shape[0] > 1:
            return _Family(name, self, n_times, aif.device, rule).prepare(aif)
        key = (name, rule, n_times)
        # The chunks' threads wait for one tabulation instead of each making its own.
        with self._models_lock:
            if key not in models or not torch.equal(models[key][0], aif):
                models[key] = (aif, _Family(name, self, n_times, aif.device, rule).prepare(aif))
            return models[key][1]

    @property
    def _threaded_chunks(self):
        """On a CPU, a thread per chunk (see :meth:`_map_chunks`)."""
        return torch.device(self.device).type == "cpu"

    def _map_chunks(self, X, function):
        """:meth:`BaseDeconvolver._map_chunks` with single-threaded torch operations on a CPU.

        A chunk's operations are small (a few MB): split over cores, each
        waits for the slowest core, many times per iteration, and on a
        shared or busy machine a core taken away stalls all of them (5-10x
        slower); a chunk per thread keeps every core busy without waiting.
        """
        if not self._threaded_chunks:
            return super()._map_chunks(X, function)
        threads = torch.get_num_threads()

        def single_threaded(curves):
            # Per calling thread (OpenMP); restored to the caller's count.
            torch.set_num_threads(1)
            try:
                return function(curves)
            finally:
                torch.set_num_threads(threads)

        return super()._map_chunks(X, single_threaded)

    def transform(self, X):
        """Fit every sample and return its maps; fits ending on a bound flagged.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Curves, as for :meth:`BaseDeconvolver.transform`.

        Returns
        -------
        maps : ndarray of shape (n_samples, 4)
            CBF (ml/100g/min), CBV (ml/100g), MTT (s) and Tmax (s). A sample
            whose fit ended on a bound of MTT or delay has NaN CBF, MTT and
            Tmax but a finite CBV (curve areas), with one
            :class:`FitBoundsWarning` counting them.
        """
        with self._shared_models():
            maps = super().transform(X)
        at_bounds = np.isfinite(maps[:, 1]) & np.isnan(maps[:, 0])
        if at_bounds.any():
            warn(
                f"{int(at_bounds.sum())} of {len(maps)} sample(s) "
                f"({100 * at_bounds.mean():.1f} %) ended the parametric fit on a bound of MTT "
                f"[{self.mtt_min}, {self.mtt_max}] s or delay [{self.min_delay}, "
                f"{self.max_delay}] s; their CBF, MTT and Tmax are NaN (CBV is kept).",
                FitBoundsWarning)
        return maps

    def _deconvolve_curves(self, curves):
        # One copy of the chunk to the device; the maps come back in one.
        start = self._start_values(curves[:, 0], curves[:, 1])
        curves = torch.as_tensor(curves, device=torch.device(self.device)).to(torch.float64)
        cbv = cbv_from_curves_torch(curves[:, 0], curves[:, 1], self.kh, self.rho)
        tissue, aif, weight = self._tensors(curves)
        flow, values, at_bounds, _ = self._fit(tissue, aif, weight, self.discretisation_, start)
        estimated = cbv.isfinite() & ~at_bounds
        cbf = flow * float(flow_rate_to_cbf(1.0, self.kh, self.rho))
        maps = torch.stack([cbf, cbv, values[:, 0].exp(), values[:, 1]], dim=1)
        maps[:, [0, 2, 3]] = torch.where(estimated[:, None], maps[:, [0, 2, 3]], torch.nan)
        return maps.cpu().numpy()

    def _tensors(self, curves):
        """Tissue and AIF tensors of paired curves and the prior's weights, see :func:`_tensors`."""
        return _tensors(curves, torch.device(self.device), math.ceil(-self.min_delay / self.tr))

    def _fit(self, tissue, aif, prior_weight, rule, start=None):
        """Flow rate (1/s), (log MTT, delay), bound flags and RSS of every voxel, as tensors.

        ``tissue``, ``aif`` and ``prior_weight`` from :meth:`_tensors`; the
        best family per voxel; ``rule`` the convolution rule of the model.
        """
        device = tissue.device
        n_times = tissue.shape[1]
        penalty = math.log(n_times) if self.criterion == "bic" else 2.0
        best = None
        for name in self._families():
            family = self._family(name, rule, aif, n_times)
            if start is None:
                u = _grid_start(family, tissue)
            else:
                u = _estimator_start(family, self._start_physical(start), device)
            prior = None
            if self.prior_ is not None:
                centre = torch.tensor([math.log(self.prior_[0]), self.prior_[1]],
                                      dtype=torch.float64, device=device)
                prior = (centre, prior_weight)
            u, flow, rss = _levenberg_marquardt(family, tissue, u, self.max_iter, prior)
            values = family.physical(u)
            score = n_times * torch.log(rss.clamp(min=1e-300) / n_times) + penalty * family.n_params
            fitted = (score, flow, values[:, :2], family.at_bounds(u), rss)
            if best is None:
                best = fitted
            else:
                better = score < best[0]
                best = tuple(torch.where(better.view(-1, *([1] * (new.dim() - 1))), new, old)
                             for new, old in zip(fitted, best, strict=True))
        return best[1:]

    def _start_physical(self, start):
        """(log MTT, delay) of an estimator's MTT and Tmax, inside the bounds."""
        return _bounded_start(start, self.mtt_min, self.mtt_max, self.min_delay, self.max_delay)


def _tensors(curves, device, lead_frames):
    """Tissue and AIF of paired curves (array or tensor) as float64 tensors, prior weights.

    Both channels are divided by the AIF peak (f, MTT and delay are
    unchanged); an AIF shared by every sample is returned as one row. The
    weights are the voxel's baseline noise sd (pre-bolus frames,
    :func:`~skperfusion.deconvolution.tikhonov.baseline_noise_variance`, with
    the tissue leading the AIF by up to ``lead_frames``) divided by the prior widths
    ``_PRIOR_WIDTHS``: the prior then weighs as one sample whose misfit is
    the parameter's distance from the centre in prior standard deviations.
    """
    curves = torch.as_tensor(curves, device=device).to(torch.float64)
    scale, _ = aif_peak_scale_torch(curves[:, 1])
    scaled = curves / scale[:, None, None]
    tissue, aif = torch.nan_to_num(scaled[:, 0]), scaled[:, 1]
    if aif.shape[0] > 1 and bool((aif == aif[:1]).all()):
        aif = aif[:1]
    noise_sd = torch.nan_to_num(baseline_noise_variance(
        scaled[:, 0], aif, lead_frames=lead_frames, ops=TORCH).sqrt())
    weight = noise_sd[:, None] / torch.tensor(_PRIOR_WIDTHS, dtype=torch.float64, device=device)
    return tissue, aif, weight


def _grid_values(family, device):
    """Grid of physical parameter vectors scored for the initial values."""
    (log_lo, log_hi), (min_delay, max_delay) = family.bounds[:2]
    axes = [torch.linspace(log_lo, log_hi, _GRID_MTTS + 2, dtype=torch.float64)[1:-1],
            torch.linspace(min_delay, max_delay, _GRID_DELAYS + 2, dtype=torch.float64)[1:-1]]
    if family.name == "gamma" and family.gamma_shape is None:
        axes.append(torch.log(torch.tensor(_GRID_SHAPES, dtype=torch.float64)))
    if family.dispersion:
        axes.append(torch.tensor(_GRID_DISPERSIONS, dtype=torch.float64))
    grid = torch.cartesian_prod(*axes).reshape(-1, len(axes))
    return grid.to(device)


def _grid_start(family, tissue):
    """Unconstrained parameters of the best grid point of every voxel (largest projected gain)."""
    grid = _grid_values(family, tissue.device)
    if family.table is not None:
        units = family.unit_response(grid)                           # (G, T)
        norms = (units * units).sum(-1).clamp(min=1e-300)
        products = tissue @ units.T                                  # (n, G)
        gain = torch.where(products > 0, products**2 / norms, 0.0)
    else:
        # Per-sample AIFs: the grid is scored for every voxel at once,
        # one grid point at a time (no loop over voxels).
        gain = torch.empty(tissue.shape[0], grid.shape[0], dtype=tissue.dtype,
                           device=tissue.device)
        for k in range(grid.shape[0]):
            units = family.unit_response(grid[k:k + 1].expand(tissue.shape[0], -1))
            products = (tissue * units).sum(-1)
            norms = (units * units).sum(-1).clamp(min=1e-300)
            gain[:, k] = torch.where(products > 0, products**2 / norms, 0.0)
    return family.unconstrained(grid[gain.argmax(dim=-1)])


def _bounded_start(start, mtt_min, mtt_max, min_delay, max_delay):
    """(log MTT, delay) of an estimator's MTT and Tmax, inside the bounds."""
    mtt = np.clip(np.nan_to_num(start[:, 0], nan=4.0), mtt_min, mtt_max)
    delay = np.clip(np.nan_to_num(start[:, 1], nan=0.0), min_delay, max_delay)
    return np.column_stack([np.log(mtt), delay])


def _estimator_start(family, physical, device):
    """Unconstrained parameters of a family from (log MTT, delay) start values."""
    physical = torch.as_tensor(physical, dtype=torch.float64, device=device)
    values = [physical[:, 0], physical[:, 1]]
    if family.name == "gamma" and family.gamma_shape is None:
        values.append(torch.full_like(physical[:, 0], math.log(2.0)))
    if family.dispersion:
        values.append(torch.full_like(physical[:, 0], 0.5))
    return family.unconstrained(torch.stack(values, dim=1))


def _levenberg_marquardt(family, tissue, u, max_iter, prior=None):
    """Batched Levenberg-Marquardt on the projected residual, per-voxel damping.

    The residual ``r = C - f(θ) U(θ)`` with the projected flow rate
    ``f = <C, U> / <U, U>`` has the exact Jacobian (variable projection)
    ``J = -(U ∂f + f ∂U)``, ``∂f = (<C, ∂U> - 2 f <U, ∂U>) / <U, U>``, chained
    through the logistic bounds; its normal matrix ``JᵀJ`` and gradient
    ``Jᵀr`` are assembled from inner products over time without forming
    ``J``. A ``prior`` ``(centre, weight)`` appends the rows
    ``weight · ((log MTT, delay) - centre)`` (a Gaussian prior: the fit is
    then a maximum a posteriori estimate). ``max_iter`` iterations, each
    evaluating the model (and its derivatives) once, at the trial step.

    Returns
    -------
    u : torch.Tensor of shape (n, p)
        Unconstrained parameters.
    flow : torch.Tensor of shape (n,)
        Projected, non-negative flow rate at ``u`` (1/s).
    rss : torch.Tensor of shape (n,)
        Residual sum of squares ``||C - f U||²`` at ``u``, the prior's rows excluded.
    """
    def evaluate(params, jacobian):
        """(Cost, flow rate, RSS) at ``params``; with ``jacobian`` also ``JᵀJ`` and ``Jᵀr``."""
        physical = family.physical(params)
        if jacobian:
            responses = family.unit_response(physical, jacobian=True)
            unit = responses[:, 0]
            # The inner products over time: <U, U>, <U, ∂U> and <∂U, ∂U> in
            # one batched product; <C, U> and <C, ∂U> summed (a batched
            # matrix-vector product rounds differently by batch size).
            products = torch.bmm(responses, responses.transpose(1, 2))
            with_tissue = (responses * tissue[:, None]).sum(-1)
            squared_norm, tissue_unit = products[:, 0, 0], with_tissue[:, 0]
        else:
            unit = family.unit_response(physical)
            squared_norm, tissue_unit = (unit * unit).sum(-1), (tissue * unit).sum(-1)
        norm = squared_norm.clamp(min=1e-300)
        flow = tissue_unit / norm
        positive = flow > 0
        flow = flow.clamp(min=0.0)
        r = tissue - flow[:, None] * unit
        rss = (r * r).sum(-1)
        cost = rss
        if prior is not None:
            misfit = prior[1] * (physical[:, :2] - prior[0])
            cost = rss + (misfit * misfit).sum(-1)
        if not jacobian:
            return (cost, flow, rss), None, None
        # Chained through the logistic bounds on these products, not on the
        # curves' derivatives.
        chain = family.bound_derivatives(params)
        with_tissue, with_unit = with_tissue[:, 1:] * chain, products[:, 0, 1:] * chain
        gram = products[:, 1:, 1:] * (chain[:, :, None] * chain[:, None, :])
        d_flow = torch.where(positive[:, None],
                             (with_tissue - 2 * flow[:, None] * with_unit) / norm[:, None], 0.0)
        cross = d_flow[:, :, None] * with_unit[:, None, :]
        normal = (squared_norm[:, None, None] * d_flow[:, :, None] * d_flow[:, None, :]
                  + flow[:, None, None] * (cross + cross.transpose(1, 2))
                  + (flow * flow)[:, None, None] * gram)
        # <U, r> = <U, C> - f <U, U>: zero where the flow rate is positive.
        gradient = -(d_flow * (tissue_unit - flow * squared_norm)[:, None]
                     + flow[:, None] * (with_tissue - flow[:, None] * with_unit))
        if prior is not None:
            slopes = prior[1] * chain[:, :2]
            normal[:, [0, 1], [0, 1]] += slopes * slopes
            gradient[:, :2] += slopes * misfit
        return (cost, flow, rss), normal, gradient

    (cost, flow, rss), normal, gradient = evaluate(u, max_iter > 0)
    damping = torch.full_like(cost, 1e-2)
    eye = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)
    for iteration in range(max_iter):
        diagonal = torch.diagonal(normal, dim1=1, dim2=2).clamp(min=1e-12)
        system = normal + (damping[:, None] * diagonal)[..., None] * eye
        trial = u + torch.linalg.solve(system, -gradient)
        # The last trial needs no derivatives: no step follows it.
        last = iteration == max_iter - 1
        scores, normal_trial, gradient_trial = evaluate(trial, not last)
        better = scores[0] < cost
        u = torch.where(better[:, None], trial, u)
        cost, flow, rss = (torch.where(better, new, old)
                           for new, old in zip(scores, (cost, flow, rss), strict=True))
        if not last:
            normal = torch.where(better[:, None, None], normal_trial, normal)
            gradient = torch.where(better[:, None], gradient_trial, gradient)
        damping = torch.where(better, damping / 3, damping * 4).clamp(_MIN_DAMPING,
                                                                       _MAX_DAMPING)
    return u, flow, rss
