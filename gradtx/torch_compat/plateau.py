"""Reduce-on-plateau: shrink the step when a monitored metric stops improving.

A block with state that multiplies the updates by its current ``scale`` and then, from the metric
it is given (``update(..., value=metric)``), decides the scale of the next step.  It follows the
rules of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` exactly, so placed after the learning-rate
block of a chain it reproduces torch's optimizer + plateau-scheduler pair step for step.

Mapping a torch loop onto gradtx (one scheduler call per optimizer step)::

    # torch                                   # gradtx
    loss = f(p); loss.backward()              loss, g = jax.value_and_grad(f)(p)
    opt.step()                                u, state = tx.update(g, state, p, value=loss)
    sched.step(loss)                          p = gradtx.apply_updates(p, u)

``value`` is the loss at the params the gradients were taken at (the same number torch's
``sched.step(loss)`` receives).  The step uses the scale decided by the metrics of the *previous*
steps, exactly as torch's ``opt.step()`` uses the lr left by the previous ``sched.step``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation

_MODES = ("min", "max")
_THRESHOLD_MODES = ("rel", "abs")


class ReduceOnPlateauState(NamedTuple):
    """``scale``: the factor applied to the updates at the next step (lr = ``base_lr * scale``);
    ``best_value``: the best metric seen (``+inf``/``-inf`` before the first);
    ``plateau_count``: consecutive steps without improvement (torch's ``num_bad_epochs``);
    ``cooldown_count``: steps of cooldown left (torch's ``cooldown_counter``)."""

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array


def _is_better(value: jax.Array, best: jax.Array, mode: str, threshold_mode: str, threshold: float):
    """torch's improvement test: ``min``/``rel``: ``value < best * (1 - threshold)``;
    ``min``/``abs``: ``value < best - threshold``; ``max`` mirrors both."""
    if mode == "min":
        bar = best * (1.0 - threshold) if threshold_mode == "rel" else best - threshold
        return value < bar
    bar = best * (threshold + 1.0) if threshold_mode == "rel" else best + threshold
    return value > bar


def plateau_observer(
    factor: float,
    patience: int,
    threshold: float,
    threshold_mode: str,
    cooldown: int,
    floor: Any,
    mode: str,
    eps: float,
    unit: Any = 1.0,
) -> Callable[[ReduceOnPlateauState, jax.Array], ReduceOnPlateauState]:
    """``observe(state, value)``: ReduceLROnPlateau's ``step(metrics)`` on a state whose
    ``scale`` is the quantity it lowers: ``max(scale * factor, floor)``, kept only when
    ``unit * (old - new) > eps``.  ``reduce_on_plateau`` lowers a scale (``unit = base_lr``);
    ``from_torch`` lowers the lr itself (``unit = 1``, ``floor = min_lr``: torch's arithmetic)."""

    def observe(s: ReduceOnPlateauState, value: jax.Array) -> ReduceOnPlateauState:
        better = _is_better(value, s.best_value, mode, threshold_mode, threshold)
        best = jnp.where(better, value, s.best_value)
        bad = jnp.where(better, 0, s.plateau_count + 1)
        cooling = s.cooldown_count > 0
        cool = jnp.where(cooling, s.cooldown_count - 1, s.cooldown_count)
        bad = jnp.where(cooling, 0, bad)
        reduce = bad > patience
        lowered = jnp.maximum(s.scale * factor, floor)
        # torch skips changes smaller than eps (in lr units) so the lr stops at a fixed point
        scale = jnp.where(reduce & (unit * (s.scale - lowered) > eps), lowered, s.scale)
        return ReduceOnPlateauState(
            scale.astype(s.scale.dtype),
            best,
            jnp.where(reduce, 0, bad).astype(jnp.int32),
            jnp.where(reduce, cooldown, cool).astype(jnp.int32),
        )

    return observe


def check_plateau(where: str, mode: str, threshold_mode: str, **checks: tuple[Any, str]) -> None:
    """The argument checks of ``reduce_on_plateau`` (and of torch's ReduceLROnPlateau)."""
    if mode not in _MODES:
        raise ValueError(f"{where}: mode={mode!r} is unknown; allowed: {_MODES}")
    if threshold_mode not in _THRESHOLD_MODES:
        raise ValueError(
            f"{where}: threshold_mode={threshold_mode!r} is unknown; allowed: {_THRESHOLD_MODES}"
        )
    kit.check_ranges(where, **checks)


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_scale: float = 0.0,
    mode: str = "min",
    eps: float = 1e-8,
    *,
    base_lr: float = 1.0,
) -> GradientTransformation:
    """Scales updates by ``scale`` (1 at the start) and lowers it when ``value`` plateaus.

    Each step: ``u = scale * g``; then, with the metric ``value``:
    a step is *better* if ``value`` beats ``best_value`` by ``threshold`` (relative or absolute,
    see ``threshold_mode``; ``mode="max"`` for metrics that should grow), which resets
    ``plateau_count`` and records the new best; otherwise ``plateau_count += 1``.  While
    ``cooldown_count > 0`` it counts down and bad steps are not counted.  When
    ``plateau_count > patience``: ``scale <- max(scale * factor, min_scale)`` (applied only if the
    lr changes by more than ``eps``, i.e. ``base_lr * (old - new) > eps``), then
    ``cooldown_count = cooldown`` and ``plateau_count = 0``.

    ``base_lr`` is the learning rate the scale multiplies (put this block after the lr block);
    it only matters for ``eps``, which torch states in lr units.  torch's ``min_lr`` is
    ``min_scale = min_lr / base_lr``.  Defaults are torch's.
    torch: ``ReduceLROnPlateau(opt, mode, factor, patience, threshold, threshold_mode, cooldown,
    min_lr, eps)`` (``from_torch(..., scheduler=("ReduceLROnPlateau", {...}))`` applies the same
    rules, through ``plateau_observer``, to the lr it keeps in its state);
    optax: ``optax.contrib.reduce_on_plateau`` (different knobs: rtol/atol, no mode, averaging).

    ``update`` requires ``value=`` (a scalar); the state's fields are documented on
    ``ReduceOnPlateauState`` and readable with ``tree_get(state, "scale")``.
    """
    check_plateau(
        "reduce_on_plateau",
        mode,
        threshold_mode,
        factor=(factor, "[0, 1)"),
        patience=(patience, "[0, inf)"),
        threshold=(threshold, "[0, inf)"),
        cooldown=(cooldown, "[0, inf)"),
        min_scale=(min_scale, "[0, inf)"),
        eps=(eps, "[0, inf)"),
        base_lr=(base_lr, "(0, inf)"),
    )
    worst = jnp.inf if mode == "min" else -jnp.inf
    _observe = plateau_observer(
        factor, patience, threshold, threshold_mode, cooldown, min_scale, mode, eps, base_lr
    )

    def init(params: Any) -> ReduceOnPlateauState:
        del params
        dt = jnp.result_type(float)
        zero = jnp.zeros([], jnp.int32)
        return ReduceOnPlateauState(jnp.ones([], dt), jnp.asarray(worst, dt), zero, zero)

    def step(updates, state, params, h):
        value = h.extra.get("value")
        if value is None:
            raise ValueError(
                "reduce_on_plateau: update needs the metric, e.g. "
                "tx.update(grads, state, params, value=loss)"
            )
        scaled = jax.tree.map(lambda x: (state.scale.astype(x.dtype) * x).astype(x.dtype), updates)
        return scaled, _observe(state, jnp.asarray(value).astype(state.best_value.dtype))

    return kit.block("reduce_on_plateau", step, init)


__all__ = ["ReduceOnPlateauState", "check_plateau", "plateau_observer", "reduce_on_plateau"]
