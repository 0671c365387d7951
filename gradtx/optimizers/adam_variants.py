"""Adam's variants that change its second moment or its step: AdaMax (infinity norm), RAdam
(variance rectification), torch's NAdam (momentum schedule), AdaBelief (variance of the
gradient around its mean) and Yogi (additive second-moment update).

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``m̂ = m_t / (1 - b1^t)``,
``v̂ = v_t / (1 - b2^t)``.  States reuse ``ScaleByAdamState(mu, nu)`` where the moments are
Adam's in shape and meaning.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.optimizers.adam import ScaleByAdamState, first_moment_hat
from gradtx.registry import matrices, register

Tree = kit.Tree
Mask = Any


@register(
    "block",
    optax="scale_by_adamax",
    traced="b1",
    examples=[{}, {"b1": 0.8, "b2": 0.9, "eps": 1e-3}],
)
def scale_by_adamax(
    b1: kit.Decay = 0.9, b2: kit.Decay = 0.999, eps: kit.NonNegative = 1e-8
) -> GradientTransformation:
    """AdaMax (Kingma & Ba 2015, sec. 7): ``m_t = b1 m + (1 - b1) g``,
    ``n_t = max(b2 n, |g| + eps)``, ``u = m_t / ((1 - b1^t) n_t)``.

    Args:
      b2: decay of the running maximum ``n`` of ``|g|``.
      eps: added to ``|g|`` inside the maximum (keeps ``n > 0``).

    optax: ``optax.scale_by_adamax``; torch: none (the direction inside ``torch.optim.Adamax``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_adamax()
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in (2.0, 0.5):  # n remembers the largest |g| (decayed by b2)
        ...     updates, state = tx.update(jnp.array([g], jnp.float32), state)
        ...     print(f"{updates[0]:.4f} {gradtx.tree_get(state, 'nu')[0]:.4f}")
        1.0000 2.0000
        0.6059 1.9980
    """

    def step(updates, state, params, h):
        db1 = kit.Debias(h.b1, h.count)

        def leaf(g, s, *, keep):
            s = keep(
                ScaleByAdamState(
                    kit.ema(g, s.mu, h.b1), jnp.maximum(h.b2 * s.nu, jnp.abs(g) + h.eps)
                )
            )
            return db1(s.mu) / s.nu, s

        return kit.map_state("scale_by_adamax", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState)
    return kit.block("scale_by_adamax", step, init, hyper={"b1": b1, "b2": b2, "eps": eps})


@register(
    "block",
    optax="scale_by_radam",
    traced="b1",
    examples=[
        {},
        {"b2": 0.99, "nesterov": True},
        {"b1": 0.9, "b2": 0.99, "eps": 1e-3, "eps_before_bias_correction": True},
    ],
)
def scale_by_radam(
    b1: kit.Decay = 0.9,
    b2: kit.ConstantDecay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
    eps_before_bias_correction: bool = False,
) -> GradientTransformation:
    """Rectified Adam (Liu et al. 2020).  ``rho_inf = 2 / (1 - b2) - 1``,
    ``rho_t = rho_inf - 2 t b2^t / (1 - b2^t)``.  If ``rho_t >= threshold``:
    ``u = r_t m̂ / (sqrt(v̂ + eps_root) + eps)`` with
    ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``; else
    ``u = m̂``.

    Args:
      b2: decay rate of the second-moment average (a number: ``rho_inf`` is built from it).
      threshold: the ``rho_t`` from which the rectified step is taken.
      eps_before_bias_correction: torch's rule, ``sqrt(1 - b2^t) / (sqrt(v_t) + eps)`` for the
        adaptive term.

    optax: ``optax.scale_by_radam``; torch: none (the direction inside ``torch.optim.RAdam``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_radam()
        >>> g = jnp.array([0.5, -2.0], jnp.float32)
        >>> state = tx.init(g)
        >>> for t in range(1, 8):  # u = m_hat until rho_t reaches the threshold (at t = 6)
        ...     updates, state = tx.update(g, state)
        ...     print(t, jnp.array_str(updates, precision=4))
        1 [ 0.5 -2. ]
        2 [ 0.5 -2. ]
        3 [ 0.5 -2. ]
        4 [ 0.5 -2. ]
        5 [ 0.5 -2. ]
        6 [ 0.0258 -0.0258]
        7 [ 0.0327 -0.0327]
    """
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def step(updates, state, params, h):
        db1, db2 = kit.Debias(h.b1, h.count), kit.Debias(b2, h.count)

        def leaf(g, s, *, keep):
            s = keep(ScaleByAdamState(kit.ema(g, s.mu, h.b1), kit.ema_sq(g, s.nu, b2)))
            t = (h.count + 1).astype(kit.compute_dtype(s.nu))
            b2t = kit.power(b2, h.count + 1, s.nu)
            one_minus_b2t = kit.one_minus_power(b2, h.count + 1, s.nu)
            rho = rho_inf - 2 * t * b2t / one_minus_b2t
            r = jnp.sqrt(
                jnp.maximum((rho - 4) * (rho - 2) * rho_inf, 0)
                / ((rho_inf - 4) * (rho_inf - 2) * rho)
            )
            m_hat = first_moment_hat(g, s.mu, h.b1, db1, nesterov)
            if eps_before_bias_correction:
                adaptive = jnp.sqrt(one_minus_b2t) / (jnp.sqrt(s.nu) + h.eps)
            else:
                adaptive = 1 / (jnp.sqrt(db2(s.nu) + h.eps_root) + h.eps)
            u = jnp.where(rho >= threshold, r.astype(m_hat.dtype) * m_hat * adaptive, m_hat)
            return u, s

        return kit.map_state("scale_by_radam", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState)
    return kit.block(
        "scale_by_radam", step, init, hyper={"b1": b1, "eps": eps, "eps_root": eps_root}
    )


class ScaleByNadamState(NamedTuple):
    mu_product: jax.Array
    mu: Tree
    nu: Tree


@register(
    "block",
    optax=None,
    traced="b1",
    examples=[{}, {"b1": 0.8, "b2": 0.99, "eps": 1e-4, "momentum_decay": 0.05}],
)
def scale_by_nadam(
    b1: kit.Decay = 0.9,
    b2: kit.ConstantDecay = 0.999,
    eps: Annotated[float, kit.Range("[0, inf)")] = 1e-8,
    momentum_decay: Annotated[float, kit.Range("[0, inf)")] = 4e-3,
) -> GradientTransformation:
    """NAdam with Dozat's momentum schedule, as torch implements it:
    ``mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay))``, ``P_t = prod_{i<=t} mu_i``,
    ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g²``, ``d = sqrt(v_t / (1 - b2^t)) + eps``,
    ``u = (1 - mu_t) / (1 - P_t) * g / d + mu_{t+1} / (1 - P_t mu_{t+1}) * m_t / d``.

    Args:
      b1: decay rate of the first moment and the scale of the momentum schedule ``mu_t``.
      b2: decay rate of the second-moment average (a number).
      eps: added to ``sqrt(v_t / (1 - b2^t))`` (a number).
      momentum_decay: the rate ``psi`` of the momentum schedule.

    optax: none (optax's ``nadam`` is ``adam(nesterov=True)``, without the schedule); torch:
    ``torch.optim.NAdam`` (``from_torch("NAdam")``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_nadam(momentum_decay=4e-3)
        >>> g = jnp.array([0.5, -2.0], jnp.float32)
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates, precision=4))
        [ 1.0565 -1.0565]
        >>> print(f"{gradtx.tree_get(state, 'mu_product'):.4f}")  # mu_1, about b1 / 2
        0.4501
    """

    def init(params):
        moments = kit.init_state(ScaleByAdamState)(params)
        return ScaleByNadamState(jnp.ones([], jnp.result_type(float)), *moments)

    def step(updates, state, params, h):
        t = (h.count + 1).astype(state.mu_product.dtype)
        c1 = h.b1  # torch uses the current beta1 for both mu_t and mu_{t+1}
        mu_t = c1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = c1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        prod = state.mu_product * mu_t
        c_g, c_m = (1 - mu_t) / (1 - prod), mu_next / (1 - prod * mu_next)
        db2 = kit.Debias(b2, h.count)

        def leaf(g, s, *, keep):
            s = keep(ScaleByAdamState(kit.ema(g, s.mu, c1), kit.ema_sq(g, s.nu, b2)))
            d = jnp.sqrt(db2(s.nu)) + eps
            k = kit.compute_dtype(g)
            return c_g.astype(k) * g / d + c_m.astype(k) * s.mu / d, s

        moments = ScaleByAdamState(state.mu, state.nu)
        u, new = kit.map_state("scale_by_nadam", leaf, updates, moments)
        return u, ScaleByNadamState(prod, *new)

    return kit.block("scale_by_nadam", step, init, hyper={"b1": b1})


@register(
    "block",
    optax="scale_by_belief",
    traced="b1",
    examples=[{}, {"b1": 0.8, "b2": 0.99, "eps": 1e-8, "eps_root": 1e-10, "nesterov": True}],
)
def scale_by_belief(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-16,
    eps_root: kit.NonNegative = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020): ``m_t = b1 m + (1 - b1) g``,
    ``s_t = b2 s + (1 - b2) (g - m_t)² + eps_root``, ``u = m̂ / (sqrt(ŝ) + eps)``, ``ŝ`` the
    debiased ``s_t``: the step is large where the gradient agrees with its mean.

    Args:
      b2: decay rate of ``s``, the average of ``(g - m)^2``.
      eps: added to ``sqrt(ŝ)``.
      eps_root: added to ``s_t`` at every step.

    optax: ``optax.scale_by_belief``; torch: none.

    Example:
        Under a steady gradient ``s`` stays small, so the step grows where Adam's stays at 1:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_belief()
        >>> g = jnp.array([0.5, -2.0], jnp.float32)
        >>> state = tx.init(g)
        >>> for _ in range(3):
        ...     updates, state = tx.update(g, state)
        ...     print(jnp.array_str(updates, precision=4))
        [ 1.1111 -1.1111]
        [ 1.168 -1.168]
        [ 1.2256 -1.2256]
    """

    def step(updates, state, params, h):
        db1, db2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

        def leaf(g, s, *, keep):
            s = keep(s._replace(mu=kit.ema(g, s.mu, h.b1)))
            s = keep(s._replace(nu=kit.ema_sq(g - s.mu, s.nu, h.b2) + h.eps_root))
            m_hat = first_moment_hat(g, s.mu, h.b1, db1, nesterov)
            return m_hat / (jnp.sqrt(db2(s.nu)) + h.eps), s

        return kit.map_state("scale_by_belief", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState)
    hyper = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_belief", step, init, hyper=hyper)


@register(
    "block",
    optax="scale_by_yogi",
    traced="b1",
    examples=[
        {},
        {"eps_root": 1e-6, "initial_accumulator_value": 0.5},
        {"b1": 0.8, "b2": 0.9, "eps": 1e-4, "eps_root": 1e-6, "initial_accumulator_value": 0.5},
    ],
)
def scale_by_yogi(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-3,
    eps_root: kit.NonNegative = 0.0,
    initial_accumulator_value: float = 1e-6,
) -> GradientTransformation:
    """Yogi (Zaheer et al. 2018): ``m_t = b1 m + (1 - b1) g``,
    ``v_t = v - (1 - b2) sign(v - g²) g²``, ``u = m̂ / (sqrt(v̂ + eps_root) + eps)``: ``v`` moves
    towards ``g²`` by an additive step, not a fraction of the gap as in Adam.

    Args:
      b2: rate of the additive second-moment update.
      initial_accumulator_value: starting value of both moments.

    optax: ``optax.scale_by_yogi``; torch: none.

    Example:
        From ``v_0 = 1e-6``, one step moves ``v`` by ``(1 - b2) g^2`` towards ``g^2``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_yogi()
        >>> g = jnp.array([0.5, -2.0], jnp.float32)
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates, precision=4))
        [ 0.996  -0.9994]
        >>> print(jnp.array_str(gradtx.tree_get(state, "nu"), precision=6))
        [0.000251 0.004001]
    """

    def step(updates, state, params, h):
        db1, db2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

        def leaf(g, s, *, keep):
            g2 = kit.abs_sq(g)
            s = keep(
                ScaleByAdamState(
                    kit.ema(g, s.mu, h.b1), s.nu - (1 - h.b2) * jnp.sign(s.nu - g2) * g2
                )
            )
            return db1(s.mu) / (jnp.sqrt(db2(s.nu) + h.eps_root) + h.eps), s

        return kit.map_state("scale_by_yogi", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState, initial_accumulator_value)
    hyper = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_yogi", step, init, hyper=hyper)


# --- optimizers ----------------------------------------------------------------------------------


@register(
    optax="adamax",
    examples=[{"learning_rate": 0.1}, {"learning_rate": 0.2, "b1": 0.8, "b2": 0.9, "eps": 1e-3}],
)
def adamax(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
) -> GradientTransformation:
    """AdaMax: ``m_t = b1 m + (1 - b1) g``, ``n_t = max(b2 n, |g| + eps)``,
    ``u = -lr * m_t / ((1 - b1^t) n_t)``.

    Args:
      b2: decay of the running maximum ``n`` of ``|g|``.
      eps: added to ``|g|`` inside the maximum (keeps ``n > 0``).

    optax: ``optax.adamax``; torch: ``torch.optim.Adamax`` (same rule).

    Example:
        With ``b1=0`` the step is ``-lr * g / n``, ``n`` the running maximum of ``|g|``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.adamax(learning_rate=0.1, b1=0.0)
        >>> g = jnp.array([4.0, 4.0], jnp.float32)
        >>> _, state = opt.update(g, opt.init(g))
        >>> updates, state = opt.update(jnp.array([1.0, -8.0], jnp.float32), state)
        >>> print(jnp.array_str(updates, precision=4))  # a new maximum gives a full step
        [-0.025  0.1  ]
    """
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


@register(
    optax="adamaxw",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.1, "weight_decay": 0.2, "mask": matrices},
    ],
)
def adamaxw(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 1e-4,
    mask: Mask = None,
) -> GradientTransformation:
    """AdaMax with decoupled weight decay: ``u = -lr * (m_t / ((1 - b1^t) n_t) + wd * p)``,
    ``n_t = max(b2 n, |g| + eps)``.

    Args:
      b2: decay of the running maximum ``n`` of ``|g|``.
      eps: added to ``|g|`` inside the maximum (keeps ``n > 0``).

    optax: ``optax.adamaxw``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w": jnp.array([1.0, 2.0], jnp.float32), "b": jnp.ones(1, jnp.float32)}
        >>> opt = gradtx.adamaxw(0.1, weight_decay=0.5, mask={"w": True, "b": False})
        >>> grads = {"w": jnp.ones(2, jnp.float32), "b": jnp.ones(1, jnp.float32)}
        >>> updates, _ = opt.update(grads, opt.init(params), params)
        >>> for name in ("w", "b"):  # "b" gets AdaMax's step only
        ...     print(name, jnp.array_str(updates[name], precision=4))
        w [-0.15 -0.2 ]
        b [-0.1]
    """
    return chain(
        scale_by_adamax(b1, b2, eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="radam",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.1,
            "b1": 0.8,
            "b2": 0.99,
            "eps": 1e-6,
            "eps_root": 1e-5,
            "threshold": 8.0,
            "nesterov": True,
        },
    ],
)
def radam(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.ConstantDecay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """RAdam (Liu et al. 2020): Adam with the variance rectification ``r_t`` of
    ``scale_by_radam``: ``u = -lr * r_t m̂ / (sqrt(v̂ + eps_root) + eps)`` once ``rho_t`` reaches
    ``threshold``, ``u = -lr * m̂`` before.

    Args:
      b2: decay rate of the second-moment average (a number).
      threshold: the ``rho_t`` from which the rectified step is taken.

    optax: ``optax.radam``; torch: ``torch.optim.RAdam`` (``from_torch("RAdam")``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.radam(learning_rate=0.01)
        >>> g = {"w": jnp.array([0.5, -20.0], jnp.float32)}
        >>> updates, state = opt.update(g, opt.init(g))
        >>> print(jnp.array_str(updates["w"], precision=4))  # -lr * m_hat, in proportion to g
        [-0.005  0.2  ]
    """
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="adabelief",
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.1,
            "b1": 0.8,
            "b2": 0.99,
            "eps": 1e-8,
            "eps_root": 1e-10,
            "nesterov": True,
        },
    ],
)
def adabelief(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-16,
    eps_root: kit.NonNegative = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020): ``u = -lr * m̂ / (sqrt(ŝ) + eps)``, ``s`` the EMA of
    ``(g - m)^2`` plus ``eps_root`` (``scale_by_belief``).

    Args:
      b2: how fast ``s``, the "belief" (the average squared surprise ``(g - m)^2``), forgets.
      eps: added to ``sqrt(ŝ)`` in the denominator.
      eps_root: added to ``s_t`` at every step (keeps ``ŝ`` above zero).

    optax: ``optax.adabelief``; torch: none.

    Example:
        The first coordinate's gradient is steady, the second's flips sign: AdaBelief's denominator
        tracks how far ``g`` strays from its mean, so the steady one takes the larger step:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.adabelief(learning_rate=0.1)
        >>> state = opt.init(jnp.zeros(2, jnp.float32))
        >>> for g in ([1.0, 1.0], [1.0, -1.0], [1.0, 1.0]):
        ...     updates, state = opt.update(jnp.array(g, jnp.float32), state)
        >>> print(jnp.array_str(updates, precision=4))
        [-0.1226 -0.036 ]
    """
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="yogi",
    examples=[{"learning_rate": 0.1}, {"learning_rate": 0.1, "b1": 0.8, "b2": 0.9, "eps": 1e-4}],
)
def yogi(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-3,
) -> GradientTransformation:
    """Yogi (Zaheer et al. 2018): ``v_t = v - (1 - b2) sign(v - g^2) g^2``,
    ``u = -lr * m̂ / (sqrt(v̂) + eps)`` (``scale_by_yogi``; both moments start at 1e-6).

    Args:
      b2: rate of the additive second-moment update.

    optax: ``optax.yogi``; torch: none.

    Example:
        When the gradient shrinks, Yogi's ``v`` falls by ``(1 - b2) g^2`` a step, not by a
        fraction of itself as Adam's does:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.yogi(learning_rate=0.1, b2=0.9)
        >>> state = opt.init(jnp.zeros(1, jnp.float32))
        >>> for g in (10.0, 0.1, 0.1, 0.1):
        ...     _, state = opt.update(jnp.array([g], jnp.float32), state)
        >>> print(f"{gradtx.tree_get(state, 'nu')[0]:.3f}")  # Adam's v: 7.293
        9.997
    """
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))


__all__ = [
    "ScaleByNadamState",
    "adabelief",
    "adamax",
    "adamaxw",
    "radam",
    "scale_by_adamax",
    "scale_by_belief",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_yogi",
    "yogi",
]
