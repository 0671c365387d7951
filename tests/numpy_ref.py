"""Independent NumPy references for gradtx's blocks and optimizers.

Each rule is transcribed from its paper (or from torch's documented algorithm where gradtx offers
torch's variant) and works on a *list* of float64 arrays, one per parameter leaf; the tests flatten
their trees with ``jax.tree.leaves`` before calling in.  Nothing here imports gradtx or optax.

A reference is a small stateful object: ``init(params)`` sets up its buffers and
``step(grads, params, t)`` returns the update for step ``t`` (``t = 1`` on the first call).
Hyperparameters may be numbers or schedules ``step -> value``, called with ``t - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Arrays = list[np.ndarray]
Hyper = float | Callable[[int], Any]


def at(h: Hyper, t: int) -> float:
    """The value of hyperparameter ``h`` at step ``t`` (schedules see ``t - 1``)."""
    return float(np.asarray(h(t - 1) if callable(h) else h, dtype=np.float64))


def zeros(params: Sequence[np.ndarray]) -> Arrays:
    return [np.zeros(np.shape(p), np.float64) for p in params]


def filled(params: Sequence[np.ndarray], value: float) -> Arrays:
    return [np.full(np.shape(p), value, np.float64) for p in params]


def _moment(params: Sequence[np.ndarray], dtype: Any) -> Arrays:
    return [np.zeros(np.shape(p), dtype or np.float64) for p in params]


class Ref:
    """Base class: stateless unless ``init`` is overridden."""

    def init(self, params: Sequence[np.ndarray]) -> None:
        del params

    def step(self, grads: Arrays, params: Arrays, t: int) -> Arrays:
        raise NotImplementedError


class Chain(Ref):
    """Applies member references in order, all at the same step ``t``."""

    def __init__(self, *members: Ref):
        self.members = members

    def init(self, params):
        for m in self.members:
            m.init(params)

    def step(self, grads, params, t):
        for m in self.members:
            grads = m.step(grads, params, t)
        return grads


class Identity(Ref):
    def step(self, grads, params, t):
        return [np.array(g) for g in grads]


class Scale(Ref):
    """``u = c * g`` (``c`` a number or schedule)."""

    def __init__(self, factor: Hyper):
        self.factor = factor

    def step(self, grads, params, t):
        return [at(self.factor, t) * g for g in grads]


def learning_rate(lr: Hyper | None, flip_sign: bool = True) -> Ref:
    """Gradient descent's ``-lr * g`` (``+lr * g`` without the sign flip)."""
    if lr is None:
        return Identity()
    sign = -1.0 if flip_sign else 1.0
    return Scale(lambda c: sign * at(lr, c + 1))


class Sign(Ref):
    def step(self, grads, params, t):
        return [np.sign(g) for g in grads]


class Momentum(Ref):
    """Heavy ball (Polyak), torch's buffer convention: ``b_1 = g``;
    ``b_t = mu * b_{t-1} + (1 - dampening) * g``; output ``b_t`` or, Nesterov, ``g + mu * b_t``."""

    def __init__(self, mu: Hyper, nesterov: bool = False, dampening: float = 0.0):
        self.mu, self.nesterov, self.dampening = mu, nesterov, dampening

    def init(self, params):
        self.buf = zeros(params)

    def step(self, grads, params, t):
        mu, out = at(self.mu, t), []
        for i, g in enumerate(grads):
            self.buf[i] = g.copy() if t == 1 else mu * self.buf[i] + (1 - self.dampening) * g
            out.append(g + mu * self.buf[i] if self.nesterov else self.buf[i].copy())
        return out


class MovingAverage(Ref):
    """``m_t = d m_{t-1} + (1 - d) g`` from ``m_0 = 0``; output ``m_t`` or ``m_t / (1 - d^t)``."""

    def __init__(self, decay: Hyper, debias: bool = True):
        self.decay, self.debias = decay, debias

    def init(self, params):
        self.m = zeros(params)

    def step(self, grads, params, t):
        d = at(self.decay, t)
        self.m = [d * m + (1 - d) * g for m, g in zip(self.m, grads, strict=True)]
        return [m / (1 - d**t) if self.debias else m.copy() for m in self.m]


class Debias(Ref):
    """``u = g / (1 - d^t)``."""

    def __init__(self, decay: Hyper):
        self.decay = decay

    def step(self, grads, params, t):
        return [g / (1 - at(self.decay, t) ** t) for g in grads]


class RMSProp(Ref):
    """Tieleman & Hinton's RMSProp, optionally centered (Graves 2013) and bias corrected."""

    def __init__(
        self,
        decay: float = 0.9,
        eps: float = 1e-8,
        initial_scale: float = 0.0,
        eps_in_sqrt: bool = True,
        bias_correction: bool = False,
        centered: bool = False,
    ):
        self.decay, self.eps, self.initial_scale = decay, eps, initial_scale
        self.eps_in_sqrt, self.bias_correction, self.centered = (
            eps_in_sqrt,
            bias_correction,
            centered,
        )

    def init(self, params):
        self.sq = filled(params, self.initial_scale)
        self.mean = zeros(params)

    def step(self, grads, params, t):
        d, eps = self.decay, self.eps
        corr = (1 - d**t) if self.bias_correction else 1.0
        out = []
        for i, g in enumerate(grads):
            self.sq[i] = d * self.sq[i] + (1 - d) * g**2
            self.mean[i] = d * self.mean[i] + (1 - d) * g
            var = self.sq[i] / corr
            if self.centered:
                var = var - (self.mean[i] / corr) ** 2
            denom = np.sqrt(var + eps) if self.eps_in_sqrt else np.sqrt(var) + eps
            out.append(g / denom)
        return out


class Adagrad(Ref):
    """Duchi et al.: ``s_t = s_{t-1} + g^2``; ``g / sqrt(s_t + eps)``, or
    ``g / (sqrt(s_t) + eps)`` with the eps outside the root."""

    def __init__(self, initial: float = 0.1, eps: float = 1e-7, eps_in_sqrt: bool = True):
        self.initial, self.eps, self.eps_in_sqrt = initial, eps, eps_in_sqrt

    def init(self, params):
        self.s = filled(params, self.initial)

    def step(self, grads, params, t):
        self.s = [s + g**2 for s, g in zip(self.s, grads, strict=True)]
        if self.eps_in_sqrt:
            return [g / np.sqrt(s + self.eps) for s, g in zip(self.s, grads, strict=True)]
        return [g / (np.sqrt(s) + self.eps) for s, g in zip(self.s, grads, strict=True)]


def nesterov_mean(m: np.ndarray, g: np.ndarray, b1: float, t: int) -> np.ndarray:
    """Dozat's look-ahead estimate of the debiased first moment."""
    return b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)


class Adam(Ref):
    """Kingma & Ba, Algorithm 1 (with ``eps_root`` inside the root and Dozat's Nesterov option).

    ``mu_dtype`` stores the first moment in that dtype: the new moment is computed in float64,
    rounded once to ``mu_dtype``, and the step's update is computed from it as stored.
    """

    def __init__(
        self,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        eps_root: float = 0.0,
        nesterov: bool = False,
        mu_dtype: Any = None,
    ):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.nesterov, self.mu_dtype = nesterov, mu_dtype

    def init(self, params):
        self.m, self.v = _moment(params, self.mu_dtype), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = at(self.b1, t), at(self.b2, t), []
        for i, g in enumerate(grads):
            m = b1 * self.m[i].astype(np.float64) + (1 - b1) * g
            if self.mu_dtype is not None:
                m = m.astype(self.mu_dtype).astype(np.float64)
            self.v[i] = b2 * self.v[i] + (1 - b2) * g**2
            m_hat = nesterov_mean(m, g, b1, t) if self.nesterov else m / (1 - b1**t)
            v_hat = self.v[i] / (1 - b2**t)
            out.append(m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps))
            self.m[i] = m
        return out


class AMSGrad(Ref):
    """Reddi et al.'s AMSGrad.  Default: running max of the debiased second moment.
    ``raw_max``: running max of the raw moment, debiased with the current step (torch)."""

    def __init__(
        self,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        eps_root: float = 0.0,
        bias_correction_mu: bool = True,
        bias_correction_nu: bool = True,
        raw_max: bool = False,
    ):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.bc_mu, self.bc_nu, self.raw_max = bias_correction_mu, bias_correction_nu, raw_max

    def init(self, params):
        self.m, self.v, self.vmax = zeros(params), zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = self.b1, self.b2, []
        c1 = (1 - b1**t) if self.bc_mu else 1.0
        c2 = (1 - b2**t) if self.bc_nu else 1.0
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g**2
            if self.raw_max:
                self.vmax[i] = np.maximum(self.vmax[i], self.v[i])
                denom = self.vmax[i] / c2
            else:
                self.vmax[i] = np.maximum(self.vmax[i], self.v[i] / c2)
                denom = self.vmax[i]
            out.append(self.m[i] / c1 / (np.sqrt(denom + self.eps_root) + self.eps))
        return out


class AdaMax(Ref):
    """Kingma & Ba, Algorithm 2, with ``eps`` added to ``|g|`` inside the max (as torch does)."""

    def __init__(self, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.b1, self.b2, self.eps = b1, b2, eps

    def init(self, params):
        self.m, self.n = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = self.b1, self.b2, []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.n[i] = np.maximum(b2 * self.n[i], np.abs(g) + self.eps)
            out.append(self.m[i] / (1 - b1**t) / self.n[i])
        return out


class AdaDelta(Ref):
    """Zeiler 2012, Algorithm 1 (the learning rate is applied by a later member)."""

    def __init__(self, rho: float = 0.9, eps: float = 1e-6):
        self.rho, self.eps = rho, eps

    def init(self, params):
        self.acc_g, self.acc_x = zeros(params), zeros(params)

    def step(self, grads, params, t):
        r, e, out = self.rho, self.eps, []
        for i, g in enumerate(grads):
            self.acc_g[i] = r * self.acc_g[i] + (1 - r) * g**2
            dx = np.sqrt(self.acc_x[i] + e) / np.sqrt(self.acc_g[i] + e) * g
            self.acc_x[i] = r * self.acc_x[i] + (1 - r) * dx**2
            out.append(dx)
        return out


class RAdam(Ref):
    """Liu et al. 2020, Algorithm 2: the variance rectification term ``r_t`` switches on once the
    approximated SMA length ``rho_t`` reaches ``threshold``; before that, plain debiased momentum.
    ``eps_before_bias_correction``: torch's adaptive term ``sqrt(1 - b2^t) / (sqrt(v_t) + eps)``."""

    def __init__(
        self,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        eps_root: float = 0.0,
        threshold: float = 5.0,
        nesterov: bool = False,
        eps_before_bias_correction: bool = False,
    ):
        self.b1, self.b2, self.eps, self.eps_root, self.threshold = b1, b2, eps, eps_root, threshold
        self.nesterov, self.eps_early = nesterov, eps_before_bias_correction

    def init(self, params):
        self.m, self.v = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = self.b1, self.b2, []
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
                adaptive = np.sqrt(1 - b2**t) / (np.sqrt(self.v[i]) + self.eps)
            else:
                adaptive = 1 / (np.sqrt(self.v[i] / (1 - b2**t) + self.eps_root) + self.eps)
            out.append(r_t * m_hat * adaptive)
        return out


class NAdamTorch(Ref):
    """Dozat's NAdam with the momentum schedule ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``
    (torch.optim.NAdam's documented algorithm, without weight decay)."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3):
        self.b1, self.b2, self.eps, self.psi = b1, b2, eps, momentum_decay

    def init(self, params):
        self.m, self.v, self.prod = zeros(params), zeros(params), 1.0

    def mu(self, t: int) -> float:
        return self.b1 * (1 - 0.5 * 0.96 ** (t * self.psi))

    def step(self, grads, params, t):
        b1, b2, out = self.b1, self.b2, []
        mu_t, mu_next = self.mu(t), self.mu(t + 1)
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
    """Zhuang et al. 2020, Algorithm 2: ``s`` tracks ``(g - m_t)^2`` plus ``eps_root``."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False):
        self.b1, self.b2, self.eps, self.eps_root, self.nesterov = b1, b2, eps, eps_root, nesterov

    def init(self, params):
        self.m, self.s = zeros(params), zeros(params)

    def step(self, grads, params, t):
        b1, b2, out = self.b1, self.b2, []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.s[i] = b2 * self.s[i] + (1 - b2) * (g - self.m[i]) ** 2 + self.eps_root
            m_hat = nesterov_mean(self.m[i], g, b1, t) if self.nesterov else self.m[i] / (1 - b1**t)
            out.append(m_hat / (np.sqrt(self.s[i] / (1 - b2**t)) + self.eps))
        return out


class Yogi(Ref):
    """Zaheer et al. 2018: additive second-moment update ``v - (1 - b2) sign(v - g^2) g^2``;
    both moments start at ``initial``."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial=1e-6):
        self.b1, self.b2, self.eps, self.eps_root, self.initial = b1, b2, eps, eps_root, initial

    def init(self, params):
        self.m, self.v = filled(params, self.initial), filled(params, self.initial)

    def step(self, grads, params, t):
        b1, b2, out = self.b1, self.b2, []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = self.v[i] - (1 - b2) * np.sign(self.v[i] - g**2) * g**2
            v_hat = self.v[i] / (1 - b2**t)
            out.append(self.m[i] / (1 - b1**t) / (np.sqrt(v_hat + self.eps_root) + self.eps))
        return out


class Lion(Ref):
    """Chen et al. 2023, Program 1, without the learning rate and the weight decay (applied by
    later members)."""

    def __init__(self, b1=0.9, b2=0.99, mu_dtype: Any = None):
        self.b1, self.b2, self.mu_dtype = b1, b2, mu_dtype

    def init(self, params):
        self.m = _moment(params, self.mu_dtype)

    def step(self, grads, params, t):
        out = []
        for i, g in enumerate(grads):
            m_old = self.m[i].astype(np.float64)
            out.append(np.sign(self.b1 * m_old + (1 - self.b1) * g))
            m = self.b2 * m_old + (1 - self.b2) * g
            self.m[i] = m if self.mu_dtype is None else m.astype(self.mu_dtype)
        return out


class WeightDecay(Ref):
    """``u = g + wd * p`` on the leaves where ``mask`` (one bool per leaf) is True."""

    def __init__(self, wd: Hyper, mask: Sequence[bool] | None = None):
        self.wd, self.mask = wd, mask

    def step(self, grads, params, t):
        wd = at(self.wd, t)
        keep = self.mask if self.mask is not None else [True] * len(grads)
        triples = zip(grads, params, keep, strict=True)
        return [g + wd * p if k else np.array(g) for g, p, k in triples]


class ClipValue(Ref):
    def __init__(self, limit: float):
        self.limit = limit

    def step(self, grads, params, t):
        return [np.minimum(np.maximum(g, -self.limit), self.limit) for g in grads]


class ClipGlobalNorm(Ref):
    """Rescales the whole tree to norm ``max_norm`` when its norm exceeds it; records the
    pre-clip norm in ``self.norm``."""

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def step(self, grads, params, t):
        self.norm = float(np.sqrt(sum(np.sum(g**2) for g in grads)))
        factor = 1.0 if self.norm < self.max_norm else self.max_norm / self.norm
        return [g * factor for g in grads]


# --- the classic optimizers, composed from the rules above ---------------------------------------


def sgd(lr, momentum=None, nesterov=False) -> Ref:
    inner = Identity() if momentum is None else Momentum(momentum, nesterov)
    return Chain(inner, learning_rate(lr))


def adagrad(lr, initial_accumulator_value=0.1, eps=1e-7) -> Ref:
    return Chain(Adagrad(initial_accumulator_value, eps), learning_rate(lr))


def rmsprop(
    lr,
    decay=0.9,
    eps=1e-8,
    initial_scale=0.0,
    eps_in_sqrt=True,
    centered=False,
    momentum=None,
    nesterov=False,
    bias_correction=False,
) -> Ref:
    tail = Identity() if momentum is None else Momentum(momentum, nesterov)
    return Chain(
        RMSProp(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered),
        learning_rate(lr),
        tail,
    )


def adadelta(lr=None, rho=0.9, eps=1e-6, weight_decay=0.0, mask=None) -> Ref:
    return Chain(WeightDecay(weight_decay, mask), AdaDelta(rho, eps), learning_rate(lr))


def adam(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, nesterov=False) -> Ref:
    return Chain(Adam(b1, b2, eps, eps_root, nesterov, mu_dtype), learning_rate(lr))


def adamw(
    lr,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
    nesterov=False,
) -> Ref:
    return Chain(
        Adam(b1, b2, eps, eps_root, nesterov, mu_dtype),
        WeightDecay(weight_decay, mask),
        learning_rate(lr),
    )


def nadam(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0) -> Ref:
    return adam(lr, b1, b2, eps, eps_root, nesterov=True)


def nadamw(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4, mask=None) -> Ref:
    return adamw(lr, b1, b2, eps, eps_root, None, weight_decay, mask, nesterov=True)


def amsgrad(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, bc_mu=True, bc_nu=True) -> Ref:
    return Chain(AMSGrad(b1, b2, eps, eps_root, bc_mu, bc_nu), learning_rate(lr))


def adamax(lr, b1=0.9, b2=0.999, eps=1e-8) -> Ref:
    return Chain(AdaMax(b1, b2, eps), learning_rate(lr))


def adamaxw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None) -> Ref:
    return Chain(AdaMax(b1, b2, eps), WeightDecay(weight_decay, mask), learning_rate(lr))


def radam(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, nesterov=False) -> Ref:
    return Chain(RAdam(b1, b2, eps, eps_root, threshold, nesterov), learning_rate(lr))


def lion(lr, b1=0.9, b2=0.99, weight_decay=1e-3, mask=None) -> Ref:
    return Chain(Lion(b1, b2), WeightDecay(weight_decay, mask), learning_rate(lr))


def adabelief(lr, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, nesterov=False) -> Ref:
    return Chain(AdaBelief(b1, b2, eps, eps_root, nesterov), learning_rate(lr))


def yogi(lr, b1=0.9, b2=0.999, eps=1e-3) -> Ref:
    return Chain(Yogi(b1, b2, eps), learning_rate(lr))


def sign_sgd(lr) -> Ref:
    return Chain(Sign(), learning_rate(lr))


def run(ref: Ref, params: Sequence[np.ndarray], grads: Sequence[Sequence[np.ndarray]]):
    """Runs ``ref`` over a gradient sequence, applying each update to the parameters.

    Returns ``(updates per step, final params)``, both as lists of float64 arrays.
    """
    p = [np.array(x, np.float64) for x in params]
    ref.init(p)
    history = []
    for t, g in enumerate(grads, start=1):
        u = ref.step([np.asarray(x, np.float64) for x in g], p, t)
        p = [x + y for x, y in zip(p, u, strict=True)]
        history.append(u)
    return history, p
