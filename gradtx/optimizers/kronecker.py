"""Kronecker-factored preconditioning: the machinery Shampoo and SOAP share.

A leaf is seen as a tensor whose axes each get a factor (a ``d x d`` matrix of second-moment
statistics) or none.  Before that the leaf may be permuted (a channels-last convolution), its
small neighbouring axes merged (``merge_dims``) and each axis cut into blocks of at most
``block_size`` (``Layout``).  Blocks of one shape are *stacked*: a part of a leaf is an array
``(N, s_0, ..., s_k)`` holding its ``N`` blocks, and its factors are ``(N, s_i, s_i)`` stacks, so
every per-block operation is one batched operation.  The expensive matrix work (inverse roots,
eigendecompositions, QR) is batched further across leaves with ``grouped``: all stacks of ``d x
d`` matrices are concatenated and handled by one batched call (``inverse_roots`` is compiled
once per shape, so eager use does not recompile its iteration).  ``when`` is ``lax.cond`` under
a trace and a plain branch when eager.

Writing another Kronecker-factored method on this (e.g. PSGD-Kron, Li 2018): ``layout`` /
``to_blocks`` / ``from_blocks`` give the stacked blocks, ``factor_tree`` / ``stacked_eye`` its
per-axis state (PSGD keeps triangular or diagonal factors ``Q_i``: a ``fill`` of another shape
per axis), ``along`` applies per-axis matrices (``Q_i^T Q_i`` twice for PSGD's ``P g``),
``grouped`` batches per-size work (PSGD's factor updates need a random probe ``v`` per block,
a triangular solve and a normalisation by a norm bound: new helpers beside ``gram``), ``when``
amortises it (PSGD's update probability), ``stacked_shardings`` splits the stacks over devices.

Numerics (each computed in a chosen precision, float32 by default for half- and single-precision
models, float64 on request or for float64 models):

* ``inverse_root``: ``(A + r I)^(-1/p)`` from an eigendecomposition (stable in float32, with a
  derivative that stays finite where eigenvalues repeat), or by the coupled Newton iteration of
  the scalable-Shampoo reference (its stopping rule and its power-iteration estimate of
  ``lambda_max`` for a relative ridge), so that either paper's numbers can be reproduced.
* ``eigenbasis``: SOAP's first eigenbasis (descending eigenvalues), optionally completed
  deterministically where the factor is rank-deficient; ``refresh_basis``: one step of power
  iteration and a QR decomposition with the columns sorted by estimated eigenvalue.

``gradtx.numerics.matrix_inverse_pth_root`` and ``power_iteration`` are optax's variants (a
``1e-16`` floor on ``lambda_max``, a residual stopping rule, a PRNG start vector): close to, but
not, the scalable-Shampoo reference's, which ``inverse_root(method="newton")`` follows.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradtx import kit

HIGHEST = lax.Precision.HIGHEST


# --- the layout of a leaf: permute, merge, cut into stacked blocks ------------------------------


def merge_dims(shape: Sequence[int], max_dim: int) -> tuple[int, ...]:
    """Neighbouring axes multiplied together while the product stays <= ``max_dim``:
    ``(1, 2, 512, 1, 2048, 1, 3, 4) -> (1024, 2048, 12)`` for ``max_dim = 1024``.  An axis
    longer than ``max_dim`` stays alone; all-ones becomes ``(1,)``, a scalar stays ``()``.  (The
    rule of scalable Shampoo's ``merge_small_dims`` and of SOAP's ``merge_dims``.)"""
    shape = tuple(int(d) for d in shape)
    if shape and all(d == 1 for d in shape):
        return (1,)
    out: list[int] = []
    product = 1
    for d in shape:
        if product * d <= max_dim:
            product *= d
            continue
        if product > 1:
            out.append(product)
        product = d
    if product > 1:
        out.append(product)
    return tuple(out)


class Part(NamedTuple):
    """Blocks of one shape in a leaf: along axis ``i`` they start at ``start[i]`` and there are
    ``count[i]`` of them, each ``size[i]`` long; stacked they are ``(prod(count), *size)``."""

    start: tuple[int, ...]
    count: tuple[int, ...]
    size: tuple[int, ...]


class Layout(NamedTuple):
    """How one leaf is seen: ``perm`` (axes permutation applied first, or ``None``), ``merged``
    (the shape after merging), ``parts`` (stacked blocks covering it) and, per part, which axes
    have a factor."""

    shape: tuple[int, ...]
    perm: tuple[int, ...] | None
    merged: tuple[int, ...]
    parts: tuple[Part, ...]
    factored: tuple[tuple[bool, ...], ...]

    @property
    def has_factors(self) -> bool:
        return any(any(f) for f in self.factored)


def _axis_pieces(d: int, block: int | None) -> list[tuple[int, int, int]]:
    """``(start, count, size)`` runs covering an axis of length ``d``: full blocks, then the
    shorter remainder (scalable Shampoo's ``BlockPartitioner`` split)."""
    if block is None or d <= block:
        return [(0, 1, d)]
    full, rest = divmod(d, block)
    return [(0, full, block)] + ([(full * block, 1, rest)] if rest else [])


@functools.cache
def layout(
    shape: tuple[int, ...],
    *,
    merge: int | None = None,
    block_size: int | None = None,
    perm: tuple[int, ...] | None = None,
    factored: Callable[[tuple[int, ...]], tuple[bool, ...]] = lambda size: (True,) * len(size),
) -> Layout:
    """The ``Layout`` of a leaf of ``shape``: permuted by ``perm``, merged with
    ``merge_dims(., merge)`` (``None``: not merged), cut into blocks of at most ``block_size``;
    ``factored(block_shape)`` says which axes of a block get a factor."""
    seen = tuple(shape[a] for a in perm) if perm is not None else tuple(shape)
    merged = merge_dims(seen, merge) if merge is not None else seen
    parts = tuple(
        Part(*(tuple(x) for x in zip(*runs, strict=True))) if runs else Part((), (), ())
        for runs in itertools.product(*(_axis_pieces(d, block_size) for d in merged))
    )
    return Layout(tuple(shape), perm, merged, parts, tuple(factored(p.size) for p in parts))


def to_blocks(x: jax.Array, lay: Layout) -> list[jax.Array]:
    """The stacked blocks ``(N, *size)`` of each part of ``x``."""
    if lay.perm is not None:
        x = jnp.transpose(x, lay.perm)
    x = jnp.reshape(x, lay.merged)
    out = []
    k = len(lay.merged)
    for part in lay.parts:
        window = x[tuple(slice(a, a + c * s) for a, c, s in zip(*part, strict=True))]
        split = jnp.reshape(
            window, [n for c, s in zip(part.count, part.size, strict=True) for n in (c, s)]
        )
        order = [2 * i for i in range(k)] + [2 * i + 1 for i in range(k)]
        out.append(jnp.reshape(jnp.transpose(split, order), (-1, *part.size)))
    return out


def from_blocks(blocks: Sequence[jax.Array], lay: Layout) -> jax.Array:
    """The inverse of ``to_blocks``: the leaf reassembled in its own shape."""
    k = len(lay.merged)
    pieces = {}
    for part, b in zip(lay.parts, blocks, strict=True):
        grid = jnp.reshape(b, (*part.count, *part.size))
        order = [i for a in range(k) for i in (a, k + a)]
        pieces[part.start] = jnp.reshape(
            jnp.transpose(grid, order), [c * s for c, s in zip(part.count, part.size, strict=True)]
        )
    x = _assemble(pieces, lay.merged) if len(lay.parts) > 1 else pieces[lay.parts[0].start]
    seen = tuple(lay.shape[a] for a in lay.perm) if lay.perm is not None else lay.shape
    x = jnp.reshape(x, seen)
    if lay.perm is not None:
        x = jnp.transpose(x, np.argsort(lay.perm))
    return x


def _assemble(pieces: dict, merged: tuple[int, ...]) -> jax.Array:
    """Concatenates the parts back, axis by axis (the last axis first)."""
    for axis in reversed(range(len(merged))):
        rows: dict[tuple, list] = {}
        for start in sorted(pieces):
            key = start[:axis] + start[axis + 1 :]
            rows.setdefault(key, []).append(pieces[start])
        pieces = {
            (*k[:axis], 0, *k[axis:]): (jnp.concatenate(v, axis) if len(v) > 1 else v[0])
            for k, v in rows.items()
        }
    (x,) = pieces.values()
    return x


# --- per-block products ----------------------------------------------------------------------


def gram(x: jax.Array, axis: int) -> jax.Array:
    """``X_(axis) X_(axis)^T`` for every block of a stack ``x`` (``N, *size``): the contraction
    with itself over every axis but ``axis``, shape ``(N, size[axis], size[axis])``."""
    moved = jnp.moveaxis(x, axis + 1, 1)
    flat = jnp.reshape(moved, (*moved.shape[:2], -1))
    return jnp.matmul(flat, jnp.swapaxes(flat, 1, 2), precision=HIGHEST)


def along(x: jax.Array, mats: Sequence[jax.Array | None], *, transpose: bool = False) -> jax.Array:
    """``x`` times ``M_i`` along each axis ``i`` with a matrix: ``y = sum_j x_j M_i[j, k]``
    (``M_i[k, j]`` with ``transpose``) for every block of the stack; axes without one are left
    as they are.  With ``M = Q`` this gives SOAP's coordinates ``Q^T g`` in the eigenbasis, with
    ``transpose`` the way back; a symmetric ``M`` is Shampoo's preconditioner."""
    for axis, m in enumerate(mats):
        if m is None:
            continue
        if transpose:
            m = jnp.swapaxes(m, 1, 2)
        moved = jnp.moveaxis(x, axis + 1, -1)
        x = jnp.moveaxis(jnp.einsum("n...j,njk->n...k", moved, m, precision=HIGHEST), -1, axis + 1)
    return x


def grouped(fn: Callable[..., Any], mats: Sequence[jax.Array], *per_mat: Sequence[Any]) -> list:
    """``fn`` on every ``(N_i, d, d)`` stack of ``mats``, batched: stacks of the same ``d`` and
    dtype are concatenated into one ``(sum N_i, d, d)`` stack and handed to ``fn`` in one call
    (``fn`` works on a stack: ``vmap`` it, or use a batched routine such as ``inverse_roots``),
    then its outputs are split back.  ``per_mat[j][i]`` is an array ``(N_i, ...)`` or a scalar
    (broadcast to ``(N_i,)``) handed to ``fn`` alongside stack ``i``.  Returns, per stack,
    ``fn``'s outputs (a tuple of arrays with a leading ``N_i``) for that stack."""
    by_size: dict[tuple, list[int]] = {}
    for i, m in enumerate(mats):
        by_size.setdefault((m.shape[-1], jnp.dtype(m.dtype)), []).append(i)
    out: list = [None] * len(mats)
    previous: Any = None
    for members in by_size.values():
        counts = [mats[i].shape[0] for i in members]

        def cat(values, counts=counts, members=members):
            arrays = [jnp.broadcast_to(jnp.asarray(values[i]), (n, *jnp.shape(values[i])[1:]))
                      if jnp.ndim(values[i]) else jnp.full((n,), values[i])
                      for i, n in zip(members, counts, strict=True)]  # fmt: skip
            return arrays[0] if len(arrays) == 1 else jnp.concatenate(arrays)

        stack = cat(mats)
        if previous is not None:
            # one stack after another: jaxlib's CPU LAPACK kernels (0.10.2) split a batch over
            # XLA's intra-op pool and block until it is done, so two batched calls at once can
            # hold every pool thread and deadlock (2 cores: 7 of 8 Shampoo runs with `eigh`
            # roots under vmap hung).  Stacks of other sizes are few; ordering costs nothing.
            stack = stack + _after(previous[0]).astype(stack.dtype)
        results = fn(stack, *(cat(v) for v in per_mat))
        results = results if isinstance(results, tuple) else (results,)
        previous = results
        bounds = np.cumsum([0, *counts])
        for k, i in enumerate(members):
            out[i] = tuple(r[bounds[k] : bounds[k + 1]] for r in results)
    return out


def _after(x: jax.Array) -> jax.Array:
    """A ``-0.0`` computed from ``x``: adding it changes no bit of an array but makes its
    consumers wait for ``x`` (an optimisation barrier alone did not order the calls)."""
    first = jnp.ravel(x)[0]
    return -0.0 * jnp.abs(jnp.where(jnp.isfinite(first), first, 0))


when = kit.when  # (kit's; the Kronecker optimizers call it as kronecker.when)


# --- inverse p-th roots ------------------------------------------------------------------------


def _ridge(lam_max: jax.Array, epsilon: jax.Array, relative: bool) -> jax.Array:
    """``epsilon * max(lambda_max, 1e-6)`` (relative), else ``epsilon``: the scalable-Shampoo
    reference's ridge."""
    return epsilon * jnp.maximum(lam_max, 1e-6) if relative else epsilon + 0 * lam_max


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _eigh_root(a: jax.Array, p: jax.Array, epsilon: jax.Array, relative: bool) -> jax.Array:
    lam, q = jnp.linalg.eigh(a)
    h = (jnp.maximum(lam, 0) + _ridge(lam[-1], epsilon, relative)) ** (-1 / p)
    return jnp.matmul(q * h, q.T, precision=HIGHEST)


@_eigh_root.defjvp
def _eigh_root_jvp(relative, primals, tangents):
    """The derivative of ``f(A) = Q diag(h(lambda)) Q^T`` (Daleckii-Krein): ``Q (F o (Q^T dA Q))
    Q^T`` with ``F_ij`` the divided difference of ``h`` (its derivative where two eigenvalues
    meet, which the derivative of ``eigh`` alone would turn into a division by zero), plus the
    terms of the ridge (it follows ``lambda_max``) and of the exponent."""
    a, p, epsilon = primals
    da, dp, deps = tangents
    lam, q = jnp.linalg.eigh(a)
    pos = jnp.maximum(lam, 0)
    ridge = _ridge(lam[-1], epsilon, relative)
    base = pos + ridge
    h = base ** (-1 / p)
    dh = jnp.where(lam > 0, -h / (p * base), 0.0)  # d h / d lambda
    rotated = jnp.matmul(q.T, jnp.matmul(da, q, precision=HIGHEST), precision=HIGHEST)
    gap = lam[:, None] - lam[None, :]
    tiny = math.sqrt(jnp.finfo(a.dtype).eps) * jnp.maximum(jnp.max(jnp.abs(lam)), 1e-30)
    close = jnp.abs(gap) <= tiny  # where h's divided difference is its derivative
    divided = jnp.where(close, (dh[:, None] + dh[None, :]) / 2, (h[:, None] - h[None, :]) /
                        jnp.where(close, 1, gap))  # fmt: skip
    d_ridge = (deps * jnp.maximum(lam[-1], 1e-6)
               + epsilon * jnp.where(lam[-1] > 1e-6, rotated[-1, -1], 0.0)
               if relative else deps + 0 * lam[-1])  # fmt: skip
    d_diag = -h / (p * base) * d_ridge + h * jnp.log(base) / p**2 * dp
    inner = divided * rotated + jnp.diag(d_diag)
    out = jnp.matmul(q * h, q.T, precision=HIGHEST)
    return out, jnp.matmul(q, jnp.matmul(inner, q.T, precision=HIGHEST), precision=HIGHEST)


def _power_iteration(a: jax.Array, num_iters: int, tolerance: float) -> jax.Array:
    """``lambda_max`` as the scalable-Shampoo reference estimates it: from the fixed start
    ``U(-1, 1)`` of ``RandomState(1729)``, ``v <- A v / ||A v||`` until the Rayleigh quotient
    moves by at most ``tolerance`` (absolute) or ``num_iters`` steps."""
    n = a.shape[-1]
    v0 = jnp.asarray(np.random.RandomState(1729).uniform(-1.0, 1.0, n), a.dtype)

    def body(c):
        i, v, s, _ = c
        v = v / jnp.linalg.norm(v)
        av = jnp.matmul(a, v, precision=HIGHEST)
        s_new = jnp.dot(v, av, precision=HIGHEST)
        return i + 1, av, s_new, jnp.abs(s_new - s) > tolerance

    start = (0, v0, jnp.zeros([], a.dtype), jnp.asarray(True))
    return lax.while_loop(lambda c: (c[0] < num_iters) & c[3], body, start)[2]


def _mat_power(m: jax.Array, p: jax.Array) -> jax.Array:
    """``m^p`` for a (possibly traced) positive integer ``p``, by the bits of ``p``."""

    def body(c):
        e, out, b = c
        out = jnp.where(e % 2 == 1, jnp.matmul(b, out, precision=HIGHEST), out)
        return e // 2, out, jnp.matmul(b, b, precision=HIGHEST)

    start = (p.astype(jnp.int32), jnp.eye(m.shape[0], dtype=m.dtype), m)
    return lax.while_loop(lambda c: c[0] > 0, body, start)[1]


def _newton_root(
    a: jax.Array, p: jax.Array, epsilon: jax.Array, relative: bool, num_iters: int, tol: Any
) -> tuple[jax.Array, jax.Array]:
    """``(A + r I)^(-1/p)`` by the coupled Newton iteration (Higham 2008, eq. 7.18) as the
    scalable-Shampoo reference runs it: ``M_0 = z (A + rI)``, ``H_0 = z^(1/p) I`` with ``z = (1 +
    p) / (2 ||A + rI||_F)``; ``T = (1 - 1/p) I + M / p``, ``M <- T^p M``, ``H <- H T`` while
    ``max|M - I| > tol``, the error grew by less than 1.2x and under ``num_iters`` steps (if it
    grew, the previous ``H``).  Returns the root and ``max|M - I|`` (the failure test)."""
    n = a.shape[-1]
    ridge = _ridge(_power_iteration(a, 100, 1e-6) if relative else 1.0, epsilon, relative)
    if n == 1:
        return (a + ridge) ** (-1 / p), jnp.zeros([], a.dtype)
    eye = jnp.eye(n, dtype=a.dtype)
    alpha = -1 / p
    damped = a + ridge * eye
    z = (1 + p) / (2 * jnp.linalg.norm(damped))
    m0, h0 = damped * z, eye * z ** (1 / p)

    def body(c):
        i, m, h, _, err, _ = c
        t = (1 - alpha) * eye + alpha * m
        m_new = jnp.matmul(_mat_power(t, p), m, precision=HIGHEST)
        err_new = jnp.max(jnp.abs(m_new - eye))
        return i + 1, m_new, jnp.matmul(h, t, precision=HIGHEST), h, err_new, err_new < 1.2 * err

    def going(c):
        return (c[0] < num_iters) & (c[4] > tol) & c[5]

    start = (0, m0, h0, h0, jnp.max(jnp.abs(m0 - eye)), jnp.asarray(True))
    _, m, h, h_prev, _, improving = lax.while_loop(going, body, start)
    return jnp.where(improving, h, h_prev), jnp.max(jnp.abs(m - eye))


def inverse_root(
    a: jax.Array,
    p: jax.Array,
    epsilon: jax.Array,
    *,
    relative: bool = True,
    method: str = "eigh",
    dtype: Any = None,
    num_iters: int = 100,
    tolerance: Any = 1e-6,
) -> tuple[jax.Array, jax.Array]:
    """``(A + r I)^(-1/p)`` of one symmetric PSD matrix (``vmap`` it for a stack) and an error:
    ``r = epsilon * max(lambda_max, 1e-6)`` (``relative``) or ``epsilon``.

    ``method="eigh"``: from the eigendecomposition, ``Q diag((max(lambda, 0) + r)^(-1/p)) Q^T``
    with ``lambda_max`` exact; error 0 (NaN if it failed).  ``"newton"``: the coupled Newton
    iteration with ``lambda_max`` from power iteration, as the scalable-Shampoo reference (its
    error is ``max|M - I|``; its ``tolerance`` and ``num_iters``).  Computed in ``dtype`` (default:
    the widest of float32 and ``a``'s), returned in ``a``'s dtype.
    """
    k = jnp.promote_types(jnp.float32, a.dtype) if dtype is None else jnp.dtype(dtype)
    ak, pk, ek = a.astype(k), jnp.asarray(p).astype(k), jnp.asarray(epsilon).astype(k)
    if method == "eigh":
        root = _eigh_root(ak, pk, ek, relative)
        err = jnp.where(jnp.all(jnp.isfinite(root)), 0.0, jnp.nan)
    elif method == "newton":
        root, err = _newton_root(ak, pk, ek, relative, num_iters, tolerance)
    else:
        raise ValueError(f"inverse_root: method={method!r} is unknown; allowed: 'eigh', 'newton'")
    return root.astype(a.dtype), err.astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("relative", "method", "dtype", "num_iters"))
def inverse_roots(
    a: jax.Array,
    p: jax.Array,
    epsilon: jax.Array,
    tolerance: jax.Array,
    *,
    relative: bool = True,
    method: str = "eigh",
    dtype: Any = None,
    num_iters: int = 100,
) -> tuple[jax.Array, jax.Array]:
    """``inverse_root`` of every matrix of a stack ``a`` ``(N, d, d)`` with exponents ``p``
    ``(N,)``: ``(roots (N, d, d), errors (N,))``.  Compiled once per shape and options, so an
    eager caller does not recompile the iteration on every call (inlined under an outer jit)."""

    def one(x, q):
        return inverse_root(x, q, epsilon, relative=relative, method=method, dtype=dtype,
                            num_iters=num_iters, tolerance=tolerance)  # fmt: skip

    return jax.vmap(one)(a, p)


# --- eigenbases ------------------------------------------------------------------------------


def eigenbasis(a: jax.Array, *, complete: bool = False, dtype: Any = None) -> jax.Array:
    """SOAP's first eigenbasis of a symmetric PSD ``a``: eigenvectors by descending eigenvalue
    (of ``a + 1e-30 I``, as the paper's code).

    Where ``a`` is rank-deficient (the first factor of a ``m x n`` gradient with ``m > n + 1``)
    the eigenvectors of its null space are whatever the ``eigh`` implementation returns, and the
    trajectory depends on them.  ``complete=True`` replaces them deterministically: the null
    space (eigenvalues ``<= sqrt(eps) lambda_max``) gets the eigenvectors of ``P D P``, ``P`` its
    projector and ``D = diag(n, ..., 1)``, which depend on the null space alone.
    """
    k = jnp.promote_types(jnp.float32, a.dtype) if dtype is None else jnp.dtype(dtype)
    n = a.shape[-1]
    ak = a.astype(k) + 1e-30 * jnp.eye(n, dtype=k)
    lam, q = jnp.linalg.eigh(ak)
    lam, q = lam[::-1], q[:, ::-1]
    if complete and n > 1:
        rank = jnp.sum(lam > math.sqrt(jnp.finfo(k).eps) * jnp.maximum(lam[0], 0))
        keep = jnp.arange(n) < rank
        proj = jnp.eye(n, dtype=k) - jnp.matmul(q * keep, q.T, precision=HIGHEST)
        d = jnp.arange(n, 0, -1, dtype=k)
        _, w = jnp.linalg.eigh(jnp.matmul(proj * d, proj, precision=HIGHEST))
        w = w[:, ::-1]
        q = jnp.where(keep, q, jnp.take(w, jnp.maximum(jnp.arange(n) - rank, 0), axis=1))
    return q.astype(a.dtype)


def refresh_basis(a: jax.Array, q: jax.Array, *, dtype: Any = None) -> tuple[jax.Array, jax.Array]:
    """SOAP's eigenbasis update: columns of ``q`` sorted by the estimated eigenvalues
    ``diag(q^T a q)`` (descending, stable), one power-iteration step ``a q`` and a QR
    decomposition.  Returns the new basis and the sort order (Adam's second moment, which is
    not rotated, is permuted with it)."""
    k = jnp.promote_types(jnp.float32, a.dtype) if dtype is None else jnp.dtype(dtype)
    ak, qk = a.astype(k), q.astype(k)
    estimate = jnp.sum(qk * jnp.matmul(ak, qk, precision=HIGHEST), axis=0)
    order = jnp.argsort(-estimate, stable=True)
    new, _ = jnp.linalg.qr(jnp.matmul(ak, qk[:, order], precision=HIGHEST))
    return new.astype(q.dtype), order


# --- state helpers -------------------------------------------------------------------------------


def factor_tree(lay: Layout, fill: Callable[[tuple[int, ...], int], jax.Array]) -> tuple:
    """Per part, per axis: ``fill(count, d)`` where the axis has a factor, ``None`` elsewhere."""
    return tuple(
        tuple(fill(part.count, d) if f else None for d, f in zip(part.size, flags, strict=True))
        for part, flags in zip(lay.parts, lay.factored, strict=True)
    )


def stacked_eye(count: tuple[int, ...], d: int, dtype: Any, scale: Any = 1.0) -> jax.Array:
    """``scale * I`` stacked ``prod(count)`` times: ``(N, d, d)``."""
    return jnp.broadcast_to(scale * jnp.eye(d, dtype=dtype), (math.prod(count), d, d))


def flat_factors(tree: Sequence[tuple]) -> list[jax.Array]:
    """The factor stacks of a list of per-leaf factor tuples, in order (``None`` skipped)."""
    return [m for leaf in tree for part in leaf for m in part if m is not None]


def unflatten_factors(tree: Sequence[tuple], values: Sequence[Any]) -> list[tuple]:
    """``tree`` (as ``flat_factors`` reads it) with its stacks replaced by ``values``."""
    it = iter(values)
    return [
        tuple(tuple(None if m is None else next(it) for m in part) for part in leaf)
        for leaf in tree
    ]


def stacked_shardings(shardings: Any, abstract_state: Any, mesh: Any, axis: str) -> Any:
    """``shardings`` (e.g. from ``gradtx.parallel.state_shardings``) with every stack of factor
    matrices ``(N, d, d)`` that was left replicated split along ``axis`` over its blocks, when
    ``N`` is a multiple of the axis size: each device then keeps, and refreshes, its share of
    the preconditioners."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    n = mesh.shape[axis]

    def one(s, x):
        split = (
            len(x.shape) == 3 and x.shape[1] == x.shape[2] and x.shape[0] % n == 0
            and s.is_fully_replicated
        )  # fmt: skip
        return NamedSharding(mesh, P(axis)) if split else s

    return jax.tree.map(one, shardings, abstract_state)


__all__: list[str] = []  # the machinery is reached as gradtx.optimizers.kronecker
