"""References of ``gradtx/optimizers/rms.py``: Adagrad's running sum of squares, RMSProp's
moving average (plain or centered, optionally bias corrected) and Adadelta."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import Momentum, WeightDecay
from .core import Chain, Hyper, Identity, Ref, at, filled, zeros
from .core import learning_rate as descent


class RMSProp(Ref):
    """Tieleman & Hinton's RMSProp: ``v_t = d v + (1 - d) g^2`` from ``v_0 = initial_scale``;
    centered (Graves 2013) also ``m_t = d m + (1 - d) g`` and the variance ``v - m^2``; both
    divided by ``1 - d^t`` first with ``bias_correction``; ``u = g / sqrt(var + eps)`` or
    ``g / (sqrt(var) + eps)``."""

    def __init__(
        self,
        decay: Hyper = 0.9,
        eps: Hyper = 1e-8,
        initial_scale: float = 0.0,
        eps_in_sqrt: bool = True,
        bias_correction: bool = False,
        centered: bool = False,
    ):
        self.decay, self.eps, self.initial_scale = decay, eps, initial_scale
        self.eps_in_sqrt, self.bias_correction, self.centered = (
            eps_in_sqrt,
            bias_correction,
            centered,
        )

    def init(self, params):
        self.sq, self.mean = filled(params, self.initial_scale), zeros(params)

    def step(self, grads, params, t):
        d, eps = at(self.decay, t), at(self.eps, t)
        corr = (1 - d**t) if self.bias_correction else 1.0
        out = []
        for i, g in enumerate(grads):
            self.sq[i] = d * self.sq[i] + (1 - d) * g**2
            self.mean[i] = d * self.mean[i] + (1 - d) * g
            var = self.sq[i] / corr
            if self.centered:
                var = var - (self.mean[i] / corr) ** 2
            denom = np.sqrt(var + eps) if self.eps_in_sqrt else np.sqrt(var) + eps
            out.append(g / denom)
        return out


class Adagrad(Ref):
    """Duchi et al.: ``s_t = s_{t-1} + g^2`` from ``s_0 = initial``; ``g / sqrt(s_t + eps)``
    (0 where ``s_t = 0``), or ``g / (sqrt(s_t) + eps)`` with the eps outside the root."""

    def __init__(self, initial: float = 0.1, eps: Hyper = 1e-7, eps_in_sqrt: bool = True):
        self.initial, self.eps, self.eps_in_sqrt = initial, eps, eps_in_sqrt

    def init(self, params):
        self.s = filled(params, self.initial)

    def step(self, grads, params, t):
        eps = at(self.eps, t)
        self.s = [s + g**2 for s, g in zip(self.s, grads, strict=True)]
        if self.eps_in_sqrt:
            return [
                np.where(s > 0, g / np.sqrt(np.where(s > 0, s + eps, 1.0)), 0.0)
                for s, g in zip(self.s, grads, strict=True)
            ]
        return [g / (np.sqrt(s) + eps) for s, g in zip(self.s, grads, strict=True)]


class AdaDelta(Ref):
    """Zeiler 2012, Algorithm 1, without the learning rate: ``E[g^2]_t = rho E[g^2] +
    (1 - rho) g^2``, ``dx = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) g``,
    ``E[dx^2]_t = rho E[dx^2] + (1 - rho) dx^2``."""

    def __init__(self, rho: Hyper = 0.9, eps: Hyper = 1e-6):
        self.rho, self.eps = rho, eps

    def init(self, params):
        self.acc_g, self.acc_x = zeros(params), zeros(params)

    def step(self, grads, params, t):
        r, e, out = at(self.rho, t), at(self.eps, t), []
        for i, g in enumerate(grads):
            self.acc_g[i] = r * self.acc_g[i] + (1 - r) * g**2
            dx = np.sqrt(self.acc_x[i] + e) / np.sqrt(self.acc_g[i] + e) * g
            self.acc_x[i] = r * self.acc_x[i] + (1 - r) * dx**2
            out.append(dx)
        return out


@reference("scale_by_rss")
def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True) -> Ref:
    return Adagrad(initial_accumulator_value, eps, eps_in_sqrt)


@reference("scale_by_rms")
def scale_by_rms(
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    bias_correction=False,
    centered=False,
) -> Ref:
    return RMSProp(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered)


@reference("scale_by_stddev")
def scale_by_stddev(
    decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, bias_correction=False
) -> Ref:
    return RMSProp(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=True)


@reference("scale_by_adadelta")
def scale_by_adadelta(rho=0.9, eps=1e-6) -> Ref:
    return AdaDelta(rho, eps)


@reference("adagrad")
def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7) -> Ref:
    return Chain(Adagrad(initial_accumulator_value, eps), descent(learning_rate))


@reference("rmsprop")
def rmsprop(
    learning_rate,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
    bias_correction=False,
) -> Ref:
    """RMSProp, then the learning rate, then optional momentum on the scaled step."""
    return Chain(
        RMSProp(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered),
        descent(learning_rate),
        Identity() if momentum is None else Momentum(momentum, nesterov),
    )


@reference("adadelta")
def adadelta(
    learning_rate=None, rho=0.9, eps=1e-6, weight_decay=0.0, weight_decay_mask=None
) -> Ref:
    """L2 weight decay ``g + wd p``, Adadelta, then the (optional) learning rate."""
    return Chain(
        WeightDecay(weight_decay, weight_decay_mask), AdaDelta(rho, eps), descent(learning_rate)
    )
