"""MADGRAD (Defazio & Jelassi 2021): momentumized, adaptive, dual-averaged gradient descent.  The
iterate is pulled towards a dual-averaging point ``z = x0 - s / (cbrt(G) + eps)`` built from
weighted sums of the gradients ``s`` and of their squares ``G`` since the start, with a cube root
where AdaGrad has a square root: ``scale_by_madgrad`` and ``madgrad``.

Notation: ``g`` the incoming update, ``p`` the params, ``x0`` the params at ``init``, ``k`` the
0-based step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights
from gradtx.registry import register

Tree = kit.Tree


@kit.one_counter("count")
class MadgradState(NamedTuple):
    grad_sum_sq: Tree  # G: the weighted sum of squared gradients
    s: Tree  # the weighted sum of gradients
    x0: Tree  # the params at init, the dual-averaging centre


@register(
    "block",
    optax="contrib.scale_by_madgrad",
    traced="momentum",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": lambda c: 0.1 / (1 + c / 3.0), "momentum": 0.5, "eps": 1e-4},
        {"learning_rate": 0.05, "momentum": 0.0},
    ],
)
def scale_by_madgrad(
    learning_rate: kit.Rate, momentum: kit.Decay = 0.9, eps: kit.NonNegative = 1e-6
) -> GradientTransformation:
    """MADGRAD's step, the final update (the learning rate is inside):
    ``λ_k = (lr_k + eps) sqrt(k + 1)``, ``s_{k+1} = s_k + λ_k g``,
    ``G_{k+1} = G_k + λ_k g^2``, ``z = x0 - s_{k+1} / (cbrt(G_{k+1}) + eps)``,
    ``u = (1 - momentum) (z - p)``, i.e. ``p <- momentum p + (1 - momentum) z``.  Needs params;
    ``x0`` is the params given to ``init``.

    optax (like the official code) weights by ``lr_k + eps`` where the paper has ``lr_k``
    (``λ_k = γ_k sqrt(k + 1)``); its momentum is ``1 - c`` of the paper's averaging weight
    ``c_k``.

    Args:
      learning_rate: the step size ``lr``: a number or a schedule (it weights the sums, so
        the same schedule is not equivalent to scaling the updates).
      momentum: weight ``1 - c`` of the current params in ``p <- momentum p + (1 - momentum) z``
        (0: jump to ``z``).

    optax: ``optax.contrib.scale_by_madgrad``; torch: none (the official ``MADGRAD`` optimizer).

    Example:
        The iterate is anchored to where it started: the dual-averaging point is ``x0`` minus
        the weighted gradient sum, whatever the params are now:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_madgrad(learning_rate=0.1, momentum=0.0)
        >>> x0 = jnp.array([1.0], jnp.float32)
        >>> state = tx.init(x0)
        >>> g = jnp.array([8.0], jnp.float32)
        >>> for params in (x0, jnp.array([5.0], jnp.float32)):  # same g, params moved
        ...     updates, _ = tx.update(g, state, params)
        ...     print(jnp.array_str(params + updates, precision=4))
        [0.5691]
        [0.5691]
    """

    def step(updates, state, params, h):
        lam = (h.learning_rate + h.eps) * jnp.sqrt(h.count + 1.0)  # count + 1.0: float64 under x64

        def leaf(g, s, p, *, keep):
            weight = kit.scalar(lam, g)
            s = keep(
                MadgradState(
                    grad_sum_sq=s.grad_sum_sq + weight * kit.abs_sq(g),
                    s=s.s + weight * g,
                    x0=s.x0,
                )
            )
            z = s.x0 - s.s / (jnp.cbrt(s.grad_sum_sq) + h.eps)
            return (1 - h.momentum) * (z - p), s

        return kit.map_state("scale_by_madgrad", leaf, updates, state, params)

    def init(params: Tree) -> MadgradState:
        return MadgradState(kit.zeros_like(params), kit.zeros_like(params), kit.copy(params))

    hyper = {"learning_rate": learning_rate, "momentum": momentum, "eps": eps}
    return kit.block("scale_by_madgrad", step, init, hyper=hyper, needs_params=True)


@register(
    optax="contrib.madgrad",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.05, "momentum": 0.5, "weight_decay": 0.1, "eps": 1e-4},
    ],
)
def madgrad(
    learning_rate: kit.Rate,
    momentum: kit.Decay = 0.9,
    weight_decay: kit.NonNegative = 0.0,
    eps: kit.NonNegative = 1e-6,
) -> GradientTransformation:
    """MADGRAD (Defazio & Jelassi 2021): with ``g <- g + wd p`` (L2, as in the official code),
    ``s += λ_k g``, ``G += λ_k g^2`` with ``λ_k = (lr_k + eps) sqrt(k + 1)``,
    ``z = x0 - s / (cbrt(G) + eps)`` and ``p <- momentum p + (1 - momentum) z``.

    optax (like the official code) weights by ``lr_k + eps`` where the paper has ``lr_k``; the
    paper has no weight decay.

    Args:
      momentum: weight ``1 - c`` of the current params in ``p <- momentum p + (1 - momentum) z``
        (0: jump to ``z``).
      weight_decay: coefficient ``wd`` of the L2 term ``wd * p`` added to the gradient.

    optax: ``optax.contrib.madgrad``; torch: none (the official ``MADGRAD`` optimizer, with its
    ``decouple_decay=False``).

    Example:
        The cube root makes the step grow like ``g^(1/3)``: eight times the gradient, twice
        the step (SGD's would be eight times, Adam's the same):

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.zeros(1, jnp.float32)
        >>> for g in (1.0, 8.0):
        ...     opt = gradtx.madgrad(learning_rate=0.01, momentum=0.0)
        ...     grads = jnp.full(1, g, jnp.float32)
        ...     updates, _ = opt.update(grads, opt.init(params), params)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.0464]
        [-0.0928]
    """
    return chain(
        add_decayed_weights(weight_decay),
        scale_by_madgrad(learning_rate, momentum, eps),
    )


__all__ = ["MadgradState", "madgrad", "scale_by_madgrad"]
