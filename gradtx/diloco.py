"""DiLoCo: distributed low-communication training (Douillard et al. 2023, "DiLoCo: Distributed
Low-Communication Training of Language Models").

``M`` workers share a mesh axis.  Each keeps its own copy of the parameters and its own inner
optimizer state, and takes ``H`` inner steps on its own data shard without communicating.  Then
comes one outer step, the only communication of the round (one all-reduce of the parameters)::

    theta_i <- theta                                   every worker starts the round at theta
    repeat H times on worker i:  theta_i <- theta_i + inner(grad L_i(theta_i))
    Delta   = theta - mean_i theta_i                   the outer gradient
    theta   <- theta + outer(Delta)                    (paper: Nesterov SGD, lr 0.7, momentum 0.9)

after which every worker restarts from the new ``theta``, keeping its inner optimizer state
(AdamW's moments and step count carry over from round to round).  With ``outer = sgd(1.0)`` this
is local SGD / periodic parameter averaging (``gradtx.parallel.local_sgd`` with
``average_state=False``).

``diloco(inner, axis, every)`` is that rule as one gradient transformation of per-worker params,
in the style of ``gradtx.parallel.local_sgd``: use it wherever ``axis`` is a named axis that
``jax.lax.pmean`` can reduce over (``jax.shard_map`` over a mesh axis, ``jax.pmap``, or
``jax.vmap(..., axis_name=...)`` to simulate the workers on one device).  The state holds, per
worker, the inner state, ``theta`` (``global_params``) and the outer state; the last two are the
same on every worker.  The round's last inner update is replaced by ``theta_new - theta_i``, so
``apply_updates`` lands every worker on the new global parameters (up to the last bit of the
``p + (theta_new - p)`` round trip).  The training loop on a mesh, with
``gradtx.parallel.per_replica`` (a leading worker dimension split over ``axis``) and
``gradtx.parallel.local_sgd_step`` (shard_map: each device steps its copy on its batch slice)::

    import gradtx
    from gradtx import parallel
    from gradtx.diloco import diloco

    mesh = jax.make_mesh((8,), ("data",))
    tx = diloco(gradtx.adamw(4e-4, weight_decay=0.1), "data", every=500)
    params_w = parallel.per_replica(params, mesh)                 # (8, ...) one copy per worker
    state_w = parallel.per_replica(tx.init(params), mesh)
    step = parallel.local_sgd_step(loss_fn, tx, mesh)             # jit(shard_map(...))
    for outer_round in range(rounds):
        for h in range(500):                                      # no communication but the
            params_w, state_w, loss = step(params_w, state_w, next(batches))   # last step's
    theta = gradtx.tree_get(state_w, "global_params")             # (8, ...), rows identical

(``local_sgd_step`` reports the loss averaged over workers, a scalar all-reduce per step; the
parameters are only all-reduced at the end of each round.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradtx import kit
from gradtx.base import Block, GradientTransformation, apply_updates, as_block
from gradtx.optimizers.sgd import sgd

Tree = kit.Tree


class DiLoCoState(NamedTuple):
    """``inner_state``: this worker's inner optimizer state; ``global_params``: ``theta``, the
    parameters every worker started the current round from; ``outer_state``: the outer
    optimizer's state (its momentum).  The last two are identical on every worker."""

    inner_state: Any
    global_params: Tree
    outer_state: Any


def _outer_gradient(theta: Tree, local: Tree, axis: str) -> Tree:
    """``theta - mean over the workers of local``, averaged and subtracted in at least float32
    (a bfloat16 average would round the small parameter change away), in ``theta``'s dtypes."""

    def one(t, p):
        wide = kit.compute_dtype(t, p)
        return (t.astype(wide) - jax.lax.pmean(p.astype(wide), axis)).astype(t.dtype)

    return jax.tree.map(one, theta, local)


@kit.validated
def diloco(
    inner: GradientTransformation | Block,
    axis: str,
    every: kit.Steps,
    outer: GradientTransformation | Block | None = None,
) -> GradientTransformation:
    """DiLoCo on per-worker params: ``inner`` steps on each worker and, after every ``every``-th
    step, the outer step on the averaged parameter change::

        theta_i <- theta_i + inner(g_i)                                   every step
        Delta    = theta - mean_i theta_i                               after steps H, 2H, ...
        theta    <- theta + outer(Delta);   theta_i <- theta

    The inner optimizer sees the chain's step count (its state is never reset); the outer one
    counts rounds.  Use inside ``shard_map``/``pmap``/``vmap`` over the named ``axis``.

    Args:
      inner: each worker's optimizer (the paper: AdamW).
      axis: the named axis of the workers.
      every: ``H``, the inner steps per round (the paper: 500).
      outer: the outer optimizer, fed ``Delta`` as its gradient; default
        ``gradtx.sgd(0.7, momentum=0.9, nesterov=True)`` as in the paper.  ``gradtx.sgd(1.0)``
        gives plain periodic averaging (local SGD).

    optax: none (optax has no multi-worker transformation); torch: none.

    Example:
        Four workers simulated with ``jax.vmap``, each pulled towards its own target; one round
        of two SGD steps ends with every worker on the same (outer-stepped) parameters:

        >>> import jax, jax.numpy as jnp
        >>> import gradtx
        >>> from gradtx.diloco import diloco
        >>> tx = diloco(gradtx.sgd(0.5), "w", every=2, outer=gradtx.sgd(1.0))
        >>> targets = jnp.array([0.0, 1.0, 2.0, 3.0])
        >>> def step(x, state, target):
        ...     u, state = tx.update(x - target, state, x)  # the gradient of (x - target)²/2
        ...     return gradtx.apply_updates(x, u), state
        >>> x = jnp.zeros(4)
        >>> state = jax.vmap(tx.init)(x)
        >>> for _ in range(2):
        ...     x, state = jax.vmap(step, axis_name="w")(x, state, targets)
        >>> print(x)  # each worker alone reached 0.75 * target; their mean is 0.75 * 1.5
        [1.125 1.125 1.125 1.125]
    """
    inner_block = as_block(inner)
    outer_block = as_block(sgd(0.7, momentum=0.9, nesterov=True) if outer is None else outer)

    def init(params: Tree) -> DiLoCoState:
        return DiLoCoState(inner_block.init(params), kit.copy(params), outer_block.init(params))

    def step(updates, state, params, h):
        u, inner_state = inner_block.update(
            updates, state.inner_state, params, count=h.count, **h.extra
        )

        def outer_step(u, theta, outer_state):
            delta = _outer_gradient(theta, apply_updates(params, u), axis)
            v, outer_state = outer_block.update(delta, outer_state, theta, count=h.count // every)
            theta = apply_updates(theta, v)
            to_theta = jax.tree.map(lambda t, p: (t - p).astype(p.dtype), theta, params)
            return to_theta, theta, outer_state

        if every == 1:
            u, theta, outer_state = outer_step(u, state.global_params, state.outer_state)
        else:
            u, theta, outer_state = kit.when(
                (h.count + 1) % every == 0,
                outer_step,
                lambda *keep: keep,
                u,
                state.global_params,
                state.outer_state,
            )
        return u, DiLoCoState(inner_state, theta, outer_state)

    return kit.block("diloco", step, init, needs_params=True)


__all__ = ["DiLoCoState", "diloco"]
