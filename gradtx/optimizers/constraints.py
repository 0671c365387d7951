"""Blocks that constrain the update rather than scale it: where it may take the parameters
(``keep_params_nonnegative``), its mean (``centralize``, gradient centralisation: the update of
each output unit is projected onto the zero-mean hyperplane) and its length
(``normalize_by_update_norm``: a step of fixed norm).

None of them keeps state: on its own each has ``ChainState(count, (EmptyState(),))``, and inside
a chain it adds no state at all.
"""

from __future__ import annotations

from typing import Annotated

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import EmptyState, GradientTransformation, ScalarOrSchedule
from gradtx.registry import register

NonNegativeParamsState = EmptyState
"""State of ``keep_params_nonnegative`` (it keeps none).  optax: ``optax.NonNegativeParamsState``
(also ``EmptyState`` there)."""

AnyReal = Annotated[ScalarOrSchedule, kit.Range("(-inf, inf)")]
"""Any real number (of either sign), an array or a schedule."""


@register("block", optax="keep_params_nonnegative", traced=None)
def keep_params_nonnegative() -> GradientTransformation:
    """Keeps the parameters non-negative: ``u = -p`` where ``p + g < 0``, else ``u = g``.

    The parameters after the update are ``max(p + g, 0)`` wherever ``p >= 0``; a parameter that
    is already negative is moved to 0.  Put it last in the chain (after the learning rate), so it
    sees the update that will be applied.  Needs ``params``; ``None`` leaves stay ``None``.

    optax: ``optax.keep_params_nonnegative``; torch: none (``p.clamp_(min=0)`` after the step).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.chain(gradtx.sgd(learning_rate=1.0), gradtx.keep_params_nonnegative())
        >>> params = jnp.array([0.5, 2.0, 1.0], jnp.float32)
        >>> grads = jnp.array([1.0, 1.0, -1.0], jnp.float32)
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(updates, gradtx.apply_updates(params, updates))  # 0.5 - 1 would be negative
        [-0.5 -1.   1. ] [0. 1. 2.]
    """

    def step(updates, state, params, h):
        def leaf(g, p):
            if g is None or p is None:
                return g
            return jnp.where(p + g < 0, -p, g).astype(jnp.result_type(g))

        if jax.tree.leaves(updates):
            kit.check_match("keep_params_nonnegative", "updates", updates, "params", params)
        none = lambda x: x is None
        return jax.tree.map(leaf, updates, params, is_leaf=none), state

    return kit.block("keep_params_nonnegative", step, needs_params=True)


def _centred(g: jax.Array) -> jax.Array:
    if g.ndim <= 1:
        return g
    x = g.astype(kit.compute_dtype(g))
    return (x - jnp.mean(x, axis=tuple(range(1, g.ndim)), keepdims=True)).astype(g.dtype)


@register("block", optax="centralize", traced=None, traits=())
def centralize() -> GradientTransformation:
    """Gradient centralisation (Yong et al. 2020): every leaf of two or more dimensions loses its
    mean over all axes but the first, ``u[i, ...] = g[i, ...] - mean(g[i, ...])``; vectors and
    scalars pass unchanged.

    The mean is taken, and subtracted, in the leaf's precision (at least float32) and rounded
    once.  The first axis is the one kept, as in optax: that is torch's output axis
    (``[out, in]`` kernels).  A Flax ``Dense`` kernel is ``[in, out]``, so there each *input*
    row is centred; for the paper's per-output-unit rule on such kernels, transpose first or
    mask them out.

    optax: ``optax.centralize``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.centralize()
        >>> g = {"w": jnp.array([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]]), "b": jnp.array([1.0, 2.0])}
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(updates["w"], updates["b"])  # each row of "w" now sums to 0; "b" is kept
        [[-1.  0.  1.]
         [-2.  0.  2.]] [1. 2.]
    """

    def step(updates, state, params, h):
        return jax.tree.map(_centred, updates), state

    return kit.block("centralize", step)


@register(
    "block",
    optax="normalize_by_update_norm",
    traced="scale_factor",
    traits=(),
    examples=[{}, {"scale_factor": -0.5, "eps": 1e-3}],
)
def normalize_by_update_norm(
    scale_factor: AnyReal = 1.0, eps: kit.NonNegative = 1e-6
) -> GradientTransformation:
    """A step of fixed length: ``u = scale_factor * g / (||g|| + eps)``, ``||g||`` the global L2
    norm over every leaf (accumulated in at least float32).

    Args:
      scale_factor: the factor the normalised update is multiplied by (its norm, up to
        ``eps``); negative for descent without a learning rate.
      eps: added to the norm (so a zero update stays zero rather than NaN).

    optax: ``optax.normalize_by_update_norm``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.normalize_by_update_norm(scale_factor=-0.5, eps=0.0)
        >>> g = {"a": jnp.array([3.0], jnp.float32), "b": jnp.array([4.0], jnp.float32)}
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(updates["a"], updates["b"])  # norm 0.5, against the gradient
        [-0.3] [-0.4]
    """

    def step(updates, state, params, h):
        if not jax.tree.leaves(updates):
            return updates, state
        norm = kit.global_norm(updates)
        factor = h.scale_factor / (norm + kit.scalar(h.eps, norm))

        def leaf(g):
            dt = kit.compute_dtype(g)
            return (g.astype(dt) * jnp.asarray(factor).astype(dt)).astype(g.dtype)

        return jax.tree.map(leaf, updates), state

    hyper = {"scale_factor": scale_factor, "eps": eps}
    return kit.block("normalize_by_update_norm", step, hyper=hyper)


__all__ = [
    "NonNegativeParamsState",
    "centralize",
    "keep_params_nonnegative",
    "normalize_by_update_norm",
]
