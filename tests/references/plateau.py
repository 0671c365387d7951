"""Reference of gradtx/optimizers/plateau.py: optax.contrib's reduce-on-plateau rule, written
out from its documentation (average ``accumulation_size`` values, judge the average against the
best with ``rtol``/``atol``, shrink the scale after ``patience`` bad judgements, then cool down)."""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Ref


class Plateau(Ref):
    def __init__(self, factor, patience, rtol, atol, cooldown, accumulation_size, min_scale):
        self.factor, self.patience, self.rtol, self.atol = factor, patience, rtol, atol
        self.cooldown, self.size, self.min_scale = cooldown, accumulation_size, min_scale

    def init(self, params):
        self.scale, self.best, self.bad, self.cool = 1.0, np.inf, 0, 0
        self.values: list[float] = []

    def step(self, grads, params, t, value):
        self.values.append(float(value))
        if len(self.values) == self.size:
            avg, self.values = float(np.mean(self.values)), []
            improved = avg < (1 - self.rtol) * self.best - self.atol
            if improved:
                self.best = avg
            bad = 0 if improved else self.bad + 1
            if self.cool > 0:
                self.bad, self.cool = 0, self.cool - 1
            elif bad == self.patience:
                self.scale = max(self.scale * self.factor, self.min_scale)
                self.bad, self.cool = 0, self.cooldown
            else:
                self.scale = max(self.scale, self.min_scale)
                self.bad, self.cool = bad, 0
        return [self.scale * g for g in grads]


@reference("reduce_on_plateau")
def reduce_on_plateau(
    factor=0.1, patience=10, rtol=1e-4, atol=0.0, cooldown=0, accumulation_size=1, min_scale=0.0
):
    return Plateau(factor, patience, rtol, atol, cooldown, accumulation_size, min_scale)
