"""References of ``gradtx/optimizers/quasi_newton.py``: the L-BFGS direction (Liu & Nocedal
1989; Nocedal & Wright, *Numerical Optimization*, Algorithms 7.4 and 7.5) and the L-BFGS
optimizer (the direction, a descent step, a line search).

The direction keeps the last ``m`` pairs ``s_i = w_{i+1} - w_i``, ``y_i = g_{i+1} - g_i`` in a
list (every pair, as optax does, with ``rho_i = 0`` where ``<y_i, s_i> = 0``) and multiplies the
gradient by the inverse-Hessian estimate with the two-loop recursion, from
``H_0 = gamma I``: ``gamma = <y, s> / <y, y>`` of the newest pair (1 when ``y = 0``, or without
``scale_init_precond``), and ``min(1, 1 / ||g||)`` before any pair (optax's first step).
"""

from __future__ import annotations

import math

from . import reference
from .core import Ref, at, dot
from .linesearch import Zoom


class LBFGSDirection(Ref):
    def __init__(self, memory_size, scale_init_precond):
        self.m, self.scale = memory_size, scale_init_precond

    def init(self, params):
        self.pairs, self.prev = [], None

    def step(self, grads, params, t, **_):
        gamma = 1.0
        if self.prev is not None:
            w0, g0 = self.prev
            s = [p - q for p, q in zip(params, w0, strict=True)]
            y = [g - h for g, h in zip(grads, g0, strict=True)]
            self.pairs = [*self.pairs, (s, y)][-self.m :]
            yy = dot(y, y)
            gamma = dot(y, s) / yy if yy > 0 else 1.0
        elif self.scale:
            norm = math.sqrt(dot(grads, grads))
            gamma = min(1.0, 1.0 / norm) if norm > 0 else 1.0
        if not self.scale:
            gamma = 1.0
        self.prev = ([p.copy() for p in params], [g.copy() for g in grads])
        # Algorithm 7.4: q = g; newest to oldest a_i = rho_i <s_i, q>, q -= a_i y_i;
        # r = gamma q; oldest to newest b_i = rho_i <y_i, r>, r += (a_i - b_i) s_i
        rhos = [(1.0 / dot(y, s) if dot(y, s) != 0 else 0.0) for s, y in self.pairs]
        q, alphas = [g.copy() for g in grads], []
        for (s, y), rho in reversed(list(zip(self.pairs, rhos, strict=True))):
            a = rho * dot(s, q)
            q = [x - a * v for x, v in zip(q, y, strict=True)]
            alphas.append(a)
        r = [gamma * x for x in q]
        for (s, y), rho, a in zip(self.pairs, rhos, reversed(alphas), strict=True):
            b = rho * dot(y, r)
            r = [x + (a - b) * v for x, v in zip(r, s, strict=True)]
        return r


class LBFGS(Ref):
    """``u = eta_t * (-lr_t) * H_t g_t``: the direction, the descent step (``-1`` without a
    learning rate), then the line search's ``eta_t`` (1 without one)."""

    needs_objective = True

    def __init__(self, learning_rate, memory_size, scale_init_precond, linesearch):
        self.direction = LBFGSDirection(memory_size, scale_init_precond)
        self.lr, self.linesearch = learning_rate, linesearch

    def init(self, params):
        self.direction.init(params)
        if self.linesearch is not None:
            self.linesearch.init(params)

    def step(self, grads, params, t, value=None, objective=None):
        factor = -1.0 if self.lr is None else -at(self.lr, t)
        u = [factor * d for d in self.direction.step(grads, params, t)]
        if self.linesearch is None:
            return u
        return self.linesearch.step(u, params, t, value=value, objective=objective)


_DEFAULT = object()  # lbfgs's default line search: the zoom search, 20 steps, first guess 1


@reference("scale_by_lbfgs")
def scale_by_lbfgs(memory_size=10, scale_init_precond=True):
    return LBFGSDirection(memory_size, scale_init_precond)


@reference("lbfgs")
def lbfgs(learning_rate=None, memory_size=10, scale_init_precond=True, linesearch=_DEFAULT):
    if linesearch is _DEFAULT:
        linesearch = Zoom(20, None, 0.0, 2.0, 1e-4, 0.9, 1e-6, 1e-5, "one")
    return LBFGS(learning_rate, memory_size, scale_init_precond, linesearch)
