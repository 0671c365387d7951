"""PyTorch recipes, exactly: ``from_torch("AdamW", lr=1e-3)`` is the gradtx transformation that
takes the same steps as ``torch.optim.AdamW(params, lr=1e-3)``, with torch's argument names,
defaults and checks, built as a chain of gradtx's public blocks.

``from_torch(..., scheduler=(name, kwargs))`` wires a scheduler in (``schedulers.py``), including
the momentum / beta1 cycling of ``CyclicLR`` and ``OneCycleLR`` and the metric-driven
``ReduceLROnPlateau``.  Each recipe is registered as ``torch.<name>`` (``gradtx.registry``, kind
``"torch"``) with the configurations the parity tests run.  torch itself is not needed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp

from gradtx import registry
from gradtx.base import GradientTransformation, ScalarOrSchedule, Schedule, chain
from gradtx.blocks import add_decayed_weights, scale, scale_by_learning_rate, trace
from gradtx.kit import check_ranges
from gradtx.optimizers.adam import scale_by_adam, scale_by_amsgrad
from gradtx.optimizers.adam_variants import scale_by_adamax, scale_by_nadam, scale_by_radam
from gradtx.optimizers.rms import scale_by_adadelta, scale_by_rms, scale_by_rss
from gradtx.torch_compat.plateau import reduce_on_plateau
from gradtx.torch_compat.schedulers import torch_schedule, torch_schedules

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


class Recipe(NamedTuple):
    """A torch optimizer whose steps are not "decay, scaler, decay, lr" (``torch_recipe``)."""

    build: Callable[[dict[str, Any], ScalarOrSchedule], GradientTransformation]
    ranges: Mapping[str, str]


RECIPES: dict[str, Recipe] = {}


def torch_recipe(
    name: str,
    *,
    defaults: Mapping[str, Any],
    examples: tuple[dict[str, Any], ...],
    ranges: Mapping[str, str] | None = None,
    traits: frozenset[str] = frozenset({"elementwise"}),
) -> Callable[[Callable[..., GradientTransformation]], Callable[..., GradientTransformation]]:
    """Register ``build(h, lr) -> transformation`` as ``from_torch(name, ...)``: ``h`` is torch's
    kwargs merged over ``defaults`` (torch's own, with ``lr`` first) and range-checked with
    ``ranges`` (argument -> interval, torch's ``__init__`` checks); ``lr`` is ``h["lr"]`` or the
    scheduler's schedule.  The recipe builds the whole transformation (``maximize``, weight
    decay, the lr); ``from_torch`` appends ``ReduceLROnPlateau`` when asked.  ``examples`` are
    the configurations the torch parity test runs (the first: ``{"lr": defaults["lr"]}``).  A
    module in ``gradtx/torch_compat/`` that registers recipes is imported automatically."""

    def decorate(build):
        DEFAULTS[name] = dict(defaults)
        RECIPES[name] = Recipe(build, dict(ranges or {}))
        _register(name, examples, traits)
        return build

    return decorate


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
    ranges = RECIPES[name].ranges if name in RECIPES else _RANGES
    checks = {k: (h[k], ranges[k]) for k in h if k in ranges}
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
            lr, momentum = torch_schedules(sched_name, lr, **sched_kwargs)
            if momentum is not None and (name not in _CYCLED or name in RECIPES):
                raise ValueError(
                    f"{sched_name}: optimizer must support momentum or beta1 with "
                    f"`cycle_momentum` option enabled ({name} has neither); "
                    f"pass cycle_momentum=False"
                )
    if name in RECIPES:
        return chain(RECIPES[name].build(h, lr), *plateau)
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
        return base / (1 + jnp.asarray(count).astype(jnp.result_type(float)) * lr_decay)

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


# --- registry ------------------------------------------------------------------------------------
# The configurations tests/test_torch_parity.py runs against torch.optim: the first of each is
# torch's defaults (with the default lr spelled out), the others cover every option together.

_EXAMPLES: dict[str, tuple[dict[str, Any], ...]] = {
    "SGD": (
        {"lr": 1e-3},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.02},
        {"lr": 0.02, "momentum": 0.5, "maximize": True, "weight_decay": 0.1},
    ),
    "Adagrad": (
        {"lr": 1e-2},
        {"lr": 0.3, "lr_decay": 0.05, "weight_decay": 0.1},
        {"lr": 0.3, "initial_accumulator_value": 0.1, "eps": 1e-3, "maximize": True},
    ),
    "RMSprop": (
        {"lr": 1e-2},
        {"lr": 0.02, "alpha": 0.9, "eps": 1e-4, "weight_decay": 0.1},
        {"lr": 0.01, "momentum": 0.8},
        {"lr": 0.01, "centered": True},
        {"lr": 0.01, "centered": True, "momentum": 0.7, "weight_decay": 0.05},
        {"lr": 0.01, "momentum": 0.5, "maximize": True},
    ),
    "Adadelta": (
        {"lr": 1.0},
        {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1},
        {"lr": 1.0, "maximize": True, "weight_decay": 0.05},
    ),
    "Adam": (
        {"lr": 1e-3},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.05, "amsgrad": True},
        {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1, "maximize": True},
        # implementation flags are accepted and change nothing
        {"lr": 0.05, "foreach": False, "fused": None, "capturable": False, "differentiable": False},
    ),
    "AdamW": (
        {"lr": 1e-3},
        {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True},
        {"lr": 0.05, "maximize": True},
        {"lr": 0.05, "betas": (0.7, 0.9), "eps": 1e-3, "weight_decay": 0.5},
    ),
    "Adamax": (
        {"lr": 2e-3},
        {"lr": 0.05, "betas": (0.8, 0.95), "weight_decay": 0.1},
        {"lr": 0.05, "eps": 1e-2, "maximize": True},
    ),
    "NAdam": (
        {"lr": 2e-3},
        {"lr": 0.05, "momentum_decay": 0.01, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-4, "maximize": True},
    ),
    "RAdam": (
        {"lr": 1e-3},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True},
    ),
}


def _recipe(name: str) -> Callable[..., GradientTransformation]:
    """The registered factory of ``torch.<name>``: ``from_torch(name, **torch_kwargs)``, with
    torch's arguments and defaults as its signature."""

    def factory(**torch_kwargs: Any) -> GradientTransformation:
        return from_torch(name, **torch_kwargs)

    factory.__name__ = factory.__qualname__ = f"torch_{name}"
    factory.__doc__ = f"``from_torch({name!r}, **torch_kwargs)``: ``torch.optim.{name}``."
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(k, keyword, default=v) for k, v in DEFAULTS[name].items()]
    rest = inspect.Parameter("torch_kwargs", inspect.Parameter.VAR_KEYWORD)
    factory.__signature__ = inspect.Signature([*params, rest])  # type: ignore[attr-defined]
    return factory


def _register(name: str, examples: tuple[dict[str, Any], ...], traits: frozenset[str]) -> None:
    registry.add(
        registry.Entry(
            name=f"torch.{name}", factory=_recipe(name), kind="torch", family="torch_compat",
            examples=examples, optax=None, traced="lr", traits=traits,
        )
    )  # fmt: skip


for _name in DEFAULTS:
    _register(_name, _EXAMPLES[_name], frozenset({"elementwise"}))


__all__ = [
    "DEFAULTS", "IMPLEMENTATION_FLAGS", "RECIPES", "Recipe", "from_torch", "torch_recipe",
    "torch_schedule",
]  # fmt: skip
