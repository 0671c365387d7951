"""References of ``gradtx/optimizers/sign.py``: signSGD and Signum (Bernstein et al. 2018) and
Lion (Chen et al. 2023, Program 1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Hyper, Ref, at, stored, zeros
from .core import learning_rate as descent


class Sign(Ref):
    def step(self, grads, params, t):
        return [np.sign(g) for g in grads]


class Lion(Ref):
    """Lion without the learning rate and the weight decay: ``u = sign(b1 m + (1 - b1) g)``,
    then ``m_t = b2 m + (1 - b2) g``.  ``mu_dtype`` stores ``m`` in that dtype (used as stored)."""

    def __init__(self, b1=0.9, b2=0.99, mu_dtype: Any = None, mode="hard", smooth_beta=1.0):
        self.b1, self.b2, self.mu_dtype = b1, b2, mu_dtype
        self.mode, self.smooth_beta = mode, smooth_beta

    def direction(self, x: np.ndarray, t: int) -> np.ndarray:
        if self.mode == "smooth":
            return np.tanh(at(self.smooth_beta, t) * x)
        if self.mode == "refined":
            return np.where(np.abs(x) < 1, x, np.sign(x))
        return np.sign(x)

    def init(self, params):
        self.m = zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        for i, g in enumerate(grads):
            out.append(self.direction(b1 * self.m[i] + (1 - b1) * g, t))
            self.m[i] = stored(b2 * self.m[i] + (1 - b2) * g, self.mu_dtype)
        return out


@reference("scale_by_sign")
def scale_by_sign() -> Ref:
    return Sign()


@reference("scale_by_lion")
def scale_by_lion(b1=0.9, b2=0.99, mu_dtype=None, *, mode="hard", smooth_beta=1.0) -> Ref:
    return Lion(b1, b2, mu_dtype, mode, smooth_beta)


@reference("sign_sgd")
def sign_sgd(learning_rate) -> Ref:
    """``u = -lr sign(g)``."""
    return Chain(Sign(), descent(learning_rate))


class Signum(Ref):
    """``m_t = beta m_{t-1} + (1 - beta) g`` from ``m_0 = 0`` (stored in ``dtype``);
    ``u = -lr sign(m_t)``."""

    def __init__(self, lr: Hyper, beta: Hyper, dtype: Any):
        self.lr, self.beta, self.dtype = lr, beta, dtype

    def init(self, params):
        self.m = zeros(params)

    def step(self, grads, params, t):
        beta, out = at(self.beta, t), []
        for i, g in enumerate(grads):
            self.m[i] = stored(beta * self.m[i] + (1 - beta) * g, self.dtype)
            out.append(-at(self.lr, t) * np.sign(self.m[i]))
        return out


@reference("signum")
def signum(learning_rate, beta=0.9, accumulator_dtype=None) -> Ref:
    return Signum(learning_rate, beta, accumulator_dtype)


@reference("lion")
def lion(learning_rate, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3, mask=None) -> Ref:
    """``u = -lr (sign(b1 m + (1 - b1) g) + wd p)``."""
    return Chain(Lion(b1, b2, mu_dtype), WeightDecay(weight_decay, mask), descent(learning_rate))
