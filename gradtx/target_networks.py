"""Slow copies of a model's parameters, as reinforcement learning's target networks (DQN, DDPG,
SAC) and self-supervised methods' target encoders (BYOL) keep them: ``incremental_update``
(Polyak averaging, a soft update every step) and ``periodic_update`` (a hard copy every
``update_period`` steps).

Both are functions of two parameter trees, called in the training step next to the optimizer;
the target keeps its own dtypes.  optax: ``optax.incremental_update``, ``optax.periodic_update``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx import kit

Tree = Any


def _is_none(x: Any) -> bool:
    return x is None


def incremental_update(new_tensors: Tree, old_tensors: Tree, step_size: Any) -> Tree:
    """Polyak averaging: ``step_size * new + (1 - step_size) * old``, leaf by leaf.

    ``step_size`` is ``tau`` of a soft target update (``0.005`` in SAC/DDPG): 1 copies ``new``,
    0 keeps ``old``, both exactly.  Each result keeps ``old``'s dtype (an array ``step_size``
    in a wider dtype does not widen the target); ``None`` leaves of ``new`` stay ``None``.

    Args:
      new_tensors: the online parameters.
      old_tensors: the target (averaged) parameters, of the same structure.
      step_size: ``tau`` in ``[0, 1]``, a number or an array (e.g. traced under ``jit``).

    optax: ``optax.incremental_update`` (same arguments; its result takes the promoted dtype).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> online, target = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([0.0, 0.0])}
        >>> target = gradtx.incremental_update(online, target, step_size=0.25)
        >>> print(target["w"])
        [0.25 0.5 ]
    """
    kit.check_ranges("incremental_update", step_size=(step_size, "[0, 1]"))

    def leaf(new, old):
        if new is None:
            return None
        dt = jnp.result_type(old)
        tau = kit.scalar(step_size, jnp.zeros([], kit.compute_dtype(old)))
        return (tau * new + (1 - tau) * old).astype(dt)

    return jax.tree.map(leaf, new_tensors, old_tensors, is_leaf=_is_none)


def periodic_update(new_tensors: Tree, old_tensors: Tree, steps: Any, update_period: Any) -> Tree:
    """A hard copy every ``update_period`` steps: ``new`` when ``steps % update_period == 0``,
    else ``old`` (as ``jax.lax.cond`` selects it, so ``steps`` may be traced).

    Args:
      new_tensors: the online parameters.
      old_tensors: the target parameters, of the same structure and dtypes.
      steps: the number of online updates so far (e.g. the optimizer's ``state.count``).
      update_period: the period ``K >= 1`` of the copies.

    optax: ``optax.periodic_update`` (same arguments).

    Example:
        DQN's target network, refreshed every 2 steps (at steps 0, 2, 4...):

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> target = jnp.zeros(1)
        >>> for step in range(1, 4):
        ...     online = jnp.full(1, float(step))
        ...     target = gradtx.periodic_update(online, target, step, update_period=2)
        ...     print(step, target)
        1 [0.]
        2 [2.]
        3 [2.]
    """
    kit.check_ranges("periodic_update", update_period=(update_period, "[1, inf)"))
    due = jnp.asarray(steps) % update_period == 0
    if isinstance(due, jax.core.Tracer):
        return jax.lax.cond(due, lambda: new_tensors, lambda: old_tensors)
    # eager: the same checks and result as the cond, without compiling a fresh one per call
    new_avals, old_avals = jax.tree.map(_aval, new_tensors), jax.tree.map(_aval, old_tensors)
    if new_avals != old_avals:
        raise TypeError(
            f"periodic_update: new and old tensors must have the same structure, shapes and "
            f"dtypes, got {new_avals} and {old_avals}"
        )
    return jax.tree.map(jnp.asarray, new_tensors if due else old_tensors)


def _aval(x: Any) -> tuple[tuple[int, ...], Any]:
    return jnp.shape(x), jnp.result_type(x)


__all__ = ["incremental_update", "periodic_update"]
