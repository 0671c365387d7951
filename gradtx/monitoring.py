"""Measuring the updates inside a chain, for logging: ``snapshot`` (one measurement of the
updates as they reach it), ``monitor`` (several, each a function or a stateful transformation)
and ``measure_with_ema`` (a measurement's moving average, for ``monitor``).

Each passes the updates through unchanged and keeps its measurements in its state, where
``gradtx.tree_get(state, name)`` (or ``gradtx.tree.get``) finds them by name.  Like every
gradtx block they run on the enclosing chain's one step counter.  optax: ``optax.snapshot``,
``optax.monitor``, ``optax.measure_with_ema`` (``optax.transforms`` holds the state classes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import (
    Block,
    Chain,
    GradientTransformation,
    as_block,
    init_empty_state,
    zero_count,
)
from gradtx.blocks import ema

Tree = Any
Measure = Callable[[Tree], Tree]
"""A function of the updates (a tree) returning the measurement (any tree of arrays)."""


class SnapshotState(NamedTuple):
    """``measurement``: ``{measure_name: the measurement of the latest updates}`` (of the
    params right after ``init``).  optax: ``optax.transforms.SnapshotState`` (same field)."""

    measurement: dict[str, Any]


def snapshot(measure_name: str, measure: Measure) -> GradientTransformation:
    """Records ``measure(updates)`` of the updates reaching it under ``measure_name``; the
    updates pass unchanged.  ``init`` records ``measure(params)``.

    Args:
      measure_name: the name to find the measurement by: ``gradtx.tree_get(state, name)``.
      measure: a function ``updates -> measurement`` (e.g. ``gradtx.tree.norm``).

    optax: ``optax.snapshot`` (same arguments and state).

    Example:
        The norm of the momentum, before the clip shortens it:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.chain(
        ...     gradtx.trace(decay=0.9),
        ...     gradtx.snapshot("norm_before_clip", gradtx.tree.norm),
        ...     gradtx.clip_by_global_norm(1.0),
        ... )
        >>> g = jnp.array([3.0, 4.0], jnp.float32)
        >>> state = tx.init(g)
        >>> for _ in range(2):
        ...     updates, state = tx.update(g, state)
        ...     print(gradtx.tree_get(state, "norm_before_clip"), gradtx.tree.norm(updates))
        5.0 1.0
        9.5 1.0
    """
    if not isinstance(measure_name, str):
        raise TypeError(f"snapshot: measure_name must be a string, got {measure_name!r}")

    def init(params):
        return SnapshotState({measure_name: measure(params)})

    def step(updates, state, params, h):
        return updates, SnapshotState({measure_name: measure(updates)})

    return kit.block("snapshot", step, init)


class MonitorState(NamedTuple):
    """``measurements``: ``{name: the latest measurement}`` (zeros of the measurements' shapes
    before the first update, except for measures that need the update's extra keywords);
    ``measure_states``: the state of each measure, in the order
    given (``EmptyState()`` for a function).  optax: ``optax.transforms.MonitorState`` (same
    fields; its ``init`` leaves ``measurements`` empty, so the state's structure changes at the
    first update)."""

    measurements: dict[str, Any]
    measure_states: tuple[Any, ...]


def _measure_block(name: str, measure: Any) -> Block:
    if isinstance(measure, GradientTransformation | Block):
        return as_block(measure)
    if callable(measure):

        def update(updates, state, params=None, count=None, **extra):
            return measure(updates), state

        return Block(init_empty_state, update)
    raise TypeError(
        f"monitor: measure {name!r} must be a function of the updates or a transformation "
        f"whose update returns the measurement, got {type(measure).__name__}"
    )


def monitor(measures: Mapping[str, GradientTransformation | Measure]) -> GradientTransformation:
    """Records several measurements of the updates reaching it; the updates pass unchanged.

    Each measure is a function ``updates -> measurement`` or a transformation whose ``update``
    returns the measurement as its "updates" and keeps whatever state it needs (e.g.
    ``measure_with_ema``); it receives the updates, its state, the params and the extra keywords
    (``value=``...), and runs on the enclosing chain's step counter.  ``init`` records zeros of
    each measurement's shape, found by evaluating the measure on the params (abstractly); a
    measure that needs the extra keywords for that starts absent.

    Args:
      measures: ``{name: measure}``; read a measurement with ``gradtx.tree_get(state, name)``.

    State: ``MonitorState(measurements, measure_states)``.  optax: ``optax.monitor`` (the same,
    but ``init`` holds no measurements yet; here it holds zeros of their shapes, so the state
    keeps one structure, as ``lax.scan`` and checkpoint restores need).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> is_clipped = lambda u: gradtx.tree.norm(u) > 1.0
        >>> tx = gradtx.chain(
        ...     gradtx.monitor(
        ...         {"norm": gradtx.tree.norm, "clipped": gradtx.measure_with_ema(is_clipped, 0.9)}
        ...     ),
        ...     gradtx.clip_by_global_norm(1.0),
        ... )
        >>> state = tx.init(jnp.zeros(2))
        >>> for g in ([0.3, 0.4], [3.0, 4.0]):
        ...     _, state = tx.update(jnp.array(g), state)
        ...     norm, clipped = gradtx.tree_get(state, "norm"), gradtx.tree_get(state, "clipped")
        ...     print(f"{norm:.1f} {clipped:.4f}")  # the fraction of clipped steps, debiased
        0.5 0.0000
        5.0 0.5263
    """
    if not isinstance(measures, Mapping):
        raise TypeError(f"monitor: measures must be a mapping {{name: measure}}, got {measures!r}")
    names = tuple(measures)
    blocks = tuple(_measure_block(n, measures[n]) for n in names)

    def run(updates, states, params, count, extra):
        out, new = {}, []
        for name, block, s in zip(names, blocks, states, strict=True):
            out[name], s = block.update(updates, s, params, count=count, **extra)
            new.append(s)
        return out, tuple(new)

    def init(params):
        states = tuple(b.init(params) for b in blocks)
        zeros = {}
        for name, block, s in zip(names, blocks, states, strict=True):
            measure = lambda b=block, s=s: b.update(params, s, params, count=zero_count())[0]
            try:
                shapes = jax.eval_shape(measure)
            except (KeyError, TypeError):  # it needs the update's extra keywords (value=...)
                continue  # absent until the first update, as in optax
            zeros[name] = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        return MonitorState(zeros, states)

    def step(updates, state, params, h):
        if not isinstance(state, MonitorState) or len(state.measure_states) != len(blocks):
            raise ValueError(
                f"monitor: expected a MonitorState with {len(blocks)} measure states, got "
                f"{type(state).__name__}; was this state made by this monitor's init?"
            )
        measured, states = run(updates, state.measure_states, params, h.count, h.extra)
        return updates, MonitorState(measured, states)

    return kit.block("monitor", step, init)


def _as_float(tree: Tree) -> Tree:
    """Non-float measurements (a bool "was clipped", an integer count) as the default float, so
    their average is a fraction (optax's average turns float at the first update)."""

    def leaf(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))

    return jax.tree.map(leaf, tree)


@kit.validated
def measure_with_ema(
    measure: Measure, decay: kit.Fraction, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """The moving average of a measurement, for ``monitor``: its ``update`` returns
    ``m_t / (1 - decay^t)`` (``m_t`` without ``debias``), ``m_t = decay m_{t-1} + (1 - decay)
    measure(updates)``, ``m_0 = 0`` shaped like ``measure(params)``.  Bool and integer
    measurements are averaged as floats (the fraction of steps where it held).

    Args:
      measure: a function ``updates -> measurement``.
      decay: decay rate of the moving average.
      debias: divide by ``1 - decay^t``.
      accumulator_dtype: storage dtype of the average (``None``: the measurement's, float).

    State (on its own): ``ChainState(count, (EmptyState(), EmaState(ema)))``.
    optax: ``optax.measure_with_ema`` (a chain of the measure and ``optax.ema``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.measure_with_ema(jnp.sum, decay=0.5)
        >>> state = tx.init(jnp.zeros(2))
        >>> for g in (2.0, 4.0):
        ...     average, state = tx.update(jnp.full(2, g), state)
        ...     print(f"{average:.4f}")  # the debiased averages of 4 and 8
        4.0000
        6.6667
    """
    average = as_block(ema(decay, debias, accumulator_dtype))

    def measure_update(updates, state, params=None, count=None, **extra):
        return _as_float(measure(updates)), state

    def ema_init(params):
        return average.init(_as_float(measure(params)))

    return Chain((Block(init_empty_state, measure_update), Block(ema_init, average.update)))


__all__ = [
    "MonitorState",
    "SnapshotState",
    "measure_with_ema",
    "monitor",
    "snapshot",
]
