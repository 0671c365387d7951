"""References of ``gradtx/optimizers/polyak.py``: the stochastic Polyak step SPS_max (Loizou et al.
2021; the ``sps+`` gap of Garrigos et al. 2023) and MoMo / MoMo-Adam (Schaipp et al. 2023,
Algorithms 1 and 3, with the online lower bound of their Section 5).

These steps need the loss: ``step(grads, params, t, value=f)``.  Dot products and norms run over
all the leaves together.  Where the papers leave numerical guards open, optax's are used: a
squared norm at most 2.2e-16 takes no step, and ``eps`` is added to the squared norm.
"""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Ref, at, dot

TINY = float(np.finfo(np.float64).eps)


class Polyak(Ref):
    """SPS_max on the direction ``d = scaling * g``: ``gamma = min(gap / (||d||² + eps), gamma_b)``,
    ``u = gamma d``, with ``gap = f - f*`` (``sps+``: ``max(gap, 0)``)."""

    def __init__(self, f_star, gamma_b, eps, variant, scaling=1.0):
        if variant not in ("sps", "sps+"):
            raise ValueError(variant)
        self.f_star, self.gamma_b, self.eps = f_star, gamma_b, eps
        self.plus, self.scaling = variant == "sps+", scaling

    def step(self, grads, params, t, value=None):
        d = [at(self.scaling, t) * g for g in grads]
        gap = float(value) - at(self.f_star, t)
        if self.plus:
            gap = max(gap, 0.0)
        denom = dot(d, d) + at(self.eps, t)
        gamma = 0.0 if denom <= TINY else min(gap / denom, at(self.gamma_b, t))
        return [gamma * x for x in d]


class Momo(Ref):
    """MoMo: the model ``f̄ + <d, y - x> - ...`` of the loss, truncated at the lower bound, as
    averages ``d`` (gradients), ``f̄`` (losses), ``gamma`` (``<g, x>``) with weight ``beta``.

    ``adam=False`` (Algorithm 1): the averages start at the first values;
    ``tau = min(alpha, (rho (f̄ - f* - gamma) + <d, x>)_+ / ||d||²)``.
    ``adam=True`` (Algorithm 3): zero-started averages with ``rho_k = 1 - b1^t``,
    ``D = eps + sqrt(v / (1 - b2^t))``,
    ``tau = min(alpha / rho_k, (rho (f̄ - rho_k f* - gamma) + <d, x>)_+ / <d, D^-1 d>)``.
    ``rho = 1 + alpha lambda``; the step is ``x <- x / rho - tau D^-1 d`` (optax divides only
    ``x`` by ``rho``; the paper divides ``x - tau D^-1 d``).
    Lower bound estimate (MoMo*): before the step, if ``rho (f̄ - gamma) + <d, x>`` is below
    ``rho rho_k f*``, restart ``f*`` at half of it over ``rho rho_k``; after the step
    ``f* = (f̄ + <d, x> - gamma - tau ||d||²_D / 2) / rho_k``; both never below the given bound.
    """

    def __init__(self, alpha, beta, f_star, wd, adapt, adam=False, b2=None, eps=None):
        self.alpha, self.beta, self.floor, self.wd = alpha, beta, f_star, wd
        self.adapt, self.adam, self.b2, self.eps = adapt, adam, b2, eps

    def init(self, params):
        self.d = [np.zeros(np.shape(p)) for p in params]
        self.v = [np.zeros(np.shape(p)) for p in params]
        self.fbar, self.gamma, self.f_star = 0.0, 0.0, float(self.floor)

    def step(self, grads, params, t, value=None):
        beta = at(self.beta, t)
        if not self.adam and t == 1:
            beta = 0.0  # Algorithm 1 starts the averages at the first values
        self.d = [beta * d + (1 - beta) * g for d, g in zip(self.d, grads, strict=True)]
        self.fbar = beta * self.fbar + (1 - beta) * float(value)
        self.gamma = beta * self.gamma + (1 - beta) * dot(grads, params)
        if self.adam:
            b2, eps = at(self.b2, t), at(self.eps, t)
            self.v = [b2 * v + (1 - b2) * g * g for v, g in zip(self.v, grads, strict=True)]
            scale = [eps + np.sqrt(v / (1 - b2**t)) for v in self.v]
            rho_k = 1 - beta**t
        else:
            scale, rho_k = [np.ones_like(d) for d in self.d], 1.0
        direction = [d / s for d, s in zip(self.d, scale, strict=True)]
        norm, dx = dot(self.d, direction), dot(self.d, params)
        alpha = at(self.alpha, t)
        rho = 1 + alpha * at(self.wd, t)
        if self.adapt:
            cap = rho * (self.fbar - self.gamma) + dx
            if cap < rho * rho_k * self.f_star:
                self.f_star = max(cap / (2 * rho * rho_k), self.floor)
        model = max(rho * (self.fbar - rho_k * self.f_star - self.gamma) + dx, 0.0)
        tau = min(alpha / rho_k, 0.0 if norm <= TINY else model / norm)
        if self.adapt:
            self.f_star = max((self.fbar + dx - self.gamma - tau * norm / 2) / rho_k, self.floor)
        pairs = zip(params, direction, strict=True)
        return [x / rho - x - tau * s for x, s in pairs]


@reference("scale_by_polyak")
def scale_by_polyak(f_min=0.0, max_learning_rate=1.0, eps=0.0, variant="sps") -> Ref:
    return Polyak(f_min, max_learning_rate, eps, variant)


@reference("polyak_sgd")
def polyak_sgd(max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0, variant="sps") -> Ref:
    return Polyak(f_min, max_learning_rate, eps, variant, lambda c: -at(scaling, c + 1))


@reference("momo")
def momo(learning_rate=1.0, beta=0.9, lower_bound=0.0, weight_decay=0.0, adapt_lower_bound=False):
    return Momo(learning_rate, beta, lower_bound, weight_decay, adapt_lower_bound)


@reference("momo_adam")
def momo_adam(
    learning_rate=1e-2,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    lower_bound=0.0,
    weight_decay=0.0,
    adapt_lower_bound=False,
) -> Ref:
    return Momo(
        learning_rate, b1, lower_bound, weight_decay, adapt_lower_bound, adam=True, b2=b2, eps=eps
    )
