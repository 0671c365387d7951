"""Private pytree and numerics helpers shared by the building blocks.

Every helper maps over ``params``/``updates`` with ``jax.tree.map`` so that ``None`` leaves stay
``None`` and Flax variables' sharding annotations carry over to the state built from them.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def canonical_dtype(dtype: Any) -> jnp.dtype | None:
    return None if dtype is None else jnp.dtype(dtype)


def zeros_like(tree: PyTree, dtype: Any = None) -> PyTree:
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def full_like(tree: PyTree, value: Any, dtype: Any = None) -> PyTree:
    return jax.tree.map(lambda x: jnp.full_like(x, value, dtype=dtype), tree)


def cast(tree: PyTree, dtype: Any) -> PyTree:
    if dtype is None:
        return tree
    return jax.tree.map(lambda x: x.astype(dtype), tree)


def cast_like(tree: PyTree, like: PyTree) -> PyTree:
    return jax.tree.map(lambda x, y: x.astype(jnp.result_type(y)), tree, like)


def compute_dtype(x: Any) -> jnp.dtype:
    """The precision scalars (bias corrections, schedules) are computed in for leaf ``x``:
    the leaf's own float precision, at least float32 (so float64 stays float64 under x64)."""
    return jnp.promote_types(jnp.result_type(x), jnp.float32)


def _log_base(base: Any, dt: Any) -> jax.Array:
    # A Python float's log is taken in double precision before rounding, so 1 - 0.999**t keeps
    # full float32 accuracy instead of inheriting the ~1e-5 error of 0.999 rounded to float32.
    if isinstance(base, int | float):
        return jnp.asarray(math.log(base) if base > 0 else -math.inf, dt)
    return jnp.log(jnp.asarray(base).astype(dt))


def power(base: Any, count: jax.Array, like: Any) -> jax.Array:
    """``base**count`` in the precision of ``like`` (at least float32)."""
    dt = compute_dtype(like)
    return jnp.exp(count.astype(dt) * _log_base(base, dt))


def one_minus_power(base: Any, count: jax.Array, like: Any) -> jax.Array:
    """``1 - base**count`` without cancellation: ``-expm1(count * log(base))``, count >= 1."""
    dt = compute_dtype(like)
    return -jnp.expm1(count.astype(dt) * _log_base(base, dt))


def debias(moment: jax.Array, decay: Any, count: jax.Array) -> jax.Array:
    """``moment / (1 - decay**count)`` in the moment's precision."""
    return (moment / one_minus_power(decay, count, moment)).astype(moment.dtype)


class Debias:
    """``x / (1 - decay^(count + 1 + ahead))`` with the correction computed once per dtype and
    ``ahead`` for a whole tree, instead of once per leaf (fewer ops to trace and compile)."""

    def __init__(self, decay: Any, count: jax.Array):
        self.decay, self.count = decay, count
        self._cache: dict[tuple[Any, int], jax.Array] = {}

    def __call__(self, x: jax.Array, ahead: int = 0) -> jax.Array:
        key = (compute_dtype(x), ahead)
        if key not in self._cache:
            self._cache[key] = one_minus_power(self.decay, self.count + 1 + ahead, x)
        return (x / self._cache[key]).astype(x.dtype)


def ema(g: jax.Array, m: jax.Array, decay: Any) -> jax.Array:
    """``decay * m + (1 - decay) * g``."""
    return (1 - decay) * g + decay * m


def ema_sq(g: jax.Array, v: jax.Array, decay: Any) -> jax.Array:
    """``decay * v + (1 - decay) * |g|**2``."""
    return (1 - decay) * abs_sq(g) + decay * v


def abs_sq(x: jax.Array) -> jax.Array:
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def global_norm(tree: PyTree) -> jax.Array:
    """``sqrt(sum of squares of every leaf)``; accumulates in at least float32."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    return jnp.sqrt(sum(jnp.sum(abs_sq(x.astype(compute_dtype(x)))) for x in leaves))


def scalar(value: Any, like: jax.Array) -> Any:
    """A hyperparameter as an operand for leaf ``like``: Python numbers stay weakly typed,
    arrays (traced or batched hyperparameters) are cast to the leaf's dtype."""
    if isinstance(value, int | float):
        return value
    return jnp.asarray(value).astype(jnp.result_type(like))


# --- structure checks ----------------------------------------------------------------------------


def _paths(tree: PyTree) -> list[str]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in flat]


def check_match(where: str, a_name: str, a: PyTree, b_name: str, b: PyTree) -> None:
    """Raises a ValueError naming ``where`` and the first differing path when two trees that must
    line up (e.g. updates and a moment) do not: structure first, then leaf shapes.

    Runs at trace time only, so it costs nothing inside a compiled step.
    """
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    if ta != tb:
        pa, pb = _paths(a), _paths(b)
        first = next(
            (i for i, (x, y) in enumerate(zip(pa, pb, strict=False)) if x != y),
            min(len(pa), len(pb)),
        )
        at_a = pa[first] if first < len(pa) else "<nothing>"
        at_b = pb[first] if first < len(pb) else "<nothing>"
        raise ValueError(
            f"{where}: {a_name} and {b_name} have different tree structures "
            f"({len(pa)} vs {len(pb)} leaves); first difference at leaf {first}: "
            f"{a_name} has {at_a!r}, {b_name} has {at_b!r}. "
            f"Did you pass the state of another optimizer or params of another model?"
        )
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    for i, (x, y) in enumerate(zip(la, lb, strict=True)):
        if np.shape(x) != np.shape(y):
            raise ValueError(
                f"{where}: {a_name} and {b_name} differ in shape at {_paths(a)[i]!r}: "
                f"{np.shape(x)} vs {np.shape(y)}"
            )


# --- hyperparameter validation -------------------------------------------------------------------

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,]+),\s*([^\])]+)\s*([\])])\s*$")


def _is_static_number(x: Any) -> bool:
    if callable(x) or x is None or isinstance(x, jax.core.Tracer):
        return False
    try:
        np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def check_ranges(where: str, **checks: tuple[Any, str]) -> None:
    """``check_ranges("adam", b1=(b1, "[0, 1)"))`` raises ValueError naming the argument and the
    allowed interval when a concrete value falls outside it.  Schedules and traced values (under
    jit/vmap/grad) are not checked here."""
    for name, (value, interval) in checks.items():
        if not _is_static_number(value):
            continue
        m = _INTERVAL.match(interval)
        assert m, interval
        lo_b, lo, hi, hi_b = m.groups()
        lo_v, hi_v = float(lo), float(hi)
        v = np.asarray(value, dtype=float)
        ok = (v >= lo_v) if lo_b == "[" else (v > lo_v)
        ok &= (v <= hi_v) if hi_b == "]" else (v < hi_v)
        if not np.all(ok) or np.any(np.isnan(v)):
            raise ValueError(
                f"{where}: {name}={value!r} is out of range; allowed: {name} in {interval}"
            )


def resolve(value: Any, count: jax.Array) -> Any:
    """The value of a float-or-schedule hyperparameter at step ``count``.

    A schedule gets the step as the default integer type (int64 under x64), so that ``step / 3``
    in a user's schedule is float64 there rather than the float32 that int32 / int gives."""
    if not callable(value):
        return value
    return value(jnp.asarray(count).astype(jnp.result_type(int)))
