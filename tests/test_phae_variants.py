"""The PHAE variants beyond the paper, measured on the simulator's exams against their truth.

``phae-gamma`` (gamma residue, learned delay) is trained self-supervised on
the exams it maps, as ``benchmarks/bench_accuracy.py`` does, and its MTT is
compared with the simulator's: the area of the residue (CBV / CBF), without
the delay and the dispersion, which the simulator keeps out of the truth.
"""

import itertools

import numpy as np
import pytest

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import make_deconvolver
from skperfusion.exam_estimators import PerfusionMapper

FAMILIES = ("exponential", "gamma", "boxcar", "lorentzian")
TRAINING = {"max_epochs": 40, "lr": 1e-3, "batch_size": 512, "epoch_voxels": 4096,
            "module__width": 16, "random_state": 0}
"""bench_accuracy's brief training (``PHAE_PARAMS``), with which the bias was measured."""

NAWM_MTT_BIAS = 0.10
"""Allowed median signed NAWM MTT error, the goal of issue 21. Measured on these exams: -2,
-2 and +1 % (training seeds 0-2), where the shape-2 decoder had -13 and -25 % (seeds 0, 1)
and oSVD +33 %; the margin covers the training seed."""


def mixed_family_exams(n=8, snr=30.0, seed=500):
    """bench_accuracy's mixed exams: GM, WM and tumour residue families cycled over the exams."""
    combos = list(itertools.permutations(FAMILIES, 3))[::3]
    return [simulate_exam(f"sub-{i:03d}", "HGG" if i % 2 else "LGG", shape=(16, 16, 2), snr=snr,
                          noise="gaussian", random_state=seed + i,
                          parameters=dict(zip(("residue_gm", "residue_wm", "residue_tumor"),
                                              combos[i % len(combos)], strict=True)))
            for i in range(n)]


def nawm_mtt_bias(maps):
    """Median of MTT / true MTT - 1 over the NAWM voxels of every exam."""
    errors = []
    for item in maps:
        truth, nawm = item.exam.ground_truth, item.exam.mask("nawm")
        scored = nawm & np.isfinite(truth["MTT"]) & (truth["CBF"] > 0)
        errors.append(item.maps["MTT"][scored] / truth["MTT"][scored] - 1)
    return float(np.nanmedian(np.concatenate(errors)))


@pytest.mark.slow
def test_gamma_variant_nawm_mtt_bias_within_ten_percent():
    # Eight exams whose white matter has exponential, gamma (shape 1.5-5) or plug-flow
    # residues, delayed 0.3-3 s and dispersed up to 1 s: no decoder family matches them
    # all, so the bias per exam remains (-30 to +40 %); the variant's shape is the one
    # whose bias over the mix is near zero.
    exams = mixed_family_exams()
    maps = PerfusionMapper(make_deconvolver("phae-gamma", **TRAINING),
                           random_state=0).fit(exams).transform(exams)
    assert abs(nawm_mtt_bias(maps)) <= NAWM_MTT_BIAS
