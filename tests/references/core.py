"""The shared pieces of the NumPy references: the Ref protocol, chaining, hyperparameters.

Each rule is transcribed from its paper (or from torch's documented algorithm where gradtx offers
torch's variant) and works on a *list* of float64 arrays, one per parameter leaf; the tests flatten
their trees with ``jax.tree.leaves`` before calling in.  Nothing here imports gradtx or optax.

Every reference is a small stateful object: ``init(params)`` sets up its buffers and
``step(grads, params, t)`` returns the update for step ``t`` (``t = 1`` on the first call).
Hyperparameters may be numbers or schedules ``step -> value``, called with ``t - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Arrays = list[np.ndarray]
Hyper = float | Callable[[int], Any]


def at(h: Hyper, t: int) -> float:
    """The value of hyperparameter ``h`` at step ``t`` (schedules see ``t - 1``)."""
    return float(np.asarray(h(t - 1) if callable(h) else h, dtype=np.float64))


def zeros(params: Sequence[np.ndarray]) -> Arrays:
    return [np.zeros(np.shape(p), np.float64) for p in params]


def filled(params: Sequence[np.ndarray], value: float) -> Arrays:
    return [np.full(np.shape(p), value, np.float64) for p in params]


def moment(params: Sequence[np.ndarray], dtype: Any) -> Arrays:
    return [np.zeros(np.shape(p), dtype or np.float64) for p in params]


class Ref:
    """Base class: stateless unless ``init`` is overridden."""

    def init(self, params: Sequence[np.ndarray]) -> None:
        del params

    def step(self, grads: Arrays, params: Arrays, t: int) -> Arrays:
        raise NotImplementedError


class Chain(Ref):
    """Applies member references in order, all at the same step ``t``."""

    def __init__(self, *members: Ref):
        self.members = members

    def init(self, params):
        for m in self.members:
            m.init(params)

    def step(self, grads, params, t):
        for m in self.members:
            grads = m.step(grads, params, t)
        return grads


class Identity(Ref):
    def step(self, grads, params, t):
        return [np.array(g) for g in grads]


class Scale(Ref):
    """``u = c * g`` (``c`` a number or schedule)."""

    def __init__(self, factor: Hyper):
        self.factor = factor

    def step(self, grads, params, t):
        return [at(self.factor, t) * g for g in grads]


def learning_rate(lr: Hyper | None, flip_sign: bool = True) -> Ref:
    """Gradient descent's ``-lr * g`` (``+lr * g`` without the sign flip)."""
    if lr is None:
        return Identity()
    sign = -1.0 if flip_sign else 1.0
    return Scale(lambda c: sign * at(lr, c + 1))


def mask_leaves(mask: Any, params: Sequence[np.ndarray]) -> list[bool]:
    """One bool per leaf from a mask argument: ``None`` (every leaf), a function of the params
    (called on the list of leaves, e.g. ``gradtx.registry.matrices``) or a list of bools."""
    if mask is None:
        return [True] * len(params)
    values = mask(list(params)) if callable(mask) else mask
    return [bool(v) for v in values]


def stored(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` as kept in a state stored in ``dtype`` (``None``: float64, unrounded), back in
    float64: the update of a low-precision moment is computed from the value as stored."""
    return x if dtype is None else np.asarray(x).astype(np.dtype(dtype)).astype(np.float64)


def is_zero(h: Hyper) -> bool:
    """Whether a hyperparameter is the constant 0 (a schedule never is)."""
    return not callable(h) and float(h) == 0.0


def dot(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """``<a, b>`` over all the leaves together."""
    return float(sum(np.sum(x * y) for x, y in zip(a, b, strict=True)))


def dist_sq(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """``||a - b||^2`` over all the leaves together."""
    return float(sum(np.sum((x - y) ** 2) for x, y in zip(a, b, strict=True)))
