"""Tmax of the residue-based deconvolvers against simulated bolus delays."""

import functools

import numpy as np
import pytest

from skperfusion.curves import pair_curves
from skperfusion.datasets.curves import gamma_variate, simulate_concentration
from skperfusion.deconvolution import OSVDDeconvolver, TikhonovDeconvolver
from skperfusion.physics import tmax_from_residue

DELAYS = np.linspace(-2.0, 3.0, 21)  # s; negative: tissue bolus before the AIF


@pytest.mark.parametrize("tr", [1.0, 1.5])
@pytest.mark.parametrize("family", ["exponential", "gamma"])
@pytest.mark.parametrize("deconvolver", [OSVDDeconvolver, TikhonovDeconvolver])
def test_tmax_recovers_simulated_delays_to_sub_tr_precision(tr, family, deconvolver):
    kw = {"shape": np.full(DELAYS.size, 3.0)} if family == "gamma" else {}
    tissue, aif = simulate_concentration(
        functools.partial(gamma_variate, t0=10.0), tr, np.full(DELAYS.size, 60.0),
        np.full(DELAYS.size, 4.0), family=family, delay=DELAYS, n_times=80, **kw)
    tmax = deconvolver(tr=tr).fit_transform(pair_curves(tissue, aif))[:, 3]
    error = tmax - DELAYS
    # Rounding the delay to the sample grid errs by up to TR/2; the onset
    # estimate is better than that for every delay, and unbiased to within
    # a quarter sample over delays spread across the samples.
    assert np.abs(error).max() < tr / 2
    assert abs(error.mean()) < tr / 4


def test_tmax_is_the_half_maximum_crossing_of_the_rising_flank():
    # Maximum 1.0 at sample 4; the flank crosses 0.5 a quarter of the way
    # from sample 2 (0.4) to sample 3 (0.8).
    response = np.array([0.0, 0.6, 0.4, 0.8, 1.0, 0.7, 0.2, 0.0])
    assert tmax_from_residue(response, 2.0, circular=False) == pytest.approx(2 * 2.25)
    # On the circle of 8 samples, the same response rolled by 3 samples
    # into the negative half: sample 4 stands for t = 4 - 8 TR.
    assert tmax_from_residue(np.roll(response, 3), 2.0) == pytest.approx(2 * (5.25 - 8))
    assert np.isnan(tmax_from_residue(np.zeros(6), 1.0))
