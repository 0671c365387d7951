"""Self-tuning step sizes: hypergradient descent (``scale_by_hypergradient``, ``sgd_hd``,
``adam_hd``), SWATS (Adam, then SGD), and the learning-rate-free D-Adaptation (``dadapt_adamw``)
and Prodigy.  (Schedule-Free, the other learning-rate-free family, is ``schedule_free``.)

Each is one transformation with one step counter; its scalars (learning rate, distance estimate,
switch step...) live in its state, read with ``tree_get(state, name)``, in the params' lowest
float precision (at least float32).  Notation: ``t = count + 1``, ``g`` the gradient, ``<a, b>``
the dot product over the whole tree.
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
)
from gradtx.blocks import identity, trace
from gradtx.optimizers.adam import scale_by_adam
from gradtx.registry import Use, register

Tree = Any


def _scaled(factor: jax.Array, tree: Tree, like: Tree) -> Tree:
    """``factor * tree`` cast leaf by leaf to the dtypes of ``like``."""
    return jax.tree.map(lambda x, y: (factor * x).astype(jnp.result_type(y)), tree, like)


# --- hypergradient descent -----------------------------------------------------------------------


class HypergradientState(NamedTuple):
    """``learning_rate``: the current ``alpha_t``; ``prev_direction``: ``d_{t-1}``;
    ``direction``: the state of the transformation that produces ``d``."""

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
    learning_rate: kit.NonNegativeConstant,
    hyper_lr: kit.NonNegative,
) -> GradientTransformation:
    """Hypergradient descent on the learning rate (Baydin et al. 2018) around any direction ``d``.

    The loss's derivative w.r.t. the last learning rate is ``-<g_t, d_{t-1}>``, so each step
    runs ``alpha_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>`` (``d_0 = 0``), then
    ``u_t = -alpha_t d_t``.  ``alpha`` is one scalar for the whole tree:
    ``tree_get(state, "learning_rate")``.  optax: none; torch: none (the authors' torch code:
    ``SGDHD``, ``AdamHD``).

    Args:
      direction: the transformation giving ``d_t`` from ``g_t``, without a learning rate
        (``identity()``, ``trace(0.9)``, ``scale_by_adam()``...).
      learning_rate: the initial learning rate ``alpha_0`` (a number).

    Example:
        Any direction works; with ``sign(g)``, the learning rate grows while ``g`` keeps its sign:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.scale_by_hypergradient(gradtx.scale_by_sign(), 0.1, hyper_lr=0.01)
        >>> params = jnp.array([3.0], jnp.float32)
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     updates, state = opt.update(2 * params, state, params)  # the gradient of p**2
        ...     params = gradtx.apply_updates(params, updates)
        ...     print(f"{gradtx.tree_get(state, 'learning_rate'):.4f}")  # + hyper_lr * <g, sign>
        0.1000
        0.1580
        0.2128
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
    learning_rate: kit.NonNegativeConstant,
    hyper_lr: kit.NonNegative,
    momentum: kit.Fraction | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """SGD-HD and SGDN-HD (Baydin et al. 2018): ``scale_by_hypergradient`` around ``d_t = g_t``,
    ``d_t = v_t = momentum v_{t-1} + g_t`` (heavy ball) or ``d_t = g_t + momentum v_t`` (Nesterov):
    ``alpha_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>``, ``u_t = -alpha_t d_t``.  ``<g, d>`` sums
    over every parameter, so a good ``hyper_lr`` shrinks with model size (the authors' ``SGDHD``
    uses 1e-6).  optax: none (``hyper_lr = 0`` is ``optax.sgd``); torch: none.

    Args:
      learning_rate: the initial learning rate ``alpha_0`` (a number).

    Example:
        Started with a learning rate too small for ``sum(w**2)``, SGD-HD raises it:

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda p: jnp.sum(p["w"] ** 2)
        >>> params = {"w": jnp.array([1.0, -2.0], jnp.float32)}
        >>> opt = gradtx.sgd_hd(learning_rate=0.01, hyper_lr=0.01)
        >>> state = opt.init(params)
        >>> for _ in range(5):
        ...     updates, state = opt.update(jax.grad(loss)(params), state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(f"{gradtx.tree_get(state, 'learning_rate'):.4f}")
        0.3457
    """
    if nesterov and momentum is None:
        raise ValueError("sgd_hd: nesterov=True needs a momentum in [0, 1]")
    d = identity() if momentum is None else trace(momentum, nesterov)
    return scale_by_hypergradient(d, learning_rate, hyper_lr)


@register(optax=None, traits=(), examples=[{"learning_rate": 0.05, "hyper_lr": 1e-4}])
def adam_hd(
    learning_rate: kit.NonNegativeConstant,
    hyper_lr: kit.NonNegative,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    eps_root: kit.NonNegative = 0.0,
) -> GradientTransformation:
    """Adam-HD (Baydin et al. 2018): ``scale_by_hypergradient`` around Adam's direction
    ``d_t = m̂_t / (sqrt(v̂_t + eps_root) + eps)``:
    ``alpha_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>``, ``u_t = -alpha_t d_t``.  The authors'
    ``AdamHD`` uses ``hyper_lr = 1e-8`` (and eps on the raw ``sqrt(v_t)``).  optax: none
    (``hyper_lr = 0`` is ``optax.adam``); torch: none.

    Args:
      learning_rate: the initial learning rate ``alpha_0`` (a number).

    Example:
        Started too large, Adam's steps overshoot the minimum, and Adam-HD lowers its learning rate:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.adam_hd(learning_rate=1.0, hyper_lr=0.05)
        >>> params = jnp.array([0.3], jnp.float32)
        >>> state = opt.init(params)
        >>> lrs = []
        >>> for _ in range(4):
        ...     updates, state = opt.update(2 * params, state, params)
        ...     params = params + updates
        ...     lrs.append(f"{gradtx.tree_get(state, 'learning_rate'):.3f}")
        >>> print(*lrs)
        1.000 0.930 0.943 0.932
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


@register(
    optax=None,
    traits=(),
    # the first stays in its Adam phase for 50 steps; the second switches to SGD at step 2
    examples=[
        {"learning_rate": 0.1, "switch_tol": 1e-3},
        {"learning_rate": 0.1, "switch_tol": 1e-2},
    ],
)
def swats(
    learning_rate: kit.Rate = 1e-3,
    b1: Annotated[float, kit.Range("[0, 1)")] = 0.9,
    b2: Annotated[float, kit.Range("[0, 1)")] = 0.999,
    eps: kit.NonNegativeConstant = 1e-9,
    switch_tol: kit.NonNegativeConstant | None = None,
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
    ``u_t = -(1 - b1) Lambda v_t``.  One switch for the whole tree, reported by
    ``tree_get(state, "switch_step")`` and ``"sgd_learning_rate"``.  optax: none; torch: none.

    Args:
      b1: decay rate of Adam's first moment, and the SGD phase's momentum.
      b2: decay rate of Adam's second moment and of ``lambda``.
      eps: added to the raw ``sqrt(v_t)`` (the paper's placement).
      switch_tol: the switch test's tolerance (``None``: ``eps``, the paper's; in float32 the
        rounding of ``gamma_t`` exceeds 1e-9, so set it for the lr's scale there).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.swats(learning_rate=0.01, switch_tol=1e-3)
        >>> update = jax.jit(opt.update)  # both phases compiled into one step
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> state = opt.init(params)
        >>> for t in (1, 2, 3):
        ...     updates, state = update(2 * params, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        ...     print(t, gradtx.tree_get(state, "switch_step"))  # SGD from step 3
        1 0
        2 2
        3 2
        >>> print(f"{gradtx.tree_get(state, 'sgd_learning_rate'):.4f}")
        0.0033
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
        return kit.when(
            state.switch_step > 0,
            lambda: sgd_phase(updates, state, params, h),
            lambda: adam_phase(updates, state, params, h),
        )

    return kit.block("swats", step, init, hyper={"learning_rate": learning_rate})


# --- D-Adaptation and Prodigy --------------------------------------------------------------------


@kit.one_counter("count")
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
    eps: kit.NonNegativeConstant = 1e-8,
    estim_lr0: kit.PositiveConstant = 1e-6,
    weight_decay: kit.NonNegativeConstant = 0.0,
) -> GradientTransformation:
    """D-Adapted AdamW (Defazio & Mishchenko 2023), optax's variant.  With ``c = sqrt(b2)``,
    ``l = learning_rate(t - 1)`` and ``dlr = d l sqrt(1 - b2^t) / (1 - b1^t)``::

        r_t = c r + (1 - c) dlr <g, s_{t-1} / (sqrt(v_{t-1}) + eps)>
        m_t = b1 m + (1 - b1) dlr g,      v_t = b2 v + (1 - b2) g²
        s_t = c s + (1 - c) dlr g,        d_{t+1} = max(d, r_t / ((1 - c) ||s_t||_1))
        u_t = -m_t / (sqrt(v_t) + eps) - weight_decay dlr p

    ``d`` is ``tree_get(state, "estim_lr")``.  optax: ``optax.contrib.dadapt_adamw`` (same
    arguments, defaults and numbers); torch: none.

    Args:
      learning_rate: a multiplier on the found step size (1.0, or a schedule peaking at 1).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.dadapt_adamw()
        >>> params = {"w": jnp.array([1.0, -2.0], jnp.float32)}
        >>> state = opt.init(params)
        >>> for t in range(1, 16):
        ...     updates, state = opt.update({"w": 2 * params["w"]}, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        ...     if t % 5 == 0:
        ...         print(t, f"{gradtx.tree_get(state, 'estim_lr'):.2g}")  # d grows from 1e-6
        5 3.4e-05
        10 0.00043
        15 0.0035
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

        def leaf(*leaves):
            k = kit.compute_dtype(leaves[0])
            g, m, v, s, p = (x.astype(k) for x in leaves)  # half precision: eps would be 0
            step = dlr.astype(k)
            num = jnp.sum(g * s / (jnp.sqrt(v) + eps))
            m_new = b1 * m + (1 - b1) * step * g
            v_new = b2 * v + (1 - b2) * g * g
            s_new = c * s + (1 - c) * step * g
            u = -m_new / (jnp.sqrt(v_new) + eps) - weight_decay * step * p
            stored = [x.dtype for x in leaves]
            new = (u, m_new, v_new, s_new)
            return (*(x.astype(dt) for x, dt in zip(new, stored, strict=False)), num)

        u, m, v, s, nums = kit.leafwise("dadapt_adamw", leaf, 5, updates, *state[:3], params)
        r = c * state.numerator_weighted + (1 - c) * dlr * sum(jax.tree.leaves(nums))
        d_new = jnp.maximum(d, r / ((1 - c) * kit.l1_norm(s))).astype(sdt)
        return u, DAdaptAdamWState(m, v, s, d_new, r.astype(sdt))

    hyper = {"learning_rate": learning_rate}
    return kit.block("dadapt_adamw", step, init, hyper=hyper, needs_params=True)


@kit.one_counter("count")
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
    eps: kit.NonNegativeConstant = 1e-8,
    estim_lr0: kit.PositiveConstant = 1e-6,
    estim_lr_coef: kit.PositiveConstant = 1.0,
    weight_decay: kit.NonNegativeConstant = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    """Prodigy (Mishchenko & Defazio 2023), Adam form, optax's variant.  With ``b3 = beta3``,
    ``l = learning_rate(t - 1)``, ``dlr = d l sqrt(1 - b2^t)/(1 - b1^t)``::

        m_t = b1 m + (1 - b1) d g,          v_t = b2 v + (1 - b2) d² g²
        r_t = b3 r + (d / d0) dlr <g, x_0 - p>
        s_t = b3 s + (w / d0) d g           (w = dlr; w = d with safeguard_warmup)
        d_{t+1} = max(d, estim_lr_coef * r_t / ||s_t||_1)
        u_t = -dlr m_t / (sqrt(v_t) + d_{t+1} eps) - weight_decay dlr p

    ``d`` is ``tree_get(state, "estim_lr")``.  optax: ``optax.contrib.prodigy`` (same arguments,
    defaults and numbers); torch: none.

    Args:
      learning_rate: a multiplier on the found step size (1.0, or a schedule peaking at 1).
      beta3: decay rate ``b3`` of ``r`` and ``s`` (``None``: ``sqrt(b2)``).
      eps: added to ``sqrt(v_t)``, scaled by ``d_{t+1}``.
      estim_lr_coef: multiplies each new estimate of ``d``.
      safeguard_warmup: weight ``s`` by ``d`` rather than ``dlr`` (guards ``d`` during a warmup).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda p: jnp.sum((p - 3.0) ** 2)
        >>> opt, params = gradtx.prodigy(), jnp.zeros(2, jnp.float32)
        >>> state, update = opt.init(params), jax.jit(opt.update)
        >>> estimates = []
        >>> for _ in range(60):
        ...     updates, state = update(jax.grad(loss)(params), state, params)
        ...     params = gradtx.apply_updates(params, updates)
        ...     estimates.append(float(gradtx.tree_get(state, "estim_lr")))
        >>> print(*(f"{d:.2g}" for d in estimates[19::20]))  # from 1e-6 to the problem's scale
        0.0009 1.5 1.5
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


__all__ = [
    "DAdaptAdamWState",
    "HypergradientState",
    "ProdigyState",
    "SwatsState",
    "adam_hd",
    "dadapt_adamw",
    "prodigy",
    "scale_by_hypergradient",
    "sgd_hd",
    "swats",
]
