"""Synthetic glioma DSC cohort with ground truth.

The recipe (documented with its sources in ``docs/simulator.rst``) draws every
subject's acquisition, arterial input, tissue perfusion, residue families,
delays and dispersion from literature ranges, then builds the MR signal
through a *non-linear* signal model that no deconvolver assumes:

1. acquisition: TE ~ U(25, 35) ms, TR ~ U(1.0, 1.5) s, 60–120 frames, leading
   frames not at steady state, bolus arrival after a few baseline frames;
2. arterial concentration (mM): a gamma-variate first pass (Thompson 1964;
   α, β around Østergaard 1996's α = 3, β = 1.5 s) plus recirculation, a
   delayed, broader, attenuated second pass and a slow plateau (Benner 1997);
3. tissue concentration: ``C = Ca_disp ⊗ f·R`` simulated on a fine grid by
   :func:`skperfusion.datasets.simulate_concentration`, where ``Ca_disp`` is
   the AIF convolved with the exponential dispersion kernel of Calamante et
   al. 2000 and ``R`` a residue drawn per subject and region among the
   exponential, gamma transit-time (Mouridsen 2006), boxcar and, in a
   minority, Lorentzian families, delayed per voxel;
4. ΔR2*: linear in tissue, quadratic in whole blood (van Osch 2003, Kjølby
   2006); arterial voxels mix blood and tissue *signals* (partial volume,
   van Osch 2001);
5. signal ``S = S0 · exp(-TE · ΔR2*)`` with tissue-dependent ``S0``, a smooth
   coil bias field and a non-steady-state overshoot of the first frames,
   then Rician or Gaussian noise at the requested SNR (:func:`add_noise`).

6. optional contrast leakage in the tumour (``leakage=True``): Tofts
   exchange (Ktrans, ve) from the plasma curve into the extravascular space,
   whose agent raises R1 (spoiled gradient-echo T1 weighting with the
   exam's TR and flip angle, so the signal rises) and adds its own, weaker
   T2* effect; an optional preload dose shortens the baseline T1 first;
7. one echo, or several (``echo_times``): every echo sees the same T1
   weighting, so the dual-echo ratio cancels it;
8. a venous region (sagittal-sinus-like ``vof`` mask) of pure blood whose
   curve is the AIF delayed and dispersed by the brain transit (same area);
9. hard cases (:data:`HARD_CASES`, ``hard_cases=``): arteries that saturate
   at the bolus peak (long TE, high dose, pure-blood arterial voxels), a
   delayed and dispersed territory (a stenosis- or moyamoya-like posterior
   lobe, :func:`territory_mask`), strong arterial partial volume, strong
   leakage.

Ground truth is the tissue's own CBF, CBV = CBF · MTT / 60, MTT and Tmax
(the residue's arrival delay relative to the measured AIF); dispersion,
partial volume, leakage and the relaxivity mismatch are *not* folded into
it, as in Calamante et al. 2000. CSF has CBF = CBV = 0 and NaN MTT/Tmax;
arterial, venous and background voxels are NaN. With leakage, ``Ktrans``
(1/min) is ground truth too (0 in normal tissue).
"""

import functools
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .._io import atomic_write
from ..deconvolution._base import PERFUSION_MAPS
from ..exam import GRADES, Exam, write_exam
from ..physics import cbv_from_cbf_mtt, convolve_aif, dispersion_kernel, flow_rate_to_cbf
from ..physics.leakage import spgr_signal
from ..physics.relaxivity import (
    BLOOD_RELAXIVITY,
    TISSUE_RELAXIVITY,
    blood_delta_r2,
    tissue_delta_r2,
)
from .curves import gamma_variate, simulate_concentration
from .noise import NOISE_KINDS, add_noise

__all__ = [
    "BLOOD_RELAXIVITY",
    "EXTRAVASCULAR_RELAXIVITY",
    "HARD_CASES",
    "R1_RELAXIVITY",
    "RESIDUE_PROBABILITIES",
    "TISSUE_RELAXIVITY",
    "draw_leakage_parameters",
    "draw_subject_parameters",
    "simulate_cohort",
    "simulate_exam",
    "territory_mask",
    "tissue_labels",
]

RESIDUE_PROBABILITIES = {"exponential": 0.35, "gamma": 0.35, "boxcar": 0.15,
                         "lorentzian": 0.15}
"""Probability of each residue family, drawn per subject and tissue region.
The Lorentzian (the PHAE decoder's own family) is kept a minority so that no
method is favoured."""

R1_RELAXIVITY = 4.0
"""Longitudinal relaxivity of a gadolinium chelate, 1/(s·mM) (Rohrer et al. 2005:
3.6–4.3 in plasma at 1.5–3 T)."""

EXTRAVASCULAR_RELAXIVITY = 20.0
"""ΔR2* per mM of extravascular agent (per tissue volume), 1/(s·mM): weaker than
the compartmentalised intravascular effect (Quarles et al. 2009 model its
geometry dependence); at TE ≈ 30 ms the T1 effect then dominates the signal
of a single echo without preload, as in most enhancing gliomas."""

HEMATOCRIT = 0.45
"""Large-vessel haematocrit: plasma concentration = blood concentration / (1 - Hct)."""

HARD_CASES = {
    "saturation": {"parameters": {"te": 0.045, "aif_peak": 10.0, "partial_volume": 1.0}},
    "delayed_territory": {"parameters": {"territory_delay": 4.0, "territory_dispersion": 2.0}},
    "partial_volume": {"parameters": {"partial_volume": 0.3}},
    "no_arteries": {"parameters": {"partial_volume": 0.0}},
    "strong_leakage": {"leakage": {"ktrans_tumor": 0.15, "ve_tumor": 0.4}},
}
"""Hard cases of real acquisitions, as overrides of the drawn parameters.

- ``"saturation"``: TE 45 ms, a 10 mM arterial peak (high dose) and
  pure-blood arterial voxels: at the bolus peak the arterial signal falls
  to the noise floor (``S/S0`` about 0.003 before noise, < 0.02), as in
  clinical exams at TE 30–45 ms (Ellinger et al. 2000; Calamante 2013);
- ``"delayed_territory"``: the tissue of :func:`territory_mask` (a posterior
  lobe of the right hemisphere, clear of the tumour and the NAWM ROI) gets
  4 s more delay and 2 s more dispersion, as behind a stenosis or in
  moyamoya disease (Calamante et al. 2000);
- ``"partial_volume"``: arterial voxels hold 30 % blood (20–40 %), the rest
  grey-matter signal (van Osch et al. 2001);
- ``"no_arteries"``: the arterial voxels hold 5–10 % blood, hardly more than
  cortex: an exam with no usable artery (the ``aif`` mask still marks them);
- ``"strong_leakage"``: tumour Ktrans 0.15 1/min and ve 0.4, leakage on.

Low SNR is the ``snr`` parameter itself (e.g. 10–15)."""

LABELS = {"background": 0, "gm": 1, "wm": 2, "csf": 3, "tumor": 4, "artery": 5, "vein": 6}
"""Tissue label values of :func:`tissue_labels`."""

# Normal-tissue perfusion (Østergaard et al. 1996; Leenders et al. 1990):
# mean CBF ml/100g/min and CBV ml/100g, between-subject CV 10 %.
_NORMAL_TISSUE = {"gm": (60.0, 4.0), "wm": (22.0, 2.0)}
_SUBJECT_CV = 0.10
# Within-region voxel heterogeneity (log-normal sd), larger in tumours.
_VOXEL_SD = {"gm": 0.10, "wm": 0.10, "tumor": 0.25}
# Tumour/NAWM CBF ratio, log-normal per grade (medians, log sd). Grade 3 is a
# minority of HGG with low ratios, which all methods misclassified in Fayolle
# et al. 2025; the mix gives a true-ratio AUC near 0.9 and a Youden cut-off
# near 1.6 as in QIN-BRAIN-DSC-MRI / Hakyemez et al. 2005.
_RATIO_LOG_NORMAL = {2: (1.15, 0.30), 3: (1.55, 0.30), 4: (2.6, 0.35)}
_GRADE3_FRACTION = 0.25
_TUMOR_MTT = (4.0, 8.0)
_GAMMA_SHAPE = (1.5, 5.0)
# Baseline T2*-weighted intensity relative to white matter.
_S0 = {"background": 0.02, "gm": 1.15, "wm": 1.0, "csf": 1.6, "tumor": 1.3, "artery": 1.0,
       "vein": 1.0}
# Baseline R2* (1/s) for the TE dependence of S0 between echoes (T2* ~ 50 ms).
_R2STAR_BASELINE = 20.0
# Leakage (per grade): Ktrans (1/min) and ve ranges; voxel log-sd of Ktrans.
_KTRANS = {"LGG": (0.0, 0.01), "HGG": (0.02, 0.12)}
_VE = {"LGG": (0.05, 0.2), "HGG": (0.1, 0.4)}
_KTRANS_VOXEL_SD = 0.3
_LEAK_KEY = 0x1EA4  # spawn key of the leakage stream
_SIGNAL_SCALE = 1000.0
_CHUNK_VOXELS = 4096
_FOV_MM, _SLICE_MM = 224.0, 5.0


def tissue_labels(shape=(16, 16, 4), *, tumor_center=(-0.4, 0.1), tumor_radius=0.28,
                  nawm_radius=0.25):
    """Brain-like label phantom: cortex, white matter, ventricles, tumour, arteries, sinus.

    Coordinates are normalised to ``[-1, 1]`` in-plane; the slices cover the
    central slab of an ellipsoidal brain. The tumour sits in the left
    hemisphere; the NAWM ROI is the contralateral mirror region of white
    matter. Tumour and NAWM ROI are cylinders across the slab. Two arterial
    voxels per slice sit near the midline (anterior / middle cerebral
    arteries); one cortical voxel per slice at the posterior midline is the
    superior sagittal sinus (``"vein"``).

    Parameters
    ----------
    shape : tuple of 3 int, default=(16, 16, 4)
        Image size in voxels (each >= 1, in-plane >= 8).
    tumor_center : tuple of 2 float, default=(-0.4, 0.1)
        In-plane tumour centre (normalised units, x < 0).
    tumor_radius : float, default=0.28
        Tumour radius (normalised units).
    nawm_radius : float, default=0.25
        Radius of the contralateral NAWM ROI (normalised units).

    Returns
    -------
    labels : ndarray of int, shape ``shape``
        Values of :data:`LABELS`.
    nawm : ndarray of bool, shape ``shape``
        Contralateral normal-appearing white-matter ROI (white-matter voxels).
    """
    if len(shape) != 3 or min(shape) < 1 or min(shape[:2]) < 8:
        raise ValueError(f"shape must be 3 positive sizes with at least 8 voxels in-plane; "
                         f"got {shape}.")
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) if n > 1 else np.zeros(1) for n in shape),
                          indexing="ij")
    z = 0.4 * z  # central slab of the brain
    radius = np.sqrt((x / 0.92) ** 2 + (y / 0.95) ** 2 + (z / 1.1) ** 2)
    labels = np.zeros(shape, dtype=int)
    brain = radius <= 1.0
    labels[brain] = LABELS["wm"]
    labels[brain & (radius > 0.72)] = LABELS["gm"]
    labels[brain & (np.abs(x) < 0.14) & (np.abs(y) < 0.32)] = LABELS["csf"]
    tumor = (x - tumor_center[0]) ** 2 + (y - tumor_center[1]) ** 2 <= tumor_radius**2
    labels[brain & tumor] = LABELS["tumor"]
    nawm = (x + tumor_center[0]) ** 2 + (y - tumor_center[1]) ** 2 <= nawm_radius**2
    nawm &= labels == LABELS["wm"]
    # Arteries: the voxels nearest to (±0.25, 0.55) in every slice.
    for side in (-0.25, 0.25):
        i = int(np.argmin(np.abs(np.linspace(-1, 1, shape[0]) - side)))
        j = int(np.argmin(np.abs(np.linspace(-1, 1, shape[1]) - 0.55)))
        labels[i, j, :] = np.where(brain[i, j, :], LABELS["artery"], labels[i, j, :])
    nawm &= labels == LABELS["wm"]
    # Superior sagittal sinus: the posterior midline voxel of the cortex in every slice.
    i = int(np.argmin(np.abs(np.linspace(-1, 1, shape[0]))))
    j = int(np.argmin(np.abs(np.linspace(-1, 1, shape[1]) + 0.85)))
    labels[i, j, :] = np.where(labels[i, j, :] == LABELS["gm"], LABELS["vein"], labels[i, j, :])
    return labels, nawm


def territory_mask(labels, nawm):
    """The delayed territory of the ``"delayed_territory"`` hard case.

    The grey and white matter of the posterior right quadrant (normalised
    ``x > 0.1``, ``y < -0.3``), less the NAWM ROI: a vascular territory (a
    posterior-cerebral-like lobe) clear of the tumour (left hemisphere) and of
    the reference region of the tumour/NAWM ratio.

    Parameters
    ----------
    labels : ndarray of int, shape (X, Y, Z)
        Tissue labels of :func:`tissue_labels`.
    nawm : ndarray of bool, shape (X, Y, Z)
        The NAWM ROI of :func:`tissue_labels`.

    Returns
    -------
    territory : ndarray of bool, shape (X, Y, Z)
    """
    x, y = np.meshgrid(*(np.linspace(-1, 1, n) for n in labels.shape[:2]), indexing="ij")
    lobe = ((x > 0.1) & (y < -0.3))[..., None]
    return lobe & np.isin(labels, (LABELS["gm"], LABELS["wm"])) & ~nawm


def _uniform(rng, bounds):
    return float(rng.uniform(*bounds))


def draw_subject_parameters(grade, random_state=None):
    """Draw one subject's acquisition, AIF and perfusion parameters.

    Parameters
    ----------
    grade : {"LGG", "HGG"}
        Glioma grade; LGG are WHO grade 2, HGG grade 3 (25 %) or 4.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    params : dict
        Scalars: ``who_grade``, ``te`` (s), ``tr`` (s), ``n_times``,
        ``n_skip`` (non-steady frames), ``bolus_arrival`` (s), AIF
        ``aif_alpha``, ``aif_beta`` (s), ``aif_peak`` (mM),
        ``recirculation`` (fraction), ``recirculation_delay`` (s),
        ``partial_volume`` (arterial blood fraction), per region
        (``gm``, ``wm``, ``tumor``) ``cbf_<r>`` (ml/100g/min), ``mtt_<r>``
        (s), ``delay_<r>`` (s), ``dispersion_<r>`` (s), ``residue_<r>``
        (family), ``target_cbf_ratio`` (tumour / NAWM CBF), and the extra
        delay and dispersion of the delayed territory, ``territory_delay``
        and ``territory_dispersion`` (s; not drawn: 0 unless a hard case or
        ``parameters`` sets them).
    """
    if grade not in GRADES:
        raise ValueError(f"unknown grade {grade!r}; expected one of {GRADES}.")
    rng = np.random.default_rng(random_state)
    # Drawn for LGG too, so that the other parameters do not depend on the grade.
    grade3 = rng.random() < _GRADE3_FRACTION
    who_grade = 2 if grade == "LGG" else (3 if grade3 else 4)
    tr = _uniform(rng, (1.0, 1.5))
    params = {
        "who_grade": who_grade,
        "te": _uniform(rng, (0.025, 0.035)),
        "tr": tr,
        "n_times": int(rng.integers(60, 121)),
        "nonsteady_amplitude": _uniform(rng, (0.3, 1.0)),
        "nonsteady_decay": _uniform(rng, (0.2, 0.4)),
        "aif_alpha": _uniform(rng, (2.5, 4.0)),
        "aif_beta": _uniform(rng, (1.0, 2.0)),
        "aif_peak": _uniform(rng, (4.0, 8.0)),
        "recirculation": _uniform(rng, (0.1, 0.25)),
        "recirculation_delay": _uniform(rng, (8.0, 14.0)),
        "partial_volume": _uniform(rng, (0.5, 0.9)),
    }
    # Dummy frames until the overshoot of the first frames is below 0.5 %,
    # as a protocol would discard them.
    params["n_skip"] = int(np.ceil(np.log(0.005 / params["nonsteady_amplitude"])
                                   / np.log(params["nonsteady_decay"])))
    params["bolus_arrival"] = params["n_skip"] * tr + _uniform(rng, (8.0, 16.0))
    for region, (cbf, cbv) in _NORMAL_TISSUE.items():
        params[f"cbf_{region}"] = cbf * float(np.exp(_SUBJECT_CV * rng.standard_normal()))
        params[f"mtt_{region}"] = 60.0 * cbv / cbf * float(
            np.exp(_SUBJECT_CV * rng.standard_normal()))
    median, sd = _RATIO_LOG_NORMAL[who_grade]
    params["target_cbf_ratio"] = median * float(np.exp(sd * rng.standard_normal()))
    params["cbf_tumor"] = params["target_cbf_ratio"] * params["cbf_wm"]
    params["mtt_tumor"] = _uniform(rng, _TUMOR_MTT)
    # Delay and dispersion (Calamante et al. 2000): small in normal tissue,
    # larger and more variable in the tumour's abnormal vasculature.
    params["delay_gm"] = _uniform(rng, (0.0, 1.0))
    params["delay_wm"] = params["delay_gm"] + _uniform(rng, (0.3, 1.5))
    params["delay_tumor"] = _uniform(rng, (0.0, 3.0))
    params["dispersion_gm"] = _uniform(rng, (0.0, 1.0))
    params["dispersion_wm"] = _uniform(rng, (0.0, 1.0))
    params["dispersion_tumor"] = _uniform(rng, (0.3, 2.0))
    families, probabilities = zip(*RESIDUE_PROBABILITIES.items(), strict=True)
    for region in ("gm", "wm", "tumor"):
        params[f"residue_{region}"] = str(rng.choice(families, p=probabilities))
    params["territory_delay"] = params["territory_dispersion"] = 0.0
    return params


def draw_leakage_parameters(grade, random_state=None):
    """Draw one subject's flip angle, venous transit and tumour leakage parameters.

    Drawn from their own random stream (see :func:`simulate_exam`), so that
    switching leakage on or off leaves every other parameter of a subject
    unchanged.

    Parameters
    ----------
    grade : {"LGG", "HGG"}
        Glioma grade; sets the Ktrans and ve ranges.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    params : dict
        ``flip_angle`` (degrees), ``t1_tumor`` (pre-contrast tumour T1, s),
        ``ktrans_tumor`` (subject mean, 1/min), ``ve_tumor`` (extravascular,
        extracellular volume fraction), ``vein_delay`` and
        ``vein_dispersion`` (s: brain transit from the arteries to the
        sagittal sinus).
    """
    if grade not in GRADES:
        raise ValueError(f"unknown grade {grade!r}; expected one of {GRADES}.")
    rng = np.random.default_rng(random_state)
    return {
        "flip_angle": _uniform(rng, (60.0, 90.0)),
        "t1_tumor": _uniform(rng, (1.4, 2.0)),
        "ktrans_tumor": _uniform(rng, _KTRANS[grade]),
        "ve_tumor": _uniform(rng, _VE[grade]),
        "vein_delay": _uniform(rng, (4.0, 7.0)),
        "vein_dispersion": _uniform(rng, (1.5, 3.0)),
    }


def _arterial_concentration(t, *, bolus_arrival, aif_alpha, aif_beta, aif_peak, recirculation,
                            recirculation_delay, dispersion=0.0):
    """Arterial concentration in mM at times ``t`` (uniform grid from 0 if dispersed)."""
    first = gamma_variate(t, bolus_arrival, aif_alpha, aif_beta, aif_peak)
    second_start = bolus_arrival + recirculation_delay
    second = gamma_variate(t, second_start, aif_alpha, 2.0 * aif_beta,
                           recirculation * aif_peak)
    plateau = 0.5 * recirculation * aif_peak * (
        1.0 - np.exp(-np.clip(np.asarray(t) - second_start, 0.0, None) / 10.0))
    concentration = first + second + plateau
    if dispersion > 0:
        dt = t[1] - t[0]
        concentration = convolve_aif(concentration, dispersion_kernel(t, dispersion, dt), dt)
    return concentration


def _aif_parameters(params):
    return {k: params[k] for k in ("bolus_arrival", "aif_alpha", "aif_beta", "aif_peak",
                                   "recirculation", "recirculation_delay")}


def _bias_field(shape, rng):
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    gx, gy, gz = rng.uniform(-0.1, 0.1, size=3)
    return 1.0 + gx * x + gy * y + 0.5 * gz * z


def _chunked_concentration(arterial, tr, cbf, mtt, *, n_times, oversample, **kwargs):
    """:func:`simulate_concentration` in voxel chunks (bounds the fine-grid memory)."""
    tissue = np.empty((len(cbf), n_times))
    for start in range(0, len(cbf), _CHUNK_VOXELS):
        part = slice(start, start + _CHUNK_VOXELS)
        tissue[part], _ = simulate_concentration(
            arterial, tr, cbf[part], mtt[part], n_times=n_times, oversample=oversample,
            **{key: value[part] if np.ndim(value) else value for key, value in kwargs.items()})
    return tissue


def _vascular_tissue(labels, params, rng, oversample, territory):
    """Tissue concentration (mM) of GM, WM and tumour, the truth maps and tumour delays.

    Voxels of ``territory`` get ``territory_delay`` more delay and
    ``territory_dispersion`` more dispersion; the random draws do not
    depend on it.
    """
    shape, (tr, n_times) = labels.shape, (params["tr"], params["n_times"])
    truth = {name: np.full(shape, np.nan) for name in PERFUSION_MAPS}
    concentration = np.zeros((*shape, n_times))
    delays = {}
    # The sinus is simulated as cortex first: the random stream stays that of the phantom
    # without a sinus; its signal is replaced by venous blood afterwards.
    regions = {"gm": (LABELS["gm"], LABELS["vein"]), "wm": (LABELS["wm"],),
               "tumor": (LABELS["tumor"],)}
    for region, values in regions.items():
        voxels = np.isin(labels, values)
        n_voxels = int(voxels.sum())
        if not n_voxels:
            continue
        heterogeneity = np.exp(_VOXEL_SD[region] * rng.standard_normal((2, n_voxels)))
        # Normalised to mean 1 so the region mean is the drawn subject value.
        cbf = params[f"cbf_{region}"] * heterogeneity[0] / heterogeneity[0].mean()
        mtt = params[f"mtt_{region}"] * heterogeneity[1]
        lobe = territory[voxels]
        delay = (params[f"delay_{region}"] + rng.uniform(0.0, 0.5, n_voxels)
                 + params["territory_delay"] * lobe)
        family = params[f"residue_{region}"]
        residue_kw = {"shape": rng.uniform(*_GAMMA_SHAPE, n_voxels)} if family == "gamma" else {}
        region_curves = np.empty((n_voxels, n_times))
        for part, extra in ((~lobe, 0.0), (lobe, params["territory_dispersion"])):
            if not part.any():
                continue
            arterial = functools.partial(_arterial_concentration, **_aif_parameters(params),
                                         dispersion=params[f"dispersion_{region}"] + extra)
            region_curves[part] = _chunked_concentration(
                arterial, tr, cbf[part], mtt[part], family=family, delay=delay[part],
                n_times=n_times, oversample=oversample,
                **{key: value[part] for key, value in residue_kw.items()})
        concentration[voxels] = region_curves
        truth["CBF"][voxels], truth["MTT"][voxels], truth["Tmax"][voxels] = cbf, mtt, delay
        delays[region] = delay
    truth["CBV"] = cbv_from_cbf_mtt(truth["CBF"], truth["MTT"])
    for name in ("CBF", "CBV"):
        truth[name][labels == LABELS["csf"]] = 0.0
    for name in PERFUSION_MAPS:
        truth[name][labels == LABELS["vein"]] = np.nan
    return concentration, truth, delays["tumor"] if "tumor" in delays else np.zeros(0)


def _extravascular(labels, params, leak, rng, delay, oversample, leakage):
    """Tofts extravascular concentration (mM per tissue volume) and the Ktrans truth."""
    tumor = labels == LABELS["tumor"]
    n_voxels = int(tumor.sum())
    heterogeneity = np.exp(_KTRANS_VOXEL_SD * rng.standard_normal(n_voxels))
    # Normalised to mean 1: the tumour's mean Ktrans is the drawn subject value.
    ktrans = leak["ktrans_tumor"] * heterogeneity / max(heterogeneity.mean(), 1e-12)
    ve = leak["ve_tumor"] * np.ones(n_voxels)
    ktrans_truth = np.where(labels == LABELS["background"], np.nan, 0.0)
    ktrans_truth[np.isin(labels, (LABELS["artery"], LABELS["vein"]))] = np.nan
    ktrans_truth[tumor] = ktrans
    ees = np.zeros((*labels.shape, params["n_times"]))
    if n_voxels and leakage:
        arterial = functools.partial(_arterial_concentration, **_aif_parameters(params),
                                     dispersion=params["dispersion_tumor"])

        def plasma(t):
            return arterial(t) / (1.0 - HEMATOCRIT)

        # C_e = Ktrans · Cp ⊗ exp(-kep t): an exponential "residue" with flow
        # Ktrans (1/s, kH = rho = 1) and mean time ve / Ktrans, delayed like the tumour blood.
        per_second = ktrans / 60.0
        ees[tumor] = _chunked_concentration(
            plasma, params["tr"], flow_rate_to_cbf(per_second, 1.0, 1.0), ve / per_second,
            family="exponential", delay=delay, kh=1.0, rho=1.0, n_times=params["n_times"],
            oversample=oversample)
    return ees, ktrans_truth


def _t1_weighting(ees, params, leak, preload):
    """Signal factor of the leaked agent's T1 shortening (1 where nothing leaked)."""
    r10 = 1.0 / leak["t1_tumor"]
    # A preload given minutes before leaves about `preload` times the main
    # bolus' late extravascular concentration: a shorter baseline T1.
    before = r10 + R1_RELAXIVITY * preload * ees[..., -1:]
    return (spgr_signal(before + R1_RELAXIVITY * ees, params["tr"], leak["flip_angle"])
            / spgr_signal(before, params["tr"], leak["flip_angle"]))


def _signal(labels, params, leak, concentration, ees, echo_times, rng, preload, territory):
    """Noise-free signal of every echo, shape (X, Y, Z, T, E); arteries mix with the cortex
    outside ``territory``."""
    times = np.arange(params["n_times"]) * params["tr"]
    blood = _arterial_concentration(times, **_aif_parameters(params))
    venous = _arterial_concentration(
        times, **dict(_aif_parameters(params),
                      bolus_arrival=params["bolus_arrival"] + leak["vein_delay"]),
        dispersion=leak["vein_dispersion"])
    delta_r2 = tissue_delta_r2(concentration) + EXTRAVASCULAR_RELAXIVITY * ees
    t1 = _t1_weighting(ees, params, leak, preload)
    s0_of_label = np.zeros(max(LABELS.values()) + 1)
    for name, value in _S0.items():
        s0_of_label[LABELS[name]] = value
    s0 = _SIGNAL_SCALE * _bias_field(labels.shape, rng) * s0_of_label[labels]
    artery, vein = labels == LABELS["artery"], labels == LABELS["vein"]
    gm_curve = delta_r2[(labels == LABELS["gm"]) & ~territory].mean(axis=0)
    # Blood fraction within +-0.1 of the drawn one (less near 1: pure blood stays pure).
    spread = min(0.1, max(0.0, 1.0 - params["partial_volume"]))
    fraction = np.clip(params["partial_volume"]
                       + spread / 0.1 * rng.uniform(-0.1, 0.1, int(artery.sum())),
                       0.05, 1.0)[:, None]
    echoes = []
    for te in echo_times:
        s0_echo = s0 * np.exp(-(te - echo_times[0]) * _R2STAR_BASELINE)
        signal = s0_echo[..., None] * t1 * np.exp(-te * delta_r2)
        # Arterial voxels: blood and surrounding grey-matter signals add up
        # (partial volume), so the measured AIF is non-linearly distorted.
        signal[artery] = s0_echo[artery][:, None] * (
            fraction * np.exp(-te * blood_delta_r2(blood))
            + (1.0 - fraction) * np.exp(-te * gm_curve))
        # The sinus is large: pure venous blood, no partial volume.
        signal[vein] = s0_echo[vein][:, None] * np.exp(-te * blood_delta_r2(venous))
        echoes.append(signal)
    overshoot = params["nonsteady_amplitude"] * params["nonsteady_decay"] ** np.arange(
        params["n_times"])
    frames = slice(params["n_skip"], None)
    areas = {"true_aif_area": float(np.trapezoid(blood[frames], dx=params["tr"])),
             "vof_area_ratio": float(np.trapezoid(venous[frames]) / np.trapezoid(blood[frames]))}
    return np.stack(echoes, axis=-1) * (1.0 + overshoot)[:, None], areas


def _add_echo_noise(signal, snr, params, noise, echo_times, rng):
    """Noise of one sd for all echoes, set by the first echo's baseline and ``snr``."""
    n_baseline = int(params["bolus_arrival"] // params["tr"]) - params["n_skip"]
    noisy = np.empty_like(signal)
    for echo, te in enumerate(echo_times):
        # Later echoes are darker at the same noise sd: a lower SNR.
        darker = np.exp(-(te - echo_times[0]) * _R2STAR_BASELINE)
        noisy[..., echo] = add_noise(signal[..., echo], snr * darker, n_baseline=n_baseline,
                                     n_skip=params["n_skip"], noise=noise, random_state=rng)
    return noisy


def _affine(shape):
    # 224 mm field of view in-plane, 5 mm slices, centred on the origin.
    affine = np.diag([_FOV_MM / shape[0], _FOV_MM / shape[1], _SLICE_MM, 1.0])
    affine[:3, 3] = -0.5 * affine.diagonal()[:3] * (np.array(shape) - 1)
    return affine


def _overrides(values, drawn, what):
    values = dict(values or {})
    unknown = set(values) - set(drawn)
    if unknown:
        raise ValueError(f"unknown {what} parameter(s) {sorted(unknown)}; expected names "
                         f"among {sorted(drawn)}.")
    return {key: type(drawn[key])(value) for key, value in values.items()}


def _child_stream(rng):
    """A generator of its own, derived from ``rng``'s seed without drawing from ``rng``."""
    seed = rng.bit_generator.seed_seq
    if not isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence(seed.entropy,
                                                        spawn_key=(*seed.spawn_key, _LEAK_KEY)))


def _checked_echo_times(echo_times):
    if echo_times is None:
        return None
    echo_times = tuple(float(te) for te in np.atleast_1d(echo_times))
    if not (len(echo_times) >= 1 and all(0 < te < 1 for te in echo_times)
            and all(b > a for a, b in itertools.pairwise(echo_times))):
        raise ValueError(f"echo_times must be strictly increasing echo times in seconds (0 < "
                         f"TE < 1); got {echo_times!r}.")
    return echo_times


def simulate_exam(subject_id="sub-001", grade="HGG", *, shape=(16, 16, 4), snr=50.0,
                  noise="rician", oversample=10, random_state=None, return_labels=False,
                  leakage=False, echo_times=None, preload=0.0, parameters=None, hard_cases=()):
    """Simulate one DSC exam of a glioma patient, with ground-truth maps.

    Parameters
    ----------
    subject_id : str, default="sub-001"
        Subject identifier.
    grade : {"LGG", "HGG"}, default="HGG"
        Glioma grade; sets the tumour/NAWM CBF ratio and leakage distributions.
    shape : tuple of 3 int, default=(16, 16, 4)
        Image size in voxels.
    snr : float, default=50.0
        Baseline SNR of the first echo (mean baseline / noise sd);
        ``numpy.inf`` for no noise. All echoes share the noise sd.
    noise : {"rician", "gaussian"}, default="rician"
        Noise model, see :func:`add_noise`.
    oversample : int, default=10
        Fine-grid points per TR for the continuous convolution.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator; the same seed gives the same exam (with or without
        noise: the noise is drawn last; with or without leakage: the
        parameters of :func:`draw_leakage_parameters` come from a child
        stream).
    return_labels : bool, default=False
        Also return the tissue label volume (values of :data:`LABELS`).
    leakage : bool or dict, default=False
        Contrast leakage in the tumour (Tofts exchange, T1 and T2* effects);
        a dict turns it on and sets some of the parameters of
        :func:`draw_leakage_parameters` (e.g. ``{"ktrans_tumor": 0.05,
        "ve_tumor": 0.4}``, Ktrans in 1/min).
    echo_times : sequence of float or None, default=None
        Echo times in seconds (strictly increasing) for a multi-echo exam;
        None for one echo at the drawn TE.
    preload : float, default=0.0
        Preload dose as a fraction of the main bolus (0: none; 1: a full
        preload dose), which shortens the tumour's baseline T1 and so
        shrinks the leakage T1 effect.
    parameters : dict or None, default=None
        Values that replace some of the drawn
        :func:`draw_subject_parameters` (e.g. ``{"mtt_tumor": 5.0}``), for
        controlled experiments; the other draws are unchanged.
    hard_cases : sequence of str, default=()
        Names among :data:`HARD_CASES` (``"saturation"``,
        ``"delayed_territory"``, ``"partial_volume"``, ``"strong_leakage"``),
        applied in order before ``parameters`` and ``leakage`` (whose values
        win). The other draws are unchanged, so an exam with and without a
        hard case differs by that case only.

    Returns
    -------
    exam : Exam
        Float32 signal (X, Y, Z, T), or (X, Y, Z, T, E) for several echoes;
        masks ``aif``, ``vof``, ``brain``, ``tumor``, ``nawm``; flip angle;
        ground truth CBF (ml/100g/min), CBV (ml/100g), MTT (s), Tmax (s),
        and Ktrans (1/min) with leakage; in ``extra`` the drawn parameters
        of :func:`draw_subject_parameters` and
        :func:`draw_leakage_parameters`, ``snr``, ``noise``, ``leakage``,
        ``preload``, ``true_cbf_ratio`` (mean tumour CBF / mean NAWM CBF),
        ``true_aif_area`` (mM·s, blood), ``vof_area_ratio`` (venous /
        arterial blood curve area over the kept frames) and ``hard_cases``
        (comma-separated names). The delayed territory is
        ``territory_mask(labels, exam.masks["nawm"])``; its delays are in
        the Tmax truth.
    labels : ndarray of int, shape ``shape``
        Tissue labels; only with ``return_labels=True``.
    """
    if noise not in NOISE_KINDS:
        raise ValueError(f"Unknown noise model {noise!r}; expected one of {NOISE_KINDS}.")
    if not (np.ndim(preload) == 0 and preload >= 0):
        raise ValueError(f"preload must be a dose fraction >= 0; got {preload!r}.")
    multi_echo = _checked_echo_times(echo_times)
    hard_cases = tuple(hard_cases)
    unknown = set(hard_cases) - set(HARD_CASES)
    if unknown:
        raise ValueError(f"unknown hard case(s) {sorted(unknown)}; expected names among "
                         f"{sorted(HARD_CASES)}.")
    subject_values, leak_values = {}, {}
    for name in hard_cases:
        subject_values.update(HARD_CASES[name].get("parameters", {}))
        leak_values.update(HARD_CASES[name].get("leakage", {}))
    if leak_values or isinstance(leakage, dict):
        leakage = {**leak_values, **(leakage if isinstance(leakage, dict) else {})}
    rng = np.random.default_rng(random_state)
    leak_rng = _child_stream(rng)
    params = draw_subject_parameters(grade, rng)
    params.update(_overrides({**subject_values, **(parameters or {})}, params, "subject"))
    leak = draw_leakage_parameters(grade, leak_rng)
    if isinstance(leakage, dict):
        leak.update(_overrides(leakage, leak, "leakage"))
    centre = (-0.4 + rng.uniform(-0.08, 0.08), rng.uniform(-0.15, 0.25))
    labels, nawm = tissue_labels(shape, tumor_center=centre,
                                 tumor_radius=rng.uniform(0.24, 0.32))
    territory = (territory_mask(labels, nawm) if params["territory_delay"]
                 or params["territory_dispersion"] else np.zeros(labels.shape, dtype=bool))
    concentration, truth, tumour_delay = _vascular_tissue(labels, params, rng, oversample,
                                                          territory)
    ees, ktrans = _extravascular(labels, params, leak, leak_rng, tumour_delay, oversample,
                                 leakage)
    tes = multi_echo or (params["te"],)
    signal, areas = _signal(labels, params, leak, concentration, ees, tes, rng, preload,
                            territory)
    signal = _add_echo_noise(signal, snr, params, noise, tes, rng)
    tumor = labels == LABELS["tumor"]
    masks = {"aif": labels == LABELS["artery"], "vof": labels == LABELS["vein"],
             "brain": labels != LABELS["background"], "tumor": tumor, "nawm": nawm}
    if leakage:
        truth["Ktrans"] = ktrans
    extra = dict(params, **leak, snr=float(snr), noise=noise, leakage=bool(leakage),
                 hard_cases=",".join(hard_cases),
                 preload=float(preload), **areas,
                 true_cbf_ratio=float(truth["CBF"][tumor].mean() / truth["CBF"][nawm].mean()))
    exam = Exam(signal=(signal if multi_echo else signal[..., 0]).astype(np.float32),
                te=multi_echo or params["te"], tr=params["tr"], affine=_affine(shape),
                masks=masks, subject_id=subject_id, grade=grade, ground_truth=truth,
                extra=extra, n_skip=params["n_skip"], flip_angle=leak["flip_angle"])
    return (exam, labels) if return_labels else exam


def _simulate_and_write(root, subject_id, grade, seed, kwargs):
    exam = simulate_exam(subject_id, grade, random_state=seed, **kwargs)
    write_exam(exam, Path(root) / subject_id)
    return {"participant_id": subject_id, "grade": grade, **exam.extra}


def simulate_cohort(root, n_subjects=24, *, lgg_fraction=0.4, shape=(16, 16, 4), snr=50.0,
                    noise="rician", random_state=None, n_jobs=None, progress=False,
                    leakage=False, echo_times=None, preload=0.0, hard_cases=()):
    """Write a synthetic glioma cohort in the on-disk cohort layout, with ground truth.

    Parameters
    ----------
    root : str or path-like
        Output folder; must not already hold a ``participants.tsv``.
    n_subjects : int, default=24
        Number of subjects (>= 2).
    lgg_fraction : float, default=0.4
        Fraction of LGG subjects (rounded; at least one of each grade).
    shape : tuple of 3 int, default=(16, 16, 4)
        Image size in voxels.
    snr : float, default=50.0
        Baseline SNR; ``numpy.inf`` for noise-free exams.
    noise : {"rician", "gaussian"}, default="rician"
        Noise model.
    random_state : int or None, default=None
        Seed; each subject gets an independent child seed, so a subject does
        not change when ``n_subjects`` grows.
    n_jobs : int or None, default=None
        Subjects simulated in parallel with joblib.
    progress : bool, default=False
        Show a progress bar.
    leakage : bool, default=False
        Contrast leakage in the tumours (``skperfusion simulate`` and
        ``skperfusion study --demo`` turn it on by default, as real enhancing
        gliomas leak), see :func:`simulate_exam`.
    echo_times : sequence of float or None, default=None
        Echo times in seconds for multi-echo exams (``dsc_echo-<n>`` files).
    preload : float, default=0.0
        Preload dose fraction, see :func:`simulate_exam`.
    hard_cases : sequence of str, default=()
        Hard cases of every subject, names among :data:`HARD_CASES`, see
        :func:`simulate_exam`.

    Returns
    -------
    participants : pandas.DataFrame
        The written ``participants.tsv``: ``participant_id``, ``grade``,
        ``true_cbf_ratio`` and the drawn parameters.
    """
    root = Path(root)
    if not (isinstance(n_subjects, int | np.integer) and n_subjects >= 2):
        raise ValueError(f"n_subjects must be an integer >= 2; got {n_subjects!r}.")
    if not 0 < lgg_fraction < 1:
        raise ValueError(f"lgg_fraction must be in (0, 1); got {lgg_fraction!r}.")
    if (root / "participants.tsv").exists():
        raise FileExistsError(f"{root} already holds a cohort (participants.tsv); choose an "
                              "empty folder.")
    # Child k of the seed sequence is the same whatever n_subjects.
    seeds = np.random.SeedSequence(random_state).spawn(n_subjects + 1)
    n_lgg = int(np.clip(round(lgg_fraction * n_subjects), 1, n_subjects - 1))
    grades = np.random.default_rng(seeds[0]).permutation(
        ["LGG"] * n_lgg + ["HGG"] * (n_subjects - n_lgg))
    width = max(3, len(str(n_subjects)))
    ids = [f"sub-{i + 1:0{width}d}" for i in range(n_subjects)]
    kwargs = {"shape": tuple(shape), "snr": snr, "noise": noise, "leakage": leakage,
              "echo_times": echo_times, "preload": preload, "hard_cases": tuple(hard_cases)}
    # Threads by default (numpy FFTs and zlib release the GIL; no process
    # start-up); a joblib backend set by the caller still takes precedence.
    rows = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
        delayed(_simulate_and_write)(root, sid, str(grade), seed, kwargs)
        for sid, grade, seed in zip(ids, grades, seeds[1:], strict=True))
    if progress:
        rows = tqdm(rows, total=n_subjects, desc="simulating", unit="subject")
    rows = list(rows)
    participants = pd.DataFrame(rows)
    atomic_write({"participants.tsv": lambda temp: participants.to_csv(
        temp, sep="\t", index=False, na_rep="n/a")}, root)
    return participants
