"""Numerics blocks share: the precision rule for scalars, bias corrections without cancellation,
moving averages, norms accumulated in at least float32, and small tree helpers."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

Tree = Any
"""A pytree of arrays (in a state NamedTuple: a tree with the params' structure)."""


def canonical_dtype(dtype: Any) -> jnp.dtype | None:
    return None if dtype is None else jnp.dtype(dtype)


def compute_dtype(*xs: Any) -> jnp.dtype:
    """The precision scalars (bias corrections, schedules) are computed in for leaves ``xs``:
    their widest float precision, at least float32 (so float64 stays float64 under x64)."""
    return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def scalar_dtype(params: Tree) -> jnp.dtype:
    """dtype of an optimizer's own scalars (a learned step size): the lowest float precision
    among the leaves, but never below float32, so a bfloat16 model still adapts smoothly."""
    floats = [
        jnp.result_type(x)
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    if not floats:
        return jnp.dtype(jnp.float32)
    return jnp.promote_types(min(floats, key=lambda d: jnp.finfo(d).bits), jnp.float32)


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


class Debias:
    """``Debias(decay, count)(x, ahead=0) = x / (1 - decay^(count + 1 + ahead))``: the bias
    correction of a zero-initialised moving average, computed once per dtype for a whole tree."""

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


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at 0 (where ``sqrt``'s is infinite):
    a distance that starts at exactly 0 can still be differentiated through."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2`` (real for complex ``x``)."""
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def global_norm(tree: Tree) -> jax.Array:
    """``sqrt(sum of |x|**2 over every leaf)``, accumulated in at least float32."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    return jnp.sqrt(sum(jnp.sum(abs_sq(x.astype(compute_dtype(x)))) for x in leaves))


def safe_norm(x: jax.Array, min_norm: Any) -> jax.Array:
    """``max(||x||_2, min_norm)`` over all of ``x``, with a finite gradient at ``x = 0`` (the
    norm's own gradient there is NaN)."""
    sq = jnp.sum(abs_sq(x))
    small = sq <= jnp.square(min_norm)
    return jnp.where(small, min_norm, jnp.sqrt(jnp.where(small, 1, sq))).astype(sq.dtype)


def vdot(a: Tree, b: Tree) -> jax.Array:
    """``<a, b>`` over all leaves, accumulated in at least float32 (real part for complex)."""
    terms = [
        jnp.sum((x.conj() * y).real.astype(compute_dtype(x)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum(terms) if terms else jnp.zeros([], jnp.float32)


def l1_norm(tree: Tree) -> jax.Array:
    """``sum |x|`` over all leaves, accumulated in at least float32."""
    terms = [jnp.sum(jnp.abs(x).astype(compute_dtype(x))) for x in jax.tree.leaves(tree)]
    return sum(terms) if terms else jnp.zeros([], jnp.float32)


def zeros_like(tree: Tree, dtype: Any = None) -> Tree:
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def full_like(tree: Tree, value: Any, dtype: Any = None) -> Tree:
    return jax.tree.map(lambda x: jnp.full_like(x, value, dtype=dtype), tree)


def cast(tree: Tree, dtype: Any) -> Tree:
    return tree if dtype is None else jax.tree.map(lambda x: x.astype(dtype), tree)


def cast_like(tree: Tree, like: Tree) -> Tree:
    return jax.tree.map(lambda x, y: x.astype(jnp.result_type(y)), tree, like)


def copy(tree: Tree) -> Tree:
    """Distinct buffers, so params and a state holding a snapshot can both be donated."""
    return jax.tree.map(lambda p: jnp.array(p, copy=True), tree)
