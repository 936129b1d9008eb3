"""The ``device`` parameter of the torch estimators, and their device paths run on the CPU.

The CPU runs the very code a GPU runs (curves resident on the device, batches
sliced there, chunked inference); the CUDA tests compare the two devices and
skip where no GPU is present.
"""

import functools

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset, ValidSplit
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from skperfusion import PHAEDeconvolver, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.deconvolution import ParametricDeconvolver
from skperfusion.deconvolution.phae import _cuda_settings, _VoxelBatches
from skperfusion.physics import cbf_from_cbv_mtt, cbv_from_curves
from skperfusion.physics.torch_ops import torch_device

TR = 1.5
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
SMALL_PHAE = {"tr": TR, "max_epochs": 2, "batch_size": 64, "lr": 3e-3, "module__width": 4,
              "random_state": 0}


def curves(n, seed=0, n_times=40):
    rng = np.random.default_rng(seed)
    tissue, aif = simulate_concentration(functools.partial(gamma_variate, t0=6.0), TR,
                                         rng.uniform(10, 70, n), rng.uniform(2, 12, n),
                                         n_times=n_times)
    return pair_curves(tissue, aif).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Train on one thread (fast on a busy machine; see test_phae)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phae_cpu():
    X = curves(300)
    return PHAEDeconvolver(**SMALL_PHAE).fit(X), X


ESTIMATORS = [PHAEDeconvolver(**SMALL_PHAE), ParametricDeconvolver(tr=TR, max_iter=2)]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("device, message", [
    ("banana", r"^device='banana' is not a torch device; use e\.g\. 'cpu' or 'cuda'\.$"),
    pytest.param("cuda", r"^device='cuda' but CUDA is not available here", marks=NO_CUDA),
    pytest.param("cuda:0", r"^device='cuda:0' but CUDA is not available here", marks=NO_CUDA),
])
def test_unusable_device_is_refused_in_fit_in_one_line(estimator, device, message):
    estimator = estimator.set_params(device=device)  # accepted as a parameter ...
    with pytest.raises(ValueError, match=message) as error:
        estimator.fit(curves(8))  # ... refused when fitting
    assert "\n" not in str(error.value)
    assert estimator.get_params()["device"] == device


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_torch_device_names_the_cpu(device):
    assert torch_device(device) == torch.device("cpu")


def test_more_cuda_devices_than_present_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert torch_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"^device='cuda:1' but this machine has 1 CUDA"):
        torch_device("cuda:1")


def test_training_batches_are_slices_of_the_resident_curves():
    X = torch.arange(10 * 2 * 3, dtype=torch.float32).reshape(10, 2, 3)
    sequential = [batch for batch, _ in _VoxelBatches(Dataset(X), batch_size=4)]
    assert [len(b) for b in sequential] == [4, 4, 2]
    assert torch.equal(torch.cat(sequential), X)
    torch.manual_seed(0)
    drawn = _VoxelBatches(Dataset(X), batch_size=3, max_samples=7)
    assert len(drawn) == 3
    first, second = (torch.cat([b for b, _ in drawn]) for _ in range(2))
    voxel = first[:, 0, 0].long() // 6  # X[i, 0, 0] = 6 i
    assert len(first) == 7 and len(set(voxel.tolist())) == 7  # without replacement
    assert torch.equal(first, X[voxel])
    assert not torch.equal(first, second)  # a fresh draw every epoch


@pytest.mark.parametrize("max_samples", [None, 7])
def test_training_batches_are_those_of_a_dataloader_seed_for_seed(max_samples):
    # The reference: torch's DataLoader over a RandomSampler, gathering each batch on the host.
    X = torch.arange(10 * 2 * 3, dtype=torch.float32).reshape(10, 2, 3)
    torch.manual_seed(0)
    ours = [b for _ in range(2) for b, _ in _VoxelBatches(Dataset(X), 3, True, max_samples)]
    torch.manual_seed(0)
    sampler = BatchSampler(RandomSampler(range(10), num_samples=max_samples or 10), 3, False)
    loader = DataLoader(Dataset(X), batch_size=None, sampler=sampler)
    theirs = [b for _ in range(2) for b, _ in loader]
    assert len(ours) == len(theirs) == 2 * -(-(max_samples or 10) // 3)
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.equal(mine, reference)


def test_training_batches_of_a_validation_split():
    X = torch.arange(20 * 2 * 3, dtype=torch.float32).reshape(20, 2, 3)
    _, valid = ValidSplit(0.25)(Dataset(X))
    batches = [b for b, _ in _VoxelBatches(valid, batch_size=16)]
    assert torch.equal(torch.cat(batches), X[valid.indices])


@pytest.mark.slow
def test_chunked_cpu_inference_equals_the_unfolded_encoder_on_all_voxels(phae_cpu):
    model, X = phae_cpu
    torch.set_num_threads(2)
    try:
        maps = model.set_params(chunk_size=64).transform(X)
    finally:
        torch.set_num_threads(1)
    # Reference: the module with gradients on (unfolded batch norms), all voxels at once.
    module = model.net_.module_.eval()
    mtt = module(torch.as_tensor(X))[:, 0].detach().numpy()
    cbv = cbv_from_curves(X[:, 0], X[:, 1])
    np.testing.assert_allclose(maps[:, 2], mtt, rtol=1e-5)
    np.testing.assert_allclose(maps[:, 0], cbf_from_cbv_mtt(cbv, mtt), rtol=1e-5)


def _cuda_flags():
    return (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.benchmark)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("tf32", [False, True])
def test_tf32_only_when_asked_for_on_cuda_and_restored(device, tf32):
    before = _cuda_flags()
    with _cuda_settings(device, tf32):
        assert _cuda_flags() == ((tf32, tf32, True) if device == "cuda" else before)
    assert _cuda_flags() == before


def test_chunk_size_none_takes_the_device_default():
    assert PHAEDeconvolver()._chunk_length() == PHAEDeconvolver.default_chunk_sizes["cpu"]
    assert (PHAEDeconvolver(device="cuda:0")._chunk_length()
            == PHAEDeconvolver.default_chunk_sizes["cuda"] > 256)
    assert PHAEDeconvolver(chunk_size=7, device="cuda")._chunk_length() == 7


def test_phae_cbv_in_the_input_precision(phae_cpu):
    # CBV (eq. 2) does not go through the float32 encoder: float64 curves keep float64 areas.
    model, X = phae_cpu
    X64 = X.astype(np.float64) * (1 + 1e-9)  # a change float32 cannot represent
    maps = model.transform(X64)
    assert maps.dtype == np.float64
    np.testing.assert_allclose(maps[:, 1], cbv_from_curves(X64[:, 0], X64[:, 1]), rtol=1e-13)


@CUDA
def test_phae_on_cuda_maps_as_on_the_cpu(phae_cpu, tmp_path):
    model, X = phae_cpu
    model.save(tmp_path / "model.pt")
    on_gpu = PHAEDeconvolver.load(tmp_path / "model.pt", device="cuda").set_params(
        chunk_size=len(X))
    np.testing.assert_allclose(on_gpu.transform(X), model.transform(X), rtol=1e-4,
                               equal_nan=True)
    trained = PHAEDeconvolver(**{**SMALL_PHAE, "device": "cuda"}).fit(X)
    assert trained.net_.module_.encoder.head.weight.device.type == "cuda"
    assert trained.net_.optimizer_.defaults["fused"] is True  # one kernel per Adam step
    assert np.isfinite(trained.transform(X)[:, :3]).all()


@CUDA
def test_parametric_on_cuda_maps_as_on_the_cpu():
    X = curves(64, seed=1).astype(np.float64)
    cpu = ParametricDeconvolver(tr=TR, family="exponential").fit_transform(X)
    gpu = ParametricDeconvolver(tr=TR, family="exponential", device="cuda").fit_transform(X)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, equal_nan=True)
