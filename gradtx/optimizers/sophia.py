"""Sophia (Liu et al. 2023): Adam's first moment divided by an exponential average of a
*Hessian-diagonal* estimate instead of squared gradients, clipped element-wise.  The estimate
comes from any transformation; the default is Hutchinson's estimator ``z * (H z)`` with random
signs ``z``, which needs the objective (``update(..., obj_fn=f)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain, with_extra_args
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.registry import Use, matrices, register
from gradtx.tree.constructors import random_like

Tree = kit.Tree
Mask = Any


class HutchinsonState(NamedTuple):
    """``key``: the key the next sign draw splits (as given: raw key data by default).
    optax: ``optax.contrib.HutchinsonState`` (same field)."""

    key: jax.Array


class GradientTransformationExtraArgs(GradientTransformation):
    """A transformation whose ``update`` needs extra keywords (Hutchinson's ``obj_fn=``); the
    kind optax's ``hutchinson_estimator_diag_hessian`` returns."""


def _lowest_float(params: Tree) -> Any:
    floats = [jnp.result_type(x) for x in jax.tree.leaves(params)]
    floats = [d for d in floats if jnp.issubdtype(d, jnp.floating)] or [jnp.dtype(jnp.float32)]
    return min(floats, key=lambda d: jnp.finfo(d).bits)


def hutchinson_estimator_diag_hessian(random_seed: jax.Array | None = None):
    """Hutchinson's unbiased estimate of the Hessian's diagonal: ``d = z * (H z)`` with ``z`` a
    fresh vector of random signs (Rademacher, drawn in float32 and cast to the params' lowest
    float dtype) and ``H z`` a Hessian-vector product of ``obj_fn`` at ``params`` (forward over
    reverse mode).  The incoming updates are ignored.

    ``update(updates, state, params, obj_fn=f)``: ``f(params)`` is the scalar loss; both
    ``params`` and ``obj_fn`` are required.  Each call splits the stored key into the next key
    and the one the signs are drawn from (one key per leaf, as optax).

    Args:
      random_seed: the PRNG key (``None``: ``jax.random.PRNGKey(0)``).

    optax: ``optax.contrib.hutchinson_estimator_diag_hessian`` (same argument, state and draws).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> est = gradtx.contrib.hutchinson_estimator_diag_hessian()
        >>> p = jnp.array([1.0, -2.0])
        >>> f = lambda x: jnp.sum(x**4) / 12  # separable: z * (H z) = H's diagonal, p**2
        >>> d, _ = est.update(p, est.init(p), p, obj_fn=f)
        >>> print(d)
        [1. 4.]
    """

    def init(params: Tree) -> HutchinsonState:
        del params
        return HutchinsonState(jax.random.PRNGKey(0) if random_seed is None else random_seed)

    def update(updates, state, params=None, obj_fn: Callable[[Tree], Any] | None = None, **extra):
        del updates, extra
        if params is None:
            raise ValueError("hutchinson_estimator_diag_hessian: update needs params")
        if obj_fn is None:
            raise ValueError("hutchinson_estimator_diag_hessian: update needs obj_fn=f(params)")
        key, draw = jax.random.split(state.key)
        signs = random_like(draw, params, jax.random.rademacher, dtype=jnp.float32)
        low = _lowest_float(params)
        signs = jax.tree.map(lambda z: z.astype(low), signs)
        hz = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
        return jax.tree.map(lambda a, z: a * z, hz, signs), HutchinsonState(key)

    return GradientTransformationExtraArgs(init, update)


@kit.one_counter("count")
class SophiaState(NamedTuple):
    """``mu``: the gradients' moving average; ``nu``: the Hessian-diagonal estimates' moving
    average; ``hessian_fn_state``: the estimator's state.  optax: ``optax.contrib.SophiaState``
    (its ``count`` is the chain's here; optax's spelling still constructs)."""

    mu: Tree
    nu: Tree
    hessian_fn_state: Any


class _Moments(NamedTuple):
    mu: Tree
    nu: Tree


def _scale_by_sophia(b1, b2, eps, gamma, clip_threshold, update_interval, hessian_diagonal_fn,
                     mu_dtype, verbose, print_win_rate_every_n_steps):  # fmt: skip
    """Sophia's direction (the block under ``sophia``; optax's ``scale_by_sophia``, which optax
    does not export)."""
    estimator = with_extra_args(hessian_diagonal_fn)
    period = int(update_interval)
    report = int(print_win_rate_every_n_steps)

    def init(params):
        return SophiaState(
            kit.zeros_like(params, mu_dtype), kit.zeros_like(params), estimator.init(params)
        )

    def step(updates, state, params, h):
        debias = kit.Debias(h.b1, h.count)

        def leaf(g, s, *, keep):
            s = keep(s._replace(mu=kit.ema(g, s.mu, h.b1)))
            u = debias(s.mu) / jnp.maximum(h.gamma * s.nu, h.eps)
            if clip_threshold is not None:
                u = jnp.clip(u, -h.clip_threshold, h.clip_threshold)
            return u, s

        direction, moments = kit.map_state("sophia", leaf, updates, _Moments(state.mu, state.nu))
        if verbose and report > 0 and clip_threshold is not None:
            inside = sum(jnp.sum(jnp.abs(u) < h.clip_threshold) for u in jax.tree.leaves(direction))
            rate = inside / sum(u.size for u in jax.tree.leaves(direction))
            show = lambda: jax.debug.print("Sophia optimizer win rate: {}", rate)
            kit.when((h.count + 1) % report == 0, show, lambda: None)

        def refresh(hessian_state, nu):
            diag, hessian_state = estimator.update(updates, hessian_state, params, **h.extra)
            nu = jax.tree.map(
                lambda d, n: kit.ema(d.astype(kit.compute_dtype(n)), n, h.b2).astype(n.dtype),
                diag,
                nu,
            )
            return hessian_state, nu

        hessian_state, nu = kit.when(
            h.count % period == 0,
            refresh,
            lambda hs, nu: (hs, nu),
            state.hessian_fn_state,
            state.nu,
        )
        return direction, SophiaState(moments.mu, nu, hessian_state)

    hyper = {"b1": b1, "b2": b2, "eps": eps, "gamma": gamma}
    if clip_threshold is not None:
        hyper["clip_threshold"] = clip_threshold
    return kit.block("scale_by_sophia", step, init, hyper=hyper, needs_params=True)


@register(
    optax="contrib.sophia",
    traits=(),
    examples=[
        {
            "learning_rate": 0.1,
            "gamma": 0.5,
            "hessian_diagonal_fn": Use("scale", {"step_size": 2.0}),
        },
        {
            "learning_rate": 0.05,
            "b1": 0.9,
            "b2": 0.95,
            "eps": 0.5,
            "weight_decay": 0.01,
            "weight_decay_mask": matrices,
            "gamma": 2.0,
            "clip_threshold": None,
            "update_interval": 3,
            "hessian_diagonal_fn": Use("scale_by_rms", {"decay": 0.9}),
        },
        {
            "learning_rate": 0.1,
            "weight_decay": 0.0,
            "clip_threshold": 0.5,
            "update_interval": 1,
            "hessian_diagonal_fn": Use("identity"),
        },
    ],
)
def sophia(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.965,
    b2: kit.Decay = 0.99,
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 1e-4,
    weight_decay_mask: Mask = None,
    gamma: kit.NonNegative = 0.01,
    clip_threshold: ScalarOrSchedule | None = 1.0,
    update_interval: kit.Steps = 10,
    hessian_diagonal_fn: GradientTransformation = hutchinson_estimator_diag_hessian(),  # noqa: B008
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    """Sophia (Liu et al. 2023, Algorithm 3), with ``t`` counted from 1:

        m_t = b1 m_{t-1} + (1 - b1) g_t
        u_t = clip((m_t / (1 - b1^t)) / max(gamma h_{t-1}, eps), -clip_threshold, clip_threshold)
        h_t = b2 h_{t-1} + (1 - b2) d_t   when (t - 1) % update_interval == 0, else h_{t-1}
        w  <- w - lr (u_t + weight_decay w)

    ``d_t`` is ``hessian_diagonal_fn``'s estimate of the Hessian's diagonal, taken *after* the
    step's direction (the first step divides by ``eps``, as in the paper's code).  The default
    Hutchinson estimator needs the loss: ``update(grads, state, params, obj_fn=f)``, which
    forwards every extra keyword to the estimator.  Unlike Adam there is no bias correction of
    ``h``; the weight decay is decoupled and multiplied by the learning rate (as AdamW).

    Args:
      gamma: scales the Hessian average in the denominator (the paper's ``rho``).
      clip_threshold: the element-wise clip of the direction (``None``: no clipping).
      update_interval: the Hessian estimate is refreshed every this many steps (the paper's k).
      hessian_diagonal_fn: the estimator of the Hessian's diagonal: a transformation called
        with ``(grads, its_state, params, **extra)`` that returns the estimate.
      weight_decay_mask: which leaves get weight decay (a tree of bools or a function of the
        params).
      verbose: print the fraction of unclipped coordinates every
        ``print_win_rate_every_n_steps`` steps.
      print_win_rate_every_n_steps: the period of that print (``0``: never).

    optax: ``optax.contrib.sophia`` (same arguments, defaults and numbers).  torch: none.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import gradtx
        >>> f = lambda p: jnp.sum((p - 1.0) ** 2)
        >>> opt = gradtx.contrib.sophia(0.5, b1=0.9, b2=0.9, gamma=1.0, update_interval=1)
        >>> p = jnp.zeros(3)
        >>> state = opt.init(p)
        >>> for _ in range(30):
        ...     u, state = opt.update(jax.grad(f)(p), state, p, obj_fn=f)
        ...     p = gradtx.apply_updates(p, u)
        >>> print(jnp.round(p, 1))  # near the minimum at 1
        [1. 1. 1.]
    """
    if isinstance(update_interval, bool):
        raise TypeError("sophia: update_interval must be a whole number >= 1")
    if clip_threshold is not None:  # None switches clipping off: no annotation can say so
        kit.check_ranges("sophia", clip_threshold=(clip_threshold, "[0, inf)"))
    return chain(
        _scale_by_sophia(b1, b2, eps, gamma, clip_threshold, update_interval,
                         hessian_diagonal_fn, mu_dtype, verbose, print_win_rate_every_n_steps),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )  # fmt: skip


# hutchinson_estimator_diag_hessian is exported by gradtx.contrib (optax's path); it needs
# obj_fn=, so it stays out of the registry's tests, which call update without one.
__all__ = ["HutchinsonState", "SophiaState", "sophia"]
