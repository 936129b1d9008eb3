"""Rectangular or trapezoidal convolution matrix for the SVD family? (issue 14)

The SVD deconvolvers invert ``D = TR · Ca[i - j]`` (rectangular rule, as in
Østergaard 1996 and Wu 2003); the trapezoidal rule halves the weight of the
two ends of the convolution sum, ``j = 0`` and ``j = i``. With a pre-bolus
baseline ``Ca[0] = 0`` the second end vanishes, so the trapezoidal matrix is
the rectangular one with its first column halved: ``D_trap h = D_rect h'``
with ``h'[0] = h[0] / 2``. Inverting it therefore returns the rectangular
solution with its sample at ``t = 0`` doubled, and changes nothing else.

This script measures what that does against the continuous-time truth:
tissue curves from a fine-grid convolution (``simulate_concentration``, 20
points per TR), bolus arrival delays spread continuously over 0-3 TR (so the
arrival falls anywhere between samples), exponential, gamma and Lorentzian
residues, MTT 2-12 s, TR 1 and 1.5 s, noise-free. Both matrices are inverted
explicitly (``numpy.linalg.svd``) with the same truncation, for the
block-circulant matrix (cSVD, 20 % threshold) and the Toeplitz one (sSVD,
20 %); the oSVD row uses the library (rectangular) and the doubled-sample
equivalent. Printed: CBF estimate / true CBF (median, 5th and 95th
percentiles, and the worst case), per delay class.

Run: ``python benchmarks/bench_discretisation.py``.
"""

import functools

import numpy as np
import pandas as pd
import scipy.linalg

from skperfusion import OSVDDeconvolver, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.physics import flow_rate_to_cbf

AIF = functools.partial(gamma_variate, t0=10.0, peak=100.0)
N_TIMES = 60


def _cases(tr, rng, n=300):
    cbf = rng.uniform(10.0, 70.0, n)
    mtt = rng.uniform(2.0, 12.0, n)
    delay = rng.uniform(0.0, 3.0 * tr, n)
    rows = []
    for family in ("exponential", "gamma", "lorentzian"):
        tissue, aif = simulate_concentration(AIF, tr, cbf, mtt, family=family, delay=delay,
                                             n_times=N_TIMES)
        rows.append((family, tissue, aif))
    return cbf, mtt, delay, rows


def _truncated_inverse(matrix, threshold):
    u, s, vt = np.linalg.svd(matrix)
    kept = s >= threshold * s[0]
    return (vt[kept].T / s[kept]) @ u[:, kept].T


def _estimates(tissue, aif, tr):
    n = len(aif)
    circulant = scipy.linalg.circulant(tr * np.r_[aif, np.zeros(n)])
    toeplitz = np.tril(scipy.linalg.toeplitz(tr * aif))
    trapezoid_circulant, trapezoid_toeplitz = circulant.copy(), toeplitz.copy()
    for matrix in (trapezoid_circulant, trapezoid_toeplitz):
        matrix[:, 0] /= 2  # the tau = 0 end of the sum, weight Ca[i] / 2 on h[0]
        matrix[np.diag_indices(len(matrix))] /= 2  # the tau = t end, Ca[0] / 2 on h[i]
    padded = np.c_[tissue, np.zeros_like(tissue)]
    out = {}
    for name, matrix, curves in (("cSVD rect", circulant, padded),
                                 ("cSVD trap", trapezoid_circulant, padded),
                                 ("sSVD rect", toeplitz, tissue),
                                 ("sSVD trap", trapezoid_toeplitz, tissue)):
        residues = curves @ _truncated_inverse(matrix, 0.2).T
        out[name] = flow_rate_to_cbf(residues.max(axis=1))
    osvd = OSVDDeconvolver(tr=tr).fit(pair_curves(tissue, aif)[:1])
    residues = osvd.residues(pair_curves(tissue, aif))
    out["oSVD rect"] = flow_rate_to_cbf(residues.max(axis=1))
    doubled = residues.copy()
    doubled[:, 0] *= 2
    out["oSVD trap"] = flow_rate_to_cbf(doubled.max(axis=1))
    return out


def main():
    rng = np.random.default_rng(14)
    frames = []
    for tr in (1.0, 1.5):
        cbf, _, delay, rows = _cases(tr, rng)
        fraction = (delay / tr) % 1.0
        delay_class = np.where(delay < 0.5 * tr, "arrival < TR/2",
                               np.where(np.abs(fraction - 0.5) < 0.25, "between samples",
                                        "near a sample"))
        for family, tissue, aif in rows:
            for variant, estimate in _estimates(tissue, aif, tr).items():
                frames.append(pd.DataFrame({"tr": tr, "family": family, "variant": variant,
                                            "delays": delay_class, "ratio": estimate / cbf}))
    table = pd.concat(frames)
    summary = table.groupby(["variant", "delays"]).ratio.describe(
        percentiles=[0.05, 0.5, 0.95])[["count", "5%", "50%", "95%", "min", "max"]]
    print("CBF estimate / true CBF, noise-free, continuous delays 0-3 TR, TR 1 and 1.5 s,\n"
          "exponential/gamma/Lorentzian residues, MTT 2-12 s\n")
    print(summary.round(3).to_markdown())
    overall = table.groupby("variant").ratio.agg(
        median="median", mad=lambda r: (r - 1).abs().median(), worst=lambda r: (r - 1).abs().max())
    print("\nAll delays: median ratio, median |ratio - 1|, worst |ratio - 1|\n")
    print(overall.round(3).to_markdown())


if __name__ == "__main__":
    main()
