"""NovoGrad (Ginsburg et al. 2019): Adam's second moment taken per layer (per leaf) from the
squared gradient norm, one scalar per leaf instead of one per weight, so the state is half of
Adam's: ``scale_by_novograd`` and ``novograd``.

Notation: ``g`` the incoming update of one leaf, ``p`` that leaf of the params, ``‖g‖`` its norm
over the whole leaf, ``t`` the 1-based step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import scale_by_learning_rate
from gradtx.registry import register

Tree = kit.Tree


@kit.one_counter("count")
class ScaleByNovogradState(NamedTuple):
    mu: Tree  # the momentum of the normalized gradients, shaped like the params
    nu: Tree  # one scalar per leaf: the average of ‖g‖², in at least float32


@register(
    "block",
    optax="scale_by_novograd",
    traced="b1",
    traits=(),
    examples=[
        {},
        {"b1": 0.8, "b2": 0.6, "eps": 1e-6, "eps_root": 1e-4, "weight_decay": 0.1},
    ],
)
def scale_by_novograd(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.25,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    weight_decay: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad's direction, leaf by leaf: ``v_t = b2 v + (1 - b2) ‖g‖²`` (``v_1 = ‖g‖²``),
    ``m_t = b1 m + g / (sqrt(v_t + eps_root) + eps) + wd p`` (``m_1`` without the ``b1 m``),
    ``u = m_t``.  ``v`` is one scalar per leaf, kept in at least float32 (optax keeps it in the
    params' dtype, where ``‖g‖²`` of a float16 leaf overflows above 65504).  Needs params when
    ``weight_decay`` is not 0.

    Args:
      b1: decay rate of the momentum ``m`` (an accumulation: no ``1 - b1`` on the new term).
      b2: decay rate of ``v``, the per-leaf average of ``‖g‖²``.
      weight_decay: coefficient ``wd`` of ``wd * p``, added to the normalized gradient inside
        the momentum (the paper's decoupled decay).

    optax: ``optax.scale_by_novograd`` (``weight_decay`` a number there); torch: none.

    Example:
        Each leaf is divided by its own gradient norm, so the first step has norm 1 in every
        leaf, however large its gradient:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_novograd()
        >>> grads = {"big": jnp.array([300.0, 400.0], jnp.float32),
        ...          "small": jnp.array([0.03, -0.04], jnp.float32)}
        >>> updates, state = tx.update(grads, tx.init(grads))
        >>> for name in ("big", "small"):
        ...     print(name, jnp.array_str(updates[name], precision=4))
        big [0.6 0.8]
        small [ 0.6 -0.8]
        >>> print(gradtx.tree_get(state, "nu")["big"])  # one number per leaf: ‖g‖²
        250000.0
    """
    decays = not kit.is_zero(weight_decay)

    def step(updates, state, params, h):
        kit.check_match("scale_by_novograd", "updates", updates, "mu", state.mu)
        first = h.count == 0
        leaves, treedef = jax.tree.flatten(updates)
        mus, nus = treedef.flatten_up_to(state.mu), treedef.flatten_up_to(state.nu)
        ps = [None] * len(leaves)
        if decays and leaves:
            kit.check_match("scale_by_novograd", "updates", updates, "params", params)
            ps = treedef.flatten_up_to(params)

        def leaf(g, m, v, p):
            # computed once in the widest of float32 and the inputs' dtypes, rounded once
            k = jnp.promote_types(jnp.float32, jnp.result_type(g, m, *([] if p is None else [p])))
            gk = g.astype(k)
            sq = jnp.sum(kit.abs_sq(gk))
            v = jnp.where(first, sq, kit.ema(sq, v.astype(k), h.b2)).astype(v.dtype)
            d = gk / (jnp.sqrt(v.astype(k) + h.eps_root) + h.eps)
            if p is not None:
                d = d + h.weight_decay * p.astype(k)
            m = (h.b1 * m.astype(k) + d).astype(m.dtype)  # m = 0 before the first step
            return m.astype(g.dtype), m, v

        outs = [leaf(*args) for args in zip(leaves, mus, nus, ps, strict=True)]
        u, mu, nu = (treedef.unflatten([o[i] for o in outs]) for i in range(3))
        return u, ScaleByNovogradState(mu, nu)

    def init(params: Tree) -> ScaleByNovogradState:
        return ScaleByNovogradState(
            mu=kit.zeros_like(params, kit.canonical_dtype(mu_dtype)),
            nu=jax.tree.map(lambda p: jnp.zeros([], kit.compute_dtype(p)), params),
        )

    hyper = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root, "weight_decay": weight_decay}
    return kit.block("scale_by_novograd", step, init, hyper=hyper, needs_params=decays)


@register(
    optax="novograd",
    traits=(),
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "b1": 0.8,
            "b2": 0.5,
            "eps": 1e-4,
            "eps_root": 1e-6,
            "weight_decay": 0.05,
        },
    ],
)
def novograd(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.25,
    eps: kit.NonNegative = 1e-6,
    eps_root: kit.NonNegative = 0.0,
    weight_decay: kit.NonNegative = 0.0,
) -> GradientTransformation:
    """NovoGrad (Ginsburg et al. 2019): per leaf, ``v_t = b2 v + (1 - b2) ‖g‖²``,
    ``m_t = b1 m + g / (sqrt(v_t + eps_root) + eps) + wd p``, ``u = -lr * m_t``, started as the
    paper does with ``v_1 = ‖g_1‖²`` and ``m_1 = g_1 / (sqrt(v_1 + eps_root) + eps) + wd p``.

    optax follows the paper's first step (no ``1 - b2`` factor on ``v_1``, no ``1 - b1``
    averaging in ``m``); its ``eps`` is outside the square root, where the paper's ``ε`` is
    inside (``eps_root``).

    Args:
      b1: decay rate of the momentum ``m`` (an accumulation: no ``1 - b1`` on the new term).
      b2: decay rate of ``v``, the per-leaf average of ``‖g‖²``.
      weight_decay: coefficient ``wd`` of ``wd * p``, added to the normalized gradient inside
        the momentum (decoupled from the normalization).

    optax: ``optax.novograd``; torch: none (NVIDIA Apex's ``FusedNovoGrad`` averages with
    ``1 - b1`` and bias-corrects by default).

    Example:
        The step is normalized per leaf: multiplying a leaf's gradients by 1000 leaves its
        updates unchanged.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.novograd(learning_rate=0.1)
        >>> params = jnp.zeros(2, jnp.float32)
        >>> for scale in (1.0, 1000.0):
        ...     state = opt.init(params)
        ...     for g in ([1.0, 2.0], [2.0, -1.0]):
        ...         grads = scale * jnp.array(g, jnp.float32)
        ...         updates, state = opt.update(grads, state, params)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.1297 -0.0358]
        [-0.1297 -0.0358]
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["ScaleByNovogradState", "novograd", "scale_by_novograd"]
