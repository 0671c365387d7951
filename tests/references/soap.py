"""Reference of ``gradtx/optimizers/soap.py``: SOAP (Vyas et al. 2024, "SOAP: Improving and
Stabilizing Shampoo using Adam"), transcribed from the algorithm of the paper and the authors'
public PyTorch implementation (``soap.py`` of the paper's repository), one block at a time with
NumPy loops.

Per preconditioned dimension ``i`` of a (merged, blocked) gradient ``G`` the factor is
``GG_i = sb GG_i + (1 - sb) G_(i) G_(i)^T`` (``G_(i)`` the slices along ``i``); its eigenbasis
``Q_i`` comes from ``eigh`` on the first step (which moves nothing) and from one step of power
iteration and a QR decomposition every ``precondition_frequency`` steps.  In between, Adam runs
on ``G`` rotated into the eigenbasis (``Q_i^T`` along every axis ``i``) and its direction is
rotated back.  Checked once (a script, not part of the suite) against the authors' file
(github.com/nikhilvyas/SOAP ``soap.py`` at a1e553530fde97d0e6b307d7c82ac6d38b072340) run by
torch in float64 with its float32 casts of ``eigh``/QR disabled: 3e-15 over 30 steps on leaves
of rank 1, 2 and 4, with merging, channels_last, weight decay and normalisation.  Its own code
computes the bases in float32 whatever the params (``basis_dtype=np.float32`` here).
``one_sided``, ``block_size`` and ``complete_basis`` are gradtx's additions.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from . import reference
from .core import Chain, Ref, at
from .core import learning_rate as descent


def soap_merged_shape(shape: tuple[int, ...], max_dim: int) -> tuple[int, ...]:
    """The paper code's ``merge_dims``: neighbouring dimensions are multiplied together while
    the product stays <= ``max_dim``."""
    out: list[int] = []
    current = 1
    for d in shape:
        if current * d > max_dim:
            if current > 1:
                out.append(current)
                current = d
            else:
                out.append(d)
                current = 1
        else:
            current *= d
    if current > 1 or not out:
        out.append(current)
    return tuple(out)


def block_slices(shape: tuple[int, ...], block_size: int | None) -> list[tuple[slice, ...]]:
    """The blocks of an array of ``shape``, row-major: each axis longer than ``block_size`` is
    cut into pieces of ``block_size`` and a shorter remainder."""
    per_axis = []
    for d in shape:
        if block_size is None or d <= block_size:
            per_axis.append([slice(0, d)])
        else:
            per_axis.append([slice(a, min(a + block_size, d)) for a in range(0, d, block_size)])
    return [tuple(c) for c in itertools.product(*per_axis)]


def gram(x: np.ndarray, axis: int) -> np.ndarray:
    """``X_(axis) X_(axis)^T``: contraction of ``x`` with itself over every other axis."""
    others = [a for a in range(x.ndim) if a != axis]
    return np.tensordot(x, x, axes=(others, others))


def rotate(x: np.ndarray, mats: list[np.ndarray | None], back: bool) -> np.ndarray:
    """``Q_i^T`` (or ``Q_i`` with ``back``) along every axis ``i`` that has a matrix, as the
    paper's code does it: contract axis 0 and append the result as the last axis."""
    for q in mats:
        if q is None:
            x = np.moveaxis(x, 0, -1)
        else:
            x = np.tensordot(x, q, axes=([0], [1 if back else 0]))
    return x


def in_dtype(fn, dtype: Any):
    """``fn`` computed on its inputs cast to ``dtype`` (``None``: float64), result in float64."""

    def call(*xs):
        dt = np.float64 if dtype is None else np.dtype(dtype)
        out = fn(*(np.asarray(x).astype(dt) for x in xs))
        return tuple(np.asarray(o, np.float64) for o in out)

    return call


class ScaleBySoap(Ref):
    """``scale_by_soap``'s direction: ``u = 0`` on the first step; then, with ``s = t - 1``,
    ``m = b1 m + (1 - b1) G'``, ``v = b2 v + (1 - b2) G'^2`` on ``G' = rotate(G)``,
    ``u = rotate_back(m / (sqrt(v) + eps))`` (divided by its RMS with ``normalize_grads``),
    times ``sqrt(1 - b2^s) / (1 - b1^s)`` with ``correct_bias``."""

    def __init__(self, b1, b2, shampoo_beta, eps, precondition_frequency, max_precond_dim,
                 merge_dims, precondition_1d, normalize_grads, data_format, correct_bias,
                 one_sided, block_size, complete_basis, basis_dtype):  # fmt: skip
        self.b1, self.b2, self.sb, self.eps = b1, b2, shampoo_beta, eps
        self.freq, self.max_dim, self.merge = precondition_frequency, max_precond_dim, merge_dims
        self.one_d, self.normalize, self.bias = precondition_1d, normalize_grads, correct_bias
        self.channels_last, self.block = data_format == "channels_last", block_size or None
        self.one_sided, self.complete, self.dtype = one_sided, complete_basis, basis_dtype

    # --- the leaf's view: permuted (channels_last), merged, cut into blocks -----------------

    def view(self, x: np.ndarray) -> np.ndarray:
        if self.merge and self.channels_last and x.ndim == 4:
            x = np.transpose(x, (0, 3, 1, 2))
        if self.merge and x.ndim > 1:
            x = x.reshape(soap_merged_shape(x.shape, self.max_dim))
        return x

    def unview(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.merge and self.channels_last and len(shape) == 4:
            n, h, w, c = shape
            return x.reshape(n, c, h, w).transpose(0, 2, 3, 1)
        return x.reshape(shape)

    def has_factor(self, block_shape: tuple[int, ...], ndim: int) -> list[bool]:
        """Which axes of a block get a factor; a vector (``ndim``: the leaf's own rank) only
        with ``precondition_1d`` (a matrix merged into one axis does not need it)."""
        if ndim == 1:
            return [self.one_d and block_shape[0] <= self.max_dim]
        flags = [d <= self.max_dim for d in block_shape]
        if self.one_sided and len(block_shape) > 1:  # only the shortest axis (the first of ties)
            shortest = int(np.argmin(block_shape))
            flags = [f and i == shortest for i, f in enumerate(flags)]
        return flags

    # --- the eigenbasis --------------------------------------------------------------------

    def first_basis(self, gg: np.ndarray) -> np.ndarray:
        def eig(a):
            n = a.shape[0]
            lam, q = np.linalg.eigh(a + 1e-30 * np.eye(n, dtype=a.dtype))
            lam, q = lam[::-1], q[:, ::-1]
            if self.complete and n > 1:
                # gradtx's deterministic completion of a rank-deficient factor (not the
                # authors'): the null space gets the eigenvectors of P diag(n, ..., 1) P
                rank = int(np.sum(lam > np.sqrt(np.finfo(a.dtype).eps) * max(lam[0], 0)))
                proj = np.eye(n, dtype=a.dtype) - q[:, :rank] @ q[:, :rank].T
                _, w = np.linalg.eigh(proj @ np.diag(np.arange(n, 0, -1.0)) @ proj)
                q = np.concatenate([q[:, :rank], w[:, ::-1][:, : n - rank]], axis=1)
            return (q,)

        return in_dtype(eig, self.dtype)(gg)[0]

    def refresh(self, gg: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One power-iteration step and QR, columns first sorted by the estimated eigenvalues
        ``diag(Q^T GG Q)`` (descending); returns the new basis and the sort order."""

        def qr(a, o):
            order = np.argsort(-np.diag(o.T @ a @ o), kind="stable")
            new, _ = np.linalg.qr(a @ o[:, order])
            return new, order.astype(np.float64)

        new, order = in_dtype(qr, self.dtype)(gg, q)
        return new, order.astype(np.int64)

    # --- the steps ---------------------------------------------------------------------------

    def init(self, params):
        self.state: list[list[dict] | None] = [None] * len(params)

    def step(self, grads, params, t):
        b1, b2, eps = at(self.b1, t), at(self.b2, t), at(self.eps, t)
        sb = b2 if self.sb is None else at(self.sb, t)
        out = []
        for i, g in enumerate(grads):
            x = self.view(g)
            blocks = block_slices(x.shape, self.block)
            if t == 1:
                self.state[i] = [self.start(x[b], sb, g.ndim) for b in blocks]
                out.append(np.zeros_like(g))
                continue
            s = t - 1
            u = np.zeros_like(x)
            for b, st in zip(blocks, self.state[i], strict=True):
                gp = rotate(x[b], st["Q"], back=False)
                st["m"] = b1 * st["m"] + (1 - b1) * gp
                st["v"] = b2 * st["v"] + (1 - b2) * gp * gp
                u[b] = rotate(st["m"] / (np.sqrt(st["v"]) + eps), st["Q"], back=True)
            u = self.unview(u, g.shape)
            if self.normalize:
                u = u / (1e-30 + np.sqrt(np.mean(u * u)))
            scale = math.sqrt(1 - b2**s) / (1 - b1**s) if self.bias else 1.0
            out.append(scale * u)
            for b, st in zip(blocks, self.state[i], strict=True):
                self.after(x[b], st, s, sb)
        return out

    def start(self, x: np.ndarray, sb: float, ndim: int) -> dict:
        flags = self.has_factor(x.shape, ndim)
        gg = [(1 - sb) * gram(x, a) if f else None for a, f in enumerate(flags)]
        q = [None if m is None else self.first_basis(m) for m in gg]
        return {"GG": gg, "Q": q, "m": np.zeros_like(x), "v": np.zeros_like(x)}

    def after(self, x: np.ndarray, st: dict, s: int, sb: float) -> None:
        """The statistics and, every ``precondition_frequency`` steps, the eigenbasis, after the
        update (so the current gradient never rotates itself); ``m`` follows the basis."""
        m = rotate(st["m"], st["Q"], back=True)
        st["GG"] = [None if f is None else sb * f + (1 - sb) * gram(x, a)
                    for a, f in enumerate(st["GG"])]  # fmt: skip
        if s % self.freq == 0:
            for a, (gg, q) in enumerate(zip(st["GG"], st["Q"], strict=True)):
                if gg is None:
                    continue
                st["Q"][a], order = self.refresh(gg, q)
                st["v"] = np.take(st["v"], order, axis=a)
        st["m"] = rotate(m, st["Q"], back=False)


class DecayAfterStep(Ref):
    """The paper code's weight decay, applied to the parameters after the step:
    ``p_new = (p + u)(1 - lr wd)``, i.e. ``u <- u - lr wd (p + u)``; nothing on the first step."""

    def __init__(self, lr, wd):
        self.lr, self.wd = lr, wd

    def step(self, grads, params, t):
        if t == 1:
            return [np.array(u) for u in grads]
        c = at(self.lr, t) * at(self.wd, t)
        return [u - c * (p + u) for u, p in zip(grads, params, strict=True)]


@reference("scale_by_soap")
def scale_by_soap(b1=0.95, b2=0.95, shampoo_beta=None, eps=1e-8, precondition_frequency=10,
                  max_precond_dim=10000, merge_dims=False, precondition_1d=False,
                  normalize_grads=False, data_format="channels_first", correct_bias=True,
                  one_sided=False, block_size=0, complete_basis=False, basis_dtype=None,
                  statistics_dtype=None) -> Ref:  # fmt: skip
    del statistics_dtype  # float64 throughout
    return ScaleBySoap(b1, b2, shampoo_beta, eps, precondition_frequency, max_precond_dim,
                       merge_dims, precondition_1d, normalize_grads, data_format, correct_bias,
                       one_sided, block_size, complete_basis, basis_dtype)  # fmt: skip


@reference("soap")
def soap(learning_rate=3e-3, b1=0.95, b2=0.95, shampoo_beta=None, eps=1e-8, weight_decay=0.01,
         precondition_frequency=10, max_precond_dim=10000, merge_dims=False,
         precondition_1d=False, normalize_grads=False, data_format="channels_first",
         correct_bias=True, one_sided=False, block_size=0, complete_basis=False,
         basis_dtype=None, statistics_dtype=None) -> Ref:  # fmt: skip
    """``p <- (p - lr * d)(1 - lr wd)`` with ``d`` the direction of ``scale_by_soap``."""
    direction = scale_by_soap(b1, b2, shampoo_beta, eps, precondition_frequency,
                              max_precond_dim, merge_dims, precondition_1d, normalize_grads,
                              data_format, correct_bias, one_sided, block_size, complete_basis,
                              basis_dtype, statistics_dtype)  # fmt: skip
    return Chain(direction, descent(learning_rate), DecayAfterStep(learning_rate, weight_decay))
