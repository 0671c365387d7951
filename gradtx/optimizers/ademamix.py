"""AdEMAMix (Pagliardini et al. 2024): Adam whose numerator mixes the usual fast moving average
of the gradients with a much slower one (``b3 = 0.9999`` remembers ~10,000 steps), so very old
gradients still push: ``scale_by_ademamix`` and ``ademamix``; and its simplified form (Morwani et
al. 2025), one accumulated momentum plus a multiple of the current gradient:
``scale_by_simplified_ademamix`` and ``simplified_ademamix``.

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``x̂ = x_t / (1 - b^t)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.registry import matrices, register

Tree = kit.Tree
Mask = Any


@kit.one_counter("count", "count_m2")
class ScaleByAdemamixState(NamedTuple):
    """optax's ``ScaleByAdemamixState`` fields (without its counters)."""

    m1: Tree  # optax's m1: the b1 average, bias-corrected in the update
    m2: Tree  # optax's m2: the b3 average, used as it is
    nu: Tree


def _b3_warmup(count: jax.Array) -> jax.Array:
    """The paper's ``b3`` scheduler from ``b1 = 0.9`` to ``b3 = 0.999`` over 20 steps: the
    half-life ``1 / log(b)`` grows linearly, capped at ``b3``."""
    x = count * (1.0 / 20)  # count * float: float64 for an int32 count too (optax's)
    start, end = jnp.log(0.9), jnp.log(0.999)
    return jnp.minimum(jnp.exp(start * end / ((1 - x) * end + x * start)), 0.999)


def _alpha_warmup(count: jax.Array) -> jax.Array:
    """The paper's linear ``alpha`` warmup from 0 to 5 over 20 steps."""
    return 5.0 * jnp.minimum(count * (1.0 / 20), 1.0)


@register(
    "block",
    optax="contrib.scale_by_ademamix",
    traced="b1",
    examples=[
        {},
        {"b3": _b3_warmup, "alpha": _alpha_warmup},
        {"b1": 0.8, "b2": 0.99, "b3": 0.999, "alpha": 2.0, "eps": 1e-6, "eps_root": 1e-8},
        {"b3": 0.99, "mu_dtype": jnp.float32, "nu_dtype": jnp.float32},
    ],
)
def scale_by_ademamix(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    b3: kit.Decay = 0.9999,
    alpha: kit.NonNegative = 6.0,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix's direction: ``m1_t = b1 m1 + (1 - b1) g``, ``m2_t = b3 m2 + (1 - b3) g``,
    ``v_t = b2 v + (1 - b2) g^2``, ``u = (m̂1 + alpha m2) / (sqrt(v̂ + eps_root) + eps)``: the
    slow average ``m2`` is not bias-corrected, so its weight grows from 0 as it fills.

    ``b3`` and ``alpha`` are usually warmed up with schedules (the paper's: ``alpha`` linearly
    from 0, ``b3`` from ``b1`` with a linearly growing half-life), which keeps the slow average
    from dominating the first steps.  The state names optax's ``m1`` and ``m2`` ``m1`` and
    ``m2``; optax stores ``nu`` in ``mu_dtype`` too, gradtx in ``nu_dtype``.

    Args:
      b1: decay rate of the fast average ``m1``.
      b3: decay rate of the slow average ``m2`` (a number or a schedule).
      alpha: weight of the slow average in the numerator (a number or a schedule).

    optax: ``optax.contrib.scale_by_ademamix`` (no ``nu_dtype``); torch: none.

    Example:
        The slow average carries a gradient long after it is gone: one push of 1, then zeros,
        and 100 steps later the fast average has forgotten it while the slow one has not:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_ademamix(b3=0.999)
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in [1.0] + [0.0] * 100:
        ...     _, state = tx.update(jnp.array([g], jnp.float32), state)
        >>> fast, slow = gradtx.tree_get(state, "m1"), gradtx.tree_get(state, "m2")
        >>> print(f"{float(fast[0]):.1e} {float(slow[0]):.1e}")
        2.7e-06 9.0e-04
    """

    def step(updates, state, params, h):
        db1, db2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

        def leaf(g, s, *, keep):
            s = keep(
                ScaleByAdemamixState(
                    m1=kit.ema(g, s.m1, h.b1),
                    m2=kit.ema(g, s.m2, h.b3),
                    nu=kit.ema_sq(g, s.nu, h.b2),
                )
            )
            numerator = db1(s.m1) + h.alpha * s.m2
            return numerator / (jnp.sqrt(db2(s.nu) + h.eps_root) + h.eps), s

        return kit.map_state("scale_by_ademamix", leaf, updates, state)

    init = kit.init_state(ScaleByAdemamixState, m1=mu_dtype, m2=mu_dtype, nu=nu_dtype)
    hyper = {"b1": b1, "b2": b2, "b3": b3, "alpha": alpha, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_ademamix", step, init, hyper=hyper)


@register(
    optax="contrib.ademamix",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "b3": _b3_warmup,
            "alpha": _alpha_warmup,
            "weight_decay": 0.05,
            "mask": matrices,
        },
        {"learning_rate": 0.1, "b3": 0.99, "mu_dtype": jnp.float32, "nu_dtype": jnp.float32},
    ],
)
def ademamix(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    b3: kit.Decay = 0.9999,
    alpha: kit.NonNegative = 5.0,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix (Pagliardini et al. 2024), AdamW with a mixture of a fast and a slow average:
    ``u = -lr * ((m̂1 + alpha m2) / (sqrt(v̂ + eps_root) + eps) + wd p)``, the moments of
    ``scale_by_ademamix``.  optax follows the paper's Algorithm 1 (its ``alpha`` and ``b3``
    schedulers are left to the user: pass them as schedules).

    Args:
      b1: decay rate of the fast average ``m1``.
      b3: decay rate of the slow average ``m2`` (a number or a schedule).
      alpha: weight of the slow average in the numerator (a number or a schedule).

    optax: ``optax.contrib.ademamix`` (no ``nu_dtype``); torch: none.

    Example:
        With ``alpha = 0`` AdEMAMix is AdamW; the slow average adds its push on top:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.zeros(1, jnp.float32)
        >>> grads = [jnp.array([1.0], jnp.float32)] * 10
        >>> for opt in (gradtx.adamw(0.1, weight_decay=0.0), gradtx.ademamix(0.1, alpha=0.0),
        ...             gradtx.ademamix(0.1)):
        ...     state = opt.init(params)
        ...     for g in grads:
        ...         updates, state = opt.update(g, state, params)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.1]
        [-0.1]
        [-0.1005]
    """
    return chain(
        scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@kit.one_counter("t")
class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    m: Tree  # the accumulated momentum (no 1 - b1 on the new gradient)
    n: Tree  # the second moment


@register(
    "block",
    optax="contrib.scale_by_simplified_ademamix",
    traced="b1",
    examples=[
        {},
        {"b1": 0.9, "b2": 0.99, "alpha": 2.0, "eps": 1e-6, "eps_root": 1e-8},
        {"alpha": lambda c: 3.0 * jnp.minimum(c * (1.0 / 20), 1.0)},
    ],
)
def scale_by_simplified_ademamix(
    b1: kit.Decay = 0.99,
    b2: kit.Decay = 0.95,
    alpha: kit.NonNegative = 0.0,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
) -> GradientTransformation:
    """Simplified AdEMAMix's direction: ``m_t = b1 m + g`` (an accumulation, no ``1 - b1``),
    ``n_t = b2 n + (1 - b2) g^2``, ``u = (m_t + alpha g) / (sqrt(n̂ + eps_root) + eps)``.

    One momentum buffer where AdEMAMix has two: the long memory comes from ``b1`` close to 1
    and the current gradient's weight from ``alpha``; ``alpha = 0`` is Adam with its
    learning rate scaled by ``1 / (1 - b1)``, less the bias correction of ``m``.

    Args:
      b1: decay rate of the accumulated momentum ``m``.
      b2: decay rate of the second moment ``n``.
      alpha: weight of the current gradient in the numerator (a number or a schedule).

    optax: ``optax.contrib.scale_by_simplified_ademamix``; torch: none.

    Example:
        The momentum is a sum, not an average: under a constant gradient it grows towards
        ``g / (1 - b1)``, 100 times ``g`` at the default ``b1 = 0.99``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_simplified_ademamix()
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for _ in range(500):
        ...     updates, state = tx.update(jnp.array([2.0], jnp.float32), state)
        >>> m = gradtx.tree_get(state, "m")
        >>> print(jnp.array_str(m, precision=1), jnp.array_str(updates, precision=1))
        [198.7] [99.3]
    """

    def step(updates, state, params, h):
        db2 = kit.Debias(h.b2, h.count)

        def leaf(g, s, *, keep):
            s = keep(ScaleBySimplifiedAdEMAMixState(h.b1 * s.m + g, kit.ema_sq(g, s.n, h.b2)))
            return (s.m + h.alpha * g) / (jnp.sqrt(db2(s.n) + h.eps_root) + h.eps), s

        return kit.map_state("scale_by_simplified_ademamix", leaf, updates, state)

    init = kit.init_state(ScaleBySimplifiedAdEMAMixState)
    hyper = {"b1": b1, "b2": b2, "alpha": alpha, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_simplified_ademamix", step, init, hyper=hyper)


@register(
    optax="contrib.simplified_ademamix",
    examples=[
        {"learning_rate": 0.01},
        {
            "learning_rate": lambda c: 0.01 / (1 + c / 3.0),
            "b1": 0.9,
            "alpha": 2.0,
            "weight_decay": 0.05,
            "mask": matrices,
        },
    ],
)
def simplified_ademamix(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.99,
    b2: kit.Decay = 0.95,
    alpha: kit.NonNegative = 0.0,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """Simplified AdEMAMix (Morwani et al. 2025): ``m_t = b1 m + g``,
    ``u = -lr * ((m_t + alpha g) / (sqrt(n̂ + eps_root) + eps) + wd p)``.  Its momentum is a
    sum, about ``1 / (1 - b1)`` gradients, so its learning rate is that much smaller than
    Adam's for the same step.

    Args:
      b1: decay rate of the accumulated momentum ``m``.
      b2: decay rate of the second moment ``n``.
      alpha: weight of the current gradient in the numerator (a number or a schedule).

    optax: ``optax.contrib.simplified_ademamix``; torch: none.

    Example:
        ``alpha`` weights the gradient of the moment itself, so a sudden sign change
        registers at once instead of being averaged away:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.zeros(1, jnp.float32)
        >>> grads = [jnp.array([g], jnp.float32) for g in (1.0, 1.0, 1.0, -1.0)]
        >>> for alpha in (0.0, 20.0):
        ...     opt = gradtx.simplified_ademamix(0.01, b1=0.9, alpha=alpha)
        ...     state = opt.init(params)
        ...     for g in grads:
        ...         updates, state = opt.update(g, state, params)
        ...     print(alpha, jnp.array_str(updates, precision=4))
        0.0 [-0.0144]
        20.0 [0.1856]
    """
    return chain(
        scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = [
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ademamix",
    "scale_by_ademamix",
    "scale_by_simplified_ademamix",
    "simplified_ademamix",
]
