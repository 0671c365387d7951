"""Clipping: bound the size of updates before they reach the optimizer's scaling."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation
from gradtx.registry import register


@register("block", optax="clip", examples=[{"max_delta": 0.5}], traced="max_delta")
def clip(max_delta: kit.NonNegative) -> GradientTransformation:
    """Element-wise clipping: ``u = clip(g, -max_delta, max_delta)``.

    Args:
      max_delta: the largest magnitude an element keeps.

    optax: ``optax.clip``; torch: ``torch.nn.utils.clip_grad_value_``.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.clip(max_delta=0.5)
        >>> g = jnp.array([0.2, -3.0, 1.0], jnp.float32)
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(updates)
        [ 0.2 -0.5  0.5]
    """

    def step(g, state, params, h):
        d = h.max_delta
        return jax.tree.map(lambda x: jnp.clip(x, -kit.scalar(d, x), kit.scalar(d, x)), g), state

    return kit.block("clip", step, hyper={"max_delta": max_delta})


class ClipByGlobalNormState(NamedTuple):
    """``global_norm``: the norm of the updates before clipping, at the last step (for logging)."""

    global_norm: jax.Array


@register(
    "block", optax="clip_by_global_norm", examples=[{"max_norm": 3.0}], traits=(), traced="max_norm"
)
def clip_by_global_norm(max_norm: kit.Positive) -> GradientTransformation:
    """``n = sqrt(sum_i ||g_i||^2)``; ``u = g`` if ``n < max_norm`` else ``u = g * max_norm / n``.

    The pre-clip norm is kept in the state (``tree_get(state, "global_norm")``), so logging it
    costs no second pass.

    Args:
      max_norm: the largest global norm the updates keep.

    optax: ``optax.clip_by_global_norm``; torch: ``torch.nn.utils.clip_grad_norm_`` (which also
    scales when ``n == max_norm``, by a factor ``max_norm / (n + 1e-6)``).

    Example:
        In a chain, the norm before clipping is still found by name, for logging:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.chain(gradtx.clip_by_global_norm(max_norm=5.0), gradtx.sgd(0.5))
        >>> g = {"a": jnp.array([6.0], jnp.float32), "b": jnp.array([8.0], jnp.float32)}
        >>> updates, state = opt.update(g, opt.init(g))
        >>> print(updates["a"], updates["b"], gradtx.tree_get(state, "global_norm"))
        [-1.5] [-2.] 10.0
    """

    def init(params):
        return ClipByGlobalNormState(jnp.zeros([], jnp.result_type(float)))

    def step(updates, state, params, h):
        norm = kit.global_norm(updates)
        clipped = norm >= h.max_norm
        factor = jnp.where(clipped, h.max_norm / jnp.where(clipped, norm, 1), 1)
        u = jax.tree.map(lambda x: (x * factor.astype(x.dtype)).astype(x.dtype), updates)
        return u, ClipByGlobalNormState(norm.astype(state.global_norm.dtype))

    return kit.block("clip_by_global_norm", step, init, hyper={"max_norm": max_norm})


@register(
    "block", optax="clip_by_block_rms", examples=[{"threshold": 0.7}], traits=(), traced="threshold"
)
def clip_by_block_rms(threshold: kit.Positive) -> GradientTransformation:
    """Per-leaf RMS clipping: ``r = sqrt(mean(|g|^2))`` over each leaf;
    ``u = g / max(1, r / threshold)``.

    Args:
      threshold: the largest RMS a leaf keeps.

    optax: ``optax.clip_by_block_rms``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.clip_by_block_rms(threshold=1.0)
        >>> g = {"a": jnp.array([3.0, -4.0], jnp.float32), "b": jnp.full(2, 0.5, jnp.float32)}
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates["a"], precision=4), updates["b"])  # "b" is kept
        [ 0.8485 -1.1314] [0.5 0.5]
    """

    def step(g, state, params, h):
        def leaf(x):
            rms = jnp.sqrt(jnp.mean(kit.abs_sq(x.astype(kit.compute_dtype(x)))))
            factor = jnp.maximum(1, rms / kit.scalar(h.threshold, rms)).astype(x.dtype)
            return (x / factor).astype(x.dtype)

        return jax.tree.map(leaf, g), state

    return kit.block("clip_by_block_rms", step, hyper={"threshold": threshold})


def unitwise_norm(x: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    """The L2 norm of each *unit* of ``x``, broadcast back to ``x.shape``.

    A unit is what one output neuron owns.  Default reduction axes, by rank (after squeezing for
    the vector case): scalars and vectors: everything; rank 2 and 3 (dense ``[in, out]``,
    multi-head dense): axis 0; rank 4 (conv ``HWIO``): axes 0-2; rank 5 (3D conv ``DHWIO``):
    axes 0-3.  Other ranks need ``axis``.  optax: ``optax.transforms.unitwise_norm`` (same
    conventions).
    """
    if axis is None:
        if jnp.squeeze(x).ndim <= 1:
            axis = tuple(range(x.ndim))
        elif x.ndim in (2, 3):
            axis = 0
        elif x.ndim in (4, 5):
            axis = tuple(range(x.ndim - 1))
        else:
            raise ValueError(f"unitwise_norm: no default units for shape {x.shape}; pass axis=...")
    sq = jnp.sum(kit.abs_sq(x), axis=axis, keepdims=True)
    return jnp.broadcast_to(jnp.sqrt(sq), x.shape)


@register(
    "block", optax="adaptive_grad_clip", examples=[{"clipping": 0.1}], traits=(), traced="clipping"
)
def adaptive_grad_clip(
    clipping: kit.NonNegative,
    eps: kit.NonNegative = 1e-3,
    axis: int | tuple[int, ...] | None = None,
) -> GradientTransformation:
    """Adaptive gradient clipping (AGC, Brock et al. 2021), unit by unit:
    ``m = clipping * max(||p||_unit, eps)``; ``u = g`` where ``||g||_unit < m``, else
    ``u = g * m / max(||g||_unit, 1e-6)``.  Units as in ``unitwise_norm``.  Needs ``params``.

    Args:
      clipping: the largest ratio of a unit's gradient norm to its parameter norm.
      eps: the smallest parameter norm used (so zero-initialised units can move).
      axis: the axes a unit's norm is taken over (``None``: by rank, see ``unitwise_norm``).

    optax: ``optax.adaptive_grad_clip``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.adaptive_grad_clip(clipping=0.1)
        >>> params = jnp.array([3.0, 4.0], jnp.float32)  # norm 5: gradients are cut to norm 0.5
        >>> g = jnp.array([0.0, 10.0], jnp.float32)
        >>> updates, _ = tx.update(g, tx.init(params), params)
        >>> print(updates)
        [0.  0.5]
    """

    def step(g, state, params, h):
        def leaf(x, p):
            g_norm = unitwise_norm(x, axis)
            limit = kit.scalar(h.clipping, g_norm) * jnp.maximum(unitwise_norm(p, axis), h.eps)
            # the 1e-6 floor only guards the untaken branch of the where against 0/0
            scaled = x * (limit / jnp.maximum(g_norm, 1e-6))
            return (jnp.where(g_norm < limit, x, scaled).astype(x.dtype),)

        return kit.leafwise("adaptive_grad_clip", leaf, 1, g, params)[0], state

    hyper = {"clipping": clipping, "eps": eps}
    return kit.block("adaptive_grad_clip", step, hyper=hyper, needs_params=True)


__all__ = [
    "ClipByGlobalNormState",
    "adaptive_grad_clip",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "unitwise_norm",
]
