"""Torch twins of the physics core, for the PHAE decoder and the parametric fit.

The twins evaluate the very formulas of the numpy functions
(:mod:`skperfusion.physics.residue`, :mod:`skperfusion.physics.convolution`,
:mod:`skperfusion.physics.parameters`) with the operations :data:`TORCH`
instead of numpy's, so the two cannot drift apart (tested to agree);
differentiable and batched on any device.
"""

import functools
from types import SimpleNamespace

import torch

from .convolution import discrete_convolution, dispersion_kernel
from .parameters import aif_peak_scale, cbv_from_areas, per_minute_quotient
from .residue import _family_docstring, _family_signature, residue_function

__all__ = [
    "TORCH",
    "aif_peak_scale_torch",
    "cbf_from_cbv_mtt_torch",
    "cbv_from_curves_torch",
    "convolve_aif_torch",
    "dispersion_kernel_torch",
    "exponential_residue_torch",
    "gamma_residue_torch",
    "lorentzian_residue_torch",
    "residue_function_torch",
    "torch_device",
]


def _gammaincc(a, x):
    return torch.special.gammaincc(torch.as_tensor(a, dtype=x.dtype, device=x.device)
                                   .expand_as(x), x)


TORCH = SimpleNamespace(
    where=torch.where,
    exp=torch.exp,
    gammaincc=_gammaincc,
    amax=lambda x: torch.amax(x, dim=-1),
    # The first maximum, as numpy's (torch has no argmax of booleans).
    argmax=lambda x: torch.argmax(x.to(torch.uint8), dim=-1),
    sum=lambda x: torch.sum(x, dim=-1),
    clamp_min=torch.clamp_min,
    trapezoid=lambda y: torch.trapezoid(y, dim=-1),
    rfft=lambda x, n: torch.fft.rfft(x, n, dim=-1),
    irfft=lambda x, n: torch.fft.irfft(x, n, dim=-1),
    arange=lambda n, like: torch.arange(n, device=like.device),
    nan=torch.nan,
)
"""torch implementations of the operations of the physics formulas (see ``_array_ops``)."""


def residue_function_torch(family):
    """Torch twin of :func:`skperfusion.physics.residue_function`.

    Parameters
    ----------
    family : str
        Residue family, a key of :data:`skperfusion.physics.RESIDUE_FAMILIES`.

    Returns
    -------
    function : callable
        ``function(t, mtt, delay=0.0, **parameters)`` on tensors (t, MTT and
        delay in seconds, broadcast), the dimensionless residue; the gamma
        ``shape`` may be a float or a tensor (not differentiated).
    """
    # A partial of a module-level function, not a closure: the PHAE and
    # parametric torch modules that hold it stay picklable.
    function = functools.partial(_evaluate, residue_function(family))
    function.__signature__ = _family_signature(family)
    function.__doc__ = _family_docstring(
        family, summary=f"Torch twin of :func:`skperfusion.physics.{family}_residue`.",
        array="Tensor or float", result="Tensor")
    return function


def _evaluate(family, t, mtt, delay=0.0, **parameters):
    return family.evaluate(t, mtt, delay, TORCH, **parameters)


lorentzian_residue_torch = residue_function_torch("lorentzian")
exponential_residue_torch = residue_function_torch("exponential")
gamma_residue_torch = residue_function_torch("gamma")


def convolve_aif_torch(aif, impulse_response, tr, rule="trapezoidal"):
    """Torch twin of :func:`skperfusion.physics.convolve_aif` (trapezoidal rule by default).

    Parameters
    ----------
    aif : torch.Tensor of shape (..., n_times)
        Arterial concentration.
    impulse_response : torch.Tensor of shape (..., n_times)
        Impulse response ``h = f · R`` in 1/s.
    tr : float
        Sampling interval in seconds.
    rule : {"trapezoidal", "rectangular"}, default="trapezoidal"
        Quadrature, see :func:`skperfusion.physics.convolve_aif`.

    Returns
    -------
    concentration : torch.Tensor of shape (..., n_times)
        Tissue concentration in the unit of ``aif``.
    """
    return discrete_convolution(aif, impulse_response, tr, TORCH, rule)


def dispersion_kernel_torch(t, tau, tr):
    """Torch twin of :func:`skperfusion.physics.dispersion_kernel` (unit area).

    Parameters
    ----------
    t : torch.Tensor of shape (n_times,)
        Sample times ``i · tr`` in seconds.
    tau : torch.Tensor of shape (..., 1) or float
        Dispersion time constant in seconds (> 0).
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    kernel : torch.Tensor of shape (..., n_times)
        Kernel samples in 1/s.
    """
    return dispersion_kernel(t, tau, tr, TORCH)


def cbv_from_curves_torch(tissue, aif, kh, rho):
    """Torch twin of :func:`skperfusion.physics.cbv_from_curves` (eq. 2).

    Parameters
    ----------
    tissue, aif : torch.Tensor of shape (..., n_times)
        Tissue and arterial concentrations, same unit.
    kh : float
        Haematocrit correction factor, dimensionless.
    rho : float
        Brain density in g/ml.

    Returns
    -------
    cbv : torch.Tensor of shape (...)
        CBV in ml/100g; NaN where the AIF area is not positive.
    """
    return cbv_from_areas(tissue, aif, kh, rho, TORCH)


def cbf_from_cbv_mtt_torch(cbv, mtt):
    """Torch twin of :func:`skperfusion.physics.cbf_from_cbv_mtt` (eq. 3).

    Parameters
    ----------
    cbv : torch.Tensor
        CBV in ml/100g.
    mtt : torch.Tensor
        MTT in seconds, broadcast against ``cbv``.

    Returns
    -------
    cbf : torch.Tensor
        CBF in ml/100g/min; NaN where MTT is not positive.
    """
    return per_minute_quotient(cbv, mtt, TORCH)


def aif_peak_scale_torch(aif):
    """Torch twin of :func:`skperfusion.physics.aif_peak_scale`.

    Parameters
    ----------
    aif : torch.Tensor of shape (n_samples, n_times)
        Arterial concentration.

    Returns
    -------
    scale : torch.Tensor of shape (n_samples,)
        AIF peak, 1 where it is not positive.
    has_peak : torch.Tensor of bool, shape (n_samples,)
        Whether the AIF has a positive peak.
    """
    return aif_peak_scale(aif, TORCH)


def torch_device(device):
    """The torch device named by an estimator's ``device`` parameter, checked to be usable.

    Parameters
    ----------
    device : str or torch.device
        e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Returns
    -------
    device : torch.device
        The device.

    Raises
    ------
    ValueError
        In one line, if ``device`` names no torch device or one this machine
        does not have (CUDA not available, or fewer CUDA devices).
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; use e.g. 'cpu' or "
                         "'cuda'.") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device!r} but CUDA is not available here (torch "
                             f"{torch.__version__}); use device='cpu'.")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device={device!r} but this machine has {count} CUDA "
                             "device(s).")
    elif resolved.type != "cpu":
        backend = getattr(torch, resolved.type, None)
        if not getattr(backend, "is_available", lambda: False)():
            raise ValueError(f"device={device!r} is not available here; use device='cpu'.")
    return resolved
