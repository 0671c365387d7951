"""optax's top-level numerics for gradtx: safe norms and counters, power iteration, matrix inverse
roots, non-negative least squares, a diagonal Gaussian, gradient scaling and the moment updates,
with optax 0.2.8's names, signatures and numbers.

Where gradtx deliberately differs:

* ``matrix_inverse_pth_root`` is correct for every positive integer ``p``; optax's raises the
  iterate to the nearest power of two in ``{1, 2, 4, 8}`` instead of to ``p`` and returns a
  wrong root for ``p = 3, 5, 6, 7`` or ``p > 8`` (e.g. ~3e-2 off for ``p = 3``) with a small
  reported error.  For ``p`` in ``{1, 2, 4, 8}`` the numbers are optax's.
* ``multi_normal(...).log_prob`` uses ``log_scale`` directly instead of ``log(exp(log_scale)^2)``:
  finite where the scale's square under- or overflows (optax gives ``nan``/``inf`` there).
* ``scale_gradient`` accepts a traced ``scale`` (optax's fails on its ``scale == 1`` test) and
  keeps the cotangent in the input's dtype.
* ``global_norm`` does not emit optax's DeprecationWarning; it is ``gradtx.tree.norm``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradtx import kit, tree

Tree = Any

update_moment = tree.update_moment
update_moment_per_elem_norm = tree.update_moment_per_elem_norm
update_infinity_moment = tree.update_infinity_moment


def global_norm(updates: Tree) -> jax.Array:
    """``sqrt(sum |x|^2)`` over every leaf: ``gradtx.tree.norm(updates)``.
    optax: ``optax.global_norm`` (deprecated there in favour of ``optax.tree.norm``).

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> print(gn.global_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])}))
        5.0
    """
    return tree.norm(updates)


def safe_norm(
    x: Any,
    min_norm: Any,
    ord: int | float | str | None = None,
    axis: tuple[int, ...] | int | None = None,
    keepdims: bool = False,
) -> jax.Array:
    """``max(norm(x, ord, axis), min_norm)`` whose gradient is 0, not NaN, where the norm is
    below ``min_norm`` (the norm is recomputed on ones there).  ``ord``, ``axis``,
    ``keepdims`` as in ``jnp.linalg.norm``.  optax: ``optax.safe_norm``.

    Example:
        >>> import jax, jax.numpy as jnp, gradtx.numerics as gn
        >>> print(gn.safe_norm(jnp.array([3.0, 4.0]), 1.0), gn.safe_norm(jnp.zeros(2), 1.0))
        5.0 1.0
        >>> print(jax.grad(lambda v: gn.safe_norm(v, 1e-6))(jnp.zeros(2)))
        [0. 0.]
    """
    full = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    small = full <= min_norm
    masked = jnp.linalg.norm(
        jnp.where(small, jnp.ones_like(x), x), ord=ord, axis=axis, keepdims=keepdims
    )
    if not keepdims:
        small = jnp.squeeze(small, axis=axis)
    return jnp.where(small, min_norm, masked)


def safe_root_mean_squares(x: Any, min_rms: Any) -> jax.Array:
    """``max(sqrt(mean |x|^2), min_rms)`` with a zero (not NaN) gradient below ``min_rms``.
    optax: ``optax.safe_root_mean_squares``.

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> print(gn.safe_root_mean_squares(jnp.array([1.0, 7.0]), 0.1))
        5.0
    """
    x = jnp.asarray(x)
    small = jnp.sqrt(jnp.mean(kit.abs_sq(x))) <= min_rms
    rms = jnp.sqrt(jnp.mean(kit.abs_sq(jnp.where(small, jnp.ones_like(x), x))))
    return jnp.where(small, min_rms, rms)


def safe_increment(count: Any) -> Any:
    """``count + 1``, staying at the dtype's largest value instead of overflowing (integer or
    float counters).  optax: ``optax.safe_increment``.

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> print(gn.safe_increment(jnp.int32(5)), gn.safe_increment(jnp.int32(2**31 - 1)))
        6 2147483647
    """
    dt = jnp.asarray(count).dtype
    if jnp.issubdtype(dt, jnp.integer):
        top = jnp.iinfo(dt).max
    elif jnp.issubdtype(dt, jnp.floating):
        top = jnp.finfo(dt).max
    else:
        raise ValueError(f"safe_increment: count of dtype {dt} is neither integer nor float")
    top = jnp.array(top, dt)
    return jnp.where(count < top, count + jnp.array(1, dt), top)


safe_int32_increment = safe_increment
"""The older name of ``safe_increment``.  optax: ``optax.safe_int32_increment``."""


def _normalized(v: Tree) -> Tree:
    return tree.scale(1.0 / tree.norm(v), v)


def power_iteration(
    matrix: Any,
    *,
    v0: Tree | None = None,
    num_iters: Any = 100,
    error_tolerance: Any = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
    key: Any = None,
) -> tuple[Any, Tree]:
    """The dominant eigenvalue ``lambda`` and unit eigenvector ``v`` of ``matrix`` (an array, or
    a function ``v -> matrix @ v`` on trees, then ``v0`` is required) by repeating
    ``v <- A v / ||A v||``, ``lambda = <v, A v>``, until ``||A v - lambda v|| / |lambda| <
    error_tolerance`` or ``num_iters`` steps.  Without ``v0``, ``v0 ~ U[-1, 1]`` from ``key``
    (default ``PRNGKey(0)``, as optax).  optax: ``optax.power_iteration``.

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> lam, v = gn.power_iteration(jnp.diag(jnp.array([1.0, 3.0, 2.0])))
        >>> print(round(float(lam), 4), jnp.round(jnp.abs(v), 3))
        3.0 [0. 1. 0.]
    """
    if callable(matrix):
        if v0 is None:
            raise ValueError("power_iteration: pass v0 when matrix is a function")
        mvp = matrix
    else:
        mvp = lambda v: jnp.matmul(matrix, v, precision=precision)
        if v0 is None:
            key = jax.random.PRNGKey(0) if key is None else key
            v0 = jax.random.uniform(key, matrix.shape[-1:], matrix.dtype, -1.0, 1.0)
    v0 = _normalized(v0)

    def unconverged(c):
        v, z, lam, i = c
        residual = tree.norm(tree.sub(z, tree.scale(lam, v)))
        return ~(jnp.abs(residual / lam) < error_tolerance) & (i < num_iters)

    def step(c):
        v = _normalized(c[1])
        z = mvp(v)
        return v, z, tree.vdot(v, z), c[3] + 1

    carry = (v0, mvp(v0), jnp.asarray(0.0), jnp.asarray(0))
    _, z, lam, _ = lax.while_loop(unconverged, step, carry)
    return lam, _normalized(z)


def _power(p: Any, n: int, precision: lax.Precision) -> Callable[[jax.Array], jax.Array]:
    """``m -> m^p`` by repeated squaring: unrolled for a concrete ``p`` (for powers of two the
    very products optax forms), a loop over the bits of a traced one."""
    if isinstance(p, jax.core.Tracer):

        def dynamic(m):
            def bit(c):
                r, b, e = c
                r = jnp.where(e % 2 == 1, jnp.matmul(r, b, precision=precision), r)
                return r, jnp.matmul(b, b, precision=precision), e // 2

            start = (jnp.eye(n, dtype=m.dtype), m, jnp.asarray(p).astype(jnp.int32))
            return lax.while_loop(lambda c: c[2] > 0, bit, start)[0]

        return dynamic
    value = float(np.asarray(p))
    if value < 1 or not value.is_integer():
        raise ValueError(f"matrix_inverse_pth_root: p={p!r} must be a positive integer")

    def unrolled(m):
        out, e = None, int(value)
        while e:
            if e & 1:
                out = m if out is None else jnp.matmul(out, m, precision=precision)
            e >>= 1
            if e:
                m = jnp.matmul(m, m, precision=precision)
        return out

    return unrolled


def matrix_inverse_pth_root(
    matrix: Any,
    p: Any,
    num_iters: Any = 100,
    ridge_epsilon: Any = 1e-6,
    error_tolerance: Any = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
) -> tuple[jax.Array, Any]:
    """``(A + r I)^(-1/p)`` for a symmetric PSD ``A`` and a positive integer ``p``, by coupled
    Newton iterations (Higham, *Functions of Matrices*, eq. 7.18), with the ridge
    ``r = ridge_epsilon * max(lambda_max(A), 1e-16)``; returns ``(root, error)`` where ``error
    = max |M - I|`` of the last iterate.  Stops after ``num_iters``, below ``error_tolerance``
    or when the error grows by over 1.2x (keeping the previous root).  Unlike optax's, correct
    for every ``p``, not only 1, 2, 4 and 8.  optax: ``optax.matrix_inverse_pth_root``.

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> root, _ = gn.matrix_inverse_pth_root(jnp.diag(jnp.array([8.0, 27.0])), 3)
        >>> print(jnp.round(jnp.diag(root), 4))
        [0.5    0.3333]
    """
    n = matrix.shape[0]
    power = _power(p, n, precision)  # checks p
    alpha = jnp.asarray(-1.0 / p, jnp.float32)
    eye = jnp.eye(n, dtype=jnp.float32)
    top, _ = power_iteration(matrix, num_iters=100, error_tolerance=1e-6, precision=precision)
    ridge = ridge_epsilon * jnp.maximum(top, 1e-16)
    if n == 1:
        return (matrix + ridge) ** alpha, 0

    def going(c):
        i, _, _, _, err, improving = c
        return (i < num_iters) & (err > error_tolerance) & improving

    def step(c):
        i, m, h, _, err, _ = c
        mi = (1 - alpha) * eye + alpha * m
        m_new = jnp.matmul(power(mi), m, precision=precision)
        err_new = jnp.max(jnp.abs(m_new - eye))
        return i + 1, m_new, jnp.matmul(h, mi, precision=precision), h, err_new, err_new < 1.2 * err

    damped = matrix + ridge * eye
    z = (1 + p) / (2 * jnp.linalg.norm(damped))
    m0, h0 = damped * z, eye * jnp.power(z, 1.0 / p)
    start = (0, m0, h0, h0, jnp.max(jnp.abs(m0 - eye)), True)
    _, m, h, h_prev, _, improving = lax.while_loop(going, step, start)
    keep = jnp.asarray(improving, h_prev.dtype)
    root = jnp.asarray(keep * h + (1 - keep) * h_prev, matrix.dtype)
    return root, jnp.max(jnp.abs(m - eye))


def nnls(
    A: jax.Array, b: jax.Array, iters: int, unroll: int | bool = 1, L: Any = None
) -> jax.Array:
    """``argmin_{x >= 0} ||A x - b||_2`` by ``iters`` steps of Polyak's (2015) fast projected
    gradient on ``Q = A^T A``, ``q = A^T b``: ``x' = max(p - (Q p - q) / L, 0)``, ``p' = x' +
    s_k (x' - x)`` with Nesterov's ``s_k``.  ``L`` bounds the spectral radius of ``Q`` (default
    ``min(||Q||_F, ||Q||_1)``); ``b`` may have a trailing batch axis; ``unroll`` goes to
    ``lax.scan``.  optax: ``optax.nnls``.

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> x = gn.nnls(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([5.0, 6.0]), 1000)
        >>> print(jnp.round(x, 2))
        [0.  1.7]
    """
    if A.ndim != 2 or b.ndim not in (1, 2) or b.shape[0] != A.shape[0]:
        raise ValueError(f"nnls: A must be (M, N) and b (M,) or (M, K); got {A.shape}, {b.shape}")
    Q, q = A.mT @ A, A.mT @ b
    if L is None:
        one = jnp.linalg.matrix_norm(Q, ord=1) if Q.size else 0
        L = jnp.minimum(jnp.linalg.matrix_norm(Q, ord="fro"), one)
    L = jnp.where(L == 0, 1, L)

    def step(c, _):
        x, p, t = c
        t_next = (1 + jnp.sqrt(1 + 4 * t**2)) / 2
        x_next = (p - (Q @ p - q) / L).clip(0)
        return (x_next, x_next + (t - 1) / t_next * (x_next - x), t_next), None

    x0 = jnp.zeros_like(b, shape=A.shape[-1:] + b.shape[1:])
    return lax.scan(step, (x0, x0, 0.0), length=iters, unroll=unroll)[0][0]


class MultiNormalDiagFromLogScale:
    """A Gaussian with independent coordinates, mean ``loc`` and standard deviation
    ``exp(log_scale)`` (broadcast together); what ``multi_normal`` returns."""

    def __init__(self, loc: Any, log_scale: Any):
        self._mean = jnp.asarray(loc)
        self._log_scale = jnp.asarray(log_scale)
        self._scale = jnp.exp(self._log_scale)
        self._param_shape = jax.lax.broadcast_shapes(self._mean.shape, self._scale.shape)

    def sample(self, shape: Sequence[int], key: Any) -> jax.Array:
        """``loc + exp(log_scale) * N(0, 1)`` of shape ``(*shape, *param_shape)`` (optax's
        draws for the same key)."""
        eps = jax.random.normal(key, shape=(*shape, *self._param_shape))
        return eps * self._scale + self._mean

    def log_prob(self, x: Any) -> jax.Array:
        """``sum -((x - loc) / s)^2 / 2 - log_scale - log(2 pi) / 2`` over the parameter axes,
        from ``log_scale`` itself (finite where ``s^2`` under- or overflows)."""
        dt = jnp.result_type(x, self._mean, self._scale)
        x, mean, ls = (jnp.asarray(v, dt) for v in (x, self._mean, self._log_scale))
        z = (x - mean) * jnp.exp(-ls)
        per = -0.5 * jnp.square(z) - ls - 0.5 * math.log(2 * math.pi)
        return jnp.sum(per, axis=tuple(range(-len(self._param_shape), 0)))

    @property
    def log_scale(self) -> jax.Array:
        return self._log_scale

    @property
    def params(self) -> list[jax.Array]:
        return [self._mean, self._log_scale]


def multi_normal(loc: Any, log_scale: Any) -> MultiNormalDiagFromLogScale:
    """A diagonal Gaussian ``N(loc, diag(exp(log_scale))^2)`` with ``sample(shape, key)``,
    ``log_prob(x)``, ``log_scale`` and ``params``.  optax: ``optax.multi_normal``.

    Example:
        >>> import jax.numpy as jnp, gradtx.numerics as gn
        >>> d = gn.multi_normal(jnp.zeros(2), jnp.zeros(2))
        >>> print(round(float(d.log_prob(jnp.zeros(2))), 4))
        -1.8379
    """
    return MultiNormalDiagFromLogScale(loc, log_scale)


@jax.custom_vjp
def _scaled(inputs: Tree, scale: Any) -> Tree:
    return inputs


def _scaled_fwd(inputs: Tree, scale: Any) -> tuple[Tree, Any]:
    return inputs, scale


def _scaled_bwd(scale: Any, g: Tree) -> tuple[Tree, None]:
    return jax.tree.map(lambda x: (x * scale).astype(jnp.result_type(x)), g), None


_scaled.defvjp(_scaled_fwd, _scaled_bwd)


def scale_gradient(inputs: Tree, scale: Any) -> Tree:
    """The identity forward, ``scale * cotangent`` backward (``stop_gradient`` for a concrete
    0, nothing for 1); ``scale`` may be traced.  optax: ``optax.scale_gradient``.

    Example:
        >>> import jax, gradtx.numerics as gn
        >>> print(jax.grad(lambda x: gn.scale_gradient(x, 0.5) ** 2)(3.0))
        3.0
    """
    if not isinstance(scale, jax.core.Tracer) and np.ndim(scale) == 0:
        if scale == 1.0:
            return inputs
        if scale == 0.0:
            return jax.lax.stop_gradient(inputs)
    return _scaled(inputs, scale)


__all__ = [  # optax's top-level names (MultiNormalDiagFromLogScale is not one)
    "global_norm",
    "matrix_inverse_pth_root",
    "multi_normal",
    "nnls",
    "power_iteration",
    "safe_increment",
    "safe_int32_increment",
    "safe_norm",
    "safe_root_mean_squares",
    "scale_gradient",
    "update_infinity_moment",
    "update_moment",
    "update_moment_per_elem_norm",
]
