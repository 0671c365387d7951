"""References of ``gradtx/optimizers/adan.py``: Adan (Xie et al. 2022, Algorithm 1), written in
the paper's convention ``β_i = 1 - b_i`` (the weight on the *new* value), with the bias
corrections of the official code."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Ref, at, zeros
from .core import learning_rate as descent


class Adan(Ref):
    """Algorithm 1, step ``k``: ``m_k = (1 - β1) m + β1 g_k``,
    ``v_k = (1 - β2) v + β2 (g_k - g_{k-1})``,
    ``n_k = (1 - β3) n + β3 (g_k + w (g_k - g_{k-1}))^2``,
    direction ``(m_k + w v_k) / (sqrt(n_k + eps_root) + eps)`` with the paper's weight
    ``w = 1 - β2`` (``paper_weights``) or optax's ``w = β2``.

    As in the official code (and optax), each average starts at 0 and is divided by
    ``1 - (1 - β)^k``, and the first difference is 0 (``g_0 = g_1``); the paper's
    Algorithm 1 instead starts from ``m_0 = g_0``, ``n_0 = g_0^2``."""

    def __init__(self, b1, b2, b3, eps, eps_root, paper_weights):
        self.b1, self.b2, self.b3, self.eps, self.eps_root = b1, b2, b3, eps, eps_root
        self.paper_weights = paper_weights

    def init(self, params):
        self.m, self.v, self.n, self.prev = zeros(params), zeros(params), zeros(params), None

    def step(self, grads, params, t):
        beta1, beta2, beta3 = (1 - at(b, t) for b in (self.b1, self.b2, self.b3))
        w = 1 - beta2 if self.paper_weights else beta2
        prev = self.prev if self.prev is not None else grads
        out = []
        for i, (g, g_prev) in enumerate(zip(grads, prev, strict=True)):
            diff = g - g_prev
            self.m[i] = (1 - beta1) * self.m[i] + beta1 * g
            self.v[i] = (1 - beta2) * self.v[i] + beta2 * diff
            self.n[i] = (1 - beta3) * self.n[i] + beta3 * (g + w * diff) ** 2
            m_hat = self.m[i] / (1 - (1 - beta1) ** t)
            v_hat = self.v[i] / (1 - (1 - beta2) ** t)
            n_hat = self.n[i] / (1 - (1 - beta3) ** t)
            denominator = np.sqrt(n_hat + at(self.eps_root, t)) + at(self.eps, t)
            out.append((m_hat + w * v_hat) / denominator)
        self.prev = [np.array(g) for g in grads]
        return out


@reference("scale_by_adan")
def scale_by_adan(b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0, *, paper_weights=False):
    return Adan(b1, b2, b3, eps, eps_root, paper_weights)


@reference("adan")
def adan(
    learning_rate,
    b1=0.98,
    b2=0.92,
    b3=0.99,
    eps=1e-8,
    eps_root=1e-8,
    weight_decay=0.0,
    mask=None,
    *,
    paper_weights=False,
):
    """Decoupled decay (the official code's ``no_prox``): ``u = -lr (direction + wd p)``."""
    return Chain(
        Adan(b1, b2, b3, eps, eps_root, paper_weights),
        WeightDecay(weight_decay, mask),
        descent(learning_rate),
    )
