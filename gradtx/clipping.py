"""Clipping: bound the size of updates before they reach the optimizer's scaling."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx import _tree
from gradtx._tree import check_ranges, resolve
from gradtx.base import Block, GradientTransformation, ScalarOrSchedule, transformation
from gradtx.transforms import _stateless


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


__all__ = ["ClipByGlobalNormState", "clip", "clip_by_global_norm"]
