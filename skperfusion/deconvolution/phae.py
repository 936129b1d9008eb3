"""The physics-informed autoencoder deconvolver (Fayolle et al. 2025, section 2.2).

A 1-D convolutional encoder reads each voxel's pair of tissue and arterial
concentration curves and outputs its MTT; a weight-free physics decoder
rebuilds the tissue curve from that MTT (CBV by eq. 2, CBF = CBV / MTT,
Lorentzian residue, ``Ĉ = Ca ⊗ f·R``), and the encoder is trained, without
any reference map, to minimise the mean absolute error between the measured
and the rebuilt tissue curves. skorch does the training, the parameter
routing, the inference batches and the persistence; this module adds the
scikit-learn transformer around it.
"""

import contextlib
import copy
import inspect
import io
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import Callback, ProgressBar
from skorch.utils import to_tensor
from torch.optim.swa_utils import update_bn
from torch.utils.data import Subset

from .._options import PHAE_PRECISIONS
from .._signals import stop_signals_noted
from ..physics import DEFAULT_DENSITY, DEFAULT_HEMATOCRIT_FACTOR
from ..physics.torch_ops import cbf_from_cbv_mtt_torch, cbv_from_curves_torch, torch_device
from ._base import BaseDeconvolver
from ._phae_model_file import MAX_WIDTH, read_model_file, write_model_file
from ._phae_module import DECODER_FAMILIES, PHAEModule

__all__ = ["PHAEDeconvolver"]

_MODULE_PARAMS = ("tr", "kh", "rho", "family", "gamma_shape", "learn_delay", "mtt_min",
                  "mtt_max", "max_delay")
"""Estimator parameters handed to :class:`PHAEModule`; never ``module__`` ones."""

def _resident_curves(dataset):
    """The curves tensor of a skorch dataset or of a ``Subset`` of one (a validation split)."""
    if isinstance(dataset, Subset):
        curves = _resident_curves(dataset.dataset)
        return curves[torch.as_tensor(dataset.indices, device=curves.device)]
    return torch.as_tensor(dataset.X)


class _VoxelBatches:
    """Batches of voxels sliced from the curves where they reside, optionally a random subset.

    ``fit`` hands skorch the training curves as one tensor on the estimator's
    device, so each batch is one gather (or slice) on that device: nothing is
    collated or copied per batch on the host. With ``shuffle`` or
    ``max_samples`` every epoch draws a fresh random order, of ``max_samples``
    voxels at most (without replacement), from the global torch RNG (seeded
    by ``fit``): the batches of a ``DataLoader`` over a ``RandomSampler``.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset or torch.utils.data.Subset
        Curves of shape (n_voxels, 2, n_times) as a tensor, or a subset of them.
    batch_size : int
        Voxels per batch (the last batch may be smaller).
    shuffle : bool, default=False
        Draw a random order every epoch.
    max_samples : int or None, default=None
        Voxels drawn per epoch; None: all.
    """

    def __init__(self, dataset, batch_size, shuffle=False, max_samples=None):
        self.curves = _resident_curves(dataset)
        self.batch_size = batch_size
        self.random = shuffle or max_samples is not None
        n_voxels = len(self.curves)
        self.n_drawn = n_voxels if max_samples is None else min(max_samples, n_voxels)

    def __len__(self):
        return -(-self.n_drawn // self.batch_size)

    def __iter__(self):
        # The global RNG draws of a DataLoader over a RandomSampler (its base
        # seed, then the sampler's seed), so that training stays that of the
        # earlier DataLoader, seed for seed; the order is drawn on the CPU.
        torch.empty((), dtype=torch.int64).random_()
        order = None
        if self.random:
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(len(self.curves), generator=generator)[:self.n_drawn]
            order = order.to(self.curves.device)
        for start in range(0, self.n_drawn, self.batch_size):
            stop = start + self.batch_size
            yield (self.curves[start:stop] if order is None
                   else self.curves[order[start:stop]]), None


class _RecalibrateBatchNorm(Callback):
    """Re-estimate the BatchNorm statistics with the final weights, once training ends.

    The running statistics gathered during training average over batches
    seen with earlier weights, enough to move the evaluation-mode MTT; one
    pass without gradient over the training voxels (an ``epoch_voxels``
    subset) with cumulative averaging makes them those of the final network.
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        update_bn(net.get_iterator(net.get_dataset(X), training=True), net.module_,
                  device=net.device)


def _local_torch_rng(device):
    """Fork the torch RNGs of the devices used, so that seeding stays local."""
    cuda = str(device).startswith("cuda")
    return torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else [])


def _check_net_params(params, routed):
    """Checks of the estimator parameters that the constraints cannot express."""
    if params["mtt_min"] >= params["mtt_max"]:
        raise ValueError(f"mtt_min={params['mtt_min']} must be smaller than "
                         f"mtt_max={params['mtt_max']} (seconds).")
    accepted = sorted(f"module__{name}" for name in inspect.signature(PHAEModule).parameters
                      if name not in _MODULE_PARAMS)
    unknown = sorted(name for name in routed if name.startswith("module__")
                     and name not in accepted)
    if unknown:
        raise ValueError(f"Unknown module parameter(s) {unknown}; accepted: {accepted} "
                         f"(set {list(_MODULE_PARAMS)} on PHAEDeconvolver itself).")
    torch_device(params["device"])


class _PHAENet(NeuralNet):
    """skorch net of the PHAE: the loss is the reconstruction error; Ctrl-C is not swallowed."""

    @classmethod
    def from_params(cls, params, routed):
        """The (uninitialised) net of the estimator parameters ``params`` and ``routed`` ones."""
        _check_net_params(params, routed)
        callbacks = [("batchnorm_recalibration", _RecalibrateBatchNorm()),
                     *copy.deepcopy(list(params["callbacks"] or []))]
        if params["verbose"] and not any(isinstance(c[1] if isinstance(c, tuple) else c,
                                                    ProgressBar) for c in callbacks):
            callbacks.append(ProgressBar())
        device = torch_device(params["device"])
        if device.type == "cuda" and not any(
                name in routed for name in ("optimizer__fused", "optimizer__foreach")):
            # One fused kernel per step instead of a dozen: steps are short on a GPU.
            routed = {**routed, "optimizer__fused": True}
        return cls(
            PHAEModule, criterion=torch.nn.L1Loss, optimizer=torch.optim.Adam,
            iterator_train=_VoxelBatches, iterator_valid=_VoxelBatches,
            callbacks=callbacks, **{name: params[name] for name in (
                "lr", "max_epochs", "batch_size", "train_split", "verbose")},
            # torch.load knows no "cpu:0" location: a model file would not load there.
            device="cpu" if device.type == "cpu" else device,
            **{f"module__{name}": params[name] for name in _MODULE_PARAMS},
            **{"iterator_train__shuffle": True,
               "iterator_train__max_samples": params["epoch_voxels"], **routed},
        )

    def load_payload(self, payload):
        """Initialise the net and load the module state and history of a model-file payload.

        The optimizer is left out (built if training resumes): a loaded model
        maps, and building Adam imports ``torch._dynamo``, over a second of
        every ``maps --model`` run.
        """
        with _local_torch_rng(self.device):
            self.check_training_readiness()
            self._initialize_virtual_params()
            self._initialize_callbacks()
            self._initialize_module()
            self._initialize_criterion()
            self._initialize_history()
            self._validate_params()
            self.initialized_ = True
        self.load_params(f_params=io.BytesIO(payload["module"]),
                         f_history=io.StringIO(payload["history"]))
        if not all(torch.isfinite(t).all() for t in self.module_.state_dict().values()):
            raise ValueError("its weights are not all finite")
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        reconstruction, target = self.module_.reconstruct(to_tensor(X, self.device), y_pred)
        loss = self.criterion_(reconstruction, target)
        if training and not torch.isfinite(loss):
            raise FloatingPointError(
                f"The PHAE training loss became {loss.item()} in epoch {len(self.history)}. "
                "Lower the learning rate `lr`, or check the input curves for extreme "
                "values (tissue curves many orders of magnitude above their AIF)."
            )
        return loss

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """skorch's ``partial_fit``, except that Ctrl-C is not swallowed.

        skorch's ``EarlyStopping`` stops training by raising
        ``KeyboardInterrupt``, so skorch ignores that exception; a real
        interruption (SIGINT or SIGTERM received meanwhile) must not pass
        for a finished training and propagates. It stops the training even
        where its ``KeyboardInterrupt`` was lost: Python ignores exceptions
        raised while a finaliser or a weakref callback runs, which is where
        the signal handler runs now and then (1 Ctrl-C in ~10 went on
        training); each training step checks the signals noted.
        """
        if not self.initialized_:
            self.initialize()
        elif not hasattr(self, "optimizer_"):  # loaded from a model file
            self._initialize_optimizer()
        self.notify("on_train_begin", X=X, y=y)
        with stop_signals_noted() as received:
            self._stop_signals = received
            try:
                self.fit_loop(X, y, **{"_routing_method": "partial_fit", **fit_params})
            except KeyboardInterrupt:
                if received:
                    raise
            finally:
                del self._stop_signals
            if received:  # noted after the last step, its exception lost
                raise KeyboardInterrupt
        self.notify("on_train_end", X=X, y=y)
        return self

    def train_step(self, batch, **fit_params):
        """skorch's ``train_step``, first raising ``KeyboardInterrupt`` if a stop signal was
        noted (see :meth:`partial_fit`)."""
        if getattr(self, "_stop_signals", None):
            raise KeyboardInterrupt
        return super().train_step(batch, **fit_params)


def _check_precision(device, precision):
    """The torch device of ``device``; a ValueError for ``"tf32"`` off CUDA (an NVIDIA format)."""
    device = torch_device(device)
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(f"precision='tf32' needs a CUDA device, not {str(device)!r}; use "
                         "'bfloat16' for reduced precision there.")
    return device


@contextlib.contextmanager
def _precision_settings(device, precision):
    """The torch settings of ``precision`` on ``device``, restored on exit.

    - On a CUDA device, cuDNN's algorithm search (``cudnn.benchmark``) in
      every precision: the batches have a few fixed shapes, so it pays at
      once (without it the default backward convolution of the paper's
      batches took 8.6 ms of the ~9 ms of GPU work per training step on an
      H200); TF32 in convolutions and matrix products only for ``"tf32"``.
    - ``"bfloat16"`` autocasts the encoder's convolutions to bfloat16 (8-bit
      mantissa); its pooling and head and the physics decoder stay in
      float32 (:class:`PHAEModule`).

    Raises
    ------
    ValueError
        From :func:`_check_precision`.
    """
    device = _check_precision(device, precision)
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
            tf32 = precision == "tf32"
            for owner, flag, value in ((cudnn, "allow_tf32", tf32), (matmul, "allow_tf32", tf32),
                                       (cudnn, "benchmark", True)):
                stack.callback(setattr, owner, flag, getattr(owner, flag))
                setattr(owner, flag, value)
        if precision == "bfloat16":
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        yield


class PHAEDeconvolver(BaseDeconvolver):
    """Physics-informed autoencoder (PHAE) of Fayolle et al. 2025, trained self-supervised.

    ``fit(X)`` (``y`` ignored) trains the encoder to give each voxel the MTT
    whose physics reconstruction ``Ĉ = Ca ⊗ f·R`` (CBV by eq. 2, ``CBF =
    CBV / MTT``, residue of eq. 4, trapezoidal rule of
    :func:`skperfusion.physics.convolve_aif`) best matches ``C`` in mean
    absolute error, on curves divided by their AIF peak (so any unit will do).
    ``transform(X)`` encodes batches of ``chunk_size`` voxels through
    skorch's ``evaluation_step`` (evaluation mode, no gradient) and applies
    the closed forms. Training runs in a :class:`skorch.NeuralNet`
    (``net_``) with the paper's defaults, then re-estimates the batch-norm
    statistics once with the final weights. skorch-style ``prefix__name``
    arguments are routed to the net — ``module__width`` (first-block feature
    maps, at most 512), ``module__negative_slope``, ``optimizer__*``,
    ``iterator_train__*``, ``callbacks__*`` — and work with ``set_params``,
    ``clone`` and ``GridSearchCV``, whose default scoring (:meth:`score`,
    the held-out reconstruction error) needs no reference maps.

    Parameters
    ----------
    tr : float, default=1.0
        Sampling interval (repetition time) in seconds.
    kh, rho : float, default=0.73, 1.04
        Haematocrit correction factor ``kH`` (dimensionless), brain density (g/ml).
    chunk_size : int or None, default=None
        Voxels encoded at once in ``transform``; None takes
        :attr:`default_chunk_sizes` for the device (256 on a CPU, where small
        batches stay in cache; 65,536 on a GPU, which they keep busy).
    family : {"lorentzian", "exponential", "gamma"}, default="lorentzian"
        Residue family of the decoder (the paper's: Lorentzian): one of the
        differentiable entries of ``RESIDUE_FAMILIES``, not the boxcar.
    gamma_shape : float, default=2.0
        Shape ``k`` of the gamma residue, dimensionless (``family="gamma"``).
    learn_delay, max_delay : bool, float, default=False, 10.0
        Also encode a bolus delay of at most ``max_delay`` seconds, returned
        as Tmax (else Tmax is NaN, as in the paper).
    mtt_min, mtt_max : float, default=0.5, 30.0
        Bounds of the encoded MTT in seconds (a logistic map in log MTT).
    max_epochs, lr, batch_size : int, float, int, default=65, 1e-4, 1536
        Training epochs, Adam learning rate, voxels per training batch.
    epoch_voxels : int or None, default=None
        If set, each epoch trains on a fresh random subset of this many
        voxels, bounding the epoch time on a CPU; None uses all voxels.
    train_split, callbacks : callable, list or None, default=None
        skorch train/validation split (``ValidSplit(0.1)`` records a
        ``valid_loss``; None trains on every voxel) and extra skorch callbacks.
    device : str or torch.device, default="cpu"
        Torch device for training and inference, e.g. ``"cuda"``; checked in
        ``fit`` (a ``ValueError`` where this machine has no such device). The
        training curves are moved there once and every batch is sliced there.
    precision : {"float32", "tf32", "bfloat16"}, default="float32"
        Arithmetic of the encoder's convolutions in inference (``transform``,
        ``score``); training always computes in float32 (in bfloat16 the
        encoder collapsed towards an MTT bound on the demo cohort).
        ``"float32"`` computes in float32 (on CUDA, without the TF32 that
        torch allows cuDNN by default). ``"tf32"`` (CUDA only) rounds their
        inputs to TF32 (10-bit mantissa). ``"bfloat16"`` autocasts them to
        bfloat16 (8-bit mantissa): 1.8 times as fast on a CPU with
        AVX512-BF16, slower where the CPU lacks bfloat16 instructions; with
        the same weights CBF and MTT move by about 0.5 % at most (see the
        user guide). The pooling, the head, the physics decoder and CBV stay in float32
        or the curves' precision.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and batch order; the global torch RNG is untouched.
    verbose : int, default=0
        0 is silent; 1 prints skorch's per-epoch table and a progress bar.
    **kwargs
        skorch-style routed parameters, see above.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the :class:`PHAEModule`.
    history_ : skorch.history.History
        Per-epoch (and per-batch) training record, e.g. ``history_[:, "train_loss"]``.
    n_times_, n_features_in_ : int
        Time points and flat features (``2 * n_times_``) seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` in ``fit``, if it had string column names.

    See Also
    --------
    OSVDDeconvolver, TikhonovDeconvolver : the deconvolution baselines.

    Notes
    -----
    CBV does not depend on the network. An interrupted ``fit`` (Ctrl-C)
    re-raises ``KeyboardInterrupt`` and leaves the estimator unfitted.

    References
    ----------
    P. Fayolle et al., "Physics-Informed Autoencoder for DSC-MRI Perfusion
    Post-Processing: Application to Glioma Grading", ISBI 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion import PHAEDeconvolver, pair_curves
    >>> from skperfusion.datasets import gamma_variate, simulate_concentration
    >>> rng = np.random.default_rng(0)
    >>> tissue, aif = simulate_concentration(lambda t: gamma_variate(t, t0=8.0), 1.0,
    ...     rng.uniform(20, 60, 256), rng.uniform(2, 8, 256), family="lorentzian", n_times=60)
    >>> PHAEDeconvolver(max_epochs=2, batch_size=64, module__width=8,
    ...                 random_state=0).fit_transform(pair_curves(tissue, aif)).shape
    (256, 4)
    """

    default_chunk_sizes = {"cpu": 256, "cuda": 65_536}

    _parameter_constraints: dict = {
        **BaseDeconvolver._parameter_constraints,
        "family": [StrOptions(set(DECODER_FAMILIES))],
        "gamma_shape": [Interval(Real, 0, None, closed="neither")],
        "learn_delay": ["boolean"],
        "max_delay": [Interval(Real, 0, None, closed="neither")],
        "mtt_min": [Interval(Real, 0, None, closed="neither")],
        "mtt_max": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "epoch_voxels": [Interval(Integral, 1, None, closed="left"), None],
        "train_split": [callable, None],
        "callbacks": [list, None],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PHAE_PRECISIONS))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "module__width": [Interval(Integral, 1, MAX_WIDTH, closed="both")],
        "module__negative_slope": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, tr=1.0, kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY,
                 chunk_size=None, family="lorentzian", gamma_shape=2.0, learn_delay=False,
                 max_delay=10.0, mtt_min=0.5, mtt_max=30.0, max_epochs=65, lr=1e-4,
                 batch_size=1536, epoch_voxels=None, train_split=None, callbacks=None,
                 device="cpu", precision="float32", random_state=None, verbose=0, **kwargs):
        super().__init__(tr=tr, kh=kh, rho=rho, chunk_size=chunk_size)
        self.family, self.gamma_shape, self.learn_delay = family, gamma_shape, learn_delay
        self.max_delay, self.mtt_min, self.mtt_max = max_delay, mtt_min, mtt_max
        self.max_epochs, self.lr, self.batch_size = max_epochs, lr, batch_size
        self.epoch_voxels, self.train_split, self.callbacks = epoch_voxels, train_split, callbacks
        self.device, self.precision = device, precision
        self.random_state, self.verbose = random_state, verbose
        self._routed_params = kwargs  # private: sklearn sees only constructor arguments

    def get_params(self, deep=True):
        """Get the parameters, the skorch-style routed ``prefix__name`` ones included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of sub-estimators (scikit-learn's
            convention; the PHAE has none).

        Returns
        -------
        params : dict
            Parameter names (``module__width``-style routed names included)
            mapped to their values.
        """
        return {**super().get_params(deep=deep), **self._routed_params}

    def set_params(self, **params):
        """Set parameters, the skorch-style routed ``prefix__name`` ones included.

        Parameters
        ----------
        **params : dict
            Estimator parameters; names with ``__`` (``module__width``,
            ``optimizer__weight_decay``, ...) are routed to the skorch net.

        Returns
        -------
        self : PHAEDeconvolver
            This estimator.
        """
        routed = {name: value for name, value in params.items() if "__" in name}
        self._routed_params = {**self._routed_params, **routed}
        return super().set_params(**{k: v for k, v in params.items() if k not in routed})

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def _make_net(self):
        return _PHAENet.from_params(self.get_params(), self._routed_params)

    def _fit_curves(self, tissue, aif):
        # A failed or interrupted (re)fit leaves the estimator unfitted.
        vars(self).pop("net_", None)
        vars(self).pop("history_", None)
        if not np.any(aif > 0):
            raise ValueError("The arterial input (channel 1) is zero or negative in every "
                             "sample; PHAEDeconvolver needs a positive AIF.")
        net = self._make_net()
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        _check_precision(self.device, self.precision)  # before training, not after
        # Training is float32 whatever ``precision``: with bfloat16 convolutions the demo
        # cohort's encoder collapsed towards an MTT bound (NAWM MTT bias +432 % and -91 %
        # for two seeds instead of +29 % and +25 %).
        with _local_torch_rng(self.device), _precision_settings(self.device, "float32"):
            torch.manual_seed(seed)
            # Resident on the device: batches are sliced there (_VoxelBatches).
            net.fit(torch.as_tensor(np.stack((tissue, aif), axis=1).astype(np.float32),
                                    device=net.device), y=None)
        self.net_, self.history_ = net, net.history

    def _map_chunks(self, X, function):
        with _precision_settings(self.device, self.precision):
            yield from super()._map_chunks(X, function)

    def _deconvolve_curves(self, curves):
        # One copy of the chunk to the device; CBV in the input's precision there.
        on_device = torch.from_numpy(np.ascontiguousarray(curves)).to(self.net_.device)
        encoded = self.net_.evaluation_step((on_device.float(), None))  # eval mode, no grad
        tissue, aif = on_device[:, 0], on_device[:, 1]
        cbv = cbv_from_curves_torch(tissue, aif, self.kh, self.rho)
        defined = torch.isfinite(cbv)
        mtt = torch.where(defined, encoded[:, 0].to(cbv.dtype), torch.nan)
        tmax = (torch.where(defined, encoded[:, 1].to(cbv.dtype), torch.nan)
                if encoded.shape[1] > 1 else torch.full_like(cbv, torch.nan))
        maps = torch.stack((cbf_from_cbv_mtt_torch(cbv, mtt), cbv, mtt, tmax), dim=1)
        return maps.cpu().numpy()

    def _reconstruction_error(self, curves):
        curves = to_tensor(curves.astype(np.float32, copy=False), self.net_.device)
        encoded = self.net_.evaluation_step((curves, None))
        with torch.no_grad():
            reconstruction, target = self.net_.module_.reconstruct(curves, encoded)
        return (reconstruction - target).abs().mean(dim=1).cpu().numpy()

    def score(self, X, y=None):
        """Negative mean absolute reconstruction error, the training loss (higher is better).

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Curves with the ``n_times`` seen in ``fit``.
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``-mean |C - Ĉ|`` on the curves divided by their AIF peak.
        """
        errors = self._map_chunks(X, self._reconstruction_error)
        return -float(np.mean(np.concatenate(list(errors))))

    def save(self, path):
        """Save the weights, history and plain-valued parameters to one file, atomically.

        Non-scalar parameters (callbacks, ``train_split``) only matter for
        training and are not saved.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (conventionally ``*.pt``).
        """
        check_is_fitted(self)
        write_model_file(path, self.net_, self.get_params(), self.n_times_,
                         getattr(self, "feature_names_in_", None))

    @classmethod
    def load(cls, path, device=None):
        """Load an estimator written by :meth:`save`, ready to ``transform``.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.
        device : str or torch.device, optional
            Device to load onto; default the saved ``device`` parameter.

        Returns
        -------
        estimator : PHAEDeconvolver
            Fitted estimator with the saved weights and parameters.

        Raises
        ------
        ValueError
            Naming the file, if it is not a valid model file (parameters
            validated before the network is built).
        """
        payload = read_model_file(path)
        params = dict(payload["params"])
        if "tf32" in params:  # files of skperfusion 0.x before ``precision`` replaced ``tf32``
            params["precision"] = "tf32" if params.pop("tf32") else "float32"
        estimator = cls(**{**params, **({} if device is None else {"device": device})})
        try:
            estimator._validate_params()
            net = estimator._make_net().load_payload(payload)
        except Exception as error:  # whatever is wrong, the file is: name it
            raise ValueError(f"{path} is not a valid PHAEDeconvolver model: {error}") from None
        estimator.net_, estimator.history_ = net, net.history
        estimator.n_times_, estimator.n_features_in_ = payload["n_times"], 2 * payload["n_times"]
        if payload["feature_names_in"] is not None:
            estimator.feature_names_in_ = np.asarray(payload["feature_names_in"], dtype=object)
        return estimator
