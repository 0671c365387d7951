"""torch.optim.lr_scheduler as schedules.

``torch_schedule("CosineAnnealingLR", 0.1, T_max=100)`` is the learning rate that
``torch.optim.lr_scheduler.CosineAnnealingLR`` gives when ``scheduler.step()`` is called once
after every ``optimizer.step()``: the lr of optimizer step ``t`` (counted from 0) is the schedule
at ``t``.  ``torch_schedules`` also gives the momentum / beta1 that ``CyclicLR`` and
``OneCycleLR`` cycle.

Each builder below takes the optimizer's lr first, then the scheduler's torch kwargs with torch's
names and defaults, and states the scheduler as the public schedules of ``gradtx.schedules``
(CosineAnnealingLR and LambdaLR are closed forms of their own).  Evaluated in float64 under x64,
they equal torch's recursive updates up to rounding.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.base import Schedule
from gradtx.kit import check_ranges
from gradtx.schedules import (
    constant_schedule,
    cosine_warm_restarts_schedule,
    cyclic_schedule,
    exponential_decay,
    interpolate_schedule,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
)


class TorchSchedules(NamedTuple):
    """What a torch scheduler sets at each step: the learning rate and, for ``CyclicLR`` /
    ``OneCycleLR`` with ``cycle_momentum``, the momentum (SGD, RMSprop) or beta1 (the Adam
    family); ``None`` when the scheduler leaves it alone."""

    lr: Schedule
    momentum: Schedule | None = None


def _step_lr(lr: float, /, step_size: int, gamma: float = 0.1) -> TorchSchedules:
    """``lr * gamma ** (t // step_size)``."""
    return TorchSchedules(exponential_decay(lr, step_size, gamma, staircase=True))


def _multistep_lr(lr: float, /, milestones: Sequence[int], gamma: float = 0.1) -> TorchSchedules:
    """``lr * gamma ** #{milestones <= t}`` (a repeated milestone counts twice, as in torch)."""
    scales = {m: gamma**n for m, n in Counter(milestones).items()}
    return TorchSchedules(piecewise_constant_schedule(lr, scales))


def _constant_lr(lr: float, /, factor: float = 1.0 / 3, total_iters: int = 5) -> TorchSchedules:
    """``lr * factor`` for ``t < total_iters``, then ``lr``."""
    check_ranges("ConstantLR", factor=(factor, "[0, 1]"))
    parts = [constant_schedule(lr * factor), constant_schedule(lr)]
    return TorchSchedules(join_schedules(parts, [total_iters]))


def _linear_lr(
    lr: float, /, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> TorchSchedules:
    """``lr * (start + (end - start) * min(t, total_iters) / total_iters)``."""
    check_ranges(
        "LinearLR", start_factor=(start_factor, "(0, 1]"), end_factor=(end_factor, "[0, 1]")
    )
    return TorchSchedules(linear_schedule(lr * start_factor, lr * end_factor, total_iters))


def _exponential_lr(lr: float, /, gamma: float) -> TorchSchedules:
    """``lr * gamma ** t``."""
    return TorchSchedules(exponential_decay(lr, 1, gamma))


def _polynomial_lr(lr: float, /, total_iters: int = 5, power: float = 1.0) -> TorchSchedules:
    """``lr * (1 - min(t, total_iters) / total_iters) ** power``."""
    return TorchSchedules(polynomial_schedule(lr, 0.0, power, total_iters))


def _cosine_annealing_lr(lr: float, /, T_max: int, eta_min: float = 0.0) -> TorchSchedules:
    """``eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2`` for every t: past ``T_max`` it
    rises again (period ``2 T_max``), which is what torch's recursive update computes
    (``schedules.cosine_decay_schedule`` holds its floor instead)."""

    def fn(count):
        t = jnp.asarray(count).astype(jnp.result_type(float))
        return eta_min + (lr - eta_min) * (1 + jnp.cos(jnp.pi * t / T_max)) / 2

    return TorchSchedules(fn)


def _cosine_warm_restarts(
    lr: float, /, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> TorchSchedules:
    """Cosine from ``lr`` to ``eta_min`` over ``T_i`` steps, restarting with ``T_{i+1} =
    T_mult * T_i`` (``T_0`` first)."""
    return TorchSchedules(cosine_warm_restarts_schedule(lr, T_0, T_mult, eta_min))


def _cyclic_lr(
    lr: float,
    /,
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[jax.Array], Any] | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> TorchSchedules:
    """Triangular cycles between ``base_lr`` and ``max_lr`` (the optimizer's lr is ignored);
    the momentum runs the same cycle the other way, from ``max_momentum`` down to
    ``base_momentum``."""
    shape = dict(
        step_size_up=step_size_up, step_size_down=step_size_down, mode=mode, gamma=gamma,
        scale_fn=scale_fn, scale_mode=scale_mode,
    )  # fmt: skip
    momentum = cyclic_schedule(max_momentum, base_momentum, **shape) if cycle_momentum else None
    return TorchSchedules(cyclic_schedule(base_lr, max_lr, **shape), momentum)


def _one_cycle_lr(
    lr: float,
    /,
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> TorchSchedules:
    """1cycle (Smith & Topin 2017) through torch's phase ends: from ``max_lr / div_factor`` up to
    ``max_lr`` at step ``pct_start * total - 1``, then down to ``max_lr / div_factor /
    final_div_factor`` at step ``total - 1`` (``three_phase``: back to the initial lr at
    ``2 pct_start total - 2`` first), each phase a half cosine or a line; the momentum moves the
    other way, between ``max_momentum`` and ``base_momentum``.  torch raises past
    ``total_steps``; this holds the value of step ``total_steps``."""
    if total_steps is None and epochs is not None and steps_per_epoch is not None:
        for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"OneCycleLR: expected positive integer {name}, got {value}")
        total_steps = epochs * steps_per_epoch
    elif total_steps is None:
        raise ValueError("OneCycleLR: define total_steps or (epochs and steps_per_epoch)")
    if not isinstance(total_steps, int) or total_steps <= 0:
        raise ValueError(f"OneCycleLR: expected positive integer total_steps, got {total_steps}")
    if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
        raise ValueError(f"OneCycleLR: expected float between 0 and 1 pct_start, got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"OneCycleLR: anneal_strategy {anneal_strategy!r} is not 'cos'/'linear'")
    initial = max_lr / div_factor
    ends = [float(pct_start * total_steps) - 1, total_steps - 1]
    lrs = [initial, max_lr, initial / final_div_factor]
    momenta = [max_momentum, base_momentum, max_momentum]
    if three_phase:
        ends.insert(1, float(2 * pct_start * total_steps) - 2)
        lrs.insert(2, initial)
        momenta.insert(2, max_momentum)
        if ends[1] > ends[2]:  # pct_start > 0.5: the second phase outlasts the run
            ends, lrs, momenta = ends[:2], lrs[:3], momenta[:3]
    kind = "cosine" if anneal_strategy == "cos" else "linear"
    lr_schedule = _through_phases(ends, lrs, kind, total_steps)
    momentum = _through_phases(ends, momenta, kind, total_steps) if cycle_momentum else None
    return TorchSchedules(lr_schedule, momentum)


def _through_phases(ends: list[float], values: list[Any], kind: str, total: int) -> Schedule:
    """``interpolate_schedule`` through ``values`` at ``[0, *ends]``.  torch gives phase ``i``
    the steps in ``(ends[i-1], ends[i]]``: phases that end at or before step 0 serve no step (or
    divide by zero there), nor does a last phase of no length, so they are left out; past the
    last end the last phase continues to step ``total`` (torch's last), held after."""
    points, values = [0.0, *ends], list(values)
    while len(points) > 2 and points[1] <= 0:
        points, values = points[1:], values[1:]
    if len(points) > 2 and points[-1] == points[-2]:
        points, values = points[:-1], values[:-1]
    elif points[-2] < points[-1] < total:
        (b0, b1), (v0, v1) = points[-2:], values[-2:]
        pct = (total - b0) / (b1 - b0)
        if kind == "cosine":  # torch's _annealing_cos / _annealing_linear
            last = v1 + (v0 - v1) / 2.0 * (math.cos(math.pi * pct) + 1)
        else:
            last = (v1 - v0) * pct + v0
        points, values = [*points, total], [*values, last]
    return interpolate_schedule(points, values, kind)


def _lambda_lr(lr: float, /, lr_lambda: Callable[[jax.Array], Any]) -> TorchSchedules:
    """``lr * lr_lambda(t)`` (``lr_lambda`` must be written with jax.numpy)."""
    return TorchSchedules(lambda c: lr * lr_lambda(jnp.asarray(c)))


def _sequential_lr(
    lr: float, /, schedulers: Sequence[tuple[str, Mapping[str, Any]]], milestones: Sequence[int]
) -> TorchSchedules:
    """Scheduler ``i`` from step ``milestones[i-1]`` on, restarted at its own step 0 there:
    ``schedules.join_schedules``."""
    if len(schedulers) < 1:
        raise ValueError("SequentialLR expects at least one scheduler")
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(
            f"SequentialLR: expected {len(schedulers) - 1} milestones for {len(schedulers)} "
            f"schedulers, got {len(milestones)}"
        )
    if any(s[0] == "ReduceLROnPlateau" for s in schedulers):
        raise ValueError("SequentialLR does not support ReduceLROnPlateau")
    parts = [torch_schedules(n, lr, **kw) for n, kw in schedulers]
    if any(p.momentum is not None for p in parts):
        raise ValueError(
            "SequentialLR: members that cycle momentum are not supported; "
            "pass cycle_momentum=False to them"
        )
    return TorchSchedules(join_schedules([p.lr for p in parts], list(milestones)))


_SCHEDULERS: dict[str, Callable[..., TorchSchedules]] = {
    "StepLR": _step_lr,
    "MultiStepLR": _multistep_lr,
    "ConstantLR": _constant_lr,
    "LinearLR": _linear_lr,
    "ExponentialLR": _exponential_lr,
    "PolynomialLR": _polynomial_lr,
    "CosineAnnealingLR": _cosine_annealing_lr,
    "CosineAnnealingWarmRestarts": _cosine_warm_restarts,
    "CyclicLR": _cyclic_lr,
    "OneCycleLR": _one_cycle_lr,
    "LambdaLR": _lambda_lr,
    "SequentialLR": _sequential_lr,
}


def torch_schedules(name: str, base_lr: float, /, **scheduler_kwargs: Any) -> TorchSchedules:
    """``torch_schedule``'s learning rate together with the momentum (SGD, RMSprop) or beta1
    (the Adam family) that ``CyclicLR`` / ``OneCycleLR`` set at each step when
    ``cycle_momentum`` (torch's default), ``None`` otherwise.  ``from_torch(...,
    scheduler=...)`` wires both in."""
    if name == "ReduceLROnPlateau":
        raise ValueError(
            "ReduceLROnPlateau depends on the metric, not the step: use "
            "from_torch(..., scheduler=('ReduceLROnPlateau', {...})) or gradtx.torch_compat."
            "reduce_on_plateau"
        )
    if name not in _SCHEDULERS:
        known = sorted([*_SCHEDULERS, "ReduceLROnPlateau"])
        raise ValueError(f"unknown torch scheduler {name!r}; supported: {known}")
    builder = _SCHEDULERS[name]
    accepted = list(inspect.signature(builder).parameters)[1:]
    unknown = sorted(set(scheduler_kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"{name}: unexpected argument(s) {unknown}; accepted: {accepted}")
    return builder(base_lr, **scheduler_kwargs)


def torch_schedule(name: str, base_lr: float, /, **scheduler_kwargs: Any) -> Schedule:
    """The learning rate ``step -> lr`` of ``torch.optim.lr_scheduler.<name>(optimizer,
    **scheduler_kwargs)`` on an optimizer created with ``lr=base_lr``, when ``scheduler.step()``
    follows every ``optimizer.step()`` (the lr of step ``t``, counted from 0, is the schedule
    at ``t``).

    Supported: StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
    CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR, LambdaLR (a
    jax.numpy ``lr_lambda``) and SequentialLR (``schedulers=[(name, kwargs), ...]``,
    ``milestones=[...]``), with torch's argument names, defaults and checks.  The momentum
    cycling of CyclicLR/OneCycleLR: ``torch_schedules``, or ``from_torch(..., scheduler=...)``.
    gradtx.schedules equivalents: ``exponential_decay(staircase=True)`` (StepLR),
    ``piecewise_constant_schedule`` (MultiStepLR), ``cyclic_schedule`` (CyclicLR),
    ``interpolate_schedule`` (OneCycleLR), ``cosine_warm_restarts_schedule``.
    """
    return torch_schedules(name, base_lr, **scheduler_kwargs).lr


__all__ = ["TorchSchedules", "torch_schedule", "torch_schedules"]
