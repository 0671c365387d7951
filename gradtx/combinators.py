"""Combinators: run a transformation on part of the parameters, or under conditions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from gradtx.base import Block, GradientTransformation, as_block, transformation

Tree = Any


class MaskedNode(NamedTuple):
    """Stands in for a leaf the inner transformation does not see (an empty pytree node), so
    masked-out parameters carry no optimizer state."""


class MaskedState(NamedTuple):
    inner_state: Any


def _leaf_mask(mask: Tree | Callable[[Tree], Tree], tree: Tree) -> list[bool]:
    """The mask as one Python bool per leaf of ``tree`` (a mask may be a prefix of the tree)."""
    m = mask(tree) if callable(mask) else mask
    try:
        full = jax.tree.map(lambda b, sub: jax.tree.map(lambda _: bool(b), sub), m, tree)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"masked: the mask's tree structure does not match the params/updates: {err}"
        ) from None
    return jax.tree.leaves(full)


def _select(tree: Tree, keep: list[bool]) -> Tree:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([x if k else MaskedNode() for x, k in zip(leaves, keep)])


def masked(inner: GradientTransformation, mask: Tree | Callable[[Tree], Tree]) -> GradientTransformation:
    """Applies ``inner`` only to leaves where ``mask`` is True; other leaves pass through unchanged
    and get no state.  ``mask`` is a tree of bools (or a prefix of the params tree) or a function
    of the params returning one.  optax: ``optax.masked``."""
    block = as_block(inner)

    def init(params):
        return MaskedState(block.init(_select(params, _leaf_mask(mask, params))))

    def update(updates, state, params=None, count=None, **extra):
        keep = _leaf_mask(mask, updates if params is None else params)
        sub_p = None if params is None else _select(params, keep)
        new, inner_state = block.update(
            _select(updates, keep), state.inner_state, sub_p, count=count, **extra
        )
        leaves, treedef = jax.tree.flatten(updates)
        new_leaves = jax.tree.leaves(new, is_leaf=lambda x: isinstance(x, MaskedNode))
        merged = [n if k else x for x, n, k in zip(leaves, new_leaves, keep, strict=True)]
        return treedef.unflatten(merged), MaskedState(inner_state)

    return transformation(Block(init, update))


__all__ = ["MaskedNode", "MaskedState", "masked"]
