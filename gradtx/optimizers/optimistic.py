"""Optimistic methods for min-max games: each step adds a correction from the previous direction,
``(alpha + beta) d_t - beta d_{t-1}``, an approximation of the extra-gradient step that needs no
second gradient.  Plain gradients give optimistic gradient descent (Mokhtari et al. 2019); Adam's
direction gives Optimistic Adam (Daskalakis et al. 2018): ``scale_by_optimistic_gradient``,
``optimistic_gradient_descent``, ``optimistic_adam``, ``optimistic_adam_v2``.

Notation: ``d_t`` the incoming update (a gradient, or Adam's ``r_t = m̂ / (sqrt(v̂ + eps_root) +
eps)``), ``d_0 = d_1``: the first step has no previous direction and repeats the current one
(optax's convention; Daskalakis et al. start from ``r_0 = 0``, a first step twice as large).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import scale_by_learning_rate
from gradtx.optimizers.adam import scale_by_adam
from gradtx.registry import register

Tree = kit.Tree


@kit.one_counter("is_initial_step")
class ScaleByOptimisticGradientState(NamedTuple):
    previous_gradient: Tree


@register(
    "block",
    optax="scale_by_optimistic_gradient",
    traced="alpha",
    examples=[{}, {"alpha": 0.5, "beta": 2.0}],
)
def scale_by_optimistic_gradient(
    alpha: kit.NonNegative = 1.0, beta: kit.NonNegative = 1.0
) -> GradientTransformation:
    """``u = (alpha + beta) g_t - beta g_{t-1}``, with ``g_0 = g_1`` (the first update is
    ``alpha g_1``).

    Args:
      alpha: weight of the current gradient (the step of plain gradient descent).
      beta: weight of the optimistic correction ``g_t - g_{t-1}`` (a negative momentum).

    optax: ``optax.scale_by_optimistic_gradient``; torch: none.

    Example:
        The correction extrapolates the change of the gradient:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_optimistic_gradient(alpha=1.0, beta=1.0)
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in (1.0, 3.0, 3.0):  # 1, then 3 + (3 - 1), then 3 once it stops changing
        ...     updates, state = tx.update(jnp.array([g], jnp.float32), state)
        ...     print(jnp.array_str(updates, precision=4))
        [1.]
        [5.]
        [3.]
    """

    def step(updates, state, params, h):
        first = h.count == 0

        def leaf(g, s, *, keep):
            previous = jnp.where(first, g, s.previous_gradient)
            s = keep(ScaleByOptimisticGradientState(g))
            return (h.alpha + h.beta) * g - h.beta * previous, s

        return kit.map_state("scale_by_optimistic_gradient", leaf, updates, state)

    init = kit.init_state(ScaleByOptimisticGradientState)
    hyper = {"alpha": alpha, "beta": beta}
    return kit.block("scale_by_optimistic_gradient", step, init, hyper=hyper)


@register(
    optax="optimistic_gradient_descent",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": lambda c: 0.1 / (1 + c / 3.0), "alpha": 0.5, "beta": 2.0},
    ],
)
def optimistic_gradient_descent(
    learning_rate: kit.Rate, alpha: kit.NonNegative = 1.0, beta: kit.NonNegative = 1.0
) -> GradientTransformation:
    """Optimistic gradient descent (Mokhtari et al. 2019):
    ``u = -lr * ((alpha + beta) g_t - beta g_{t-1})``, the first step ``-lr alpha g_1``.

    Args:
      alpha: weight of the current gradient.
      beta: weight of the optimistic correction ``g_t - g_{t-1}``.

    optax: ``optax.optimistic_gradient_descent``; torch: none.

    Example:
        On the bilinear game ``min_x max_y x y`` simultaneous gradient descent-ascent spirals
        outwards; the optimistic correction makes it converge to the equilibrium at 0:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> for opt in (gradtx.sgd(0.1), gradtx.optimistic_gradient_descent(0.1)):
        ...     xy = jnp.array([1.0, 1.0], jnp.float32)
        ...     state = opt.init(xy)
        ...     for _ in range(200):
        ...         grads = jnp.array([xy[1], -xy[0]])  # d/dx (x y), -d/dy (x y)
        ...         updates, state = opt.update(grads, state, xy)
        ...         xy = gradtx.apply_updates(xy, updates)
        ...     print(f"{jnp.linalg.norm(xy):.3f}")
        3.825
        0.518
    """
    return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))


@register(
    optax="optimistic_adam",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.1,
            "optimism": 0.05,
            "b1": 0.8,
            "b2": 0.99,
            "eps": 1e-6,
            "eps_root": 1e-8,
            "nesterov": False,
        },
    ],
)
def optimistic_adam(
    learning_rate: kit.Rate,
    optimism: kit.NonNegative | None = None,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam (Daskalakis et al. 2018): with Adam's direction
    ``r_t = m̂ / (sqrt(v̂ + eps_root) + eps)``,
    ``u = -(lr + optimism) r_t + optimism r_{t-1}`` (``optimism = lr`` by default: the paper's
    ``-2 lr r_t + lr r_{t-1}``), the first step ``-lr r_1``.

    optax's interface, kept for compatibility (optax deprecates it for
    ``optimistic_adam_v2``); unlike optax's, a schedule is accepted for ``learning_rate`` (it
    weights the current direction, ``optimism`` the correction).  Its ``nesterov=True`` default
    uses NAdam's look-ahead ``m̂``, where the paper has Adam's (``nesterov=False``).

    Args:
      optimism: weight of the optimistic correction ``r_t - r_{t-1}`` (``None``: the learning
        rate).

    optax: ``optax.optimistic_adam``; torch: none.

    Example:
        The paper's defaults, ``-2 lr r_t + lr r_{t-1}``: when the gradient flips, Adam's
        momentum still points the old way (``r_3 = 0.26``), but the correction already
        reverses the step:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.optimistic_adam(learning_rate=0.1, nesterov=False)
        >>> params = jnp.zeros(1, jnp.float32)
        >>> state = opt.init(params)
        >>> for g in (1.0, 1.0, -1.0):
        ...     updates, state = opt.update(jnp.array([g], jnp.float32), state, params)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.1]
        [-0.1]
        [0.0476]
    """
    weight = learning_rate if optimism is None else optimism
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha=learning_rate, beta=weight),
        scale_by_learning_rate(1.0),  # flips the sign: descent
    )


@register(
    optax="optimistic_adam_v2",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "alpha": 0.5,
            "beta": 2.0,
            "b1": 0.8,
            "b2": 0.99,
            "eps": 1e-6,
            "eps_root": 1e-8,
            "nesterov": False,
        },
    ],
)
def optimistic_adam_v2(
    learning_rate: kit.Rate,
    *,
    alpha: kit.NonNegative = 1.0,
    beta: kit.NonNegative = 1.0,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam, optax's reworked interface: with Adam's direction ``r_t``,
    ``u = -lr * ((alpha + beta) r_t - beta r_{t-1})``, the first step ``-lr alpha r_1``.
    ``alpha = beta = 1`` is Daskalakis et al.'s ``-2 lr r_t + lr r_{t-1}``; ``nesterov=True``
    (optax's default) uses NAdam's look-ahead ``m̂`` where the paper has Adam's.

    Args:
      alpha: weight of the current direction.
      beta: weight of the optimistic correction ``r_t - r_{t-1}``.

    optax: ``optax.optimistic_adam_v2``; torch: none.

    Example:
        A learning-rate schedule scales both the direction and the correction:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.optimistic_adam_v2(lambda step: 0.1 * 0.5**step, nesterov=False)
        >>> params = jnp.zeros(1, jnp.float32)
        >>> state = opt.init(params)
        >>> for g in (1.0, 1.0, -1.0):
        ...     updates, state = opt.update(jnp.array([g], jnp.float32), state, params)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.1]
        [-0.05]
        [0.0119]
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(learning_rate),
    )


__all__ = [
    "ScaleByOptimisticGradientState",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "scale_by_optimistic_gradient",
]
