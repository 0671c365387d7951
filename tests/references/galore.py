"""References of ``gradtx/optimizers/galore.py``: GaLore (Zhao et al. 2024, Algorithm 2).

The projection comes from the SVD of the gradient matrix taken in float32, as in the authors'
code (and optax), through SciPy's LAPACK ``gesdd``: the routine JAX calls on CPU, so the
singular vectors (and their signs, which matter because the base optimizer's moments carry over
a refresh) are the same.  NumPy's own ``svd`` may pick other signs.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from . import reference
from .core import Chain, Ref, at, mask_leaves


def _axes(spec, ndim: int) -> tuple[int, ...]:
    return (spec % ndim,) if isinstance(spec, int) else tuple(a % ndim for a in spec)


def _dims(spec, params) -> list:
    """One spec (an object with ``reduction_axis``/``output_axis``) or ``None`` per leaf."""
    if spec is None:
        return [_Default() if np.ndim(p) == 2 else None for p in params]
    if hasattr(spec, "reduction_axis"):
        return [spec if np.ndim(p) >= 2 else None for p in params]
    spec = spec(list(params)) if callable(spec) else spec
    return list(spec)


class _Default:
    reduction_axis, output_axis = 0, 1


class GaLore(Ref):
    """Per matrix leaf ``G`` seen as ``(m, n)`` (rows: the reduction axes), ``r = min(rank, m, n)``:
    every ``gap`` steps ``P`` = the top-``r`` left (m >= n) or right singular vectors of ``G``;
    ``R = P^T G`` (or ``G P``) goes through the base optimizer, ``u = scale * P base(R)`` (or
    ``scale * base(R) P^T``).  Other leaves go through the base optimizer in full."""

    def __init__(self, rank: int, gap: int, scale, base: Ref, dims_spec):
        self.rank, self.gap, self.scale, self.base, self.spec = rank, gap, scale, base, dims_spec

    def _layout(self, x: np.ndarray, d):
        rows, cols = _axes(d.reduction_axis, x.ndim), _axes(d.output_axis, x.ndim)
        perm = rows + cols
        shape = tuple(x.shape[a] for a in perm)
        m, n = math.prod(shape[: len(rows)]), math.prod(shape[len(rows) :])
        return perm, shape, m, n

    def init(self, params):
        self.dims = _dims(self.spec, params)
        self.P: list = [None] * len(params)
        proxies = []
        for p, d in zip(params, self.dims, strict=True):
            if d is None:
                proxies.append(np.zeros(np.shape(p)))
                continue
            _, _, m, n = self._layout(np.asarray(p), d)
            r = min(self.rank, m, n)
            proxies.append(np.zeros((r, n) if m >= n else (m, r)))
        self.base.init(proxies)

    def step(self, grads, params, t):
        low, layouts = [], []
        for i, (g, d) in enumerate(zip(grads, self.dims, strict=True)):
            if d is None:
                low.append(g)
                layouts.append(None)
                continue
            perm, shape, m, n = self._layout(g, d)
            g2 = np.transpose(g, perm).reshape(m, n)
            r = min(self.rank, m, n)
            if (t - 1) % self.gap == 0:
                u, _, vh = scipy.linalg.svd(g2.astype(np.float32), full_matrices=False,
                                            lapack_driver="gesdd")  # fmt: skip
                self.P[i] = (u[:, :r] if m >= n else vh[:r, :].T).astype(np.float64)
            low.append(self.P[i].T @ g2 if m >= n else g2 @ self.P[i])
            layouts.append((perm, shape, m, n))
        out = self.base.step(low, [None] * len(low), t)
        full = []
        for i, (o, lay) in enumerate(zip(out, layouts, strict=True)):
            if lay is None:
                full.append(o)
                continue
            perm, shape, m, n = lay
            back = self.P[i] @ o if m >= n else o @ self.P[i].T
            full.append(at(self.scale, t) * np.transpose(back.reshape(shape), np.argsort(perm)))
        return full


class _DecayThenDescend(Ref):
    def __init__(self, learning_rate, weight_decay, mask):
        self.lr, self.wd, self.mask = learning_rate, weight_decay, mask

    def init(self, params):
        self.on = mask_leaves(self.mask, params)

    def step(self, grads, params, t):
        wd, lr = at(self.wd, t), at(self.lr, t)
        return [-lr * (g + (wd * p if on else 0.0))
                for g, p, on in zip(grads, params, self.on, strict=True)]  # fmt: skip


def _base(base_optimizer) -> Ref:
    if base_optimizer is not None:
        return base_optimizer
    from . import build

    return build("scale_by_adam", {})


@reference("scale_by_galore")
def scale_by_galore(
    rank=128, update_proj_gap=200, scale=1.0, base_optimizer=None, weight_dimension_numbers=None
) -> Ref:
    return GaLore(rank, update_proj_gap, scale, _base(base_optimizer), weight_dimension_numbers)


@reference("galore")
def galore(
    learning_rate,
    rank=128,
    update_proj_gap=200,
    scale=1.0,
    base_optimizer=None,
    weight_decay=0.0,
    mask=None,
    weight_dimension_numbers=None,
) -> Ref:
    return Chain(
        GaLore(rank, update_proj_gap, scale, _base(base_optimizer), weight_dimension_numbers),
        _DecayThenDescend(learning_rate, weight_decay, mask),
    )
