"""Schedules that cycle or restart: SGDR and cosine warm restarts, Smith's cyclical rates,
onecycle, and interpolation through given points."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Schedule
from gradtx.kit import check_ranges
from gradtx.schedules._common import (
    _INTERPOLATORS,
    Scalar,
    _check_choice,
    _check_int,
    _check_steps,
    _cosine,
    _float_step,
)
from gradtx.schedules.decay import join_schedules, warmup_cosine_decay_schedule


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
    steps = _check_steps(where, "transition_steps", transition_steps)
    if steps <= 0:
        raise ValueError(f"{where}: transition_steps must be > 0, got {transition_steps!r}")
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
