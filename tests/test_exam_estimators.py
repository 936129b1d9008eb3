"""Exam-level estimators: the grading study as a scikit-learn pipeline over exams."""

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from skperfusion import (
    CBFRatioGrader,
    OSVDDeconvolver,
    PerfusionMapper,
    PHAEDeconvolver,
    ROIRatio,
    TikhonovDeconvolver,
)
from skperfusion.datasets import simulate_exam
from skperfusion.exam import ExamToCurves
from skperfusion.exam_estimators import ExamMaps, exam_grades, shared_curves

SMALL_PHAE = {"max_epochs": 2, "batch_size": 256, "lr": 1e-3, "module__width": 4,
              "random_state": 0}


@pytest.fixture(scope="module")
def exams():
    # Ten small exams; the simulator draws TR (1-1.5 s) and length per subject.
    return [simulate_exam(f"sub-{i:02d}", grade, shape=(10, 10, 2), snr=100, random_state=i)
            for i, grade in enumerate(["LGG", "HGG"] * 5)]


def _pipeline(deconvolver=None, **mapper_params):
    return Pipeline([("maps", PerfusionMapper(deconvolver, random_state=0, **mapper_params)),
                     ("ratio", ROIRatio()),
                     ("grade", CBFRatioGrader(higher_class="HGG"))])


@pytest.mark.parametrize("estimator", [
    PerfusionMapper(PHAEDeconvolver(**SMALL_PHAE), max_train_voxels=100), ROIRatio("MTT"),
    ExamToCurves(aif="auto", aif_scaling="vof")])
@pytest.mark.parametrize("check", [
    check_estimator_cloneable, check_estimator_repr, check_get_params_invariance,
    check_no_attributes_set_in_init, check_parameters_default_constructible, check_set_params])
def test_generic_sklearn_checks(estimator, check):
    # parametrize_with_checks skips estimators whose X is not a 2-D array
    # (here a list of exams); these are the checks that do not need one.
    check(type(estimator).__name__, estimator)


def test_mapper_on_the_exam_grid_equals_the_deconvolver(exams):
    exam = exams[0]
    mapper = PerfusionMapper(OSVDDeconvolver()).fit([exam])
    assert (mapper.tr_, mapper.n_times_) == (exam.tr, exam.n_times - exam.n_skip)
    assert mapper.deconvolver_.tr == exam.tr
    (maps,) = mapper.transform([exam])
    expected = OSVDDeconvolver(tr=exam.tr).fit_transform(ExamToCurves().transform(exam).X)
    brain = exam.masks["brain"]
    for k, name in enumerate(["CBF", "CBV", "MTT", "Tmax"]):
        np.testing.assert_allclose(maps.maps[name][brain], expected[:, k])
        assert np.all(np.isnan(maps.maps[name][~brain]))
    assert maps.seconds > 0 and maps.curve_seconds > 0 and maps.exam is exam


def test_mapper_maps_shared_curves_as_it_maps_the_exams(exams):
    # Curves computed once (on the mapper's grid) give the maps of the exams, for
    # every mapper sharing them; and a mapper fitted on them trains on the same rows.
    osvd = PerfusionMapper(OSVDDeconvolver(), random_state=0).fit(exams)
    tikhonov = PerfusionMapper(TikhonovDeconvolver(), random_state=0).fit(exams)
    curves = shared_curves(exams[:2], {"oSVD": osvd.curves_, "Tikhonov": tikhonov.curves_})
    assert curves["oSVD"] is curves["Tikhonov"]
    for mapper in (osvd, tikhonov):
        for direct, shared in zip(mapper.transform(exams[:2]), mapper.transform(curves["oSVD"]),
                                  strict=True):
            assert shared.exam is direct.exam
            for name, volume in direct.maps.items():
                np.testing.assert_array_equal(shared.maps[name], volume)
    refitted = clone(osvd).fit(curves["oSVD"])
    assert (refitted.tr_, refitted.n_times_) == (osvd.tr_, osvd.n_times_)
    finer = PerfusionMapper(OSVDDeconvolver(), tr=osvd.tr_ / 2).fit(exams)
    with pytest.raises(ValueError, match=r"sub-00: curves on a grid of \d+ frames"):
        finer.transform(curves["oSVD"])


def test_mapper_puts_exams_of_several_protocols_on_one_grid(exams):
    mapper = PerfusionMapper(TikhonovDeconvolver()).fit(exams)
    shortest = min((e.n_times - e.n_skip - 1) * e.tr for e in exams)
    assert mapper.tr_ == min(e.tr for e in exams)
    assert mapper.n_times_ == int(shortest // mapper.tr_) + 1
    maps = mapper.transform(exams[:3])
    assert [m.exam.subject_id for m in maps] == ["sub-00", "sub-01", "sub-02"]
    assert all(np.isfinite(m.maps["CBF"][m.exam.masks["brain"]]).mean() > 0.95 for m in maps)


class _RecordingDeconvolver(OSVDDeconvolver):
    """oSVD that records how many voxels it was trained on."""

    def _fit_curves(self, tissue, aif):
        self.n_fit_voxels_ = tissue.shape[0]


def test_training_voxels_are_subsampled_reproducibly(exams):
    mapper = PerfusionMapper(_RecordingDeconvolver(), max_train_voxels=150, random_state=0)
    mapper.fit(exams)
    assert mapper.n_train_voxels_ == mapper.deconvolver_.n_fit_voxels_ == 150
    n_brain = sum(int(e.masks["brain"].sum()) for e in exams)
    unlimited = clone(mapper).set_params(max_train_voxels=None).fit(exams)
    assert unlimited.deconvolver_.n_fit_voxels_ == n_brain


def test_parallel_mapping_matches_sequential(exams):
    sequential = PerfusionMapper(OSVDDeconvolver()).fit(exams[:3]).transform(exams[:3])
    # Threads keep the test fast; any joblib backend (loky, dask, ray) takes this path.
    with parallel_config(backend="threading"):
        parallel = PerfusionMapper(OSVDDeconvolver(), n_jobs=2).fit(exams[:3]).transform(
            exams[:3])
    for a, b in zip(sequential, parallel, strict=True):
        np.testing.assert_array_equal(a.maps["CBF"], b.maps["CBF"])


@pytest.mark.slow
def test_trained_phae_mapper_pickles(exams):
    mapper = PerfusionMapper(PHAEDeconvolver(**SMALL_PHAE), max_train_voxels=300,
                             random_state=0).fit(exams[:4])
    restored = pickle.loads(pickle.dumps(mapper))
    np.testing.assert_array_equal(restored.transform(exams[:1])[0].maps["MTT"],
                                  mapper.transform(exams[:1])[0].maps["MTT"])


def test_roi_ratio_by_hand(exams):
    exam = exams[0]
    cbf = np.where(exam.masks["tumor"], 60.0, 20.0)
    cbf[~exam.masks["brain"]] = np.nan
    maps = [ExamMaps(exam, {"CBF": cbf, "MTT": np.full(exam.shape, 4.0)})]
    np.testing.assert_allclose(ROIRatio().fit_transform(maps), [[3.0]])
    np.testing.assert_allclose(ROIRatio("MTT").fit_transform(maps), [[1.0]])
    table = ROIRatio().set_output(transform="pandas").fit_transform(maps)
    assert isinstance(table, pd.DataFrame) and table.columns.tolist() == ["CBF_ratio"]


def test_pipeline_tables_are_named_under_set_output(exams):
    pipe = _pipeline().set_output(transform="pandas").fit(exams, exam_grades(exams))
    ratios = pipe[:-1].transform(exams)
    assert ratios.columns.tolist() == ["CBF_ratio"]
    # The named table holds the same ratios as the default (array) output.
    plain = _pipeline().fit(exams, exam_grades(exams))[:-1].transform(exams)
    np.testing.assert_allclose(ratios.to_numpy(), plain)
    assert set(pipe.predict(exams)) <= {"LGG", "HGG"}


@pytest.mark.slow
def test_grid_search_compares_deconvolvers_by_cross_validated_auc(exams):
    y = exam_grades(exams)
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    candidates = [OSVDDeconvolver(), TikhonovDeconvolver(), PHAEDeconvolver(**SMALL_PHAE)]
    search = GridSearchCV(_pipeline(max_train_voxels=300), {"maps__deconvolver": candidates},
                          scoring="roc_auc", cv=cv).fit(exams, y)
    # Every deconvolver gave finite ratios on every fold (a NaN map would give NaN AUCs).
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # The refitted mapper trained a clone of the chosen deconvolver on the grid's TR.
    mapper = search.best_estimator_.named_steps["maps"]
    chosen = search.best_params_["maps__deconvolver"]
    assert type(mapper.deconvolver_) is type(chosen) and mapper.deconvolver_ is not chosen
    assert mapper.deconvolver_.tr == mapper.tr_ == min(exam.tr for exam in exams)
    # Each fold's score is the AUC of the held-out ratios for HGG.
    for k, (train, test) in enumerate(cv.split(exams, y)):
        pipe = _pipeline(clone(candidates[0])).fit([exams[i] for i in train], y[train])
        ratios = pipe[:-1].transform([exams[i] for i in test]).ravel()
        assert search.cv_results_[f"split{k}_test_score"][0] == pytest.approx(
            roc_auc_score(y[test] == "HGG", ratios))
    np.testing.assert_allclose(
        cross_val_score(_pipeline(), exams, y, scoring="roc_auc", cv=cv),
        [search.cv_results_[f"split{k}_test_score"][0] for k in range(2)])


def test_bad_input_gives_clear_errors(exams):
    exam = exams[0]
    with pytest.raises(TypeError, match="list of Exam"):
        PerfusionMapper().fit(exam)
    with pytest.raises(ValueError, match="empty list"):
        PerfusionMapper().fit([])
    with pytest.raises(TypeError, match="list of ExamMaps"):
        ROIRatio().fit_transform(exams[:2])
    no_tumor = dataclasses.replace(exam, masks={k: v for k, v in exam.masks.items()
                                                if k != "tumor"})
    with pytest.raises(ValueError, match=r"\['sub-00'\] lack a tumor or nawm mask"):
        ROIRatio().transform([ExamMaps(no_tumor, exam.ground_truth)])
    nan_nawm = np.where(exam.masks["nawm"], np.nan, 1.0)
    with pytest.raises(ValueError, match=r"Undefined CBF ratio.*sub-00"):
        ROIRatio().transform([ExamMaps(exam, {"CBF": nan_nawm})])
    with pytest.raises(ValueError, match="have no CBV map"):
        ROIRatio("CBV").transform([ExamMaps(exam, {"CBF": nan_nawm})])
    ungraded = dataclasses.replace(exam, grade=None)
    with pytest.raises(ValueError, match=r"\['sub-00'\] have no grade"):
        exam_grades([ungraded, exams[1]])
    with pytest.raises(ValueError, match="only one class"):
        _pipeline().fit(exams[:3], ["HGG"] * 3)


def test_the_exam_to_curves_step_is_a_tunable_parameter(exams):
    from sklearn.frozen import FrozenEstimator

    pipe = _pipeline(OSVDDeconvolver(), curves=ExamToCurves())
    assert pipe.get_params()["maps__curves__aif"] == "mask"
    pipe.set_params(maps__curves__aif="auto")
    (maps,) = pipe[:1].fit(exams[:1]).transform(exams[:1])
    assert maps.aif.candidates is not None and maps.aif.voxels.any()
    np.testing.assert_allclose(maps.aif.times[1], pipe[0].tr_)
    # A frozen, fitted deconvolver is used as it is, on the grid it was fitted on.
    fitted = OSVDDeconvolver(tr=exams[1].tr).fit(ExamToCurves().transform(exams[1]).X[:5])
    mapper = PerfusionMapper(FrozenEstimator(fitted)).fit(exams[:1])
    assert mapper.deconvolver_.estimator is fitted and mapper.n_train_voxels_ == 0
    assert (mapper.tr_, mapper.n_times_) == (exams[1].tr, fitted.n_times_)
