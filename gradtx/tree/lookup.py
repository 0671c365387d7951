"""Finding and replacing values in a pytree by name (optax.tree's ``get``, ``set``,
``get_all_with_path``, ``map_params``)."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable
from typing import Any

import jax

Tree = Any
KeyPath = tuple[Any, ...]
Filter = Callable[[KeyPath, Any], bool]

# --- finding and replacing values by name --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A path entry for field ``name`` of a NamedTuple of class ``tuple_name``, in the paths
    ``get_all_with_path`` returns and ``filtering`` receives (``str``: ``"Tuple.name"``).
    optax: ``optax.tree_utils.NamedTupleKey``."""

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _has_key(node: Any, keys: tuple) -> bool:
    if _is_namedtuple(node):
        return type(node).__name__ in keys or any(k in node._fields for k in keys)
    return isinstance(node, dict) and any(k in node for k in keys)


def _named_children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]]:
    if _is_namedtuple(node):
        cls = type(node).__name__
        return [((*path, NamedTupleKey(cls, f)), getattr(node, f)) for f in node._fields]
    return [((*path, jax.tree_util.DictKey(k)), v) for k, v in node.items()]


def _children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]] | None:
    """The direct children of a pytree node with their paths; ``None`` for a leaf."""
    if _is_namedtuple(node):
        return _named_children(path, node)
    flat, treedef = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:
        return None
    return [((*path, *p), child) for p, child in flat]


def _frontier(node: Any, stop: Callable[[Any], bool], path: KeyPath = ()) -> list:
    """``(path, node)`` of every leaf, or of every node ``stop`` accepts (not entered)."""
    kids = None if stop(node) else _children(path, node)
    if kids is None:
        return [(path, node)]
    return [item for p, child in kids for item in _frontier(child, stop, p)]


def _find(tree: Tree, key: Any) -> list[tuple[KeyPath, Any]]:
    has = lambda n: _has_key(n, (key,))
    hits = [(p, n) for p, n in _frontier(tree, has) if has(n)]
    found = [_value_at(p, n, key) for p, n in hits]
    for p, n in hits:  # matches nested below a match
        for cp, child in _named_children(p, n):
            found.extend(((*cp, *q), v) for q, v in _find(child, key))
    return found


def _value_at(path: KeyPath, node: Any, key: Any) -> tuple[KeyPath, Any]:
    if not _is_namedtuple(node):
        return (*path, jax.tree_util.DictKey(key)), node[key]
    if type(node).__name__ == key:  # the tuple itself, by its class name
        return path, node
    return (*path, NamedTupleKey(type(node).__name__, key)), getattr(node, key)


def get_all_with_path(
    tree: Tree, key: Any, filtering: Filter | None = None
) -> list[tuple[KeyPath, Any]]:
    """Every ``(path, value)`` in ``tree`` named ``key``: a dict key, a NamedTuple field or a
    NamedTuple's class name (then the tuple itself), at any depth, nested matches included.
    NamedTuple fields appear in paths as ``NamedTupleKey``.  ``filtering(path, value)`` keeps
    only the pairs it accepts.  optax: ``optax.tree.get_all_with_path``.

    Example:
        >>> import jax, jax.numpy as jnp, gradtx.tree as gt
        >>> state = {"count": jnp.array(1), "inner": {"count": jnp.array(2)}}
        >>> [jax.tree_util.keystr(p) for p, _ in gt.get_all_with_path(state, "count")]
        ["['count']", "['inner']['count']"]
    """
    found = _find(tree, key)
    return [(p, v) for p, v in found if filtering(p, v)] if filtering else found


def get(tree: Tree, key: Any, default: Any = None, filtering: Filter | None = None) -> Any:
    """The one value named ``key`` in ``tree`` (see ``get_all_with_path``), ``default`` when
    there is none; ``KeyError`` when there are several (narrow with ``filtering(path, value)``).
    optax: ``optax.tree.get``.

    Example:
        >>> import jax.numpy as jnp, gradtx, gradtx.tree as gt
        >>> state = gradtx.adam(1e-3).init(jnp.zeros(2))
        >>> print(gt.get(state, "count"), gt.get(state, "nothing", default=-1))
        0 -1
    """
    found = get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = [jax.tree_util.keystr(p) for p, _ in found]
        raise KeyError(f"get: {key!r} is ambiguous, found at {paths}; pass filtering=")
    return found[0][1] if found else default


def set(tree: Tree, filtering: Filter | None = None, /, **kwargs: Any) -> Tree:
    """A copy of ``tree`` in which every value named ``k`` (that ``filtering(path, value)``
    accepts) is ``kwargs[k]``, as given (not cast).  ``KeyError`` when a name has no match.
    Every match ``get_all_with_path`` finds is replaced (optax's skips some nested ones).
    optax: ``optax.tree.set``.

    Example:
        >>> import jax.numpy as jnp, gradtx, gradtx.tree as gt
        >>> state = gradtx.adam(1e-3).init(jnp.zeros(2))
        >>> print(gt.get(gt.set(state, count=jnp.array(5)), "count"))
        5
    """
    targets: dict[KeyPath, Any] = {}
    for key, value in kwargs.items():
        found = get_all_with_path(tree, key, filtering)
        if not found:
            how = " accepted by filtering" if filtering else ""
            raise KeyError(f"set: no value named {key!r}{how} in the tree")
        targets.update((p, value) for p, _ in found)
    inner = {p[:i] for p in targets for i in range(len(p))}
    return _rebuilt(tree, (), targets, inner)


def _rebuilt(node: Any, path: KeyPath, targets: dict, inner: builtins.set) -> Any:
    if path in targets:
        return targets[path]
    if path not in inner:
        return node
    if _is_namedtuple(node):
        kids = _named_children(path, node)
        return node._replace(**{p[-1].name: _rebuilt(c, p, targets, inner) for p, c in kids})
    if type(node) is dict:
        return {
            k: _rebuilt(v, (*path, jax.tree_util.DictKey(k)), targets, inner)
            for k, v in node.items()
        }
    flat, treedef = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    return treedef.unflatten([_rebuilt(c, (*path, *p), targets, inner) for p, c in flat])


class _ParamsSlot:
    """Stands for the params in a state built by ``init`` (a pytree node with no leaves)."""


jax.tree_util.register_pytree_node(
    _ParamsSlot, lambda s: ((), None), lambda aux, kids: _ParamsSlot()
)


def map_params(
    initable: Any,
    f: Callable[..., Any],
    state: Tree,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Tree:
    """``f(leaf, *rest_leaves)`` on every parameter-shaped tree inside ``state`` (found by
    running ``initable.init`` or ``initable`` on a stand-in for the params), e.g. to build
    sharding specs for a state; other values go through ``transform_non_params`` when given.
    optax: ``optax.tree.map_params``.

    Example:
        >>> import jax.numpy as jnp, gradtx, gradtx.tree as gt
        >>> opt = gradtx.adam(1e-3)
        >>> shapes = gt.map_params(opt, jnp.shape, opt.init({"w": jnp.zeros(3)}),
        ...                        transform_non_params=lambda _: None)
        >>> shapes.inner[0].mu, shapes.count
        ({'w': (3,)}, None)
    """
    slot = _ParamsSlot()
    layout = initable.init(slot) if callable(getattr(initable, "init", None)) else initable(slot)

    def one(marker, value):
        if isinstance(marker, _ParamsSlot):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        return value if transform_non_params is None else transform_non_params(value)

    return jax.tree.map(one, layout, state, is_leaf=lambda v: isinstance(v, _ParamsSlot))


def _here(v: Any) -> bool:
    return getattr(v, "__module__", None) == __name__


__all__ = sorted(  # every public function and class defined here
    n for n, v in list(globals().items()) if not n.startswith("_") and _here(v)
)
