"""References of ``gradtx/optimizers/optimistic.py``: optimistic gradient descent (Mokhtari et al.
2019, as optax documents it) and Optimistic Adam (Daskalakis et al. 2018, Algorithm 1)."""

from __future__ import annotations

import numpy as np

from . import reference
from .adam import Adam
from .core import Chain, Ref, Scale, at
from .core import learning_rate as descent


class Optimistic(Ref):
    """``u_t = (α_t + β_t) d_t - β_t d_{t-1}`` on incoming directions ``d``, with
    ``d_0 = d_1`` (optax's convention: the first step is ``α d_1``; Daskalakis et al.'s
    ``r_0 = 0`` would make it ``(α + β) d_1``)."""

    def __init__(self, alpha, beta):
        self.alpha, self.beta = alpha, beta

    def init(self, params):
        self.previous = None

    def step(self, grads, params, t):
        a, b = at(self.alpha, t), at(self.beta, t)
        previous = grads if self.previous is None else self.previous
        self.previous = [np.array(d) for d in grads]
        return [(a + b) * d - b * p for d, p in zip(grads, previous, strict=True)]


@reference("scale_by_optimistic_gradient")
def scale_by_optimistic_gradient(alpha=1.0, beta=1.0):
    return Optimistic(alpha, beta)


@reference("optimistic_gradient_descent")
def optimistic_gradient_descent(learning_rate, alpha=1.0, beta=1.0):
    """``w_{t+1} = w_t - η_t ((α + β) g_t - β g_{t-1})``."""
    return Chain(Optimistic(alpha, beta), descent(learning_rate))


@reference("optimistic_adam")
def optimistic_adam(
    learning_rate,
    optimism=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    *,
    nesterov=True,
):
    """Algorithm 1 of Daskalakis et al.: with Adam's ``r_t = m̂_t / (sqrt(v̂_t) + ε)``,
    ``w_t = w_{t-1} - 2η r_t + η r_{t-1}``; ``optimism`` replaces the ``η`` of the correction,
    ``-(η + o) r_t + o r_{t-1}``.  ``nesterov`` (optax's default) takes Dozat's look-ahead
    ``m̂`` instead of Adam's."""
    o = learning_rate if optimism is None else optimism
    adam_direction = Adam(b1, b2, eps, eps_root, nesterov, mu_dtype)
    return Chain(adam_direction, Optimistic(learning_rate, o), Scale(-1.0))


@reference("optimistic_adam_v2")
def optimistic_adam_v2(
    learning_rate,
    *,
    alpha=1.0,
    beta=1.0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    nesterov=True,
):
    """``w_t = w_{t-1} - η_t ((α + β) r_t - β r_{t-1})``."""
    adam_direction = Adam(b1, b2, eps, eps_root, nesterov, mu_dtype)
    return Chain(adam_direction, Optimistic(alpha, beta), descent(learning_rate))
