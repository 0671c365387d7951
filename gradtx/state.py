"""Reading and changing optimizer state by field name.

A state is a pytree of NamedTuples, tuples and dicts.  ``tree_get(state, "mu")`` finds the field
named ``mu`` wherever it sits (in a chain, a ``masked`` group, a wrapper's inner state), and
``tree_set(state, learning_rate=1e-3)`` returns a copy with it replaced, cast to the old value's
dtype and shape so a jitted step is not retraced.

A name is looked up among NamedTuple fields and mapping keys alike, so a parameter-shaped tree
stored under a field (Adam's ``mu``, Schedule-Free's ``z``) is searched too, and a parameter
named like a field (a bias called ``b1``) is a second candidate.  ``tree_get`` then prefers the
one NamedTuple field among the candidates; ``tree_set`` sets every match, so pass a path there.

Under ``flax.nnx.Optimizer`` the state's arrays are wrapped in Flax variables (``OptArray``):
``tree_set`` keeps the wrapper and replaces its value (cast as above), so the next ``nnx.jit``
step is not retraced and ``.value`` still reads it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import OptState


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


def _is_field(state: OptState, path: tuple[str, ...]) -> bool:
    """Whether the last element of ``path`` names a NamedTuple field (not a mapping key)."""
    parent = _get_path(state, path[:-1])
    return isinstance(parent, tuple) and path[-1] in getattr(parent, "_fields", ())


def tree_get(state: OptState, name: str, default: Any = ...) -> Any:
    """The unique value named ``name`` in a state, e.g. ``tree_get(state, "learning_rate")``.

    Where the name is found more than once and exactly one of the matches is a NamedTuple field
    (the others being keys of dicts, e.g. a parameter named ``b1`` inside a moment tree), that
    field is the answer.  Otherwise raises ``KeyError`` listing the candidates when the name is
    missing (unless ``default`` is given) or ambiguous; use a path ``"0/count"``
    (``/``-separated) to pick one.
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
        fields = [p for p in paths if _is_field(state, p)]
        if len(fields) == 1:
            return _get_path(state, fields[0])
        raise KeyError(
            f"tree_get: {name!r} is ambiguous; candidates: {['/'.join(p) for p in paths]}"
        )
    return _get_path(state, paths[0])


def tree_set(state: OptState, **values: Any) -> OptState:
    """A copy of ``state`` with every field named ``k`` replaced by ``values[k]``.

    Keys may be field names (all matches are set) or ``/``-separated paths.  The new value is
    cast to the old one's dtype and shape so the jitted step is not retraced; a Flax variable
    (``nnx.Optimizer``'s state) keeps its type and metadata and gets the cast value.
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
        if _is_flax_variable(node):
            old = node.get_value()
            new = _cast_like(value, old) if _is_array(old) else value
            return node.replace(new)
        return _cast_like(value, node) if _is_array(node) else value
    if not any(t[: len(path)] == path for t in targets):
        return node
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*(_replace(getattr(node, f), (*path, f), targets) for f in node._fields))
    if isinstance(node, Mapping):
        return type(node)({k: _replace(v, (*path, str(k)), targets) for k, v in node.items()})
    if isinstance(node, list | tuple):
        return type(node)(_replace(v, (*path, str(i)), targets) for i, v in enumerate(node))
    return node


def _is_array(x: Any) -> bool:
    return isinstance(x, jax.Array | np.ndarray | np.generic | float | int)


def _cast_like(value: Any, old: Any) -> jax.Array:
    old = jnp.asarray(old)
    return jnp.broadcast_to(jnp.asarray(value, old.dtype), old.shape)


def _is_flax_variable(node: Any) -> bool:
    """A ``flax.nnx.Variable`` (checked only once Flax is imported: no dependency on it)."""
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(node, nnx.Variable)


__all__ = ["tree_get", "tree_paths", "tree_set"]
