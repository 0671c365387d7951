"""torch.optim.lr_scheduler as schedules, and as the rules that move torch's live learning rate.

``torch_schedule("CosineAnnealingLR", 0.1, T_max=100)`` is the learning rate that
``torch.optim.lr_scheduler.CosineAnnealingLR`` gives when ``scheduler.step()`` is called once
after every ``optimizer.step()``: the lr of optimizer step ``t`` (counted from 0) is the schedule
at ``t``.  ``torch_schedules`` also gives the momentum / beta1 that ``CyclicLR`` and
``OneCycleLR`` cycle.

Each builder below takes the optimizer's lr first, then the scheduler's torch kwargs with torch's
names and defaults, and gives the scheduler twice:

- its closed form ``t -> lr``, stated with the public schedules of ``gradtx.schedules`` where one
  fits (``None`` for ``MultiplicativeLR``, ``ChainedScheduler`` and ``SWALR`` in a
  ``SequentialLR``, whose values depend on the lr they find: ``torch_schedule`` then replays the
  steps, ``t`` operations per call);
- its step rule ``(x, t) -> lr``: what torch's ``scheduler.step()`` makes of the lr ``x`` it
  finds in the param group on its ``t``-th call (``t = 0``: the call in the constructor).  Most
  torch schedulers are written this way ("chainable"): ``StepLR`` multiplies ``x`` by ``gamma``,
  ``CosineAnnealingLR`` rescales ``x - eta_min``; ``LambdaLR``, ``CyclicLR``, ``OneCycleLR`` and
  ``CosineAnnealingWarmRestarts`` ignore ``x`` and set their closed form.

``from_torch(..., scheduler=...)`` keeps the lr in its state and moves it with the step rule,
as torch does, so after ``tree_set(state, learning_rate=...)`` (torch: ``param_groups[0]["lr"] =
...``) a chainable scheduler continues from the new value and a closed-form one overwrites it at
its next step.  Evaluated in float64 under x64, closed forms and rules equal torch's Python-float
arithmetic up to rounding.
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

StepRule = Callable[[jax.Array, jax.Array], jax.Array]
"""``(x, t) -> lr``: the lr a torch scheduler sets on its ``t``-th step (0: in its constructor)
when it finds ``x`` in the param group."""


class TorchSchedules(NamedTuple):
    """What a torch scheduler sets at each step: the learning rate and, for ``CyclicLR`` /
    ``OneCycleLR`` with ``cycle_momentum``, the momentum (SGD, RMSprop) or beta1 (the Adam
    family); ``None`` when the scheduler leaves it alone."""

    lr: Schedule
    momentum: Schedule | None = None


class Scheduler(NamedTuple):
    """One torch scheduler on an optimizer of lr ``base``: ``lr`` its closed form ``t -> lr``
    (``None`` when only ``step`` states it), ``step`` its rule ``(x, t) -> lr`` (see the module
    docstring), ``momentum`` the cycled momentum / beta1 or ``None``; ``restart(x)``: what it
    sets when ``SequentialLR`` restarts it at its milestone (torch's ``_update_lr(0)``) on the
    lr ``x`` it finds there, ``None`` for its closed form at 0 (MultiplicativeLR: ``x *
    lr_lambda(0)``; SWALR: its rule at 0, which keeps ``x``)."""

    lr: Schedule | None
    step: StepRule
    momentum: Schedule | None = None
    restart: Callable[[jax.Array], jax.Array] | None = None


def _closed(lr: Schedule, momentum: Schedule | None = None) -> Scheduler:
    """A scheduler that sets its closed form whatever the lr was (``LambdaLR``, ``CyclicLR``,
    ``OneCycleLR``, ``CosineAnnealingWarmRestarts``)."""
    return Scheduler(lr, lambda x, t: lr(t), momentum)


def _float(t: jax.Array) -> jax.Array:
    return jnp.asarray(t).astype(jnp.result_type(float))


def _step_lr(lr: float, /, step_size: int, gamma: float = 0.1) -> Scheduler:
    """``lr * gamma ** (t // step_size)``; step: ``x * gamma`` at multiples of ``step_size``."""

    def step(x, t):
        return jnp.where((t == 0) | (t % step_size != 0), x, x * gamma)

    return Scheduler(exponential_decay(lr, step_size, gamma, staircase=True), step)


def _multistep_lr(lr: float, /, milestones: Sequence[int], gamma: float = 0.1) -> Scheduler:
    """``lr * gamma ** #{milestones <= t}`` (a repeated milestone counts twice, as in torch);
    step: ``x * gamma ** n`` at a milestone given ``n`` times."""
    counts = Counter(milestones)
    scales = {m: gamma**n for m, n in counts.items()}

    def step(x, t):
        n = sum(jnp.where(t == m, k, 0) for m, k in counts.items())
        return jnp.where(n > 0, x * jnp.power(gamma, _float(n)), x)

    return Scheduler(piecewise_constant_schedule(lr, scales), step)


def _constant_lr(lr: float, /, factor: float = 1.0 / 3, total_iters: int = 5) -> Scheduler:
    """``lr * factor`` for ``t < total_iters``, then ``lr``; step: ``x * factor`` at 0,
    ``x / factor`` at ``total_iters`` (torch multiplies by ``1 / factor``)."""
    check_ranges("ConstantLR", factor=(factor, "[0, 1]"))
    parts = [constant_schedule(lr * factor), constant_schedule(lr)]
    undo = 1.0 / factor if factor else math.inf  # torch divides by zero there

    def step(x, t):
        return jnp.where(t == 0, x * factor, jnp.where(t == total_iters, x * undo, x))

    return Scheduler(join_schedules(parts, [total_iters]), step)


def _linear_lr(
    lr: float, /, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> Scheduler:
    """``lr * (start + (end - start) * min(t, total_iters) / total_iters)``; step: ``x *
    start_factor`` at 0, then ``x`` times the ratio of consecutive factors up to
    ``total_iters``."""
    check_ranges(
        "LinearLR", start_factor=(start_factor, "(0, 1]"), end_factor=(end_factor, "[0, 1]")
    )
    slope = end_factor - start_factor

    def step(x, t):
        before = total_iters * start_factor + _float(t - 1) * slope
        safe = jnp.where(before == 0, 1.0, before)  # only past total_iters, where x is kept
        ratio = 1.0 + slope / safe
        return jnp.where(t == 0, x * start_factor, jnp.where(t > total_iters, x, x * ratio))

    sched = linear_schedule(lr * start_factor, lr * end_factor, total_iters)
    return Scheduler(sched, step)


def _exponential_lr(lr: float, /, gamma: float) -> Scheduler:
    """``lr * gamma ** t``; step: ``x * gamma``."""
    return Scheduler(exponential_decay(lr, 1, gamma), lambda x, t: jnp.where(t == 0, x, x * gamma))


def _polynomial_lr(lr: float, /, total_iters: int = 5, power: float = 1.0) -> Scheduler:
    """``lr * (1 - min(t, total_iters) / total_iters) ** power``; step: ``x`` times the ratio
    of consecutive factors up to ``total_iters``, then ``x``."""

    def step(x, t):
        # (1 - t/T) / (1 - (t-1)/T) as (T - t) / (T - t + 1): exactly 0 at t = T under jit
        left = _float(total_iters - t)
        ratio = (jnp.maximum(left, 0.0) / jnp.maximum(left + 1, 1.0)) ** power
        return jnp.where((t == 0) | (t > total_iters), x, x * ratio)

    return Scheduler(polynomial_schedule(lr, 0.0, power, total_iters), step)


def _cosine_annealing_lr(lr: float, /, T_max: int, eta_min: float = 0.0) -> Scheduler:
    """``eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2`` for every t: past ``T_max`` it
    rises again (period ``2 T_max``), which is what torch's recursive update computes
    (``schedules.cosine_decay_schedule`` holds its floor instead).  Step: ``x - eta_min``
    rescaled by the ratio of consecutive ``1 + cos`` terms; at the bottom of a period (where
    that ratio divides by zero) torch adds the closed form's first rise instead."""

    def fn(count):
        t = _float(count)
        return eta_min + (lr - eta_min) * (1 + jnp.cos(jnp.pi * t / T_max)) / 2

    rise = (lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2

    def step(x, t):
        before = 1 + jnp.cos(jnp.pi * _float(t - 1) / T_max)
        bottom = (t - 1 - T_max) % (2 * T_max) == 0
        scaled = (1 + jnp.cos(jnp.pi * _float(t) / T_max)) / jnp.where(bottom, 1.0, before)
        moved = jnp.where(bottom, x + rise, scaled * (x - eta_min) + eta_min)
        return jnp.where(t == 0, x, moved)

    return Scheduler(fn, step)


def _cosine_warm_restarts(
    lr: float, /, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> Scheduler:
    """Cosine from ``lr`` to ``eta_min`` over ``T_i`` steps, restarting with ``T_{i+1} =
    T_mult * T_i`` (``T_0`` first)."""
    return _closed(cosine_warm_restarts_schedule(lr, T_0, T_mult, eta_min))


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
) -> Scheduler:
    """Triangular cycles between ``base_lr`` and ``max_lr`` (the optimizer's lr is ignored);
    the momentum runs the same cycle the other way, from ``max_momentum`` down to
    ``base_momentum``."""
    shape = dict(
        step_size_up=step_size_up, step_size_down=step_size_down, mode=mode, gamma=gamma,
        scale_fn=scale_fn, scale_mode=scale_mode,
    )  # fmt: skip
    momentum = cyclic_schedule(max_momentum, base_momentum, **shape) if cycle_momentum else None
    return _closed(cyclic_schedule(base_lr, max_lr, **shape), momentum)


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
) -> Scheduler:
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
    return _closed(lr_schedule, momentum)


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


def _lambda_lr(lr: float, /, lr_lambda: Callable[[jax.Array], Any]) -> Scheduler:
    """``lr * lr_lambda(t)`` (``lr_lambda`` must be written with jax.numpy)."""
    return _closed(lambda c: lr * lr_lambda(jnp.asarray(c)))


def _multiplicative_lr(lr: float, /, lr_lambda: Callable[[jax.Array], Any]) -> Scheduler:
    """``lr * lr_lambda(1) * ... * lr_lambda(t)``; step: ``x * lr_lambda(t)`` for ``t >= 1``
    (``lr_lambda`` must be written with jax.numpy; torch calls it with 0 only when
    ``SequentialLR`` restarts it)."""

    def step(x, t):
        return jnp.where(t == 0, x, x * lr_lambda(jnp.maximum(jnp.asarray(t), 1)))

    return Scheduler(None, step, restart=lambda x: x * lr_lambda(jnp.asarray(0)))


def _members(where: str, base: float, schedulers: Sequence[tuple[str, Mapping[str, Any]]]):
    if len(schedulers) < 1:
        raise ValueError(f"{where} expects at least one scheduler")
    for name, _ in schedulers:
        if name in ("ReduceLROnPlateau", "SequentialLR", "ChainedScheduler"):
            raise ValueError(f"{where} does not support {name} among its schedulers")
    return [scheduler(name, base, **kw) for name, kw in schedulers]


def _chained_scheduler(
    lr: float, /, schedulers: Sequence[tuple[str, Mapping[str, Any]]]
) -> Scheduler:
    """Every scheduler steps, in order, on the lr the previous one left: ``x -> step_n(...
    step_1(x, t) ..., t)``, from their constructors' steps (``t = 0``) on (each member is built
    on the optimizer's lr, as torch's are).  The cycled momentum, if any, is the last
    member's."""
    parts = _members("ChainedScheduler", lr, schedulers)

    def step(x, t):
        for p in parts:
            x = p.step(x, t)
        return x

    momenta = [p.momentum for p in parts if p.momentum is not None]
    return Scheduler(None, step, momenta[-1] if momenta else None)


def _sequential_lr(
    lr: float, /, schedulers: Sequence[tuple[str, Mapping[str, Any]]], milestones: Sequence[int]
) -> Scheduler:
    """Scheduler ``i`` from step ``milestones[i-1]`` on, counting its own steps from 0 there.
    At its milestone torch restarts it (``_update_lr(0)``): its closed form at 0, or for
    ``MultiplicativeLR`` / ``SWALR`` what it makes of the lr the previous member left (see
    ``Scheduler.restart``).  The closed form is ``schedules.join_schedules`` of the members'
    when they all have one and restart on it."""
    parts = _members("SequentialLR", lr, schedulers)
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(
            f"SequentialLR: expected {len(schedulers) - 1} milestones for {len(schedulers)} "
            f"schedulers, got {len(milestones)}"
        )
    if any(p.momentum is not None for p in parts):
        raise ValueError(
            "SequentialLR: members that cycle momentum are not supported; "
            "pass cycle_momentum=False to them"
        )
    starts = [0, *milestones]

    def step(x, t):
        out = x
        for i, p in enumerate(parts):
            local = p.step(x, jnp.maximum(t - starts[i], 0))
            if i > 0:  # torch's _update_lr(0) at the milestone
                again = p.lr(0) if p.restart is None else p.restart(x)
                local = jnp.where(t == starts[i], again, local)
            out = jnp.where(t >= starts[i], local, out)
        return out

    closed = all(p.lr is not None and p.restart is None for p in parts)
    joined = join_schedules([p.lr for p in parts], list(milestones)) if closed else None
    return Scheduler(joined, step)


_SCHEDULERS: dict[str, Callable[..., Scheduler]] = {
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
    "MultiplicativeLR": _multiplicative_lr,
    "SequentialLR": _sequential_lr,
    "ChainedScheduler": _chained_scheduler,
}


def register_scheduler(name: str) -> Callable[[Callable[..., Scheduler]], Callable[..., Scheduler]]:
    """Adds a builder ``(lr, /, **torch_kwargs) -> Scheduler`` under torch's name (``swa.py``
    adds ``SWALR`` this way)."""

    def decorate(builder):
        _SCHEDULERS[name] = builder
        return builder

    return decorate


def scheduler(name: str, base_lr: Any, /, **scheduler_kwargs: Any) -> Scheduler:
    """torch scheduler ``name`` on an optimizer of lr ``base_lr``, both of its forms (see
    ``Scheduler``), with torch's argument names, defaults and checks."""
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


def replayed(rule: StepRule, base_lr: Any) -> Schedule:
    """The closed form of a step rule: ``rule`` applied on steps ``0, 1, ..., t`` from
    ``base_lr`` (``t + 1`` evaluations per call, in torch's order of operations)."""

    def fn(count):
        t = jnp.asarray(count)
        first = rule(jnp.asarray(base_lr, jnp.result_type(float)), jnp.zeros_like(t))
        return jax.lax.fori_loop(1, t + 1, lambda k, x: rule(x, k), first)

    return fn


def torch_schedules(name: str, base_lr: float, /, **scheduler_kwargs: Any) -> TorchSchedules:
    """``torch_schedule``'s learning rate together with the momentum (SGD, RMSprop) or beta1
    (the Adam family) that ``CyclicLR`` / ``OneCycleLR`` set at each step when
    ``cycle_momentum`` (torch's default), ``None`` otherwise.  ``from_torch(...,
    scheduler=...)`` wires both in."""
    s = scheduler(name, base_lr, **scheduler_kwargs)
    return TorchSchedules(s.lr if s.lr is not None else replayed(s.step, base_lr), s.momentum)


def torch_schedule(name: str, base_lr: float, /, **scheduler_kwargs: Any) -> Schedule:
    """The learning rate ``step -> lr`` of ``torch.optim.lr_scheduler.<name>(optimizer,
    **scheduler_kwargs)`` on an optimizer created with ``lr=base_lr``, when ``scheduler.step()``
    follows every ``optimizer.step()`` (the lr of step ``t``, counted from 0, is the schedule
    at ``t``).

    Supported: StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
    CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR, LambdaLR and
    MultiplicativeLR (a jax.numpy ``lr_lambda``), SequentialLR (``schedulers=[(name, kwargs),
    ...]``, ``milestones=[...]``), ChainedScheduler (``schedulers=[(name, kwargs), ...]``) and
    ``torch.optim.swa_utils.SWALR`` (``swa_lr``, ``anneal_epochs``, ``anneal_strategy``), with
    torch's argument names, defaults and checks.  MultiplicativeLR and ChainedScheduler replay
    their ``t`` steps on each call (``from_torch`` keeps the lr in its state instead and takes
    one step per update).  The momentum cycling of CyclicLR/OneCycleLR: ``torch_schedules``, or
    ``from_torch(..., scheduler=...)``.  gradtx.schedules equivalents:
    ``exponential_decay(staircase=True)`` (StepLR), ``piecewise_constant_schedule``
    (MultiStepLR), ``cyclic_schedule`` (CyclicLR), ``interpolate_schedule`` (OneCycleLR),
    ``cosine_warm_restarts_schedule``.

    Example:
        >>> import gradtx
        >>> fn = gradtx.torch_schedule("StepLR", 0.1, step_size=2, gamma=0.5)
        >>> [round(float(fn(t)), 4) for t in range(5)]
        [0.1, 0.1, 0.05, 0.05, 0.025]
    """
    return torch_schedules(name, base_lr, **scheduler_kwargs).lr


__all__ = [
    "Scheduler",
    "TorchSchedules",
    "register_scheduler",
    "replayed",
    "scheduler",
    "torch_schedule",
    "torch_schedules",
]
