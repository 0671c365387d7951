"""Input checks shared by the loss modules (the same exceptions optax raises)."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp


def require_dtype(x, kind, name: str) -> None:
    """Raises ``TypeError`` unless ``x``'s dtype is a sub-dtype of ``kind`` (e.g. floating)."""
    dtype = jax.dtypes.result_type(x)
    if not jnp.issubdtype(dtype, kind):
        raise TypeError(f"{name} must have a {kind.__name__} dtype, got {dtype}")


def require_same_shape(a, b) -> None:
    """Raises ``ValueError`` unless ``a`` and ``b`` have the same shape (no broadcasting)."""
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"Shape mismatch: got {jnp.shape(a)} and {jnp.shape(b)}.")


def require_rank(x, rank: int, name: str) -> None:
    if jnp.ndim(x) != rank:
        raise ValueError(f"{name} must have rank {rank}, got rank {jnp.ndim(x)}")


def normalize_axis(axis, ndim: int) -> int:
    """``axis`` as an index in ``[0, ndim)``; ``ValueError`` when out of bounds."""
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise ValueError(f"axis {a} is out of bounds for an array of rank {ndim}")
    return a % ndim


def expand_where(where, ndim: int, axis):
    """A ``where`` mask given over the batch dimensions only gets size-1 class axes."""
    if where is None:
        return None
    where = jnp.asarray(where)
    return where if where.ndim == ndim else jnp.expand_dims(where, axis)
