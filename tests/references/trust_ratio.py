"""References of gradtx/optimizers/trust_ratio.py: LARS (You et al. 2017), LAMB (You et al.
2020) and Fromage (Bernstein et al. 2020), transcribed from the papers' per-layer rules."""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Ref, at, mask_leaves, zeros


def _norm(x: np.ndarray, floor: float) -> float:
    return max(float(np.sqrt(np.sum(x * x))), floor)


def _trust(g: np.ndarray, p: np.ndarray, coef: float, eps: float, floor: float) -> np.ndarray:
    """``g * coef * ||p|| / (||g|| + eps)``, or ``g`` where either norm is 0."""
    pn, gn = _norm(p, floor), _norm(g, floor)
    return g if pn == 0 or gn == 0 else g * (coef * pn / (gn + eps))


class TrustRatio(Ref):
    def __init__(self, min_norm=0.0, trust_coefficient=1.0, eps=0.0):
        self.min_norm, self.coef, self.eps = min_norm, trust_coefficient, eps

    def step(self, grads, params, t):
        c, e, f = at(self.coef, t), at(self.eps, t), at(self.min_norm, t)
        return [_trust(g, p, c, e, f) for g, p in zip(grads, params, strict=True)]


@reference("scale_by_trust_ratio")
def scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0):
    return TrustRatio(min_norm, trust_coefficient, eps)


class Lars(Ref):
    """``d = g + wd p`` (masked), trust-rescaled (masked), momentum on ``-lr d``."""

    def __init__(self, lr, wd, wd_mask, coef, eps, trust_mask, momentum, nesterov):
        self.lr, self.wd, self.coef, self.eps = lr, wd, coef, eps
        self.wd_mask, self.trust_mask = wd_mask, trust_mask
        self.momentum, self.nesterov = momentum, nesterov

    def init(self, params):
        self.m = zeros(params)

    def step(self, grads, params, t):
        decay = mask_leaves(None if self.wd_mask is True else self.wd_mask, params)
        rescale = mask_leaves(None if self.trust_mask is True else self.trust_mask, params)
        lr, mu, out = at(self.lr, t), at(self.momentum, t), []
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            d = g + at(self.wd, t) * p if decay[i] else g
            if rescale[i]:
                d = _trust(d, p, at(self.coef, t), at(self.eps, t), 0.0)
            d = -lr * d
            self.m[i] = mu * self.m[i] + d
            out.append(d + mu * self.m[i] if self.nesterov else self.m[i].copy())
        return out


@reference("lars")
def lars(
    learning_rate,
    weight_decay=0.0,
    weight_decay_mask=True,
    trust_coefficient=0.001,
    eps=0.0,
    trust_ratio_mask=True,
    momentum=0.9,
    nesterov=False,
):
    return Lars(
        learning_rate, weight_decay, weight_decay_mask, trust_coefficient, eps,
        trust_ratio_mask, momentum, nesterov,
    )  # fmt: skip


class Lamb(Ref):
    """Adam's bias-corrected ratio plus decoupled decay, rescaled by ``||p|| / ||r||``."""

    def __init__(self, lr, b1, b2, eps, eps_root, wd, mask):
        self.lr, self.b1, self.b2, self.eps, self.eps_root = lr, b1, b2, eps, eps_root
        self.wd, self.mask = wd, mask

    def init(self, params):
        self.m, self.v = zeros(params), zeros(params)

    def step(self, grads, params, t):
        decay = mask_leaves(self.mask, params)
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            m_hat, v_hat = self.m[i] / (1 - b1**t), self.v[i] / (1 - b2**t)
            r = m_hat / (np.sqrt(v_hat + at(self.eps_root, t)) + at(self.eps, t))
            if decay[i]:
                r = r + at(self.wd, t) * p
            out.append(-at(self.lr, t) * _trust(r, p, 1.0, 0.0, 0.0))
        return out


@reference("lamb")
def lamb(learning_rate, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0, mask=None):
    return Lamb(learning_rate, b1, b2, eps, eps_root, weight_decay, mask)


class Fromage(Ref):
    """``p <- (p - lr g ||p|| / ||g||) / sqrt(1 + lr^2)``, norms at least ``min_norm``."""

    def __init__(self, lr, min_norm):
        self.lr, self.min_norm = lr, min_norm

    def step(self, grads, params, t):
        lr, out = at(self.lr, t), []
        for g, p in zip(grads, params, strict=True):
            new = (p - lr * _trust(g, p, 1.0, 0.0, at(self.min_norm, t))) / np.sqrt(1 + lr**2)
            out.append(new - p)
        return out


@reference("fromage")
def fromage(learning_rate, min_norm=1e-6):
    return Fromage(learning_rate, min_norm)
