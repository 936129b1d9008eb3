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

Ground truth is the tissue's own CBF, CBV = CBF · MTT / 60, MTT and Tmax
(the residue's arrival delay relative to the measured AIF); dispersion,
partial volume and the relaxivity mismatch are *not* folded into it, as in
Calamante et al. 2000. CSF has CBF = CBV = 0 and NaN MTT/Tmax; arterial and
background voxels are NaN.
"""

import functools
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .._io import atomic_write
from ..exam import GRADES, MAP_NAMES, Exam, write_exam
from ..physics import cbv_from_cbf_mtt, convolve_aif
from .curves import gamma_variate, simulate_concentration
from .noise import NOISE_KINDS, add_noise

__all__ = [
    "BLOOD_RELAXIVITY",
    "RESIDUE_PROBABILITIES",
    "TISSUE_RELAXIVITY",
    "draw_subject_parameters",
    "simulate_cohort",
    "simulate_exam",
    "tissue_labels",
]

TISSUE_RELAXIVITY = 44.0
"""Linear tissue ΔR2* relaxivity in 1/(s·mM): gives the 25–40 % grey-matter
signal drop of clinical DSC at TE ≈ 30 ms."""

BLOOD_RELAXIVITY = (7.6, 0.574)
"""Whole-blood ΔR2* = a·C + b·C² coefficients (1/(s·mM), 1/(s·mM²)), of the
quadratic form and magnitude measured by van Osch et al. 2003 at 1.5 T."""

RESIDUE_PROBABILITIES = {"exponential": 0.35, "gamma": 0.35, "boxcar": 0.15,
                         "lorentzian": 0.15}
"""Probability of each residue family, drawn per subject and tissue region.
The Lorentzian (the PHAE decoder's own family) is kept a minority so that no
method is favoured."""

LABELS = {"background": 0, "gm": 1, "wm": 2, "csf": 3, "tumor": 4, "artery": 5}
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
_S0 = {"background": 0.02, "gm": 1.15, "wm": 1.0, "csf": 1.6, "tumor": 1.3, "artery": 1.0}
_SIGNAL_SCALE = 1000.0
_CHUNK_VOXELS = 4096
_FOV_MM, _SLICE_MM = 224.0, 5.0


def tissue_labels(shape=(16, 16, 4), *, tumor_center=(-0.4, 0.1), tumor_radius=0.28,
                  nawm_radius=0.25):
    """Brain-like label phantom: cortex, white matter, ventricles, tumour, arteries.

    Coordinates are normalised to ``[-1, 1]`` in-plane; the slices cover the
    central slab of an ellipsoidal brain. The tumour sits in the left
    hemisphere; the NAWM ROI is the contralateral mirror region of white
    matter. Tumour and NAWM ROI are cylinders across the slab. Two arterial
    voxels per slice sit near the midline (anterior / middle cerebral
    arteries).

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
    return labels, nawm


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
        (family), and ``target_cbf_ratio`` (tumour / NAWM CBF).
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
    return params


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
        kernel = np.exp(-t / dispersion)
        # Unit area under the convolution's own (trapezoidal) rule, so that
        # dispersion conserves the bolus area even when dispersion << dt.
        kernel /= np.trapezoid(kernel, dx=dt)
        concentration = convolve_aif(concentration, kernel, dt)
    return concentration


def _blood_delta_r2(concentration):
    a, b = BLOOD_RELAXIVITY
    return a * concentration + b * concentration**2


def _bias_field(shape, rng):
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    gx, gy, gz = rng.uniform(-0.1, 0.1, size=3)
    return 1.0 + gx * x + gy * y + 0.5 * gz * z


def simulate_exam(subject_id="sub-001", grade="HGG", *, shape=(16, 16, 4), snr=50.0,
                  noise="rician", oversample=10, random_state=None, return_labels=False):
    """Simulate one DSC exam of a glioma patient, with ground-truth maps.

    Parameters
    ----------
    subject_id : str, default="sub-001"
        Subject identifier.
    grade : {"LGG", "HGG"}, default="HGG"
        Glioma grade; sets the tumour/NAWM CBF ratio distribution.
    shape : tuple of 3 int, default=(16, 16, 4)
        Image size in voxels.
    snr : float, default=50.0
        Baseline SNR (mean baseline / noise sd); ``numpy.inf`` for no noise.
    noise : {"rician", "gaussian"}, default="rician"
        Noise model, see :func:`add_noise`.
    oversample : int, default=10
        Fine-grid points per TR for the continuous convolution.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator; the same seed gives the same exam (with or without
        noise: the noise is drawn last).
    return_labels : bool, default=False
        Also return the tissue label volume (values of :data:`LABELS`).

    Returns
    -------
    exam : Exam
        Float32 signal, masks ``aif``, ``brain``, ``tumor``, ``nawm``,
        ground truth CBF (ml/100g/min), CBV (ml/100g), MTT (s), Tmax (s), and
        in ``extra`` the drawn parameters of
        :func:`draw_subject_parameters`, ``snr``, ``noise`` and
        ``true_cbf_ratio`` (mean tumour CBF / mean NAWM CBF over the ROIs).
    labels : ndarray of int, shape ``shape``
        Tissue labels; only with ``return_labels=True``.
    """
    if noise not in NOISE_KINDS:
        raise ValueError(f"Unknown noise kind {noise!r}; expected one of {NOISE_KINDS}.")
    rng = np.random.default_rng(random_state)
    params = draw_subject_parameters(grade, rng)
    tr, n_times = params["tr"], params["n_times"]
    centre = (-0.4 + rng.uniform(-0.08, 0.08), rng.uniform(-0.15, 0.25))
    labels, nawm = tissue_labels(shape, tumor_center=centre,
                                 tumor_radius=rng.uniform(0.24, 0.32))
    aif_kw = {k: params[k] for k in ("bolus_arrival", "aif_alpha", "aif_beta", "aif_peak",
                                     "recirculation", "recirculation_delay")}
    times = np.arange(n_times) * tr
    blood = _arterial_concentration(times, **aif_kw)

    truth = {name: np.full(shape, np.nan) for name in MAP_NAMES}
    delta_r2 = np.zeros((*shape, n_times))
    for region in ("gm", "wm", "tumor"):
        voxels = labels == LABELS[region]
        n_voxels = int(voxels.sum())
        if not n_voxels:
            continue
        heterogeneity = np.exp(_VOXEL_SD[region] * rng.standard_normal((2, n_voxels)))
        # Normalised to mean 1 so the region mean is the drawn subject value.
        cbf = params[f"cbf_{region}"] * heterogeneity[0] / heterogeneity[0].mean()
        mtt = params[f"mtt_{region}"] * heterogeneity[1]
        delay = params[f"delay_{region}"] + rng.uniform(0.0, 0.5, n_voxels)
        family = params[f"residue_{region}"]
        residue_kw = {"shape": rng.uniform(*_GAMMA_SHAPE, n_voxels)} if family == "gamma" else {}
        arterial = functools.partial(_arterial_concentration, **aif_kw,
                                     dispersion=params[f"dispersion_{region}"])
        tissue = np.empty((n_voxels, n_times))
        # Chunks bound the fine-grid memory (voxels x frames x oversample).
        for start in range(0, n_voxels, _CHUNK_VOXELS):
            part = slice(start, start + _CHUNK_VOXELS)
            tissue[part], _ = simulate_concentration(
                arterial, tr, cbf[part], mtt[part], family=family, delay=delay[part],
                n_times=n_times, oversample=oversample,
                **{key: value[part] for key, value in residue_kw.items()})
        delta_r2[voxels] = TISSUE_RELAXIVITY * tissue
        truth["CBF"][voxels], truth["MTT"][voxels], truth["Tmax"][voxels] = cbf, mtt, delay
    truth["CBV"] = cbv_from_cbf_mtt(truth["CBF"], truth["MTT"])
    csf = labels == LABELS["csf"]
    for name in ("CBF", "CBV"):
        truth[name][csf] = 0.0

    s0_of_label = np.zeros(max(LABELS.values()) + 1)
    for name, value in _S0.items():
        s0_of_label[LABELS[name]] = value
    s0 = _SIGNAL_SCALE * _bias_field(shape, rng) * s0_of_label[labels]
    signal = s0[..., None] * np.exp(-params["te"] * delta_r2)
    # Arterial voxels: blood and surrounding grey-matter signals add up
    # (partial volume), so the measured AIF is non-linearly distorted.
    artery = labels == LABELS["artery"]
    gm_curve = delta_r2[labels == LABELS["gm"]].mean(axis=0)
    fraction = np.clip(params["partial_volume"] + rng.uniform(-0.1, 0.1, int(artery.sum())),
                       0.05, 1.0)[:, None]
    signal[artery] = s0[artery][:, None] * (
        fraction * np.exp(-params["te"] * _blood_delta_r2(blood))
        + (1.0 - fraction) * np.exp(-params["te"] * gm_curve))
    overshoot = params["nonsteady_amplitude"] * params["nonsteady_decay"] ** np.arange(n_times)
    signal *= 1.0 + overshoot
    n_baseline = int(params["bolus_arrival"] // tr) - params["n_skip"]
    signal = add_noise(signal, snr, n_baseline=n_baseline, n_skip=params["n_skip"], kind=noise,
                       random_state=rng)

    tumor = labels == LABELS["tumor"]
    masks = {"aif": artery, "brain": labels != LABELS["background"], "tumor": tumor,
             "nawm": nawm}
    extra = dict(params, snr=float(snr), noise=noise,
                 true_cbf_ratio=float(truth["CBF"][tumor].mean() / truth["CBF"][nawm].mean()))
    # 224 mm field of view in-plane, 5 mm slices, centred on the origin.
    affine = np.diag([_FOV_MM / shape[0], _FOV_MM / shape[1], _SLICE_MM, 1.0])
    affine[:3, 3] = -0.5 * affine.diagonal()[:3] * (np.array(shape) - 1)
    exam = Exam(signal=signal.astype(np.float32), te=params["te"], tr=tr, affine=affine,
                masks=masks, subject_id=subject_id, grade=grade, ground_truth=truth,
                extra=extra, n_skip=params["n_skip"])
    return (exam, labels) if return_labels else exam


def _simulate_and_write(root, subject_id, grade, seed, kwargs):
    exam = simulate_exam(subject_id, grade, random_state=seed, **kwargs)
    write_exam(exam, Path(root) / subject_id)
    return {"participant_id": subject_id, "grade": grade, **exam.extra}


def simulate_cohort(root, n_subjects=24, *, lgg_fraction=0.4, shape=(16, 16, 4), snr=50.0,
                    noise="rician", random_state=None, n_jobs=None, progress=False):
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
    kwargs = {"shape": tuple(shape), "snr": snr, "noise": noise}
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
