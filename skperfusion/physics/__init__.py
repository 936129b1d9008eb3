"""Physics core: residue functions, the convolution discretisation, CBV and units.

Small pure functions shared by every deconvolver (numpy) and by the PHAE
decoder (torch twins in :mod:`skperfusion.physics.torch_ops`).
"""

from .convolution import circulant_aif_spectrum, convolve_aif, dispersion_kernel
from .leakage import (
    bsw_design_matrix,
    bsw_fit,
    convolution_matrix,
    cumulative_integral,
    exchange_fit,
    spgr_signal,
    tofts_kernel,
)
from .multi_echo import delta_r2star_from_echoes
from .parameters import (
    DEFAULT_DENSITY,
    DEFAULT_HEMATOCRIT_FACTOR,
    aif_peak_scale,
    cbf_from_cbv_mtt,
    cbf_to_flow_rate,
    cbv_from_cbf_mtt,
    cbv_from_curves,
    flow_rate_to_cbf,
    mtt_from_cbv_cbf,
    tmax_from_residue,
)
from .relaxivity import (
    BLOOD_RELAXIVITY,
    TISSUE_RELAXIVITY,
    blood_concentration,
    blood_delta_r2,
    tissue_concentration,
    tissue_delta_r2,
)
from .residue import (
    RESIDUE_FAMILIES,
    ResidueFamily,
    boxcar_residue,
    exponential_residue,
    gamma_residue,
    lorentzian_residue,
    residue_function,
)

__all__ = [
    "BLOOD_RELAXIVITY",
    "DEFAULT_DENSITY",
    "DEFAULT_HEMATOCRIT_FACTOR",
    "RESIDUE_FAMILIES",
    "TISSUE_RELAXIVITY",
    "ResidueFamily",
    "aif_peak_scale",
    "blood_concentration",
    "blood_delta_r2",
    "boxcar_residue",
    "bsw_design_matrix",
    "bsw_fit",
    "cbf_from_cbv_mtt",
    "cbf_to_flow_rate",
    "cbv_from_cbf_mtt",
    "cbv_from_curves",
    "circulant_aif_spectrum",
    "convolution_matrix",
    "convolve_aif",
    "cumulative_integral",
    "delta_r2star_from_echoes",
    "dispersion_kernel",
    "exchange_fit",
    "exponential_residue",
    "flow_rate_to_cbf",
    "gamma_residue",
    "lorentzian_residue",
    "mtt_from_cbv_cbf",
    "residue_function",
    "spgr_signal",
    "tissue_concentration",
    "tissue_delta_r2",
    "tmax_from_residue",
    "tofts_kernel",
]
