"""Schedule-Free training (Defazio et al. 2024, "The Road Less Scheduled"): the base optimizer
moves ``z``, the model is evaluated at an average ``x`` of the ``z``'s, and the gradient is taken
at an interpolation ``y`` of the two, so no learning-rate schedule is needed.  Evaluate the model
at ``schedule_free_eval_params(state, params)``.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import (
    GradientTransformation,
    as_block,
    chain,
)
from gradtx.blocks import add_decayed_weights, identity, scale_by_learning_rate
from gradtx.optimizers.rms import scale_by_rms
from gradtx.registry import Use, register
from gradtx.state import tree_get

Tree = Any


# --- Schedule-Free -------------------------------------------------------------------------------


@kit.one_counter("step_count")
class ScheduleFreeState(NamedTuple):
    """``z``: the base optimizer's iterate; ``b1``: the interpolation weight (kept for
    ``schedule_free_eval_params``); ``weight_sum``: ``sum_i lr_max,i^weight_lr_power``;
    ``max_lr``: the largest learning rate seen; ``base_optimizer_state``: the base's state."""

    b1: jax.Array
    weight_sum: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Tree


def _ramp(count: jax.Array) -> jax.Array:
    """An example schedule (used by the registry's examples)."""
    return 0.1 * (count + 1) / (count + 5)


@register(
    optax="contrib.schedule_free",
    traits=(),
    examples=[
        {"base_optimizer": Use("sgd", {"learning_rate": 0.1}), "learning_rate": 0.1},
        {
            "base_optimizer": Use("scale_by_learning_rate", {"learning_rate": _ramp}),
            "learning_rate": _ramp,
            "b1": 0.8,
            "weight_lr_power": 1.0,
        },
    ],
)
def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: kit.Rate,
    b1: Annotated[float, kit.Range("(0, 1]")] = 0.9,
    weight_lr_power: kit.NonNegativeConstant = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-Free wrapper (Defazio et al. 2024, "The Road Less Scheduled").

    The model sees ``y``; the base optimizer (without momentum) moves ``z``; ``x``, the point to
    evaluate at (``schedule_free_eval_params``), is a weighted average of the ``z``'s::

        z_{t+1} = z_t + base_update(g(y_t))
        x_t     = (y_t - (1 - b1) z_t) / b1                   (recomputed, not stored)
        c_{t+1} = w_t / sum_{i<=t} w_i,   w_t = max_{i<=t} lr_i ^ weight_lr_power
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
        y_{t+1} = b1 x_{t+1} + (1 - b1) z_{t+1},   u_t = y_{t+1} - y_t

    optax: ``optax.contrib.schedule_free`` (same arguments and defaults); torch: none.

    Args:
      base_optimizer: the transformation that moves ``z``, learning rate included and without
        momentum (e.g. ``sgd(lr)``).
      learning_rate: the base optimizer's learning rate (a number or a schedule), read here only
        for the weights ``w_t``, at step ``t`` like optax (a schedule in the base reads ``t - 1``).
      b1: interpolation weight: gradients are taken at ``y = b1 x + (1 - b1) z``.

    Example:
        Adam without momentum (``b1=0``) as the base; the params are ``y``, evaluate at ``x``:

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.schedule_free(gradtx.adam(0.1, b1=0.0), learning_rate=0.1)
        >>> params = {"w": jnp.array([1.0, -2.0], jnp.float32)}
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     grads = jax.tree.map(lambda p: 2 * p, params)
        ...     updates, state = opt.update(grads, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> x = gradtx.schedule_free_eval_params(state, params)
        >>> print(jnp.array_str(params["w"], precision=4), jnp.array_str(x["w"], precision=4))
        [ 0.7968 -1.7933] [ 0.8061 -1.8029]
    """
    base = as_block(base_optimizer)
    z_dtype = kit.canonical_dtype(state_dtype)

    def init(params):
        zero = jnp.zeros([], kit.scalar_dtype(params))
        z = kit.copy(kit.cast(params, z_dtype))
        return ScheduleFreeState(zero + b1, zero, zero, base.init(params), z)

    def step(updates, state, params, h):
        kit.check_match("schedule_free", "updates", updates, "z", state.z)
        sdt = state.max_lr.dtype
        # the averaging weight reads the learning rate one step ahead, as optax does
        lr = jnp.asarray(kit.resolve(learning_rate, h.count + 1), sdt)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr**weight_lr_power
        total = state.weight_sum + weight
        # zero total weight (lr still 0 in warmup): keep x where it is
        ck = jnp.where(total > 0, weight / jnp.where(total > 0, total, 1), 0)

        base_u, base_state = base.update(
            updates, state.base_optimizer_state, params, count=h.count, **h.extra
        )

        def leaf(y, z, bu):
            k = jnp.promote_types(kit.compute_dtype(y), z.dtype)
            yk, zk, c, b = y.astype(k), z.astype(k), ck.astype(k), state.b1.astype(k)
            z_new = (zk + bu).astype(z.dtype).astype(k)
            x = (yk - (1 - b) * zk) / b
            x_new = (1 - c) * x + c * z_new
            y_new = b * x_new + (1 - b) * z_new
            return (y_new - yk).astype(y.dtype), z_new.astype(z.dtype)

        u, z = kit.leafwise("schedule_free", leaf, 2, params, state.z, base_u)
        return kit.cast_like(u, updates), ScheduleFreeState(
            state.b1, total.astype(sdt), max_lr, base_state, z
        )

    return kit.block("schedule_free", step, init, needs_params=True)


def schedule_free_eval_params(state: Any, params: Tree) -> Tree:
    """The evaluation point ``x = (y - (1 - b1) z) / b1`` of a Schedule-Free optimizer, from its
    state (found by field name, so it also works inside a chain) and the current params ``y``.

    The result has the structure of ``params``; ``z`` is matched leaf by leaf, so an
    ``nnx.Optimizer``'s state (whose leaves are wrapped in optimizer variables) works with
    ``nnx.state(model, nnx.Param)``.  optax: ``optax.contrib.schedule_free_eval_params``.
    """
    (b1,) = jax.tree.leaves(tree_get(state, "b1"))
    ys, treedef = jax.tree.flatten(params)
    zs = jax.tree.leaves(tree_get(state, "z"))
    shapes = [jnp.shape(y) for y in ys], [jnp.shape(z) for z in zs]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"schedule_free_eval_params: params and the state's z differ: leaf shapes "
            f"{shapes[0]} vs {shapes[1]}; were the params trained with this state?"
        )
    x = [((y - (1 - b1) * z) / b1).astype(jnp.result_type(y)) for y, z in zip(ys, zs, strict=True)]
    return treedef.unflatten(x)


def _warmup_constant(peak: float, warmup_steps: int) -> Any:
    """``peak * min(step / warmup_steps, 1)``: a linear warmup from 0, then constant (the value
    of optax's ``warmup_constant_schedule(0, peak, warmup_steps)``)."""

    def schedule(count):
        frac = jnp.clip(count / warmup_steps, 0, 1)
        return peak * frac

    return schedule


@register(
    optax="contrib.schedule_free_sgd",
    traits=(),
    examples=[{"learning_rate": 0.1, "warmup_steps": 5, "weight_decay": 0.01}, {}],
)
def schedule_free_sgd(
    learning_rate: kit.NonNegativeConstant = 1.0,
    warmup_steps: kit.Steps | None = None,
    b1: Annotated[float, kit.Range("(0, 1]")] = 0.9,
    weight_decay: kit.NonNegativeConstant | None = None,
    weight_lr_power: kit.NonNegativeConstant = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-Free SGD: ``schedule_free`` around ``z_{t+1} = z_t - lr (g + weight_decay y_t)``.

    optax: ``optax.contrib.schedule_free_sgd`` (same arguments and defaults); torch: none.

    Args:
      learning_rate: the peak learning rate ``lr`` (a number).
      b1: interpolation weight: gradients are taken at ``y = b1 x + (1 - b1) z``.

    Example:
        The warmup starts the learning rate at 0, so the first update is 0:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.schedule_free_sgd(learning_rate=0.1, warmup_steps=2)
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     updates, state = opt.update(2 * params, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        ...     print(jnp.array_str(updates, precision=4))
        [0. 0.]
        [-0.082  0.164]
        [-0.0998  0.1996]
    """
    lr = learning_rate if warmup_steps is None else _warmup_constant(learning_rate, warmup_steps)
    base = chain(
        identity() if weight_decay is None else add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


@register(
    optax="contrib.schedule_free_adamw",
    traits=(),
    examples=[{"learning_rate": 0.1, "warmup_steps": 5, "weight_decay": 0.01}, {}],
)
def schedule_free_adamw(
    learning_rate: kit.NonNegativeConstant = 0.0025,
    warmup_steps: kit.Steps | None = None,
    b1: Annotated[float, kit.Range("(0, 1]")] = 0.9,
    b2: kit.Fraction = 0.999,
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 0.0,
    weight_lr_power: kit.NonNegativeConstant = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-Free AdamW: ``schedule_free`` around momentum-free AdamW,
    ``z_{t+1} = z_t - lr (g / (sqrt(v_t / (1 - b2^t)) + eps) + weight_decay y_t)`` with
    ``v_t = b2 v + (1 - b2) g²``.  optax: ``optax.contrib.schedule_free_adamw`` (same arguments
    and defaults); torch: none.

    Args:
      learning_rate: the peak learning rate ``lr`` (a number).
      b1: interpolation weight: gradients are taken at ``y = b1 x + (1 - b1) z``.

    Example:
        The params ``y`` lie between the base iterate ``z`` and the evaluation point ``x``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.schedule_free_adamw(learning_rate=0.1)
        >>> params = jnp.ones(1, jnp.float32)
        >>> state = opt.init(params)
        >>> for _ in range(4):
        ...     updates, state = opt.update(2 * params, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> x, z = gradtx.schedule_free_eval_params(state, params), gradtx.tree_get(state, "z")
        >>> print(*(f"{v[0]:.4f}" for v in (z, params, x)))
        0.6234 0.7468 0.7605
    """
    lr = learning_rate if warmup_steps is None else _warmup_constant(learning_rate, warmup_steps)
    base = chain(
        scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
]
