"""The physics-informed autoencoder deconvolver (Fayolle et al. 2025, section 2.2).

A 1-D convolutional encoder reads each voxel's pair of tissue and arterial
concentration curves and outputs its MTT; a weight-free physics decoder
rebuilds the tissue curve from that MTT (CBV by eq. 2, CBF = CBV / MTT,
Lorentzian residue, ``Ĉ = Ca ⊗ CBF·R``), and the encoder is trained, without
any reference map, to minimise the mean absolute error between the measured
and the rebuilt tissue curves. Training goes through skorch; inference runs
the encoder alone and the closed forms.
"""

import copy
import inspect
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import Callback, ProgressBar
from skorch.history import History
from torch.optim.swa_utils import update_bn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from .._io import atomic_write
from ..curves import validate_curves
from ..physics import DEFAULT_DENSITY, DEFAULT_HEMATOCRIT_FACTOR, cbf_from_cbv_mtt, cbv_from_curves
from ._base import BaseDeconvolver
from ._phae_module import PHAEModule

__all__ = ["PHAEDeconvolver"]

_ROUTED_PREFIXES = ("module__", "optimizer__", "iterator_train__", "iterator_valid__",
                    "callbacks__")
"""skorch-style parameter prefixes accepted as keyword arguments."""

_PHYSICS_PARAMS = ("tr", "kh", "rho", "residue", "gamma_shape", "learn_delay", "mtt_min",
                   "mtt_max", "max_delay")
"""Estimator parameters handed to :class:`PHAEModule`; never ``module__`` ones."""

_SAVE_FORMAT = "skperfusion.PHAEDeconvolver"
_SAVE_VERSION = 1


class _VoxelBatchLoader(DataLoader):
    """Batches of voxels gathered with one fancy index each, optionally a random subset.

    Indexing the dataset once per batch avoids collating thousands of
    single-voxel tensors. With ``max_samples``, every epoch draws a fresh
    random subset of that many voxels (without replacement), so that an
    epoch on a CPU costs a bounded time while training still sees all the
    voxels over the epochs.
    """

    def __init__(self, dataset, batch_size, shuffle=False, max_samples=None, **kwargs):
        n_samples = len(dataset)
        if shuffle or max_samples is not None:
            n_drawn = n_samples if max_samples is None else min(max_samples, n_samples)
            sampler = RandomSampler(dataset, num_samples=n_drawn)
        else:
            sampler = SequentialSampler(dataset)
        super().__init__(dataset, batch_size=None,
                         sampler=BatchSampler(sampler, batch_size, drop_last=False), **kwargs)


class _SelfSupervisedNet(NeuralNet):
    """skorch net whose module returns ``(reconstruction, target)``; ``y`` is unused."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        reconstruction, target = y_pred
        loss = self.criterion_(reconstruction, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The PHAE training loss became {loss.item()} in epoch {len(self.history)}. "
                "Lower the learning rate `lr`, or check the input curves for extreme "
                "values (tissue curves many orders of magnitude above their AIF)."
            )
        return loss


class _RecalibrateBatchNorm(Callback):
    """Re-estimate the BatchNorm statistics with the final weights, once training ends.

    The running statistics gathered during training average over batches
    seen with earlier weights; the encoder's MTT is sensitive enough to
    them that evaluation-mode predictions drift from the training-mode ones
    (badly so at higher learning rates). One pass without gradient over the
    training voxels (or a ``max_train_voxels`` subset) with cumulative
    averaging makes the statistics those of the final network.
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        loader = net.get_iterator(net.get_dataset(X), training=True)
        update_bn(loader, net.module_, device=net.device)


def _plain(value):
    """Return ``value`` as plain Python data, or raise TypeError if it is not such data."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} is not plain data")


class PHAEDeconvolver(BaseDeconvolver):
    """Physics-informed autoencoder (PHAE) of Fayolle et al. 2025, trained self-supervised.

    ``fit(X)`` trains the encoder on the curves themselves (``y`` is
    ignored): for each voxel it encodes the MTT from the pair
    ``(C(t), Ca(t))``, and the physics decoder rebuilds the tissue curve

    - ``CBV = kH / ρ · 100 · ∫C / ∫Ca`` (eq. 2, from the input curves),
    - ``CBF = CBV / MTT`` (eq. 3),
    - ``R(t) = 1 / (1 + (π t / (2 MTT))²)`` (eq. 4, ``residue="lorentzian"``),
    - ``TRF = CBF · R`` (eq. 5, as the flow rate ``f · R`` in 1/s),
    - ``Ĉ = Ca ⊗ TRF`` (eq. 6, the trapezoidal convolution of
      :func:`skperfusion.physics.convolve_aif`),

    with the mean absolute error between ``C`` and ``Ĉ`` as the loss.
    ``transform(X)`` runs only the encoder and the closed forms.

    Both channels of each sample are divided by the sample's AIF peak
    inside the model, the stateless equivalent of the paper's per-subject
    normalisation (MTT and CBV are unchanged by it), so raw concentrations
    in any unit can be given.

    Training goes through skorch; the paper's settings are the defaults
    (Adam, ``lr=1e-4``, no weight decay, batch 1536, 65 epochs, 32 feature
    maps). skorch-style keyword arguments are routed to the net:
    ``module__width`` (feature maps of the first block; 32 in the paper),
    ``module__negative_slope`` (0.02), ``optimizer__*`` (e.g.
    ``optimizer__weight_decay``), ``iterator_train__*``,
    ``iterator_valid__*`` and ``callbacks__*``. They appear in
    :meth:`get_params`, work with :meth:`set_params`, ``clone`` and
    ``GridSearchCV`` (e.g. ``{"module__width": [16, 32]}``), whose default
    scoring is :meth:`score`, the negative reconstruction error on the
    held-out voxels: settings are chosen self-supervised too.

    After training, the batch-normalisation statistics are re-estimated in
    one pass with the final weights (the running averages gathered during
    training lag behind the weights, enough to move the MTT), and inference
    folds them into the convolutions.

    Parameters
    ----------
    tr : float, default=1.0
        Sampling interval (repetition time) in seconds.
    kh : float, default=0.73
        Haematocrit correction factor ``kH``, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.
    chunk_size : int, default=256
        Voxels encoded at once in ``transform`` (the inference batch); on
        a CPU, small batches that stay in cache are the fastest
        (``benchmarks/bench_phae.py``).
    residue : {"lorentzian", "exponential", "gamma"}, default="lorentzian"
        Residue family of the decoder; the paper uses the Lorentzian.
    gamma_shape : float, default=2.0
        Shape ``k`` of the gamma residue, dimensionless (used only with
        ``residue="gamma"``).
    learn_delay : bool, default=False
        Also encode a bolus delay (tissue arrival after the AIF) that shifts
        the residue; it is returned as Tmax. Without it Tmax is NaN, as in
        the paper.
    max_delay : float, default=10.0
        Upper bound of the learned delay in seconds.
    mtt_min, mtt_max : float, default=0.5, 30.0
        Bounds of the encoded MTT in seconds; the encoder output is mapped
        smoothly into this range (logistic in log MTT).
    max_epochs : int, default=65
        Training epochs.
    lr : float, default=1e-4
        Adam learning rate.
    batch_size : int, default=1536
        Voxels per training batch.
    max_train_voxels : int or None, default=None
        If set, each epoch trains on a fresh random subset of this many
        voxels, bounding the epoch time on a CPU; None uses all voxels.
    train_split : callable or None, default=None
        skorch train/validation split, e.g. ``skorch.dataset.ValidSplit(0.1)``
        to record a ``valid_loss`` (self-supervised: validation voxels are
        just held out). None trains on every voxel, as the paper.
    callbacks : list or None, default=None
        Extra skorch callbacks, e.g.
        ``[skorch.callbacks.EarlyStopping(monitor="train_loss", patience=5)]``.
    device : str or torch.device, default="cpu"
        Torch device for training and inference, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation and the batch order; with an int,
        training on a CPU is reproducible. The global torch random state is
        left untouched.
    verbose : int, default=0
        0 is silent; 1 prints skorch's per-epoch table and a progress bar.
    **kwargs
        skorch-style routed parameters, see above.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the :class:`PHAEModule`.
    history_ : skorch.history.History
        Per-epoch (and per-batch) training record, e.g.
        ``history_[:, "train_loss"]``.
    n_times_ : int
        Number of time points seen in ``fit``.
    n_features_in_ : int
        Number of flat features (``2 * n_times_``) seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` in ``fit``, if it had string column names.

    See Also
    --------
    OSVDDeconvolver, TikhonovDeconvolver : the deconvolution baselines.

    Notes
    -----
    CBV does not depend on the network: the encoder only chooses the MTT, and
    CBF follows from the central volume theorem. Voxels whose AIF has no
    positive area have no defined CBV: they get NaN maps and carry no
    gradient during training. ``save``/``load`` store the weights and
    plain-valued parameters in a torch file readable with
    ``weights_only=True``; pickling the estimator works too.

    References
    ----------
    P. Fayolle et al., "Physics-Informed Autoencoder for DSC-MRI Perfusion
    Post-Processing: Application to Glioma Grading", ISBI 2025.

    Examples
    --------
    >>> from functools import partial
    >>> import numpy as np
    >>> from skperfusion import PHAEDeconvolver, pair_curves
    >>> from skperfusion.datasets import gamma_variate, simulate_concentration
    >>> rng = np.random.default_rng(0)
    >>> tissue, aif = simulate_concentration(
    ...     partial(gamma_variate, t0=8.0), tr=1.0, cbf=rng.uniform(20, 60, 256),
    ...     mtt=rng.uniform(2, 8, 256), family="lorentzian", n_times=60)
    >>> phae = PHAEDeconvolver(tr=1.0, max_epochs=2, batch_size=64, module__width=8,
    ...                        random_state=0)
    >>> maps = phae.fit_transform(pair_curves(tissue, aif))
    >>> maps.shape
    (256, 4)
    """

    _parameter_constraints: dict = {
        **BaseDeconvolver._parameter_constraints,
        "residue": [StrOptions({"lorentzian", "exponential", "gamma"})],
        "gamma_shape": [Interval(Real, 0, None, closed="neither")],
        "learn_delay": ["boolean"],
        "max_delay": [Interval(Real, 0, None, closed="neither")],
        "mtt_min": [Interval(Real, 0, None, closed="neither")],
        "mtt_max": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_train_voxels": [Interval(Integral, 1, None, closed="left"), None],
        "train_split": [callable, None],
        "callbacks": [list, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, tr=1.0, kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY,
                 chunk_size=256, residue="lorentzian", gamma_shape=2.0, learn_delay=False,
                 max_delay=10.0, mtt_min=0.5, mtt_max=30.0, max_epochs=65, lr=1e-4,
                 batch_size=1536, max_train_voxels=None, train_split=None, callbacks=None,
                 device="cpu", random_state=None, verbose=0, **kwargs):
        super().__init__(tr=tr, kh=kh, rho=rho, chunk_size=chunk_size)
        self.residue = residue
        self.gamma_shape = gamma_shape
        self.learn_delay = learn_delay
        self.max_delay = max_delay
        self.mtt_min = mtt_min
        self.mtt_max = mtt_max
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_train_voxels = max_train_voxels
        self.train_split = train_split
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        # Private, so that sklearn sees only the constructor arguments as
        # attributes; exposed through get_params/set_params.
        self._routed_params = kwargs

    def get_params(self, deep=True):
        """Get the parameters, including the skorch-style routed ones.

        Parameters
        ----------
        deep : bool, default=True
            Ignored beyond sklearn's meaning (no sub-estimators).

        Returns
        -------
        params : dict
            Constructor parameters and routed ``prefix__name`` parameters.
        """
        return {**super().get_params(deep=deep), **self._routed_params}

    def set_params(self, **params):
        """Set parameters, including skorch-style routed ones (``module__width``...).

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : PHAEDeconvolver
            This estimator.
        """
        # Names are checked in fit, like every other parameter.
        explicit = self._get_param_names()
        routed = {name: value for name, value in params.items() if name not in explicit}
        self._routed_params = {**self._routed_params, **routed}
        return super().set_params(
            **{name: value for name, value in params.items() if name not in routed}
        )

    def _routed(self, prefix):
        return {name[len(prefix):]: value for name, value in self._routed_params.items()
                if name.startswith(prefix)}

    def _check_training_params(self):
        unexpected = sorted(name for name in self._routed_params
                            if not name.startswith(_ROUTED_PREFIXES))
        if unexpected:
            raise ValueError(
                f"Unexpected parameter(s) {unexpected} for PHAEDeconvolver; routed "
                f"parameters must start with one of {list(_ROUTED_PREFIXES)}."
            )
        if self.mtt_min >= self.mtt_max:
            raise ValueError(
                f"mtt_min={self.mtt_min} must be smaller than mtt_max={self.mtt_max} (seconds)."
            )
        module_params = self._routed("module__")
        clashing = sorted(set(module_params) & set(_PHYSICS_PARAMS))
        if clashing:
            raise ValueError(
                f"Set {clashing} on PHAEDeconvolver itself, not as module__ parameters."
            )
        accepted = set(inspect.signature(PHAEModule).parameters) - set(_PHYSICS_PARAMS)
        unknown = sorted(set(module_params) - accepted)
        if unknown:
            raise ValueError(
                f"Unknown module parameter(s) {['module__' + name for name in unknown]}; "
                f"accepted: {sorted('module__' + name for name in accepted)}."
            )
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but CUDA is not available.")

    def _make_net(self):
        callbacks = [("batchnorm_recalibration", _RecalibrateBatchNorm()),
                     *copy.deepcopy(list(self.callbacks or []))]
        has_bar = any(isinstance(cb[1] if isinstance(cb, tuple) else cb, ProgressBar)
                      for cb in callbacks)
        if self.verbose and not has_bar:
            callbacks.append(ProgressBar())
        net_params = {
            "iterator_train__shuffle": True,
            "iterator_train__max_samples": self.max_train_voxels,
            **self._routed_params,
        }
        return _SelfSupervisedNet(
            PHAEModule,
            criterion=torch.nn.L1Loss,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train=_VoxelBatchLoader,
            iterator_valid=_VoxelBatchLoader,
            train_split=self.train_split,
            callbacks=callbacks,
            device=self.device,
            verbose=self.verbose,
            **{f"module__{name}": getattr(self, name) for name in _PHYSICS_PARAMS},
            **net_params,
        )

    def _torch_rng(self):
        """Fork the torch RNGs of the devices used, so that seeding stays local."""
        cuda = str(self.device).startswith("cuda")
        return torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else [])

    def _fit_curves(self, tissue, aif):
        self._check_training_params()
        if not np.any(aif > 0):
            raise ValueError(
                "The arterial input (channel 1) is zero or negative in every sample; "
                "PHAEDeconvolver needs a positive AIF."
            )
        curves = np.stack((tissue, aif), axis=1).astype(np.float32)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self.net_ = self._make_net()
        with self._torch_rng():
            torch.manual_seed(seed)
            self.net_.fit(curves, y=None)
        self.net_.module_.train(False)
        self.history_ = self.net_.history

    def _deconvolve(self, tissue, aif):
        module = self.net_.module_
        module.train(False)
        curves = torch.as_tensor(np.stack((tissue, aif), axis=1), dtype=torch.float32)
        with torch.inference_mode():
            mtt, delay = module.encode(curves.to(self.net_.device), fold=True)
        cbv = cbv_from_curves(tissue, aif, self.kh, self.rho)
        defined = np.isfinite(cbv)
        mtt = np.where(defined, mtt.cpu().numpy(), np.nan)
        tmax = np.nan if delay is None else np.where(defined, delay.cpu().numpy(), np.nan)
        return np.column_stack(np.broadcast_arrays(cbf_from_cbv_mtt(cbv, mtt), cbv, mtt, tmax))

    def score(self, X, y=None):
        """Negative mean absolute reconstruction error, the training loss (higher is better).

        The self-supervised criterion lets ``GridSearchCV`` and
        ``cross_val_score`` select PHAE settings on held-out voxels without
        reference maps.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Tissue and arterial concentration curves with the ``n_times``
            seen in ``fit``.
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``-mean |C - Ĉ|`` over samples and time points, on the curves
            normalised by their AIF peak (dimensionless).
        """
        check_is_fitted(self)
        curves, _ = validate_curves(self, X, reset=False)
        module = self.net_.module_
        module.train(False)
        total = 0.0
        for start in range(0, curves.shape[0], self.chunk_size):
            chunk = torch.as_tensor(curves[start:start + self.chunk_size], dtype=torch.float32)
            with torch.inference_mode():
                reconstruction, target = module(chunk.to(self.net_.device))
                total += (reconstruction - target).abs().sum().item()
        return -total / (curves.shape[0] * curves.shape[2])

    def save(self, path):
        """Save the trained weights and parameters to a file, atomically.

        Parameters that are not plain Python data (callbacks, ``train_split``,
        a ``RandomState``, objects routed to the data loaders) only matter
        for training and are not saved; :meth:`load` gives them their
        defaults.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (conventionally ``*.pt``).
        """
        check_is_fitted(self)
        params = {}
        for name, value in self.get_params(deep=False).items():
            try:
                params[name] = _plain(value)
            except TypeError:
                continue
        payload = {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "params": params,
            "state_dict": {name: tensor.detach().cpu()
                           for name, tensor in self.net_.module_.state_dict().items()},
            "n_times": self.n_times_,
            "n_features_in": self.n_features_in_,
            "feature_names_in": (list(self.feature_names_in_)
                                 if hasattr(self, "feature_names_in_") else None),
            "history": _plain(self.history_.to_list()),
        }
        path = Path(path)
        atomic_write({path.name: lambda temp: torch.save(payload, temp)}, path.parent)

    @classmethod
    def load(cls, path, device=None):
        """Load an estimator written by :meth:`save`, ready to ``transform``.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.
        device : str or torch.device, optional
            Device to load onto (e.g. ``"cpu"`` for a model trained on a
            GPU); default the saved ``device`` parameter.

        Returns
        -------
        estimator : PHAEDeconvolver
            Fitted estimator with the saved weights and parameters.
        """
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"Cannot read a saved PHAEDeconvolver from {path}: {error}") from None
        if not isinstance(payload, dict) or payload.get("format") != _SAVE_FORMAT:
            raise ValueError(f"{path} is not a file written by PHAEDeconvolver.save.")
        params = dict(payload["params"])
        if device is not None:
            params["device"] = device
        estimator = cls(**params)
        estimator._validate_params()
        estimator._check_training_params()
        estimator.net_ = estimator._make_net()
        with estimator._torch_rng():
            estimator.net_.initialize()
        estimator.net_.module_.load_state_dict(payload["state_dict"])
        estimator.net_.module_.train(False)
        estimator.net_.history = History(payload["history"])
        estimator.history_ = estimator.net_.history
        estimator.n_times_ = payload["n_times"]
        estimator.n_features_in_ = payload["n_features_in"]
        if payload["feature_names_in"] is not None:
            estimator.feature_names_in_ = np.asarray(payload["feature_names_in"], dtype=object)
        return estimator

