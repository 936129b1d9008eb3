"""Simulated data with ground truth: curves and synthetic glioma cohorts."""

from .cohort import (
    draw_leakage_parameters,
    draw_subject_parameters,
    simulate_cohort,
    simulate_exam,
    tissue_labels,
)
from .curves import gamma_variate, simulate_concentration
from .noise import add_noise

__all__ = [
    "add_noise",
    "draw_leakage_parameters",
    "draw_subject_parameters",
    "gamma_variate",
    "simulate_cohort",
    "simulate_concentration",
    "simulate_exam",
    "tissue_labels",
]
