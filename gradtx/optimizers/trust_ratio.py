"""Trust-ratio methods: every leaf (layer) takes a step proportional to its own size,
``||p|| / ||u||`` times the update, so layers of very different scales train at one learning
rate: LARS (SGD with momentum), LAMB (Adam) and Fromage.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate, trace
from gradtx.combinators import masked
from gradtx.optimizers.adam import scale_by_adam
from gradtx.registry import matrices, register

Mask = Any


@register(
    "block",
    optax="scale_by_trust_ratio",
    traits=(),
    traced="trust_coefficient",
    examples=[{}, {"min_norm": 0.5, "trust_coefficient": 0.01, "eps": 1e-3}],
)
def scale_by_trust_ratio(
    min_norm: kit.NonNegative = 0.0,
    trust_coefficient: kit.NonNegative = 1.0,
    eps: kit.NonNegative = 0.0,
) -> GradientTransformation:
    """Leaf by leaf: ``u = g * trust_coefficient * ||p|| / (||g|| + eps)``, both norms at least
    ``min_norm``; ``u = g`` where either norm is 0 (a leaf at 0, or no gradient).  Needs params.

    Args:
      min_norm: the smallest value each norm is taken to have.
      trust_coefficient: multiplies the ratio (LARS's ``eta``).
      eps: added to the update's norm in the denominator.

    optax: ``optax.scale_by_trust_ratio``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_trust_ratio()
        >>> x = jnp.array([0.3, 0.4], jnp.float32)
        >>> params = {"big": 100 * x, "small": x}
        >>> g = jnp.array([1.0, 0.0], jnp.float32)
        >>> updates, _ = tx.update({"big": g, "small": g}, tx.init(params), params)
        >>> print(updates["big"], updates["small"])  # each update has its leaf's norm
        [50.  0.] [0.5 0. ]
    """

    def step(updates, state, params, h):
        def leaf(g, p):
            p_norm, g_norm = kit.safe_norm(p, h.min_norm), kit.safe_norm(g, h.min_norm)
            ratio = h.trust_coefficient * p_norm / (g_norm + h.eps)
            ratio = jnp.where((p_norm == 0) | (g_norm == 0), 1, ratio)
            return ((g * ratio.astype(g.dtype)).astype(g.dtype),)

        (u,) = kit.leafwise("scale_by_trust_ratio", leaf, 1, updates, params, names=("params",))
        return u, state

    hyper = {"min_norm": min_norm, "trust_coefficient": trust_coefficient, "eps": eps}
    return kit.block("scale_by_trust_ratio", step, hyper=hyper, needs_params=True)


@register(
    optax="lars",
    traits=(),
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.1,
            "weight_decay": 0.01,
            "weight_decay_mask": matrices,
            "trust_coefficient": 0.02,
            "eps": 1e-6,
            "trust_ratio_mask": matrices,
            "momentum": 0.8,
            "nesterov": True,
        },
    ],
)
def lars(
    learning_rate: kit.Rate,
    weight_decay: kit.NonNegative = 0.0,
    weight_decay_mask: Mask = True,
    trust_coefficient: kit.NonNegative = 0.001,
    eps: kit.NonNegative = 0.0,
    trust_ratio_mask: Mask = True,
    momentum: kit.NonNegative = 0.9,
    nesterov: bool = False,
) -> GradientTransformation:
    """LARS (You et al. 2017), layer-wise adaptive rate scaling for large-batch SGD:
    ``d = g + wd p``, ``d <- d * trust_coefficient ||p|| / (||d|| + eps)`` on the leaves of
    ``trust_ratio_mask``, then momentum on ``-lr d``: ``m_t = momentum m + (-lr d)``, ``u = m_t``.

    Args:
      weight_decay: coefficient of the L2 term ``wd * p`` added before the trust ratio.
      weight_decay_mask: which leaves get weight decay (a tree of bools, a prefix, or a function
        of the params); ``True``: all.
      trust_coefficient: multiplies the trust ratio (the paper's ``eta``).
      eps: added to the update's norm in the trust ratio's denominator.
      trust_ratio_mask: which leaves are rescaled; optax's convention, ``True``: all (the paper
        excludes biases and norm scales: ``gradtx.registry.matrices``).
      momentum: coefficient of the momentum on ``-lr d`` (after the trust ratio).

    optax: ``optax.lars``; torch: none.

    Example:
        A leaf ten times larger takes a ten times larger step, for the same gradient:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w1": jnp.full(4, 10.0, jnp.float32), "w2": jnp.ones(4, jnp.float32)}
        >>> grads = {"w1": jnp.full(4, 0.5, jnp.float32), "w2": jnp.full(4, 0.5, jnp.float32)}
        >>> opt = gradtx.lars(learning_rate=1.0, trust_coefficient=0.01)  # 1% of each leaf's norm
        >>> updates, _ = opt.update(grads, opt.init(params), params)
        >>> print(f"{updates['w1'][0]:.4f} {updates['w2'][0]:.4f}")
        -0.1000 -0.0100
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        masked(
            scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask
        ),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov),
    )


@register(
    optax="lamb",
    traits=(),
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.1,
            "b1": 0.8,
            "b2": 0.99,
            "eps": 1e-4,
            "eps_root": 1e-6,
            "weight_decay": 0.1,
            "mask": matrices,
        },
    ],
)
def lamb(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-6,
    eps_root: kit.NonNegative = 0.0,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """LAMB (You et al. 2020), Adam with a layer-wise trust ratio for large batches:
    ``r = m̂ / (sqrt(v̂ + eps_root) + eps) + wd p``, ``u = -lr * r * ||p|| / ||r||`` (``u = -lr r``
    where either norm is 0).

    Args:
      eps: added to the denominator, outside the square root (LAMB's default is 1e-6).
      weight_decay: coefficient ``wd`` of the decoupled weight decay, inside the trust ratio.

    optax: ``optax.lamb``; torch: none.

    Example:
        Adam's step, rescaled per leaf so that its norm is ``lr`` times the leaf's norm:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = [jnp.array([30.0, 40.0], jnp.float32), jnp.array([3.0, 4.0], jnp.float32)]
        >>> opt = gradtx.lamb(learning_rate=0.01)
        >>> grads = [jnp.array([1.0, -1.0], jnp.float32), jnp.array([-5.0, 0.1], jnp.float32)]
        >>> updates, _ = opt.update(grads, opt.init(params), params)
        >>> print(*(f"{jnp.linalg.norm(u):.3f}" for u in updates))  # 0.01 * 50 and 0.01 * 5
        0.500 0.050
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="fromage",
    traits=(),
    examples=[{"learning_rate": 0.1}, {"learning_rate": 0.05, "min_norm": 0.1}],
)
def fromage(
    learning_rate: Annotated[float, kit.Range("[0, inf)")], min_norm: kit.NonNegative = 1e-6
) -> GradientTransformation:
    """Fromage (Bernstein et al. 2020), Frobenius-matched gradient descent: each leaf moves by a
    fixed fraction of its own norm and is shrunk back,
    ``p <- (p - lr * g ||p|| / ||g||) / sqrt(1 + lr^2)``, i.e.
    ``u = -lr c * g ||p|| / ||g|| + (c - 1) p`` with ``c = 1 / sqrt(1 + lr^2)`` (norms at least
    ``min_norm``).

    Args:
      learning_rate: the relative step ``lr`` (a number: ``c`` is built from it).
      min_norm: the smallest value each norm is taken to have.

    optax: ``optax.fromage``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([3.0, 4.0], jnp.float32)
        >>> opt = gradtx.fromage(learning_rate=0.1)
        >>> g = jnp.array([4.0, -3.0], jnp.float32)  # orthogonal to params
        >>> updates, _ = opt.update(g, opt.init(params), params)
        >>> params = gradtx.apply_updates(params, updates)
        >>> print(jnp.array_str(params, precision=4), f"{jnp.linalg.norm(params):.4f}")
        [2.5871 4.2787] 5.0000
    """
    # correctly rounded either way, so an injected (array) learning rate gives the same c
    root = math.sqrt if isinstance(learning_rate, int | float) else jnp.sqrt
    c = 1 / root(1 + learning_rate * learning_rate)
    return chain(
        scale_by_trust_ratio(min_norm),
        scale_by_learning_rate(learning_rate * c),
        add_decayed_weights(c - 1),
    )


__all__ = ["fromage", "lamb", "lars", "scale_by_trust_ratio"]
