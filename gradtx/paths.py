"""Select parameters by their path, the way torch's ``param_groups`` select them by name.

A parameter's path is the sequence of keys leading to it in the params tree, as
``jax.tree_util.tree_flatten_with_path`` reports them, written as one string joined by ``/``:

====================================  ==============================  =====================
container                             key                             example path
====================================  ==============================  =====================
dict, ``flax.nnx.State``              the key (``str(key)``)          ``encoder/dense/bias``
list, tuple, ``nnx.List``             the index                       ``layers/0/kernel``
NamedTuple, registered dataclass      the field name                  ``mu/w``
``flax.nnx.Variable`` (``nnx.Param``)  nothing: the variable is the leaf ``l1/kernel``
====================================  ==============================  =====================

``leaf_paths(params)`` lists them.  ``None`` leaves and empty containers have no path (they hold
no parameter).

Patterns
--------
A pattern is a glob, a compiled regular expression or a predicate:

* A glob is split at ``/`` into segments.  Within a segment ``*`` matches any run of characters,
  ``?`` one character and ``[abc]`` one of a set (``fnmatch`` rules, case-sensitive); a segment
  ``**`` matches any number of whole segments, none included.  The glob selects a parameter when
  it matches some consecutive segments of the parameter's path: ``bias`` selects every parameter
  with a segment named exactly ``bias`` (and everything below such a segment), ``*norm*`` every
  parameter inside something whose name contains ``norm``, ``encoder/**/kernel`` every ``kernel``
  somewhere below an ``encoder``.  A leading ``/`` anchors the glob at the root: ``/head`` is
  only the top-level ``head`` subtree.  ``**`` alone selects everything.
* A compiled ``re.Pattern`` selects a parameter when ``pattern.search(path)`` finds a match in
  the ``/``-joined path (anchor with ``^`` and ``$``).
* A callable ``fn(path: str, leaf) -> bool``.

``match(*patterns)`` returns a mask function for ``masked``/``adamw(mask=...)``/``freeze``;
``labels({label: patterns, ...})`` returns a label function for ``multi_transform``.  Both return
trees with one value per parameter (a ``flax.nnx.Variable`` counts as one leaf), so their output
is also accepted by optax's ``masked`` and ``partition``.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

import jax

Tree = Any
Pattern = str | re.Pattern | Callable[[str, Any], bool]
Segments = tuple[str, ...]


def is_variable(x: Any) -> bool:
    """True for a ``flax.nnx.Variable`` (without importing flax when it is not in use)."""
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(x, nnx.Variable)


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def segments(key_path: Sequence[Any]) -> Segments:
    """A ``tree_flatten_with_path`` key path as a tuple of strings, one per key."""
    return tuple(_key_name(k) for k in key_path)


def join(segs: Segments) -> str:
    return "/".join(segs)


def leaf_segments(tree: Tree) -> list[Segments]:
    """One path per leaf of ``jax.tree.leaves(tree)``, in the same order.

    An ``nnx.Variable`` ends the path (its inner ``value`` key is dropped), so the paths of an
    ``nnx.State`` of ``nnx.Param`` and of the ``nnx.State`` of raw arrays that nnx hands
    ``update`` agree.
    """
    out: list[Segments] = []
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_variable)
    for key_path, x in flat:
        segs = segments(key_path)
        out.extend([segs] * (len(jax.tree.leaves(x)) if is_variable(x) else 1))
    return out


def leaf_paths(tree: Tree) -> list[str]:
    """The ``/``-joined path of every leaf of ``tree``, in ``jax.tree.leaves`` order.

    Print ``leaf_paths(params)`` to see what patterns will be matched against.
    """
    return [join(s) for s in leaf_segments(tree)]


# --- globs -------------------------------------------------------------------------------------


def _glob_prefix(pat: Segments, segs: Segments) -> bool:
    """Whether ``pat`` matches a run of segments at the start of ``segs`` (any length)."""
    if not pat:
        return True
    head, rest = pat[0], pat[1:]
    if head == "**":
        return any(_glob_prefix(rest, segs[i:]) for i in range(len(segs) + 1))
    return bool(segs) and fnmatchcase(segs[0], head) and _glob_prefix(rest, segs[1:])


def _compile(pattern: Pattern, where: str) -> Callable[[Segments, Any], bool]:
    if isinstance(pattern, re.Pattern):
        return lambda segs, leaf: pattern.search(join(segs)) is not None
    if callable(pattern):
        return lambda segs, leaf: bool(pattern(join(segs), leaf))
    if not isinstance(pattern, str):
        raise TypeError(
            f"{where}: a pattern must be a glob string, a compiled re.Pattern or a callable "
            f"(path, leaf) -> bool; got {type(pattern).__name__} {pattern!r}"
        )
    anchored = pattern.startswith("/")
    pat = tuple(s for s in pattern.strip("/").split("/"))
    if pattern.strip("/") == "" or "" in pat:
        raise ValueError(f"{where}: glob {pattern!r} has an empty segment")
    if anchored:
        return lambda segs, leaf: _glob_prefix(pat, segs)
    return lambda segs, leaf: any(_glob_prefix(pat, segs[i:]) for i in range(len(segs) + 1))


def _patterns(where: str, patterns: Pattern | Sequence[Pattern]) -> list[Callable]:
    many = patterns if isinstance(patterns, list | tuple) else [patterns]
    if not many:
        raise ValueError(f"{where}: give at least one pattern")
    return [_compile(p, where) for p in many]


def matches(path: str, *patterns: Pattern) -> bool:
    """Whether the ``/``-joined ``path`` is selected by any of ``patterns`` (see the module doc).

    >>> matches("encoder/0/bias", "bias"), matches("bias_proj/kernel", "bias")
    (True, False)
    """
    segs = tuple(path.split("/")) if path else ()
    return any(p(segs, None) for p in _patterns("paths.matches", list(patterns)))


def _map_paths(fn: Callable[[Segments, Any], Any], tree: Tree) -> Tree:
    """``fn(path, leaf)`` at every parameter, an ``nnx.Variable`` counting as one parameter."""
    return jax.tree_util.tree_map_with_path(
        lambda kp, x: fn(segments(kp), x), tree, is_leaf=is_variable
    )


def match(*patterns: Pattern, invert: bool = False) -> Callable[[Tree], Tree]:
    """A mask function: ``params -> tree of bools``, True where any pattern selects the
    parameter (False there with ``invert=True``).

    ``adamw(1e-3, mask=paths.match("kernel"))`` decays only kernels;
    ``freeze(paths.match("/encoder"))`` freezes the encoder.  torch: a param group built from
    ``[p for n, p in model.named_parameters() if ...]``.  A pattern that selects no parameter
    of the tree warns (``"*norm*"`` on a model whose norm layers are named ``ln``).
    """
    where = "paths.exclude" if invert else "paths.match"
    tests = _patterns(where, list(patterns))

    def mask(tree: Tree) -> Tree:
        hits = [False] * len(tests)

        def selected(segs: Segments, x: Any) -> bool:
            found = [t(segs, x) for t in tests]
            hits[:] = [h or f for h, f in zip(hits, found, strict=True)]
            return invert != any(found)

        out = _map_paths(selected, tree)
        for pattern, hit in zip(patterns, hits, strict=True):
            if not hit:
                some = ", ".join(leaf_paths(tree)[:6])
                warnings.warn(
                    f"{where}: pattern {pattern!r} selects no parameter (paths: {some}, ...); "
                    f"paths.ndim_at_most(1) selects vectors whatever their names, "
                    f"paths.module_types(model, nnx.LayerNorm) by Flax module type",
                    stacklevel=2,
                )
        return out

    return mask


def ndim_at_most(n: int) -> Callable[[str, Any], bool]:
    """A pattern selecting every parameter with at most ``n`` dimensions, whatever its name:
    ``adamw(1e-3, mask=paths.exclude(paths.ndim_at_most(1)))`` decays no bias, norm scale or
    other vector (the usual no-decay group).

    >>> import jax.numpy as jnp
    >>> match(ndim_at_most(1))({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    {'b': True, 'w': False}
    """

    def select(path: str, leaf: Any) -> bool:
        del path
        return _ndim(leaf) <= n

    return select


def _ndim(leaf: Any) -> int:
    value = leaf.get_value() if is_variable(leaf) else leaf
    return len(getattr(value, "shape", ()))


def module_types(model: Any, *types: type) -> Callable[[str, Any], bool]:
    """A pattern selecting every parameter inside a submodule of the Flax NNX ``model`` whose
    type is one of ``types``: ``paths.module_types(model, nnx.LayerNorm, nnx.Embed)`` is every
    norm and embedding parameter, whatever the layers are named.  The paths are those of
    ``nnx.state(model)`` (what ``nnx.Optimizer`` hands the optimizer)."""
    from flax import nnx

    if not types:
        raise ValueError("paths.module_types: give at least one module type")
    prefixes = {
        tuple(str(k) for k in path)
        for path, module in nnx.iter_modules(model)
        if isinstance(module, types)
    }

    def select(path: str, leaf: Any) -> bool:
        del leaf
        segs = tuple(path.split("/"))
        return any(segs[: len(p)] == p for p in prefixes)

    return select


def exclude(*patterns: Pattern) -> Callable[[Tree], Tree]:
    """``match(*patterns, invert=True)``: True where no pattern selects the parameter, e.g.
    ``adamw(1e-3, mask=paths.exclude("bias", "*norm*"))`` (no decay on biases and norms)."""
    return match(*patterns, invert=True)


def labels(
    groups: Mapping[Hashable, Pattern | Sequence[Pattern]],
) -> Callable[[Tree], Tree]:
    """A label function for ``multi_transform``: ``params -> tree of labels``.

    ``groups`` maps each label to one pattern or a list of them; a parameter gets the first label
    (in the mapping's order) with a pattern selecting it.  A parameter no label selects is an
    error naming its path: end with a catch-all such as ``"default": "**"``.
    """
    if not groups:
        raise ValueError("paths.labels: give at least one label")
    compiled = [(label, _patterns(f"paths.labels[{label!r}]", p)) for label, p in groups.items()]

    def label_of(segs: Segments, leaf: Any) -> Hashable:
        for label, tests in compiled:
            if any(t(segs, leaf) for t in tests):
                return label
        raise ValueError(
            f"paths.labels: parameter {join(segs)!r} matches no pattern; patterns: "
            f'{dict(groups)!r}. Add a catch-all label such as "default": "**".'
        )

    return lambda tree: _map_paths(label_of, tree)


__all__ = [
    "exclude",
    "is_variable",
    "labels",
    "leaf_paths",
    "match",
    "matches",
    "module_types",
    "ndim_at_most",
]
