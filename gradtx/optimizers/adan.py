"""Adan (Xie et al. 2022), adaptive Nesterov momentum: Adam's moments plus a moving average of
gradient *differences*, which stands in for the gradient at an extrapolated point without a second
gradient evaluation: ``scale_by_adan`` and ``adan``.

Notation: ``g`` the incoming update, ``g'`` the previous one, ``d = g - g'`` (0 at the first
step), ``t`` the 1-based step, ``x̂ = x_t / (1 - b^t)`` a bias-corrected average.

optax and the paper disagree on one weight.  The paper writes its decays the other way round
(``m_t = (1 - β1) m + β1 g``, ``β1 = 1 - b1``) and weights the difference by ``1 - β2``, i.e. by
``b2`` in the decay convention optax and the official code use; optax weights it by ``1 - b2``
(0.08 instead of 0.92 at the defaults; optax pull request #1715).  gradtx follows optax for the
optax names and offers the paper's weight as ``paper_weights=True``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.registry import matrices, register

Tree = kit.Tree
Mask = Any


@kit.one_counter("t")
class ScaleByAdanState(NamedTuple):
    m: Tree  # average of the gradients
    v: Tree  # average of the gradient differences
    n: Tree  # average of the squared look-ahead gradient g + c d
    g: Tree  # the previous gradient


@register(
    "block",
    optax="scale_by_adan",
    traced="b1",
    examples=[
        {},
        {"b1": 0.9, "b2": 0.8, "b3": 0.95, "eps": 1e-6, "eps_root": 1e-8},
        {"b2": 0.8, "paper_weights": True},
    ],
)
def scale_by_adan(
    b1: kit.Decay = 0.98,
    b2: kit.Decay = 0.92,
    b3: kit.Decay = 0.99,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    *,
    paper_weights: bool = False,
) -> GradientTransformation:
    """Adan's direction: ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) d``,
    ``n_t = b3 n + (1 - b3) (g + c d)^2``, ``u = (m̂ + c v̂) / (sqrt(n̂ + eps_root) + eps)`` with
    ``d = g - g'`` (0 at the first step) and ``c = 1 - b2`` (optax) or ``c = b2`` (the paper).

    Args:
      b1: decay rate of ``m``, the average of the gradients (the paper's ``1 - β1``).
      b2: decay rate of ``v``, the average of the gradient differences (the paper's ``1 - β2``).
      b3: decay rate of ``n``, the average of the squared look-ahead gradient ``g + c d``.
      paper_weights: weight the difference by ``c = b2``, as the paper (its ``1 - β2``) and the
        official code do, instead of optax's ``c = 1 - b2``.

    optax: ``optax.scale_by_adan`` (no ``paper_weights``); torch: none (the direction inside
    the official ``Adan`` optimizer, with ``paper_weights=True``).

    Example:
        ``v`` averages the gradient *differences*: nothing at the first step, then the change of
        a gradient that moves (here the first coordinate's) and none of one that stays:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_adan()
        >>> state = tx.init(jnp.zeros(2, jnp.float32))
        >>> for g in ([1.0, 5.0], [2.0, 5.0]):
        ...     _, state = tx.update(jnp.array(g, jnp.float32), state)
        >>> print(jnp.array_str(gradtx.tree_get(state, "v"), precision=4))  # (1 - b2) * (2 - 1)
        [0.08 0.  ]
    """

    def step(updates, state, params, h):
        db1, db2, db3 = (kit.Debias(b, h.count) for b in (h.b1, h.b2, h.b3))
        c = h.b2 if paper_weights else 1 - h.b2
        first = h.count == 0

        def leaf(g, s, *, keep):
            d = jnp.where(first, jnp.zeros_like(g), g - s.g)
            s = keep(
                ScaleByAdanState(
                    m=kit.ema(g, s.m, h.b1),
                    v=kit.ema(d, s.v, h.b2),
                    n=kit.ema_sq(g + c * d, s.n, h.b3),
                    g=g,
                )
            )
            return (db1(s.m) + c * db2(s.v)) / (jnp.sqrt(db3(s.n) + h.eps_root) + h.eps), s

        return kit.map_state("scale_by_adan", leaf, updates, state)

    init = kit.init_state(ScaleByAdanState)
    hyper = {"b1": b1, "b2": b2, "b3": b3, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_adan", step, init, hyper=hyper)


@register(
    optax="adan",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "b1": 0.9,
            "b3": 0.95,
            "eps_root": 0.0,
            "weight_decay": 0.05,
            "mask": matrices,
        },
        {"learning_rate": 0.1, "weight_decay": 0.05, "paper_weights": True},
    ],
)
def adan(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.98,
    b2: kit.Decay = 0.92,
    b3: kit.Decay = 0.99,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
    *,
    paper_weights: bool = False,
) -> GradientTransformation:
    """Adan (Xie et al. 2022):
    ``u = -lr * ((m̂ + c v̂) / (sqrt(n̂ + eps_root) + eps) + wd p)``, the moments of
    ``scale_by_adan``.

    Where optax differs from the paper: the weight ``c`` of the gradient difference is
    ``1 - b2`` (the paper's, and the official code's, is ``b2``: ``paper_weights=True``); the
    moments are bias-corrected and start at 0 with no difference at the first step (as in the
    official code; the paper's Algorithm 1 starts from ``m_0 = g_0``, ``n_0 = g_0^2`` and has no
    bias correction); the weight decay is decoupled, ``p (1 - lr wd)`` (the official code's
    ``no_prox=True``), where the paper's proximal step divides by ``1 + lr wd`` (a difference of
    order ``(lr wd)^2``).

    Args:
      b1: decay rate of ``m``, the average of the gradients (the paper's ``1 - β1``).
      b2: decay rate of ``v``, the average of the gradient differences (the paper's ``1 - β2``).
      b3: decay rate of ``n``, the average of the squared look-ahead gradient.
      paper_weights: weight the gradient difference by ``b2`` (the paper and the official code)
        instead of optax's ``1 - b2``.

    optax: ``optax.adan`` (no ``paper_weights``); torch: none (the official ``Adan`` optimizer
    with ``no_prox=True`` is ``adan(..., eps_root=0.0, paper_weights=True)``).

    Example:
        On a bowl whose curvature differs a thousandfold between coordinates, Adan's steps are
        scale free: both coordinates head to 0 at the same pace.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.adan(learning_rate=0.1)
        >>> params = jnp.array([1.0, 1.0], jnp.float32)
        >>> state = opt.init(params)
        >>> for _ in range(5):
        ...     grads = jnp.array([1000.0, 1.0], jnp.float32) * params
        ...     updates, state = opt.update(grads, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(jnp.array_str(params, precision=4))
        [0.5037 0.5037]
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root, paper_weights=paper_weights),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["ScaleByAdanState", "adan", "scale_by_adan"]
