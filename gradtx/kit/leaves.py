"""The per-leaf map with the dtype rule (``leafwise``, ``map_state``) and the checks that trees
which must line up do (``check_match``, ``need_params``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.kit.numerics import Tree

# --- the per-leaf map and the dtype rule ------------------------------------------------------


def _widened(fn: Callable[..., tuple]) -> Callable[..., tuple]:
    """``fn`` computed in the widest of float32 and its inputs' dtypes, outputs cast back to the
    matching inputs' dtypes; ``keep`` rounds new state through the stored dtypes."""

    def call(*args: jax.Array) -> tuple:
        stored = [jnp.result_type(a) for a in args]
        k = jnp.promote_types(jnp.float32, jnp.result_type(*args))
        same = all(dt == k for dt in stored) or jnp.issubdtype(k, jnp.complexfloating)
        if same:
            outs = fn(*args, keep=lambda *xs: xs)
        else:

            def keep(*xs: jax.Array | None) -> tuple:
                dts = stored[1:] + [k] * len(xs)  # values beyond the state inputs stay as they are
                return tuple(
                    x if x is None else x.astype(dt).astype(k)
                    for x, dt in zip(xs, dts, strict=False)
                )

            outs = fn(*(a.astype(k) for a in args), keep=keep)
        return tuple(
            o if o is None or i >= len(stored) else o.astype(stored[i]) for i, o in enumerate(outs)
        )

    return call


def leafwise(
    where: str,
    fn: Callable[..., tuple],
    n_out: int,
    tree: Tree,
    *rest: Tree,
    names: tuple[str, ...] | None = None,
    widen: bool = False,
) -> tuple:
    """``fn`` on matching leaves of ``tree`` and ``rest``; returns ``n_out`` trees.

    One call per leaf keeps a leaf's whole arithmetic in one expression, so XLA fuses it and
    shares no temporaries across leaves.  ``widen=True`` computes each leaf in the widest of
    float32 and its inputs' dtypes when they are not all one dtype of at least float32, casts
    output ``i`` back to input ``i``'s dtype, and passes ``fn`` a keyword ``keep(*new_state)``
    that rounds new state values through their stored dtypes (the inputs after the first).
    Mismatched trees raise an error naming ``where``, the tree (from ``names``, default
    ``state[i]``) and the first differing path.
    """
    for i, r in enumerate(rest):
        check_match(where, "updates", tree, names[i] if names else f"state[{i}]", r)
    leaves, treedef = jax.tree.flatten(tree)
    others = [jax.tree.leaves(r) for r in rest]
    call = _widened(fn) if widen else fn
    outs = [call(*args) for args in zip(leaves, *others, strict=True)]
    return tuple(treedef.unflatten([o[k] for o in outs]) for k in range(n_out))


def map_state(
    where: str,
    fn: Callable[..., tuple[jax.Array, NamedTuple]],
    updates: Tree,
    state: NamedTuple,
    *others: Tree,
    widen: bool = True,
) -> tuple[Tree, NamedTuple]:
    """``fn(g, s, *o, keep=...) -> (u, new_s)`` on every leaf; returns ``(updates, new_state)``.

    ``state`` is a NamedTuple of trees shaped like ``updates``; ``s`` and ``new_s`` are the same
    NamedTuple holding one leaf's values; ``others`` (e.g. the params) are read-only.
    ``keep(new_s)`` rounds the new state to its stored dtypes (see ``leafwise``): use the kept
    value to compute the update, so it matches what the next step will read.  Rounding one
    field at a time is ``s = keep(s._replace(mu=...))``.  ``u`` and
    ``new_s`` are cast back to the dtypes of ``g`` and ``s``.
    """
    cls, n = type(state), len(state)

    def leaf(g, *args, keep=None):
        old = cls(*args[:n])
        done = list(old)  # values already as stored: the inputs, and what keep returned

        def rounded(s):
            if keep is None:
                return s
            fresh = keep(*(None if any(x is d for d in done) else x for x in s))
            out = cls(*(x if f is None else f for x, f in zip(s, fresh, strict=True)))
            done.extend(out)
            return out

        u, new = fn(g, old, *args[n:], keep=rounded)
        return (u.astype(g.dtype), *(x.astype(o.dtype) for x, o in zip(new, old, strict=True)))

    names = (*state._fields, *(f"others[{i}]" for i in range(len(others))))
    if not widen:
        inner = leaf
        leaf = lambda *args: inner(*args, keep=None)
    out = leafwise(where, leaf, 1 + n, updates, *state, *others, names=names, widen=widen)
    return out[0], cls(*out[1:])


# --- checks ------------------------------------------------------------------------------------


def _paths(tree: Tree) -> list[str]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in flat]


def check_match(where: str, a_name: str, a: Tree, b_name: str, b: Tree) -> None:
    """Raises a ValueError naming ``where`` and the first differing path when two trees that must
    line up (e.g. updates and a moment) do not: structure first, then leaf shapes.

    Runs at trace time only, so it costs nothing inside a compiled step.
    """
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    if ta != tb:
        pa, pb = _paths(a), _paths(b)
        first = next(
            (i for i, (x, y) in enumerate(zip(pa, pb, strict=False)) if x != y),
            min(len(pa), len(pb)),
        )
        at_a = pa[first] if first < len(pa) else "<nothing>"
        at_b = pb[first] if first < len(pb) else "<nothing>"
        raise ValueError(
            f"{where}: {a_name} and {b_name} have different tree structures "
            f"({len(pa)} vs {len(pb)} leaves); first difference at leaf {first}: "
            f"{a_name} has {at_a!r}, {b_name} has {at_b!r}. "
            f"Did you pass the state of another optimizer or params of another model?"
        )
    for i, (x, y) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)):
        if np.shape(x) != np.shape(y):
            raise ValueError(
                f"{where}: {a_name} and {b_name} differ in shape at {_paths(a)[i]!r}: "
                f"{np.shape(x)} vs {np.shape(y)}"
            )


def need_params(where: str, params: Tree | None) -> None:
    """Raises the error every block that reads the parameters gives when they are missing."""
    if params is None:
        raise ValueError(f"{where}: update needs params (pass params=...)")
