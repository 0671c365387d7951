"""Coin-betting step sizes: COCOB (Orabona & Tommasi 2017), which bets on each coordinate's
gradient sign with the wealth won so far, and Mechanic (Cutkosky et al. 2023), which learns one
scale for any base optimizer's updates the same way.  Both keep ``x_0`` and need ``params`` at
every update; Mechanic's scalars are in the params' lowest float precision, at least float32.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import Block, GradientTransformation, as_block, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.registry import Use, matrices, register

Mask = Any


# --- COCOB -----------------------------------------------------------------------------------


class COCOBState(NamedTuple):
    """Per coordinate: ``init_particles`` ``x_0``; ``cumulative_gradients`` ``theta = -sum g``;
    ``scale`` ``L = max |g|``; ``subgradients`` ``G = sum |g|``; ``reward`` ``R``."""

    init_particles: kit.Tree
    cumulative_gradients: kit.Tree
    scale: kit.Tree
    subgradients: kit.Tree
    reward: kit.Tree


@register(
    "block",
    optax="contrib.scale_by_cocob",
    traced="alpha",
    examples=[{}, {"alpha": 20.0, "eps": 1e-3}],
)
def scale_by_cocob(
    alpha: kit.Positive = 100.0, eps: kit.NonNegativeConstant = 1e-8
) -> GradientTransformation:
    """COCOB-Backprop (Orabona & Tommasi 2017, Algorithm 2), coordinate by coordinate: a bettor
    whose wealth is the reward ``R`` stakes a fraction of it on the sign of ``-g``::

        L = max(L, |g|),  G = G + |g|,  R = max(R - g (x - x_0), 0),  theta = theta - g
        x_new = x_0 + theta / (L max(G + L, alpha L)) * (L + R),       u = x_new - x

    ``L`` starts at ``eps`` (optax's; Algorithm 2 starts it at 0, which divides 0 by 0 where no
    gradient has been seen yet).  Needs params.

    Args:
      alpha: caps the bet early on: the first steps are at most ``1 / alpha`` of the reward.
      eps: the starting value of ``L`` (a number).

    optax: ``optax.contrib.scale_by_cocob``; torch: none.

    Example:
        No learning rate, yet the step adapts: it grows while the gradient keeps its sign.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_cocob(alpha=10.0)
        >>> x = jnp.array([0.0], jnp.float32)
        >>> state = tx.init(x)
        >>> for _ in range(4):
        ...     u, state = tx.update(jnp.array([-1.0], jnp.float32), state, x)  # always downhill
        ...     x = x + u
        ...     print(jnp.array_str(x, precision=4))
        [0.1]
        [0.22]
        [0.396]
        [0.6864]
    """

    def init(params):
        zeros = kit.zeros_like
        scale = kit.full_like(params, eps)
        return COCOBState(kit.copy(params), zeros(params), scale, zeros(params), zeros(params))

    def step(updates, state, params, h):
        def leaf(g, s, p, *, keep):
            x0 = s.init_particles
            s = keep(
                s._replace(
                    cumulative_gradients=s.cumulative_gradients - g,
                    scale=jnp.maximum(s.scale, jnp.abs(g)),
                    subgradients=s.subgradients + jnp.abs(g),
                    reward=jnp.maximum(s.reward - g * (p - x0), 0),
                )
            )
            big_l, big_g = s.scale, s.subgradients
            alpha = kit.scalar(h.alpha, g)
            bet = s.cumulative_gradients / (big_l * jnp.maximum(big_g + big_l, alpha * big_l))
            return -p + (x0 + bet * (big_l + s.reward)), s

        return kit.map_state("scale_by_cocob", leaf, updates, state, params)

    return kit.block("scale_by_cocob", step, init, hyper={"alpha": alpha}, needs_params=True)


@register(
    optax="contrib.cocob",
    traced="alpha",
    examples=[
        {},
        {"learning_rate": 0.5, "alpha": 50.0, "eps": 1e-4, "weight_decay": 0.01, "mask": matrices},
    ],
)
def cocob(
    learning_rate: kit.Rate = 1.0,
    alpha: kit.Positive = 100.0,
    eps: kit.NonNegativeConstant = 1e-8,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
) -> GradientTransformation:
    """COCOB-Backprop (Orabona & Tommasi 2017), optax's form: ``g' = lr (g + wd p)`` (L2 weight
    decay, then ``+lr`` on the gradient, not ``-lr``), then ``scale_by_cocob`` on ``g'``.

    COCOB is nearly invariant to the gradient's scale, so ``learning_rate`` matters only through
    ``eps`` and through changes over time (a schedule); leave it at 1.

    Args:
      learning_rate: multiplies the gradient COCOB sees (1.0, or a schedule).
      alpha: caps the bet early on: the first steps are at most ``1 / alpha`` of the reward.
      eps: the starting value of COCOB's ``L`` (a number).
      weight_decay: coefficient ``wd`` of the L2 term ``wd * p`` added to the gradient.

    optax: ``optax.contrib.cocob``; torch: none.

    Example:
        Gradients a thousand times apart take (almost) the same steps:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> for size in (1e-3, 1.0):
        ...     opt, x = gradtx.cocob(), jnp.array([1.0, -1.0], jnp.float32)
        ...     state = opt.init(x)
        ...     for _ in range(20):
        ...         updates, state = opt.update(size * 2 * x, state, x)  # f = size * |x|²
        ...         x = gradtx.apply_updates(x, updates)
        ...     print(size, jnp.array_str(x, precision=3))
        0.001 [ 0.433 -0.433]
        1.0 [ 0.433 -0.433]
    """
    return chain(
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_cocob(alpha, eps),
    )


# --- Mechanic --------------------------------------------------------------------------------


@kit.one_counter("count")
class MechanicState(NamedTuple):
    """``base_optimizer_state``: the wrapped optimizer's; ``r``, ``m``, ``v``, ``s``: one scalar
    per ``beta`` (reward, running max and second moment of ``h``, the scales), as tuples of
    scalars (optax: arrays of shape ``(num_betas,)``); ``x0``: the reference point.  Field names
    follow optax (without its own ``count``)."""

    base_optimizer_state: Any
    r: tuple[jax.Array, ...]
    m: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    s: tuple[jax.Array, ...]
    x0: kit.Tree


@register(
    optax="contrib.mechanize",
    traced="weight_decay",
    traits=(),
    examples=[
        {"base_optimizer": Use("sgd", {"learning_rate": 0.1})},
        {
            "base_optimizer": Use("adam", {"learning_rate": 0.05}),
            "weight_decay": 0.1,
            "eps": 1e-6,
            "s_init": 1e-3,
            "num_betas": 3,
        },
    ],
)
def mechanize(
    base_optimizer: GradientTransformation | Block,
    weight_decay: kit.NonNegative = 1e-2,
    eps: kit.NonNegative = 1e-8,
    s_init: kit.PositiveConstant = 1e-6,
    num_betas: Annotated[int, kit.Range("[1, inf)", integer=True)] = 6,
) -> GradientTransformation:
    """Mechanic (Cutkosky et al. 2023): learns the scale ``S = sum(s)`` of any optimizer's steps.
    The params are ``x = x_0 + S Δ``, ``Δ`` the sum of the base optimizer's updates ``b``; with
    ``beta_i = 1 - 10^-i`` (``i = 1..num_betas``) and ``Δ`` read back as ``(x - x_0) / (S + eps)``::

        h = <g + wd S ||g|| / (||x|| + eps) x, Δ>             (the reward's derivative in S)
        m = max(beta m, |h| + eps),  v = beta² v + h²,  r = beta r - s clip(h, -m_old, m_old)
        s = (s_init m / num_betas + max(r, 0)) / (sqrt(v) + eps)
        u = x_0 + sum(s) (Δ + b) - x

    optax's form, which its authors wrote: the clip of ``h`` and ``eps`` in ``m`` are later
    additions to the paper's Algorithm 1, ``r`` is stored unclipped (the paper stores
    ``max(r, 0)``), ``s`` starts at ``s_init`` (paper: ``s_init = 1e-8``) and ``x_0`` is the
    params at the first update.

    Args:
      base_optimizer: the optimizer whose steps are scaled (``adam(lr)``, ``sgd(lr)``...; a
        schedule peaking at 1 keeps its shape).
      weight_decay: the coefficient of Mechanic's own weight decay (not the base's).
      eps: keeps Mechanic's divisions finite.
      s_init: the starting scale of each ``beta`` (a number).
      num_betas: how many ``beta``s, ``1 - 10^-i`` for ``i = 1..num_betas``.

    optax: ``optax.contrib.mechanize``; torch: none (the authors' ``mechanic_pytorch``).

    Example:
        SGD at a learning rate far too small (alone it ends at a loss of 14 here): Mechanic grows
        the scale ``S = sum(s)`` of its steps from ``6e-6`` until the loss drops.

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda x: jnp.sum((x - 3.0) ** 2)
        >>> opt = gradtx.mechanize(gradtx.sgd(1e-3))
        >>> x = jnp.zeros(2, jnp.float32)
        >>> state = opt.init(x)
        >>> for t in range(1, 61):
        ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
        ...     x = gradtx.apply_updates(x, updates)
        ...     if t % 20 == 0:
        ...         print(t, f"{sum(gradtx.tree_get(state, 's')):.2g}", f"{loss(x):.1e}")
        20 0.00016 1.8e+01
        40 0.027 1.8e+01
        60 5.3 2.7e+00
    """
    inner = as_block(base_optimizer)
    betas = [1.0 - 0.1**i for i in range(1, num_betas + 1)]

    def init(params):
        dt = kit.scalar_dtype(params)
        zeros = lambda: tuple(jnp.zeros([], dt) for _ in betas)
        s = tuple(jnp.asarray(s_init, dt) for _ in betas)
        return MechanicState(inner.init(params), zeros(), zeros(), zeros(), s, kit.copy(params))

    def step(updates, state, params, h):
        kit.check_match("mechanize", "updates", updates, "params", params)
        r, m, v, s = (jnp.stack(x) for x in state[1:5])
        dt = s.dtype
        base, base_state = inner.update(
            updates, state.base_optimizer_state, params, count=h.count, **h.extra
        )
        x0 = jax.tree.map(lambda a, b: jnp.where(h.count == 0, a, b), params, state.x0)
        total, eps_, wd = jnp.sum(s), jnp.asarray(h.eps, dt), jnp.asarray(h.weight_decay, dt)
        g_norm, p_norm = (
            kit.safe_sqrt(kit.vdot(updates, updates).astype(dt)),
            kit.safe_sqrt(kit.vdot(params, params).astype(dt)),
        )
        decay = wd * total * g_norm / (p_norm + eps_)
        beta = jnp.asarray(betas, dt)

        def reward(g, p, x):  # <g + decay p, (x0 - p) / (S + eps)> of one leaf
            k = kit.compute_dtype(g, p, x)
            back = (x.astype(k) - p.astype(k)) / (total + eps_).astype(k)
            return jnp.sum((g.astype(k) + decay.astype(k) * p.astype(k)) * back)

        hh = sum(jax.tree.leaves(jax.tree.map(reward, updates, params, x0)), jnp.zeros([], dt))
        hh = hh.astype(dt)
        r = beta * r + jnp.clip(hh, -m, m) * s  # clipped to the last running max
        m = jnp.maximum(beta * m, jnp.abs(hh) + eps_)
        v = beta**2 * v + hh**2
        wealth = s_init / num_betas * m + jnp.maximum(r, 0)
        s = (wealth / (kit.safe_sqrt(v) + eps_)).astype(dt)
        scale = jnp.sum(s)

        def move(b, p, x):
            k = kit.compute_dtype(b, p, x)
            p, x = p.astype(k), x.astype(k)
            delta = (x - p) / (total + eps_).astype(k) - b.astype(k)
            return (x - scale.astype(k) * delta - p).astype(b.dtype)

        u = jax.tree.map(move, base, params, x0)
        scalars = (tuple(x.astype(dt)) for x in (r, m, v, s))
        new = MechanicState(base_state, *scalars, x0)
        return u, new

    hyper = {"weight_decay": weight_decay, "eps": eps}
    return kit.block("mechanize", step, init, hyper=hyper, needs_params=True)


__all__ = [
    "COCOBState",
    "MechanicState",
    "cocob",
    "mechanize",
    "scale_by_cocob",
]
