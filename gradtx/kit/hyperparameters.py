"""Hyperparameters: allowed intervals checked at construction (``Range``, the annotated types,
``validated``), and their values at a step (``resolve``: a number, an array or a schedule)."""

from __future__ import annotations

import functools
import inspect
import numbers
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import ScalarOrSchedule

# --- hyperparameters: allowed intervals, checked at construction ------------------------------

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,]+),\s*([^\])]+)\s*([\])])\s*$")


class Range:
    """An allowed interval such as ``"[0, 1)"`` (``inf`` for no bound); ``integer=True`` also
    requires a whole number.  Used in ``Annotated`` hints read by ``validated``."""

    def __init__(self, interval: str, *, integer: bool = False):
        m = _INTERVAL.match(interval)
        if m is None:
            raise ValueError(f"Range: {interval!r} is not an interval such as '[0, 1)'")
        lo_b, lo, hi, hi_b = m.groups()
        self.interval, self.integer = interval, integer
        self._lo, self._hi = float(lo), float(hi)
        self._closed = (lo_b == "[", hi_b == "]")

    def __repr__(self) -> str:
        return f"Range({self.interval!r}{', integer=True' if self.integer else ''})"

    def contains(self, value: Any) -> bool:
        v = np.asarray(value, dtype=float)
        ok = (v >= self._lo) if self._closed[0] else (v > self._lo)
        ok &= (v <= self._hi) if self._closed[1] else (v < self._hi)
        if self.integer:
            ok &= v == np.round(v)
        return bool(np.all(ok)) and not bool(np.any(np.isnan(v)))

    def check(self, where: str, name: str, value: Any) -> None:
        """Raises ValueError if a concrete ``value`` lies outside; schedules and traced values
        (under jit/vmap/grad) pass unchecked."""
        if not _is_static_number(value):
            return
        if not self.contains(value):
            kind = "an integer " if self.integer else ""
            raise ValueError(
                f"{where}: {name}={value!r} is out of range; allowed: {name} {kind}in "
                f"{self.interval}"
            )


def _is_static_number(x: Any) -> bool:
    if callable(x) or x is None or isinstance(x, jax.core.Tracer):
        return False
    try:
        np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def check_ranges(where: str, **checks: tuple[Any, str]) -> None:
    """``check_ranges("adam", b1=(b1, "[0, 1)"))``: ``Range(interval).check`` for each argument,
    for checks a signature cannot express (a tuple's members, a computed default)."""
    for name, (value, interval) in checks.items():
        Range(interval).check(where, name, value)


Rate = Annotated[ScalarOrSchedule, Range("(-inf, inf)")]
"""A learning rate or other step size: a number, an array or a schedule.  A negative rate
ascends, as in optax (``sgd(-lr)`` maximises); ``chain(scale(-1), tx)`` is torch's
``maximize=True`` for any optimizer."""
Decay = Annotated[ScalarOrSchedule, Range("[0, 1)")]
"""A decay rate in ``[0, 1)`` (Adam's ``b1``, ``b2``): a number, an array or a schedule."""
Fraction = Annotated[ScalarOrSchedule, Range("[0, 1]")]
"""A number in ``[0, 1]``, an array or a schedule."""
NonNegative = Annotated[ScalarOrSchedule, Range("[0, inf)")]
"""A number >= 0 (an epsilon, a weight decay), an array or a schedule."""
Positive = Annotated[ScalarOrSchedule, Range("(0, inf)")]
"""A number > 0, an array or a schedule."""
Steps = Annotated[int, Range("[1, inf)", integer=True)]
"""A whole number of steps >= 1."""
NonNegativeConstant = Annotated[float, Range("[0, inf)")]
"""A number >= 0 the rule builds constants from when the optimizer is built (not a schedule)."""
PositiveConstant = Annotated[float, Range("(0, inf)")]
"""A number > 0 the rule builds constants from (not a schedule)."""
ConstantDecay = Annotated[float, Range("[0, 1)")]
"""A decay rate in ``[0, 1)`` the rule builds constants from (not a schedule)."""


def _range_in(hint: Any) -> Range | None:
    """The ``Range`` inside an ``Annotated`` hint, also within ``X | None``."""
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Range):
            return meta
    for arg in typing.get_args(hint):
        found = _range_in(arg)
        if found is not None:
            return found
    return None


@functools.cache
def _ranges(fn: Callable[..., Any]) -> dict[str, Range]:
    hints = typing.get_type_hints(fn, include_extras=True)
    return {n: r for n, h in hints.items() if (r := _range_in(h)) is not None}


def ranges_of(fn: Callable[..., Any]) -> dict[str, Range]:
    """The ``Range`` of each annotated argument of ``fn`` (a ``validated`` factory or not)."""
    return _ranges(inspect.unwrap(fn))


def _check_kind(where: str, name: str, value: Any, default: Any) -> None:
    if value is None and default is None:
        return
    ok = callable(value) or isinstance(value, numbers.Number | np.ndarray | jax.Array)
    if isinstance(value, bool) or not ok:
        raise TypeError(
            f"{where}: {name}={value!r} must be a number, an array or a schedule "
            f"(a function of the step); got {type(value).__name__}"
        )


def validated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Checks every argument annotated with a ``Range`` when ``fn`` is called: the value must be
    a number, an array or a schedule (``None`` only where ``None`` is the default) and, when
    concrete, inside the interval.  Errors name ``fn``, the argument and the interval.  The
    annotations also tell ``inject_hyperparams`` which arguments are hyperparameters."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, rng in ranges_of(fn).items():
            if name in bound.arguments:
                value, default = bound.arguments[name], signature.parameters[name].default
                _check_kind(fn.__name__, name, value, default)
                if value is not None:
                    rng.check(fn.__name__, name, value)
        return fn(*args, **kwargs)

    checked.__gradtx_validated__ = True  # its annotations declare its hyperparameters
    return checked


def arguments_for(fn: Callable[..., Any], values: dict[str, Any], **overrides: Any) -> dict:
    """The entries of ``values`` that ``fn`` takes as arguments, ``overrides`` on top: how an
    alias hands its block the arguments they share, ``block(**kit.arguments_for(block,
    locals()))``, without restating a long argument list.

    Example:
        >>> from gradtx import kit
        >>> def block(b1=0.9, eps=1e-8): ...
        >>> kit.arguments_for(block, {"learning_rate": 0.1, "b1": 0.5, "eps": 1e-6}, eps=0.0)
        {'b1': 0.5, 'eps': 0.0}
    """
    names = inspect.signature(fn).parameters
    return {n: v for n, v in {**values, **overrides}.items() if n in names}


# --- hyperparameters: constants or schedules --------------------------------------------------


def resolve(value: Any, count: jax.Array) -> Any:
    """The value of a number-or-schedule hyperparameter at step ``count``.

    A schedule gets the step as the default integer type (int64 under x64), so that ``step / 3``
    in a user's schedule is float64 there rather than the float32 that int32 / int gives."""
    if not callable(value):
        return value
    return value(jnp.asarray(count).astype(jnp.result_type(int)))


def scalar(value: Any, like: jax.Array) -> Any:
    """A hyperparameter as an operand for leaf ``like``: Python numbers stay weakly typed,
    arrays (traced or batched hyperparameters) are cast to the leaf's dtype."""
    if isinstance(value, int | float):
        return value
    return jnp.asarray(value).astype(jnp.result_type(like))


def is_zero(value: Any) -> bool:
    """True for a Python number equal to 0 (so a block can skip work it would multiply by 0)."""
    return isinstance(value, int | float) and value == 0
