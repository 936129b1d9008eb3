"""The ``device`` parameter of the torch estimators, and their device paths run on the CPU.

The CPU runs the very code a GPU runs (curves resident on the device, batches
sliced there, chunked inference); the CUDA tests compare the two devices and
skip where no GPU is present.
"""

import copy
import functools

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset, ValidSplit
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from skperfusion import PHAEDeconvolver, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration
from skperfusion.deconvolution import ParametricDeconvolver
from skperfusion.deconvolution._phae_module import normalize_by_aif_peak
from skperfusion.deconvolution.phae import _precision_settings, _VoxelBatches
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
@pytest.mark.parametrize("precision", ["float32", "bfloat16",
                                       pytest.param("tf32", marks=CUDA)])
def test_precision_settings_apply_only_inside_and_are_restored(device, precision):
    before = _cuda_flags(), torch.is_autocast_enabled(device)
    with _precision_settings(device, precision):
        tf32 = precision == "tf32"
        assert _cuda_flags() == ((tf32, tf32, True) if device == "cuda" else before[0])
        assert torch.is_autocast_enabled(device) == (precision == "bfloat16")
        if precision == "bfloat16":
            assert torch.get_autocast_dtype(device) == torch.bfloat16
    assert (_cuda_flags(), torch.is_autocast_enabled(device)) == before


def test_tf32_off_cuda_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^precision='tf32' needs a CUDA device, not 'cpu'; "
                                         r"use 'bfloat16' for reduced precision there\.$"):
        PHAEDeconvolver(**SMALL_PHAE, precision="tf32").fit(curves(64))


def _rounded(tensor):
    """``tensor`` rounded to bfloat16 and back: the values a bfloat16 operand holds."""
    return tensor.bfloat16().float()


def test_bfloat16_rounds_the_convolutions_only(phae_cpu):
    """bfloat16 maps equal a float32 evaluation that rounds every convolution's operands and
    output to bfloat16, with the pooling, the head and the physics left in float32."""
    model, X = phae_cpu
    exact = model.transform(X)  # leaves the module in evaluation mode
    module = model.net_.module_
    folded = module._folded_encoder()
    reduced = copy.deepcopy(model).set_params(precision="bfloat16").transform(X)
    # The reference: the same network, rounding where autocast computes in bfloat16.
    with torch.no_grad():
        normalized = normalize_by_aif_peak(torch.as_tensor(X))
        features = normalized
        for layer in folded.features:
            if isinstance(layer, torch.nn.Conv1d):
                features = _rounded(torch.nn.functional.conv1d(
                    _rounded(features), _rounded(layer.weight), _rounded(layer.bias),
                    padding=layer.padding))
            else:
                features = _rounded(layer(features))
        logits = folded.head(folded.pool(features).flatten(1))
        mtt = torch.exp(module.log_mtt_min + module.log_mtt_span * torch.sigmoid(logits[:, 0]))
    # Both accumulate in float32, so they differ only where an accumulation straddles a
    # bfloat16 rounding boundary: one feature of one frame moves by one unit in the last
    # place (2**-8 relative), which the pooling divides by n_times before the head. MTT's
    # sensitivity to the logit is at most log(mtt_max / mtt_min) / 4 per unit.
    sensitivity = module.log_mtt_span / 4
    logit_scale = float(np.abs(logits.numpy()).max())
    np.testing.assert_allclose(reduced[:, 2], mtt.numpy(),
                               rtol=sensitivity * 2**-8 * logit_scale / X.shape[-1])
    np.testing.assert_array_equal(reduced[:, 1], exact[:, 1])  # CBV: no network involved
    # The rounding is real: float32 MTTs are further from the reference than that bound.
    assert np.abs(exact[:, 2] / mtt.numpy() - 1).max() > 10 * sensitivity * 2**-8 * logit_scale \
        / X.shape[-1]


def test_training_is_float32_whatever_the_precision():
    X = curves(128)
    weights = [PHAEDeconvolver(**SMALL_PHAE, precision=precision).fit(X).net_.module_
               .state_dict() for precision in ("float32", "bfloat16")]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_the_decoder_stays_float32_under_bfloat16_autocast(phae_cpu):
    model, X = phae_cpu
    module = model.net_.module_
    with torch.no_grad(), _precision_settings("cpu", "bfloat16"):
        encoded = module(torch.as_tensor(X))
        reconstruction, target = module.reconstruct(torch.as_tensor(X), encoded)
    assert encoded.dtype == reconstruction.dtype == target.dtype == torch.float32
    with torch.no_grad():
        exact = module.decode(normalize_by_aif_peak(torch.as_tensor(X)), encoded[:, 0])
    torch.testing.assert_close(reconstruction, exact, rtol=0, atol=0)


def test_saved_precision_is_kept_and_maps_can_override_it(phae_cpu, tmp_path):
    from skperfusion.cli.maps import make_mapper
    from skperfusion.datasets import simulate_exam
    from skperfusion.deconvolution._phae_model_file import write_model_file

    model, _ = phae_cpu
    bf16 = copy.deepcopy(model).set_params(precision="bfloat16")
    bf16.save(tmp_path / "bf16.pt")
    assert PHAEDeconvolver.load(tmp_path / "bf16.pt").precision == "bfloat16"
    # Files written while the parameter was the boolean ``tf32`` still load.
    for tf32, precision in ((False, "float32"), (True, "tf32")):
        params = {**model.get_params(), "tf32": tf32}
        del params["precision"]
        write_model_file(tmp_path / "old.pt", model.net_, params, model.n_times_)
        assert PHAEDeconvolver.load(tmp_path / "old.pt").precision == precision
    exam = simulate_exam("sub-001", shape=(8, 8, 2), random_state=0)
    for given, expected in ((None, "bfloat16"), ("float32", "float32")):
        mapper = make_mapper("phae", exam, model=tmp_path / "bf16.pt", precision=given)
        assert mapper.deconvolver.estimator.precision == expected


@pytest.mark.parametrize("device", ["cpu:0", torch.device("cpu", 0)])
def test_a_model_loads_onto_any_spelling_of_the_cpu(phae_cpu, tmp_path, device):
    # torch.load has no "cpu:0" location; `maps --device cpu:0 --method phae` failed.
    model, X = phae_cpu
    model.save(tmp_path / "model.pt")
    loaded = PHAEDeconvolver.load(tmp_path / "model.pt", device=device)
    assert loaded.device == device
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))


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
