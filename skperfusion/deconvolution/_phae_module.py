"""PyTorch modules of the physics-informed autoencoder (Fayolle et al. 2025).

The encoder is the 1-D fully convolutional network of the paper's Fig. 2; the
decoder has no weights: it rebuilds the tissue curve from the encoded MTT with
the physics core (eqs. 2-6) through its torch twins, so that the only way to
lower the reconstruction error is to encode a better MTT.
"""

import copy
import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..curves import AIF, TISSUE
from ..physics import RESIDUE_FAMILIES, cbf_to_flow_rate
from ..physics.torch_ops import (
    aif_peak_scale_torch,
    cbf_from_cbv_mtt_torch,
    cbv_from_curves_torch,
    convolve_aif_torch,
    residue_function_torch,
)

__all__ = ["DECODER_FAMILIES", "PHAEEncoder", "PHAEModule", "fold_batchnorm",
           "normalize_by_aif_peak"]

DECODER_FAMILIES = tuple(name for name, family in RESIDUE_FAMILIES.items()
                         if family.differentiable)
"""Residue families of :data:`skperfusion.physics.RESIDUE_FAMILIES` a decoder trained by
gradient descent can use: the differentiable ones (the boxcar's step is not)."""


_INITIAL_DELAY_FRACTION = 0.05
"""Encoded delay at initialisation, as a fraction of ``max_delay`` (0.5 s by default)."""


def normalize_by_aif_peak(curves):
    """Divide both channels of every sample by the peak of its AIF.

    :func:`skperfusion.physics.aif_peak_scale` on tensors: a sample whose AIF
    has no positive peak is left as it is (it has no defined perfusion).

    Parameters
    ----------
    curves : torch.Tensor of shape (batch, 2, n_times)
        Tissue (channel 0) and arterial (channel 1) concentrations.

    Returns
    -------
    normalized : torch.Tensor of shape (batch, 2, n_times)
        Dimensionless curves, AIF peak 1.
    """
    scale, _ = aif_peak_scale_torch(curves[:, AIF])
    return curves / scale[:, None, None]


class PHAEEncoder(nn.Module):
    """1-D fully convolutional encoder of Fayolle et al. 2025, Fig. 2.

    Four blocks of ``Conv1d(kernel 3, stride 1, padding 1) → BatchNorm1d →
    LeakyReLU``, with ``width`` feature maps in the first block doubling in
    each next one, then a global 1-D average pooling over time and a linear
    layer. Works for any number of time points. Under a bfloat16
    :func:`torch.autocast` only the convolutions compute in bfloat16: the
    pooling and the head read the features in the input's precision, so the
    logits keep it.

    Parameters
    ----------
    width : int, default=32
        Feature maps of the first block (32 in the paper).
    n_outputs : int, default=1
        Outputs of the final linear layer (unbounded logits).
    negative_slope : float, default=0.02
        Negative slope of the leaky ReLUs.
    n_blocks : int, default=4
        Convolutional blocks.
    """

    def __init__(self, width=32, n_outputs=1, negative_slope=0.02, n_blocks=4):
        super().__init__()
        layers = []
        in_channels = 2
        for block in range(n_blocks):
            out_channels = width * 2**block
            layers += [
                nn.Conv1d(in_channels, out_channels, kernel_size=3, stride=1, padding=1),
                nn.BatchNorm1d(out_channels),
                nn.LeakyReLU(negative_slope),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(in_channels, n_outputs)

    def forward(self, curves):
        """Encode curves of shape (batch, 2, n_times) into logits (batch, n_outputs)."""
        features = self.features(curves).to(curves.dtype)
        with torch.autocast(curves.device.type, enabled=False):
            return self.head(self.pool(features).flatten(1))


def fold_batchnorm(encoder):
    """Inference copy of an encoder with each BatchNorm folded into its convolution.

    In evaluation mode a batch normalisation is an affine map per channel,
    which :func:`torch.nn.utils.fusion.fuse_conv_bn_eval` merges into the
    preceding convolution's weights; the leaky ReLUs then run in place.

    Parameters
    ----------
    encoder : PHAEEncoder
        Encoder in evaluation mode.

    Returns
    -------
    folded : PHAEEncoder
        Network computing the same logits as ``encoder``; it shares the
        encoder's pooling and head.
    """
    blocks = encoder.features
    layers = []
    for conv, norm, activation in zip(blocks[0::3], blocks[1::3], blocks[2::3], strict=True):
        layers += [fuse_conv_bn_eval(conv, norm),
                   nn.LeakyReLU(activation.negative_slope, inplace=True)]
    folded = copy.copy(encoder)
    # A shallow copy shares the module table: give the copy its own.
    folded._modules = {**encoder._modules, "features": nn.Sequential(*layers)}
    return folded


class PHAEModule(nn.Module):
    """Physics-informed autoencoder: FCN encoder and physics decoder.

    ``forward`` takes raw concentration curves, normalises them by the AIF
    peak (:func:`normalize_by_aif_peak`) and encodes them into the
    perfusion parameters the decoder needs:

    - ``MTT = exp(log mtt_min + sigmoid(z) · log(mtt_max / mtt_min))``: smooth,
      positive, bounded, and as sensitive to relative changes at 1 s as at
      10 s;
    - ``delay = max_delay · sigmoid(z')`` when ``learn_delay``, starting
      near 0.5 s (the bias of ``z'`` initialised to 5 % of ``max_delay``):
      started at ``max_delay / 2``, the encoder settled on long delays with
      short MTTs, which fit low-CBF curves almost as well (NAWM MTT -60 %
      with a gamma decoder on simulated exams, +15 % from near zero).

    With a delay, MTT stays the area of the residue, ``∫R(t - delay) dt``
    (CBV / CBF, the central volume theorem), not the first moment of the
    delayed transit (``delay + MTT``), and the delay is the arrival of the
    residue, where the impulse response of these families peaks: Tmax.
    Delay and MTT trade off: a curve that rises late is fitted by a later
    arrival and a shorter transit almost as well, and a residue with a
    flatter start (a larger gamma shape) leaves less of the rise to the
    delay, so the shape sets the sign of the MTT bias (the ``phae-gamma``
    registration gives the measurements).

    :meth:`reconstruct` rebuilds the tissue curve from them (eqs. 2-6):
    ``CBV`` by eq. 2 from the input curves, ``CBF = CBV / MTT`` (eq. 3), the
    impulse response ``h(t) = f · R(t - delay)`` with ``f`` the flow rate of
    CBF in 1/s (the TRF of eq. 5) and ``R`` the residue of the chosen family
    (eq. 4 for the Lorentzian), and ``Ĉ = Ca ⊗ h`` (eq. 6) with the
    trapezoidal discretisation of :func:`skperfusion.physics.convolve_aif`.

    In evaluation mode without gradient (inference), the encoder runs with
    its batch normalisations folded into the convolutions
    (:func:`fold_batchnorm`): the same result to float rounding, faster.

    Parameters
    ----------
    tr : float
        Sampling interval in seconds.
    kh : float
        Haematocrit correction factor, dimensionless.
    rho : float
        Brain density in g/ml.
    family : {"lorentzian", "exponential", "gamma"}, default="lorentzian"
        Residue family of the decoder, see :data:`DECODER_FAMILIES`.
    gamma_shape : float, default=2.0
        Shape of the gamma residue, dimensionless (ignored otherwise).
    learn_delay : bool, default=False
        Also encode a bolus delay that shifts the residue.
    mtt_min, mtt_max : float, default=0.5, 30.0
        Bounds of the encoded MTT in seconds.
    max_delay : float, default=10.0
        Upper bound of the encoded delay in seconds.
    width : int, default=32
        Feature maps of the first encoder block (32 in the paper).
    negative_slope : float, default=0.02
        Negative slope of the encoder's leaky ReLUs.
    """

    def __init__(self, tr, kh, rho, family="lorentzian", gamma_shape=2.0, learn_delay=False,
                 mtt_min=0.5, mtt_max=30.0, max_delay=10.0, width=32, negative_slope=0.02):
        super().__init__()
        if family not in DECODER_FAMILIES:
            raise ValueError(f"family={family!r}; the PHAE decoder needs one of "
                             f"{DECODER_FAMILIES}, differentiable in MTT.")
        self.tr = float(tr)
        self.kh = float(kh)
        self.rho = float(rho)
        self.learn_delay = bool(learn_delay)
        self.log_mtt_min = math.log(mtt_min)
        self.log_mtt_span = math.log(mtt_max / mtt_min)
        self.max_delay = float(max_delay)
        self.residue = residue_function_torch(family)
        self.residue_parameters = ({"shape": float(gamma_shape)}
                                   if "shape" in RESIDUE_FAMILIES[family].parameters else {})
        self.encoder = PHAEEncoder(width, 2 if learn_delay else 1, negative_slope)
        if learn_delay:
            # Training starts near zero delay rather than at max_delay / 2: from
            # a long delay, a short MTT fits as well and the encoder stays there.
            with torch.no_grad():
                self.encoder.head.bias[1] = math.log(_INITIAL_DELAY_FRACTION
                                                     / (1 - _INITIAL_DELAY_FRACTION))

    def forward(self, curves):
        """Encode raw curves into MTT (and bolus delay).

        Parameters
        ----------
        curves : torch.Tensor of shape (batch, 2, n_times)
            Tissue and arterial concentrations (any unit).

        Returns
        -------
        encoded : torch.Tensor of shape (batch, 1) or (batch, 2)
            MTT in seconds in ``[mtt_min, mtt_max]``, then, with
            ``learn_delay``, the bolus delay in seconds in ``[0, max_delay]``.
        """
        inference = not (self.training or torch.is_grad_enabled())
        encoder = self._folded_encoder() if inference else self.encoder
        logits = encoder(normalize_by_aif_peak(curves))
        mtt = torch.exp(self.log_mtt_min + self.log_mtt_span * torch.sigmoid(logits[:, :1]))
        if not self.learn_delay:
            return mtt
        return torch.cat([mtt, self.max_delay * torch.sigmoid(logits[:, 1:])], dim=1)

    def _folded_encoder(self):
        """:func:`fold_batchnorm` of the encoder, folded again only when a weight changed."""
        key = tuple((tensor.data_ptr(), tensor._version)
                    for tensor in (*self.encoder.parameters(), *self.encoder.buffers()))
        cached = self.__dict__.get("_folded")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_folded"] = (key, fold_batchnorm(self.encoder))
        return cached[1]

    def __getstate__(self):
        return {name: value for name, value in self.__dict__.items() if name != "_folded"}

    def reconstruct(self, curves, encoded):
        """Rebuild the tissue curves from the encoded parameters (eqs. 2-6).

        Parameters
        ----------
        curves : torch.Tensor of shape (batch, 2, n_times)
            Raw tissue and arterial concentrations.
        encoded : torch.Tensor of shape (batch, 1) or (batch, 2)
            Output of :meth:`forward`.

        Returns
        -------
        reconstruction : torch.Tensor of shape (batch, n_times)
            ``Ĉ(t)`` normalised by the AIF peak; zero for samples without a
            positive AIF area (no defined CBV), which then carry no gradient.
        target : torch.Tensor of shape (batch, n_times)
            The tissue curve ``C(t)`` normalised the same way.
        """
        normalized = normalize_by_aif_peak(curves)
        delay = encoded[:, 1] if self.learn_delay else None
        return self.decode(normalized, encoded[:, 0], delay), normalized[:, TISSUE]

    def decode(self, normalized, mtt, delay=None):
        """Reconstruct normalised tissue curves from the MTT with eqs. 2-6.

        Parameters
        ----------
        normalized : torch.Tensor of shape (batch, 2, n_times)
            Curves normalised by :func:`normalize_by_aif_peak`.
        mtt : torch.Tensor of shape (batch,)
            MTT in seconds.
        delay : torch.Tensor of shape (batch,) or None, default=None
            Bolus delay in seconds; None for no delay.

        Returns
        -------
        reconstruction : torch.Tensor of shape (batch, n_times)
            ``Ĉ(t)`` in the unit of ``normalized``, computed in its precision
            (outside any :func:`torch.autocast`).
        """
        with torch.autocast(normalized.device.type, enabled=False):
            return self._decode(normalized, mtt, delay)

    def _decode(self, normalized, mtt, delay):
        tissue, aif = normalized[:, TISSUE], normalized[:, AIF]
        cbv = cbv_from_curves_torch(tissue, aif, self.kh, self.rho)
        cbv = torch.where(torch.isfinite(cbv), cbv, 0.0)
        cbf = cbf_from_cbv_mtt_torch(cbv, mtt)
        # cbf_to_flow_rate is linear: its value at 1 ml/100g/min is the factor.
        flow_rate = cbf * float(cbf_to_flow_rate(1.0, self.kh, self.rho))
        t = torch.arange(aif.shape[-1], dtype=aif.dtype, device=aif.device) * self.tr
        shift = 0.0 if delay is None else delay[:, None]
        residue = self.residue(t, mtt[:, None], shift, **self.residue_parameters)
        return convolve_aif_torch(aif, flow_rate[:, None] * residue, self.tr)
