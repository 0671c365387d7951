"""Combinators that give different parameters different treatment: ``masked`` (a transformation
on some leaves only), ``multi_transform``/``partition`` (one transformation per labelled group,
torch's ``param_groups``), ``freeze``/``set_to_zero``/``selective_transform`` (no update at all).

Masks and labels are given as a tree with the params' structure (or a prefix of it), or as a
function of the params returning one; ``gradtx.paths`` builds such functions from path patterns.
A tree that does not line up with the params structurally is matched by path instead, so a plain
dict mask also works for a ``flax.nnx.State`` (whose ``nnx.Param`` variables count as leaves).

Every group runs as a block under the enclosing optimizer's one step counter, and a leaf outside
a group is replaced by an empty ``MaskedNode`` in what the group sees, so it gets no state and
costs no computation there.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import kit, paths
from gradtx.base import Block, GradientTransformation, as_block, stateless

Tree = Any
Spec = Any
"""A tree of values per parameter (or a prefix of the params tree), or a function
``params -> such a tree``."""
Labeller = Callable[[Tree], list[Any]]

_SHOWN = 6


class MaskedNode(NamedTuple):
    """Stands in for a leaf a transformation does not see (an empty pytree node), so that leaf
    carries no optimizer state.  optax: ``optax.MaskedNode``."""


class MaskedState(NamedTuple):
    """State of ``masked``: the inner transformation's state over the selected leaves."""

    inner_state: Any


class PartitionState(NamedTuple):
    """State of ``multi_transform``: ``{label: state of that label's transformation}``, each over
    its own leaves only.  optax: ``optax.PartitionState``."""

    inner_states: dict[Hashable, Any]


MultiTransformState = PartitionState


# --- one value per leaf from a mask or label spec ----------------------------------------------


def _show(items: list[Any]) -> str:
    head = ", ".join(repr(x) for x in items[:_SHOWN])
    return f"[{head}{', ...' if len(items) > _SHOWN else ''}] ({len(items)} in all)"


def _describe(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a {value.dtype} array of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _by_structure(given: Tree, tree: Tree) -> list[Any]:
    """``given``'s value for each leaf of ``tree`` when ``given`` is a structural prefix of it
    (raises jax's ValueError otherwise)."""
    out: list[Any] = []
    jax.tree.map(lambda value, sub: out.extend([value] * len(jax.tree.leaves(sub))), given, tree)
    return out


def _is_empty(x: Any) -> bool:
    return x is None or (isinstance(x, dict | list | tuple) and len(x) == 0)


def _empty_segments(tree: Tree) -> list[paths.Segments]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_empty)
    return [paths.segments(kp) for kp, x in flat if _is_empty(x)]


def _by_path(where: str, what: str, given: Tree, tree: Tree) -> list[Any]:
    """``given``'s value for each leaf of ``tree``, matching paths: a leaf takes the entry at its
    own path or at the closest enclosing path.  Used when the structures differ (a dict mask
    for an ``nnx.State``, a list for a tuple)."""
    entries = dict(zip(paths.leaf_segments(given), jax.tree.leaves(given), strict=True))
    leaf_segs = paths.leaf_segments(tree)
    out, used = [], set()
    for segs in leaf_segs:
        hit = next((segs[:k] for k in range(len(segs), -1, -1) if segs[:k] in entries), None)
        if hit is None:
            found = (
                f"the {what} has entries for {_show([paths.join(s) for s in entries])}"
                if entries
                else f"the {what} has no entries (it is {_describe(given)})"
            )
            raise ValueError(
                f"{where}: the {what} tree does not match the params: expected an entry for "
                f"parameter {paths.join(segs)!r}, found none; {found}; the params have leaves "
                f"{_show([paths.join(s) for s in leaf_segs])}. Give a tree with the params' "
                f"structure (or a prefix of it), or a function of the params such as "
                f"gradtx.paths.match(...)."
            )
        used.add(hit)
        out.append(entries[hit])
    empty = _empty_segments(tree)
    stray = [
        s
        for s in entries
        if s not in used and not any(s[: len(e)] == e or e[: len(s)] == s for e in empty)
    ]
    if stray:
        raise ValueError(
            f"{where}: the {what} tree does not match the params: its entry "
            f"{paths.join(stray[0])!r} matches no parameter; the params have leaves "
            f"{_show([paths.join(s) for s in leaf_segs])}"
        )
    return out


def _per_leaf(where: str, what: str, spec: Spec, tree: Tree) -> list[Any]:
    """The value ``spec`` assigns to each leaf of ``tree`` (in ``jax.tree.leaves`` order)."""
    given = spec(tree) if callable(spec) else spec
    try:
        return _by_structure(given, tree)
    except (ValueError, TypeError):
        return _by_path(where, what, given, tree)


def _mask_leaves(where: str, mask: Spec, tree: Tree) -> list[bool]:
    values = _per_leaf(where, "mask", mask, tree)
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool | np.bool_) or (
            isinstance(v, np.ndarray | jax.Array)
            and not isinstance(v, jax.core.Tracer)
            and v.shape == ()
            and v.dtype == bool
        ):
            out.append(bool(v))
            continue
        path = paths.leaf_paths(tree)[i]
        hint = (
            " (a traced value: the mask decides which leaves get state, so it must be known "
            "when the function is traced)"
            if isinstance(v, jax.core.Tracer)
            else ""
        )
        raise ValueError(
            f"{where}: expected a bool in the mask for parameter {path!r}, found "
            f"{_describe(v)}{hint}"
        )
    return out


def _label_leaves(where: str, spec: Spec, tree: Tree, known: Mapping[Hashable, Any]) -> list:
    values = _per_leaf(where, "labels", spec, tree)
    bad = []
    for i, v in enumerate(values):
        try:
            ok = v in known
        except TypeError:  # unhashable, e.g. an array
            ok = False
        if not ok:
            bad.append(i)
    if bad:
        leaf_paths = paths.leaf_paths(tree)
        shown = {leaf_paths[i]: values[i] for i in bad[:_SHOWN]}
        raise ValueError(
            f"{where}: expected every parameter's label to be one of {list(known)!r} (the keys of "
            f"transforms); {len(bad)} parameter(s) have labels with no transformation: {shown!r}"
        )
    return values


# --- running groups on disjoint parts of the tree ----------------------------------------------


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside gradtx."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _split(tree: Tree, keep: list[bool]) -> Tree:
    """``tree`` with the leaves not kept replaced by ``MaskedNode()``."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([x if k else MaskedNode() for x, k in zip(leaves, keep, strict=True)])


def _split_like(value: Any, updates: Tree, keep: list[bool]) -> Any:
    """``value`` split like the updates when it has their structure (a per-parameter extra such
    as a second gradient), else unchanged."""
    if jax.tree.structure(value) == jax.tree.structure(updates):
        return _split(value, keep)
    return value


def _groups_block(
    where: str,
    blocks: Mapping[Hashable, Block],
    labeller: Labeller,
    warn_unused: bool,
    mask_extra: bool = False,
) -> Block:
    """A block that runs ``blocks[label]`` on the leaves ``labeller`` gives that label; leaves
    with a label that is not a key pass through.  State: ``{label: that block's state}``.
    ``mask_extra``: extra keyword arguments shaped like the updates are split like them."""

    def init(params):
        labels = labeller(params)
        if warn_unused:
            missing = [g for g in blocks if g not in labels]
            if missing:
                warnings.warn(
                    f"{where}: no parameter is labelled {missing!r}, so "
                    f"{'that transformation is' if len(missing) == 1 else 'those are'} never "
                    f"applied; labels found: {sorted(set(labels), key=repr)}",
                    UserWarning,
                    stacklevel=_user_stacklevel(),
                )
        return {g: b.init(_split(params, [lab == g for lab in labels])) for g, b in blocks.items()}

    def update(updates, state, params=None, count=None, **extra):
        if not isinstance(state, Mapping) or set(state) != set(blocks):
            got = sorted(map(repr, state)) if isinstance(state, Mapping) else _describe(state)
            raise ValueError(
                f"{where}: expected a state with one entry per label {list(blocks)!r}, found "
                f"{got}; was this state made by this optimizer's init?"
            )
        labels = labeller(updates)
        leaves, treedef = jax.tree.flatten(updates)
        if params is not None and len(jax.tree.leaves(params)) != len(leaves):
            raise ValueError(
                f"{where}: params and updates must have the same leaves; found "
                f"{len(jax.tree.leaves(params))} params and {len(leaves)} updates"
            )
        out, new_state = list(leaves), {}
        for g, block in blocks.items():
            keep = [lab == g for lab in labels]
            sub = _split(updates, keep)
            sub_params = None if params is None else _split(params, keep)
            sub_extra = (
                {k: _split_like(v, updates, keep) for k, v in extra.items()}
                if (mask_extra)
                else extra
            )
            new, new_state[g] = block.update(sub, state[g], sub_params, count=count, **sub_extra)
            try:
                # leaf positions of the incoming updates; a MaskedNode that was already there
                # (an enclosing mask) is an empty node of treedef and is skipped
                new_leaves = treedef.flatten_up_to(new)
            except (ValueError, TypeError) as err:
                raise ValueError(
                    f"{where}: the transformation for {g!r} returned updates whose structure "
                    f"differs from its input's: {err}"
                ) from None
            out = [n if k else o for o, n, k in zip(out, new_leaves, keep, strict=True)]
        return treedef.unflatten(out), new_state

    return Block(init, update)


def _masked(
    where: str, inner: GradientTransformation | Block, mask: Spec, mask_extra: bool = False
) -> GradientTransformation:
    group = _groups_block(
        where, {True: as_block(inner)}, lambda t: _mask_leaves(where, mask, t), False, mask_extra
    )

    def init(params):
        return MaskedState(group.init(params)[True])

    def step(updates, state, params, h):
        if not isinstance(state, MaskedState):
            raise ValueError(f"{where}: expected a MaskedState, found {_describe(state)}")
        inner = {True: state.inner_state}
        u, new = group.update(updates, inner, params, count=h.count, **h.extra)
        return u, MaskedState(new[True])

    return kit.block(where, step, init)


def masked(
    inner: GradientTransformation | Block,
    mask: Spec,
    *,
    mask_compatible_extra_args: bool = False,
    name: str | None = None,
) -> GradientTransformation:
    """Applies ``inner`` to the leaves where ``mask`` is True; the others pass through unchanged
    and get no state (``MaskedNode`` in the inner state).

    ``mask`` is a tree of bools with the params' structure or a prefix of it (one bool for a
    whole subtree, or a single bool for everything), or a function ``params -> such a tree``
    (called with the params at init and the updates at update), e.g.
    ``gradtx.paths.match("kernel")``.  With ``mask_compatible_extra_args``, extra keyword
    arguments of ``update`` shaped like the updates are masked the same way before ``inner``
    sees them.  ``name`` labels error messages (default ``"masked"``).
    State: ``MaskedState(inner_state)``.  optax: ``optax.masked``.
    """
    where = "masked" if name is None else f"masked({name})"
    return _masked(where, inner, mask, mask_compatible_extra_args)


def _partition_tx(
    where: str,
    blocks: Mapping[Hashable, Block],
    labeller: Labeller,
    warn_unused: bool,
    mask_extra: bool = False,
) -> GradientTransformation:
    group = _groups_block(where, blocks, labeller, warn_unused, mask_extra)

    def init(params):
        return PartitionState(group.init(params))

    def step(updates, state, params, h):
        if not isinstance(state, PartitionState):
            raise ValueError(f"{where}: expected a PartitionState, found {_describe(state)}")
        u, new = group.update(updates, state.inner_states, params, count=h.count, **h.extra)
        return u, PartitionState(new)

    return kit.block(where, step, init)


def _partition(
    where: str,
    transforms: Mapping[Hashable, GradientTransformation | Block],
    param_labels: Spec,
    mask_extra: bool = False,
) -> GradientTransformation:
    if not isinstance(transforms, Mapping) or not transforms:
        raise ValueError(
            f"{where}: transforms must be a non-empty mapping {{label: transformation}}, found "
            f"{_describe(transforms)}"
        )
    try:
        sorted(transforms)  # the state is a dict keyed by label, and jax sorts dict keys
    except TypeError:
        raise ValueError(
            f"{where}: the labels must be sortable together (e.g. all strings), found "
            f"{list(transforms)!r}"
        ) from None
    blocks = {label: as_block(tx) for label, tx in transforms.items()}
    labeller = lambda t: _label_leaves(where, param_labels, t, blocks)
    return _partition_tx(where, blocks, labeller, True, mask_extra)


def multi_transform(
    transforms: Mapping[Hashable, GradientTransformation | Block],
    param_labels: Spec,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """A different transformation per group of parameters (torch: ``param_groups``).

    ``param_labels`` gives each parameter a label: a tree of labels with the params' structure
    (or a prefix of it), or a function ``params -> such a tree`` such as
    ``gradtx.paths.labels({"no_decay": ["bias", "*norm*"], "default": "**"})``.  The leaves
    labelled ``k`` are updated by ``transforms[k]``, whose state covers only those leaves.  A
    label with no transformation is an error naming the parameters; a transformation no parameter
    is labelled with triggers a ``UserWarning`` at init (it is legal: a generic recipe may not
    apply to every model).  All groups share the optimizer's one step counter.  With
    ``mask_compatible_extra_args``, extra ``update`` arguments shaped like the updates are split
    by group too.  State: ``PartitionState(inner_states={label: state})``.
    optax: ``optax.multi_transform`` / ``optax.partition``.
    """
    return _partition("multi_transform", transforms, param_labels, mask_compatible_extra_args)


def partition(
    transforms: Mapping[Hashable, GradientTransformation | Block],
    param_labels: Spec,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """``multi_transform`` under optax's newer name.  optax: ``optax.partition``."""
    return _partition("partition", transforms, param_labels, mask_compatible_extra_args)


def set_to_zero() -> GradientTransformation:
    """``u = 0`` for every leaf; no state.  optax: ``optax.set_to_zero``."""
    return stateless(lambda updates, params: jax.tree.map(jnp.zeros_like, updates))


def freeze(mask: Spec) -> GradientTransformation:
    """Zero updates (frozen parameters) where ``mask`` is True, the updates unchanged elsewhere;
    no state.  ``mask`` as in ``masked``, e.g. ``freeze(gradtx.paths.match("/encoder"))``.
    Chain it before an optimizer and the frozen leaves still get optimizer state (fed zero
    gradients); use ``selective_transform`` to give them none.  optax: ``optax.freeze``.
    """
    return _masked("freeze", set_to_zero(), mask)


def selective_transform(
    optimizer: GradientTransformation | Block, *, freeze_mask: Spec
) -> GradientTransformation:
    """``optimizer`` on the leaves where ``freeze_mask`` is False; zero updates and no state on
    the others.  State: ``PartitionState({"train": ..., "freeze": EmptyState()})``.
    optax: ``optax.selective_transform``.
    """
    where = "selective_transform"
    blocks = {"train": as_block(optimizer), "freeze": as_block(set_to_zero())}

    def labeller(tree):
        return ["freeze" if m else "train" for m in _mask_leaves(where, freeze_mask, tree)]

    return _partition_tx(where, blocks, labeller, False)


__all__ = [
    "MaskedNode",
    "MaskedState",
    "MultiTransformState",
    "PartitionState",
    "freeze",
    "masked",
    "multi_transform",
    "partition",
    "selective_transform",
    "set_to_zero",
]
