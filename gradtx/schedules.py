"""Schedules: pure functions ``step -> value`` for learning rates and other hyperparameters.

A schedule takes the number of completed optimizer steps (an int32 array, 0 on the first update;
any integer shape, evaluated elementwise) and returns the value for that step, computed in the
default float dtype (float64 under ``jax_enable_x64``, else float32).  They are plain functions of
their argument, so they jit, vmap and differentiate like any JAX function.  Pass one wherever a
hyperparameter is accepted (``gradtx.adam(learning_rate=cosine_decay_schedule(1e-3, 10_000))``);
the optimizer evaluates it at its one step counter.

Names and arguments follow optax where optax has the schedule (optax evaluates in float32; these
are exact in float64).  Arguments are validated when the schedule is built.  The torch.optim
equivalents are noted per schedule: torch's scheduler steps after each optimizer step, so the
learning rate torch uses at step ``t`` is ``schedule(t)`` here.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Schedule
from gradtx.kit import check_ranges

Scalar = Any  # a float, or a scalar array


# --- helpers -------------------------------------------------------------------------------------


def _float_step(step: Any) -> jax.Array:
    """The step as an array of the default float dtype (exact for every int32 step)."""
    return jnp.asarray(step).astype(jnp.result_type(float))


def _check_int(where: str, name: str, value: Any, lowest: int) -> int:
    """``value`` as a Python int, or a ValueError if it is not an integer ``>= lowest``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < lowest:
        raise ValueError(f"{where}: {name} must be an integer >= {lowest}, got {value!r}")
    return int(value)


def _check_choice(where: str, name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {list(choices)}, got {value!r}")


def _linear(start: Any, end: Any, frac: jax.Array) -> jax.Array:
    """``start + (end - start) * frac``, computed from the nearer end: exact at both, and no
    cancellation of large terms near a small end value (the last steps of a onecycle)."""
    return jnp.where(frac <= 0.5, start + (end - start) * frac, end + (start - end) * (1 - frac))


def _cosine(start: Any, end: Any, frac: jax.Array) -> jax.Array:
    """``start + (end - start) * (1 - cos(pi * frac)) / 2``: half a cosine wave from start to end,
    computed from the nearer end like ``_linear``."""
    c = jnp.cos(jnp.pi * frac)
    near_start = start + (end - start) * (0.5 * (1 - c))
    return jnp.where(frac <= 0.5, near_start, end + (start - end) * (0.5 * (1 + c)))


_INTERPOLATORS: dict[str, Callable[[Any, Any, jax.Array], jax.Array]] = {
    "linear": _linear,
    "cosine": _cosine,
}


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
        _check_int(where, "boundary", b, 0)
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
    ``transition_begin``, ``end_value`` from ``transition_begin + T`` on.  ``T = 0`` holds
    ``init_value`` forever (as optax does).

    optax: ``optax.polynomial_schedule``; torch: ``PolynomialLR(total_iters=T, power)`` with
    ``end_value = 0``.
    """
    where = "polynomial_schedule"
    steps = _check_int(where, "transition_steps", transition_steps, 0)
    begin = _check_int(where, "transition_begin", transition_begin, 0)
    check_ranges(where, power=(power, "[0, inf)"))
    if steps == 0:
        return constant_schedule(init_value)

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

    ``transition_steps`` must be >= 1 and ``decay_rate`` > 0 (optax silently returns a constant
    for non-positive ones; here that is an error).  optax: ``optax.exponential_decay``.  torch:
    ``ExponentialLR(gamma)`` is ``exponential_decay(lr, 1, gamma)``; ``StepLR(step_size, gamma)``
    is ``exponential_decay(lr, step_size, gamma, staircase=True)``.
    """
    where = "exponential_decay"
    steps = _check_int(where, "transition_steps", transition_steps, 1)
    begin = _check_int(where, "transition_begin", transition_begin, 0)
    check_ranges(where, decay_rate=(decay_rate, "(0, inf)"))

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
    warmup = _check_int("warmup_exponential_decay_schedule", "warmup_steps", warmup_steps, 0)
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return join_schedules([linear_schedule(init_value, peak_value, warmup), decay], [warmup])


# --- cosine --------------------------------------------------------------------------------------


def cosine_decay_schedule(
    init_value: Scalar, decay_steps: int, alpha: Scalar = 0.0, exponent: Scalar = 1.0
) -> Schedule:
    """``value(t) = init_value * ((1 - alpha) * c**exponent + alpha)`` with
    ``c = (1 + cos(pi * min(t, T) / T)) / 2``, ``T = decay_steps``: from ``init_value`` down to
    the floor ``alpha * init_value``, reached at ``t = T`` and held after.

    optax: ``optax.cosine_decay_schedule``; torch: ``CosineAnnealingLR(T_max=T,
    eta_min=alpha * lr)`` for ``t <= T`` (torch's rises again past ``T_max``; this one stays).
    """
    where = "cosine_decay_schedule"
    steps = _check_int(where, "decay_steps", decay_steps, 1)
    check_ranges(where, alpha=(alpha, "[0, 1]"), exponent=(exponent, "(0, inf)"))

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
    warmup = _check_int(where, "warmup_steps", warmup_steps, 0)
    total = _check_int(where, "decay_steps", decay_steps, warmup + 1)
    if isinstance(peak_value, int | float):
        alpha = 0.0 if peak_value == 0 else end_value / peak_value
    else:  # an array, possibly traced (a vmap over peaks): no Python branching on it
        alpha = end_value / jnp.where(peak_value == 0, 1, peak_value)
    decay = cosine_decay_schedule(peak_value, total - warmup, alpha, exponent)
    return join_schedules([linear_schedule(init_value, peak_value, warmup), decay], [warmup])


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
    """SGD with warm restarts (Loshchilov & Hutter 2017) as a list of cycles: cycle ``i`` is
    ``warmup_cosine_decay_schedule(**cosine_kwargs[i])`` and lasts its ``decay_steps``.
    optax: ``optax.sgdr_schedule``.  For geometric periods see ``cosine_warm_restarts_schedule``."""
    cycles = [dict(kw) for kw in cosine_kwargs]
    if not cycles:
        raise ValueError("sgdr_schedule: cosine_kwargs must describe at least one cycle")
    boundaries = np.cumsum([kw.get("decay_steps", 0) for kw in cycles])[:-1]
    schedules = [warmup_cosine_decay_schedule(**kw) for kw in cycles]
    return join_schedules(schedules, [int(b) for b in boundaries])


def cosine_warm_restarts_schedule(
    init_value: Scalar,
    first_period: int,
    t_mult: int = 1,
    end_value: Scalar = 0.0,
    peak_decay: Scalar = 1.0,
) -> Schedule:
    """Cosine annealing with warm restarts (SGDR): cycle ``i`` lasts ``T_i = first_period *
    t_mult**i`` steps and starts at ``S_i = sum_{j<i} T_j``; inside it, with ``s = t - S_i``,
    ``value(t) = end_value + (peak_i - end_value) * (1 + cos(pi * s / T_i)) / 2`` where
    ``peak_i = init_value * peak_decay**i``.

    torch: ``CosineAnnealingWarmRestarts(T_0=first_period, T_mult=t_mult, eta_min=end_value)``
    (``peak_decay = 1``).  optax: ``sgdr_schedule`` with one dict per cycle.
    """
    where = "cosine_warm_restarts_schedule"
    period = _check_int(where, "first_period", first_period, 1)
    mult = _check_int(where, "t_mult", t_mult, 1)
    check_ranges(where, peak_decay=(peak_decay, "[0, inf)"))
    starts = [0]
    if mult > 1:
        # every cycle that begins within the int32 step range
        while starts[-1] <= np.iinfo(np.int32).max:
            starts.append(starts[-1] + period * mult ** (len(starts) - 1))
    starts_arr = np.asarray(starts, np.float64)

    def schedule(step):
        t = _float_step(step)
        if mult == 1:
            cycle = jnp.floor(t / period)
            start, length = cycle * period, period
        else:
            table = jnp.asarray(starts_arr, t.dtype)
            index = jnp.searchsorted(table, t, side="right") - 1
            start, length = table[index], table[index + 1] - table[index]
            cycle = index.astype(t.dtype)
        peak = init_value * peak_decay**cycle
        return _cosine(peak, end_value, (t - start) / length)

    return schedule


# --- cyclic (Smith 2017) and onecycle (Smith & Topin 2018) ---------------------------------------

_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def cyclic_schedule(
    init_value: Scalar,
    peak_value: Scalar,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: Scalar = 1.0,
    scale_fn: Callable[[jax.Array], Any] | None = None,
    scale_mode: str = "cycle",
) -> Schedule:
    """Cyclical learning rate (Smith 2017).  A cycle lasts ``L = up + down`` steps
    (``down = up`` by default); with ``k = floor(t / L)`` and ``s = t - k L`` the triangle
    ``h = s / up`` for ``s <= up`` else ``(L - s) / down`` gives
    ``value(t) = init_value + (peak_value - init_value) * h * a``, the amplitude factor ``a``
    being 1 ("triangular"), ``0.5**k`` ("triangular2") or ``gamma**t`` ("exp_range").
    A custom ``scale_fn`` (written with jax.numpy; it gets a float array) replaces ``mode``:
    ``a = scale_fn(k + 1)`` (the cycle counted from 1, as torch does) with ``scale_mode="cycle"``,
    ``a = scale_fn(t)`` with ``scale_mode="iterations"``.

    ``peak_value < init_value`` runs the cycle downwards, which is the matching momentum cycle
    (torch cycles momentum from ``max_momentum`` down to ``base_momentum``).
    optax: none.  torch: ``CyclicLR(base_lr=init_value, max_lr=peak_value, step_size_up,
    step_size_down, mode, gamma, scale_fn, scale_mode)``.
    """
    where = "cyclic_schedule"
    up = _check_int(where, "step_size_up", step_size_up, 1)
    down = up if step_size_down is None else _check_int(where, "step_size_down", step_size_down, 1)
    if scale_fn is None:
        _check_choice(where, "mode", mode, _CYCLIC_MODES)
        check_ranges(where, gamma=(gamma, "(0, inf)"))
    else:
        _check_choice(where, "scale_mode", scale_mode, ("cycle", "iterations"))
    length = up + down

    def schedule(step):
        t = _float_step(step)
        k = jnp.floor(t / length)
        s = t - k * length
        height = jnp.where(s <= up, s / up, (length - s) / down)
        if scale_fn is not None:
            amplitude = scale_fn(k + 1 if scale_mode == "cycle" else t)
        elif mode == "triangular":
            amplitude = 1.0
        elif mode == "triangular2":
            amplitude = 0.5**k
        else:
            amplitude = gamma**t
        return init_value + (peak_value - init_value) * height * amplitude

    return schedule


def interpolate_schedule(
    boundaries: Sequence[float], values: Sequence[Scalar], interpolate_type: str = "linear"
) -> Schedule:
    """The schedule through the points ``(boundaries[i], values[i])``: between neighbouring
    boundaries the value goes along a line (``"linear"``) or half a cosine wave (``"cosine"``);
    ``values[0]`` before the first boundary, ``values[-1]`` from the last one on.  Boundaries are
    non-decreasing real numbers, whole or not, negative or not; a repeated boundary makes a jump
    (the value at it is the later one).  Every onecycle schedule here is one of these.

    optax: none (``piecewise_interpolate_schedule`` places its points by scales).  torch:
    ``OneCycleLR`` (``gradtx.torch_compat``), whose phases end at ``pct_start * total_steps - 1``.
    """
    where = "interpolate_schedule"
    _check_choice(where, "interpolate_type", interpolate_type, tuple(_INTERPOLATORS))
    knots, values = [float(b) for b in boundaries], list(values)
    if not knots or len(knots) != len(values):
        raise ValueError(
            f"{where}: need as many values as boundaries (at least one), got {len(knots)} "
            f"boundaries and {len(values)} values"
        )
    if not np.all(np.isfinite(knots)) or any(b1 < b0 for b0, b1 in pairwise(knots)):
        raise ValueError(f"{where}: boundaries must be finite and non-decreasing, got {knots}")
    interpolate = _INTERPOLATORS[interpolate_type]
    segments = [
        (b0, b1, v0, v1)
        for (b0, b1), (v0, v1) in zip(pairwise(knots), pairwise(values), strict=True)
        if b1 > b0
    ]

    def schedule(step):
        t = _float_step(step)
        out = jnp.where(t < knots[0], values[0], values[-1]) + jnp.zeros_like(t)
        for b0, b1, v0, v1 in segments:
            inside = (t >= b0) & (t < b1)
            out = jnp.where(inside, interpolate(v0, v1, (t - b0) / (b1 - b0)), out)
        return out

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: Scalar,
    boundaries_and_scales: Mapping[int, float] | None = None,
) -> Schedule:
    """Interpolates between the values ``v_0 = init_value``, ``v_i = v_{i-1} * s_i`` placed at
    step 0 and at the sorted boundaries ``b_i`` of ``{b_i: s_i}``: between ``b_{i-1}`` and
    ``b_i`` the value goes from ``v_{i-1}`` to ``v_i`` along a line (``"linear"``) or half a
    cosine wave (``"cosine"``); ``v_n`` from the last boundary on.
    optax: ``optax.piecewise_interpolate_schedule``."""
    where = "piecewise_interpolate_schedule"
    items = sorted((boundaries_and_scales or {}).items())
    values = [init_value]
    for b, s in items:
        _check_int(where, "boundary", b, 0)
        check_ranges(where, scale=(s, "[0, inf)"))
        values.append(values[-1] * s)
    _check_choice(where, "interpolate_type", interpolate_type, tuple(_INTERPOLATORS))
    return interpolate_schedule([0, *(b for b, _ in items)], values, interpolate_type)


def _onecycle_knots(where: str, transition_steps: int, pct_start: float, pct_final: float | None):
    steps = _check_int(where, "transition_steps", transition_steps, 1)
    check_ranges(where, pct_start=(pct_start, "[0, 1]"))
    rise = int(pct_start * steps)
    if pct_final is None:
        return [0, rise, steps]
    check_ranges(where, pct_final=(pct_final, "[0, 1]"))
    if pct_final < pct_start:
        raise ValueError(f"{where}: pct_final={pct_final} must be >= pct_start={pct_start}")
    return [0, rise, int(pct_final * steps), steps]


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: Scalar,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One cycle (Smith & Topin 2018), cosine phases: with ``T = transition_steps``,
    ``a = int(pct_start * T)``, ``lo = peak_value / div_factor``: half-cosine from ``lo`` up to
    ``peak_value`` on ``[0, a]``, then down to ``lo / final_div_factor`` on ``[a, T]``, constant
    after.  optax: ``optax.cosine_onecycle_schedule`` (same knots).  torch: ``OneCycleLR`` has
    the same values but puts the phase ends at ``pct_start * T - 1`` and ``T - 1``.
    Pair it with ``onecycle_momentum(T, pct_start)``."""
    where = "cosine_onecycle_schedule"
    check_ranges(where, div_factor=(div_factor, "(0, inf)"))
    check_ranges(where, final_div_factor=(final_div_factor, "(0, inf)"))
    knots = _onecycle_knots(where, transition_steps, pct_start, None)
    low = peak_value / div_factor
    return interpolate_schedule(knots, [low, peak_value, low / final_div_factor], "cosine")


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: Scalar,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One cycle, three linear phases: with ``lo = peak_value / div_factor``, ``a = int(pct_start
    * T)``, ``f = int(pct_final * T)``: ``lo -> peak_value`` on ``[0, a]``, ``peak_value -> lo``
    on ``[a, f]``, ``lo -> lo / final_div_factor`` on ``[f, T]``, constant after.
    optax: ``optax.linear_onecycle_schedule`` (same knots).  torch: ``OneCycleLR(...,
    anneal_strategy="linear", three_phase=True)`` with ``pct_final = 2 * pct_start``.
    Pair it with ``onecycle_momentum(T, pct_start, pct_final=pct_final,
    anneal_strategy="linear")``."""
    where = "linear_onecycle_schedule"
    check_ranges(where, div_factor=(div_factor, "(0, inf)"))
    check_ranges(where, final_div_factor=(final_div_factor, "(0, inf)"))
    knots = _onecycle_knots(where, transition_steps, pct_start, pct_final)
    low = peak_value / div_factor
    return interpolate_schedule(knots, [low, peak_value, low, low / final_div_factor], "linear")


def onecycle_momentum(
    transition_steps: int,
    pct_start: float = 0.3,
    base_momentum: Scalar = 0.85,
    max_momentum: Scalar = 0.95,
    anneal_strategy: str = "cos",
    pct_final: float = 0.85,
) -> Schedule:
    """The momentum (or Adam ``b1``) cycle that goes with a onecycle learning rate: high while the
    rate is low and low at its peak.  ``"cos"`` (with ``cosine_onecycle_schedule``):
    ``max_momentum -> base_momentum`` on ``[0, a]``, back to ``max_momentum`` on ``[a, T]``;
    ``"linear"`` (with ``linear_onecycle_schedule``): the same lines on ``[0, a]`` and ``[a, f]``,
    then ``max_momentum``.  ``a = int(pct_start * T)``, ``f = int(pct_final * T)``.
    optax: none; torch: the ``cycle_momentum`` of ``OneCycleLR`` (torch's phase ends, see
    ``cosine_onecycle_schedule``)."""
    where = "onecycle_momentum"
    _check_choice(where, "anneal_strategy", anneal_strategy, ("cos", "linear"))
    if anneal_strategy == "cos":
        knots = _onecycle_knots(where, transition_steps, pct_start, None)
        return interpolate_schedule(knots, [max_momentum, base_momentum, max_momentum], "cosine")
    knots = _onecycle_knots(where, transition_steps, pct_start, pct_final)
    values = [max_momentum, base_momentum, max_momentum, max_momentum]
    return interpolate_schedule(knots, values, "linear")


# --- joining -------------------------------------------------------------------------------------


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[0](t)`` for ``t < boundaries[0]``, then ``schedules[i](t - boundaries[i-1])``
    for ``boundaries[i-1] <= t < boundaries[i]``: each later schedule counts from its own start.
    Needs ``len(boundaries) == len(schedules) - 1`` and non-decreasing boundaries >= 0.
    optax: ``optax.join_schedules``; torch: ``SequentialLR(schedulers, milestones)``."""
    where = "join_schedules"
    schedules, boundaries = list(schedules), list(boundaries)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{where}: need one boundary fewer than schedules, got {len(schedules)} schedules "
            f"and {len(boundaries)} boundaries"
        )
    for b in boundaries:
        _check_int(where, "boundary", b, 0)
    if any(b1 < b0 for b0, b1 in pairwise(boundaries)):
        raise ValueError(f"{where}: boundaries must be non-decreasing, got {boundaries}")

    def schedule(step):
        step = jnp.asarray(step)
        out = schedules[0](step)
        for b, later in zip(boundaries, schedules[1:], strict=True):
            out = jnp.where(step < b, out, later(step - b))
        return out

    return schedule


__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "cosine_warm_restarts_schedule",
    "cyclic_schedule",
    "exponential_decay",
    "interpolate_schedule",
    "inverse_time_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "onecycle_momentum",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
