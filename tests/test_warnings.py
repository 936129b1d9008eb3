"""The library's warnings point at the caller's line, name the subject, and come once per call."""

import warnings

import numpy as np
import pytest
from joblib import Parallel, delayed
from sklearn.pipeline import make_pipeline

from skperfusion import ConcentrationTransformer, OSVDDeconvolver, PerfusionMapper
from skperfusion._warnings import recorded, replayed, warn
from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import FitBoundsWarning
from skperfusion.exam import ExamToCurves
from skperfusion.preprocessing.concentration import DegenerateVoxelWarning
from skperfusion.preprocessing.leakage import LeakageWarning


def _signals_with_a_zero_sample():
    """Signals ``S = 100 exp(-0.03 C)`` of 4 voxels, one with a zero sample (no logarithm)."""
    t = np.arange(40.0)
    bolus = np.where(t >= 10, (t - 10) ** 2 * np.exp(-(t - 10) / 1.5), 0.0)
    curves = np.stack([np.stack([0.2 * bolus, bolus])] * 4)
    signals = 100 * np.exp(-0.03 * curves)
    signals[2, 0, 20] = 0.0
    return signals


def test_warning_points_at_the_callers_line_through_sklearn_wrappers():
    signals = _signals_with_a_zero_sample()
    # fit_transform runs through scikit-learn's TransformerMixin and set_output wrappers,
    # the pipeline through Pipeline's: neither is where the user's code is.
    for call in (ConcentrationTransformer(te=0.03).fit_transform,
                 make_pipeline(ConcentrationTransformer(te=0.03)).fit_transform):
        with pytest.warns(DegenerateVoxelWarning, match="1 of 4 sample") as record:
            call(signals)
        assert [item.filename for item in record] == [__file__]


def test_subject_is_named_and_no_subject_leaves_the_message():
    with pytest.warns(UserWarning, match=r"^subject sub-007: no bolus$") as record:
        warn("no bolus", subject="sub-007")
    assert record[0].filename == __file__
    with pytest.warns(RuntimeWarning, match=r"^no bolus$"):
        warn("no bolus", RuntimeWarning)


def test_an_exam_warning_names_the_subject_once_at_the_callers_line():
    exam = simulate_exam("sub-042", "HGG", shape=(8, 8, 2), random_state=0)
    voxel = tuple(np.argwhere(exam.masks["brain"])[0])
    exam.signal[(*voxel, exam.n_skip + 3)] = 0.0
    mapper = PerfusionMapper(OSVDDeconvolver()).fit([exam])
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        mapper.transform([exam])
    degenerate = [item for item in shown if item.category is DegenerateVoxelWarning]
    assert len(degenerate) == 1
    assert str(degenerate[0].message).startswith("subject sub-042: 1 of ")
    # Every warning of the call points at this file, none at scikit-learn or joblib.
    assert {item.filename for item in shown} == {__file__}


def test_a_leakage_warning_of_a_chunked_exam_is_given_once():
    # 34 kept frames of 1 s end before the bidirectional model's tail lags: said once,
    # naming the subject, not again by every chunk of voxels.
    exam = simulate_exam("sub-9", "HGG", shape=(12, 12, 2), leakage=True, random_state=0,
                         parameters={"n_times": 40, "tr": 1.0})
    step = ExamToCurves(leakage="bidirectional")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # repeats are not hidden by the once-per-line registry
        chunks = list(step.transform_chunks(exam, "brain", chunk_voxels=50))
    assert len(chunks) > 1
    leakage = [item for item in shown if item.category is LeakageWarning]
    assert len(leakage) == 1 and leakage[0].filename == __file__
    assert str(leakage[0].message).startswith("subject sub-9: bidirectional leakage correction: "
                                              "the series (34 frames")


def _job(k):
    warnings.warn(f"subject sub-{k:03d}: {k + 2} of 10 sample(s) flagged", FitBoundsWarning,
                  stacklevel=2)
    if k == 0:
        warnings.warn("only in the first job", UserWarning, stacklevel=2)
    return k * k


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_warnings_of_parallel_jobs_are_issued_once_in_the_caller_with_their_count(n_jobs):
    jobs = Parallel(n_jobs=n_jobs)(delayed(recorded(_job))(k) for k in range(5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(replayed(jobs))
    assert results == [0, 1, 4, 9, 16]
    messages = sorted((w.category.__name__, str(w.message)) for w in caught)
    assert messages == [
        ("FitBoundsWarning", "subject sub-000: 2 of 10 sample(s) flagged "
                             "(and 4 more like it in other jobs)"),
        ("UserWarning", "only in the first job"),
    ]
    assert {w.filename for w in caught} == {__file__}


def test_replayed_warnings_of_nested_jobs_add_their_counts():
    inner = [(None, [(UserWarning, "3 voxels (and 2 more like it in other jobs)")]),
             (None, [(UserWarning, "5 voxels")])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(replayed(inner))
    assert [str(w.message) for w in caught] == ["3 voxels (and 3 more like it in other jobs)"]


class _FlaggingMapper:
    """A stand-in mapper whose every exam warns with its own count."""

    def transform(self, items):
        warnings.warn(f"{items[0]} of 9 sample(s) flagged", UserWarning, stacklevel=2)
        return [items[0]]


def test_a_study_mapping_exam_by_exam_warns_once_with_the_count():
    from skperfusion.study.run import _map_exams

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = _map_exams({"A": _FlaggingMapper(), "B": _FlaggingMapper()}, [1, 2, 3],
                          False, "mapping")
    assert maps == {"A": [1, 2, 3], "B": [1, 2, 3]}
    assert [str(w.message) for w in caught] == [
        "1 of 9 sample(s) flagged (and 5 more like it in other jobs)"]
