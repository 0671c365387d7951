"""Beyond one device: where optimizer state lives and how gradients are combined.

Three layouts for a mesh with a data axis of ``N`` devices, all expressed as shardings handed to
``jax.jit`` (XLA inserts the collectives; nothing here talks to devices by hand):

- replicated: params and state on every device; the batch is split along ``axis``.
- ZeRO-1 (``zero1_layout``): params replicated, each optimizer-state leaf split along ``axis`` on
  its leading dimension, so each device keeps ``1/N`` of the moments.  Gradients are reduced
  to the same split, the update is computed on the local slice and the new params are
  all-gathered.  Leaves whose leading dimension is not a multiple of ``N`` (and
  scalars) stay replicated: no padding, so shapes and checkpoints are unchanged.
- FSDP (``fsdp_layout``): params sharded too; every state leaf follows the sharding of the
  parameter it belongs to (``state_shardings``).

``state_shardings`` works for any transformation (chains, ``masked``, wrappers, foreign ones): it
matches the state tree from ``jax.eval_shape(tx.init, params)`` against the params tree, so a
parameter-shaped subtree takes the params' shardings and everything else (step counters, norms,
keys) is replicated.

``data_parallel_step`` is synchronous data parallelism written with ``jax.shard_map``, and
``local_sgd`` averages per-replica params (and optionally state) every ``k`` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding, Sharding
from jax.sharding import PartitionSpec as P

from gradtx import kit
from gradtx.base import (
    GradientTransformation,
    OptState,
    Params,
    apply_updates,
    as_block,
)

Tree = Any
LossFn = Callable[[Params, Any], jax.Array]
"""``loss_fn(params, batch) -> scalar``: the mean loss over the examples of ``batch``."""


# --- shardings of params and state ----------------------------------------------------------------


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that puts a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def shard_leading(tree: Tree, mesh: Mesh, axis: str = "data") -> Tree:
    """One ``NamedSharding`` per leaf of ``tree``: split along ``axis`` on the leading dimension
    when that dimension is a positive multiple of the axis size, else replicated (scalars, odd
    sizes).  ``tree`` may hold arrays or ``jax.ShapeDtypeStruct``s."""
    n = mesh.shape[axis]

    def one(x):
        shape = jnp.shape(x)
        split = len(shape) > 0 and shape[0] > 0 and shape[0] % n == 0
        return NamedSharding(mesh, P(axis) if split else P())

    return jax.tree.map(one, tree)


def _mesh_of(shardings: Tree) -> Mesh | None:
    for s in jax.tree.leaves(shardings):
        if isinstance(s, NamedSharding):
            return s.mesh
    return None


def _replicated_like(shardings: Tree, mesh: Mesh | None) -> Sharding:
    """A fully replicated sharding over the devices ``shardings`` use (for scalar state)."""
    mesh = mesh or _mesh_of(shardings)
    if mesh is not None:
        return replicated(mesh)
    for s in jax.tree.leaves(shardings):
        if s.is_fully_replicated:
            return s
    raise ValueError(
        "state_shardings: cannot build a replicated sharding from these param shardings; "
        "pass mesh=..."
    )


def _is_leaf(node: Any) -> bool:
    """True for an array-like leaf; False for ``None`` and empty containers (no leaves at all)."""
    return jax.tree.structure(node).num_leaves == 1 and jax.tree.leaves(node) == [node]


def _match_params(node: Any, params_def: Any, shapes: list, shardings: list) -> list | None:
    """The shardings of ``node`` if it is a parameter-shaped subtree, else ``None``.

    ``node`` is parameter-shaped when the params' tree structure is a prefix of it and every
    position holds either an array of the param's shape (it takes the param's sharding) or an
    empty subtree (e.g. ``masked``'s placeholder for a parameter it leaves out).  At least one
    position must hold an array.  Returns the per-position list (sharding or the empty subtree).
    """
    try:
        parts = params_def.flatten_up_to(node)
    except (ValueError, TypeError):
        return None
    out, arrays = [], 0
    for part, shape, sharding in zip(parts, shapes, shardings, strict=True):
        if _is_leaf(part) and tuple(jnp.shape(part)) == tuple(shape):
            out.append(sharding)
            arrays += 1
        elif not jax.tree.leaves(part):
            out.append(part)
        else:
            return None
    return out if arrays else None


def state_shardings(
    tx: GradientTransformation,
    params: Params,
    param_shardings: Tree | None = None,
    *,
    mesh: Mesh | None = None,
) -> Tree:
    """The sharding of every leaf of ``tx.init(params)``, for ``jax.jit(..., out_shardings=)``.

    A state subtree laid out like the params (a moment, a trace, ``masked``'s inner moments)
    takes ``param_shardings`` (default: each param's own ``.sharding``) leaf for leaf; any other
    leaf (step counter, clipping norm, PRNG key, a factored moment of another shape) is
    replicated.  Derived from ``jax.eval_shape(tx.init, params)`` and the tree structure alone, so
    it needs no knowledge of the transformation.  Without it, jit in Auto mode replicates the
    state, because ``zeros_like(param)`` does not depend on the param's data.
    """
    if param_shardings is None:
        param_shardings = jax.tree.map(lambda x: x.sharding, params)
    abstract = jax.eval_shape(tx.init, params)
    leaves, params_def = jax.tree.flatten(params)
    shapes = [jnp.shape(x) for x in leaves]
    shardings = params_def.flatten_up_to(param_shardings)
    fallback = _replicated_like(param_shardings, mesh)

    def assign(node):
        found = _match_params(node, params_def, shapes, shardings)
        if found is not None:
            return params_def.unflatten(found)
        if node is None:
            return None
        if _is_leaf(node):
            return fallback
        children, node_def = jax.tree.flatten(node, is_leaf=lambda x: x is not node)
        return node_def.unflatten([assign(c) for c in children])

    return assign(abstract)


def abstract_like(tree: Tree, shardings: Tree) -> Tree:
    """``jax.ShapeDtypeStruct``s with ``tree``'s shapes and dtypes and the given ``shardings``:
    an orbax restore target that loads straight into that layout (e.g. for params)."""
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
    )


def abstract_state(tx: GradientTransformation, params: Params, shardings: Tree) -> Tree:
    """``abstract_like`` for the state ``tx.init(params)`` (computed abstractly, no arrays)."""
    return abstract_like(jax.eval_shape(tx.init, params), shardings)


def bytes_per_device(tree: Tree) -> dict[Any, int]:
    """Bytes of ``tree``'s arrays held by each (addressable) device: ``{device: bytes}``."""
    total: dict[Any, int] = {}
    for x in jax.tree.leaves(tree):
        for shard in x.addressable_shards:
            total[shard.device] = total.get(shard.device, 0) + shard.data.nbytes
    return total


# --- layouts and the jit-compiled step ------------------------------------------------------------


class Layout(NamedTuple):
    """Where each part of a training step lives (trees of shardings).

    ``params`` and ``state`` mirror the params and the optimizer state; ``updates`` mirrors the
    params and says where gradients are reduced to and the update is computed; ``batch`` is one
    sharding applied to every leaf of the batch (split on the leading, example dimension).
    """

    params: Tree
    state: Tree
    updates: Tree
    batch: NamedSharding


def _layout(
    tx: GradientTransformation, params: Params, mesh: Mesh, axis: str, where: Tree, updates: Tree
) -> Layout:
    """The layout with params at ``where`` and gradients, updates and state at ``updates`` (the
    state always lives where the update is computed)."""
    state = state_shardings(tx, params, updates, mesh=mesh)
    return Layout(where, state, updates, NamedSharding(mesh, P(axis)))


def _everywhere(params: Params, mesh: Mesh) -> Tree:
    return jax.tree.map(lambda _: replicated(mesh), params)


def replicated_layout(
    tx: GradientTransformation, params: Params, mesh: Mesh, axis: str = "data"
) -> Layout:
    """Plain data parallelism: params, state and updates on every device."""
    everywhere = _everywhere(params, mesh)
    return _layout(tx, params, mesh, axis, everywhere, everywhere)


def zero1_layout(
    tx: GradientTransformation, params: Params, mesh: Mesh, axis: str = "data"
) -> Layout:
    """ZeRO-1: params replicated; state and updates split along ``axis`` (``shard_leading``).

    Each device gets its slice of the summed gradient (XLA CPU all-reduces and slices; backends
    with a reduce-scatter use it), updates its slice of the moments and params, and the new
    params are all-gathered.
    """
    split = shard_leading(params, mesh, axis)
    return _layout(tx, params, mesh, axis, _everywhere(params, mesh), split)


def fsdp_layout(
    tx: GradientTransformation,
    params: Params,
    mesh: Mesh,
    axis: str = "data",
    param_shardings: Tree | None = None,
) -> Layout:
    """FSDP: params sharded (``param_shardings``, default ``shard_leading`` along ``axis``) and
    every state leaf follows its parameter's sharding."""
    split = shard_leading(params, mesh, axis) if param_shardings is None else param_shardings
    return _layout(tx, params, mesh, axis, split, split)


def constrain(tree: Tree, shardings: Tree) -> Tree:
    """Inside jit: ``tree`` laid out as ``shardings``; a hint to XLA on an Auto mesh, an explicit
    ``reshard`` on an Explicit one (where a sharding constraint may only assert)."""

    def one(x, sharding):
        explicit = AxisType.Explicit in getattr(sharding.mesh, "axis_types", ())
        if explicit:
            return jax.sharding.reshard(x, sharding)
        return jax.lax.with_sharding_constraint(x, sharding)

    return jax.tree.map(one, tree, shardings)


def sharded_init(tx: GradientTransformation, layout: Layout) -> Callable[[Params], OptState]:
    """``tx.init`` compiled to produce the state directly in ``layout.state``."""
    return jax.jit(tx.init, in_shardings=(layout.params,), out_shardings=layout.state)


def sharded_step(
    loss_fn: LossFn, tx: GradientTransformation, layout: Layout, *, donate: bool = True
) -> Callable[[Params, OptState, Any], tuple[Params, OptState, jax.Array]]:
    """``step(params, state, batch) -> (params, state, loss)`` compiled for ``layout``.

    The loss is the mean over the whole (global) batch; XLA partitions the computation from the
    shardings.  Gradients and params are constrained to ``layout.updates`` before the optimizer
    runs, which is where ZeRO-1 reduces the gradients to each device's slice and keeps the
    update there; the new params are then constrained back to ``layout.params``.  Works on Auto
    and Explicit meshes (for FSDP on an Explicit mesh the model itself must be written for
    sharded params).  ``donate`` lets the step reuse the params' and state's buffers: place
    params with a copy (``jax.device_put`` may alias a buffer you still hold).
    """

    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        grads = constrain(grads, layout.updates)
        local = constrain(params, layout.updates)  # ZeRO-1: this device's slice, no communication
        updates, state = tx.update(grads, state, local)
        new = constrain(apply_updates(local, updates), layout.params)  # ZeRO-1: the all-gather
        return new, state, loss

    return jax.jit(
        step,
        in_shardings=(layout.params, layout.state, layout.batch),
        out_shardings=(layout.params, layout.state, replicated(layout.batch.mesh)),
        donate_argnums=(0, 1) if donate else (),
    )


# --- data parallelism with shard_map --------------------------------------------------------------


def data_parallel_value_and_grad(
    loss_fn: LossFn, axis: str = "data"
) -> Callable[[Params, Any], tuple[jax.Array, Params]]:
    """Inside ``shard_map``: ``(params, local_batch) -> (loss, grads)`` of the loss averaged over
    all devices of ``axis`` (equal batch slices make that the global mean).

    The average is taken on the loss, before differentiating.  With shard_map's varying-axes
    check the gradient w.r.t. replicated params already comes back summed over ``axis``, so the
    common ``pmean`` of local gradients would scale them by the device count (SGD diverges;
    Adam hides it because it is scale-invariant).
    """

    def global_loss(params, batch):
        return jax.lax.pmean(loss_fn(params, batch), axis)

    return jax.value_and_grad(global_loss)


def data_parallel_step(
    loss_fn: LossFn,
    tx: GradientTransformation,
    mesh: Mesh,
    axis: str = "data",
    *,
    donate: bool = True,
) -> Callable[[Params, OptState, Any], tuple[Params, OptState, jax.Array]]:
    """Synchronous data parallelism: ``step(params, state, batch) -> (params, state, loss)``.

    Params and state are replicated; each device takes its slice of the batch (leading
    dimension), gradients are averaged over ``axis`` and every device applies the same update.
    """
    grad_fn = data_parallel_value_and_grad(loss_fn, axis)

    def local(params, state, batch):
        loss, grads = grad_fn(params, batch)
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state, loss

    mapped = jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(), P(axis)), out_specs=(P(), P(), P())
    )
    return jax.jit(mapped, donate_argnums=(0, 1) if donate else ())


# --- local SGD: per-replica steps, periodic averaging ---------------------------------------------


def _average(tree: Tree, axis: str) -> Tree:
    """Mean over ``axis`` of every float leaf, still typed as varying (other leaves unchanged)."""

    def one(x):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        return jax.lax.pcast(jax.lax.pmean(x, axis), axis, to="varying")

    return jax.tree.map(one, tree)


def local_sgd(
    tx: GradientTransformation, axis: str, every: int, *, average_state: bool = False
) -> GradientTransformation:
    """Local SGD / periodic model averaging; use inside ``shard_map`` over ``axis`` with
    per-replica params (``local_sgd_step``).

    Each replica runs ``tx`` on its own gradients; after every ``every``-th step the update is
    replaced by ``mean_over_replicas(p + u) - p``, so ``apply_updates`` lands every replica on the
    averaged params; with ``average_state`` the float state leaves are averaged too.  The step
    count is the enclosing chain's one counter (this wraps ``tx`` as a block).  With
    ``every=1``, SGD (with or without momentum and ``average_state``) equals synchronous data
    parallelism; for a non-linear optimizer such as Adam it is parameter averaging, not gradient
    averaging.  The ``p + (avg - p)`` round trip may differ from ``avg`` in the last bit.
    """
    if every < 1:
        raise ValueError(f"local_sgd: every={every} must be >= 1")
    inner = as_block(tx)

    def step(updates, state, params, h):
        updates, state = inner.update(updates, state, params, count=h.count, **h.extra)

        def synced(u, s):
            avg = _average(apply_updates(params, u), axis)
            u = jax.tree.map(lambda a, p: (a - p).astype(p.dtype), avg, params)
            return u, _average(s, axis) if average_state else s

        sync = (h.count + 1) % every == 0
        return kit.when(sync, synced, lambda u, s: (u, s), updates, state)

    return kit.block("local_sgd", step, inner.init, needs_params=True)


def per_replica(tree: Tree, mesh: Mesh, axis: str = "data") -> Tree:
    """One copy of every leaf per device of ``axis``: leaves get a new leading dimension of the
    axis size, split along ``axis`` (the input layout of ``local_sgd_step``)."""
    n = mesh.shape[axis]
    where = NamedSharding(mesh, P(axis))
    return jax.tree.map(
        lambda x: jax.device_put(jnp.broadcast_to(x, (n, *jnp.shape(x))), where), tree
    )


def local_sgd_step(
    loss_fn: LossFn,
    tx: GradientTransformation,
    mesh: Mesh,
    axis: str = "data",
    *,
    donate: bool = True,
) -> Callable[[Params, OptState, Any], tuple[Params, OptState, jax.Array]]:
    """``step(params, state, batch) -> (params, state, loss)`` with per-replica params and state
    (``per_replica``): each device steps on its slice of the batch with its own copy; ``tx`` is
    usually ``local_sgd(...)``, which does the averaging.  The loss is the mean over devices."""

    def local(params, state, batch):
        params, state = _unstack(params), _unstack(state)
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = tx.update(grads, state, params)
        params = apply_updates(params, updates)
        return _stack(params), _stack(state), jax.lax.pmean(loss, axis)

    mapped = jax.shard_map(
        local, mesh=mesh, in_specs=(P(axis), P(axis), P(axis)), out_specs=(P(axis), P(axis), P())
    )
    return jax.jit(mapped, donate_argnums=(0, 1) if donate else ())


def _unstack(tree: Tree) -> Tree:
    """Drops the per-replica leading dimension (of size 1 inside ``shard_map``)."""
    return jax.tree.map(lambda x: x[0], tree)


def _stack(tree: Tree) -> Tree:
    return jax.tree.map(lambda x: x[None], tree)


__all__ = [
    "Layout",
    "abstract_like",
    "abstract_state",
    "bytes_per_device",
    "constrain",
    "data_parallel_step",
    "data_parallel_value_and_grad",
    "fsdp_layout",
    "local_sgd",
    "local_sgd_step",
    "per_replica",
    "replicated",
    "replicated_layout",
    "shard_leading",
    "sharded_init",
    "sharded_step",
    "state_shardings",
    "zero1_layout",
]
