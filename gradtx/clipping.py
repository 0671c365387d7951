"""Clipping: bound the size of updates before they reach the optimizer's scaling."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx import _tree
from gradtx._tree import check_ranges, resolve
from gradtx.base import Block, GradientTransformation, ScalarOrSchedule, transformation
from gradtx.transforms import _stateless, leafwise


def clip(max_delta: ScalarOrSchedule) -> GradientTransformation:
    """Element-wise clipping: ``u = clip(g, -max_delta, max_delta)``.  optax: ``optax.clip``;
    torch: ``torch.nn.utils.clip_grad_value_``."""
    check_ranges("clip", max_delta=(max_delta, "[0, inf)"))

    def fn(g, params, count):
        d = resolve(max_delta, count)
        return jax.tree.map(lambda x: jnp.clip(x, -_tree.scalar(d, x), _tree.scalar(d, x)), g)

    return _stateless(fn)


class ClipByGlobalNormState(NamedTuple):
    """``global_norm``: the norm of the updates before clipping, at the last step (for logging)."""

    global_norm: jax.Array


def clip_by_global_norm(max_norm: ScalarOrSchedule) -> GradientTransformation:
    """``n = sqrt(sum_i ||g_i||^2)``; ``u = g`` if ``n < max_norm`` else ``u = g * max_norm / n``.

    The pre-clip norm is kept in the state (``tree_get(state, "global_norm")``), so logging it
    costs no second pass.  optax: ``optax.clip_by_global_norm``; torch:
    ``torch.nn.utils.clip_grad_norm_`` (which also scales when ``n == max_norm``, by a factor
    ``max_norm / (n + 1e-6)``).
    """
    check_ranges("clip_by_global_norm", max_norm=(max_norm, "(0, inf)"))

    def init(params):
        return ClipByGlobalNormState(jnp.zeros([], jnp.result_type(float)))

    def update(updates, state, params=None, count=None, **extra):
        norm = _tree.global_norm(updates)
        m = resolve(max_norm, count)
        clipped = norm >= m
        factor = jnp.where(clipped, m / jnp.where(clipped, norm, 1), 1)
        u = jax.tree.map(lambda x: (x * factor.astype(x.dtype)).astype(x.dtype), updates)
        return u, ClipByGlobalNormState(norm.astype(state.global_norm.dtype))

    return transformation(Block(init, update))


def clip_by_block_rms(threshold: ScalarOrSchedule) -> GradientTransformation:
    """Per-leaf RMS clipping: ``r = sqrt(mean(|g|^2))`` over each leaf;
    ``u = g / max(1, r / threshold)``.  optax: ``optax.clip_by_block_rms``."""
    check_ranges("clip_by_block_rms", threshold=(threshold, "(0, inf)"))

    def fn(g, params, count):
        th = resolve(threshold, count)

        def leaf(x):
            k = _tree.compute_dtype(x)
            rms = jnp.sqrt(jnp.mean(_tree.abs_sq(x.astype(k))))
            return (x / jnp.maximum(1, rms / _tree.scalar(th, rms)).astype(x.dtype)).astype(x.dtype)

        return jax.tree.map(leaf, g)

    return _stateless(fn)


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
    sq = jnp.sum(_tree.abs_sq(x), axis=axis, keepdims=True)
    return jnp.broadcast_to(jnp.sqrt(sq), x.shape)


def adaptive_grad_clip(
    clipping: ScalarOrSchedule,
    eps: ScalarOrSchedule = 1e-3,
    axis: int | tuple[int, ...] | None = None,
) -> GradientTransformation:
    """Adaptive gradient clipping (AGC, Brock et al. 2021), unit by unit:
    ``m = clipping * max(||p||_unit, eps)``; ``u = g`` where ``||g||_unit < m``, else
    ``u = g * m / max(||g||_unit, 1e-6)``.  Units as in ``unitwise_norm``.  Needs ``params``.
    Defaults: ``eps=1e-3``.  optax: ``optax.adaptive_grad_clip``.
    """
    check_ranges("adaptive_grad_clip", clipping=(clipping, "[0, inf)"), eps=(eps, "[0, inf)"))

    def fn(g, params, count):
        if params is None:
            raise ValueError("adaptive_grad_clip: update needs params (pass params=...)")
        c, e = resolve(clipping, count), resolve(eps, count)

        def leaf(x, p):
            g_norm = unitwise_norm(x, axis)
            limit = _tree.scalar(c, g_norm) * jnp.maximum(unitwise_norm(p, axis), e)
            # the 1e-6 floor only guards the untaken branch of the where against 0/0
            scaled = x * (limit / jnp.maximum(g_norm, 1e-6))
            return (jnp.where(g_norm < limit, x, scaled).astype(x.dtype),)

        return leafwise("adaptive_grad_clip", leaf, 1, g, params)[0]

    return _stateless(fn)


__all__ = [
    "ClipByGlobalNormState",
    "adaptive_grad_clip",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "unitwise_norm",
]
