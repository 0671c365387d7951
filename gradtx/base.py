"""The core protocol: a gradient transformation is a pair of pure functions.

``init(params) -> state`` builds the optimizer state (a pytree of NamedTuples of arrays) and
``update(updates, state, params=None, **extra) -> (updates, state)`` turns gradients into parameter
deltas.  ``apply_updates`` adds the deltas.  ``chain`` and ``named_chain`` compose transformations;
the composed state is an ordinary pytree (a tuple, or a dict keyed by name) that ``tree_get`` and
``tree_set`` navigate by field name.

The tuple ``(init, update)`` is structurally the same as optax's ``GradientTransformation``, so a
gradtx transformation is accepted wherever an optax one is (Flax ``nnx.Optimizer``, ``TrainState``,
``optax.chain``) and an optax transformation can be a member of a gradtx chain.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

PyTree = Any
Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.Array], jax.Array]
"""A function from the step number (int32 array, counted from 0) to a scalar value."""
ScalarOrSchedule = float | jax.Array | Schedule


class InitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class UpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra: Any
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """An optimizer or a building block: ``init(params) -> state`` and
    ``update(updates, state, params=None, **extra) -> (updates, state)``.

    ``extra`` carries optional keyword inputs some transformations use (``value=`` the loss, for
    reduce-on-plateau and line searches).  Every gradtx transformation accepts and ignores the ones
    it does not use, so ``nnx.Optimizer.update(model, grads, value=loss)`` works with any of them.
    """

    init: InitFn
    update: UpdateFn


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


def init_empty_state(params: Params) -> EmptyState:
    """``init`` of a stateless block: ignores ``params``, returns ``EmptyState()``."""
    del params
    return EmptyState()


def identity() -> GradientTransformation:
    """Leaves updates unchanged: ``u -> u``.  optax: ``optax.identity``."""
    return stateless(lambda updates, params: updates)


def stateless(fn: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    """A transformation with no state from ``fn(updates, params) -> updates``."""

    def update(updates, state, params=None, count=None, **extra):
        return fn(updates, params), state

    return transformation(Block(init_empty_state, update))


def apply_updates(params: Params, updates: Updates) -> Params:
    """``p + u`` leaf by leaf, keeping each parameter's dtype (``None`` leaves stay ``None``).

    optax: ``optax.apply_updates``; torch: the in-place ``p.add_(u)`` of ``optimizer.step()``.
    """
    return jax.tree.map(
        lambda p, u: None if p is None else (p + u).astype(jnp.result_type(p)),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def _takes_extra(update: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(update)
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def with_extra_args(tx: GradientTransformation) -> GradientTransformation:
    """Makes ``tx.update`` accept (and drop) keyword arguments it does not declare.

    Needed only for foreign transformations (e.g. a plain optax one); ``chain`` applies it itself.
    """
    if _takes_extra(tx.update):
        return tx

    def update(updates, state, params=None, **extra):
        del extra
        return tx.update(updates, state, params)

    return GradientTransformation(tx.init, update)


# --- blocks and the one step counter ------------------------------------------------------------


class BlockUpdateFn(Protocol):
    def __call__(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None,
        count: jax.Array,
        **extra: Any,
    ) -> tuple[Updates, OptState]: ...


class Block(NamedTuple):
    """A building block: like a transformation, but its ``update`` also receives ``count``, the
    number of steps the enclosing optimizer has completed (int32, 0 on the first update).

    Blocks keep no step counter of their own: the transformation around them (``chain``,
    ``named_chain`` or a lone block made public by ``transformation``) keeps exactly one, so a
    schedule, a bias correction and a noise decay in one optimizer all read the same step.
    """

    init: InitFn
    update: BlockUpdateFn


class ChainState(NamedTuple):
    """State of every gradtx transformation: one step counter plus its blocks' states
    (a tuple for ``chain``, a dict for ``named_chain``)."""

    count: jax.Array
    inner: Any


_BLOCKS = "_gradtx_blocks"


def blocks_of(tx: GradientTransformation | Block) -> tuple[Block, ...] | None:
    """The blocks a gradtx transformation is made of (``None`` for a foreign transformation)."""
    if isinstance(tx, Block):
        return (tx,)
    return getattr(tx.update, _BLOCKS, None)


def as_block(tx: GradientTransformation | Block) -> Block:
    """One block that runs ``tx``, driven by the enclosing counter.

    A gradtx transformation's blocks share the caller's ``count`` (its own counter is dropped); a
    foreign (e.g. optax) transformation keeps its own state and ignores ``count``.
    """
    if isinstance(tx, Block):
        return tx
    parts = blocks_of(tx)
    if parts is None:
        foreign = with_extra_args(tx)

        def foreign_update(updates, state, params=None, count=None, **extra):
            del count
            return foreign.update(updates, state, params, **extra)

        return Block(foreign.init, foreign_update)
    if len(parts) == 1:
        return parts[0]

    def init(params):
        return tuple(b.init(params) for b in parts)

    def update(updates, state, params=None, count=None, **extra):
        return _run(parts, updates, state, params, count, extra)

    return Block(init, update)


def _run(parts, updates, states, params, count, extra):
    new = []
    for i, (b, s) in enumerate(zip(parts, states, strict=True)):
        try:
            updates, s = b.update(updates, s, params, count=count, **extra)
        except AttributeError as err:  # a field missing from the state: another optimizer's state
            raise ValueError(
                f"chain: member {i} could not use its state ({type(s).__name__}): {err}. "
                f"Was this state made by this optimizer's init?"
            ) from err
        new.append(s)
    return updates, tuple(new)


def _flatten(txs: tuple[GradientTransformation | Block, ...]) -> tuple[Block, ...]:
    out: list[Block] = []
    for t in txs:
        parts = blocks_of(t)
        out.extend(parts if parts is not None else (as_block(t),))
    return tuple(out)


def _counted(parts: tuple[Block, ...], init_inner, run_inner, where: str) -> GradientTransformation:
    """The public transformation around ``parts``: owns the one step counter."""

    def init(params):
        return ChainState(zero_count(), init_inner(params))

    def update(updates, state, params=None, **extra):
        _expect_chain_state(where, state, len(parts) if where == "chain" else None)
        updates, inner = run_inner(updates, state.inner, params, state.count, extra)
        return updates, ChainState(increment(state.count), inner)

    return with_blocks(GradientTransformation(init, update), parts)


def with_blocks(tx: GradientTransformation, blocks: tuple[Block, ...]) -> GradientTransformation:
    """Declares how ``tx`` runs inside a gradtx chain: as ``blocks``, on the chain's counter.

    Every chain does this for itself.  A transformation whose own state is not a ``ChainState``
    (e.g. ``inject_hyperparams``) uses it so that nesting it in a chain adds no second counter.
    """
    setattr(tx.update, _BLOCKS, tuple(blocks))
    return tx


def chain(*txs: GradientTransformation | Block) -> GradientTransformation:
    """Applies transformations in order: ``update = t_n ∘ ... ∘ t_1``.  optax: ``optax.chain``.

    Nested gradtx chains are flattened into one list of blocks, so the result has exactly one step
    counter: ``state.count``.  Its state is ``ChainState(count, inner=(block states...))``.
    Foreign (optax) members keep their own state and are called without gradtx's extras.
    """
    parts = _flatten(txs)
    return _counted(
        parts,
        lambda params: tuple(b.init(params) for b in parts),
        lambda u, s, p, count, extra: _run(parts, u, s, p, count, extra),
        "chain",
    )


def transformation(block: Block) -> GradientTransformation:
    """The public transformation of a single block (a chain of one)."""
    return chain(block)


def named_chain(*pairs: tuple[str, GradientTransformation | Block]) -> GradientTransformation:
    """Like ``chain`` but ``state.inner`` is a dict ``{name: member state}``, so
    ``state.inner["adam"]`` holds that member's moments.  optax: ``optax.named_chain``.
    """
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: names must be unique, got {names}")
    members = tuple(as_block(t) for _, t in pairs)

    def init(params):
        return {n: b.init(params) for n, b in zip(names, members, strict=True)}

    def update(updates, state, params=None, count=None, **extra):
        if not isinstance(state, Mapping) or set(state) != set(names):
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"named_chain: expected member states {names}, got {got}")
        states = tuple(state[n] for n in names)
        updates, new = _run(members, updates, states, params, count, extra)
        return updates, dict(zip(names, new, strict=True))

    named = Block(init, update)
    return _counted(
        (named,), init, lambda u, s, p, count, extra: update(u, s, p, count, **extra), "named_chain"
    )


def _expect_chain_state(where: str, state: Any, n: int | None) -> None:
    if not isinstance(state, ChainState) or (n is not None and len(state.inner) != n):
        got = type(state).__name__
        if isinstance(state, ChainState):
            got += f" with {len(state.inner)} member states"
        want = "" if n is None else f" with {n} member states"
        raise ValueError(
            f"{where}: expected ChainState(count, inner){want}, got {got}; "
            f"was this state made by this optimizer's init?"
        )


def zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the int32 maximum rather than wrapping negative."""
    top = jnp.iinfo(jnp.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)


# --- navigating state by name -------------------------------------------------------------------


def _named_children(node: Any) -> list[tuple[str, Any]]:
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return [(f, getattr(node, f)) for f in node._fields]
    if isinstance(node, Mapping):
        return [(str(k), v) for k, v in node.items()]
    if isinstance(node, list | tuple):
        return [(str(i), v) for i, v in enumerate(node)]
    return []


def tree_paths(state: OptState, name: str) -> list[tuple[str, ...]]:
    """All paths (tuples of field names/keys/indices) in ``state`` whose last element is ``name``.

    NamedTuple fields and mapping keys are searched, descending into nested states but not into
    the parameter-shaped trees stored under a field.
    """
    found: list[tuple[str, ...]] = []

    def walk(node, path):
        for key, child in _named_children(node):
            if key == name:
                found.append((*path, key))
            elif _is_state_node(child):
                walk(child, (*path, key))

    walk(state, ())
    return found


def _is_state_node(node: Any) -> bool:
    # descend into state containers: NamedTuples, chain tuples and named_chain / hyperparam dicts
    return isinstance(node, tuple | Mapping)


def _get_path(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        node = dict(_named_children(node))[key]
    return node


def tree_get(state: OptState, name: str, default: Any = ...) -> Any:
    """The unique value named ``name`` in a state, e.g. ``tree_get(state, "learning_rate")``.

    Raises ``KeyError`` listing the candidates when the name is missing (unless ``default`` is
    given) or ambiguous; use a path ``"0/count"`` (``/``-separated) to pick one.
    """
    if "/" in name:
        try:
            return _get_path(state, tuple(name.split("/")))
        except KeyError:
            if default is not ...:
                return default
            raise KeyError(f"tree_get: no path {name!r} in state") from None
    paths = tree_paths(state, name)
    if not paths:
        if default is not ...:
            return default
        raise KeyError(f"tree_get: no field named {name!r} in state")
    if len(paths) > 1:
        raise KeyError(
            f"tree_get: {name!r} is ambiguous; candidates: {['/'.join(p) for p in paths]}"
        )
    return _get_path(state, paths[0])


def tree_set(state: OptState, **values: Any) -> OptState:
    """A copy of ``state`` with every field named ``k`` replaced by ``values[k]``.

    Keys may be field names (all matches are set) or ``/``-separated paths.  The new value is
    cast to the old one's dtype and shape so the jitted step is not retraced.
    """
    targets: dict[tuple[str, ...], Any] = {}
    for key, value in values.items():
        paths = [tuple(key.split("/"))] if "/" in key else tree_paths(state, key)
        if not paths:
            raise KeyError(f"tree_set: no field named {key!r} in state")
        for p in paths:
            targets[p] = value
    return _replace(state, (), targets)


def _replace(node: Any, path: tuple[str, ...], targets: dict[tuple[str, ...], Any]) -> Any:
    if path in targets:
        value = targets[path]
        if isinstance(node, jax.Array | float | int):
            old = jnp.asarray(node)
            return jnp.broadcast_to(jnp.asarray(value, old.dtype), old.shape)
        return value
    if not any(t[: len(path)] == path for t in targets):
        return node
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*(_replace(getattr(node, f), (*path, f), targets) for f in node._fields))
    if isinstance(node, Mapping):
        return type(node)({k: _replace(v, (*path, str(k)), targets) for k, v in node.items()})
    if isinstance(node, list | tuple):
        return type(node)(_replace(v, (*path, str(i)), targets) for i, v in enumerate(node))
    return node


__all__ = [
    "Block",
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "OptState",
    "Params",
    "ScalarOrSchedule",
    "Schedule",
    "Updates",
    "apply_updates",
    "as_block",
    "blocks_of",
    "chain",
    "identity",
    "init_empty_state",
    "named_chain",
    "stateless",
    "transformation",
    "tree_get",
    "tree_paths",
    "tree_set",
    "with_blocks",
    "with_extra_args",
]
