"""Euclidean projections onto convex sets, ``optax.projections`` at optax's path.

Every function returns ``argmin_y ||x - y||_2^2`` over its set, where the tree ``x`` is treated
as one long vector (all leaves together), and keeps ``x``'s tree structure and leaf dtypes.  All
are jit-, vmap- and grad-able.  Names, signatures and (within rounding) numbers are optax
0.2.8's; where gradtx differs it is more robust, and says so in the function's docstring:

* ``projection_simplex`` (and the l1 projections built on it) shifts the input by its maximum
  before the sort-based algorithm (the projection is invariant to such a shift), so large
  offsets do not cancel: optax's float32 projection of ``1e6 + randn(50)`` sums to ~0.94.
* ``projection_l1_sphere`` gives zero entries the sign ``+``: optax's ``sign(0) = 0`` drops their
  mass, and ``projection_l1_sphere([1, 0], 3)`` is ``[2, 0]`` (l1 norm 2), not ``[2, 1]``.
* ``projection_l2_ball`` / ``projection_l2_sphere`` divide by ``max |x|`` before squaring, so
  float32 inputs of magnitude ~1e20 are not projected to 0 by an overflowed norm.
* ``projection_box`` / ``projection_hypercube`` accept a scalar bound for a tree of several
  leaves (optax raises a pytree-structure error).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import flatten_util

from gradtx import tree as gt

Tree = Any
ArrayLike = jax.typing.ArrayLike

__all__ = [
    "projection_box",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_simplex",
    "projection_vector",
]


# --- boxes ---------------------------------------------------------------------------------------


def projection_non_negative(tree: Tree) -> Tree:
    """Projection onto the non-negative orthant ``{y : y >= 0}``: ``y = max(x, 0)`` elementwise
    (``jax.nn.relu``, whose derivative at 0 is 0).
    optax: ``optax.projections.projection_non_negative``.

    Args:
        tree: the tree ``x`` to project.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_non_negative(jnp.array([-1.0, 2.0], dtype=jnp.float32)))
        [0. 2.]
    """
    return jax.tree.map(jax.nn.relu, tree)


def projection_box(tree: Tree, lower: Any, upper: Any) -> Tree:
    """Projection onto the box ``{y : lower <= y <= upper}``: ``y = clip(x, lower, upper)``
    elementwise (the box is a product of intervals, so the projection separates).
    optax: ``optax.projections.projection_box``.

    Args:
        tree: the tree ``x`` to project.
        lower: lower bound: a scalar or array (applied to every leaf), or a tree whose structure
            is a prefix of ``tree``'s.
        upper: upper bound, like ``lower``.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> x = {"a": jnp.array([-1.0, 3.0], dtype=jnp.float32), "b": jnp.float32(0.5)}
        >>> print(gp.projection_box(x, 0.0, 2.0)["a"])
        [0. 2.]
    """
    # a scalar (or prefix-tree) bound is spread over the leaves; optax needs full trees here
    lower = jax.tree.broadcast(lower, tree)
    upper = jax.tree.broadcast(upper, tree)
    return jax.tree.map(jnp.clip, tree, lower, upper)


def projection_hypercube(tree: Tree, scale: Any = 1) -> Tree:
    """Projection onto the hypercube ``{y : 0 <= y <= scale}`` (the unit cube by default):
    ``projection_box(tree, 0, scale)``.  optax: ``optax.projections.projection_hypercube``.

    Args:
        tree: the tree ``x`` to project.
        scale: side of the cube: a scalar, an array or a prefix tree, as ``upper`` in
            ``projection_box``.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_hypercube(jnp.array([-1.0, 0.5, 2.0], dtype=jnp.float32)))
        [0.  0.5 1. ]
    """
    return projection_box(tree, lower=0, upper=scale)


def projection_linf_ball(tree: Tree, scale: ArrayLike = 1) -> Tree:
    """Projection onto the l-infinity ball ``{y : max_i |y_i| <= scale}``:
    ``y = clip(x, -scale, scale)`` elementwise, in each leaf's dtype.
    optax: ``optax.projections.projection_linf_ball``.

    Args:
        tree: the tree ``x`` to project.
        scale: radius of the ball.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_linf_ball(jnp.array([-3.0, 0.5], dtype=jnp.float32), 2.0))
        [-2.   0.5]
    """

    def clip(x: Any) -> jax.Array:
        x = jnp.asarray(x)
        bound = jnp.asarray(scale, dtype=x.dtype)  # the bounds take the leaf's dtype (as optax)
        return jnp.clip(x, -bound, bound)

    return jax.tree.map(clip, tree)


# --- simplex and l1 ------------------------------------------------------------------------------


@jax.jit  # one compiled program per shape, also when called eagerly
def _simplex_values(values: jax.Array, scale: jax.Array) -> jax.Array:
    # Sort-based algorithm (Held et al. 1974; Duchi et al. 2008): with u sorted decreasingly,
    # tau_k = (u_1 + ... + u_k - scale) / k, the support size K is the number of k with
    # u_k > tau_k (they are exactly k = 1..K) and the projection is max(values - tau_K, 0).
    # Shifting by max(values) changes nothing mathematically (tau shifts by the same amount)
    # but keeps the cumulative sums small, so large common offsets do not cancel.
    shifted = values - jnp.max(values)
    u = -jnp.sort(-shifted)
    k = jnp.arange(1, values.shape[0] + 1, dtype=values.dtype)
    taus = (jnp.cumsum(u) - scale) / k
    count = jnp.count_nonzero(u > taus)
    return jnp.maximum(shifted - taus[count - 1], 0)


@jax.custom_jvp
def _simplex(values: jax.Array, scale: jax.Array) -> jax.Array:
    return _simplex_values(values, scale)


@_simplex.defjvp
def _simplex_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    # On the support S, p = x - tau with tau = (sum_S x - scale) / |S|, so
    # dp = 1_S * (dx - (<1_S, dx> - dscale) / |S|); written by hand: no derivative of the sort.
    values, scale = primals
    d_values, d_scale = tangents
    p = _simplex_values(values, scale)
    support = (p > 0).astype(p.dtype)
    d_tau = (jnp.dot(support, d_values) - d_scale) / jnp.sum(support)
    return p, support * (d_values - d_tau)


def projection_simplex(tree: Tree, scale: ArrayLike = 1) -> Tree:
    """Projection onto the simplex ``{y : y >= 0, sum_i y_i = scale}`` (the probability simplex
    by default), of all leaves together.

    Algorithm: sort-based (Held et al. 1974; Duchi et al. 2008), ``O(n log n)``: with ``u`` the
    values sorted decreasingly and ``tau_k = (u_1 + ... + u_k - scale) / k``, the support has
    ``K = #{k : u_k > tau_k}`` entries and ``y = max(x - tau_K, 0)``.  The input is first shifted
    by its maximum (same projection, no cancellation for large offsets; optax does not shift).
    Its Jacobian is given in closed form, ``diag(s) - s s^T / |s|`` on the support indicator
    ``s`` (and ``s / |s|`` for ``scale``).  Computed in at least float32.
    optax: ``optax.projections.projection_simplex``.

    Args:
        tree: the tree ``x`` to project.
        scale: value the projection sums to (positive).

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_simplex(jnp.array([2.0, 1.5, -1.0], dtype=jnp.float32)))
        [0.75 0.25 0.  ]
    """
    values, unravel = flatten_util.ravel_pytree(tree)
    dtype = jnp.promote_types(values.dtype, jnp.float32)
    out = _simplex(values.astype(dtype), jnp.asarray(scale, dtype))
    return unravel(out.astype(jnp.result_type(values.dtype, 1.0)))  # int inputs give floats


def projection_l1_sphere(tree: Tree, scale: ArrayLike = 1) -> Tree:
    """Projection onto the l1 sphere ``{y : sum_i |y_i| = scale}``: ``y = sign(x) * p`` with
    ``p`` the simplex projection of ``|x|`` (flipping a sign to match ``x`` never increases the
    distance).  A zero entry counts as positive: optax's ``sign(0) = 0`` drops its share, and the
    result can leave the sphere.  optax: ``optax.projections.projection_l1_sphere``.

    Args:
        tree: the tree ``x`` to project.
        scale: radius of the sphere.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_l1_sphere(jnp.array([1.0, 0.0], dtype=jnp.float32), 3.0))
        [2. 1.]
    """
    magnitude = projection_simplex(jax.tree.map(jnp.abs, tree), scale)
    return jax.tree.map(lambda x, p: jnp.where(x < 0, -p, p), tree, magnitude)


def projection_l1_ball(tree: Tree, scale: ArrayLike = 1) -> Tree:
    """Projection onto the l1 ball ``{y : sum_i |y_i| <= scale}``: ``x`` itself when inside,
    else ``projection_l1_sphere(x, scale)`` (the nearest point of a convex body to an outside
    point is on its boundary); the branch is a ``lax.cond``, so the gradient inside is the
    identity.  optax: ``optax.projections.projection_l1_ball``.

    Args:
        tree: the tree ``x`` to project.
        scale: radius of the ball.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_l1_ball(jnp.array([1.5, -1.0], dtype=jnp.float32)))
        [ 0.75 -0.25]
    """
    tree = jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x, 1.0)), tree)  # ints: float
    inside = gt.norm(tree, ord=1) <= scale
    return jax.lax.cond(inside, _keep, projection_l1_sphere, tree, scale)


def _keep(tree: Tree, scale: ArrayLike) -> Tree:
    # module-level branches: lax.cond caches their traces (fresh lambdas would retrace per call)
    return tree


# --- l2 ------------------------------------------------------------------------------------------


@jax.jit
def _l2_norm(tree: Tree) -> jax.Array:
    # ||x|| = m * ||x / m|| with m = max |x| held constant for differentiation: no overflow or
    # underflow of the squares; the double `where` keeps the gradient at x = 0 finite (zero).
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    leaves = [x.astype(jnp.promote_types(x.dtype, jnp.float32)) for x in leaves if x.size]
    peaks = [jnp.max(jnp.abs(x)) for x in leaves]
    peak = jax.lax.stop_gradient(functools.reduce(jnp.maximum, peaks, jnp.zeros(())))
    m = jnp.where(peak > 0, peak, 1)
    sq = sum((jnp.sum(jnp.square(jnp.abs(x / m))) for x in leaves), jnp.zeros(()))
    positive = sq > 0
    return jnp.where(positive, m * jnp.sqrt(jnp.where(positive, sq, 1)), 0)


def _scale_leaves(factor: jax.Array, tree: Tree) -> Tree:
    # float leaves keep their dtype (factor is float32 for bfloat16 leaves); int leaves go float
    return jax.tree.map(lambda x: (factor * x).astype(jnp.result_type(x, 1.0)), tree)


def projection_l2_sphere(tree: Tree, scale: ArrayLike = 1) -> Tree:
    """Projection onto the l2 sphere ``{y : ||y||_2 = scale}``: ``y = scale * x / ||x||_2`` (nan
    at ``x = 0``, where every point of the sphere is nearest, as in optax).  The norm is computed
    as ``max|x| * ||x / max|x|||``, without overflow.  optax:
    ``optax.projections.projection_l2_sphere``.

    Args:
        tree: the tree ``x`` to project.
        scale: radius of the sphere.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_l2_sphere(jnp.array([3.0, 4.0], dtype=jnp.float32)))
        [0.6 0.8]
    """
    return _scale_leaves(scale / _l2_norm(tree), tree)


def projection_l2_ball(tree: Tree, scale: ArrayLike = 1) -> Tree:
    """Projection onto the l2 ball ``{y : ||y||_2 <= scale}``:
    ``y = x * scale / max(||x||_2, scale)`` (radial shrinkage; the identity inside, gradient 1
    at ``x = 0``).  The norm is computed without overflow (see ``projection_l2_sphere``).
    optax: ``optax.projections.projection_l2_ball``.

    Args:
        tree: the tree ``x`` to project.
        scale: radius of the ball.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> print(gp.projection_l2_ball(jnp.array([3.0, 4.0], dtype=jnp.float32), 2.5))
        [1.5 2. ]
    """
    return _scale_leaves(scale / jnp.maximum(_l2_norm(tree), scale), tree)


# --- affine sets ---------------------------------------------------------------------------------


def projection_vector(x: Tree, a: Tree) -> Tree:
    """Projection onto the line spanned by ``a``: ``y = (<x, a> / <a, a>) a``.
    optax: ``optax.projections.projection_vector``.

    Args:
        x: the tree to project.
        a: the direction, a tree with ``x``'s structure.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> a = jnp.array([1.0, 1.0], dtype=jnp.float32)
        >>> print(gp.projection_vector(jnp.array([1.0, 2.0], dtype=jnp.float32), a))
        [1.5 1.5]
    """
    return gt.scale(gt.vdot(x, a) / gt.vdot(a, a), a)


def projection_hyperplane(x: Tree, a: Tree, b: ArrayLike) -> Tree:
    """Projection onto the hyperplane ``{y : <a, y> = b}``: ``y = x + ((b - <a, x>) / <a, a>) a``.
    optax: ``optax.projections.projection_hyperplane``.

    Args:
        x: the tree to project.
        a: the normal of the hyperplane, a tree with ``x``'s structure.
        b: the offset, a scalar.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> a = jnp.array([1.0, 1.0], dtype=jnp.float32)
        >>> print(gp.projection_hyperplane(jnp.array([1.0, 2.0], dtype=jnp.float32), a, 1.0))
        [0. 1.]
    """
    return gt.add_scale(x, (b - gt.vdot(x, a)) / gt.vdot(a, a), a)


def projection_halfspace(x: Tree, a: Tree, b: ArrayLike) -> Tree:
    """Projection onto the halfspace ``{y : <a, y> <= b}``:
    ``y = x + min((b - <a, x>) / <a, a>, 0) a`` (``x`` itself when inside, else the projection
    onto the boundary hyperplane).  optax: ``optax.projections.projection_halfspace``.

    Args:
        x: the tree to project.
        a: the outer normal of the halfspace, a tree with ``x``'s structure.
        b: the offset, a scalar.

    Example:
        >>> import jax.numpy as jnp, gradtx.projections as gp
        >>> a = jnp.array([3.0, 4.0], dtype=jnp.float32)
        >>> print(gp.projection_halfspace(jnp.array([1.0, -2.0], dtype=jnp.float32), a, 5.0))
        [ 1. -2.]
    """
    step = jnp.minimum((b - gt.vdot(x, a)) / gt.vdot(a, a), 0)
    return gt.add_scale(x, step, a)
