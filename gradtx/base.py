"""The core protocol: a gradient transformation is a pair of pure functions.

``init(params) -> state`` builds the optimizer state (a pytree of NamedTuples of arrays) and
``update(updates, state, params=None, **extra) -> (updates, state)`` turns gradients into parameter
deltas; ``apply_updates`` adds the deltas.

A gradtx transformation is a ``Chain``: a tuple ``(init, update)`` like optax's (so Flax's
``nnx.Optimizer``, ``TrainState`` and ``optax.chain`` accept it) that also records, as data, the
``Block``s it runs.  Blocks keep no step counter; the chain around them keeps exactly one, so a
schedule, a bias correction and a noise decay in one optimizer all read the same step.  Nested
chains flatten into one list of blocks, so ``chain(adam, clip)`` still has one counter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

PyTree = Any
Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.Array], jax.Array]
"""A function from the step number (an integer array, counted from 0) to a scalar value."""
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
    optax: ``optax.GradientTransformation`` (same two fields).
    """

    init: InitFn
    update: UpdateFn


class EmptyState(NamedTuple):
    """State of a stateless block.  optax: ``optax.EmptyState``."""


def init_empty_state(params: Params) -> EmptyState:
    """``init`` of a stateless block: ignores ``params``, returns ``EmptyState()``."""
    del params
    return EmptyState()


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
    number of steps the enclosing chain has completed (int32, 0 on the first update).

    ``gradtx.kit.block`` writes one from a per-step function; ``Chain`` runs blocks in order.
    """

    init: InitFn
    update: BlockUpdateFn


class ChainState(NamedTuple):
    """State of a gradtx transformation: the one step counter and its blocks' states (a tuple
    for ``chain``, a dict for ``named_chain``).

    Reads the way optax's chain state does: ``state[i]`` is the i-th member's state
    (``state["name"]`` for ``named_chain``) and, for a transformation of one block, that block's
    fields are read directly (``MultiSteps``' ``state.mini_step``, ``masked``'s
    ``state.inner_state``).  It is still the pytree ``(count, inner)``: iterating or flattening
    it gives those two, and ``gradtx.tree_get(state, name)`` finds any field.
    """

    count: jax.Array
    inner: Any

    def __getitem__(self, key: Any) -> Any:
        return self.inner[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        members = self.inner if isinstance(self.inner, tuple) else ()
        if len(members) == 1:
            return getattr(members[0], name)
        raise AttributeError(
            f"ChainState has no field {name!r}: a chain's state is ChainState(count, inner) with "
            f"one state per member; read it with gradtx.tree_get(state, {name!r}) or, as in "
            f"optax, state[i].{name} for member i"
        )


def zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the int32 maximum rather than wrapping negative."""
    top = jnp.iinfo(jnp.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)


def _run(blocks: Sequence[Block], updates, states, params, count, extra) -> tuple[Any, tuple]:
    """Runs ``blocks`` in order on their ``states``; returns the updates and the new states."""
    new = []
    for i, (b, s) in enumerate(zip(blocks, states, strict=True)):
        try:
            updates, s = b.update(updates, s, params, count=count, **extra)
        except AttributeError as err:  # a field missing from the state: another optimizer's
            raise ValueError(
                f"chain: member {i} could not use its state ({type(s).__name__}): {err}. "
                f"Was this state made by this optimizer's init?"
            ) from err
        new.append(s)
    return updates, tuple(new)


def _sequence(blocks: tuple[Block, ...]) -> Block:
    """One block running ``blocks`` in order; its state is the tuple of their states."""

    def init(params):
        return tuple(b.init(params) for b in blocks)

    def update(updates, state, params=None, count=None, **extra):
        return _run(blocks, updates, state, params, count, extra)

    return Block(init, update)


def _counted(inner: Block, where: str, members: int | None) -> GradientTransformation:
    """``inner`` as a transformation owning the step counter: state ``ChainState(count, ...)``."""

    def init(params):
        return ChainState(zero_count(), inner.init(params))

    def update(updates, state, params=None, **extra):
        ok = isinstance(state, ChainState) and (members is None or len(state.inner) == members)
        if not ok:
            got = type(state).__name__
            if isinstance(state, ChainState):
                got += f" with {len(state.inner)} member states"
            want = "" if members is None else f" with {members} member states"
            raise ValueError(
                f"{where}: expected ChainState(count, inner){want}, got {got}; "
                f"was this state made by this optimizer's init?"
            )
        updates, new = inner.update(updates, state.inner, params, count=state.count, **extra)
        return updates, ChainState(increment(state.count), new)

    return GradientTransformation(init, update)


class Chain(GradientTransformation):
    """A gradtx transformation: the tuple ``(init, update)``, plus ``blocks``, the building
    blocks it runs in order under its one step counter.

    On its own its state is ``ChainState(count, inner=(block states...))``.  Inside another
    chain it contributes its ``blocks``, which run on that chain's counter.  A transformation
    whose own state has another layout (``inject_hyperparams`` keeps its hyperparameters at the
    top) passes ``init``/``update`` for running on its own, and still lists its blocks.
    """

    blocks: tuple[Block, ...]

    def __new__(
        cls,
        blocks: Sequence[Block],
        *fields: Any,
        init: InitFn | None = None,
        update: UpdateFn | None = None,
    ) -> Chain:
        if fields or not isinstance(blocks, Sequence):
            # rebuilt from its (init, update) fields (jax.tree.map over a transformation): the
            # blocks are not known any more, so it is a plain transformation
            return GradientTransformation(blocks, *fields)  # type: ignore[return-value]
        blocks = tuple(blocks)
        if not all(isinstance(b, Block) for b in blocks):
            raise TypeError(f"Chain: expected a sequence of Blocks, got {blocks!r}")
        if init is None or update is None:
            init, update = _counted(_sequence(blocks), "chain", len(blocks))
        self = super().__new__(cls, init, update)
        self.blocks = blocks
        return self

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:  # copy and pickle
        return (self.blocks,), {"init": self.init, "update": self.update}

    @classmethod
    def _make(cls, iterable: Any) -> GradientTransformation:  # type: ignore[override]
        # a replaced init or update no longer runs the recorded blocks
        return GradientTransformation(*iterable)


def blocks_of(tx: GradientTransformation | Block) -> tuple[Block, ...] | None:
    """The blocks a gradtx transformation is made of (``None`` for a foreign transformation)."""
    if isinstance(tx, Block):
        return (tx,)
    return tx.blocks if isinstance(tx, Chain) else None


GradientTransformationExtraArgs = GradientTransformation
"""optax's name for a transformation whose ``update`` takes extra keywords: every gradtx one."""


def with_extra_args(tx: GradientTransformation) -> GradientTransformation:
    """Makes ``tx.update`` accept (and drop) keyword arguments it does not declare.

    Needed only for foreign transformations (e.g. a plain optax one); ``chain`` applies it itself.
    """
    try:
        params = inspect.signature(tx.update).parameters.values()
    except (TypeError, ValueError):
        return tx
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return tx

    def update(updates, state, params=None, **extra):
        del extra
        return tx.update(updates, state, params)

    return GradientTransformation(tx.init, update)


with_extra_args_support = with_extra_args
"""optax's name for ``with_extra_args``."""


def as_block(tx: GradientTransformation | Block) -> Block:
    """One block that runs ``tx``, driven by the enclosing counter.

    A gradtx transformation's blocks share the caller's ``count`` (its own counter is dropped); a
    foreign (e.g. optax) transformation keeps its own state and ignores ``count``.
    """
    parts = blocks_of(tx)
    if parts is not None:
        return parts[0] if len(parts) == 1 else _sequence(parts)
    foreign = with_extra_args(tx)

    def init(params):
        BLOCK_INITS[0] += 1
        return foreign.init(params)

    def update(updates, state, params=None, count=None, **extra):
        del count
        return foreign.update(updates, state, params, **extra)

    return Block(init, update)


BLOCK_INITS = [0]
"""How many block ``init`` calls have run (a trace-time tally): a block whose ``init`` ran no
inner block's transforms the params itself (``kit.block`` checks their dtypes then); a wrapper
(masked, multi_transform, lookahead, ...) leaves that to its members."""


def transformation(block: Block) -> Chain:
    """The public transformation of a single block (a chain of one)."""
    return Chain((block,))


def chain(*txs: GradientTransformation | Block) -> Chain:
    """Applies transformations in order: ``update = t_n ∘ ... ∘ t_1``.  optax: ``optax.chain``.

    Nested gradtx chains are flattened into one list of blocks, so the result has exactly one step
    counter: ``state.count``.  Its state is ``ChainState(count, inner=(block states...))``.
    Foreign (optax) members keep their own state and are called without gradtx's extras.
    """
    parts: list[Block] = []
    for t in txs:
        parts.extend(blocks_of(t) or (as_block(t),))
    return Chain(parts)


def named_chain(*pairs: tuple[str, GradientTransformation | Block]) -> Chain:
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
    own_init, own_update = _counted(named, "named_chain", None)
    return Chain((named,), init=own_init, update=own_update)


def stateless(f: Callable[[Updates, Params | None], Updates]) -> Chain:
    """A transformation with no state from ``f(updates, params) -> updates``: on its own its
    ``init`` returns ``EmptyState()`` and its ``update`` takes any state (``None`` too); in a
    chain it is one block.  optax: ``optax.stateless``."""

    def block_update(updates, state, params=None, count=None, **extra):
        return f(updates, params), state

    def update(updates, state, params=None, **extra):
        return f(updates, params), state

    return Chain((Block(init_empty_state, block_update),), init=init_empty_state, update=update)


def stateless_with_tree_map(f: Callable[[jax.Array, jax.Array | None], jax.Array]) -> Chain:
    """``stateless`` of a per-leaf ``f(g, p) -> u`` (``p`` is ``None`` when ``update`` gets no
    params).  optax: ``optax.stateless_with_tree_map``."""

    def per_tree(updates, params):
        if params is None:
            return jax.tree.map(lambda g: f(g, None), updates)
        return jax.tree.map(f, updates, params)

    return stateless(per_tree)


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


__all__ = [
    "Block",
    "Chain",
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "OptState",
    "Params",
    "ScalarOrSchedule",
    "Schedule",
    "Updates",
    "apply_updates",
    "as_block",
    "blocks_of",
    "chain",
    "init_empty_state",
    "named_chain",
    "stateless",
    "stateless_with_tree_map",
    "transformation",
    "with_extra_args",
    "with_extra_args_support",
]
