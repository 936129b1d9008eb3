"""Checks that a grading study can run on a cohort, made before any training or mapping.

A study that fails after training the PHAE and mapping every test exam
(because the test split holds one patient of a class, or a fold none) wastes
minutes to hours; every such condition is checked first, from the grades
alone, and reported at once with its remedy.
"""

import numpy as np
from sklearn.model_selection import train_test_split

__all__ = ["MIN_TEST_PER_CLASS", "check_study_design"]

MIN_TEST_PER_CLASS = 2
"""Fewest test patients of each class: an AUC needs one, its stratified
bootstrap interval and a Youden cut-off between two values need two."""


def _test_counts(grades, test_size, random_state, classes):
    """Patients of each class in the study's test split (the same call as the study's)."""
    try:
        _, test = train_test_split(np.arange(grades.size), test_size=test_size,
                                   stratify=grades, random_state=random_state)
    except ValueError:  # fewer test (or training) patients than classes
        return dict.fromkeys(classes, 0)
    return {grade: int(np.sum(grades[test] == grade)) for grade in classes}


def check_study_design(grades, *, test_size, n_splits, snrs, n_draws, random_state=0,
                       classes=("LGG", "HGG")):
    """Refuse a study design the cohort cannot support, naming every remedy.

    Parameters
    ----------
    grades : array_like of str of shape (n_patients,)
        Grade of each patient, in cohort order.
    test_size : float
        Fraction of patients in the test set, in (0, 1).
    n_splits : int
        Folds of the cross-validated grading.
    snrs : sequence of float
        Baseline SNRs of the noise experiment (finite, > 0).
    n_draws : int
        Noise draws per SNR (>= 1).
    random_state : int, default=0
        Seed of the split, as in the study (the split is made here the same way).
    classes : tuple of str, default=("LGG", "HGG")

    Raises
    ------
    ValueError
        One message listing every problem with its remedy.

    Examples
    --------
    >>> from skperfusion.study.feasibility import check_study_design
    >>> check_study_design(["LGG"] * 4 + ["HGG"] * 4, test_size=0.5, n_splits=4,
    ...                    snrs=(20,), n_draws=1)
    >>> check_study_design(["LGG"] * 4 + ["HGG"] * 4, test_size=0.25, n_splits=5,
    ...                    snrs=(20,), n_draws=1)
    Traceback (most recent call last):
    ...
    ValueError: the study cannot run on this cohort (8 patients: 4 LGG, 4 HGG): ...
    """
    grades = np.asarray(grades)
    counts = {grade: int(np.sum(grades == grade)) for grade in classes}
    problems = []
    if min(counts.values()) < 2:
        problems.append(f"grading needs at least 2 patients of each grade ({counts}); add "
                        "patients")
    else:
        if not 0 < test_size < 1:
            problems.append(f"--test-size must be in (0, 1); got {test_size}")
        else:
            in_test = _test_counts(grades, test_size, random_state, classes)
            if min(in_test.values()) < MIN_TEST_PER_CLASS:
                sizes = [size for size in np.arange(5, 95, 5) / 100
                         if min(_test_counts(grades, size, random_state, classes).values())
                         >= MIN_TEST_PER_CLASS]
                remedy = (f"use --test-size {sizes[0]:g} (the smallest multiple of 0.05 "
                          "that does)" if sizes
                          else "add patients")
                problems.append(f"the test split holds {in_test} patients; Table 1 needs at "
                                f"least {MIN_TEST_PER_CLASS} of each grade: {remedy}")
        if n_splits > min(counts.values()):
            problems.append(f"--cv-splits {n_splits} exceeds the {min(counts.values())} "
                            "patients of the smaller grade (every fold needs both grades): use "
                            f"--cv-splits {min(counts.values())} or fewer")
        if n_splits < 2:
            problems.append("--cv-splits must be at least 2")
    bad_snrs = [snr for snr in snrs if not (np.isfinite(snr) and snr > 0)]
    if bad_snrs or not len(snrs):
        problems.append(f"--snrs must be finite and positive; got {list(snrs)}")
    if n_draws < 1:
        problems.append(f"--noise-draws must be at least 1; got {n_draws}")
    if problems:
        described = ", ".join(f"{counts[grade]} {grade}" for grade in classes)
        raise ValueError(f"the study cannot run on this cohort ({grades.size} patients: "
                         f"{described}): {'; '.join(problems)}. Nothing was trained.")
