"""Every deconvolver against the OSIPI CodeCollection DSC reference curves.

The 14 curves (``tests/data``, Apache-2.0, see its README) were made by
OSIPI, not by this project: CNR 200, exponential residues of CBV 2 and 4
ml/100ml and CBF 5-70 ml/100ml/min, no delay, rectangle-rule convolutions,
kH = ρ = 1. The bounds are OSIPI's own test tolerances: CBF within 10 % +
15 ml/100ml/min, CBV within 10 % + 1 ml/100ml; and, for the model fit with
the generating family, the issue's "CBF within 10 % on at least 12 of 14".
"""

import numpy as np
import pytest
from osipi import load_osipi, osipi_passes

from skperfusion.deconvolution import (
    ParametricDeconvolver,
    available_deconvolvers,
    get_deconvolver,
    make_deconvolver,
)

# The model fit's default family (gamma, free shape) takes ~5 s here.
UNTRAINED = [pytest.param(name, marks=[pytest.mark.slow] if name == "parametric" else [])
             for name in available_deconvolvers() if not get_deconvolver(name).trainable]


@pytest.fixture(scope="module")
def osipi():
    return load_osipi()


def test_reference_data_as_documented(osipi):
    X, cbf, cbv, tr = osipi
    assert X.shape == (14, 2, 161) and tr == 1.243
    assert set(cbv) == {2.0, 4.0} and cbf.min() == 5.0 and cbf.max() == 70.0


@pytest.mark.parametrize("name", UNTRAINED)
def test_every_untrained_method_within_osipi_tolerance(osipi, name):
    X, cbf, cbv, tr = osipi
    maps = make_deconvolver(name, tr=tr, kh=1.0, rho=1.0).fit_transform(X)
    assert osipi_passes(maps[:, 0], cbf, 15.0).all(), maps[:, 0] / cbf
    assert osipi_passes(maps[:, 1], cbv, 1.0).all(), maps[:, 1] / cbv


def test_parametric_with_the_generating_family_is_strict(osipi):
    # Rectangle-rule data: the fit chooses that rule (a trapezoidal model
    # left CBF up to 23 % high, 5 of 14 within 10 %).
    X, cbf, _, tr = osipi
    fitted = ParametricDeconvolver(tr=tr, kh=1.0, rho=1.0, family="exponential").fit(X)
    assert fitted.discretisation_ == "rectangular"
    maps = fitted.transform(X)
    assert np.sum(np.abs(maps[:, 0] / cbf - 1) <= 0.10) >= 12
    np.testing.assert_allclose(maps[:, 3], 0.0, atol=fitted.tr / 2)   # no delay
