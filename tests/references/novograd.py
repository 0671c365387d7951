"""References of ``gradtx/optimizers/novograd.py``: NovoGrad (Ginsburg et al. 2019, Algorithm 1),
layer-wise second moments, one per parameter leaf."""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Chain, Ref, at, stored, zeros
from .core import learning_rate as descent


class NovoGrad(Ref):
    """Per layer ``l``: at ``t = 1``, ``v_1 = ‖g_1‖²`` and ``m_1 = g_1 / sqrt(v_1) + d w_1``;
    then ``v_t = β2 v_{t-1} + (1 - β2) ‖g_t‖²`` and
    ``m_t = β1 m_{t-1} + (g_t / sqrt(v_t) + d w_t)``; the step is ``-λ_t m_t`` (applied by the
    learning-rate reference).  ``sqrt(v)`` carries optax's two stabilisers,
    ``sqrt(v + eps_root) + eps`` (the paper's ``ε`` is inside the root).  ``mu_dtype`` stores
    ``m`` in that dtype; the direction is ``m`` as stored."""

    def __init__(self, b1, b2, eps, eps_root, weight_decay, mu_dtype=None):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.wd, self.mu_dtype = weight_decay, mu_dtype

    def init(self, params):
        self.m, self.v = zeros(params), [0.0] * len(params)

    def step(self, grads, params, t):
        b1, b2, wd = at(self.b1, t), at(self.b2, t), at(self.wd, t)
        out = []
        for i, (g, w) in enumerate(zip(grads, params, strict=True)):
            norm_sq = float(np.sum(g * g))
            self.v[i] = norm_sq if t == 1 else b2 * self.v[i] + (1 - b2) * norm_sq
            normalized = g / (np.sqrt(self.v[i] + at(self.eps_root, t)) + at(self.eps, t))
            new = normalized + wd * w if t == 1 else b1 * self.m[i] + normalized + wd * w
            self.m[i] = stored(new, self.mu_dtype)
            out.append(self.m[i].copy())
        return out


@reference("scale_by_novograd")
def scale_by_novograd(b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0, mu_dtype=None):
    return NovoGrad(b1, b2, eps, eps_root, weight_decay, mu_dtype)


@reference("novograd")
def novograd(learning_rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0):
    return Chain(NovoGrad(b1, b2, eps, eps_root, weight_decay), descent(learning_rate))
