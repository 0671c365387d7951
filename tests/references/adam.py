"""References of ``gradtx/optimizers/adam.py``: Adam (Kingma & Ba 2015, Algorithm 1, with
``eps_root`` inside the root and Dozat's Nesterov look-ahead), AMSGrad (Reddi et al. 2018) and
the optimizers built on them."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Hyper, Ref, at, stored, zeros
from .core import learning_rate as descent


def nesterov_mean(m: np.ndarray, g: np.ndarray, b1: float, t: int) -> np.ndarray:
    """Dozat's look-ahead estimate of the debiased first moment:
    ``b1 m_t / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t)``."""
    return b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)


class Adam(Ref):
    """``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g^2``,
    ``u = m_hat / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)`` with ``m_hat = m_t / (1 - b1^t)``
    or Dozat's look-ahead.  ``mu_dtype`` / ``nu_dtype`` store the moments in that dtype: each new
    moment is computed in float64, rounded once, and the update is computed from it as stored."""

    def __init__(
        self,
        b1: Hyper = 0.9,
        b2: Hyper = 0.999,
        eps: Hyper = 1e-8,
        eps_root: Hyper = 0.0,
        nesterov: bool = False,
        mu_dtype: Any = None,
        nu_dtype: Any = None,
    ):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.nesterov, self.mu_dtype, self.nu_dtype = nesterov, mu_dtype, nu_dtype

    def init(self, params):
        self.m, self.v = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        eps, eps_root = at(self.eps, t), at(self.eps_root, t)
        for i, g in enumerate(grads):
            self.m[i] = stored(b1 * self.m[i] + (1 - b1) * g, self.mu_dtype)
            self.v[i] = stored(b2 * self.v[i] + (1 - b2) * g**2, self.nu_dtype)
            m_hat = nesterov_mean(self.m[i], g, b1, t) if self.nesterov else self.m[i] / (1 - b1**t)
            v_hat = self.v[i] / (1 - b2**t)
            out.append(m_hat / (np.sqrt(v_hat + eps_root) + eps))
        return out


class AMSGrad(Ref):
    """Adam's moments with a running maximum in the denominator.  Default: the maximum of the
    (optionally) debiased second moment, ``u = m_hat / (sqrt(v_max + eps_root) + eps)``.
    ``raw_max``: the maximum of the raw ``v_t``, debiased with the current step (torch)."""

    def __init__(
        self,
        b1: Hyper = 0.9,
        b2: Hyper = 0.999,
        eps: Hyper = 1e-8,
        eps_root: Hyper = 0.0,
        mu_dtype: Any = None,
        bias_correction_mu: bool = True,
        bias_correction_nu: bool = True,
        raw_max: bool = False,
    ):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.mu_dtype, self.bc_mu, self.bc_nu = mu_dtype, bias_correction_mu, bias_correction_nu
        self.raw_max = raw_max

    def init(self, params):
        self.m, self.v, self.vmax = zeros(params), zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        eps, eps_root = at(self.eps, t), at(self.eps_root, t)
        c1 = (1 - b1**t) if self.bc_mu else 1.0
        c2 = (1 - b2**t) if self.bc_nu else 1.0
        for i, g in enumerate(grads):
            self.m[i] = stored(b1 * self.m[i] + (1 - b1) * g, self.mu_dtype)
            self.v[i] = b2 * self.v[i] + (1 - b2) * g**2
            if self.raw_max:
                self.vmax[i] = np.maximum(self.vmax[i], self.v[i])
                denom = self.vmax[i] / c2
            else:
                self.vmax[i] = np.maximum(self.vmax[i], self.v[i] / c2)
                denom = self.vmax[i]
            out.append(self.m[i] / c1 / (np.sqrt(denom + eps_root) + eps))
        return out


@reference("scale_by_adam")
def scale_by_adam(
    b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *, nesterov=False, nu_dtype=None
) -> Ref:
    return Adam(b1, b2, eps, eps_root, nesterov, mu_dtype, nu_dtype)


@reference("scale_by_amsgrad")
def scale_by_amsgrad(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    bias_correction_mu=True,
    bias_correction_nu=True,
    raw_max=False,
) -> Ref:
    return AMSGrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu, raw_max)


@reference("adam")
def adam(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nesterov=False,
    nu_dtype=None,
) -> Ref:
    """``u = -lr m_hat / (sqrt(v_hat + eps_root) + eps)``."""
    return Chain(Adam(b1, b2, eps, eps_root, nesterov, mu_dtype, nu_dtype), descent(learning_rate))


@reference("adamw")
def adamw(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
    *,
    nesterov=False,
    nu_dtype=None,
) -> Ref:
    """Loshchilov & Hutter, decoupled decay: ``u = -lr (adam_direction + wd p)``."""
    return Chain(
        Adam(b1, b2, eps, eps_root, nesterov, mu_dtype, nu_dtype),
        WeightDecay(weight_decay, mask),
        descent(learning_rate),
    )


@reference("nadam")
def nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None) -> Ref:
    """Adam with Dozat's look-ahead first moment."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True)


@reference("nadamw")
def nadamw(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
) -> Ref:
    return adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=True)


@reference("amsgrad")
def amsgrad(
    learning_rate,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    bias_correction_mu=True,
    bias_correction_nu=True,
) -> Ref:
    """``u = -lr m_hat / (sqrt(max_{i<=t} v_hat_i + eps_root) + eps)``."""
    return Chain(
        AMSGrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu),
        descent(learning_rate),
    )
