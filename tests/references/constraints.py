"""References of ``gradtx/optimizers/constraints.py``: the non-negativity projection of the next
parameters, gradient centralisation (Yong et al. 2020) and the normalised (fixed-length) step."""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Hyper, Ref, at


class KeepNonNegative(Ref):
    """``u = -p`` where ``p + g`` would be negative (the next parameter lands on 0), else ``g``."""

    def step(self, grads, params, t):
        return [np.where(p + g < 0, -p, g) for g, p in zip(grads, params, strict=True)]


class Centralize(Ref):
    """For a tensor of rank >= 2, each slice ``g[i]`` along the first axis minus its own mean
    (written as a loop over the slices); lower ranks unchanged."""

    def step(self, grads, params, t):
        out = []
        for g in grads:
            g = np.array(g, np.float64)
            if g.ndim >= 2:
                for i in range(g.shape[0]):
                    g[i] = g[i] - g[i].sum() / g[i].size
            out.append(g)
        return out


class NormalizeByNorm(Ref):
    """``u = scale_factor * g / (sqrt(sum of g^2 over every leaf) + eps)``."""

    def __init__(self, scale_factor: Hyper, eps: Hyper):
        self.scale_factor, self.eps = scale_factor, eps

    def step(self, grads, params, t):
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        c = at(self.scale_factor, t) / (norm + at(self.eps, t))
        return [c * g for g in grads]


@reference("keep_params_nonnegative")
def keep_params_nonnegative():
    return KeepNonNegative()


@reference("centralize")
def centralize():
    return Centralize()


@reference("normalize_by_update_norm")
def normalize_by_update_norm(scale_factor=1.0, eps=1e-6):
    return NormalizeByNorm(scale_factor, eps)
