"""References of ``gradtx/optimizers/adam_variants.py``: AdaMax, RAdam, torch's NAdam (with
Dozat's momentum schedule), AdaBelief and Yogi, as blocks and as optimizers."""

from __future__ import annotations

import numpy as np

from . import reference
from .adam import nesterov_mean
from .blocks import WeightDecay
from .core import Chain, Hyper, Ref, at, filled, zeros
from .core import learning_rate as descent


class AdaMax(Ref):
    """Kingma & Ba, Algorithm 2, with ``eps`` added to ``|g|`` inside the max (as torch does):
    ``m_t = b1 m + (1 - b1) g``, ``n_t = max(b2 n, |g| + eps)``, ``u = m_t / ((1 - b1^t) n_t)``."""

    def __init__(self, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8):
        self.b1, self.b2, self.eps = b1, b2, eps

    def init(self, params):
        self.m, self.n = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, eps, out = at(self.b1, t), at(self.b2, t), at(self.eps, t), []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.n[i] = np.maximum(b2 * self.n[i], np.abs(g) + eps)
            out.append(self.m[i] / (1 - b1**t) / self.n[i])
        return out


class RAdam(Ref):
    """Liu et al. 2020, Algorithm 2: ``rho_inf = 2 / (1 - b2) - 1``,
    ``rho_t = rho_inf - 2 t b2^t / (1 - b2^t)``; once ``rho_t >= threshold`` the step is
    ``r_t m_hat / (sqrt(v_hat + eps_root) + eps)`` with the rectification
    ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``, before
    that plain debiased momentum ``m_hat``.  ``eps_before_bias_correction``: torch's adaptive
    term ``sqrt(1 - b2^t) / (sqrt(v_t) + eps)``."""

    def __init__(
        self,
        b1: Hyper = 0.9,
        b2: float = 0.999,
        eps: Hyper = 1e-8,
        eps_root: Hyper = 0.0,
        threshold: float = 5.0,
        nesterov: bool = False,
        eps_before_bias_correction: bool = False,
    ):
        self.b1, self.b2, self.eps, self.eps_root, self.threshold = b1, b2, eps, eps_root, threshold
        self.nesterov, self.eps_early = nesterov, eps_before_bias_correction

    def init(self, params):
        self.m, self.v = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, eps, eps_root, out = (
            at(self.b1, t),
            self.b2,
            at(self.eps, t),
            at(self.eps_root, t),
            [],
        )
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g**2
            m_hat = nesterov_mean(self.m[i], g, b1, t) if self.nesterov else self.m[i] / (1 - b1**t)
            if rho_t < self.threshold:
                out.append(m_hat)
                continue
            r_t = np.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            if self.eps_early:
                adaptive = np.sqrt(1 - b2**t) / (np.sqrt(self.v[i]) + eps)
            else:
                adaptive = 1 / (np.sqrt(self.v[i] / (1 - b2**t) + eps_root) + eps)
            out.append(r_t * m_hat * adaptive)
        return out


class NAdamTorch(Ref):
    """Dozat's NAdam with the momentum schedule ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``
    (torch.optim.NAdam's documented algorithm, without weight decay):
    ``P_t = prod_{i<=t} mu_i``, ``d = sqrt(v_t / (1 - b2^t)) + eps``,
    ``u = (1 - mu_t) / (1 - P_t) g / d + mu_{t+1} / (1 - P_t mu_{t+1}) m_t / d``."""

    def __init__(self, b1: Hyper = 0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3):
        self.b1, self.b2, self.eps, self.psi = b1, b2, eps, momentum_decay

    def init(self, params):
        self.m, self.v, self.prod = zeros(params), zeros(params), 1.0

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), self.b2, []
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * self.psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * self.psi))
        self.prod *= mu_t
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g**2
            denom = np.sqrt(self.v[i] / (1 - b2**t)) + self.eps
            out.append(
                (1 - mu_t) / (1 - self.prod) * g / denom
                + mu_next / (1 - self.prod * mu_next) * self.m[i] / denom
            )
        return out


class AdaBelief(Ref):
    """Zhuang et al. 2020, Algorithm 2: ``s_t = b2 s + (1 - b2) (g - m_t)^2 + eps_root``,
    ``u = m_hat / (sqrt(s_t / (1 - b2^t)) + eps)``."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False):
        self.b1, self.b2, self.eps, self.eps_root, self.nesterov = b1, b2, eps, eps_root, nesterov

    def init(self, params):
        self.m, self.s = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        eps, eps_root = at(self.eps, t), at(self.eps_root, t)
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.s[i] = b2 * self.s[i] + (1 - b2) * (g - self.m[i]) ** 2 + eps_root
            m_hat = nesterov_mean(self.m[i], g, b1, t) if self.nesterov else self.m[i] / (1 - b1**t)
            out.append(m_hat / (np.sqrt(self.s[i] / (1 - b2**t)) + eps))
        return out


class Yogi(Ref):
    """Zaheer et al. 2018: additive second-moment update ``v - (1 - b2) sign(v - g^2) g^2``;
    both moments start at ``initial``; ``u = m_hat / (sqrt(v_hat + eps_root) + eps)``."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial=1e-6):
        self.b1, self.b2, self.eps, self.eps_root, self.initial = b1, b2, eps, eps_root, initial

    def init(self, params):
        self.m, self.v = filled(params, self.initial), filled(params, self.initial)

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        eps, eps_root = at(self.eps, t), at(self.eps_root, t)
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = self.v[i] - (1 - b2) * np.sign(self.v[i] - g**2) * g**2
            v_hat = self.v[i] / (1 - b2**t)
            out.append(self.m[i] / (1 - b1**t) / (np.sqrt(v_hat + eps_root) + eps))
        return out


@reference("scale_by_adamax")
def scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8) -> Ref:
    return AdaMax(b1, b2, eps)


@reference("scale_by_radam")
def scale_by_radam(
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    threshold=5.0,
    *,
    nesterov=False,
    eps_before_bias_correction=False,
) -> Ref:
    return RAdam(b1, b2, eps, eps_root, threshold, nesterov, eps_before_bias_correction)


@reference("scale_by_nadam")
def scale_by_nadam(b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3) -> Ref:
    return NAdamTorch(b1, b2, eps, momentum_decay)


@reference("scale_by_belief")
def scale_by_belief(b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov=False) -> Ref:
    return AdaBelief(b1, b2, eps, eps_root, nesterov)


@reference("scale_by_yogi")
def scale_by_yogi(b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6) -> Ref:
    return Yogi(b1, b2, eps, eps_root, initial_accumulator_value)


@reference("adamax")
def adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8) -> Ref:
    return Chain(AdaMax(b1, b2, eps), descent(learning_rate))


@reference("adamaxw")
def adamaxw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None) -> Ref:
    """AdaMax with decoupled weight decay: ``u = -lr (adamax_direction + wd p)``."""
    return Chain(AdaMax(b1, b2, eps), WeightDecay(weight_decay, mask), descent(learning_rate))


@reference("radam")
def radam(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *, nesterov=False
) -> Ref:
    return Chain(RAdam(b1, b2, eps, eps_root, threshold, nesterov), descent(learning_rate))


@reference("adabelief")
def adabelief(learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *, nesterov=False) -> Ref:
    return Chain(AdaBelief(b1, b2, eps, eps_root, nesterov), descent(learning_rate))


@reference("yogi")
def yogi(learning_rate, b1=0.9, b2=0.999, eps=1e-3) -> Ref:
    """Yogi with the block's default ``initial_accumulator_value`` (1e-6) and no eps_root."""
    return Chain(Yogi(b1, b2, eps), descent(learning_rate))
