"""Adam and its closest relatives: bias-corrected first and second moments
(``scale_by_adam``), the AMSGrad maximum (``scale_by_amsgrad``), and the optimizers built on
them: ``adam``, ``adamw``, ``nadam``, ``nadamw``, ``amsgrad``.

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``m̂ = m_t / (1 - b1^t)`` and
``v̂ = v_t / (1 - b2^t)`` the bias-corrected moments.
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


@kit.one_counter("count")
class ScaleByAdamState(NamedTuple):
    mu: Tree
    nu: Tree


@kit.one_counter("count")
class ScaleByAmsgradState(NamedTuple):
    mu: Tree
    nu: Tree
    nu_max: Tree


def first_moment_hat(g: jax.Array, m: jax.Array, b1: Any, db1: kit.Debias, nesterov: bool):
    """Bias-corrected first moment; Nesterov looks one step ahead (Dozat's NAdam):
    ``b1 * m_t / (1 - b1^{t+1}) + (1 - b1) * g / (1 - b1^t)``."""
    if not nesterov:
        return db1(m)
    return b1 * db1(m, ahead=1) + (1 - b1) * db1(g)


@register(
    "block",
    optax="scale_by_adam",
    traced="b1",
    examples=[
        {},
        {"b1": 0.8, "nesterov": True},
        {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-4},
        {"mu_dtype": jnp.float32},
    ],
)
def scale_by_adam(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam scaling (Kingma & Ba 2015): ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g^2``,
    ``u = m̂ / (sqrt(v̂ + eps_root) + eps)``; ``nesterov`` uses the look-ahead ``m̂`` of NAdam
    (Dozat 2016).

    ``mu_dtype`` / ``nu_dtype`` store ``m`` / ``v`` in that dtype: the step computes in the widest
    of float32 and every input's dtype, rounds the new moments to their stored dtypes and takes the
    update from them as stored (optax takes it from the unrounded moments; the difference is one
    rounding of ``m``).  Both in bfloat16 halve the state of float32 params; note that
    bfloat16's 8-bit mantissa cannot resolve a per-step decay of ``1 - b2 = 1e-3``, so ``v`` then
    follows recent gradients more than ``b2`` says.

    Args:

    optax: ``optax.scale_by_adam`` (no ``nu_dtype``); torch: none (the direction inside
    ``torch.optim.Adam``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_adam(mu_dtype=jnp.bfloat16)  # m stored in half the memory
        >>> g = jnp.array([0.5, -2.0], jnp.float32)
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates, precision=2), gradtx.tree_get(state, "mu").dtype)
        [ 1. -1.] bfloat16
    """

    def step(updates, state, params, h):
        db1, db2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

        def leaf(g, s, *, keep):
            s = keep(ScaleByAdamState(kit.ema(g, s.mu, h.b1), kit.ema_sq(g, s.nu, h.b2)))
            m_hat = first_moment_hat(g, s.mu, h.b1, db1, nesterov)
            return m_hat / (jnp.sqrt(db2(s.nu) + h.eps_root) + h.eps), s

        return kit.map_state("scale_by_adam", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState, mu=mu_dtype, nu=nu_dtype)
    hyper = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_adam", step, init, hyper=hyper)


@register(
    "block",
    optax="scale_by_amsgrad",
    traced="b1",
    examples=[
        {"b2": 0.95},
        {"b2": 0.95, "raw_max": True},
        {"b1": 0.8, "b2": 0.95, "bias_correction_mu": False, "bias_correction_nu": False},
    ],
)
def scale_by_amsgrad(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    raw_max: bool = False,
) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018): Adam's moments, but the denominator uses a running maximum.

    Default (optax's rule): ``v_max = max(v_max, v̂_t)``, ``u = m̂ / (sqrt(v_max + eps_root) + eps)``.
    ``raw_max=True`` (torch's rule): ``v_max = max(v_max, v_t)`` of the raw moment, divided by the
    current ``1 - b2^t``.

    Args:
      bias_correction_mu: divide ``m`` by ``1 - b1^t``.
      bias_correction_nu: divide ``v`` by ``1 - b2^t``.
      raw_max: keep the maximum of the raw ``v_t`` (torch) rather than of ``v̂_t`` (optax).

    optax: ``optax.scale_by_amsgrad``; torch: none (``torch.optim.Adam(amsgrad=True)``'s
    direction, with ``raw_max=True``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_amsgrad(b2=0.9)
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in (4.0, 1.0):  # nu_max keeps the largest debiased second moment
        ...     _, state = tx.update(jnp.array([g], jnp.float32), state)
        >>> print(*(f"{gradtx.tree_get(state, k)[0]:.2f}" for k in ("nu", "nu_max")))
        1.54 16.00
    """

    def step(updates, state, params, h):
        db1, db2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

        def nu_hat(v):
            return db2(v) if bias_correction_nu else v

        def leaf(g, s, *, keep):
            s = keep(s._replace(mu=kit.ema(g, s.mu, h.b1), nu=kit.ema_sq(g, s.nu, h.b2)))
            m_hat = db1(s.mu) if bias_correction_mu else s.mu
            if raw_max:
                s = s._replace(nu_max=jnp.maximum(s.nu_max, s.nu))
                denom = nu_hat(s.nu_max)
            else:
                s = keep(s._replace(nu_max=jnp.maximum(s.nu_max, nu_hat(s.nu))))
                denom = s.nu_max
            return m_hat / (jnp.sqrt(denom + h.eps_root) + h.eps), s

        return kit.map_state("scale_by_amsgrad", leaf, updates, state)

    init = kit.init_state(ScaleByAmsgradState, mu=mu_dtype)
    hyper = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_amsgrad", step, init, hyper=hyper)


# --- optimizers ----------------------------------------------------------------------------------

_ADAM_OPTIONS = {"learning_rate": 0.1, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-4}


@register(
    optax="adam",
    examples=[
        {"learning_rate": 0.1},
        {**_ADAM_OPTIONS, "nesterov": True},
        {"learning_rate": 0.1, "mu_dtype": jnp.float32},
    ],
)
def adam(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015): ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g^2``,
    ``u = -lr * m̂ / (sqrt(v̂ + eps_root) + eps)``.

    Args:

    optax: ``optax.adam``; torch: ``torch.optim.Adam`` (``from_torch("Adam")`` for its options).

    Example:
        Bias correction makes the first step ``-lr * sign(g)``, whatever the gradient's size:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.adam(learning_rate=0.1)
        >>> params = {"w": jnp.zeros(3, jnp.float32)}
        >>> grads = {"w": jnp.array([1e-3, -5.0, 200.0], jnp.float32)}
        >>> updates, state = opt.update(grads, opt.init(params), params)
        >>> print(jnp.array_str(updates["w"], precision=4))
        [-0.1  0.1 -0.1]
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="adamw",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.1, "b1": 0.85, "weight_decay": 0.1, "mask": matrices, "nesterov": True},
    ],
)
def adamw(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    weight_decay: kit.NonNegative = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019), decoupled decay:
    ``u = -lr * (m̂ / (sqrt(v̂ + eps_root) + eps) + wd * p)``.

    Args:

    optax: ``optax.adamw``; torch: ``torch.optim.AdamW`` (whose default weight_decay is 1e-2).

    Example:
        The decay is decoupled from Adam's scaling: with no gradient the update is ``-lr * wd * p``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> opt = gradtx.adamw(learning_rate=0.1, weight_decay=0.5)
        >>> updates, _ = opt.update(jnp.zeros(2, jnp.float32), opt.init(params), params)
        >>> print(updates)
        [-0.05  0.1 ]
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@register(optax="nadam", examples=[{"learning_rate": 0.1}, _ADAM_OPTIONS])
def nadam(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """NAdam (Dozat 2016) as optax defines it: ``adam(..., nesterov=True)``, i.e.
    ``m̂ = b1 m_t / (1 - b1^{t+1}) + (1 - b1) g / (1 - b1^t)``,
    ``u = -lr * m̂ / (sqrt(v̂ + eps_root) + eps)``.

    Args:

    optax: ``optax.nadam``; torch: ``torch.optim.NAdam`` has a momentum schedule on top
    (``scale_by_nadam``, ``from_torch("NAdam")``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> for opt in (gradtx.adam(learning_rate=0.1), gradtx.nadam(learning_rate=0.1)):
        ...     updates, _ = opt.update(2 * params, opt.init(params), params)
        ...     print(jnp.array_str(updates, precision=4))  # NAdam's first step is larger
        [-0.1  0.1]
        [-0.1474  0.1474]
    """
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


@register(
    optax="nadamw",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.1, "weight_decay": 0.1, "mask": matrices},
    ],
)
def nadamw(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    weight_decay: kit.NonNegative = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """NAdamW: ``adamw(..., nesterov=True)``:
    ``u = -lr * (m̂ / (sqrt(v̂ + eps_root) + eps) + wd * p)`` with NAdam's look-ahead ``m̂``.

    Args:

    optax: ``optax.nadamw``; torch: none (``torch.optim.NAdam(decoupled_weight_decay=True)``
    adds a momentum schedule).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w": jnp.array([1.0, 2.0], jnp.float32), "bias": jnp.ones(1, jnp.float32)}
        >>> opt = gradtx.nadamw(0.1, weight_decay=0.5, mask=gradtx.paths.exclude("bias"))
        >>> grads = {"w": jnp.ones(2, jnp.float32), "bias": jnp.ones(1, jnp.float32)}
        >>> updates, _ = opt.update(grads, opt.init(params), params)
        >>> for name in ("w", "bias"):  # the bias gets NAdam's step only
        ...     print(name, jnp.array_str(updates[name], precision=4))
        w [-0.1974 -0.2474]
        bias [-0.1474]
    """
    return adamw(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov
    )


@register(
    optax="amsgrad",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.1,
            "b1": 0.8,
            "b2": 0.95,
            "bias_correction_mu": False,
            "bias_correction_nu": False,
        },
    ],
)
def amsgrad(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018): ``u = -lr * m̂ / (sqrt(max_{i<=t} v̂_i + eps_root) + eps)``.

    Args:
      bias_correction_mu: divide ``m`` by ``1 - b1^t``.
      bias_correction_nu: divide ``v`` by ``1 - b2^t``.

    optax: ``optax.amsgrad``; torch: ``torch.optim.Adam(amsgrad=True)`` via
    ``from_torch("Adam", amsgrad=True)``.

    Example:
        After one large gradient AMSGrad's denominator stays at its maximum, so its steps stay small
        where Adam's recover:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> grads = [jnp.array([g], jnp.float32) for g in (10.0, 1.0, 1.0, 1.0, 1.0)]
        >>> for opt in (gradtx.adam(0.1, b2=0.5), gradtx.amsgrad(0.1, b2=0.5)):
        ...     state = opt.init(grads[0])
        ...     for g in grads:
        ...         updates, state = opt.update(g, state)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.1192]
        [-0.0244]
    """
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu),
        scale_by_learning_rate(learning_rate),
    )


__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "adam",
    "adamw",
    "amsgrad",
    "nadam",
    "nadamw",
    "scale_by_adam",
    "scale_by_amsgrad",
]
