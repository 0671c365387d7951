"""Hyperparameters driven by *stateful* schedules: a schedule that keeps its own state and may
read the update's extra keywords (``value=`` the loss), e.g. a learning rate halved whenever the
loss stops improving.

A stateful schedule is any object with ``init() -> state``, ``update(state, **extra) -> state``
and ``__call__(state, **extra) -> value`` (``StatefulSchedule``).  ``inject_stateful_hyperparams``
extends ``gradtx.inject_hyperparams`` with them: their values are written into the state's
``hyperparams`` before each update and their states kept in ``hyperparams_states``.  Everything
else is ``inject_hyperparams``' design: one step counter (the wrapped optimizer's), plain
schedules evaluated where the optimizer evaluates them, hyperparameters declared by the
annotations of gradtx factories.  ``WrappedSchedule`` is optax's stateful form of a plain
schedule; here it is unwrapped, since the optimizer's counter already is its state.
optax: ``optax.inject_stateful_hyperparams``, ``optax.WrappedSchedule``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import Block, Chain, ChainState, GradientTransformation, increment, zero_count
from gradtx.hyperparams import InjectHyperparamsState, declared_hyperparams, inject_hyperparams


class StatefulSchedule(Protocol):
    """A schedule with its own state: ``init() -> state``, ``update(state, **extra) -> state``
    (called once per optimizer update, after the value is read) and ``__call__(state, **extra)
    -> value`` (the value for the current update).  optax: ``optax.schedules.StatefulSchedule``."""

    def init(self) -> Any: ...

    def update(self, state: Any, **extra_args: Any) -> Any: ...

    def __call__(self, state: Any, **extra_args: Any) -> Any: ...


class WrappedScheduleState(NamedTuple):
    """``count``: the number of updates so far.  optax: ``WrappedScheduleState`` (same field)."""

    count: jax.Array


class WrappedSchedule:
    """A plain schedule ``step -> value`` as a ``StatefulSchedule`` whose state counts the
    updates: ``__call__(state)`` is ``schedule_fn(state.count)``.

    ``inject_stateful_hyperparams`` unwraps it (the wrapped optimizer's step counter is the same
    count), so it gives exactly what the plain schedule gives.  optax: ``optax.WrappedSchedule``.

    Example:
        >>> import gradtx
        >>> sched = gradtx.WrappedSchedule(lambda step: 0.5 ** step)
        >>> state = sched.init()
        >>> for _ in range(3):
        ...     print(float(sched(state)))
        ...     state = sched.update(state)
        1.0
        0.5
        0.25
    """

    def __init__(self, schedule_fn: Callable[[jax.Array], Any]):
        if not callable(schedule_fn):
            raise TypeError(f"WrappedSchedule: schedule_fn must be callable, got {schedule_fn!r}")
        self.schedule_fn = schedule_fn

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(zero_count())

    def update(self, state: WrappedScheduleState, **extra_args: Any) -> WrappedScheduleState:
        del extra_args
        return WrappedScheduleState(increment(state.count))

    def __call__(self, state: WrappedScheduleState, **extra_args: Any) -> Any:
        del extra_args
        return kit.resolve(self.schedule_fn, state.count)

    def __repr__(self) -> str:
        return f"WrappedSchedule({self.schedule_fn!r})"


@kit.one_counter("count")
class InjectStatefulHyperparamsState(NamedTuple):
    """State of ``inject_stateful_hyperparams(factory)(...)``.

    ``hyperparams``: ``{name: array}``, every numeric hyperparameter's value at the latest
    update (a stateful schedule's included); ``hyperparams_states``: ``{name: state}`` of each
    stateful schedule; ``inner_state``: the wrapped optimizer's ``ChainState(count, inner)``, whose
    ``count`` is the one step counter (inside a gradtx chain: the tuple of block states).
    optax: ``optax.InjectStatefulHyperparamsState``, which also keeps ``count`` on top and a
    ``WrappedScheduleState`` per plain schedule.
    """

    hyperparams: dict[str, jax.Array]
    hyperparams_states: dict[str, Any]
    inner_state: Any


def _cast_like(value: Any, stored: Any) -> jax.Array:
    return jnp.asarray(value).astype(jnp.result_type(stored))


def is_stateful_schedule(value: Any) -> bool:
    """Whether ``value`` follows the ``StatefulSchedule`` protocol (a transformation does not:
    it is a tuple, not callable)."""
    return (
        callable(value)
        and not isinstance(value, type)
        and callable(getattr(value, "init", None))
        and callable(getattr(value, "update", None))
    )


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """``inject_hyperparams`` that also takes stateful schedules as hyperparameters.

    ``inject_stateful_hyperparams(gradtx.adam)(learning_rate=my_schedule)`` accepts the
    factory's arguments; each is sorted as ``inject_hyperparams`` sorts it, and additionally:

    - a ``StatefulSchedule`` (``init``/``update``/``__call__``): at every update its value
      ``schedule(s, **extra)`` is stored in ``hyperparams[name]`` and handed to the optimizer,
      then its state moves on, ``s <- schedule.update(s, **extra)``; ``extra`` holds the
      update's keywords (``value=`` the loss, ...), so a schedule may follow the loss;
    - a ``WrappedSchedule``: its plain schedule (the same values: the optimizer's counter is
      its count).

    For a factory not written with gradtx's kit (e.g. optax's), plain schedules are evaluated at
    the step counter and passed as numbers, as optax does (optax's factories only take
    schedules for the learning rate).  The wrapped optimizer computes what the factory
    computes with those values.

    Args:
      inner_factory: a gradtx (or optax) optimizer factory.
      static_args: arguments passed to the factory as they are.
      hyperparam_dtype: storage dtype of float hyperparameters (default: float32, float64
        under x64).

    optax: ``optax.inject_stateful_hyperparams`` (a deprecated alias of optax's
    ``inject_hyperparams``).  ``gradtx.inject_hyperparams`` given a stateful schedule builds this
    one, as optax's does.  State: ``InjectStatefulHyperparamsState``.

    Example:
        A learning rate halved whenever the loss (``value=``) fails to improve:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> class HalveOnPlateau:  # state: (best loss so far, learning rate)
        ...     def init(self):
        ...         return jnp.asarray(jnp.inf), jnp.asarray(0.1)
        ...     def __call__(self, state, **extra):
        ...         return state[1]
        ...     def update(self, state, *, value, **extra):
        ...         best, lr = state
        ...         return jnp.minimum(value, best), jnp.where(value < best, lr, lr / 2)
        >>> tx = gradtx.inject_stateful_hyperparams(gradtx.sgd)(learning_rate=HalveOnPlateau())
        >>> state = tx.init(jnp.zeros(1))
        >>> for loss in (3.0, 2.0, 2.5, 1.0):
        ...     _, state = tx.update(jnp.ones(1), state, value=jnp.asarray(loss))
        ...     print(f"{state.hyperparams['learning_rate']:.3g}")  # the value this step used
        0.1
        0.1
        0.1
        0.05
    """
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(
            f"inject_stateful_hyperparams: static_args {sorted(unknown)} are not parameters of "
            f"{getattr(inner_factory, '__name__', inner_factory)}; it takes "
            f"{list(signature.parameters)}"
        )
    plain = inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
    declared = declared_hyperparams(inner_factory)
    # a factory not written with gradtx's kit (optax's) takes numbers, not schedules
    foreign = not getattr(inner_factory, "__gradtx_validated__", False)
    name = getattr(inner_factory, "__name__", repr(inner_factory))

    @functools.wraps(inner_factory)
    def build(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        stateful: dict[str, Any] = {}  # name -> StatefulSchedule
        counted: dict[str, Any] = {}  # name -> plain schedule read at the counter (foreign)
        for arg, value in bound.arguments.items():
            if arg in static:
                continue
            if isinstance(value, WrappedSchedule):
                arguments[arg] = value = value.schedule_fn
            if is_stateful_schedule(value):
                if declared is not None and arg not in declared:
                    raise ValueError(
                        f"inject_stateful_hyperparams: {arg} of {name} is not a numeric "
                        f"hyperparameter (declared: {sorted(declared)}); it cannot be scheduled"
                    )
                stateful[arg] = value
            elif foreign and callable(value) and not isinstance(value, type):
                if declared is None or arg in declared:
                    counted[arg] = value

        def driven(states: dict, count: jax.Array, extra: dict, stored: dict) -> dict:
            # each value in the dtype its entry is stored in, so the state keeps its structure
            values = {n: s(states[n], **extra) for n, s in stateful.items()}
            values.update({n: kit.resolve(f, count) for n, f in counted.items()})
            return {n: _cast_like(v, stored[n]) for n, v in values.items()}

        first = {n: s(s.init()) for n, s in stateful.items()}
        first.update({n: kit.resolve(f, zero_count()) for n, f in counted.items()})
        # the driven hyperparameters enter the plain wrapper as numbers it stores and reads back
        (inner,) = plain(**{**arguments, **first}).blocks

        def block_init(params):
            states = {n: s.init() for n, s in stateful.items()}
            base = inner.init(params)
            values = driven(states, zero_count(), {}, base.hyperparams)
            hyper = {**base.hyperparams, **values}
            return InjectStatefulHyperparamsState(hyper, states, base.inner_state)

        def block_update(updates, state, params=None, count=None, **extra):
            ours = isinstance(state, InjectStatefulHyperparamsState)
            if not ours or set(state.hyperparams_states) != set(stateful):
                raise ValueError(
                    f"inject_stateful_hyperparams: expected InjectStatefulHyperparamsState with "
                    f"schedule states {sorted(stateful)}, got {type(state).__name__}; was this "
                    f"state made by this optimizer's init?"
                )
            values = driven(state.hyperparams_states, count, extra, state.hyperparams)
            hyper = {**state.hyperparams, **values}
            flat = InjectHyperparamsState(hyper, state.inner_state)
            updates, new = inner.update(updates, flat, params, count=count, **extra)
            states = {
                n: s.update(state.hyperparams_states[n], **extra) for n, s in stateful.items()
            }
            return updates, InjectStatefulHyperparamsState(new.hyperparams, states, new.inner_state)

        def init(params):
            s = block_init(params)
            return s._replace(inner_state=ChainState(zero_count(), s.inner_state))

        def update(updates, state, params=None, **extra):
            ok = isinstance(state, InjectStatefulHyperparamsState)
            if not ok or not isinstance(state.inner_state, ChainState):
                raise ValueError(
                    "inject_stateful_hyperparams: expected InjectStatefulHyperparamsState("
                    f"..., inner_state=ChainState(...)), got {type(state).__name__}; was this "
                    "state made by this optimizer's init?"
                )
            count = state.inner_state.count
            flat = state._replace(inner_state=state.inner_state.inner)
            updates, new = block_update(updates, flat, params, count, **extra)
            return updates, new._replace(inner_state=ChainState(increment(count), new.inner_state))

        return Chain((Block(block_init, block_update),), init=init, update=update)

    return build


__all__ = [
    "InjectStatefulHyperparamsState",
    "StatefulSchedule",
    "WrappedSchedule",
    "WrappedScheduleState",
    "inject_stateful_hyperparams",
    "is_stateful_schedule",
]
