"""PyTorch recipes, exactly: ``from_torch("AdamW", lr=1e-3)`` is the gradtx transformation that
takes the same steps as ``torch.optim.AdamW(params, lr=1e-3)``, with torch's argument names,
defaults and checks, built as a chain of gradtx's public blocks.

``torch_schedule("CosineAnnealingLR", 0.1, T_max=100)`` is the learning rate that
``torch.optim.lr_scheduler.CosineAnnealingLR`` gives when ``scheduler.step()`` is called once
after every ``optimizer.step()``: the lr of optimizer step ``t`` (counted from 0) is the schedule
at ``t``.
``from_torch(..., scheduler=(name, kwargs))`` wires a scheduler in, including the momentum / beta1
cycling of ``CyclicLR`` and ``OneCycleLR`` and the metric-driven ``ReduceLROnPlateau``.
torch itself is not needed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import GradientTransformation, ScalarOrSchedule, Schedule, chain
from gradtx.blocks import add_decayed_weights, scale, scale_by_learning_rate, trace
from gradtx.kit import check_ranges
from gradtx.optimizers.adam import scale_by_adam, scale_by_amsgrad
from gradtx.optimizers.adam_variants import scale_by_adamax, scale_by_nadam, scale_by_radam
from gradtx.optimizers.rms import scale_by_adadelta, scale_by_rms, scale_by_rss
from gradtx.schedules import cosine_warm_restarts_schedule
from gradtx.torch_compat.plateau import reduce_on_plateau

IMPLEMENTATION_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})
"""torch.optim arguments that choose a kernel, not the numbers; accepted and ignored."""

_BETAS = (0.9, 0.999)
_ADAM_LIKE = {"betas": _BETAS, "eps": 1e-8, "weight_decay": 0.0, "maximize": False}

# torch.optim's numeric defaults (torch 2.x), by optimizer.
DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
            "nesterov": False, "maximize": False},
    "Adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                "initial_accumulator_value": 0.0, "eps": 1e-10, "maximize": False},
    "RMSprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False, "maximize": False},
    "Adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False},
    "Adam": {"lr": 1e-3, **_ADAM_LIKE, "amsgrad": False, "decoupled_weight_decay": False},
    "AdamW": {"lr": 1e-3, **_ADAM_LIKE, "weight_decay": 1e-2, "amsgrad": False},
    "Adamax": {"lr": 2e-3, **_ADAM_LIKE},
    "NAdam": {"lr": 2e-3, **_ADAM_LIKE, "momentum_decay": 4e-3, "decoupled_weight_decay": False},
    "RAdam": {"lr": 1e-3, **_ADAM_LIKE, "decoupled_weight_decay": False},
}  # fmt: skip

# torch's own range checks (its __init__ raises ValueError outside these).
_RANGES = {
    "lr": "[0, inf)",
    "eps": "[0, inf)",
    "weight_decay": "[0, inf)",
    "momentum": "[0, inf)",
    "alpha": "[0, inf)",
    "rho": "[0, 1]",
    "lr_decay": "[0, inf)",
    "initial_accumulator_value": "[0, inf)",
    "momentum_decay": "[0, inf)",
}

# Which hyperparameter CyclicLR / OneCycleLR cycle (torch: "momentum" or "betas" in defaults).
_CYCLED = {"SGD": "momentum", "RMSprop": "momentum", "Adam": "beta1", "AdamW": "beta1",
           "Adamax": "beta1", "NAdam": "beta1", "RAdam": "beta1"}  # fmt: skip

# rho_t > 5 in torch's RAdam; scale_by_radam tests rho_t >= threshold.
_RADAM_THRESHOLD = math.nextafter(5.0, math.inf)


# --- optimizers ----------------------------------------------------------------------------------


class _Hyper(NamedTuple):
    """The resolved recipe inputs: torch kwargs merged over defaults, the lr (float or schedule)
    and the cycled momentum / beta1 schedule (None when not cycled)."""

    h: dict[str, Any]
    lr: ScalarOrSchedule
    momentum: Schedule | None


def _sgd(x: _Hyper) -> list[GradientTransformation]:
    m = x.momentum or x.h["momentum"]
    if callable(m) or m != 0:
        return [trace(m, nesterov=x.h["nesterov"], dampening=x.h["dampening"])]
    return []


def _adagrad(x: _Hyper) -> list[GradientTransformation]:
    return [scale_by_rss(x.h["initial_accumulator_value"], x.h["eps"], eps_in_sqrt=False)]


def _rmsprop(x: _Hyper) -> list[GradientTransformation]:
    rms = scale_by_rms(x.h["alpha"], x.h["eps"], eps_in_sqrt=False, centered=x.h["centered"])
    m = x.momentum or x.h["momentum"]
    # torch's momentum buffer accumulates g / avg and the lr multiplies the buffer afterwards
    return [rms, trace(m)] if callable(m) or m > 0 else [rms]


def _adadelta(x: _Hyper) -> list[GradientTransformation]:
    return [scale_by_adadelta(x.h["rho"], x.h["eps"])]


def _beta1(x: _Hyper) -> ScalarOrSchedule:
    return x.momentum or x.h["betas"][0]


def _adam(x: _Hyper) -> list[GradientTransformation]:
    b1, b2, eps = _beta1(x), x.h["betas"][1], x.h["eps"]
    if x.h["amsgrad"]:
        return [scale_by_amsgrad(b1, b2, eps, raw_max=True)]
    return [scale_by_adam(b1, b2, eps)]


def _adamax(x: _Hyper) -> list[GradientTransformation]:
    return [scale_by_adamax(_beta1(x), x.h["betas"][1], x.h["eps"])]


def _nadam(x: _Hyper) -> list[GradientTransformation]:
    return [scale_by_nadam(_beta1(x), x.h["betas"][1], x.h["eps"], x.h["momentum_decay"])]


def _radam(x: _Hyper) -> list[GradientTransformation]:
    return [
        scale_by_radam(
            _beta1(x), x.h["betas"][1], x.h["eps"], threshold=_RADAM_THRESHOLD,
            eps_before_bias_correction=True,
        )
    ]  # fmt: skip


_SCALERS: dict[str, Callable[[_Hyper], list[GradientTransformation]]] = {
    "SGD": _sgd,
    "Adagrad": _adagrad,
    "RMSprop": _rmsprop,
    "Adadelta": _adadelta,
    "Adam": _adam,
    "AdamW": _adam,
    "Adamax": _adamax,
    "NAdam": _nadam,
    "RAdam": _radam,
}


def _merge(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """torch kwargs over torch's defaults; TypeError for unknown names, ValueError for torch's
    range violations."""
    if name not in DEFAULTS:
        raise ValueError(f"from_torch: unknown optimizer {name!r}; supported: {sorted(DEFAULTS)}")
    defaults = DEFAULTS[name]
    unknown = sorted(set(kwargs) - set(defaults) - IMPLEMENTATION_FLAGS)
    if unknown:
        raise TypeError(
            f"from_torch({name!r}): unexpected argument(s) {unknown}; accepted: "
            f"{sorted(defaults)} (and the ignored implementation flags "
            f"{sorted(IMPLEMENTATION_FLAGS)})"
        )
    h = {**defaults, **{k: v for k, v in kwargs.items() if k in defaults}}
    checks = {k: (h[k], _RANGES[k]) for k in h if k in _RANGES}
    if "betas" in h:
        b1, b2 = h["betas"]
        checks.update({"betas[0]": (b1, "[0, 1)"), "betas[1]": (b2, "[0, 1)")})
    check_ranges(f"torch.optim.{name}", **checks)
    if name == "SGD" and h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise ValueError(
            "torch.optim.SGD: nesterov momentum requires a momentum and zero dampening"
        )
    return h


def from_torch(
    name: str,
    /,
    *,
    scheduler: str | tuple[str, Mapping[str, Any]] | None = None,
    **torch_kwargs: Any,
) -> GradientTransformation:
    """The transformation that reproduces ``torch.optim.<name>(params, **torch_kwargs)``.

    Supported: ``SGD``, ``Adagrad``, ``RMSprop``, ``Adadelta``, ``Adam``, ``AdamW``, ``Adamax``,
    ``NAdam``, ``RAdam`` with all their numeric options and torch's defaults (see ``DEFAULTS``);
    ``lr`` may also be a schedule ``step -> lr``.  The chain is, in order:
    ``scale(-1)`` if ``maximize``; ``add_decayed_weights(weight_decay)`` (L2: added to the
    gradient) unless the decay is decoupled; torch's scaler; ``add_decayed_weights`` if decoupled
    (``AdamW``, ``decoupled_weight_decay=True``: ``p <- p - lr * wd * p``); the learning rate
    (Adagrad: ``lr / (1 + t * lr_decay)``), and ``reduce_on_plateau`` for that scheduler.

    ``scheduler=(scheduler_name, scheduler_kwargs)`` reproduces the pair optimizer +
    ``torch.optim.lr_scheduler.<scheduler_name>(optimizer, **scheduler_kwargs)`` with
    ``scheduler.step()`` after every ``optimizer.step()`` (``scheduler.step(loss)`` for
    ``ReduceLROnPlateau``: pass ``value=loss`` to ``update``).  ``CyclicLR``/``OneCycleLR`` with
    ``cycle_momentum`` (torch's default) cycle SGD/RMSprop's momentum or Adam's beta1 as torch does.

    Implementation flags (``foreach``, ``fused``, ``capturable``, ``differentiable``) are
    ignored; other unknown names raise TypeError, torch's out-of-range values ValueError.
    """
    h = _merge(name, torch_kwargs)
    lr, momentum, plateau = h["lr"], None, []
    if scheduler is not None:
        sched_name, sched_kwargs = (scheduler, {}) if isinstance(scheduler, str) else scheduler
        if callable(lr):
            raise ValueError("from_torch: give lr as a number when a scheduler is given")
        if sched_name == "ReduceLROnPlateau":
            plateau = [_plateau(lr, **sched_kwargs)]
        else:
            lr, momentum = _schedules(sched_name, lr, sched_kwargs)
            if momentum is not None and name not in _CYCLED:
                raise ValueError(
                    f"{sched_name}: optimizer must support momentum or beta1 with "
                    f"`cycle_momentum` option enabled ({name} has neither); "
                    f"pass cycle_momentum=False"
                )
    if name == "Adagrad" and h["lr_decay"] != 0:
        lr = _decayed(lr, h["lr_decay"])
    wd = h["weight_decay"]
    decoupled = name == "AdamW" or h.get("decoupled_weight_decay", False)
    decay = [add_decayed_weights(wd)] if wd != 0 else []
    return chain(
        *([scale(-1.0)] if h["maximize"] else []),
        *([] if decoupled else decay),
        *_SCALERS[name](_Hyper(h, lr, momentum)),
        *(decay if decoupled else []),
        scale_by_learning_rate(lr),
        *plateau,
    )


def _decayed(lr: ScalarOrSchedule, lr_decay: float) -> Schedule:
    """Adagrad's ``lr_t / (1 + t * lr_decay)`` (t counted from 0), applied to whatever lr the
    scheduler set, as torch does."""

    def fn(count):
        base = lr(count) if callable(lr) else lr
        return base / (1 + _as_float(count) * lr_decay)

    return fn


def _plateau(
    lr: float,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> GradientTransformation:
    """torch's ReduceLROnPlateau kwargs as a ``reduce_on_plateau`` block after an lr of ``lr``."""
    if factor >= 1.0:
        raise ValueError("ReduceLROnPlateau: factor should be < 1.0")
    return reduce_on_plateau(
        factor, patience, threshold, threshold_mode, cooldown, min_scale=min_lr / lr, mode=mode,
        eps=eps, base_lr=lr,
    )  # fmt: skip


# --- learning-rate schedulers --------------------------------------------------------------------
# Each builder takes the optimizer's lr first, then the scheduler's torch kwargs with torch's
# defaults, and returns (lr schedule, momentum schedule or None).  Schedules are closed forms of the
# step, evaluated in float64 under x64; torch's recursive updates equal them up to rounding.


class _Schedules(NamedTuple):
    lr: Schedule
    momentum: Schedule | None = None


def _as_float(count: Any) -> jax.Array:
    return jnp.asarray(count).astype(jnp.result_type(float))


def _pow(base: float, exponent: Any) -> jax.Array:
    return jnp.asarray(base, jnp.result_type(float)) ** _as_float(exponent)


def _step_lr(lr: float, /, step_size: int, gamma: float = 0.1) -> _Schedules:
    """``lr * gamma ** (t // step_size)``."""
    return _Schedules(lambda c: lr * _pow(gamma, jnp.asarray(c) // step_size))


def _multistep_lr(lr: float, /, milestones: Sequence[int], gamma: float = 0.1) -> _Schedules:
    """``lr * gamma ** #{milestones <= t}`` (a repeated milestone counts twice, as in torch)."""
    ms = np.asarray(sorted(milestones), np.int32)
    return _Schedules(lambda c: lr * _pow(gamma, jnp.sum(jnp.asarray(c) >= ms)))


def _constant_lr(lr: float, /, factor: float = 1.0 / 3, total_iters: int = 5) -> _Schedules:
    """``lr * factor`` for ``t < total_iters``, then ``lr``."""
    check_ranges("ConstantLR", factor=(factor, "[0, 1]"))
    return _Schedules(lambda c: jnp.where(jnp.asarray(c) < total_iters, lr * factor, lr * 1.0))


def _linear_lr(
    lr: float, /, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> _Schedules:
    """``lr * (start + (end - start) * min(t, total_iters) / total_iters)``."""
    check_ranges(
        "LinearLR", start_factor=(start_factor, "(0, 1]"), end_factor=(end_factor, "[0, 1]")
    )

    def fn(c):
        frac = _as_float(jnp.minimum(jnp.asarray(c), total_iters)) / total_iters
        return lr * (start_factor + (end_factor - start_factor) * frac)

    return _Schedules(fn)


def _exponential_lr(lr: float, /, gamma: float) -> _Schedules:
    """``lr * gamma ** t``."""
    return _Schedules(lambda c: lr * _pow(gamma, c))


def _polynomial_lr(lr: float, /, total_iters: int = 5, power: float = 1.0) -> _Schedules:
    """``lr * (1 - min(t, total_iters) / total_iters) ** power``."""
    return _Schedules(
        lambda c: (
            lr * (1.0 - _as_float(jnp.minimum(jnp.asarray(c), total_iters)) / total_iters) ** power
        )
    )


def _cosine(eta_min: float, top: float, t: jax.Array, period: Any) -> jax.Array:
    return eta_min + (top - eta_min) * (1 + jnp.cos(jnp.pi * t / period)) / 2


def _cosine_annealing_lr(lr: float, /, T_max: int, eta_min: float = 0.0) -> _Schedules:
    """``eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2`` for every t: past ``T_max`` it
    rises again (period ``2 T_max``), which is what torch's recursive update computes."""
    return _Schedules(lambda c: _cosine(eta_min, lr, _as_float(c), T_max))


def _cosine_warm_restarts(
    lr: float,
    /,
    T_0: int,
    T_mult: int = 1,
    eta_min: float = 0.0,
) -> _Schedules:
    """Cosine from ``lr`` to ``eta_min`` over ``T_i`` steps, restarting with ``T_{i+1} =
    T_mult * T_i`` (``T_0`` first): ``schedules.cosine_warm_restarts_schedule``."""
    return _Schedules(cosine_warm_restarts_schedule(lr, T_0, T_mult, eta_min))


def _cyclic_lr(
    lr: float,
    /,
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[jax.Array], jax.Array] | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> _Schedules:
    """Triangular cycles between ``base_lr`` and ``max_lr`` (the optimizer's lr is ignored):
    ``cycle = floor(1 + t / (up + down))``, ``x = 1 + t / (up + down) - cycle``, height
    ``x / r`` rising (``x <= r = up / (up + down)``) else ``(x - 1) / (r - 1)``, times
    ``scale_fn(cycle)`` (triangular: 1, triangular2: ``2^(1 - cycle)``) or ``scale_fn(t)``
    (exp_range: ``gamma^t``).  Momentum runs the opposite way, from ``max_momentum`` down."""
    if scale_fn is None:
        if mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError("CyclicLR: mode is invalid and scale_fn is None")
        scale_fn, scale_mode = {
            "triangular": (lambda x: 1.0, "cycle"),
            "triangular2": (lambda x: 1 / (2.0 ** (x - 1)), "cycle"),
            "exp_range": (lambda x: _pow(gamma, x), "iterations"),
        }[mode]
    up = float(step_size_up)
    total = up + (float(step_size_down) if step_size_down is not None else up)
    ratio = up / total

    def shape(c):
        t = _as_float(c)
        cycle = jnp.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        height = jnp.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
        return height * scale_fn(cycle if scale_mode == "cycle" else t)

    momentum = lambda c: max_momentum - (max_momentum - base_momentum) * shape(c)
    return _Schedules(
        lambda c: base_lr + (max_lr - base_lr) * shape(c), momentum if cycle_momentum else None
    )


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
) -> _Schedules:
    """1cycle (Smith & Topin 2017): from ``max_lr / div_factor`` up to ``max_lr`` by step
    ``pct_start * total - 1``, then down to ``max_lr / div_factor / final_div_factor`` at step
    ``total - 1`` (``three_phase``: back to the initial lr by ``2 pct_start total - 2`` first);
    each phase anneals by cosine or linearly; momentum moves opposite, between ``max_momentum``
    and ``base_momentum``.  torch raises past ``total_steps``; this holds the value at
    ``total_steps``."""
    if total_steps is None:
        if not (isinstance(epochs, int) and isinstance(steps_per_epoch, int)):
            raise ValueError("OneCycleLR: define total_steps or (epochs and steps_per_epoch)")
        total_steps = epochs * steps_per_epoch
    if not isinstance(total_steps, int) or total_steps <= 0:
        raise ValueError(f"OneCycleLR: expected positive integer total_steps, got {total_steps}")
    if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
        raise ValueError(f"OneCycleLR: expected float between 0 and 1 pct_start, got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"OneCycleLR: anneal_strategy {anneal_strategy!r} is not 'cos'/'linear'")
    initial = max_lr / div_factor
    low = initial / final_div_factor
    up_end = float(pct_start * total_steps) - 1
    # (end step, start lr, end lr, start momentum, end momentum) of each phase
    if three_phase:
        phases = [
            (up_end, initial, max_lr, max_momentum, base_momentum),
            (float(2 * pct_start * total_steps) - 2, max_lr, initial, base_momentum, max_momentum),
            (total_steps - 1, initial, low, max_momentum, max_momentum),
        ]
    else:
        phases = [
            (up_end, initial, max_lr, max_momentum, base_momentum),
            (total_steps - 1, max_lr, low, base_momentum, max_momentum),
        ]
    starts = [0.0] + [p[0] for p in phases[:-1]]

    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)
        return (end - start) * pct + start

    def along(first: int) -> Schedule:
        # first = 1 for the lr columns of `phases`, 3 for the momentum columns
        def fn(c):
            t = _as_float(jnp.minimum(jnp.asarray(c), total_steps))
            out = None
            for begin, phase in reversed(list(zip(starts, phases, strict=True))):
                value = anneal(phase[first], phase[first + 1], (t - begin) / (phase[0] - begin))
                out = value if out is None else jnp.where(t <= phase[0], value, out)
            return out

        return fn

    return _Schedules(along(1), along(3) if cycle_momentum else None)


def _lambda_lr(lr: float, /, lr_lambda: Callable[[jax.Array], Any]) -> _Schedules:
    """``lr * lr_lambda(t)`` (``lr_lambda`` must be written with jax.numpy)."""
    return _Schedules(lambda c: lr * lr_lambda(jnp.asarray(c)))


def _sequential_lr(
    lr: float, /, schedulers: Sequence[tuple[str, Mapping[str, Any]]], milestones: Sequence[int]
) -> _Schedules:
    """Scheduler ``i`` from step ``milestones[i-1]`` on, restarted at its own step 0 there."""
    if len(schedulers) < 1:
        raise ValueError("SequentialLR expects at least one scheduler")
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(
            f"SequentialLR: expected {len(schedulers) - 1} milestones for {len(schedulers)} "
            f"schedulers, got {len(milestones)}"
        )
    if any(s[0] == "ReduceLROnPlateau" for s in schedulers):
        raise ValueError("SequentialLR does not support ReduceLROnPlateau")
    parts = [_schedules(n, lr, kw) for n, kw in schedulers]
    if any(p.momentum is not None for p in parts):
        raise ValueError(
            "SequentialLR: members that cycle momentum are not supported; "
            "pass cycle_momentum=False to them"
        )
    offsets = [0, *milestones]

    def fn(c):
        c = jnp.asarray(c)
        out = parts[-1].lr(c - offsets[-1])
        for part, begin, end in reversed(
            list(zip(parts[:-1], offsets[:-1], offsets[1:], strict=True))
        ):
            out = jnp.where(c < end, part.lr(c - begin), out)
        return out

    return _Schedules(fn)


_SCHEDULERS: dict[str, Callable[..., _Schedules]] = {
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


def _schedules(name: str, lr: float, kwargs: Mapping[str, Any]) -> _Schedules:
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
    accepted = [p for p in inspect.signature(builder).parameters][1:]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"{name}: unexpected argument(s) {unknown}; accepted: {accepted}")
    return builder(lr, **kwargs)


def torch_schedule(name: str, base_lr: float, /, **scheduler_kwargs: Any) -> Schedule:
    """The learning rate ``step -> lr`` of ``torch.optim.lr_scheduler.<name>(optimizer,
    **scheduler_kwargs)`` on an optimizer created with ``lr=base_lr``, when ``scheduler.step()``
    follows every ``optimizer.step()`` (the lr of step ``t``, counted from 0, is the schedule
    at ``t``).

    Supported: StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
    CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR, LambdaLR (a
    jax.numpy ``lr_lambda``) and SequentialLR (``schedulers=[(name, kwargs), ...]``,
    ``milestones=[...]``), with torch's argument names and defaults.  The momentum cycling of
    CyclicLR/OneCycleLR needs the optimizer: use ``from_torch(..., scheduler=...)``.
    optax equivalents: ``optax.exponential_decay(staircase=True)`` (StepLR),
    ``optax.piecewise_constant_schedule`` (MultiStepLR), ``optax.cosine_onecycle_schedule``.
    """
    return _schedules(name, base_lr, scheduler_kwargs).lr


__all__ = ["DEFAULTS", "IMPLEMENTATION_FLAGS", "from_torch", "torch_schedule"]
