"""
=====================================================
Comparing deconvolvers with GridSearchCV
=====================================================

The paper's study — perfusion maps, tumour/NAWM CBF ratio, Youden cut-off,
ROC AUC — is one scikit-learn pipeline whose samples are *exams* (one per
patient), so cross-validation splits by patient. Swapping the deconvolver is
then a grid search over one parameter.

The cohort here is small and the PHAE is trained briefly so that the example
runs in seconds; ``skperfusion study`` runs the full protocol (bootstrap
confidence intervals, noise robustness, figures) on a larger cohort.
"""

# %%
# A simulated cohort and the grading pipeline
# -------------------------------------------
# :class:`~skperfusion.exam_estimators.PerfusionMapper` maps every exam with
# a deconvolver (training it first, for the PHAE, on the training exams'
# voxels), :class:`~skperfusion.exam_estimators.ROIRatio` turns the maps and
# the ROIs into one ratio per exam, and
# :class:`~skperfusion.grading.CBFRatioGrader` thresholds the ratio at its
# Youden-optimal cut-off.
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import (
    OSVDDeconvolver,
    ParametricDeconvolver,
    PHAEDeconvolver,
    TikhonovDeconvolver,
)
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio, exam_grades
from skperfusion.grading import CBFRatioGrader

grades = ["LGG", "HGG"] * 6
exams = [simulate_exam(f"sub-{i:03d}", grade, shape=(12, 12, 2), random_state=100 + i)
         for i, grade in enumerate(grades)]
y = exam_grades(exams)

pipe = Pipeline([
    ("maps", PerfusionMapper(max_train_voxels=768, random_state=0)),
    ("ratio", ROIRatio("CBF")),
    ("grade", CBFRatioGrader(higher_class="HGG")),
])

# %%
# One grid, four methods
# ----------------------
# ``scoring="roc_auc"`` scores the ratio itself (through
# ``decision_function``), independently of the cut-off.
phae = PHAEDeconvolver(max_epochs=10, lr=1e-2, batch_size=256, module__width=8,
                       random_state=0)
search = GridSearchCV(
    pipe,
    {"maps__deconvolver": [OSVDDeconvolver(), TikhonovDeconvolver(), ParametricDeconvolver(),
                           phae]},
    scoring="roc_auc",
    cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
)
search.fit(exams, y)

results = pd.DataFrame(search.cv_results_)
results["method"] = [type(d).__name__.removesuffix("Deconvolver")
                     for d in results["param_maps__deconvolver"]]
print(results[["method", "mean_test_score", "std_test_score", "mean_fit_time"]]
      .to_string(index=False, float_format="{:.2f}".format))

fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.bar(results["method"], results["mean_test_score"], yerr=results["std_test_score"],
       capsize=4)
ax.set(ylabel="ROC AUC (mean ± sd over folds)", ylim=(0, 1.1),
       title="Grading by tumour/NAWM CBF ratio")
plt.show()

# %%
# The refitted best pipeline is an ordinary classifier of exams: its cut-off
# and the per-exam maps are at hand.
best = search.best_estimator_
print("best:", type(best["maps"].deconvolver_).__name__,
      f"- CBF ratio cut-off {best['grade'].cutoff_:.2f}")
print("predicted grades:", best.predict(exams[:4]).tolist(), "true:", y[:4].tolist())
