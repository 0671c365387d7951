"""Curvature of a loss ``loss(params, inputs, targets)``, ``optax.second_order`` at optax's path.

Hessian-vector products, the exact Hessian diagonal and the (observed) Fisher diagonal, with
optax 0.2.8's names, signatures and numbers, for any params pytree; jit-, vmap- and grad-able.
optax deprecates this namespace (removal planned for 0.2.9) and warns on every call; gradtx
keeps it, without the warning, so ``import gradtx as optax`` code runs unchanged.

Where gradtx differs: a flat vector is cast to the params' dtypes before it is used as a
tangent, so float32 params work with float64 enabled (optax's ``hessian_diag`` then raises a
jvp dtype error: its ``jnp.eye`` is float64), and the diagonal comes in the params' dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import flatten_util

Tree = Any
LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]

__all__ = ["fisher_diag", "hessian_diag", "hvp"]


def _tangent(v: jax.Array, params: Tree) -> Tree:
    # v laid out as params, each leaf in its param's dtype (jvp insists on equal dtypes)
    flat, unravel = flatten_util.ravel_pytree(params)
    shaped = unravel(jnp.asarray(v).astype(flat.dtype))
    return jax.tree.map(lambda t, p: t.astype(jnp.result_type(p)), shaped, params)


def hvp(loss: LossFn, v: jax.Array, params: Tree, inputs: jax.Array, targets: jax.Array) -> Tree:
    """Hessian-vector product ``H v`` with ``H = d^2 loss(params, inputs, targets) / d params^2``,
    computed forward-over-reverse (``jvp`` of ``grad``: one gradient's cost, no ``H`` formed).
    ``v`` is a flat vector in the order of ``jax.flatten_util.ravel_pytree(params)``; the
    result is a tree shaped like ``params`` (as optax's, whatever its docstring says).
    optax: ``optax.second_order.hvp``.

    Args:
        loss: the loss ``loss(params, inputs, targets) -> scalar``.
        v: the vector, of size ``ravel_pytree(params)[0].size``.
        params: the point, a pytree.
        inputs: the loss's second argument.
        targets: the loss's third argument.

    Example:
        >>> import jax.numpy as jnp, gradtx.second_order as so
        >>> loss = lambda w, x, y: 0.5 * jnp.sum((x @ w - y) ** 2)  # H = x^T x
        >>> x = jnp.array([[1.0, 2.0], [0.0, 1.0]], dtype=jnp.float32)
        >>> w, y = jnp.zeros(2, dtype=jnp.float32), jnp.zeros(2, dtype=jnp.float32)
        >>> print(so.hvp(loss, jnp.array([1.0, 0.0], dtype=jnp.float32), w, x, y))
        [1. 2.]
    """
    grad = jax.grad(lambda p: loss(p, inputs, targets))
    return jax.jvp(grad, (params,), (_tangent(v, params),))[1]


def hessian_diag(loss: LossFn, params: Tree, inputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Exact diagonal of the Hessian of ``loss`` at ``params``, ``H_ii = (H e_i)_i``, as a flat
    vector in ``ravel_pytree`` order: one Hessian-vector product per coordinate, batched with
    ``vmap`` (``n`` products for ``n`` parameters: for small models).  Reads entry ``i`` of
    ``H e_i`` rather than forming ``<e_i, H e_i>`` (same numbers; an inf elsewhere in the column
    does not turn the entry into nan).  optax: ``optax.second_order.hessian_diag``.

    Args:
        loss: the loss ``loss(params, inputs, targets) -> scalar``.
        params: the point, a pytree.
        inputs: the loss's second argument.
        targets: the loss's third argument.

    Example:
        >>> import jax.numpy as jnp, gradtx.second_order as so
        >>> loss = lambda w, x, y: 0.5 * jnp.sum((x @ w - y) ** 2)  # diag(x^T x)
        >>> x = jnp.array([[1.0, 2.0], [0.0, 1.0]], dtype=jnp.float32)
        >>> w, y = jnp.zeros(2, dtype=jnp.float32), jnp.zeros(2, dtype=jnp.float32)
        >>> print(so.hessian_diag(loss, w, x, y))
        [1. 5.]
    """
    flat = flatten_util.ravel_pytree(params)[0]

    def entry(i: jax.Array) -> jax.Array:
        e_i = jnp.zeros_like(flat).at[i].set(1)
        return flatten_util.ravel_pytree(hvp(loss, e_i, params, inputs, targets))[0][i]

    return jax.vmap(entry)(jnp.arange(flat.size))


def fisher_diag(
    negative_log_likelihood: LossFn, params: Tree, inputs: jax.Array, targets: jax.Array
) -> jax.Array:
    """Diagonal of the observed Fisher information ``g g^T`` of the batch, ``g_i^2`` with
    ``g = grad negative_log_likelihood(params, inputs, targets)``, as a flat vector in
    ``ravel_pytree`` order.  Note: this squares the gradient of the whole batch's loss (as
    optax does), not the sum of per-example squared gradients (the empirical Fisher).
    optax: ``optax.second_order.fisher_diag``.

    Args:
        negative_log_likelihood: ``nll(params, inputs, targets) -> scalar``.
        params: the point, a pytree.
        inputs: the function's second argument.
        targets: the function's third argument.

    Example:
        >>> import jax.numpy as jnp, gradtx.second_order as so
        >>> nll = lambda w, x, y: 0.5 * jnp.sum((x @ w - y) ** 2)  # gradient x^T (x w - y)
        >>> x = jnp.array([[1.0, 2.0], [0.0, 1.0]], dtype=jnp.float32)
        >>> w, y = jnp.zeros(2, dtype=jnp.float32), jnp.array([1.0, 0.0], dtype=jnp.float32)
        >>> print(so.fisher_diag(nll, w, x, y))
        [1. 4.]
    """
    grads = jax.grad(negative_log_likelihood)(params, inputs, targets)
    return jnp.square(flatten_util.ravel_pytree(grads)[0])
