"""Cohort maps on a real dask cluster (joblib's dask backend) equal the serial run."""

import joblib
import numpy as np
import pytest

from skperfusion import OSVDDeconvolver, PerfusionMapper, ROIRatio
from skperfusion.datasets import simulate_exam

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def exams():
    return [simulate_exam(f"sub-{i:03d}", grade, shape=(10, 10, 2), random_state=i)
            for i, grade in enumerate(["LGG", "HGG", "LGG", "HGG"])]


def _ratios(exams, n_jobs):
    mapper = PerfusionMapper(OSVDDeconvolver(), n_jobs=n_jobs).fit(exams)
    mapped = mapper.transform(exams)
    return mapped, ROIRatio().fit(mapped).transform(mapped)


@pytest.mark.slow
@pytest.mark.subprocess
def test_cohort_maps_on_a_local_cluster_equal_the_serial_run(exams):
    serial_maps, serial = _ratios(exams, None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, \
            joblib.parallel_config(backend="dask"), \
            distributed.get_task_stream(client) as tasks:
        parallel_maps, parallel = _ratios(exams, -1)
        workers = set(client.scheduler_info()["workers"])
    # The per-exam tasks (curve extraction, mapping) ran on the worker processes.
    assert len(tasks.data) >= 2 * len(exams)
    assert len(workers) == 2 and {task["worker"] for task in tasks.data} <= workers
    np.testing.assert_array_equal(parallel, serial)
    assert np.isfinite(serial).all() and serial.shape == (len(exams), 1)
    for a, b in zip(parallel_maps, serial_maps, strict=True):
        assert a.exam.subject_id == b.exam.subject_id
        for name in ("CBF", "CBV", "MTT", "Tmax"):
            np.testing.assert_array_equal(a.maps[name], b.maps[name])
