"""References of ``gradtx/optimizers/sam.py``: Sharpness-Aware Minimization (Foret et al. 2021,
Algorithm 1) with its ascent and descent steps delegated to two optimizers, and the gradient
normalisation of its ascent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import reference
from .core import Arrays, Ref


class Normalize(Ref):
    """``u = g / ||g||``, the norm taken over all the leaves together."""

    def step(self, grads, params, t):
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        return [g / norm for g in grads]


class SAM(Ref):
    """The paper's loop, one gradient per call: with ``w`` the parameters at the start of a cycle
    of ``k`` gradients, the first ``k - 1`` climb (``w_{i+1} = w_i - adv(g_i)``; for the paper's
    ``adv(g) = -rho g / ||g||`` that is ``w + rho g / ||g||``), and the ``k``-th, taken at the
    climbed point, is handed to the outer optimizer at ``w``, which the parameters return to.

    Each inner optimizer counts its own steps (its schedules see them): the outer one steps once
    per cycle, the adversary once per climb, restarting from scratch after each cycle when
    ``reset``.  ``opaque``: each call runs a whole cycle, asking ``grad_fn(w_i, i)`` for the
    gradients at the climbed points, and returns the outer step alone.
    """

    def __init__(self, outer: Ref, adversary: Ref, k: int, reset: bool, opaque: bool):
        self.outer, self.adversary, self.k = outer, adversary, k
        self.reset, self.opaque = reset, opaque

    def init(self, params):
        self.outer.init(params)
        self.adversary.init(params)
        self.outer_steps = self.climbs = 0
        self.start: Arrays = []

    def _climb(self, grads: Arrays, params: Arrays) -> Arrays:
        self.climbs += 1
        return [-d for d in self.adversary.step(grads, params, self.climbs)]

    def _restart_adversary(self, params: Arrays) -> None:
        if self.reset:
            self.adversary.init(params)
            self.climbs = 0

    def _descend(self, grads: Arrays, at: Arrays) -> Arrays:
        self.outer_steps += 1
        return self.outer.step(grads, at, self.outer_steps)

    def step(self, grads, params, t, grad_fn: Callable | None = None):
        if self.opaque:
            return self._cycle(grads, params, grad_fn)
        position = (t - 1) % self.k
        if position == 0:
            self.start = [np.array(p) for p in params]
        if position < self.k - 1:
            return self._climb(grads, params)
        step = self._descend(grads, self.start)
        self._restart_adversary(params)
        return [w - p + d for w, p, d in zip(self.start, params, step, strict=True)]

    def _cycle(self, grads, params, grad_fn):
        climbed = [np.array(p) for p in params]
        for i in range(self.k - 1):
            climbed = [w + d for w, d in zip(climbed, self._climb(grads, climbed), strict=True)]
            grads = [np.asarray(g, np.float64) for g in grad_fn(climbed, i)]
        self._restart_adversary(params)
        return self._descend(grads, params)


@reference("normalize")
def normalize() -> Ref:
    return Normalize()


@reference("sam")
def sam(
    optimizer,
    adv_optimizer,
    sync_period=2,
    reset_state=True,
    opaque_mode=False,
    batch_axis_name=None,
) -> Ref:
    del batch_axis_name  # one device: averaging over a mapped axis changes nothing
    return SAM(optimizer, adv_optimizer, sync_period, reset_state, opaque_mode)
