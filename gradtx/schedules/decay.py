"""Schedules that decay (or warm up, then decay): constant, piecewise constant, polynomial and
linear, exponential and inverse-time, cosine; and ``join_schedules``, which strings schedules
together."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from itertools import pairwise

import jax.numpy as jnp

from gradtx.base import Schedule
from gradtx.kit import check_ranges
from gradtx.schedules._common import (
    Scalar,
    _check_int,
    _check_steps,
    _float_step,
)


def _constant_instead(where: str, why: str, init_value: Scalar) -> Schedule:
    """What optax returns for a degenerate schedule (and logs): ``init_value`` at every step;
    here the log is a warning, so it is seen."""
    warnings.warn(f"{where}: {why}; the schedule is the constant init_value", stacklevel=3)
    return constant_schedule(init_value)


# --- constant, piecewise and polynomial ----------------------------------------------------------


def constant_schedule(value: Scalar) -> Schedule:
    """``value`` at every step.  optax: ``optax.constant_schedule``; torch: no scheduler."""

    def schedule(step):
        return jnp.zeros(jnp.shape(step), jnp.result_type(float)) + value

    return schedule


def piecewise_constant_schedule(
    init_value: Scalar, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """Step / multi-step decay: ``value(t) = init_value * prod(s_i for b_i, s_i if t >= b_i)``
    over the ``{b_i: s_i}`` of ``boundaries_and_scales`` (boundaries >= 0, scales >= 0).

    optax: ``optax.piecewise_constant_schedule``.  torch: ``MultiStepLR(milestones, gamma)`` is
    ``{m: gamma for m in milestones}``; ``StepLR(step_size, gamma)`` is
    ``{k * step_size: gamma for k = 1, 2, ...}`` (or ``exponential_decay(..., staircase=True)``).
    """
    where = "piecewise_constant_schedule"
    items = sorted((boundaries_and_scales or {}).items())
    for b, s in items:
        _check_steps(where, "boundary", b)
        check_ranges(where, scale=(s, "[0, inf)"))

    def schedule(step):
        t = _float_step(step)
        factor = jnp.ones_like(t)
        for b, s in items:
            factor = jnp.where(t >= b, factor * s, factor)
        return init_value * factor

    return schedule


def polynomial_schedule(
    init_value: Scalar,
    end_value: Scalar,
    power: Scalar,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """``value(t) = (init_value - end_value) * (1 - c / T)**power + end_value`` with
    ``c = clip(t - transition_begin, 0, T)``, ``T = transition_steps``: ``init_value`` until
    ``transition_begin``, ``end_value`` from ``transition_begin + T`` on.  As in optax,
    ``T <= 0`` gives the constant ``init_value`` (with a warning) and a negative
    ``transition_begin`` counts as 0; step counts may be floats (``8.0``).

    optax: ``optax.polynomial_schedule``; torch: ``PolynomialLR(total_iters=T, power)`` with
    ``end_value = 0``.
    """
    where = "polynomial_schedule"
    steps = _check_steps(where, "transition_steps", transition_steps)
    begin = max(_check_steps(where, "transition_begin", transition_begin), 0)
    check_ranges(where, power=(power, "[0, inf)"))
    if steps <= 0:
        return _constant_instead(where, f"transition_steps={transition_steps} <= 0", init_value)

    def schedule(step):
        c = jnp.clip(_float_step(step) - begin, 0, steps)
        # (T - c) / T rather than 1 - c / T: XLA turns c / T into c * (1 / T), and at c = T the
        # difference could come out a hair below zero, which a fractional power makes NaN
        value = (init_value - end_value) * ((steps - c) / steps) ** power + end_value
        # both ends exactly (XLA's reciprocal and fused multiply-add shift them by an ulp)
        return jnp.where(c <= 0, init_value, jnp.where(c >= steps, end_value, value))

    return schedule


def linear_schedule(
    init_value: Scalar, end_value: Scalar, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Linear ramp: ``polynomial_schedule(..., power=1)``, i.e.
    ``value(t) = init_value + (end_value - init_value) * c / T``.

    optax: ``optax.linear_schedule``; torch: ``LinearLR(start_factor, end_factor, total_iters)``
    with ``init_value = lr * start_factor``, ``end_value = lr * end_factor``.
    """
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def _warmup(init_value: Scalar, peak_value: Scalar, warmup: float) -> Schedule:
    """The linear warmup of the warmup schedules (none at all for ``warmup <= 0``: no warning)."""
    return linear_schedule(init_value, peak_value, warmup) if warmup > 0 else constant_schedule(0.0)


def warmup_constant_schedule(init_value: Scalar, peak_value: Scalar, warmup_steps: int) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps``, then constant.
    optax: ``optax.warmup_constant_schedule``."""
    return linear_schedule(init_value, peak_value, warmup_steps)


# --- exponential and inverse-time decay ----------------------------------------------------------


def exponential_decay(
    init_value: Scalar,
    transition_steps: int,
    decay_rate: Scalar,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Scalar | None = None,
) -> Schedule:
    """``value(t) = init_value * decay_rate**p`` with ``p = (t - transition_begin) /
    transition_steps`` (``floor(p)`` if ``staircase``), ``init_value`` before
    ``transition_begin``; ``end_value`` bounds it (from below if ``decay_rate < 1``, else above).

    As in optax, ``transition_steps <= 0`` or ``decay_rate == 0`` give the constant
    ``init_value`` (with a warning); a negative ``decay_rate`` is an error (its powers are not
    real).  optax: ``optax.exponential_decay``.  torch:
    ``ExponentialLR(gamma)`` is ``exponential_decay(lr, 1, gamma)``; ``StepLR(step_size, gamma)``
    is ``exponential_decay(lr, step_size, gamma, staircase=True)``.
    """
    where = "exponential_decay"
    steps = _check_steps(where, "transition_steps", transition_steps)
    begin = max(_check_steps(where, "transition_begin", transition_begin), 0)
    check_ranges(where, decay_rate=(decay_rate, "[0, inf)"))
    if steps <= 0:
        return _constant_instead(where, f"transition_steps={transition_steps} <= 0", init_value)
    if isinstance(decay_rate, int | float) and decay_rate == 0:
        return _constant_instead(where, "decay_rate=0", init_value)

    def schedule(step):
        elapsed = _float_step(step) - begin
        p = elapsed / steps
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(elapsed <= 0, init_value, init_value * decay_rate**p)
        if end_value is None:
            return value
        # a floor when decaying, a ceiling when growing (a jnp.where: decay_rate may be traced)
        floor, cap = jnp.maximum(value, end_value), jnp.minimum(value, end_value)
        return jnp.where(decay_rate < 1, floor, cap)

    return schedule


def inverse_time_decay(
    init_value: Scalar, decay_steps: int, decay_rate: Scalar, staircase: bool = False
) -> Schedule:
    """``value(t) = init_value / (1 + decay_rate * p)`` with ``p = t / decay_steps``
    (``floor(p)`` if ``staircase``).

    optax: none (TensorFlow's ``InverseTimeDecay``).  torch: Adagrad's ``lr_decay`` is
    ``inverse_time_decay(lr, 1, lr_decay)`` on ``from_torch("Adagrad")``'s learning rate.
    """
    where = "inverse_time_decay"
    steps = _check_int(where, "decay_steps", decay_steps, 1)
    check_ranges(where, decay_rate=(decay_rate, "[0, inf)"))

    def schedule(step):
        p = _float_step(step) / steps
        if staircase:
            p = jnp.floor(p)
        return init_value / (1 + decay_rate * p)

    return schedule


def warmup_exponential_decay_schedule(
    init_value: Scalar,
    peak_value: Scalar,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: Scalar,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Scalar | None = None,
) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps``, then
    ``exponential_decay(peak_value, transition_steps, decay_rate, transition_begin, staircase,
    end_value)`` counted from the end of the warmup.
    optax: ``optax.warmup_exponential_decay_schedule``."""
    warmup = _check_steps("warmup_exponential_decay_schedule", "warmup_steps", warmup_steps)
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return join_schedules([_warmup(init_value, peak_value, warmup), decay], [warmup])


# --- cosine --------------------------------------------------------------------------------------


def cosine_decay_schedule(
    init_value: Scalar, decay_steps: int, alpha: Scalar = 0.0, exponent: Scalar = 1.0
) -> Schedule:
    """``value(t) = init_value * ((1 - alpha) * c**exponent + alpha)`` with
    ``c = (1 + cos(pi * min(t, T) / T)) / 2``, ``T = decay_steps``: from ``init_value`` down to
    the floor ``alpha * init_value``, reached at ``t = T`` and held after (``alpha > 1`` makes
    it rise, as in optax).

    optax: ``optax.cosine_decay_schedule``; torch: ``CosineAnnealingLR(T_max=T,
    eta_min=alpha * lr)`` for ``t <= T`` (torch's rises again past ``T_max``; this one stays).
    """
    where = "cosine_decay_schedule"
    steps = _check_steps(where, "decay_steps", decay_steps)
    if steps <= 0:
        raise ValueError(f"{where}: decay_steps must be > 0, got {decay_steps!r}")
    check_ranges(where, exponent=(exponent, "(0, inf)"))

    def schedule(step):
        c = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(_float_step(step), steps) / steps))
        c = jnp.maximum(c, 0)  # a fractional exponent must not see a rounding-negative base
        return init_value * ((1 - alpha) * c**exponent + alpha)

    return schedule


def warmup_cosine_decay_schedule(
    init_value: Scalar,
    peak_value: Scalar,
    warmup_steps: int,
    decay_steps: int,
    end_value: Scalar = 0.0,
    exponent: Scalar = 1.0,
) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps``, then cosine decay
    from ``peak_value`` to ``end_value`` until step ``decay_steps`` (which counts the warmup:
    ``decay_steps > warmup_steps``), ``end_value`` after.  The decay is
    ``cosine_decay_schedule(peak_value, decay_steps - warmup_steps, end_value / peak_value,
    exponent)``.  optax: ``optax.warmup_cosine_decay_schedule``."""
    where = "warmup_cosine_decay_schedule"
    warmup = max(_check_steps(where, "warmup_steps", warmup_steps), 0)
    total = _check_steps(where, "decay_steps", decay_steps)
    if total <= warmup:
        raise ValueError(
            f"{where}: decay_steps={decay_steps!r} must exceed warmup_steps={warmup_steps!r} "
            f"(decay_steps counts the warmup)"
        )
    if isinstance(peak_value, int | float):
        alpha = 0.0 if peak_value == 0 else end_value / peak_value
    else:  # an array, possibly traced (a vmap over peaks): no Python branching on it
        alpha = end_value / jnp.where(peak_value == 0, 1, peak_value)
    decay = cosine_decay_schedule(peak_value, total - warmup, alpha, exponent)
    return join_schedules([_warmup(init_value, peak_value, warmup), decay], [warmup])


# --- joining -------------------------------------------------------------------------------------


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[0](t)`` for ``t < boundaries[0]``, then ``schedules[i](t - boundaries[i-1])``
    for ``boundaries[i-1] <= t < boundaries[i]``: each later schedule counts from its own start.
    Needs one boundary fewer than schedules (a last, unused boundary is ignored, as optax does)
    and non-decreasing boundaries.
    optax: ``optax.join_schedules``; torch: ``SequentialLR(schedulers, milestones)``."""
    where = "join_schedules"
    schedules, boundaries = list(schedules), list(boundaries)
    if len(boundaries) not in (len(schedules) - 1, len(schedules)):
        raise ValueError(
            f"{where}: need one boundary fewer than schedules, got {len(schedules)} schedules "
            f"and {len(boundaries)} boundaries"
        )
    boundaries = [_check_steps(where, "boundary", b) for b in boundaries[: len(schedules) - 1]]
    if any(b1 < b0 for b0, b1 in pairwise(boundaries)):
        raise ValueError(f"{where}: boundaries must be non-decreasing, got {boundaries}")

    def schedule(step):
        step = jnp.asarray(step)
        out = schedules[0](step)
        for b, later in zip(boundaries, schedules[1:], strict=True):
            out = jnp.where(step < b, out, later(step - b))
        return out

    return schedule
