"""Arithmetic and reductions on pytrees, leaf by leaf (optax.tree's ``add``, ``vdot``, ``norm``,
...)."""

from __future__ import annotations

import builtins
import functools
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Tree = Any
KeyPath = tuple[Any, ...]
Filter = Callable[[KeyPath, Any], bool]

# --- arithmetic ----------------------------------------------------------------------------------


def add(tree_x: Tree, tree_y: Tree, *other_trees: Tree) -> Tree:
    """``x + y (+ ...)`` leaf by leaf.  optax: ``optax.tree.add``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.add({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 4.0])})["a"])
        [4. 6.]
    """
    return jax.tree.map(lambda *xs: builtins.sum(xs), tree_x, tree_y, *other_trees)


def sub(tree_x: Tree, tree_y: Tree) -> Tree:
    """``x - y`` leaf by leaf.  optax: ``optax.tree.sub``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.sub([jnp.array(3.0)], [jnp.array(1.0)])[0])
        2.0
    """
    return jax.tree.map(operator.sub, tree_x, tree_y)


def mul(tree_x: Tree, tree_y: Tree) -> Tree:
    """``x * y`` leaf by leaf.  optax: ``optax.tree.mul``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.mul([jnp.array(3.0)], [jnp.array(2.0)])[0])
        6.0
    """
    return jax.tree.map(operator.mul, tree_x, tree_y)


def div(tree_x: Tree, tree_y: Tree) -> Tree:
    """``x / y`` leaf by leaf.  optax: ``optax.tree.div``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.div([jnp.array(3.0)], [jnp.array(2.0)])[0])
        1.5
    """
    return jax.tree.map(operator.truediv, tree_x, tree_y)


def scale(scalar: Any, tree: Tree) -> Tree:
    """``scalar * x`` for every leaf.  optax: ``optax.tree.scale``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.scale(2.0, [jnp.array(3.0)])[0])
        6.0
    """
    return jax.tree.map(lambda x: scalar * x, tree)


def add_scale(tree_x: Tree, scalar: Any, tree_y: Tree) -> Tree:
    """``x + scalar * y`` leaf by leaf; ``None`` leaves of ``tree_x`` stay ``None``.
    optax: ``optax.tree.add_scale``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.add_scale([jnp.array(1.0)], 0.5, [jnp.array(4.0)])[0])
        3.0
    """
    s = jnp.asarray(scalar)
    return jax.tree.map(
        lambda x, y: None if x is None else x + s * y, tree_x, tree_y, is_leaf=lambda x: x is None
    )


def conj(tree: Tree) -> Tree:
    """Complex conjugate of every leaf.  optax: ``optax.tree.conj``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.conj([jnp.array(1 + 2j)])[0])
        (1-2j)
    """
    return jax.tree.map(jnp.conj, tree)


def real(tree: Tree) -> Tree:
    """Real part of every leaf.  optax: ``optax.tree.real``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.real([jnp.array(1 + 2j)])[0])
        1.0
    """
    return jax.tree.map(jnp.real, tree)


def where(condition: Any, tree_x: Tree, tree_y: Tree) -> Tree:
    """``where(condition, x, y)`` leaf by leaf.  optax: ``optax.tree.where``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.where(jnp.array(False), [jnp.array(1.0)], [jnp.array(2.0)])[0])
        2.0
    """
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def clip(tree: Tree, min_value: Any = None, max_value: Any = None) -> Tree:
    """``min(max(x, min_value), max_value)`` for every leaf (``None``: no bound).
    optax: ``optax.tree.clip``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.clip([jnp.array([-2.0, 0.5, 3.0])], -1.0, 1.0)[0])
        [-1.   0.5  1. ]
    """
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


# --- reductions ----------------------------------------------------------------------------------


def _narrow(x: Any) -> bool:
    dt = jnp.result_type(x)
    return bool(jnp.issubdtype(dt, jnp.floating)) and jnp.finfo(dt).bits < 32


def _total(parts: list, naturals: list, widened: bool, associative: bool = False) -> Any:
    """``0 + parts[0] + ...``; when low-precision leaves were accumulated in float32, the total
    is rounded once to the dtype optax's per-leaf sums would have promoted to."""
    if associative:
        if not hasattr(jax.tree, "reduce_associative"):
            raise ValueError("associative_reduction=True needs jax.tree.reduce_associative")
        total = jax.tree.reduce_associative(operator.add, parts, identity=0)
    else:
        total = functools.reduce(operator.add, parts, 0)
    return jnp.asarray(total).astype(jnp.result_type(*naturals)) if widened else total


def _sum_of(tree: Tree, fn: Callable[[Any], Any], associative: bool = False) -> Any:
    parts, naturals, widened = [], [], False
    for x in jax.tree.leaves(tree):
        if _narrow(x):
            parts.append(jnp.sum(fn(jnp.asarray(x).astype(jnp.float32))))
            naturals.append(jnp.result_type(x))
            widened = True
        else:
            parts.append(jnp.sum(fn(x)))
            naturals.append(parts[-1].dtype)
    return _total(parts, naturals, widened, associative)


def sum(tree: Tree, associative_reduction: bool = False) -> Any:
    """``sum of every element of every leaf`` (``0`` for an empty tree); bfloat16/float16 leaves
    are accumulated in float32 and the result rounded once.  ``associative_reduction``: add the
    leaves' sums as a balanced tree (faster to compile for many leaves, another rounding order).
    optax: ``optax.tree.sum``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.sum({"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}))
        6.0
    """
    return _sum_of(tree, lambda x: x, associative_reduction)


def _replicated(a: jax.Array) -> Any:
    # under explicit sharding, a full contraction must be told where its scalar lives
    mesh = jax.typeof(a).sharding.mesh
    return jax.sharding.NamedSharding(mesh, jax.P()) if mesh.are_all_axes_explicit else None


def vdot(tree_x: Tree, tree_y: Tree) -> Any:
    """``<x, y> = sum conj(x) * y`` over all leaves, at the highest matmul precision; complex
    leaves give a complex result, integer leaves an integer.  bfloat16/float16 products are
    accumulated in float32 and rounded once.  optax: ``optax.tree.vdot``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.vdot({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 4.0])}))
        11.0
    """
    xs, treedef = jax.tree.flatten(tree_x)
    ys = treedef.flatten_up_to(tree_y)
    parts, naturals, widened = [], [], False
    for a, b in zip(xs, ys, strict=True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"vdot: leaves of shapes {a.shape} and {b.shape} differ")
        natural = jnp.result_type(a, b)
        wide = bool(jnp.issubdtype(natural, jnp.floating)) and jnp.finfo(natural).bits < 32
        a = jnp.conj(a) if jnp.iscomplexobj(a) else a
        parts.append(
            jnp.tensordot(
                a,
                b,
                a.ndim,
                precision=jax.lax.Precision.HIGHEST,
                preferred_element_type=jnp.float32 if wide else None,
                out_sharding=_replicated(a),
            )
        )
        naturals.append(natural)
        widened |= wide
    return _total(parts, naturals, widened)


def max(tree: Tree) -> Any:
    """Largest element over all leaves (empty leaves skipped; ``-inf`` for none).  As in optax,
    the ``-inf`` start makes an integer tree's result a float.  optax: ``optax.tree.max``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.max([jnp.array([1.0, 5.0]), jnp.array(3.0)]))
        5.0
    """
    found = [jnp.max(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return functools.reduce(jnp.maximum, found, -float("inf"))


def min(tree: Tree) -> Any:
    """Smallest element over all leaves (empty leaves skipped; ``inf`` for none).
    optax: ``optax.tree.min``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.min([jnp.array([1.0, 5.0]), jnp.array(3.0)]))
        1.0
    """
    found = [jnp.min(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return functools.reduce(jnp.minimum, found, float("inf"))


def size(tree: Tree) -> int:
    """Number of elements over all leaves (a Python int).  optax: ``optax.tree.size``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> gt.size({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
        16
    """
    return builtins.sum(jnp.size(x) for x in jax.tree.leaves(tree))


def _abs_sq(x: Any) -> Any:
    return jnp.square(jnp.real(x)) + jnp.square(jnp.imag(x))


def norm(tree: Tree, ord: int | str | float | None = None, squared: bool = False) -> jax.Array:
    """Vector norm of all leaves as one vector: ``ord`` ``None``/2: ``sqrt(sum |x|^2)``, 1:
    ``sum |x|``, ``inf`` (or ``"inf"``, ``"infinity"``): ``max |x|``; ``squared`` returns its
    square.  bfloat16/float16 leaves are squared and summed in float32 and rounded once.
    optax: ``optax.tree.norm``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> t = {"a": jnp.array([3.0]), "b": jnp.array([-4.0])}
        >>> print(gt.norm(t), gt.norm(t, ord=1), gt.norm(t, ord="inf"), gt.norm(t, squared=True))
        5.0 7.0 4.0 25.0
    """
    if ord is None or ord == 2:
        sq = _sum_of(tree, _abs_sq)
        return jnp.array(sq if squared else jnp.sqrt(sq))
    if ord == 1:
        out = _sum_of(tree, jnp.abs)
    elif ord == jnp.inf or ord in ("inf", "infinity"):
        out = max(jax.tree.map(jnp.abs, tree))
    else:
        raise ValueError(f"norm: unsupported ord={ord!r}; use None, 1, 2 or inf")
    return jnp.array(_abs_sq(out) if squared else out)


def allclose(
    a: Tree, b: Tree, rtol: Any = 1e-05, atol: Any = 1e-08, equal_nan: bool = False
) -> Any:
    """``|a - b| <= atol + rtol * |b|`` for every element of every leaf (``True`` for empty
    trees).  optax: ``optax.tree.allclose``.

    Example:
        >>> import jax.numpy as jnp, gradtx.tree as gt
        >>> print(gt.allclose([jnp.array(1.0)], [jnp.array(1.0 + 1e-9)]))
        True
    """
    close = jax.tree.map(
        lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan), a, b
    )
    return functools.reduce(operator.and_, jax.tree.leaves(close), True)


def _here(v: Any) -> bool:
    return getattr(v, "__module__", None) == __name__


__all__ = sorted(  # every public function and class defined here
    n for n, v in list(globals().items()) if not n.startswith("_") and _here(v)
)
