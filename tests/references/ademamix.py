"""References of ``gradtx/optimizers/ademamix.py``: AdEMAMix (Pagliardini et al. 2024,
Algorithm 1) and Simplified AdEMAMix (Morwani et al. 2025, as optax documents it)."""

from __future__ import annotations

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Ref, at, stored, zeros
from .core import learning_rate as descent


class AdEMAMix(Ref):
    """Algorithm 1 without the decay: ``m1 = β1 m1 + (1 - β1) g``,
    ``m2 = β3(t) m2 + (1 - β3(t)) g``, ``ν = β2 ν + (1 - β2) g^2``,
    direction ``(m1 / (1 - β1^t) + α(t) m2) / (sqrt(ν / (1 - β2^t) + eps_root) + eps)``
    (``eps_root`` is optax's addition).  ``β3`` and ``α`` may be schedulers.  ``mu_dtype``
    stores ``m1`` and ``m2``, ``nu_dtype`` stores ``ν`` in that dtype; the direction is computed
    from the stored values."""

    def __init__(self, b1, b2, b3, alpha, eps, eps_root, mu_dtype=None, nu_dtype=None):
        self.b1, self.b2, self.b3, self.alpha = b1, b2, b3, alpha
        self.eps, self.eps_root, self.mu_dtype, self.nu_dtype = eps, eps_root, mu_dtype, nu_dtype

    def init(self, params):
        self.m1, self.m2, self.nu = zeros(params), zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, b3, alpha = (at(h, t) for h in (self.b1, self.b2, self.b3, self.alpha))
        out = []
        for i, g in enumerate(grads):
            self.m1[i] = stored(b1 * self.m1[i] + (1 - b1) * g, self.mu_dtype)
            self.m2[i] = stored(b3 * self.m2[i] + (1 - b3) * g, self.mu_dtype)
            self.nu[i] = stored(b2 * self.nu[i] + (1 - b2) * g * g, self.nu_dtype)
            numerator = self.m1[i] / (1 - b1**t) + alpha * self.m2[i]
            denominator = np.sqrt(self.nu[i] / (1 - b2**t) + at(self.eps_root, t)) + at(self.eps, t)
            out.append(numerator / denominator)
        return out


@reference("scale_by_ademamix")
def scale_by_ademamix(
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    alpha=6.0,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nu_dtype=None,
):
    return AdEMAMix(b1, b2, b3, alpha, eps, eps_root, mu_dtype, nu_dtype)


@reference("ademamix")
def ademamix(
    learning_rate,
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    alpha=5.0,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=0.0,
    mask=None,
    *,
    nu_dtype=None,
):
    """``θ_t = θ_{t-1} - η (direction + λ θ_{t-1})``."""
    return Chain(
        AdEMAMix(b1, b2, b3, alpha, eps, eps_root, mu_dtype, nu_dtype),
        WeightDecay(weight_decay, mask),
        descent(learning_rate),
    )


class SimplifiedAdEMAMix(Ref):
    """``m_t = β1 m_{t-1} + g_t``, ``ν_t = β2 ν_{t-1} + (1 - β2) g_t^2``, direction
    ``(m_t + α g_t) / (sqrt(ν_t / (1 - β2^t) + eps_root) + eps)``."""

    def __init__(self, b1, b2, alpha, eps, eps_root):
        self.b1, self.b2, self.alpha, self.eps, self.eps_root = b1, b2, alpha, eps, eps_root

    def init(self, params):
        self.m, self.nu = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, alpha = at(self.b1, t), at(self.b2, t), at(self.alpha, t)
        out = []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + g
            self.nu[i] = b2 * self.nu[i] + (1 - b2) * g * g
            nu_hat = self.nu[i] / (1 - b2**t)
            out.append(
                (self.m[i] + alpha * g) / (np.sqrt(nu_hat + at(self.eps_root, t)) + at(self.eps, t))
            )
        return out


@reference("scale_by_simplified_ademamix")
def scale_by_simplified_ademamix(b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0):
    return SimplifiedAdEMAMix(b1, b2, alpha, eps, eps_root)


@reference("simplified_ademamix")
def simplified_ademamix(
    learning_rate,
    b1=0.99,
    b2=0.95,
    alpha=0.0,
    eps=1e-8,
    eps_root=0.0,
    weight_decay=0.0,
    mask=None,
):
    return Chain(
        SimplifiedAdEMAMix(b1, b2, alpha, eps, eps_root),
        WeightDecay(weight_decay, mask),
        descent(learning_rate),
    )
