"""References of ``gradtx/optimizers/madgrad.py``: MADGRAD (Defazio & Jelassi 2021,
Algorithm 1)."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Ref, at, zeros


class Madgrad(Ref):
    """Algorithm 1 at step ``k = t - 1``: ``λ_k = γ_k sqrt(k + 1)``, ``s_{k+1} = s_k + λ_k g_k``,
    ``ν_{k+1} = ν_k + λ_k g_k^2``, ``z_{k+1} = x_0 - s_{k+1} / (ν_{k+1}^(1/3) + ε)``,
    ``x_{k+1} = (1 - c) x_k + c z_{k+1}`` with ``c = 1 - momentum``.  The step size in ``λ_k``
    is ``γ_k + ε`` (the official code and optax; the paper's is ``γ_k``).  ``x_0`` is the params
    at ``init``; the returned update is ``x_{k+1} - x_k``."""

    def __init__(self, learning_rate, momentum, eps):
        self.lr, self.momentum, self.eps = learning_rate, momentum, eps

    def init(self, params):
        self.x0 = [np.array(p, np.float64) for p in params]
        self.s, self.nu = zeros(params), zeros(params)

    def step(self, grads, params, t):
        k, eps = t - 1, at(self.eps, t)
        lam = (at(self.lr, t) + eps) * np.sqrt(k + 1)
        c = 1 - at(self.momentum, t)
        out = []
        for i, (g, x) in enumerate(zip(grads, params, strict=True)):
            self.s[i] = self.s[i] + lam * g
            self.nu[i] = self.nu[i] + lam * g * g
            z = self.x0[i] - self.s[i] / (np.cbrt(self.nu[i]) + eps)
            out.append(((1 - c) * x + c * z) - x)
        return out


@reference("scale_by_madgrad")
def scale_by_madgrad(learning_rate, momentum=0.9, eps=1e-6):
    return Madgrad(learning_rate, momentum, eps)


@reference("madgrad")
def madgrad(learning_rate, momentum=0.9, weight_decay=0.0, eps=1e-6):
    """L2 weight decay (added to the gradient), the official code's default."""
    return Chain(WeightDecay(weight_decay), Madgrad(learning_rate, momentum, eps))
