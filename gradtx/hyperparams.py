"""Hyperparameters as data: read and change them between steps without recompiling.

An optimizer built as ``adam(learning_rate=0.1)`` closes over ``0.1``: it is baked into the
compiled step.  ``inject_hyperparams(adam)(learning_rate=0.1)`` instead keeps every numeric
hyperparameter in the optimizer state, as an array, so that

- ``gradtx.tree_get(state, "learning_rate")`` logs the value used by the latest step,
- ``state = gradtx.tree_set(state, learning_rate=0.01)`` changes it for the next step without
  retracing the jitted step, and
- ``jax.vmap`` over states holding different values trains one model per value in one compiled
  step (a learning-rate sweep).

Schedules are evaluated at the wrapped optimizer's own step counter (there is no second counter),
so wrapping never changes the trajectory.  optax: ``optax.inject_hyperparams`` (same call shape).
"""

from __future__ import annotations

import functools
import inspect
import numbers
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import kit
from gradtx.base import (
    Block,
    Chain,
    ChainState,
    GradientTransformation,
    ScalarOrSchedule,
    chain,
    increment,
    zero_count,
)


@kit.one_counter("count")
class InjectHyperparamsState(NamedTuple):
    """State of ``inject_hyperparams(factory)(...)``.

    ``hyperparams``: ``{name: array}``, the numeric hyperparameters (a schedule's entry holds its
    value at the latest step).  ``inner_state``: the wrapped optimizer's state, a
    ``ChainState(count, inner)`` whose ``count`` is the one step counter.  Inside a gradtx
    ``chain`` the counter is the chain's and ``inner_state`` is the tuple of block states.
    """

    hyperparams: dict[str, jax.Array]
    inner_state: Any


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.number | np.ndarray | jax.Array):
        return jnp.issubdtype(jnp.result_type(value), jnp.number)
    return False


def _is_hyper_hint(hint: Any) -> bool:
    """Whether an annotation declares a numeric hyperparameter: a ``kit.Range`` that is not an
    integer one (integers size the computation), ``ScalarOrSchedule`` or ``float``."""
    rng = kit._range_in(hint)
    if rng is not None:
        return not rng.integer
    if hint is float or hint is ScalarOrSchedule:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None, float | Array
        return any(_is_hyper_hint(a) for a in typing.get_args(hint))
    return False


def declared_hyperparams(factory: Callable[..., Any]) -> set[str] | None:
    """The arguments ``factory``'s annotations declare numeric.  gradtx's factories annotate
    each hyperparameter with a ``kit`` type (``kit.Rate``, ``kit.Decay``, ...) and is marked by
    ``kit.validated``; ``None`` for a foreign factory that declares none (e.g. optax's)."""
    try:
        hints = typing.get_type_hints(inspect.unwrap(factory), include_extras=True)
    except Exception:  # unresolvable annotations: treat the factory as foreign
        return None
    declared = {n for n, h in hints.items() if n != "return" and _is_hyper_hint(h)}
    return declared if getattr(factory, "__gradtx_validated__", False) else declared or None


def _storage_dtype(hyperparam_dtype: Any, params: Any) -> jnp.dtype:
    """``hyperparam_dtype``, else the highest float dtype among the params (as optax) but at
    least float32: optax's bfloat16 ``b2 = 0.999`` rounds to 1.0, and Adam then stops moving."""
    if hyperparam_dtype is not None:
        return jnp.dtype(hyperparam_dtype)
    floats = [jnp.result_type(x) for x in jax.tree.leaves(params)]
    floats = [d for d in floats if jnp.issubdtype(d, jnp.floating)]
    if not floats:
        return jnp.dtype(jnp.result_type(float))
    return jnp.promote_types(max(floats, key=lambda d: jnp.finfo(d).bits), jnp.float32)


def _as_stored(value: Any, dtype: jnp.dtype) -> jax.Array:
    """A numeric hyperparameter as a strongly typed array: floats in ``dtype``, others as given.

    Strong typing matters: a weakly typed value would change the jit cache key after the first
    step (or after ``tree_set``) and force a retrace.
    """
    x = jnp.asarray(value)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(dtype)
    return jnp.asarray(x, x.dtype)


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Wraps an optimizer factory so its numeric hyperparameters live in the state.

    ``inject_hyperparams(gradtx.adam)(learning_rate=0.1)`` takes the factory's arguments (by
    position or name).  Each argument is sorted once, when the optimizer is built:

    - a number or float array: a hyperparameter, stored in ``state.hyperparams[name]`` as a
      ``hyperparam_dtype`` array (default: the params' highest float dtype as in optax, but at
      least float32, where optax keeps bfloat16 and rounds ``b2 = 0.999`` to 1) and read back
      on every update, so ``tree_set(state, name=value)`` takes effect at the next
      step;
    - a callable: a schedule ``step -> value``, handed to a gradtx factory as it is (so it is
      evaluated exactly where the unwrapped optimizer evaluates it; a foreign factory, e.g.
      optax's, gets its value at the step counter, as optax does), and its value at the
      optimizer's step counter recorded in ``state.hyperparams[name]`` for logging; setting that
      entry has no effect;
    - a stateful schedule (``init``/``update``/``__call__``, e.g. optax's or gradtx's
      ``WrappedSchedule``): the optimizer is ``inject_stateful_hyperparams(inner_factory)``'s,
      as optax's ``inject_hyperparams`` takes them too;
    - static (passed to the factory unchanged): everything else, and the names in
      ``static_args``.

    A schedule may come from anywhere: gradtx's or optax's schedule functions, a lambda, a
    ``functools.partial``.  It is called with the step as the default integer type (int64
    under x64; see ``kit.resolve``) where optax passes int32, so under x64 a schedule whose
    arithmetic follows the step's dtype (optax's schedule functions, ``step / 3``) is exact
    in float64 here and rounded to float32 in optax: the values differ in the 8th digit.

    Which arguments are hyperparameters is declared, not guessed: a gradtx factory annotates
    each one with a ``kit`` type (``learning_rate: kit.Rate``, ``b1: kit.Decay``) and only those
    are candidates, so masks, label functions, dtypes, keys and integer sizes stay static.  A
    factory without such annotations (e.g. optax's) follows optax's rule: every number and every
    callable is a hyperparameter unless named in ``static_args``.

    The wrapped optimizer computes exactly what ``inner_factory(**same_args)`` computes (float64
    bit-for-bit).  Floating-point params keep their dtype in state and updates.  The factory is
    called at construction (so its argument checks run on the initial values) and on every
    update with the current values (traced values skip range checks).  A foreign (e.g. optax)
    factory works too: its state is wrapped in a ``ChainState`` for the counter.

    optax: ``optax.inject_hyperparams`` (whose state also keeps a second counter; here the inner
    optimizer's is the only one).  torch: editing ``optimizer.param_groups[0]["lr"]``.
    """
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(
            f"inject_hyperparams: static_args {sorted(unknown)} are not parameters of "
            f"{getattr(inner_factory, '__name__', inner_factory)}; it takes "
            f"{list(signature.parameters)}"
        )
    declared = declared_hyperparams(inner_factory)
    foreign = not getattr(inner_factory, "__gradtx_validated__", False)

    @functools.wraps(inner_factory)
    def build(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        # a stateful schedule (optax's ``WrappedSchedule``, an ``init``/``update``/``__call__``
        # object) is optax's other kind of hyperparameter: hand the whole call to the stateful
        # form (imported here: it builds on this module)
        from gradtx import stateful_hyperparams as stateful

        if any(
            n not in static and stateful.is_stateful_schedule(v) for n, v in bound.arguments.items()
        ):
            return stateful.inject_stateful_hyperparams(
                inner_factory, static_args, hyperparam_dtype
            )(*args, **kwargs)
        fixed, numeric, schedules = {}, {}, {}
        for name, value in bound.arguments.items():
            param = signature.parameters[name]
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ValueError(
                    f"inject_hyperparams: {inner_factory.__name__} takes *{name}; wrap a factory "
                    "with named parameters"
                )
            if name in static or (declared is not None and name not in declared):
                fixed[name] = value
            elif _is_number(value):
                # a whole number given for a float hyperparameter must not be stored as int
                numeric[name] = float(value) if isinstance(value, numbers.Integral) else value
            elif callable(value) and not isinstance(value, type):
                schedules[name] = value
            else:
                fixed[name] = value
        inner_factory(**bound.arguments)  # the factory's own checks, on the initial values
        order = [n for n in bound.arguments if n in numeric or n in schedules]

        def current(hyperparams: dict[str, Any], count: jax.Array, dtypes: dict) -> dict:
            values = {
                n: kit.resolve(schedules[n], count) if n in schedules else hyperparams[n]
                for n in order
            }
            return {n: _as_stored(v, dtypes[n]) for n, v in values.items()}

        def inner(values: dict[str, jax.Array]) -> GradientTransformation:
            if foreign:  # optax's factories take numbers: the values at this step, as optax
                return chain(inner_factory(**fixed, **values))
            # schedules go in as themselves: the factory evaluates them where it always does
            # (schedule_free reads its learning rate one step ahead), so nothing shifts
            numbers = {n: v for n, v in values.items() if n not in schedules}
            return chain(inner_factory(**fixed, **schedules, **numbers))

        def block_init(params):
            dtype = _storage_dtype(hyperparam_dtype, params)
            values = current(
                {n: numeric.get(n) for n in order}, zero_count(), dict.fromkeys(order, dtype)
            )
            return InjectHyperparamsState(values, inner(values).init(params).inner)

        def block_update(updates, state, params=None, count=None, **extra):
            ours = isinstance(state, InjectHyperparamsState)
            if not ours or set(state.hyperparams) != set(order):
                got = type(state).__name__
                if isinstance(state, InjectHyperparamsState):
                    got += f" with hyperparams {sorted(state.hyperparams)}"
                raise ValueError(
                    f"inject_hyperparams: expected InjectHyperparamsState with hyperparams "
                    f"{sorted(order)}, got {got}; was this state made by this optimizer's init?"
                )
            stored = {n: jnp.result_type(v) for n, v in state.hyperparams.items()}
            values = current(state.hyperparams, count, stored)
            updates, inner_state = inner(values).update(
                updates, ChainState(count, state.inner_state), params, **extra
            )
            return updates, InjectHyperparamsState(values, inner_state.inner)

        def init(params):
            hyper, blocks = block_init(params)
            return InjectHyperparamsState(hyper, ChainState(zero_count(), blocks))

        def update(updates, state, params=None, **extra):
            if not isinstance(state, InjectHyperparamsState) or not isinstance(
                state.inner_state, ChainState
            ):
                raise ValueError(
                    "inject_hyperparams: expected InjectHyperparamsState(hyperparams, "
                    f"inner_state=ChainState(...)), got {type(state).__name__}; was this state "
                    "made by this optimizer's init?"
                )
            count = state.inner_state.count
            flat = InjectHyperparamsState(state.hyperparams, state.inner_state.inner)
            updates, new = block_update(updates, flat, params, count, **extra)
            return updates, InjectHyperparamsState(
                new.hyperparams, ChainState(increment(count), new.inner_state)
            )

        # inside a gradtx chain this runs as one block on the chain's counter
        return Chain((Block(block_init, block_update),), init=init, update=update)

    return build


__all__ = ["InjectHyperparamsState", "inject_hyperparams"]
