"""Tmax, the time of the residue maximum, against simulated bolus delays."""

import functools

import numpy as np
import pytest

from skperfusion.curves import pair_curves
from skperfusion.datasets import simulate_exam
from skperfusion.datasets.cohort import territory_mask
from skperfusion.datasets.curves import gamma_variate, simulate_concentration
from skperfusion.deconvolution import OSVDDeconvolver, TikhonovDeconvolver
from skperfusion.exam import ExamToCurves
from skperfusion.physics import tmax_from_residue

DELAYS = np.linspace(-2.0, 6.0, 33)  # s; negative: tissue bolus before the AIF


@pytest.mark.parametrize("tr", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("family", ["exponential", "lorentzian"])
@pytest.mark.parametrize("deconvolver", [OSVDDeconvolver, TikhonovDeconvolver])
def test_tmax_recovers_simulated_delays_within_half_a_sample(tr, family, deconvolver):
    # Strictly decreasing residues, noise-free: the sampled maximum is the
    # first whole cell [t_j - TR/2, t_j + TR/2] after the onset, between TR/2
    # and 3 TR/2 after it; less one TR, the error is within half a sample,
    # for delays before (wrap-around on the circle) and after the AIF.
    tissue, aif = simulate_concentration(
        functools.partial(gamma_variate, t0=12.0), tr, np.full(DELAYS.size, 50.0),
        np.full(DELAYS.size, 4.0), family=family, delay=DELAYS, n_times=int(90 / tr))
    tmax = deconvolver(tr=tr).fit_transform(pair_curves(tissue, aif))[:, 3]
    assert np.abs(tmax - DELAYS).max() < tr / 2


def test_tmax_is_the_maximum_one_sample_after_the_onset():
    # Symmetric peak at sample 4: the parabola's vertex is the sample; the
    # onset is one sample earlier.
    response = np.array([0.0, 0.0, 0.2, 0.5, 1.0, 0.5, 0.2, 0.0])
    assert tmax_from_residue(response, 2.0, circular=False) == pytest.approx(2 * 3.0)
    # Neighbours 0.5 and 0.8: the vertex of the parabola through (-1, 0.5),
    # (0, 1), (1, 0.8) is at 0.5 (0.5 - 0.8) / (0.5 - 2 + 0.8) = 3/14 of a sample.
    skewed = np.array([0.0, 0.0, 0.0, 0.5, 1.0, 0.8, 0.2, 0.0])
    assert tmax_from_residue(skewed, 1.0, circular=False) == pytest.approx(3 + 3 / 14)
    # On the circle of 8 samples, the same response rolled by 3 samples into
    # the negative half: sample 7 stands for t = -1 TR, so Tmax = -2 TR + 3/14.
    assert tmax_from_residue(np.roll(skewed, 3), 1.0) == pytest.approx(-2 + 3 / 14)
    # Without negative times (sSVD) a maximum at sample 0 is no delay.
    assert tmax_from_residue(np.array([1.0, 0.5, 0.2, 0.0]), 1.0, circular=False) == 0.0
    assert np.isnan(tmax_from_residue(np.zeros(6), 1.0))


@pytest.fixture(scope="module")
def delayed_exam():
    exam, labels = simulate_exam("sub-delay", "HGG", shape=(16, 16, 3), random_state=1,
                                 return_labels=True, hard_cases=["delayed_territory"])
    return exam, ExamToCurves().transform(exam), territory_mask(labels, exam.masks["nawm"])


@pytest.mark.parametrize("deconvolver", [OSVDDeconvolver, TikhonovDeconvolver])
def test_tmax_is_not_negative_where_tissue_follows_the_aif(delayed_exam, deconvolver):
    # Every true delay of the simulated exam (SNR 50) is >= 0; the maximum of a
    # residue cannot precede its onset, so only noise peaks give Tmax < 0.
    exam, curves, lobe = delayed_exam
    tmax = curves.to_volume(deconvolver(tr=exam.tr).fit_transform(curves.X)[:, 3])
    normal = (exam.masks["brain"] & ~exam.masks["aif"] & ~exam.masks["vof"] & ~lobe
              & np.isfinite(exam.ground_truth["Tmax"]))
    assert np.nanmin(exam.ground_truth["Tmax"][normal]) >= 0
    assert np.mean(tmax[normal] < -0.5) < 0.05
    # The territory's 4 s more delay shows in Tmax, plus its 2 s more dispersion
    # (an exponential kernel of mean 2 s moves the maximum later by at most 2 s).
    shift = np.median(tmax[lobe]) - np.median(tmax[normal])
    assert 4.0 - exam.tr / 2 < shift < 4.0 + 2.0 + exam.tr / 2
