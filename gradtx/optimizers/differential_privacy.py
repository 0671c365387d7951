"""Differentially private SGD (Abadi et al. 2016): clip each example's gradient to a norm bound,
sum, add Gaussian noise scaled to the bound, divide by the batch size.

Both transformations take *per-example* gradients (every leaf with the batch on axis 0, e.g.
from ``jax.vmap(jax.grad(loss), in_axes=(None, 0))``) and return the batch's noised mean, so they
must come first in a chain.  That input shape is why they are not registered with the
parameter-shaped cross-cutting tests; ``tests/test_differential_privacy.py`` checks them against
optax and the NumPy reference.  They are exported as ``gradtx.contrib.dpsgd`` and
``gradtx.contrib.differentially_private_aggregate`` (optax's paths).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import identity, scale_by_learning_rate, trace
from gradtx.per_example import per_example_global_norm_clip


class DifferentiallyPrivateAggregateState(NamedTuple):
    """``rng_key``: the key the next noise draw splits, as raw ``uint32`` key data (checkpoints
    with flax and orbax; optax keeps a typed key, with the same stream).
    optax: ``optax.contrib.DifferentiallyPrivateAggregateState`` (same field)."""

    rng_key: jax.Array


def _key_data(key: Any) -> jax.Array:
    """Raw key data from a typed key, raw key data or an integer seed (optax's
    ``canonicalize_key`` accepts the same)."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if isinstance(key, int | jnp.integer) or jnp.ndim(key) == 0:
        return jax.random.key_data(jax.random.key(key))
    return jnp.asarray(key, jnp.uint32)


@kit.validated
def differentially_private_aggregate(
    l2_norm_clip: kit.NonNegative,
    noise_multiplier: kit.NonNegative,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """DP-SGD's aggregation of per-example gradients ``g_1 .. g_B`` (Abadi et al. 2016, Alg. 1):

        g~_b = g_b * min(1, C / ||g_b||)          (||.||: over every leaf of example b)
        u    = (sum_b g~_b + sigma C z) / B,      z ~ N(0, I), one draw per leaf per step

    with ``C = l2_norm_clip`` and ``sigma = noise_multiplier``.  The input leaves carry the
    batch on axis 0; the output has the parameters' shapes.  Noise keys: each step splits the
    stored key into ``1 + #leaves`` keys, keeps the first and draws leaf ``i``'s noise from key
    ``i + 1`` in the leaf's dtype, exactly as optax, so the same key gives the same noise.

    Args:
      l2_norm_clip: ``C``, the bound on each example's gradient norm.
      noise_multiplier: ``sigma``, the noise's standard deviation in units of ``C``.
      key: a ``jax.random.key``, raw key data or an integer seed (``None``: seed 0).
      seed: deprecated spelling of an integer ``key`` (optax's; warns).

    optax: ``optax.contrib.differentially_private_aggregate`` (same arguments, state field and
    numbers; without a key gradtx uses seed 0 silently where optax also warns).  torch: none
    (Opacus).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.contrib.differentially_private_aggregate(5.0, 0.0, key=0)
        >>> per_example = {"w": jnp.array([[6.0, 8.0], [0.5, 0.0]])}  # norms 10 and 0.5
        >>> u, _ = tx.update(per_example, tx.init({"w": jnp.zeros(2)}))
        >>> print(u["w"])  # ([3, 4] + [0.5, 0]) / 2, no noise with sigma = 0
        [1.75 2.  ]
    """
    if seed is not None:
        warnings.warn('"seed" is deprecated, use "key"', DeprecationWarning, stacklevel=2)
        if key is not None:
            raise ValueError("differentially_private_aggregate: give key or seed, not both")
        key = seed
    start = _key_data(0 if key is None else key)

    def init(params):
        del params
        return DifferentiallyPrivateAggregateState(start)

    def step(updates, state, params, h):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        summed, _ = per_example_global_norm_clip(leaves, h.l2_norm_clip)  # checks the batch axis
        batch = leaves[0].shape[0]
        keys = jax.random.split(jax.random.wrap_key_data(state.rng_key), len(leaves) + 1)
        std = h.l2_norm_clip * h.noise_multiplier
        noised = [
            ((s + std * jax.random.normal(k, s.shape, g.dtype)) / batch).astype(g.dtype)
            for s, k, g in zip(summed, keys[1:], leaves, strict=True)
        ]
        new = DifferentiallyPrivateAggregateState(jax.random.key_data(keys[0]))
        return treedef.unflatten(noised), new

    hyper = {"l2_norm_clip": l2_norm_clip, "noise_multiplier": noise_multiplier}
    return kit.block("differentially_private_aggregate", step, init, hyper=hyper)


@kit.validated
def dpsgd(
    learning_rate: kit.Rate,
    l2_norm_clip: kit.NonNegative,
    noise_multiplier: kit.NonNegative,
    seed: int,
    momentum: kit.NonNegative | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """DP-SGD (Abadi et al. 2016): ``differentially_private_aggregate`` of per-example gradients,
    then momentum SGD:

        m_t = momentum * m_{t-1} + u_t   (u_t the noised clipped mean; Nesterov: u_t + momentum m_t)
        w  <- w - lr * m_t               (no momentum: w <- w - lr * u_t)

    Args:
      learning_rate: the step size (a number, an array or a schedule).
      l2_norm_clip: ``C``, the bound on each example's gradient norm.
      noise_multiplier: ``sigma``, the noise's standard deviation in units of ``C``.
      seed: the integer seed of the noise's key.
      momentum: the momentum decay, ``None`` for plain SGD.
      nesterov: Nesterov momentum.

    optax: ``optax.contrib.dpsgd`` (same arguments and numbers given the seed).  torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.contrib.dpsgd(0.5, l2_norm_clip=5.0, noise_multiplier=0.0, seed=0)
        >>> per_example = {"w": jnp.array([[6.0, 8.0], [0.5, 0.0]])}
        >>> u, _ = tx.update(per_example, tx.init({"w": jnp.zeros(2)}))
        >>> print(u["w"])  # -0.5 * [1.75, 2]
        [-0.875 -1.   ]
    """
    return chain(
        differentially_private_aggregate(l2_norm_clip, noise_multiplier, key=seed),
        identity() if momentum is None else trace(decay=momentum, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


# Not in __all__: per-example inputs keep them out of the registry's parameter-shaped tests
# (gradtx.contrib exports them at optax's paths).
__all__ = ["DifferentiallyPrivateAggregateState"]
