"""Helpers the schedules share: step conversion, argument checks, interpolation."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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


def _check_steps(where: str, name: str, value: Any) -> float | int:
    """A step count given as a number: an int, or a float as optax also takes (``8.0``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not np.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number of steps, got {value!r}")
    return int(value) if float(value).is_integer() else float(value)


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
