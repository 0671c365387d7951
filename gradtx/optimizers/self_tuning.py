"""Self-tuning step sizes: optimizers that learn their own learning rate as they train.

* Hypergradient descent (Baydin et al. 2018): the learning rate takes a gradient step of its own
  every iteration (``sgd_hd``, ``adam_hd``, or ``scale_by_hypergradient`` around any direction).
* SWATS (Keskar & Socher 2017): Adam that switches to SGD with momentum once its projected SGD
  step size has settled (``swats``).
* Learning-rate-free methods: D-Adaptation AdamW (Defazio & Mishchenko 2023, ``dadapt_adamw``),
  Prodigy (Mishchenko & Defazio 2023, ``prodigy``) and Schedule-Free SGD/AdamW (Defazio et al.
  2024, ``schedule_free``, ``schedule_free_sgd``, ``schedule_free_adamw``, with
  ``schedule_free_eval_params`` for the averaged iterate).

Every optimizer here is one gradtx transformation with one step counter; its scalars (the current
learning rate, the distance estimate, the switch step...) live in its state and can be read with
``tree_get(state, name)``.  Scalars are kept in the parameters' lowest float precision, at least
float32; parameter-shaped state and updates keep the parameters' dtypes.  Notation:
``t = count + 1`` is the 1-based step, ``g`` the gradient, ``<a, b>`` the dot product over the
whole tree.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import (
    Block,
    GradientTransformation,
    as_block,
    chain,
)
from gradtx.blocks import add_decayed_weights, identity, scale_by_learning_rate, trace
from gradtx.optimizers.adam import scale_by_adam
from gradtx.optimizers.rms import scale_by_rms
from gradtx.registry import Use, register
from gradtx.state import tree_get

Tree = Any
NonNegativeConstant = Annotated[float, kit.Range("[0, inf)")]
"""A number >= 0 that is used as a constant (not a schedule)."""
PositiveConstant = Annotated[float, kit.Range("(0, inf)")]


def _scaled(factor: jax.Array, tree: Tree, like: Tree) -> Tree:
    """``factor * tree`` cast leaf by leaf to the dtypes of ``like``."""
    return jax.tree.map(lambda x, y: (factor * x).astype(jnp.result_type(y)), tree, like)


# --- hypergradient descent -----------------------------------------------------------------------


class HypergradientState(NamedTuple):
    """``learning_rate``: the current (adapted) step size ``alpha_t``; ``prev_direction``: the
    last direction ``d_{t-1}`` (``u_{t-1} = -alpha_{t-1} d_{t-1}``); ``direction``: the state of
    the transformation that produces ``d``."""

    learning_rate: jax.Array
    prev_direction: Tree
    direction: Any


@register(
    optax=None,
    traits=(),
    examples=[
        {"direction": Use("identity"), "learning_rate": 0.05, "hyper_lr": 1e-3},
        {"direction": Use("trace", {"decay": 0.9}), "learning_rate": 0.05, "hyper_lr": 1e-3},
    ],
)
def scale_by_hypergradient(
    direction: GradientTransformation | Block,
    learning_rate: NonNegativeConstant,
    hyper_lr: kit.NonNegative,
) -> GradientTransformation:
    """Hypergradient descent on the learning rate (Baydin et al. 2018) around any direction.

    With ``d_t = direction(g_t)`` and the update ``u_t = -alpha_t d_t``, the derivative of the
    loss w.r.t. the previous learning rate is ``h_t = <g_t, du_{t-1}/dalpha> = -<g_t, d_{t-1}>``,
    so each step first moves the learning rate, then the parameters::

        alpha_t = alpha_{t-1} - hyper_lr * h_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>
        u_t     = -alpha_t * d_t                  (d_0 = 0, so alpha_1 = learning_rate)

    ``learning_rate`` is the initial ``alpha_0``; the current one is
    ``tree_get(state, "learning_rate")``.  The lr is global (one scalar for the whole tree), as in
    the paper.  No optax/torch equivalent (the authors' torch code: ``SGDHD``, ``AdamHD``).
    """
    inner = as_block(direction)

    def init(params):
        dt = kit.scalar_dtype(params)
        return HypergradientState(
            jnp.asarray(learning_rate, dt), kit.zeros_like(params), inner.init(params)
        )

    def step(updates, state, params, h):
        kit.check_match(
            "scale_by_hypergradient", "updates", updates, "prev_direction", state.prev_direction
        )
        lr_old = state.learning_rate
        beta = kit.scalar(h.hyper_lr, lr_old)
        lr = (lr_old + beta * kit.vdot(updates, state.prev_direction)).astype(lr_old.dtype)
        d, inner_state = inner.update(updates, state.direction, params, count=h.count, **h.extra)
        u = _scaled(-lr, d, updates)
        return u, HypergradientState(lr, kit.cast_like(d, state.prev_direction), inner_state)

    return kit.block("scale_by_hypergradient", step, init, hyper={"hyper_lr": hyper_lr})


@register(
    optax=None,
    traits=(),
    examples=[
        {"learning_rate": 0.05, "hyper_lr": 1e-3},
        {"learning_rate": 0.05, "hyper_lr": 1e-3, "momentum": 0.9, "nesterov": True},
    ],
)
def sgd_hd(
    learning_rate: NonNegativeConstant,
    hyper_lr: kit.NonNegative,
    momentum: kit.Fraction | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """SGD-HD and SGDN-HD (Baydin et al. 2018): ``scale_by_hypergradient``
    around ``d_t = g_t`` (no momentum), ``d_t = v_t`` (heavy ball, ``v_t = momentum v_{t-1} + g_t``)
    or ``d_t = g_t + momentum v_t`` (Nesterov, the paper's SGDN-HD)::

        alpha_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>,   u_t = -alpha_t d_t

    ``<g, d>`` sums over every parameter, so a good ``hyper_lr`` shrinks with model size (the
    authors' torch ``SGDHD`` defaults to 1e-6).  optax: none; with ``hyper_lr = 0`` it is
    ``optax.sgd(learning_rate, momentum, nesterov)``.
    """
    if nesterov and momentum is None:
        raise ValueError("sgd_hd: nesterov=True needs a momentum in [0, 1]")
    d = identity() if momentum is None else trace(momentum, nesterov)
    return scale_by_hypergradient(d, learning_rate, hyper_lr)


@register(optax=None, traits=(), examples=[{"learning_rate": 0.05, "hyper_lr": 1e-4}])
def adam_hd(
    learning_rate: NonNegativeConstant,
    hyper_lr: kit.NonNegative,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
) -> GradientTransformation:
    """Adam-HD (Baydin et al. 2018): ``scale_by_hypergradient`` around Adam's
    direction ``d_t = m̂_t / (sqrt(v̂_t + eps_root) + eps)`` (``scale_by_adam``)::

        alpha_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>,   u_t = -alpha_t d_t

    The authors' torch ``AdamHD`` defaults ``hyper_lr`` to 1e-8 (and puts eps on the raw
    ``sqrt(v_t)``).  optax: none; with ``hyper_lr = 0`` it is ``optax.adam``.
    """
    return scale_by_hypergradient(scale_by_adam(b1, b2, eps, eps_root), learning_rate, hyper_lr)


# --- SWATS ---------------------------------------------------------------------------------------


class SwatsState(NamedTuple):
    """``adam``/``momentum``: the two phases' states (both always present, so the step jits);
    ``gamma_ema``: ``lambda_t``; ``sgd_learning_rate``: ``Lambda``, the estimated SGD step size
    (0 until the switch); ``switch_step``: the step ``t`` whose Adam update triggered the switch
    (0 while still in the Adam phase; SGD runs from step ``switch_step + 1``)."""

    adam: Any
    momentum: Any
    gamma_ema: jax.Array
    sgd_learning_rate: jax.Array
    switch_step: jax.Array


@register(optax=None, traits=(), examples=[{"learning_rate": 0.1, "switch_tol": 1e-3}])
def swats(
    learning_rate: kit.Rate = 1e-3,
    b1: Annotated[float, kit.Range("[0, 1)")] = 0.9,
    b2: Annotated[float, kit.Range("[0, 1)")] = 0.999,
    eps: NonNegativeConstant = 1e-9,
    switch_tol: NonNegativeConstant | None = None,
) -> GradientTransformation:
    """SWATS, switching from Adam to SGD (Keskar & Socher 2017, Algorithm 1).

    Adam phase (step ``t``, ``alpha`` = ``learning_rate``)::

        p_t = -alpha sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps)
        if <p_t, g_t> != 0:
            gamma_t  = <p_t, p_t> / -<p_t, g_t>
            lambda_t = b2 lambda_{t-1} + (1 - b2) gamma_t
            switch to SGD if t > 1 and |lambda_t / (1 - b2^t) - gamma_t| < switch_tol,
            with Lambda = lambda_t / (1 - b2^t)

    SGD phase (every step after the switch): ``v_t = b1 v_{t-1} + g_t`` (``v = 0`` at the switch),
    ``u_t = -(1 - b1) Lambda v_t``.

    The Adam step is ``scale_by_adam`` with eps on the raw ``sqrt(v_t)``, i.e.
    ``eps_t = eps / sqrt(1 - b2^t)`` on the debiased one.  ``switch_tol`` defaults to ``eps``, the
    paper's (absolute) criterion; in float32 the rounding of ``gamma_t`` (~1e-7 lr) exceeds 1e-9,
    so set ``switch_tol`` for the lr's scale there.  Dot products are over the whole tree (one
    switch for all parameters).
    ``tree_get(state, "switch_step")`` / ``"sgd_learning_rate"`` report the switch.
    Defaults are the paper's.  optax/torch: none.
    """
    tol = eps if switch_tol is None else switch_tol
    adam = as_block(scale_by_adam(b1, b2, lambda count: eps / jnp.sqrt(1 - b2 ** (count + 1.0))))
    momentum = as_block(trace(b1))

    def init(params):
        zero = jnp.zeros([], kit.scalar_dtype(params))
        return SwatsState(
            adam.init(params), momentum.init(params), zero, zero, jnp.zeros([], jnp.int32)
        )

    def adam_phase(updates, state, params, h):
        sdt, count = state.gamma_ema.dtype, h.count
        direction, adam_state = adam.update(updates, state.adam, params, count=count, **h.extra)
        alpha = jnp.asarray(h.learning_rate, sdt)
        p = _scaled(-alpha, direction, updates)
        pg, pp = kit.vdot(p, updates).astype(sdt), kit.vdot(p, p).astype(sdt)
        projected = pg != 0
        gamma = pp / jnp.where(projected, -pg, 1)
        lam = jnp.where(projected, b2 * state.gamma_ema + (1 - b2) * gamma, state.gamma_ema)
        lam_hat = lam / (1 - b2 ** (count + 1).astype(sdt))
        switch = projected & (count >= 1) & (jnp.abs(lam_hat - gamma) < tol)
        return p, state._replace(
            adam=adam_state,
            gamma_ema=lam.astype(sdt),
            sgd_learning_rate=jnp.where(switch, lam_hat, state.sgd_learning_rate).astype(sdt),
            switch_step=jnp.where(switch, count + 1, 0).astype(jnp.int32),
        )

    def sgd_phase(updates, state, params, h):
        v, momentum_state = momentum.update(updates, state.momentum, params, count=h.count)
        u = _scaled(-(1 - b1) * state.sgd_learning_rate, v, updates)
        return u, state._replace(momentum=momentum_state)

    def step(updates, state, params, h):
        # only the current phase runs (both states are always present, so the step jits)
        return jax.lax.cond(
            state.switch_step > 0,
            lambda: sgd_phase(updates, state, params, h),
            lambda: adam_phase(updates, state, params, h),
        )

    return kit.block("swats", step, init, hyper={"learning_rate": learning_rate})


# --- D-Adaptation and Prodigy --------------------------------------------------------------------


class DAdaptAdamWState(NamedTuple):
    """``estim_lr``: the distance estimate ``d``; ``grad_sum``: ``s``; ``numerator_weighted``:
    ``r``.  Field names follow optax (without its own ``count``)."""

    exp_avg: Tree
    exp_avg_sq: Tree
    grad_sum: Tree
    estim_lr: jax.Array
    numerator_weighted: jax.Array


def _check_betas(where: str, betas: tuple[float, float]) -> None:
    if len(betas) != 2:
        raise ValueError(f"{where}: betas must be a pair (b1, b2), got {betas!r}")
    kit.check_ranges(where, betas=(betas, "[0, 1)"))


def _d_step(d: jax.Array, learning_rate: Any, b1: Any, b2: Any, count: jax.Array) -> jax.Array:
    """``dlr = d * lr(t - 1) * sqrt(1 - b2^t) / (1 - b1^t)``: the distance estimate times the
    multiplier and Adam's step-size bias correction, in ``d``'s dtype."""
    dt = d.dtype
    t = (count + 1).astype(dt)
    bias = jnp.sqrt(1 - jnp.asarray(b2, dt) ** t) / (1 - jnp.asarray(b1, dt) ** t)
    return (d * learning_rate * bias).astype(dt)


@register(optax="contrib.dadapt_adamw", traits=(), examples=[{}, {"weight_decay": 0.01}])
def dadapt_adamw(
    learning_rate: kit.Rate = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: NonNegativeConstant = 1e-8,
    estim_lr0: PositiveConstant = 1e-6,
    weight_decay: NonNegativeConstant = 0.0,
) -> GradientTransformation:
    """D-Adapted AdamW (Defazio & Mishchenko 2023), optax's variant.  With ``c = sqrt(b2)``,
    ``l = learning_rate(t - 1)`` and ``dlr = d l sqrt(1 - b2^t) / (1 - b1^t)``::

        r_t = c r + (1 - c) dlr <g, s_{t-1} / (sqrt(v_{t-1}) + eps)>
        m_t = b1 m + (1 - b1) dlr g,      v_t = b2 v + (1 - b2) g²
        s_t = c s + (1 - c) dlr g,        d_{t+1} = max(d, r_t / ((1 - c) ||s_t||_1))
        u_t = -m_t / (sqrt(v_t) + eps) - weight_decay dlr p

    ``d`` starts at ``estim_lr0`` and is ``tree_get(state, "estim_lr")``.  ``learning_rate`` is a
    multiplier on the found step (1.0, or a schedule peaking at 1).  optax:
    ``optax.contrib.dadapt_adamw`` (same arguments and defaults, same numbers).
    """
    b1, b2 = betas
    _check_betas("dadapt_adamw", betas)
    c = b2**0.5

    def init(params):
        z = kit.zeros_like
        d0 = jnp.asarray(estim_lr0, kit.scalar_dtype(params))
        return DAdaptAdamWState(z(params), z(params), z(params), d0, jnp.zeros_like(d0))

    def step(updates, state, params, h):
        d, sdt = state.estim_lr, state.estim_lr.dtype
        dlr = _d_step(d, h.learning_rate, b1, b2, h.count)

        def leaf(g, m, v, s, p):
            k = kit.compute_dtype(g)
            step = dlr.astype(k)
            num = jnp.sum(g * s / (jnp.sqrt(v) + eps))
            m_new = b1 * m + (1 - b1) * step * g
            v_new = b2 * v + (1 - b2) * g * g
            s_new = c * s + (1 - c) * step * g
            u = -m_new / (jnp.sqrt(v_new) + eps) - weight_decay * step * p
            cast = lambda x, like: x.astype(like.dtype)
            return cast(u, g), cast(m_new, m), cast(v_new, v), cast(s_new, s), num.astype(k)

        u, m, v, s, nums = kit.leafwise("dadapt_adamw", leaf, 5, updates, *state[:3], params)
        r = c * state.numerator_weighted + (1 - c) * dlr * sum(jax.tree.leaves(nums))
        d_new = jnp.maximum(d, r / ((1 - c) * kit.l1_norm(s))).astype(sdt)
        return u, DAdaptAdamWState(m, v, s, d_new, r.astype(sdt))

    hyper = {"learning_rate": learning_rate}
    return kit.block("dadapt_adamw", step, init, hyper=hyper, needs_params=True)


class ProdigyState(NamedTuple):
    """``estim_lr``: the distance estimate ``d``; ``params0``: the initial parameters ``x_0``;
    ``grad_sum``: ``s``; ``numerator_weighted``: ``r``.  Field names follow optax (without its
    own ``count``)."""

    exp_avg: Tree
    exp_avg_sq: Tree
    grad_sum: Tree
    params0: Tree
    estim_lr: jax.Array
    numerator_weighted: jax.Array


@register(
    optax="contrib.prodigy",
    traits=(),
    examples=[{}, {"weight_decay": 0.01, "safeguard_warmup": True, "beta3": 0.9}],
)
def prodigy(
    learning_rate: kit.Rate = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: Annotated[float, kit.Range("[0, 1]")] | None = None,
    eps: NonNegativeConstant = 1e-8,
    estim_lr0: PositiveConstant = 1e-6,
    estim_lr_coef: PositiveConstant = 1.0,
    weight_decay: NonNegativeConstant = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    """Prodigy (Mishchenko & Defazio 2023), Adam form, optax's variant.  With ``b3 = beta3``
    (default ``sqrt(b2)``), ``l = learning_rate(t - 1)``, ``dlr = d l sqrt(1 - b2^t)/(1 - b1^t)``::

        m_t = b1 m + (1 - b1) d g,          v_t = b2 v + (1 - b2) d² g²
        r_t = b3 r + (d / d0) dlr <g, x_0 - p>
        s_t = b3 s + (w / d0) d g           (w = dlr; w = d with safeguard_warmup)
        d_{t+1} = max(d, estim_lr_coef * r_t / ||s_t||_1)
        u_t = -dlr m_t / (sqrt(v_t) + d_{t+1} eps) - weight_decay dlr p

    ``d`` starts at ``d0 = estim_lr0`` and is ``tree_get(state, "estim_lr")``.  optax:
    ``optax.contrib.prodigy`` (same arguments and defaults, same numbers).
    """
    b1, b2 = betas
    b3 = b2**0.5 if beta3 is None else beta3
    _check_betas("prodigy", betas)

    def init(params):
        z = kit.zeros_like
        d0 = jnp.asarray(estim_lr0, kit.scalar_dtype(params))
        return ProdigyState(
            z(params), z(params), z(params), kit.copy(params), d0, jnp.zeros_like(d0)
        )

    def step(updates, state, params, h):
        d, sdt = state.estim_lr, state.estim_lr.dtype
        dlr = _d_step(d, h.learning_rate, b1, b2, h.count)
        w = d if safeguard_warmup else dlr

        def moments(g, m, v, s, x0, p):
            k = kit.compute_dtype(g)
            dg = d.astype(k) * g
            m_new = b1 * m + (1 - b1) * dg
            v_new = b2 * v + (1 - b2) * dg * dg
            s_new = b3 * s + w.astype(k) * dg / estim_lr0
            cast = lambda x, like: x.astype(like.dtype)
            return cast(m_new, m), cast(v_new, v), cast(s_new, s), jnp.sum(g * (x0 - p)).astype(k)

        m, v, s, nums = kit.leafwise("prodigy", moments, 4, updates, *state[:4], params)
        r = b3 * state.numerator_weighted + (d / estim_lr0) * dlr * sum(jax.tree.leaves(nums))
        d_new = jnp.maximum(d, estim_lr_coef * r / kit.l1_norm(s)).astype(sdt)

        # the eps term already uses the new estimate, the step size the old one (as optax)
        def step(g, m, v, p):
            k = kit.compute_dtype(g)
            lr, de = dlr.astype(k), d_new.astype(k) * eps
            return ((-lr * m / (jnp.sqrt(v) + de) - weight_decay * lr * p).astype(g.dtype),)

        (u,) = kit.leafwise("prodigy", step, 1, updates, m, v, params)
        return u, ProdigyState(m, v, s, state.params0, d_new, r.astype(sdt))

    hyper = {"learning_rate": learning_rate}
    return kit.block("prodigy", step, init, hyper=hyper, needs_params=True)


# --- Schedule-Free -------------------------------------------------------------------------------


class ScheduleFreeState(NamedTuple):
    """``z``: the base optimizer's iterate; ``b1``: the interpolation weight (kept for
    ``schedule_free_eval_params``); ``weight_sum``: ``sum_i lr_max,i^weight_lr_power``;
    ``max_lr``: the largest learning rate seen; ``base_optimizer_state``: the base's state."""

    b1: jax.Array
    weight_sum: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Tree


def _ramp(count: jax.Array) -> jax.Array:
    """An example schedule (used by the registry's examples)."""
    return 0.1 * (count + 1) / (count + 5)


@register(
    optax="contrib.schedule_free",
    traits=(),
    examples=[
        {"base_optimizer": Use("sgd", {"learning_rate": 0.1}), "learning_rate": 0.1},
        {
            "base_optimizer": Use("scale_by_learning_rate", {"learning_rate": _ramp}),
            "learning_rate": _ramp,
            "b1": 0.8,
            "weight_lr_power": 1.0,
        },
    ],
)
def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: kit.Rate,
    b1: Annotated[float, kit.Range("(0, 1]")] = 0.9,
    weight_lr_power: NonNegativeConstant = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-Free wrapper (Defazio et al. 2024, "The Road Less Scheduled").

    The parameters the model sees are ``y``; the base optimizer (without momentum) moves ``z``;
    the evaluation sequence ``x`` is a weighted average of the ``z``'s::

        z_{t+1} = z_t + base_update(g(y_t))
        x_t     = (y_t - (1 - b1) z_t) / b1                   (recomputed, not stored)
        c_{t+1} = w_t / sum_{i<=t} w_i,   w_t = max_{i<=t} lr_i ^ weight_lr_power
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
        y_{t+1} = b1 x_{t+1} + (1 - b1) z_{t+1},   u_t = y_{t+1} - y_t

    The averaging weight reads ``learning_rate`` at step ``t`` (1-based), like optax, while a
    schedule inside ``base_optimizer`` reads the usual ``t - 1``.  Evaluate at
    ``schedule_free_eval_params(state, params)``.  ``state_dtype`` stores ``z`` in that dtype.
    optax: ``optax.contrib.schedule_free`` (same arguments and defaults).
    """
    base = as_block(base_optimizer)
    z_dtype = kit.canonical_dtype(state_dtype)

    def init(params):
        zero = jnp.zeros([], kit.scalar_dtype(params))
        z = kit.copy(kit.cast(params, z_dtype))
        return ScheduleFreeState(zero + b1, zero, zero, base.init(params), z)

    def step(updates, state, params, h):
        kit.check_match("schedule_free", "updates", updates, "z", state.z)
        sdt = state.max_lr.dtype
        # the averaging weight reads the learning rate one step ahead, as optax does
        lr = jnp.asarray(kit.resolve(learning_rate, h.count + 1), sdt)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr**weight_lr_power
        total = state.weight_sum + weight
        # zero total weight (lr still 0 in warmup): keep x where it is
        ck = jnp.where(total > 0, weight / jnp.where(total > 0, total, 1), 0)

        base_u, base_state = base.update(
            updates, state.base_optimizer_state, params, count=h.count, **h.extra
        )

        def leaf(y, z, bu):
            k = jnp.promote_types(kit.compute_dtype(y), z.dtype)
            yk, zk, c, b = y.astype(k), z.astype(k), ck.astype(k), state.b1.astype(k)
            z_new = (zk + bu).astype(z.dtype).astype(k)
            x = (yk - (1 - b) * zk) / b
            x_new = (1 - c) * x + c * z_new
            y_new = b * x_new + (1 - b) * z_new
            return (y_new - yk).astype(y.dtype), z_new.astype(z.dtype)

        u, z = kit.leafwise("schedule_free", leaf, 2, params, state.z, base_u)
        return kit.cast_like(u, updates), ScheduleFreeState(
            state.b1, total.astype(sdt), max_lr, base_state, z
        )

    return kit.block("schedule_free", step, init, needs_params=True)


def schedule_free_eval_params(state: Any, params: Tree) -> Tree:
    """The evaluation point ``x = (y - (1 - b1) z) / b1`` of a Schedule-Free optimizer, from its
    state (found by field name, so it also works inside a chain) and the current params ``y``.

    The result has the structure of ``params``; ``z`` is matched leaf by leaf, so an
    ``nnx.Optimizer``'s state (whose leaves are wrapped in optimizer variables) works with
    ``nnx.state(model, nnx.Param)``.  optax: ``optax.contrib.schedule_free_eval_params``.
    """
    (b1,) = jax.tree.leaves(tree_get(state, "b1"))
    ys, treedef = jax.tree.flatten(params)
    zs = jax.tree.leaves(tree_get(state, "z"))
    shapes = [jnp.shape(y) for y in ys], [jnp.shape(z) for z in zs]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"schedule_free_eval_params: params and the state's z differ: leaf shapes "
            f"{shapes[0]} vs {shapes[1]}; were the params trained with this state?"
        )
    x = [((y - (1 - b1) * z) / b1).astype(jnp.result_type(y)) for y, z in zip(ys, zs, strict=True)]
    return treedef.unflatten(x)


def _warmup_constant(peak: float, warmup_steps: int) -> Any:
    """``peak * min(step / warmup_steps, 1)``: a linear warmup from 0, then constant (the value
    of optax's ``warmup_constant_schedule(0, peak, warmup_steps)``)."""

    def schedule(count):
        frac = jnp.clip(count / warmup_steps, 0, 1)
        return peak * frac

    return schedule


@register(
    optax="contrib.schedule_free_sgd",
    traits=(),
    examples=[{"learning_rate": 0.1, "warmup_steps": 5, "weight_decay": 0.01}, {}],
)
def schedule_free_sgd(
    learning_rate: NonNegativeConstant = 1.0,
    warmup_steps: kit.Steps | None = None,
    b1: Annotated[float, kit.Range("(0, 1]")] = 0.9,
    weight_decay: NonNegativeConstant | None = None,
    weight_lr_power: NonNegativeConstant = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-Free SGD: ``schedule_free`` around ``z_{t+1} = z_t - lr (g + weight_decay y_t)``,
    with an optional linear warmup of ``lr`` over ``warmup_steps``.  optax:
    ``optax.contrib.schedule_free_sgd`` (same arguments and defaults)."""
    lr = learning_rate if warmup_steps is None else _warmup_constant(learning_rate, warmup_steps)
    base = chain(
        identity() if weight_decay is None else add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


@register(
    optax="contrib.schedule_free_adamw",
    traits=(),
    examples=[{"learning_rate": 0.1, "warmup_steps": 5, "weight_decay": 0.01}, {}],
)
def schedule_free_adamw(
    learning_rate: NonNegativeConstant = 0.0025,
    warmup_steps: kit.Steps | None = None,
    b1: Annotated[float, kit.Range("(0, 1]")] = 0.9,
    b2: kit.Fraction = 0.999,
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 0.0,
    weight_lr_power: NonNegativeConstant = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-Free AdamW: ``schedule_free`` around momentum-free AdamW,
    ``z_{t+1} = z_t - lr (g / (sqrt(v_t / (1 - b2^t)) + eps) + weight_decay y_t)`` with
    ``v_t = b2 v + (1 - b2) g²`` (``scale_by_rms(b2, eps, eps_in_sqrt=False,
    bias_correction=True)``); ``b1`` is the interpolation weight, not a momentum.  optax:
    ``optax.contrib.schedule_free_adamw`` (same arguments and defaults)."""
    lr = learning_rate if warmup_steps is None else _warmup_constant(learning_rate, warmup_steps)
    base = chain(
        scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


__all__ = [
    "DAdaptAdamWState",
    "HypergradientState",
    "ProdigyState",
    "ScheduleFreeState",
    "SwatsState",
    "adam_hd",
    "dadapt_adamw",
    "prodigy",
    "scale_by_hypergradient",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "sgd_hd",
    "swats",
]
