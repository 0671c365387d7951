"""References of ``gradtx/optimizers/adopt.py``: ADOPT (Taniguchi et al. 2024, Algorithm 1 and
its clipped form) and ACProp (Zhuang et al. 2021, Algorithm 2)."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Ref, at, stored, zeros
from .core import learning_rate as descent


def _fourth_root(step):
    return step**0.25


class Adopt(Ref):
    """Step ``t = 1`` computes ``v_0 = g_0 ⊙ g_0`` and moves nothing.  From there (paper index
    ``k = t - 1``): ``ĝ = g_k / max(sqrt(v_{k-1}), ε)``, clipped element-wise to
    ``[-c_k, c_k]`` in the clipped form, ``m_k = β1 m_{k-1} + (1 - β1) ĝ``, the direction is
    ``m_k`` (optax's Nesterov variant: ``β1 m_k + (1 - β1) ĝ``), and
    ``v_k = β2 v_{k-1} + (1 - β2) g_k ⊙ g_k``."""

    def __init__(self, b1, b2, eps, mu_dtype, nesterov, use_clipping, clip_value_fn):
        self.b1, self.b2, self.eps, self.mu_dtype = b1, b2, eps, mu_dtype
        self.nesterov, self.clip, self.clip_value_fn = nesterov, use_clipping, clip_value_fn

    def init(self, params):
        self.m, self.v = zeros(params), zeros(params)

    def step(self, grads, params, t):
        if t == 1:
            self.v = [g * g for g in grads]
            return [np.zeros_like(g) for g in grads]
        k = t - 1
        b1, b2, eps, out = at(self.b1, t), at(self.b2, t), at(self.eps, t), []
        c = float(np.asarray(self.clip_value_fn(k))) if self.clip else np.inf
        for i, g in enumerate(grads):
            g_hat = np.clip(g / np.maximum(np.sqrt(self.v[i]), eps), -c, c)
            self.m[i] = stored(b1 * self.m[i] + (1 - b1) * g_hat, self.mu_dtype)
            out.append(b1 * self.m[i] + (1 - b1) * g_hat if self.nesterov else self.m[i].copy())
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
        return out


@reference("scale_by_adopt")
def scale_by_adopt(
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype=None,
    *,
    nesterov=False,
    use_clipping=True,
    clip_value_fn=_fourth_root,
):
    return Adopt(b1, b2, eps, mu_dtype, nesterov, use_clipping, clip_value_fn)


@reference("adopt")
def adopt(
    learning_rate,
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype=None,
    *,
    nesterov=False,
    use_clipping=True,
    clip_value_fn=_fourth_root,
):
    return Chain(
        Adopt(b1, b2, eps, mu_dtype, nesterov, use_clipping, clip_value_fn),
        descent(learning_rate),
    )


class ACProp(Ref):
    """Algorithm 2: ``m_t = β1 m_{t-1} + (1 - β1) g_t``, the direction
    ``g_t / (sqrt(s_{t-1} / (1 - β2^(t-1))) + ε)`` (``g_1`` itself at ``t = 1``, where there is
    no ``s_0`` to divide by), then ``s_t = β2 s_{t-1} + (1 - β2) (g_t - m_t)^2 + ε_root``.
    ``paper_centering=False`` centers on ``m_{t-1}`` instead, as optax does; the direction's
    ``ε`` at ``t = 1`` is optax's ``g / (1 + ε)``."""

    def __init__(self, b1, b2, eps, eps_root, paper_centering):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.paper_centering = paper_centering

    def init(self, params):
        self.m, self.s = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, eps, out = at(self.b1, t), at(self.b2, t), at(self.eps, t), []
        for i, g in enumerate(grads):
            s_hat = self.s[i] / (1 - b2 ** (t - 1)) if t > 1 else np.ones_like(g)
            out.append(g / (np.sqrt(s_hat) + eps))
            m_prev = self.m[i]
            self.m[i] = b1 * m_prev + (1 - b1) * g
            center = self.m[i] if self.paper_centering else m_prev
            self.s[i] = b2 * self.s[i] + (1 - b2) * (g - center) ** 2 + at(self.eps_root, t)
        return out


@reference("scale_by_acprop")
def scale_by_acprop(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, paper_centering=False):
    return ACProp(b1, b2, eps, eps_root, paper_centering)


@reference("acprop")
def acprop(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-16,
    eps_root=1e-16,
    weight_decay=0.0,
    mask=None,
    *,
    paper_centering=False,
):
    """Decoupled weight decay after the scaling: ``u = -lr (direction + wd p)``."""
    return Chain(
        ACProp(b1, b2, eps, eps_root, paper_centering),
        WeightDecay(weight_decay, mask),
        descent(learning_rate),
    )
