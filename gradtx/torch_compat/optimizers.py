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

import jax
import jax.numpy as jnp

from gradtx import kit, registry
from gradtx.base import (
    Block,
    Chain,
    ChainState,
    GradientTransformation,
    ScalarOrSchedule,
    Schedule,
    chain,
    increment,
    transformation,
    zero_count,
)
from gradtx.blocks import add_decayed_weights, scale, scale_by_learning_rate, trace
from gradtx.kit import check_ranges
from gradtx.optimizers.adam import scale_by_adam, scale_by_amsgrad
from gradtx.optimizers.adam_variants import scale_by_adamax, scale_by_nadam, scale_by_radam
from gradtx.optimizers.rms import scale_by_adadelta, scale_by_rms, scale_by_rss
from gradtx.state import tree_get
from gradtx.torch_compat.plateau import ReduceOnPlateauState, check_plateau, plateau_observer
from gradtx.torch_compat.schedulers import StepRule, torch_schedule
from gradtx.torch_compat.schedulers import scheduler as build_scheduler

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


SELF_TESTED: set[str] = set()
"""Recipes registered with ``harness=False``: checked against torch in their own test files."""


def torch_recipe(
    name: str,
    *,
    defaults: Mapping[str, Any],
    examples: tuple[dict[str, Any], ...],
    ranges: Mapping[str, str] | None = None,
    traits: frozenset[str] = frozenset({"elementwise"}),
    harness: bool = True,
) -> Callable[[Callable[..., GradientTransformation]], Callable[..., GradientTransformation]]:
    """Register ``build(h, lr) -> transformation`` as ``from_torch(name, ...)``: ``h`` is torch's
    kwargs merged over ``defaults`` (torch's own, with ``lr`` first) and range-checked with
    ``ranges`` (argument -> interval, torch's ``__init__`` checks); ``lr`` is ``h["lr"]`` or the
    scheduler's schedule.  The recipe builds the whole transformation (``maximize``, weight
    decay, the lr); ``from_torch`` appends ``ReduceLROnPlateau`` when asked.  ``examples`` are
    the configurations the torch parity test runs (the first: ``{"lr": defaults["lr"]}``).  A
    module in ``gradtx/torch_compat/`` that registers recipes is imported automatically.
    ``harness=False`` keeps a recipe the generic tests cannot drive out of the registry (torch's
    Muon takes matrices only; LBFGS's step needs the objective): its own test file then checks
    it against torch."""

    def decorate(build):
        DEFAULTS[name] = dict(defaults)
        RECIPES[name] = Recipe(build, dict(ranges or {}))
        if harness:
            _register(name, examples, traits)
        else:
            SELF_TESTED.add(name)
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


class TorchOptimizerState(NamedTuple):
    """State of ``from_torch(...)``.

    ``learning_rate``: torch's ``param_groups[0]["lr"]`` now, the lr the next step uses (after
    the scheduler's latest ``step()``); ``tree_set(state, learning_rate=x)`` is torch's
    ``param_groups[0]["lr"] = x``.  ``scheduler``: ReduceLROnPlateau's bookkeeping (a
    ``ReduceOnPlateauState`` whose ``scale`` is ``learning_rate / lr``), ``()`` otherwise.
    ``blocks``: the states of the optimizer's blocks (moments, momentum buffers, ...)."""

    learning_rate: jax.Array
    scheduler: Any
    blocks: Any


class _NoRebuild(inspect.Signature):
    """``from_torch``'s signature, which refuses ``bind``: wrappers that rebuild the optimizer on
    every step from bound arguments (``inject_hyperparams``) would fight the lr it keeps in its
    own state, so they fail at once with the idiom that works."""

    __slots__ = ()

    def bind(self, *args: Any, **kwargs: Any) -> inspect.BoundArguments:
        raise ValueError(
            "from_torch keeps torch's lr in its state already: do not wrap it in "
            "inject_hyperparams.  Read it with gradtx.tree_get(state, 'learning_rate') (or "
            "gradtx.torch_compat.current_lr(state)) and set it between steps with "
            "state = gradtx.tree_set(state, learning_rate=x), as torch's "
            "param_groups[0]['lr'] = x; other hyperparameters: rebuild with from_torch"
        )


def _no_rebuild(fn: Callable[..., Any]) -> None:
    sig = inspect.signature(fn)
    fn.__signature__ = _NoRebuild(list(sig.parameters.values()))  # type: ignore[attr-defined]


def from_torch(
    name: str,
    /,
    *,
    scheduler: str | tuple[str, Mapping[str, Any]] | None = None,
    **torch_kwargs: Any,
) -> GradientTransformation:
    """The transformation that reproduces ``torch.optim.<name>(params, **torch_kwargs)``.

    Supported: ``SGD``, ``Adagrad``, ``RMSprop``, ``Adadelta``, ``Adam``, ``AdamW``, ``Adamax``,
    ``NAdam``, ``RAdam`` and the recipes of ``RECIPES`` (``Rprop``, ``ASGD``, ``Adafactor``,
    ``Muon`` (matrices only, as torch's), ``LBFGS`` (one ``update(grads, state, params,
    value_fn=f)`` is one ``step(closure)``)) with all their numeric options and torch's defaults
    (see ``DEFAULTS``); ``lr`` may also be a schedule ``step -> lr``. The chain is, in order:
    ``scale(-1)`` if ``maximize``;
    ``add_decayed_weights(weight_decay)`` (L2: added to the gradient) unless the decay is
    decoupled; torch's scaler; ``add_decayed_weights`` if decoupled (``AdamW``,
    ``decoupled_weight_decay=True``: ``p <- p - lr * wd * p``); the learning rate (Adagrad:
    ``lr / (1 + t * lr_decay)``).

    The live learning rate: the state (``TorchOptimizerState``) holds torch's
    ``param_groups[0]["lr"]``.  ``gradtx.tree_get(state, "learning_rate")`` reads it (after
    ``k`` updates: the lr torch shows after ``k`` ``optimizer.step(); scheduler.step()``) and
    ``state = gradtx.tree_set(state, learning_rate=x)`` sets it as torch's
    ``param_groups[0]["lr"] = x`` does: the next step uses ``x``; then a chainable scheduler
    (StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR,
    MultiplicativeLR, SWALR, ReduceLROnPlateau) continues from ``x``, and a closed-form one
    (LambdaLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts, an ``lr`` schedule)
    overwrites it at its next step.  ``inject_hyperparams(from_torch)`` is refused with this
    idiom.

    ``scheduler=(scheduler_name, scheduler_kwargs)`` reproduces the pair optimizer +
    ``torch.optim.lr_scheduler.<scheduler_name>(optimizer, **scheduler_kwargs)`` with
    ``scheduler.step()`` after every ``optimizer.step()`` (``scheduler.step(loss)`` for
    ``ReduceLROnPlateau``: pass ``value=loss`` to ``update``); every scheduler of
    ``torch_schedule`` is accepted, ``SequentialLR`` / ``ChainedScheduler`` members as
    ``(name, kwargs)`` pairs.  ``CyclicLR``/``OneCycleLR`` with ``cycle_momentum`` (torch's
    default) cycle SGD/RMSprop's momentum or Adam's beta1 as torch does (by their closed form).

    Implementation flags (``foreach``, ``fused``, ``capturable``, ``differentiable``) are
    ignored; other unknown names raise TypeError, torch's out-of-range values ValueError.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> from gradtx.torch_compat import from_torch
        >>> tx = from_torch("SGD", lr=0.1, scheduler=("StepLR", {"step_size": 2, "gamma": 0.5}))
        >>> params = jnp.array([1.0])
        >>> state = tx.init(params)
        >>> for _ in range(3):
        ...     _, state = tx.update(params, state, params)
        ...     print(round(float(gradtx.tree_get(state, "learning_rate")), 6))
        0.1
        0.05
        0.05
        >>> state = gradtx.tree_set(state, learning_rate=1.0)  # param_groups[0]["lr"] = 1.0
        >>> _, state = tx.update(params, state, params)
        >>> print(round(float(gradtx.tree_get(state, "learning_rate")), 6))  # StepLR halves it
        0.5
    """
    h = _merge(name, torch_kwargs)
    lr = h["lr"]
    if scheduler is None:
        rule = _follow(lr) if callable(lr) else None
        return _live(name, h, lr, rule, None, None)
    sched_name, sched_kwargs = (scheduler, {}) if isinstance(scheduler, str) else scheduler
    if callable(lr):
        raise ValueError("from_torch: give lr as a number when a scheduler is given")
    if sched_name == "ReduceLROnPlateau":
        return _live(name, h, lr, None, None, _plateau(lr, **sched_kwargs))
    sched = build_scheduler(sched_name, lr, **sched_kwargs)
    if sched.momentum is not None and (name not in _CYCLED or name in RECIPES):
        raise ValueError(
            f"{sched_name}: optimizer must support momentum or beta1 with "
            f"`cycle_momentum` option enabled ({name} has neither); "
            f"pass cycle_momentum=False"
        )
    return _live(name, h, lr, sched.step, sched.momentum, None)


_no_rebuild(from_torch)


def _follow(schedule: Schedule) -> StepRule:
    """The step rule of an ``lr`` given as a schedule: its value, whatever the lr was."""
    return lambda x, t: kit.resolve(schedule, t)


def _chain_for(name: str, h: dict[str, Any], lr: Any, momentum: Schedule | None) -> Chain:
    """torch's optimizer ``name`` as a chain, with the lr ``lr`` (a number or traced value)."""
    if name in RECIPES:
        return chain(RECIPES[name].build(h, lr))
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
    )


def _live(
    name: str,
    h: dict[str, Any],
    lr: ScalarOrSchedule,
    rule: StepRule | None,
    momentum: Schedule | None,
    plateau: _Plateau | None,
) -> Chain:
    """The optimizer with torch's lr kept in its state (``TorchOptimizerState``): each update
    runs the chain with the stored lr, then moves it as ``scheduler.step()`` does (``rule(x,
    t)`` for step ``t``, the plateau observer on ``value``, or not at all)."""

    _chain_for(name, h, lr, momentum)  # the recipe's own checks, at construction

    def first(dtype: Any) -> jax.Array:
        x = kit.resolve(lr, zero_count()) if callable(lr) else lr
        x = jnp.asarray(x, dtype)
        return x if rule is None or callable(lr) else jnp.asarray(rule(x, zero_count()), dtype)

    def init(params):
        dtype = _lr_dtype(params)
        x = first(dtype)
        aux = () if plateau is None else plateau.init(dtype)
        blocks = _chain_for(name, h, x, momentum).init(params).inner
        return TorchOptimizerState(x, aux, blocks)

    def update(updates, state, params=None, count=None, **extra):
        if not isinstance(state, TorchOptimizerState):
            raise ValueError(
                f"from_torch({name!r}): expected TorchOptimizerState, got "
                f"{type(state).__name__}; was this state made by this optimizer's init?"
            )
        x = state.learning_rate
        inner = _chain_for(name, h, x, momentum)
        updates, blocks = inner.update(updates, ChainState(count, state.blocks), params, **extra)
        aux = state.scheduler
        if plateau is not None:
            x, aux = plateau.step(x, aux, extra.get("value"))
        elif rule is not None:
            x = jnp.asarray(rule(x, increment(count)), x.dtype)
        return updates, TorchOptimizerState(x, aux, blocks.inner)

    return transformation(Block(init, update))


def _lr_dtype(params: Any) -> jnp.dtype:
    """The lr's dtype: the widest float dtype among the params, at least float32."""
    floats = [jnp.result_type(x) for x in jax.tree.leaves(params)]
    floats = [d for d in floats if jnp.issubdtype(d, jnp.floating)]
    widest = max(floats, key=lambda d: jnp.finfo(d).bits, default=jnp.dtype(jnp.float32))
    return jnp.promote_types(widest, jnp.float32)


def current_lr(state: Any) -> jax.Array:
    """torch's ``param_groups[0]["lr"]`` in a ``from_torch`` state: the lr its next step uses
    (``gradtx.tree_get(state, "learning_rate")``, found inside any chain or wrapper)."""
    return tree_get(state, "learning_rate")


def _decayed(lr: ScalarOrSchedule, lr_decay: float) -> Schedule:
    """Adagrad's ``lr_t / (1 + t * lr_decay)`` (t counted from 0), applied to whatever lr the
    scheduler set, as torch does."""

    def fn(count):
        base = lr(count) if callable(lr) else lr
        return base / (1 + jnp.asarray(count).astype(jnp.result_type(float)) * lr_decay)

    return fn


class _Plateau(NamedTuple):
    """ReduceLROnPlateau on the live lr: ``init(dtype)`` its bookkeeping, ``step(x, aux,
    value) -> (x, aux)`` its ``scheduler.step(value)``."""

    init: Callable[[Any], ReduceOnPlateauState]
    step: Callable[[jax.Array, ReduceOnPlateauState, Any], tuple[jax.Array, Any]]


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
) -> _Plateau:
    """torch's ReduceLROnPlateau (kwargs, checks and arithmetic) on the lr itself: ``new =
    max(lr * factor, min_lr)``, kept when ``lr - new > eps``."""
    if factor >= 1.0:
        raise ValueError("ReduceLROnPlateau: factor should be < 1.0")
    check_plateau(
        "ReduceLROnPlateau", mode, threshold_mode, factor=(factor, "[0, 1)"),
        patience=(patience, "[0, inf)"), threshold=(threshold, "[0, inf)"),
        cooldown=(cooldown, "[0, inf)"), min_lr=(min_lr, "[0, inf)"), eps=(eps, "[0, inf)"),
    )  # fmt: skip
    observe = plateau_observer(factor, patience, threshold, threshold_mode, cooldown, min_lr,
                               mode, eps)  # fmt: skip
    worst = math.inf if mode == "min" else -math.inf

    def init(dtype):
        zero = jnp.zeros([], jnp.int32)
        return ReduceOnPlateauState(jnp.ones([], dtype), jnp.asarray(worst, dtype), zero, zero)

    def step(x, aux, value):
        if value is None:
            raise ValueError(
                "ReduceLROnPlateau: update needs the metric, e.g. "
                "tx.update(grads, state, params, value=loss)"
            )
        s = observe(aux._replace(scale=x), jnp.asarray(value).astype(aux.best_value.dtype))
        return s.scale, s._replace(scale=(s.scale / lr).astype(x.dtype))

    return _Plateau(init, step)


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
    factory.__signature__ = _NoRebuild([*params, rest])  # type: ignore[attr-defined]
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
    "DEFAULTS", "IMPLEMENTATION_FLAGS", "RECIPES", "SELF_TESTED", "Recipe", "TorchOptimizerState",
    "current_lr",
    "from_torch", "torch_recipe", "torch_schedule",
]  # fmt: skip
