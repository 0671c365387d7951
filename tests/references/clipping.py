"""References of ``gradtx/clipping.py``: element-wise, global-norm, per-leaf RMS and adaptive
(unit-wise) gradient clipping."""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Hyper, Ref, at


class ClipValue(Ref):
    """``u = clip(g, -max_delta, max_delta)``."""

    def __init__(self, max_delta: Hyper):
        self.max_delta = max_delta

    def step(self, grads, params, t):
        d = at(self.max_delta, t)
        return [np.minimum(np.maximum(g, -d), d) for g in grads]


class ClipGlobalNorm(Ref):
    """Rescales the whole tree to norm ``max_norm`` when its norm ``n`` reaches it
    (``n >= max_norm``); records ``n`` in ``self.norm``."""

    def __init__(self, max_norm: Hyper):
        self.max_norm = max_norm

    def step(self, grads, params, t):
        limit = at(self.max_norm, t)
        self.norm = float(np.sqrt(sum(np.sum(g * g) for g in grads)))
        factor = 1.0 if self.norm < limit else limit / self.norm
        return [g * factor for g in grads]


class ClipBlockRMS(Ref):
    """Per leaf: ``r = sqrt(mean(g^2))``, ``u = g / max(1, r / threshold)``."""

    def __init__(self, threshold: Hyper):
        self.threshold = threshold

    def step(self, grads, params, t):
        c = at(self.threshold, t)
        return [g / max(1.0, float(np.sqrt(np.mean(g * g))) / c) for g in grads]


def unit_norms(x: np.ndarray, axis=None) -> np.ndarray:
    """The L2 norm of each unit (what one output neuron owns), broadcast to ``x.shape``:
    scalars and vectors (after squeezing) are one unit; ranks 2 and 3 reduce axis 0; ranks 4
    and 5 (convolution kernels) every axis but the last."""
    if axis is None:
        if np.squeeze(x).ndim <= 1:
            axis = tuple(range(x.ndim))
        elif x.ndim in (2, 3):
            axis = (0,)
        elif x.ndim in (4, 5):
            axis = tuple(range(x.ndim - 1))
        else:
            raise ValueError(f"no default units for shape {x.shape}")
    return np.broadcast_to(np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), x.shape)


class AdaptiveClip(Ref):
    """AGC (Brock et al. 2021), unit by unit: ``limit = clipping * max(||p||, eps)``; a unit
    keeps ``g`` while ``||g|| < limit``, else becomes ``g * limit / max(||g||, 1e-6)``."""

    def __init__(self, clipping: Hyper, eps: Hyper, axis=None):
        self.clipping, self.eps, self.axis = clipping, eps, axis

    def step(self, grads, params, t):
        lam, eps, out = at(self.clipping, t), at(self.eps, t), []
        for g, p in zip(grads, params, strict=True):
            g_norm = unit_norms(g, self.axis)
            limit = lam * np.maximum(unit_norms(p, self.axis), eps)
            clipped = g * limit / np.maximum(g_norm, 1e-6)
            out.append(np.where(g_norm < limit, g, clipped))
        return out


@reference("clip")
def clip(max_delta) -> Ref:
    return ClipValue(max_delta)


@reference("clip_by_global_norm")
def clip_by_global_norm(max_norm) -> Ref:
    return ClipGlobalNorm(max_norm)


@reference("clip_by_block_rms")
def clip_by_block_rms(threshold) -> Ref:
    return ClipBlockRMS(threshold)


@reference("adaptive_grad_clip")
def adaptive_grad_clip(clipping, eps=1e-3, axis=None) -> Ref:
    return AdaptiveClip(clipping, eps, axis)
