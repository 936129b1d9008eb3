"""Quality control of an exam's maps: flags that say when they cannot be trusted.

Real users have no ground truth, so every run checks what it can from the
data itself and records it (:func:`exam_qc`, a :class:`QCRecord` of
:class:`QCFlag`); ``skperfusion maps`` writes it as ``qc.json`` beside the
maps and prints its :meth:`~QCRecord.summary` on stderr. The flags:

=====================  =====================================================================
``aif_late``           more than 10 % of the brain voxels' boluses arrive (half maximum)
                       before the AIF's: the AIF is not arterial (tissue, vein), Tmax is
                       negative and CBF wrong
``aif_saturated``      arterial samples at the noise floor; says how they were handled
                       (first pass recovered by the automatic AIF, or left clipped)
``aif_few_voxels``     fewer than 3 arterial voxels: their noise and partial volume are
                       not averaged out
``negative_cbv_mtt``   more than 5 % of the mapped voxels with CBV or MTT below zero
                       (leakage, a wrong AIF, noise)
``fit_bounds``         more than 5 % of the voxels whose model fit ended on a bound (the
                       parametric fit's NaN CBF with a finite CBV)
``leakage_signature``  no leakage correction asked although more than 10 % of the tumour
                       (or brain) voxels end above their baseline signal (T1 leakage)
``relative_only``      absolute CBF and CBV are not quantitative: no VOF scaling or no
                       relaxivity conversion; ratios (rCBF, tumour/NAWM) are
=====================  =====================================================================
"""

import json
from dataclasses import dataclass, field

import numpy as np

from ._warnings import warn
from .aif.selection import (
    MAX_EARLIER_FRACTION,
    MIN_AIF_VOXELS,
    PEAK_SNR,
    arrival_times,
    saturated_samples,
    voxel_concentrations,
)

__all__ = ["MAX_FIT_BOUNDS_FRACTION", "MAX_LEAKY_FRACTION", "MAX_NEGATIVE_FRACTION", "QCFlag",
           "QCRecord", "QCWarning", "exam_qc"]

MAX_NEGATIVE_FRACTION = 0.05
"""Largest fraction of mapped voxels with a negative CBV or MTT before the flag:
both are positive in any tissue, and noise alone makes a few percent of the
white-matter voxels negative at SNR 20."""

MAX_FIT_BOUNDS_FRACTION = 0.05
"""Largest fraction of voxels whose model fit ended on a bound before the flag."""

MAX_LEAKY_FRACTION = 0.10
"""Largest fraction of tumour (or brain) voxels whose post-bolus signal stays
above their baseline before the leakage flag."""

LEAKY_SE = 3.0
"""A voxel ends above its baseline when its mean ``ΔR2*`` over the last
quarter of the frames is below ``-3`` standard errors of that mean."""

_SAMPLE_VOXELS = 32_768  # brain voxels the curve checks read at most (every k-th)


class QCWarning(UserWarning):
    """A quality-control flag was raised for an exam (:meth:`QCRecord.warn`)."""


@dataclass(frozen=True)
class QCFlag:
    """One quality-control check.

    Parameters
    ----------
    name : str
        The flag's name (the table of :mod:`skperfusion.qc`).
    raised : bool
        Whether the maps fail the check.
    value : float or None
        What was measured (a fraction, a count), None where it does not apply.
    threshold : float or None
        The value beyond which the flag is raised.
    message : str
        What the value means and, when raised, what to do.
    """

    name: str
    raised: bool
    value: float | None
    threshold: float | None
    message: str

    def to_dict(self):
        """The check as plain JSON values.

        Returns
        -------
        check : dict
            ``raised``, ``value``, ``threshold`` and ``message``.
        """
        return {"raised": bool(self.raised),
                "value": None if self.value is None else float(self.value),
                "threshold": None if self.threshold is None else float(self.threshold),
                "message": self.message}


@dataclass(frozen=True)
class QCRecord:
    """The quality-control record of one exam's maps (:func:`exam_qc`).

    Parameters
    ----------
    subject : str
        Subject id.
    flags : tuple of QCFlag
        Every check, raised or not.
    aif : dict
        The AIF used: ``source``, ``voxels``, ``quality`` (the automatic
        selection's :class:`~skperfusion.aif.AIFQuality` fields or None),
        ``saturated_samples`` (kept frames at which an arterial voxel
        saturated, or None).
    """

    subject: str
    flags: tuple = field(default=())
    aif: dict = field(default_factory=dict)

    @property
    def raised(self):
        """The raised flags, in order (list of :class:`QCFlag`)."""
        return [flag for flag in self.flags if flag.raised]

    def to_dict(self):
        """The record as plain JSON values (``qc.json``, the sidecars, the HTML report).

        Returns
        -------
        record : dict
            ``subject``; ``flags``: name to raised (bool); ``checks``: name to
            :meth:`QCFlag.to_dict`; ``aif``; ``aif_saturated_samples`` (list
            of bool over the kept frames, or None).
        """
        saturated = self.aif.get("saturated_samples")
        return {"subject": self.subject,
                "flags": {flag.name: bool(flag.raised) for flag in self.flags},
                "checks": {flag.name: flag.to_dict() for flag in self.flags},
                "aif": {key: value for key, value in self.aif.items()
                        if key != "saturated_samples"},
                "aif_saturated_samples": None if saturated is None else
                [bool(x) for x in saturated]}

    def to_json(self):
        """:meth:`to_dict` as indented JSON text, ending with a newline.

        Returns
        -------
        text : str
        """
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def summary(self):
        """A short text for the terminal: one line, then one line per raised flag.

        Returns
        -------
        text : str
        """
        raised = self.raised
        head = (f"QC {self.subject}: {len(raised)} of {len(self.flags)} flag(s) raised"
                + (":" if raised else "."))
        return "\n".join([head, *(f"  - {flag.name}: {flag.message}" for flag in raised)])

    def warn(self):
        """One :class:`QCWarning` per raised flag, naming the subject."""
        for flag in self.raised:
            warn(f"QC {flag.name}: {flag.message}", QCWarning, subject=self.subject)


def _exceeds(value, threshold):
    """``value > threshold``; False for a NaN value (nothing to check)."""
    return bool(np.isfinite(value) and value > threshold)


def _sampled_curves(exam, region):
    """ΔR2* curves (longest echo, own baselines) of at most ``_SAMPLE_VOXELS`` voxels."""
    signal = exam.signal.reshape(-1, *exam.signal.shape[3:])
    index = np.flatnonzero(region)
    index = index[::max(1, -(-len(index) // _SAMPLE_VOXELS))]
    block = signal[index, exam.n_skip:]
    if exam.n_echoes > 1:
        block = block[..., -1]
    curves, baseline_sd, _ = voxel_concentrations(block, exam.echo_times[-1])
    return curves, baseline_sd


def _aif_flags(exam, aif, brain_curves, brain_sd):
    quality = getattr(aif, "quality", None)
    source = getattr(aif, "source", "mask")
    n_voxels = int(np.count_nonzero(aif.voxels))
    with np.errstate(invalid="ignore"):
        first_pass = np.all(np.isfinite(brain_curves), axis=1) & (
            brain_curves.max(axis=1) > PEAK_SNR * brain_sd)
    earlier = float(np.mean(arrival_times(brain_curves[first_pass], exam.tr)
                            < arrival_times(aif.curve[None], aif.tr)[0])) if first_pass.any() \
        else float("nan")
    late = _exceeds(earlier, MAX_EARLIER_FRACTION)
    flags = [QCFlag(
        "aif_late", late, earlier, MAX_EARLIER_FRACTION,
        f"{earlier:.0%} of the brain voxels' boluses arrive before the AIF's"
        + (": it is not arterial (tissue or vein); Tmax and CBF cannot be trusted. Give an "
           "aif mask of arteries or an AIF table (--aif FILE.tsv)." if late else "."))]
    saturated = getattr(aif, "saturated_samples", None)
    if n_voxels and saturated is None and source == "mask":
        curves, sd, _ = voxel_concentrations(
            exam.signal[aif.voxels][:, exam.n_skip:].reshape(n_voxels, -1, exam.n_echoes)[
                ..., -1], exam.echo_times[-1])
        saturated = saturated_samples(curves, sd, exam.echo_times[-1]).any(axis=0)
        handled = ("left clipped with an aif mask: the AIF area is too small and CBF and CBV "
                   "too high; --aif auto recovers the first pass of saturated arteries")
    elif quality is not None:
        handled = (f"{quality.n_saturated} of {quality.n_voxels} arterial voxel(s) saturated, "
                   f"the first pass of {quality.n_recovered} recovered by a gamma-variate fit"
                   + ("" if quality.n_recovered else "; the others are clipped (too few rising "
                      "samples): the AIF area is too small, CBF and CBV too high"))
    else:
        handled = "not checked (AIF from a table)"
    n_saturated = None if saturated is None else int(np.count_nonzero(saturated))
    flags.append(QCFlag(
        "aif_saturated", bool(n_saturated), n_saturated, 0,
        f"arterial signal at the noise floor in {n_saturated} frame(s), {handled}."
        if n_saturated else "no arterial sample at the noise floor."))
    few = source in ("mask", "auto") and n_voxels < MIN_AIF_VOXELS
    flags.append(QCFlag(
        "aif_few_voxels", few, n_voxels if source in ("mask", "auto") else None, MIN_AIF_VOXELS,
        f"the AIF averages {n_voxels} voxel(s)"
        + (f" (fewer than {MIN_AIF_VOXELS}): its noise and partial volume are not averaged "
           "out; give an aif mask of several arterial voxels." if few else ".")))
    record = {"source": source, "voxels": n_voxels,
              "quality": None if quality is None else quality.to_dict(),
              "saturated_samples": saturated}
    return flags, record


def _leakage_flag(curves, sd, region_name, leakage):
    n_tail = max(1, curves.shape[1] // 4)
    with np.errstate(invalid="ignore"):
        tail = curves[:, -n_tail:].mean(axis=1)
        above = tail < -LEAKY_SE * sd / np.sqrt(n_tail)
    fraction = float(np.mean(above[np.isfinite(tail)])) if np.isfinite(tail).any() else np.nan
    leaky = _exceeds(fraction, MAX_LEAKY_FRACTION)
    raised = leaky and leakage == "none"
    message = (f"{fraction:.0%} of the {region_name} voxels end above their baseline signal "
               "(contrast leakage with T1 shortening)")
    if raised:
        message += (": CBV and CBF are underestimated there, even negative; correct it with "
                    "--leakage bidirectional (or bsw).")
    elif leaky:
        message += f"; corrected ({leakage})."
    return QCFlag("leakage_signature", raised, fraction, MAX_LEAKY_FRACTION, message + (
        "" if leaky else "."))


def exam_qc(exam, aif, maps, *, mask=None, leakage="none", relaxivity="none",
            aif_scaling="none", bounded_fit=False):
    """The quality-control record of one exam's maps.

    Parameters
    ----------
    exam : Exam
        The exam (signal, masks, timing).
    aif : ExamAIF
        The AIF the maps were made with (:attr:`ExamCurves.aif
        <skperfusion.exam.ExamCurves>`).
    maps : dict of str to ndarray of shape (X, Y, Z)
        At least ``"CBV"`` (ml/100g) and ``"MTT"`` (s); with
        ``bounded_fit``, ``"CBF"`` (ml/100g/min) too.
    mask : ndarray of bool, shape (X, Y, Z) or None, default=None
        The mapped voxels; None for the brain.
    leakage : str, default="none"
        The leakage correction applied (``"none"``, ``"bsw"``,
        ``"bidirectional"``).
    relaxivity : str, default="none"
        The relaxivity conversion applied (``"none"`` or ``"van_osch"``).
    aif_scaling : str, default="none"
        The AIF scaling applied (``"none"`` or ``"vof"``).
    bounded_fit : bool, default=False
        Whether the maps come from a model fit that marks fits ending on a
        bound by a NaN CBF with a finite CBV (the parametric fit).

    Returns
    -------
    record : QCRecord
        Every flag of the module's table, raised or not.
    """
    brain = exam.mask("brain")
    mapped = brain if mask is None else np.asarray(mask, dtype=bool)
    brain_curves, brain_sd = _sampled_curves(exam, brain)
    flags, aif_record = _aif_flags(exam, aif, brain_curves, brain_sd)
    cbv, mtt = maps["CBV"][mapped], maps["MTT"][mapped]
    with np.errstate(invalid="ignore"):
        negative = (cbv < 0) | (mtt < 0)
    known = np.isfinite(cbv) | np.isfinite(mtt)
    fraction = float(np.mean(negative[known])) if known.any() else np.nan
    negative = _exceeds(fraction, MAX_NEGATIVE_FRACTION)
    flags.append(QCFlag(
        "negative_cbv_mtt", negative, fraction, MAX_NEGATIVE_FRACTION,
        f"{fraction:.0%} of the mapped voxels have a negative CBV or MTT"
        + (": not physical (contrast leakage, an AIF that is not arterial, or noise); see "
           "leakage_signature and aif_late." if negative else ".")))
    at_bound = None
    if bounded_fit:
        cbf = maps["CBF"][mapped]
        fitted = np.isfinite(cbv)
        at_bound = float(np.mean(np.isnan(cbf[fitted]))) if fitted.any() else np.nan
    bounded = at_bound is not None and _exceeds(at_bound, MAX_FIT_BOUNDS_FRACTION)
    flags.append(QCFlag(
        "fit_bounds", bounded, at_bound, MAX_FIT_BOUNDS_FRACTION,
        "no bounded model fit" if at_bound is None else
        f"{at_bound:.0%} of the fitted voxels ended on a bound of MTT or delay (NaN maps)"
        + ("; the model or the AIF does not fit these data." if bounded else ".")))
    region = exam.masks.get("tumor")
    region_name = "tumour" if region is not None and region.any() else "brain"
    if region_name == "tumour":
        curves, sd = _sampled_curves(exam, region)
    else:
        curves, sd = brain_curves, brain_sd
    flags.append(_leakage_flag(curves, sd, region_name, leakage))
    relative = relaxivity == "none" or aif_scaling == "none"
    missing = [name for name, off in (("VOF scaling (--aif-scaling vof)", aif_scaling == "none"),
                                      ("relaxivity conversion (--relaxivity van_osch)",
                                       relaxivity == "none")) if off]
    flags.append(QCFlag(
        "relative_only", relative, None, None,
        ("absolute CBF and CBV are relative only (no " + " and no ".join(missing)
         + "): compare rCBF, rCBV and ratios, not ml/100g/min.") if relative
        else "absolute CBF and CBV from VOF-scaled, relaxivity-converted curves."))
    return QCRecord(exam.subject_id, tuple(flags), aif_record)
