"""Reduce-on-plateau, optax's form: the updates are scaled by a factor that shrinks when the
monitored value (``update(..., value=loss)``) stops improving.  (torch's
``ReduceLROnPlateau``, with its modes and thresholds, is ``gradtx.torch_compat.reduce_on_plateau``.)
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation
from gradtx.registry import register


class ReduceLROnPlateauState(NamedTuple):
    """``scale``: the factor on the updates; ``best_value``: the best average seen;
    ``plateau_count``: averages in a row without improvement; ``cooldown_count``: averages of
    cooldown left; ``accumulation_count``/``avg_value``: the values averaged so far in the
    current window (optax calls the first ``count``; here the chain's ``count`` stays the one
    step counter)."""

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    accumulation_count: jax.Array
    avg_value: jax.Array


def _float_dtypes(params: kit.Tree) -> tuple[jnp.dtype, jnp.dtype]:
    floats = [
        jnp.result_type(x)
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    if not floats:
        return jnp.dtype(jnp.float32), jnp.dtype(jnp.float32)
    bits = lambda d: jnp.finfo(d).bits
    return min(floats, key=bits), max(floats, key=bits)


@register(
    "block",
    optax="contrib.reduce_on_plateau",
    traits=("needs_value",),
    traced=None,
    examples=[
        {"factor": 0.5, "patience": 2, "rtol": 0.0, "atol": 1e-3},
        {"factor": 0.3, "patience": 1, "cooldown": 2, "accumulation_size": 3, "min_scale": 0.05},
    ],
)
def reduce_on_plateau(
    factor: Annotated[float, kit.Range("(0, 1)")] = 0.1,
    patience: Annotated[int, kit.Range("[0, inf)", integer=True)] = 10,
    rtol: Annotated[float, kit.Range("[0, 1]")] = 1e-4,
    atol: Annotated[float, kit.Range("[0, inf)")] = 0.0,
    cooldown: Annotated[int, kit.Range("[0, inf)", integer=True)] = 0,
    accumulation_size: Annotated[int, kit.Range("[1, inf)", integer=True)] = 1,
    min_scale: Annotated[float, kit.Range("[0, inf)")] = 0.0,
) -> GradientTransformation:
    """Scales the updates by ``scale`` (1 at first) and lowers it when the loss plateaus.

    Each update adds ``value`` to a running average; once ``accumulation_size`` values are in,
    the average ``a`` is judged and the window restarts: ``a`` improves when
    ``a < (1 - rtol) * best - atol`` (then ``best = a`` and the plateau count resets), else the
    plateau count grows.  When it reaches ``patience``, ``scale <- max(scale * factor,
    min_scale)``, the count resets and ``cooldown`` judged averages are skipped.  The updates of
    this step are scaled by the scale decided with this step's value.

    Args:
      factor: the multiplier applied to the scale at each plateau.
      patience: judged averages without improvement before the scale drops.
      rtol: relative improvement required (``best`` must drop by this fraction).
      atol: absolute improvement required.
      cooldown: judged averages ignored after each drop.
      accumulation_size: values averaged before each judgement (1: judge every step; more
        when ``value`` is a noisy minibatch loss).
      min_scale: the scale never drops below this.

    ``update`` needs ``value=`` (the loss).  State fields: ``ReduceLROnPlateauState``.
    optax: ``optax.contrib.reduce_on_plateau`` (same arguments, defaults and numbers); torch's
    rule: ``gradtx.torch_compat.reduce_on_plateau``.

    Example:
        A loss stuck at 1.0 halves the scale after two more judged values:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.contrib.reduce_on_plateau(factor=0.5, patience=2)
        >>> g = jnp.ones(2, jnp.float32)
        >>> state = tx.init(g)
        >>> for loss in (2.0, 1.0, 1.0, 1.0):
        ...     u, state = tx.update(g, state, value=loss)
        ...     print(f"{float(gradtx.tree_get(state, 'scale')):.2f}", end=" ")
        1.00 1.00 1.00 0.50
    """
    if isinstance(rtol, int | float) and isinstance(atol, int | float) and rtol == atol == 0:
        raise ValueError("reduce_on_plateau: rtol and atol are both 0; give one a positive value")

    def init(params: kit.Tree) -> ReduceLROnPlateauState:
        low, high = _float_dtypes(params)
        zero = jnp.zeros([], jnp.int32)
        best = jnp.asarray(jnp.inf, high)
        return ReduceLROnPlateauState(
            jnp.ones([], low), best, zero, zero, zero, jnp.zeros([], high)
        )

    def judge(s: ReduceLROnPlateauState) -> ReduceLROnPlateauState:
        better = s.avg_value < (1 - rtol) * s.best_value - atol
        best = jnp.where(better, s.avg_value, s.best_value)
        plateau = jnp.where(better, 0, s.plateau_count + 1)
        cooling = s.cooldown_count > 0
        drop = ~cooling & (plateau == patience)
        # (optax raises a scale below min_scale to it at every judgement out of cooldown)
        lowered = jnp.maximum(jnp.where(drop, s.scale * factor, s.scale), min_scale)
        scale = jnp.where(cooling, s.scale, lowered)
        return ReduceLROnPlateauState(
            scale.astype(s.scale.dtype),
            best.astype(s.best_value.dtype),
            jnp.where(cooling | drop, 0, plateau).astype(jnp.int32),
            jnp.where(cooling, s.cooldown_count - 1, jnp.where(drop, cooldown, 0)).astype(
                jnp.int32
            ),
            jnp.zeros([], jnp.int32),
            jnp.zeros_like(s.avg_value),
        )

    def step(updates, state, params, h):
        value = h.extra.get("value")
        if value is None:
            raise ValueError(
                "reduce_on_plateau: update needs the monitored value, e.g. "
                "tx.update(grads, state, params, value=loss)"
            )
        n = state.accumulation_count + 1
        total = state.accumulation_count * state.avg_value + jnp.asarray(
            value, state.avg_value.dtype
        )
        state = state._replace(accumulation_count=n, avg_value=(total / n).astype(total.dtype))
        # (kit.when: an eager update judges in Python instead of compiling a fresh cond)
        state = kit.when(n == accumulation_size, judge, lambda s: s, state)
        return jax.tree.map(lambda g: (state.scale * g).astype(g.dtype), updates), state

    return kit.block("reduce_on_plateau", step, init)


__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]
