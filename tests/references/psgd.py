"""References of ``gradtx/optimizers/psgd.py``: PSGD-Kron (Xi-Lin Li's Kronecker-factored
preconditioned SGD, the ``kron`` optimizer of psgd_jax / kron_torch), transcribed leaf by leaf in
NumPy with every axis unfolded explicitly (``x_(i)``: axis ``i`` first, the rest flattened).

The random numbers are an input, like the gradients: the update draws and the probes are taken
from ``jax.random`` following the documented protocol of ``gradtx.scale_by_psgd_kron`` (split
the key into ``(next, draw)``, ``draw`` into ``(k_p, k_v)``; update when ``uniform(k_p) < p_t``
in float32; probe ``j`` is ``normal(split(k_v, n)[j], shape_j)``).  ``probes=`` replaces the
draw with a list of ``(do_update, [v_j])`` per step, for tests that feed their own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Hyper, Ref, at, zeros
from .core import learning_rate as descent

DAMP = math.sqrt(float(np.finfo(np.float32).eps))


def anneal(n: float, max_prob=1.0, min_prob=0.03, decay=0.001, flat_start=500) -> float:
    """psgd_jax's default update probability at step ``n`` (completed steps)."""
    return min(max(max_prob * math.exp(-decay * (n - flat_start)), min_prob), max_prob)


def triangular(shape, max_size, max_skew, min_ndim, save_mode) -> list[bool]:
    """psgd_jax's choice of triangular (True) or diagonal factors, axis by axis."""
    shape = list(shape) or [1]
    n = len(shape)
    diag = [False] * n
    order = np.argsort(shape, kind="stable")[::-1]  # the last of the longest first
    if save_mode == "all_diag":
        diag = [True] * n
    elif save_mode == "one_diag":
        diag[order[0]] = True
    elif save_mode == "smart_one_diag" and n > 1 and sorted(shape)[-1] > sorted(shape)[-2]:
        diag[order[0]] = True
    beta = 1 if n == 1 else sorted(shape)[-2]
    return [
        not (d == 1 or d > max_size or d > max_skew * beta or n < min_ndim or diag[i])
        for i, d in enumerate(shape)
    ]


def unfold(x: np.ndarray, i: int) -> np.ndarray:
    return np.moveaxis(x, i, 0).reshape(x.shape[i], -1)


def fold(m: np.ndarray, i: int, shape) -> np.ndarray:
    moved = [shape[i]] + [d for j, d in enumerate(shape) if j != i]
    return np.moveaxis(m.reshape(moved), 0, i)


def lower_bound(s: np.ndarray) -> float:
    """Li's lower bound of ``||s||_2`` for symmetric ``s``."""
    c = np.max(np.abs(s))
    if c == 0:
        return 0.0
    m = s / c
    r = m[np.argmax(np.sum(m * m, axis=1))]
    x = m @ r
    return float(c * np.linalg.norm(m.T @ (x / np.linalg.norm(x))))


def draws(key_data: np.ndarray, shapes) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """``(next key, uniform, probes)`` of one step, by the documented protocol."""
    import jax
    import jax.numpy as jnp

    nxt, draw = jax.random.split(jnp.asarray(key_data, jnp.uint32))
    k_p, k_v = jax.random.split(draw)
    u = float(jax.random.uniform(k_p, (), jnp.float32))
    keys = jax.random.split(k_v, len(shapes))
    vs = [
        np.asarray(jax.random.normal(k, s, jnp.float64), np.float64)
        for k, s in zip(keys, shapes, strict=True)
    ]
    return np.asarray(nxt), u, vs


class PsgdKron(Ref):
    def __init__(self, b1: Hyper, prob: Hyper, max_size, max_skew, min_ndim, save_mode,
                 momentum_into_precond_update, precond_lr: Hyper, init_scale, clip: Hyper,
                 key: Any, probes: list | None):  # fmt: skip
        self.b1, self.prob, self.lr, self.clip = b1, prob, precond_lr, clip
        self.rule = (max_size, max_skew, min_ndim, save_mode)
        self.use_momentum, self.scale = momentum_into_precond_update, init_scale
        self.key0, self.probes = key, probes

    def init(self, params):
        import jax

        self.key = np.asarray(jax.random.PRNGKey(self.key0))
        self.m = zeros(params)
        self.q = []
        for p in params:
            shape = p.shape or (1,)
            s = self.scale ** (1 / len(shape)) if p.shape else self.scale
            kinds = triangular(p.shape, *self.rule)
            self.q.append(
                [s * np.eye(d) if t else np.full(d, s) for d, t in zip(shape, kinds, strict=True)]
            )
        self.skips = []

    def step(self, grads, params, t):
        b1, lr = at(self.b1, t), at(self.lr, t)
        hats = []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            hats.append(self.m[i] / (1 - b1**t))
        if self.probes is not None:
            do, vs = self.probes[t - 1]
        else:
            self.key, u, vs = draws(self.key, [np.shape(g) for g in grads])
            do = u < at(self.prob, t)
        self.skips.append(not do)
        fit = hats if self.use_momentum else grads
        if do:
            for i, (x, v) in enumerate(zip(fit, vs, strict=True)):
                shape = x.shape or (1,)
                x, v = np.reshape(x, shape), np.reshape(v, shape)
                self.q[i] = self.fit(self.q[i], x + DAMP * np.mean(np.abs(x)) * v, v, lr)
        out = []
        for i, x in enumerate(hats):
            y = np.reshape(x, x.shape or (1,))
            for ax, q in enumerate(self.q[i]):
                y = fold((q.T @ q if q.ndim == 2 else np.diag(q * q)) @ unfold(y, ax), ax, y.shape)
            if at(self.clip, t) > 0:
                y = y / max(1.0, np.sqrt(np.mean(y * y)) / at(self.clip, t))
            out.append(np.reshape(y, x.shape))
        return out

    @staticmethod
    def fit(qs, g, v, lr):
        if len(qs) > 1:  # balancing: no effect on P or on the step, only on the stored factors
            norms = [np.max(np.abs(q)) for q in qs]
            mean = np.prod(norms) ** (1 / len(norms))
            qs = [q * (mean / n) for q, n in zip(qs, norms, strict=True)]
        a, b = g, v
        for ax, q in enumerate(qs):
            full = q if q.ndim == 2 else np.diag(q)
            a = fold(full @ unfold(a, ax), ax, a.shape)
            b = fold(np.linalg.solve(full.T, unfold(b, ax)), ax, b.shape)
        tiny = np.finfo(np.float64).tiny
        new = []
        for ax, q in enumerate(qs):
            ua, ub = unfold(a, ax), unfold(b, ax)
            ta, tb = ua @ ua.T, ub @ ub.T
            if q.ndim == 1:
                e, f = np.diag(ta), np.diag(tb)
                new.append(q - lr * (e - f) * q / (np.max(np.abs(e + f)) + tiny))
            else:
                new.append(q - lr * np.triu(ta - tb) @ q / (lower_bound(ta + tb) + tiny))
        return new


@reference("scale_by_psgd_kron")
def scale_by_psgd_kron(
    b1=0.9,
    preconditioner_update_probability=anneal,
    max_size_triangular=8192,
    max_skew_triangular=math.inf,
    min_ndim_triangular=2,
    memory_save_mode=None,
    momentum_into_precond_update=True,
    precond_lr=0.1,
    precond_init_scale=1.0,
    clip_update_rms=1.1,
    key=None,
    *,
    seed=None,
    mu_dtype=None,
    precond_dtype=None,
    probes=None,
) -> Ref:
    del mu_dtype, precond_dtype
    key = seed if seed is not None else (0 if key is None else key)
    return PsgdKron(b1, preconditioner_update_probability, max_size_triangular,
                    max_skew_triangular, min_ndim_triangular, memory_save_mode,
                    momentum_into_precond_update, precond_lr, precond_init_scale,
                    clip_update_rms, key, probes)  # fmt: skip


@reference("psgd_kron")
def psgd_kron(learning_rate=0.001, b1=0.9, weight_decay=0.0, mask=None, **kwargs) -> Ref:
    """``u = -lr (d + wd p)``."""
    return Chain(
        scale_by_psgd_kron(b1=b1, **kwargs), WeightDecay(weight_decay, mask), descent(learning_rate)
    )
