"""Stochastic gradient descent: plain, with heavy-ball or Nesterov momentum (``trace``), and with
annealed gradient noise.
"""

from __future__ import annotations

from typing import Any

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_noise, identity, scale_by_learning_rate, trace
from gradtx.registry import register


@register(
    optax="sgd",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.1, "momentum": 0.9},
        {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
    ],
)
def sgd(
    learning_rate: kit.Rate,
    momentum: kit.NonNegative | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent: ``u = -lr * g``; with ``momentum``
    ``m_t = momentum * m_{t-1} + g``, ``u = -lr * m_t`` (Nesterov: ``-lr * (g + momentum * m_t)``).

    Args:
      accumulator_dtype: storage dtype of the momentum buffer (``None``: the params' dtype).

    optax: ``optax.sgd``; torch: ``torch.optim.SGD(lr, momentum, nesterov=)`` (its ``dampening``
    and ``weight_decay``: ``from_torch("SGD", ...)``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w": jnp.array([1.0, -2.0], jnp.float32), "b": jnp.zeros(1, jnp.float32)}
        >>> opt = gradtx.sgd(learning_rate=0.1, momentum=0.9)
        >>> grads = {"w": jnp.ones(2, jnp.float32), "b": jnp.ones(1, jnp.float32)}
        >>> state = opt.init(params)
        >>> for _ in range(2):  # the same gradient twice: m = g, then g + 0.9 g
        ...     updates, state = opt.update(grads, state, params)
        >>> print(updates["w"], gradtx.tree_get(state, "trace")["b"])  # u = -lr * m
        [-0.19 -0.19] [1.9]
    """
    return chain(
        identity() if momentum is None else trace(momentum, nesterov, accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="noisy_sgd",
    traits=("stochastic",),
    examples=[
        {"learning_rate": 0.1, "eta": 0.05, "gamma": 0.6, "key": 3},
        {"learning_rate": 0.1, "eta": 0.0, "key": 3},
    ],
)
def noisy_sgd(
    learning_rate: kit.Rate,
    eta: kit.NonNegative = 0.01,
    gamma: kit.NonNegative = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """SGD with annealed Gaussian noise (Neelakantan et al. 2015):
    ``u = -lr * (g + N(0, eta / t^gamma))``, a fresh draw per element and step.

    Args:

    optax: ``optax.noisy_sgd``; torch: none.

    Example:
        The noise's standard deviation is ``sqrt(eta / t^gamma)``: with ``gamma=2``, ``2 / t`` here:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.noisy_sgd(learning_rate=1.0, eta=4.0, gamma=2.0, seed=0)
        >>> params = jnp.zeros(100_000, jnp.float32)
        >>> state = opt.init(params)
        >>> for t in (1, 2, 3):  # a zero gradient: the update is the noise alone
        ...     updates, state = opt.update(jnp.zeros_like(params), state, params)
        ...     print(t, f"{jnp.std(updates):.1f}")
        1 2.0
        2 1.0
        3 0.7
    """
    return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate))


__all__ = ["noisy_sgd", "sgd"]
