"""References of ``gradtx/optimizers/self_tuning.py``: hypergradient descent (Baydin et al.
2018), SWATS (Keskar & Socher 2017, Algorithm 1), D-Adaptation AdamW (Defazio & Mishchenko
2023) and Prodigy (Mishchenko & Defazio 2023).

These rules couple the leaves: every dot product ``<a, b>`` and L1 norm ``||a||_1`` is taken
over all the leaves together.
"""

from __future__ import annotations

import numpy as np

from . import reference
from .adam import Adam
from .blocks import Momentum
from .core import Arrays, Hyper, Identity, Ref, at, dot, zeros


def l1(a: Arrays) -> float:
    return float(sum(np.sum(np.abs(x)) for x in a))


class Hypergradient(Ref):
    """The learning rate takes a gradient step of its own before the parameters do:
    ``h_t = g_t . du_{t-1}/dalpha = -g_t . d_{t-1}``, ``alpha_t = alpha_{t-1} - beta h_t``,
    ``u_t = -alpha_t d_t`` with ``d_t`` the direction's output (``d_0 = 0``)."""

    def __init__(self, direction: Ref, alpha0: float, beta: Hyper):
        self.direction, self.alpha0, self.beta = direction, alpha0, beta

    def init(self, params):
        self.direction.init(params)
        self.alpha, self.d_prev = float(self.alpha0), zeros(params)

    def step(self, grads, params, t):
        h = -dot(grads, self.d_prev)
        self.alpha = self.alpha - at(self.beta, t) * h
        d = self.direction.step(grads, params, t)
        self.d_prev = [np.array(x) for x in d]
        return [-self.alpha * x for x in d]


class Swats(Ref):
    """Adam phase: ``p_t = -alpha sqrt(1 - b2^t) / (1 - b1^t) m_t / (sqrt(v_t) + eps)``; when
    ``p_t . g_t != 0``: ``gamma_t = p.p / -p.g``, ``lambda_t = b2 lambda + (1 - b2) gamma_t``,
    switch if ``t > 1`` and ``|lambda_t / (1 - b2^t) - gamma_t| < tol`` with
    ``Lambda = lambda_t / (1 - b2^t)``.  SGD phase (every later step): ``v_t = b1 v + g``
    from ``v = 0``, ``u = -(1 - b1) Lambda v_t``."""

    def __init__(self, alpha: Hyper, b1: float, b2: float, eps: float, tol: float):
        self.alpha, self.b1, self.b2, self.eps, self.tol = alpha, b1, b2, eps, tol

    def init(self, params):
        self.m, self.a, self.v = zeros(params), zeros(params), zeros(params)
        self.lam, self.big_lambda, self.sgd = 0.0, 0.0, False

    def step(self, grads, params, t):
        b1, b2 = self.b1, self.b2
        if self.sgd:
            self.v = [b1 * v + g for v, g in zip(self.v, grads, strict=True)]
            return [-(1 - b1) * self.big_lambda * v for v in self.v]
        self.m = [b1 * m + (1 - b1) * g for m, g in zip(self.m, grads, strict=True)]
        self.a = [b2 * a + (1 - b2) * g * g for a, g in zip(self.a, grads, strict=True)]
        k = -at(self.alpha, t) * np.sqrt(1 - b2**t) / (1 - b1**t)
        p = [k * m / (np.sqrt(a) + self.eps) for m, a in zip(self.m, self.a, strict=True)]
        pg = dot(p, grads)
        if pg != 0:
            gamma = dot(p, p) / -pg
            self.lam = b2 * self.lam + (1 - b2) * gamma
            lam_hat = self.lam / (1 - b2**t)
            if t > 1 and abs(lam_hat - gamma) < self.tol:
                self.sgd, self.big_lambda = True, lam_hat
        return p


def _adam_step(d: float, lr: float, b1: float, b2: float, t: int) -> float:
    """``d lr sqrt(1 - b2^t) / (1 - b1^t)``: the found step with Adam's bias correction."""
    return d * lr * np.sqrt(1 - b2**t) / (1 - b1**t)


class DAdaptAdamW(Ref):
    """D-Adapted AdamW with ``c = sqrt(b2)``, ``dlr = d lr sqrt(1 - b2^t) / (1 - b1^t)``:
    ``r_t = c r + (1 - c) dlr <g, s_{t-1} / (sqrt(v_{t-1}) + eps)>``,
    ``m_t = b1 m + (1 - b1) dlr g``, ``v_t = b2 v + (1 - b2) g^2``, ``s_t = c s + (1 - c) dlr g``,
    ``d <- max(d, r_t / ((1 - c) ||s_t||_1))``, ``u = -m_t / (sqrt(v_t) + eps) - wd dlr p``."""

    def __init__(self, lr: Hyper, betas, eps: float, d0: float, wd: float):
        (self.b1, self.b2), self.lr, self.eps, self.d0, self.wd = betas, lr, eps, d0, wd

    def init(self, params):
        self.m, self.v, self.s = zeros(params), zeros(params), zeros(params)
        self.d, self.r = float(self.d0), 0.0

    def step(self, grads, params, t):
        b1, b2, eps = self.b1, self.b2, self.eps
        c = np.sqrt(b2)
        dlr = _adam_step(self.d, at(self.lr, t), b1, b2, t)
        scaled_s = [s / (np.sqrt(v) + eps) for s, v in zip(self.s, self.v, strict=True)]
        self.r = c * self.r + (1 - c) * dlr * dot(grads, scaled_s)
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * dlr * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            self.s[i] = c * self.s[i] + (1 - c) * dlr * g
        self.d = max(self.d, self.r / ((1 - c) * l1(self.s)))
        triples = zip(self.m, self.v, params, strict=True)
        return [-m / (np.sqrt(v) + eps) - self.wd * dlr * p for m, v, p in triples]


class Prodigy(Ref):
    """Prodigy (Adam form) with ``dlr = d lr sqrt(1 - b2^t) / (1 - b1^t)``:
    ``m_t = b1 m + (1 - b1) d g``, ``v_t = b2 v + (1 - b2) d^2 g^2``,
    ``r_t = b3 r + (d / d0) dlr <g, x_0 - p>``, ``s_t = b3 s + (w / d0) d g`` (``w = dlr``, or
    ``d`` with the safeguard), ``d' = max(d, coef r_t / ||s_t||_1)``,
    ``u = -dlr m_t / (sqrt(v_t) + d' eps) - wd dlr p``."""

    def __init__(self, lr: Hyper, betas, b3, eps, d0, coef, wd, safeguard):
        (self.b1, self.b2), self.lr, self.eps, self.d0 = betas, lr, eps, d0
        self.b3 = np.sqrt(self.b2) if b3 is None else b3
        self.coef, self.wd, self.safeguard = coef, wd, safeguard

    def init(self, params):
        self.m, self.v, self.s = zeros(params), zeros(params), zeros(params)
        self.x0 = [np.array(p, np.float64) for p in params]
        self.d, self.r = float(self.d0), 0.0

    def step(self, grads, params, t):
        b1, b2, b3, d, d0 = self.b1, self.b2, self.b3, self.d, self.d0
        dlr = _adam_step(d, at(self.lr, t), b1, b2, t)
        w = d if self.safeguard else dlr
        moved = [x0 - p for x0, p in zip(self.x0, params, strict=True)]
        self.r = b3 * self.r + (d / d0) * dlr * dot(grads, moved)
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * d * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * d * d * g * g
            self.s[i] = b3 * self.s[i] + (w / d0) * d * g
        self.d = max(d, self.coef * self.r / l1(self.s))
        triples = zip(self.m, self.v, params, strict=True)
        return [
            -dlr * m / (np.sqrt(v) + self.d * self.eps) - self.wd * dlr * p for m, v, p in triples
        ]


@reference("scale_by_hypergradient")
def scale_by_hypergradient(direction, learning_rate, hyper_lr) -> Ref:
    return Hypergradient(direction, learning_rate, hyper_lr)


@reference("sgd_hd")
def sgd_hd(learning_rate, hyper_lr, momentum=None, nesterov=False) -> Ref:
    """SGD-HD (``d = g``), heavy ball (``d = v``, ``v = mu v + g``), SGDN-HD (``d = g + mu v``)."""
    if nesterov and momentum is None:
        raise ValueError("sgd_hd: nesterov=True needs a momentum")
    direction = Identity() if momentum is None else Momentum(momentum, nesterov)
    return Hypergradient(direction, learning_rate, hyper_lr)


@reference("adam_hd")
def adam_hd(learning_rate, hyper_lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0) -> Ref:
    """Adam-HD: the direction is Adam's ``m_hat / (sqrt(v_hat + eps_root) + eps)``."""
    return Hypergradient(Adam(b1, b2, eps, eps_root), learning_rate, hyper_lr)


@reference("swats")
def swats(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-9, switch_tol=None) -> Ref:
    return Swats(learning_rate, b1, b2, eps, eps if switch_tol is None else switch_tol)


@reference("dadapt_adamw")
def dadapt_adamw(
    learning_rate=1.0, betas=(0.9, 0.999), eps=1e-8, estim_lr0=1e-6, weight_decay=0.0
) -> Ref:
    return DAdaptAdamW(learning_rate, betas, eps, estim_lr0, weight_decay)


@reference("prodigy")
def prodigy(
    learning_rate=1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    estim_lr0=1e-6,
    estim_lr_coef=1.0,
    weight_decay=0.0,
    safeguard_warmup=False,
) -> Ref:
    return Prodigy(
        learning_rate, betas, beta3, eps, estim_lr0, estim_lr_coef, weight_decay, safeguard_warmup
    )
