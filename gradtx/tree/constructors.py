"""New pytrees shaped like others, casts and dtypes, and random pytrees (optax.tree's
``zeros_like``, ``cast``, ``dtype``, ``random_like``, ...)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx import kit

Tree = Any
KeyPath = tuple[Any, ...]
Filter = Callable[[KeyPath, Any], bool]

# --- new trees and dtypes ------------------------------------------------------------------------


def zeros_like(tree: Tree, dtype: Any = None) -> Tree:
    """Zeros shaped like every leaf (``dtype``: optional).  optax: ``optax.tree.zeros_like``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.zeros_like([jnp.ones(2)])[0])
        [0. 0.]
    """
    return kit.zeros_like(tree, dtype)


def ones_like(tree: Tree, dtype: Any = None) -> Tree:
    """Ones shaped like every leaf.  optax: ``optax.tree.ones_like``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.ones_like([jnp.zeros(2)])[0])
        [1. 1.]
    """
    return kit.full_like(tree, 1, dtype)


def full_like(tree: Tree, fill_value: Any, dtype: Any = None) -> Tree:
    """``fill_value`` shaped like every leaf.  optax: ``optax.tree.full_like``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.full_like([jnp.zeros(2)], 7.0)[0])
        [7. 7.]
    """
    return kit.full_like(tree, fill_value, dtype)


def batch_shape(tree: Tree, shape: tuple[int, ...] = ()) -> Tree:
    """Every leaf broadcast to ``(*shape, *leaf.shape)``.  optax: ``optax.tree.batch_shape``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> gt.batch_shape([jnp.zeros(3)], (2,))[0].shape
        (2, 3)
    """
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def cast(tree: Tree, dtype: Any) -> Tree:
    """Every leaf as ``dtype`` (``None``: unchanged).  optax: ``optax.tree.cast``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> gt.cast([jnp.zeros(2)], jnp.bfloat16)[0].dtype
        dtype(bfloat16)
    """
    return kit.cast(tree, dtype)


def cast_like(tree: Tree, other_tree: Tree) -> Tree:
    """Every leaf cast to the dtype of the matching leaf of ``other_tree`` (kept where that leaf
    has no dtype).  optax: ``optax.tree.cast_like``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> gt.cast_like([jnp.zeros(2)], [jnp.zeros(2, jnp.float16)])[0].dtype
        dtype('float16')
    """
    return jax.tree.map(
        lambda t, o: t.astype(o.dtype) if hasattr(o, "dtype") else t, tree, other_tree
    )


def _lower(d1: Any, d2: Any) -> Any:
    up = jnp.promote_types(d1, d2)
    if up == d1:
        return d2
    if up == d2:
        return d1
    raise ValueError(f"dtype: neither of {d1} and {d2} promotes to the other")


def dtype(tree: Tree, mixed_dtype_handler: str | None = None) -> Any:
    """The dtype of the leaves.  ``mixed_dtype_handler``: ``None`` (all leaves must agree, else
    ``ValueError``), ``"promote"`` (``jnp.promote_types`` of all), ``"highest"``/``"lowest"``
    (along promotion; ``ValueError`` when two do not promote to one another).  An empty tree
    gives JAX's default float dtype.  optax: ``optax.tree.dtype``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> gt.dtype([jnp.zeros(1, jnp.float16), jnp.zeros(1, jnp.float32)], "lowest")
        dtype('float16')
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(leaves).dtype
    dts = [jnp.asarray(x).dtype for x in leaves]
    if mixed_dtype_handler is None:
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]
        bad = [
            f"Expected dtype={dts[0]} for {p} but got {d}."
            for p, d in zip(paths, dts, strict=True)
            if d != dts[0]
        ]
        if bad:
            raise ValueError("\n".join(bad))
        return dts[0]
    if mixed_dtype_handler == "promote":
        return functools.reduce(jnp.promote_types, dts)
    if mixed_dtype_handler == "lowest":
        return functools.reduce(_lower, dts)
    if mixed_dtype_handler == "highest":
        return functools.reduce(lambda a, b: b if _lower(a, b) == a else a, dts)
    raise ValueError(
        f"dtype: mixed_dtype_handler={mixed_dtype_handler!r}; use None, 'promote', "
        "'highest' or 'lowest'"
    )


# --- random trees --------------------------------------------------------------------------------


def split_key_like(rng_key: Any, target_tree: Tree) -> Tree:
    """One key per leaf of ``target_tree``: ``jax.random.split(rng_key, n_leaves)`` laid out as
    the tree.  optax: ``optax.tree.split_key_like``.

    Example:
        >>> import jax, gradtx.tree as gt
        >>> keys = gt.split_key_like(jax.random.key(0), {"a": 1.0, "b": 2.0})
        >>> sorted(keys)
        ['a', 'b']
    """
    treedef = jax.tree.structure(target_tree)
    return jax.tree.unflatten(treedef, list(jax.random.split(rng_key, treedef.num_leaves)))


def random_like(
    rng_key: Any,
    target_tree: Tree,
    sampler: Callable[..., Any] = jax.random.normal,
    dtype: Any = None,
) -> Tree:
    """``sampler(key_i, leaf.shape, dtype or leaf.dtype)`` for every leaf, keys from
    ``split_key_like`` (so the same samples as optax); a sampler taking ``out_sharding`` gets the
    leaf's sharding.  optax: ``optax.tree.random_like``.

    Example:
        >>> import jax, jax.numpy as jnp, gradtx.tree as gt
        >>> gt.random_like(jax.random.key(0), [jnp.zeros((2, 3))])[0].shape
        (2, 3)
    """
    keys = split_key_like(rng_key, target_tree)
    sharded = "out_sharding" in inspect.signature(sampler).parameters

    def draw(leaf, key):
        dt = dtype or leaf.dtype
        if sharded:
            return sampler(key, leaf.shape, dt, out_sharding=jax.typeof(leaf).sharding)
        return sampler(key, leaf.shape, dt)

    return jax.tree.map(draw, target_tree, keys)


def unwrap_random_key_data(input_tree: Tree) -> Tree:
    """Typed PRNG keys replaced by their raw ``key_data`` (to compare trees numerically).
    optax: ``optax.tree.unwrap_random_key_data``.

    Example:
        >>> import jax, gradtx.tree as gt
        >>> gt.unwrap_random_key_data([jax.random.key(0)])[0].dtype
        dtype('uint32')
    """

    def raw(x):
        keyed = isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        return jax.random.key_data(x) if keyed else x

    return jax.tree.map(raw, input_tree)


def _here(v: Any) -> bool:
    return getattr(v, "__module__", None) == __name__


__all__ = sorted(  # every public function and class defined here
    n for n, v in list(globals().items()) if not n.startswith("_") and _here(v)
)
