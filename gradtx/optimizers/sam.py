"""Sharpness-Aware Minimization (Foret et al. 2021): step from the worst point of a small
neighbourhood.  An adversarial optimizer first climbs the loss (ascent steps of size ``rho``
along the normalised gradient, in the paper), then the outer optimizer takes the gradient found
there and applies it to the parameters the climb started from.

optax's generalisation, followed here: any ``adv_optimizer`` climbs for ``sync_period - 1``
steps, any ``optimizer`` descends once per ``sync_period`` steps, either visibly, one call of
``update`` per step (the default, *transparent* mode), or inside one call that evaluates the
gradient itself (*opaque* mode, ``grad_fn=`` given to ``update``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import EmptyState, GradientTransformation, apply_updates, chain
from gradtx.registry import Use, register

Tree = kit.Tree

NormalizeState = EmptyState
"""State of ``normalize`` (it keeps none).  optax: ``optax.contrib.NormalizeState``."""


@register("block", optax="contrib.normalize", traced=None, traits=())
def normalize() -> GradientTransformation:
    """Scales the whole update to unit global norm: ``u = g / ||g||``, with ``||g||`` the L2
    norm over every leaf together (accumulated in at least float32).

    SAM's ascent direction: ``chain(normalize(), sgd(rho))`` as ``adv_optimizer`` climbs
    ``rho`` along ``g / ||g||``.  As in optax there is no epsilon: a zero gradient gives NaN.

    optax: ``optax.contrib.normalize``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.normalize()
        >>> g = {"a": jnp.array([3.0, 0.0], jnp.float32), "b": jnp.array([4.0], jnp.float32)}
        >>> u, _ = tx.update(g, tx.init(g))
        >>> print(u["a"], u["b"])  # divided by the norm of the whole tree, 5
        [0.6 0. ] [0.8]
    """

    def step(updates, state, params, h):
        norm = kit.global_norm(updates)
        return jax.tree.map(lambda g: (g / norm.astype(kit.compute_dtype(g))).astype(g.dtype),
                            updates), state  # fmt: skip

    return kit.block("normalize", step)


@kit.one_counter("steps_since_sync")
class SAMState(NamedTuple):
    """``opt_state``: the outer optimizer's ``ChainState`` (its count counts outer steps);
    ``adv_state``: the adversarial optimizer's; ``cache``: the parameters the current climb
    started from (transparent mode; ``None`` in opaque mode).  optax's ``steps_since_sync`` is
    the chain's count modulo ``sync_period`` here (optax's spelling still constructs)."""

    opt_state: Any
    adv_state: Any
    cache: Tree | None


GradFn = Callable[[Tree, int], Tree]


def _pick(pred: jax.Array, new: Tree, old: Tree) -> Tree:
    return jax.tree.map(lambda n, o: jnp.where(pred, n, o).astype(jnp.result_type(o)), new, old)


def _negated(tree: Tree) -> Tree:
    return jax.tree.map(jnp.negative, tree)


def _like(tree: Tree, like: Tree) -> Tree:
    """``tree`` in ``like``'s dtypes (so both branches of a ``lax.cond`` agree)."""
    return jax.tree.map(lambda x, y: jnp.asarray(x).astype(jnp.result_type(y)), tree, like)


@register(
    optax="contrib.sam",
    traced=None,
    traits=(),
    examples=[
        {
            "optimizer": Use("sgd", {"learning_rate": 0.1}),
            "adv_optimizer": Use("sgd", {"learning_rate": 0.05}),
        },
        {
            "optimizer": Use("adam", {"learning_rate": 0.05}),
            "adv_optimizer": Use("sgd", {"learning_rate": 0.03, "momentum": 0.9}),
            "sync_period": 3,
            "reset_state": False,
        },
        {
            "optimizer": Use("sgd", {"learning_rate": 0.05, "momentum": 0.5}),
            "adv_optimizer": Use("normalize"),
            "sync_period": 4,
        },
    ],
)
def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: kit.Steps = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> GradientTransformation:
    """SAM, Sharpness-Aware Minimization (Foret et al. 2021), around any two optimizers.

    A cycle is ``k = sync_period`` gradients.  With ``w`` the parameters at its start, the
    first ``k - 1`` gradients ``g_i`` drive the adversarial optimizer *uphill*:
    ``w_{i+1} = w_i - adv(g_i)`` (``adv(g) = -rho g / ||g||`` in the paper, so
    ``w_1 = w + rho g / ||g||``); the last gradient ``g_k``, taken at the climbed point, drives
    the outer optimizer from ``w``: ``w <- w + opt(g_k; params=w)``.  The outer optimizer's
    state and counter advance once per cycle.  ``reset_state`` re-initialises the adversarial
    optimizer at the end of each cycle.

    *Transparent* mode (``opaque_mode=False``): one ``update`` per gradient.  The first ``k - 1``
    calls return the ascent steps and the last returns ``w - params + opt(g_k)``, so applying it
    lands on the outer step from ``w``.  *Opaque* mode: each ``update`` runs a whole cycle and
    returns the outer step only; it needs ``grad_fn(params, i)``, the gradient at the ``i``-th
    climbed point (called ``k - 1`` times; ``batch_axis_name`` averages it over that mapped axis
    with ``lax.pmean``).

    Args:
      optimizer: the outer optimizer (the descent step), e.g. ``sgd(lr)``.
      adv_optimizer: the adversarial optimizer; its update is *subtracted*, so a descent
        optimizer climbs: ``chain(normalize(), sgd(rho))`` is the paper's ascent.
      sync_period: ``k``, the gradients per cycle (``1``: the outer optimizer alone).
      reset_state: re-initialise the adversarial optimizer after each cycle.
      opaque_mode: run each whole cycle inside one ``update`` (needs ``grad_fn=``).
      batch_axis_name: opaque mode under ``pmap``/``shard_map``: the axis to average the
        adversarial gradients over.

    optax: ``optax.contrib.sam`` (same arguments and numbers; the adversarial branch and the
    outer branch are selected by ``lax.cond`` instead of computing both; with
    ``sync_period=1`` in transparent mode optax applies each outer step to the parameters of
    the call before, gradtx to the current ones, i.e. plain ``optimizer``).  torch: none.

    Example:
        The paper's SAM on ``L(x) = |x|^2 / 2`` (so ``g = x``), ``rho = 0.5``: the first call
        climbs ``rho g / |g|``, the second steps back and descends with the gradient found up
        there (``g = x + 0.5 x / |x|``), not the one at ``x`` (SGD alone would reach ``[2.7 3.6]``).

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.sam(gradtx.sgd(0.1), gradtx.chain(gradtx.normalize(), gradtx.sgd(0.5)))
        >>> x = jnp.array([3.0, 4.0], jnp.float32)
        >>> state = opt.init(x)
        >>> for _ in range(2):
        ...     updates, state = opt.update(x, state, x)  # the gradient of |x|^2 / 2 is x
        ...     x = gradtx.apply_updates(x, updates)
        ...     print([round(float(u), 4) for u in updates], x)
        [0.3, 0.4] [3.3 4.4]
        [-0.63, -0.84] [2.67 3.56]
    """
    if isinstance(sync_period, bool):
        raise TypeError("sam: sync_period must be a whole number >= 1")
    outer, adversary = chain(optimizer), chain(adv_optimizer)
    period = int(sync_period)

    def init(params):
        return SAMState(
            outer.init(params), adversary.init(params), None if opaque_mode else kit.copy(params)
        )

    def transparent(updates, state, params, h):
        extra = {k: v for k, v in h.extra.items() if k != "grad_fn"}
        phase = h.count % period
        # the parameters this cycle's climb started from: these params on its first call
        start = _pick(phase == 0, params, state.cache)

        def descend(_):
            step, opt_state = outer.update(updates, state.opt_state, start, **extra)
            back = jax.tree.map(lambda w, p, d: (w - p) + d, start, params, step)
            adv_state = adversary.init(params) if reset_state else state.adv_state
            return _like(back, updates), opt_state, _like(adv_state, state.adv_state)

        def ascend(_):
            step, adv_state = adversary.update(updates, state.adv_state, params, **extra)
            return _like(_negated(step), updates), state.opt_state, adv_state

        u, opt_state, adv_state = kit.when(phase == period - 1, descend, ascend, None)
        return u, SAMState(opt_state, adv_state, start)

    def opaque(updates, state, params, h):
        grad_fn: GradFn | None = h.extra.get("grad_fn")
        if grad_fn is None:
            raise ValueError("sam: opaque_mode=True needs update(..., grad_fn=fn(params, i))")
        extra = {k: v for k, v in h.extra.items() if k != "grad_fn"}
        climbed, g, adv_state = params, updates, state.adv_state
        for i in range(period - 1):
            step, adv_state = adversary.update(g, adv_state, climbed, **extra)
            climbed = apply_updates(climbed, _negated(step))
            g = grad_fn(climbed, i)
            if batch_axis_name is not None:
                g = jax.lax.pmean(g, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adversary.init(params)
        u, opt_state = outer.update(g, state.opt_state, params, **extra)
        return u, SAMState(opt_state, adv_state, None)

    return kit.block("sam", opaque if opaque_mode else transparent, init, needs_params=True)


__all__ = ["NormalizeState", "SAMState", "normalize", "sam"]
