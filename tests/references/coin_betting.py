"""References of gradtx/optimizers/coin_betting.py: COCOB (Orabona & Tommasi 2017,
Algorithm 2) and Mechanic (Cutkosky et al. 2023), from the papers."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Identity, Ref, at, dot
from .core import learning_rate as descent


def _decay(weight_decay, mask) -> Ref:
    return Identity() if weight_decay is None else WeightDecay(weight_decay, mask)


class Cocob(Ref):
    """Per weight ``i``: ``L = max(L, |g|)``, ``G += |g|``, ``Reward = max(Reward + (w - w_1)(-g),
    0)``, ``theta += -g``; ``w = w_1 + theta / (L max(G + L, alpha L)) (L + Reward)``.  The update
    is the new ``w`` minus the current one."""

    def __init__(self, alpha, eps):
        self.alpha, self.eps = alpha, eps

    def init(self, params):
        self.w1 = [np.array(p) for p in params]
        self.big_l = [np.full(np.shape(p), float(self.eps)) for p in params]  # optax: L_0 = eps
        self.big_g = [np.zeros(np.shape(p)) for p in params]
        self.reward = [np.zeros(np.shape(p)) for p in params]
        self.theta = [np.zeros(np.shape(p)) for p in params]

    def step(self, grads, params, t):
        alpha, out = at(self.alpha, t), []
        for i, (g, w) in enumerate(zip(grads, params, strict=True)):
            neg = -g  # the paper bets on the negative gradient
            self.big_l[i] = np.maximum(self.big_l[i], np.abs(neg))
            self.big_g[i] = self.big_g[i] + np.abs(neg)
            self.reward[i] = np.maximum(self.reward[i] + (w - self.w1[i]) * neg, 0.0)
            self.theta[i] = self.theta[i] + neg
            big_l = self.big_l[i]
            frac = self.theta[i] / (big_l * np.maximum(self.big_g[i] + big_l, alpha * big_l))
            out.append(self.w1[i] + frac * (big_l + self.reward[i]) - w)
        return out


class Mechanic(Ref):
    """Algorithm 1 with the memory-efficient ``Δ_t = (x_t - x_ref) / (sum s_t + eps)``:
    ``h_t = <Δ_t, g_t + λ sum(s_t) ||g_t|| x_t / (||x_t|| + eps)>``, and per ``beta_i``
    ``m = max(beta m, |h| + eps)``, ``v = beta² v + h²``,
    ``r = beta r - s clip(h, -m_{t-1}, m_{t-1})`` (stored unclipped), ``W = s_init m / n + max(r,
    0)``, ``s = W / (sqrt(v) + eps)``; ``x_{t+1} = x_ref + sum(s) (Δ_t + u_t)``, ``u_t`` the base
    optimizer's update.  (``h`` here is the paper's; optax's carries the opposite sign.)"""

    def __init__(self, base, wd, eps, s_init, n):
        self.base, self.wd, self.eps, self.s_init, self.n = base, wd, eps, s_init, n

    def init(self, params):
        self.base.init(params)
        self.betas = np.array([1 - 0.1**i for i in range(1, self.n + 1)])
        self.r, self.m, self.v = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n)
        self.s = np.full(self.n, float(self.s_init))

    def step(self, grads, params, t):
        wd, eps = at(self.wd, t), at(self.eps, t)
        if t == 1:
            self.x_ref = [np.array(p) for p in params]
        u = self.base.step(grads, params, t)
        total = float(np.sum(self.s))
        delta = [(x - x0) / (total + eps) for x, x0 in zip(params, self.x_ref, strict=True)]
        coef = wd * total * np.sqrt(dot(grads, grads)) / (np.sqrt(dot(params, params)) + eps)
        h = dot(delta, [g + coef * x for g, x in zip(grads, params, strict=True)])
        b = self.betas
        clipped = np.clip(h, -self.m, self.m)
        self.m = np.maximum(b * self.m, abs(h) + eps)
        self.v = b**2 * self.v + h**2
        self.r = b * self.r - self.s * clipped
        wealth = self.s_init / self.n * self.m + np.maximum(self.r, 0.0)
        self.s = wealth / (np.sqrt(self.v) + eps)
        scale = float(np.sum(self.s))
        triples = zip(params, self.x_ref, delta, u, strict=True)
        return [x0 + scale * (d + ui) - x for x, x0, d, ui in triples]


@reference("scale_by_cocob")
def scale_by_cocob(alpha=100.0, eps=1e-8) -> Ref:
    return Cocob(alpha, eps)


@reference("cocob")
def cocob(learning_rate=1.0, alpha=100.0, eps=1e-8, weight_decay=0.0, mask=None) -> Ref:
    gain = descent(learning_rate, flip_sign=False)
    return Chain(WeightDecay(weight_decay, mask), gain, Cocob(alpha, eps))


@reference("mechanize")
def mechanize(base_optimizer, weight_decay=1e-2, eps=1e-8, s_init=1e-6, num_betas=6) -> Ref:
    return Mechanic(base_optimizer, weight_decay, eps, s_init, num_betas)
