"""Clipping functions of *per-example* gradients, the core of DP-SGD (Abadi et al. 2016): each
example's gradient is clipped to a norm bound before the batch is summed, so no single example
moves the parameters by more than the bound.  Plus ``unitwise_clip``, the unit-wise clipping
step of adaptive gradient clipping as a function.

These are functions, not transformations: they take gradients with a leading batch axis (from
``jax.vmap(jax.grad(loss), in_axes=(None, 0))``) and return the clipped sum.  Norms and the
weighted sum are computed in at least float32.  optax: ``optax.per_example_global_norm_clip``,
``optax.per_example_layer_norm_clip``, ``optax.transforms.unitwise_clip``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import kit

Tree = Any


def _batch_size(where: str, grads: Tree) -> int:
    """The common leading dimension of every leaf; a ValueError naming the leaves otherwise."""
    leaves = jax.tree.leaves(grads)
    if not leaves:
        raise ValueError(f"{where}: grads has no arrays; expected per-example gradients")
    shapes = [np.shape(x) for x in leaves]
    if any(len(s) == 0 for s in shapes) or len({s[0] for s in shapes}) != 1:
        raise ValueError(
            f"{where}: expects per-example gradients, every array with the batch on axis 0 "
            f"(one size for all); got shapes {jax.tree.map(np.shape, grads)}"
        )
    return shapes[0][0]


def _per_example_norms(leaves: list[jax.Array]) -> jax.Array:
    """The L2 norm of each example's gradient over ``leaves``: shape ``(batch,)``."""
    sq = [
        jnp.sum(kit.abs_sq(x.astype(kit.compute_dtype(x))).reshape(x.shape[0], -1), axis=1)
        for x in leaves
    ]
    return jnp.sqrt(sum(sq[1:], sq[0]))


def _clip_and_sum(leaves: list[jax.Array], bound: Any) -> tuple[list[jax.Array], jax.Array]:
    norms = _per_example_norms(leaves)
    bound = jnp.asarray(bound)
    # c / n below 1 where the norm exceeds the bound; 1 elsewhere, also where c / n is 0/0,
    # inf/inf or NaN (a NaN gradient is summed as it is)
    factors = jnp.where(norms > bound, bound / jnp.where(norms > bound, norms, 1), 1)
    factors = factors.astype(jnp.result_type(norms, bound))
    summed = [jnp.tensordot(factors, x.astype(factors.dtype), axes=1) for x in leaves]
    return summed, jnp.sum(factors < 1)


def per_example_global_norm_clip(grads: Tree, l2_norm_clip: Any) -> tuple[Tree, jax.Array]:
    """Clips each example's gradient to global norm ``l2_norm_clip`` and sums over the batch.

    With ``g_b`` the gradient of example ``b`` (all leaves' slices ``[b]``) and ``n_b`` its L2
    norm over every leaf: ``sum_b g_b * min(1, l2_norm_clip / n_b)``.  Returns that sum (the
    tree without the batch axis, in the gradients' precision, at least float32) and the number
    of examples clipped (``n_b > l2_norm_clip``).

    Args:
      grads: per-example gradients: every leaf has the batch on axis 0.
      l2_norm_clip: the norm bound ``C >= 0`` (``inf``: no clipping).

    optax: ``optax.per_example_global_norm_clip`` (same arguments and results).

    Example:
        DP-SGD's clipped sum, before noise is added and it is divided by the batch size:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> grads = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4]], jnp.float32)}  # norms 5 and 0.5
        >>> summed, clipped = gradtx.per_example_global_norm_clip(grads, 1.0)
        >>> print(summed["w"], int(clipped))  # [0.6, 0.8] + [0.3, 0.4]
        [0.90000004 1.2       ] 1
    """
    kit.check_ranges("per_example_global_norm_clip", l2_norm_clip=(l2_norm_clip, "[0, inf]"))
    _batch_size("per_example_global_norm_clip", grads)
    leaves, treedef = jax.tree.flatten(grads)
    summed, clipped = _clip_and_sum(leaves, l2_norm_clip)
    return treedef.unflatten(summed), clipped


def per_example_layer_norm_clip(
    grads: Tree, global_l2_norm_clip: Any, uniform: bool = True
) -> tuple[Tree, Tree]:
    """Per-layer DP clipping (McMahan et al. 2018): each leaf (layer) ``i`` of each example is
    clipped on its own to the bound ``C_i`` and summed over the batch.

    ``C_i = C / sqrt(K)`` for ``K`` leaves when ``uniform``, else ``C * sqrt(D_i / D)`` with
    ``D_i`` the per-example size of leaf ``i`` and ``D`` their total; either way
    ``sum_i C_i^2 = C^2``, so every example's global norm stays within ``C``.  With one leaf it
    is ``per_example_global_norm_clip``.

    Args:
      grads: per-example gradients: every leaf has the batch on axis 0.
      global_l2_norm_clip: the overall bound ``C >= 0``.
      uniform: share ``C`` equally among the leaves (else in proportion to their sizes).

    Returns ``(sums, counts)``: two trees shaped like ``grads``, the clipped sum of each leaf
    (without the batch axis) and the number of examples clipped in it.

    optax: ``optax.per_example_layer_norm_clip`` (same arguments and results).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> grads = {"a": jnp.array([[3.0, 4.0]]), "b": jnp.array([[0.1]])}  # one example
        >>> sums, counts = gradtx.per_example_layer_norm_clip(grads, 2.0 ** 0.5)
        >>> print(sums["a"], sums["b"], int(counts["a"]), int(counts["b"]))  # each bound 1
        [0.6 0.8] [0.1] 1 0
    """
    where = "per_example_layer_norm_clip"
    kit.check_ranges(where, global_l2_norm_clip=(global_l2_norm_clip, "[0, inf]"))
    _batch_size(where, grads)
    leaves, treedef = jax.tree.flatten(grads)
    sizes = [math.prod(np.shape(x)[1:]) for x in leaves]
    total = sum(sizes)
    sums, counts = [], []
    for x, size in zip(leaves, sizes, strict=True):
        share = 1 / len(leaves) if uniform else size / total
        (s,), n = _clip_and_sum([x], global_l2_norm_clip * math.sqrt(share))
        sums.append(s)
        counts.append(n)
    return treedef.unflatten(sums), treedef.unflatten(counts)


def unitwise_clip(
    g_norm: jax.Array, max_norm: jax.Array, grad: jax.Array, div_eps: Any = 1e-6
) -> jax.Array:
    """Unit-wise clipping, given the norms: ``grad`` where ``g_norm < max_norm``, else
    ``grad * max_norm / max(g_norm, div_eps)`` (``div_eps`` only guards a division that the
    selection never uses).  The three arrays must have one shape: norms broadcast to the
    gradient's shape, as ``gradtx.unitwise_norm`` returns them.

    The clipping step of ``adaptive_grad_clip``, for rules that compute their own bounds.
    optax: ``optax.transforms.unitwise_clip``.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> g = jnp.array([[3.0, 0.1], [4.0, 0.1]], jnp.float32)
        >>> norms = gradtx.unitwise_norm(g)  # per column: 5 and 0.14...
        >>> print(gradtx.unitwise_clip(norms, jnp.full_like(g, 1.0), g))
        [[0.6 0.1]
         [0.8 0.1]]
    """
    shapes = {"g_norm": np.shape(g_norm), "max_norm": np.shape(max_norm), "grad": np.shape(grad)}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"unitwise_clip: the arrays must have one shape, got {shapes}")
    scaled = grad * (max_norm / jnp.maximum(g_norm, div_eps))
    return jnp.where(g_norm < max_norm, grad, scaled)


__all__ = ["per_example_global_norm_clip", "per_example_layer_norm_clip", "unitwise_clip"]
