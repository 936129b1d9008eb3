"""Relaxivity relations: ΔR2* <-> concentration in tissue (linear) and blood (quadratic)."""

import numpy as np
import pytest

from skperfusion import physics


def test_blood_inverse_round_trips_over_the_clinical_range():
    # Noise (negative) to a 20 mM first-pass peak.
    concentration = np.linspace(-2.0, 20.0, 2001)
    np.testing.assert_allclose(physics.blood_concentration(physics.blood_delta_r2(concentration)),
                               concentration, rtol=1e-12, atol=1e-12)


def test_blood_relation_is_van_osch_quadratic_and_odd():
    a, b = physics.BLOOD_RELAXIVITY
    c = np.array([0.0, 1.0, 5.0, 10.0])
    np.testing.assert_allclose(physics.blood_delta_r2(c), a * c + b * c**2)
    np.testing.assert_allclose(physics.blood_delta_r2(-c), -physics.blood_delta_r2(c))
    # Monotonic: noise around a zero baseline stays noise around zero.
    assert np.all(np.diff(physics.blood_concentration(np.linspace(-50, 200, 500))) > 0)
    # At small ΔR2* the inverse is the linear a·C without cancellation error.
    np.testing.assert_allclose(physics.blood_concentration(1e-12), 1e-12 / a, rtol=1e-9)


def test_tissue_relation_is_linear_and_keeps_float32():
    delta_r2 = np.array([0.0, 22.0, 44.0], dtype=np.float32)
    out = physics.tissue_concentration(delta_r2)
    assert out.dtype == np.float32 and physics.blood_concentration(delta_r2).dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(physics.tissue_delta_r2(out), delta_r2)
    assert physics.TISSUE_RELAXIVITY / physics.BLOOD_RELAXIVITY[0] == pytest.approx(5.79, abs=0.01)


def test_simulator_uses_the_physics_constants():
    from skperfusion.datasets import cohort

    assert cohort.TISSUE_RELAXIVITY is physics.TISSUE_RELAXIVITY
    assert cohort.BLOOD_RELAXIVITY is physics.BLOOD_RELAXIVITY
