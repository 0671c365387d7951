"""Moving averages of pytrees and their bias correction (optax.tree's ``update_moment``,
``bias_correction``, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx import kit

Tree = Any
KeyPath = tuple[Any, ...]
Filter = Callable[[KeyPath, Any], bool]

# --- moments -------------------------------------------------------------------------------------


def _map_some(fn: Callable[[Any, Any], Any], updates: Tree, moments: Tree) -> Tree:
    # None updates (masked leaves) stay None
    return jax.tree.map(
        lambda g, t: None if g is None else fn(g, t), updates, moments, is_leaf=lambda x: x is None
    )


def update_moment(updates: Tree, moments: Tree, decay: Any, order: Any) -> Tree:
    """``(1 - decay) * g^order + decay * m``: the moving average of the ``order``-th moment.
    optax: ``optax.tree.update_moment``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.update_moment([jnp.array(2.0)], [jnp.array(1.0)], 0.5, 2)[0])
        2.5
    """
    return _map_some(lambda g, t: kit.ema(g**order, t, decay), updates, moments)


def update_moment_per_elem_norm(updates: Tree, moments: Tree, decay: Any, order: Any) -> Tree:
    """``(1 - decay) * |g|^order + decay * m`` with ``|g|^order = (|g|^2)^(order/2)`` for
    complex ``g`` (``g^order`` for real, as optax).  optax:
    ``optax.tree.update_moment_per_elem_norm``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.update_moment_per_elem_norm([jnp.array(3 + 4j)], [jnp.array(0.0)], 0.5, 2)[0])
        12.5
    """

    def power(g):
        if not jnp.iscomplexobj(g):
            return g**order
        half = order / 2
        return kit.abs_sq(g) ** (int(half) if float(half).is_integer() else half)

    return _map_some(lambda g, t: kit.ema(power(g), t, decay), updates, moments)


def update_infinity_moment(updates: Tree, moments: Tree, decay: Any, eps: Any) -> Tree:
    """``max(|g| + eps, decay * m)``: Adamax's decayed infinity norm.
    optax: ``optax.tree.update_infinity_moment``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.update_infinity_moment([jnp.array(-2.0)], [jnp.array(3.0)], 0.5, 0.0)[0])
        2.0
    """
    return _map_some(lambda g, t: jnp.maximum(jnp.abs(g) + eps, decay * t), updates, moments)


def bias_correction(moment: Tree, decay: Any, count: Any) -> Tree:
    """``m / (1 - decay^count)``, the debiasing of a zero-initialised moving average after
    ``count`` steps; the denominator is ``-expm1(count * log(decay))`` in at least float32
    (``gradtx.kit.one_minus_power``), exact to rounding where optax's ``1 - decay**count`` loses
    ~1e-5 relative in float32; dtypes kept.  optax: ``optax.tree.bias_correction``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> m = gt.bias_correction([jnp.array(0.19)], 0.9, jnp.array(2))  # 0.19 / (1 - 0.81)
        >>> print(jnp.round(m[0], 6))
        1.0
    """
    count = jnp.asarray(count)
    cache: dict[Any, jax.Array] = {}

    def leaf(t):
        dt = kit.compute_dtype(t)
        if dt not in cache:
            cache[dt] = kit.one_minus_power(decay, count, t)
        return (t / cache[dt]).astype(jnp.result_type(t))

    return jax.tree.map(leaf, moment)


def _here(v: Any) -> bool:
    return getattr(v, "__module__", None) == __name__


__all__ = sorted(  # every public function and class defined here
    n for n, v in list(globals().items()) if not n.startswith("_") and _here(v)
)
