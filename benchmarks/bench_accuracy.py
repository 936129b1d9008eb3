"""Accuracy of the oSVD, cSVD, sSVD and Tikhonov deconvolvers on simulated curves.

Prints, per residue family x MTT x TR, the relative error (estimate / truth - 1,
in %) of CBF, MTT and CBV, noise-free (the worst of CBF 10-70 ml/100g/min) and
the median over 300 voxels at SNR 20 (CBF uniform in 10-70), plus the delay
test: tissue bolus 3 s after the AIF, or 3 s before it (the AIF delayed).

Simulation: gamma-variate AIF (arrival 10 s, peak ΔR2* = 100 /s), tissue curves
from :func:`skperfusion.datasets.simulate_concentration` on a 20x finer grid
(not the deconvolvers' discretisation), CBF 10-70 ml/100g/min, 90 frames.
At SNR 20 the curves become signals ``S = 100 · exp(-TE · C)`` (TE = 30 ms)
with Gaussian noise of sd = baseline / 20 (the AIF, the mean of 10 arterial
voxels, has sd / sqrt(10)), and go back to concentrations through
:class:`skperfusion.preprocessing.ConcentrationTransformer`.

Run: ``python benchmarks/bench_accuracy.py``.
"""

import functools

import numpy as np
from sklearn.pipeline import make_pipeline

from skperfusion import ConcentrationTransformer, OSVDDeconvolver, TikhonovDeconvolver, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.datasets.noise import add_noise

TE, S0, AIF_PEAK, N_TIMES, SNR, N_NOISY = 0.03, 100.0, 100.0, 90, 20.0, 300
CBFS = np.array([10.0, 30.0, 50.0, 70.0])
METHODS = {
    "oSVD": lambda tr: OSVDDeconvolver(tr=tr),
    "cSVD": lambda tr: OSVDDeconvolver(tr=tr, method="cSVD"),
    "sSVD": lambda tr: OSVDDeconvolver(tr=tr, method="sSVD"),
    "Tik-GCV": lambda tr: TikhonovDeconvolver(tr=tr, lambda_selection="gcv"),
    "Tik-Lcurve": lambda tr: TikhonovDeconvolver(tr=tr, lambda_selection="lcurve"),
}
AIF = functools.partial(gamma_variate, t0=10.0, peak=AIF_PEAK)


def _curves(family, tr, mtt, cbf, delay=0.0):
    tissue, aif = simulate_concentration(AIF, tr, cbf, np.full(cbf.shape, float(mtt)),
                                         family=family, delay=delay, n_times=N_TIMES)
    return tissue, aif


def _noisy_signals(tissue, aif, tr, rng):
    n_baseline = int(10.0 / tr)
    tissue_signal = add_noise(S0 * np.exp(-TE * tissue), SNR, n_baseline=n_baseline,
                              random_state=rng)
    aif_snr = SNR * np.sqrt(10.0)
    aif_signal = add_noise(S0 * np.exp(-TE * aif), aif_snr, n_baseline=n_baseline,
                           random_state=rng)
    return pair_curves(tissue_signal, aif_signal), n_baseline


def _errors(maps, cbf, mtt):
    truth = np.column_stack([cbf, np.full(cbf.shape, float(mtt)), cbf * mtt / 60.0])
    return 100.0 * (maps[:, [0, 2, 1]] / truth - 1.0)


def main():
    rng = np.random.default_rng(0)
    header = (f"{'method':<11}{'family':<12}{'TR':>4}{'MTT':>5} | "
              f"{'CBF%':>7}{'MTT%':>7}{'CBV%':>7} | {'CBF%':>7}{'MTT%':>7}{'CBV%':>7}")
    print(f"{'':<32} | noise-free (worst of CBF 10-70) | median at SNR 20")
    print(header)
    print("-" * len(header))
    for name, make in METHODS.items():
        for family in ("exponential", "gamma"):
            for tr in (1.0, 1.5):
                for mtt in (2, 4, 8, 12):
                    tissue, aif = _curves(family, tr, mtt, CBFS)
                    clean = _errors(make(tr).fit_transform(pair_curves(tissue, aif)), CBFS, mtt)
                    worst = clean[np.argmax(np.abs(clean), axis=0), np.arange(3)]
                    cbf = rng.uniform(10.0, 70.0, N_NOISY)
                    tissue, aif = _curves(family, tr, mtt, cbf)
                    X, n_baseline = _noisy_signals(tissue, aif, tr, rng)
                    pipe = make_pipeline(ConcentrationTransformer(te=TE, n_baseline=n_baseline),
                                         make(tr))
                    noisy = np.median(_errors(pipe.fit_transform(X), cbf, mtt), axis=0)
                    print(f"{name:<11}{family:<12}{tr:>4}{mtt:>5} | "
                          + "".join(f"{v:>7.1f}" for v in worst) + " | "
                          + "".join(f"{v:>7.1f}" for v in noisy))
    print()
    print("Delay test, noise-free, CBF 50, MTT 4 s: tissue bolus 3 s after (+3) or, AIF "
          "delayed instead, 3 s before (-3) the AIF:")
    print(f"{'method':<11}{'family':<12}{'TR':>4} | {'CBF(+3)/CBF(0)':>15}{'CBF(-3)/CBF(0)':>15}"
          f"{'Tmax(0)':>9}{'Tmax(+3)':>9}{'Tmax(-3)':>9}")
    for name, make in METHODS.items():
        for family in ("exponential", "gamma"):
            for tr in (1.0, 1.5):
                maps = [make(tr).fit_transform(pair_curves(*_curves(family, tr, 4, CBFS[2:3],
                                                                    delay)))
                        for delay in (0.0, 3.0)]
                tissue, _ = _curves(family, tr, 4, CBFS[2:3])
                late_aif = AIF(np.arange(N_TIMES) * tr, t0=13.0)
                maps.append(make(tr).fit_transform(pair_curves(tissue, late_aif)))
                print(f"{name:<11}{family:<12}{tr:>4} | {maps[1][0, 0] / maps[0][0, 0]:>15.3f}"
                      f"{maps[2][0, 0] / maps[0][0, 0]:>15.3f}"
                      + "".join(f"{m[0, 3]:>9.1f}" for m in maps))

if __name__ == "__main__":
    main()
