"""References of ``gradtx/blocks.py``: scaling, the learning rate, momentum, moving averages,
bias correction, weight decay and gradient noise.

``Momentum`` and ``WeightDecay`` are reused by the optimizers of the other families.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reference
from .core import Hyper, Identity, Ref, Scale, at, is_zero, mask_leaves, stored
from .core import learning_rate as descent


class Momentum(Ref):
    """Heavy ball (Polyak), torch's buffer convention: ``b_1 = g`` (never damped);
    ``b_t = mu b_{t-1} + (1 - dampening) g``; output ``b_t`` or, Nesterov, ``g + mu b_t``.
    ``dtype`` stores the buffer in that dtype; the output uses it as stored."""

    def __init__(self, mu: Hyper, nesterov=False, dampening: Hyper = 0.0, dtype: Any = None):
        self.mu, self.nesterov, self.dampening, self.dtype = mu, nesterov, dampening, dtype

    def init(self, params):
        self.buf = [np.zeros(np.shape(p)) for p in params]

    def step(self, grads, params, t):
        mu, damp, out = at(self.mu, t), at(self.dampening, t), []
        for i, g in enumerate(grads):
            b = g if t == 1 else mu * self.buf[i] + (1 - damp) * g
            self.buf[i] = stored(b, self.dtype)
            out.append(g + mu * self.buf[i] if self.nesterov else self.buf[i].copy())
        return out


class MovingAverage(Ref):
    """``m_t = d m_{t-1} + (1 - d) g`` from ``m_0 = 0``; output ``m_t`` or ``m_t / (1 - d^t)``."""

    def __init__(self, decay: Hyper, debias: bool = True, dtype: Any = None):
        self.decay, self.debias, self.dtype = decay, debias, dtype

    def init(self, params):
        self.m = [np.zeros(np.shape(p)) for p in params]

    def step(self, grads, params, t):
        d = at(self.decay, t)
        self.m = [
            stored(d * m + (1 - d) * g, self.dtype) for m, g in zip(self.m, grads, strict=True)
        ]
        return [m / (1 - d**t) if self.debias else m.copy() for m in self.m]


class Debias(Ref):
    """``u = g / (1 - d^t)``."""

    def __init__(self, decay: Hyper):
        self.decay = decay

    def step(self, grads, params, t):
        return [g / (1 - at(self.decay, t) ** t) for g in grads]


class WeightDecay(Ref):
    """``u = g + wd p`` on the leaves the mask selects (all without a mask)."""

    def __init__(self, wd: Hyper, mask: Any = None):
        self.wd, self.mask = wd, mask

    def step(self, grads, params, t):
        wd, keep = at(self.wd, t), mask_leaves(self.mask, params)
        triples = zip(grads, params, keep, strict=True)
        return [g + wd * p if k else np.array(g) for g, p, k in triples]


@reference("identity")
def identity() -> Ref:
    return Identity()


@reference("scale")
def scale(step_size) -> Ref:
    return Scale(step_size)


@reference("scale_by_schedule")
def scale_by_schedule(step_size_fn) -> Ref:
    return Scale(step_size_fn)  # a callable: evaluated at t - 1


@reference("scale_by_learning_rate")
def scale_by_learning_rate(learning_rate=None, *, flip_sign=True) -> Ref:
    return descent(learning_rate, flip_sign)


@reference("trace")
def trace(decay, nesterov=False, accumulator_dtype=None, dampening=0.0) -> Ref:
    return Momentum(decay, nesterov, dampening, accumulator_dtype)


@reference("ema")
def ema(decay, debias=True, accumulator_dtype=None) -> Ref:
    return MovingAverage(decay, debias, accumulator_dtype)


@reference("scale_by_bias_correction")
def scale_by_bias_correction(decay) -> Ref:
    return Debias(decay)


@reference("add_decayed_weights")
def add_decayed_weights(weight_decay=0.0, mask=None) -> Ref:
    return WeightDecay(weight_decay, mask)


@reference("add_noise")
def add_noise(eta, gamma, key=None, *, seed=None) -> Ref | None:
    """Neelakantan et al.: ``u = g + N(0, eta / t^gamma)``.  Random draws have no closed form,
    so only ``eta = 0`` (no noise at all: ``u = g``) is followed."""
    del gamma, key, seed
    return Identity() if is_zero(eta) else None
