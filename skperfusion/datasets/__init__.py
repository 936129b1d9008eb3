"""Simulated data with ground truth: curves and synthetic glioma cohorts."""

from .curves import gamma_variate, simulate_concentration

__all__ = ["gamma_variate", "simulate_concentration"]
