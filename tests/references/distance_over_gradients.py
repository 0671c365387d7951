"""References of gradtx/optimizers/distance_over_gradients.py: DoG (Ivgi et al. 2023), DoWG
(Khaled et al. 2023) and layer-wise DoG, from the papers."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Identity, Ref, at, dist_sq, dot
from .core import learning_rate as descent


def _decay(weight_decay, mask) -> Ref:
    return Identity() if weight_decay is None else WeightDecay(weight_decay, mask)


class Dog(Ref):
    """``r̄_t = max(r̄_{t-1}, ||x_t - x_0||)`` from ``r̄_{-1} = r_eps``, ``G_t = G_{t-1} + ||g||²``,
    ``eta_t = r̄_t / sqrt(G_t + eps)`` (optax's ``eps``), output ``eta_t g`` (a direction).
    ``("learning_rate", lr)``: ``r_eps = 0`` and ``eta_0 = lr`` (the authors' ``init_eta``)."""

    def __init__(self, init_step, eps):
        (self.kind, self.value), self.eps = init_step, eps

    def init(self, params):
        self.x0 = [np.array(p) for p in params]
        norm0 = np.sqrt(dot(params, params))
        r_eps = {"distance": self.value, "heuristic": self.value * (1 + norm0)}
        self.r_bar, self.big_g = float(r_eps.get(self.kind, 0.0)), 0.0

    def step(self, grads, params, t):
        self.r_bar = max(self.r_bar, np.sqrt(dist_sq(params, self.x0)))
        self.big_g += dot(grads, grads)
        eta = self.r_bar / np.sqrt(self.big_g + at(self.eps, t))
        if self.kind == "learning_rate" and t == 1:
            eta = self.value
        return [eta * g for g in grads]


class Dowg(Ref):
    """``r̄²_t = max(r̄²_{t-1}, ||x_t - x_0||²)`` from ``r_eps²``, ``v_t = v_{t-1} + r̄²_t
    ||g_t||²``, ``eta_t = r̄²_t / (sqrt(v_t) + eps)`` (optax's ``eps``), output ``eta_t g``."""

    def __init__(self, r_eps_sq, eps):
        self.r_eps_sq, self.eps = r_eps_sq, eps

    def init(self, params):
        self.x0 = [np.array(p) for p in params]
        self.r_sq, self.v = float(self.r_eps_sq), 0.0

    def step(self, grads, params, t):
        self.r_sq = max(self.r_sq, dist_sq(params, self.x0))
        self.v += self.r_sq * dot(grads, grads)
        eta = self.r_sq / (np.sqrt(self.v) + self.eps)
        return [eta * g for g in grads]


class LayerwiseDog(Ref):
    """DoG per leaf: ``r̄ = max(r̄, ||x - x_0||)`` from ``reps_rel (1 + ||x_0||)``, ``G += ||g||²``,
    output ``global_scale r̄ / sqrt(G + eps) g``; ``x_0`` as stored in ``param_dtype``."""

    def __init__(self, reps_rel, eps, param_dtype, global_scale):
        self.reps_rel, self.eps, self.scale, self.dtype = reps_rel, eps, global_scale, param_dtype

    def init(self, params):
        self.r_bar = [self.reps_rel * (1 + np.sqrt(np.sum(p * p))) for p in params]
        self.big_g = [0.0 for _ in params]
        kept = (lambda p: p) if self.dtype is None else (lambda p: p.astype(self.dtype))
        self.x0 = [np.asarray(kept(np.array(p)), np.float64) for p in params]

    def step(self, grads, params, t):
        out = []
        for i, (g, x) in enumerate(zip(grads, params, strict=True)):
            self.r_bar[i] = max(self.r_bar[i], np.sqrt(np.sum((x - self.x0[i]) ** 2)))
            self.big_g[i] += np.sum(g * g)
            eta = at(self.scale, t) * self.r_bar[i] / np.sqrt(self.big_g[i] + at(self.eps, t))
            out.append(eta * g)
        return out


@reference("scale_by_dog")
def scale_by_dog(init_step=("heuristic", 1e-6), eps=1e-8) -> Ref:
    return Dog(init_step, eps)


@reference("dog")
def dog(learning_rate=1.0, init_step=("heuristic", 1e-6), eps=1e-8, weight_decay=None, mask=None):
    return Chain(_decay(weight_decay, mask), Dog(init_step, eps), descent(learning_rate))


@reference("scale_by_dowg")
def scale_by_dowg(init_estim_sq_dist=None, eps=1e-4) -> Ref:
    return Dowg(eps if init_estim_sq_dist is None else init_estim_sq_dist, eps)


@reference("dowg")
def dowg(learning_rate=1.0, init_estim_sq_dist=None, eps=1e-4, weight_decay=None, mask=None):
    start = eps if init_estim_sq_dist is None else init_estim_sq_dist
    return Chain(_decay(weight_decay, mask), Dowg(start, eps), descent(learning_rate))


@reference("scale_by_distance_over_gradients")
def scale_by_distance_over_gradients(
    reps_rel=1e-6, eps=1e-8, param_dtype=np.float32, global_scale=1.0
) -> Ref:
    return LayerwiseDog(reps_rel, eps, param_dtype, global_scale)
