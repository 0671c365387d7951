"""Running an inner optimizer only at chosen steps, with zero updates at the others:
``conditionally_mask`` (``gradtx.conditionally_transform`` instead passes the updates through
unchanged at the others).

The predicate sees the number of earlier calls, the enclosing chain's one step counter; the
inner optimizer holds its own ``ChainState``, so its counter (schedules, bias corrections) counts
only the steps it really took.  optax: ``optax.conditionally_mask``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain


class ConditionFn(Protocol):
    """``should_transform_fn(step, **extra) -> bool array of shape []``; ``step`` is the number
    of earlier calls (int32).  optax: ``optax.transforms.ConditionFn``."""

    def __call__(self, step: jax.Array, **extra_args: Any) -> jax.Array: ...


@kit.one_counter("step")
class ConditionallyMaskState(NamedTuple):
    """``inner_state``: the inner optimizer's ``ChainState``, untouched at masked steps (its
    ``count`` is the number of steps it took).  optax: ``optax.ConditionallyMaskState``, which
    also keeps ``step``, the number of calls; here that is the enclosing ``count``
    (``state.count`` on its own)."""

    inner_state: Any


def conditionally_mask(
    inner: GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    """``u = inner(g)`` when ``should_transform_fn(n)`` is true, else ``u = 0`` with ``inner``'s
    state untouched; ``n`` is the number of earlier calls.

    Args:
      inner: the optimizer to run at the chosen steps (gradtx or optax).
      should_transform_fn: ``n -> bool``; with ``forward_extra_args`` it also receives the
        update's extra keywords (``value=``...).
      forward_extra_args: pass the extra keywords to ``should_transform_fn``.

    State: ``ConditionallyMaskState(inner_state)``.  optax: ``optax.conditionally_mask`` (same
    arguments; its state also counts the calls, here the chain's ``count`` does).

    Example:
        SGD on every other step (steps 0, 2, 4...), no update at the others:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.conditionally_mask(gradtx.sgd(0.1), lambda step: step % 2 == 0)
        >>> g = jnp.ones(1)
        >>> state = tx.init(g)
        >>> for _ in range(3):
        ...     updates, state = tx.update(g, state)
        ...     print(updates)
        [-0.1]
        [0.]
        [-0.1]
    """
    tx = chain(inner)  # its own counter: it advances only when it runs

    def init(params):
        return ConditionallyMaskState(tx.init(params))

    def step(updates, state, params, h):
        kwargs = h.extra if forward_extra_args else {}
        pred = jnp.asarray(should_transform_fn(h.count, **kwargs))
        if pred.shape != ():
            raise ValueError(
                f"conditionally_mask: should_transform_fn must return one bool, got shape "
                f"{pred.shape}"
            )

        def run(_):
            return tx.update(updates, state.inner_state, params, **h.extra)

        def skip(_):
            shapes = jax.eval_shape(run, None)[0]
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return zeros, state.inner_state

        # eager (a concrete pred): only the chosen branch runs, no fresh cond to compile
        u, inner_state = kit.when(pred, run, skip, None)
        return u, ConditionallyMaskState(inner_state)

    return kit.block("conditionally_mask", step, init)


__all__ = ["ConditionFn", "ConditionallyMaskState", "conditionally_mask"]
