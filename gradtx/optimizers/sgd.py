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
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> opt = gradtx.sgd(learning_rate=0.1, momentum=0.9)
        >>> state = opt.init(params)
        >>> for _ in range(3):  # minimise sum(params**2), whose gradient is 2 * params
        ...     updates, state = opt.update(2 * params, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(jnp.array_str(params, precision=4))
        [ 0.062 -0.124]
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
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> opt = gradtx.noisy_sgd(learning_rate=0.1, eta=0.01, seed=0)
        >>> state = opt.init(params)
        >>> for _ in range(3):  # minimise sum(params**2), whose gradient is 2 * params
        ...     updates, state = opt.update(2 * params, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(jnp.allclose(params, jnp.array([0.512, -1.024]), atol=0.1))  # near plain SGD
        True
    """
    return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate))


__all__ = ["noisy_sgd", "sgd"]
