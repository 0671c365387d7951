"""References of gradtx/optimizers/factored.py: Adafactor (Shazeer & Stern 2018, Algorithms 4
and 5: row and column sums of ``G^2 + eps1``, ``V = R C / 1^T R``, update clipping ``d`` and the
relative step ``max(eps2, RMS(X))``) and SM3-II (Anil et al. 2019, Algorithm SM3-II with the cover
by the slices along each axis), written out with explicit sums, loops and ``min``/``max`` over
covering sets.  The options the papers do not have (momentum on Adafactor's step, weight decay,
SM3's decaying ``b2``, the schedule offset) follow the formulas in gradtx's docstrings."""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Chain, Ref, at, mask_leaves, stored, zeros
from .core import learning_rate as descent


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


def _row_col(shape: tuple[int, ...], factored: bool, min_dim: int) -> tuple[int, int] | None:
    """The paper's ``n x m`` matrix inside a tensor: rows on the second-largest axis, columns on
    the largest (the later axis wins a tie); ``None`` when not factored."""
    if not factored or len(shape) < 2:
        return None
    by_size = sorted(range(len(shape)), key=lambda a: (shape[a], a))
    row, col = by_size[-2], by_size[-1]
    return (row, col) if shape[row] >= min_dim else None


class FactoredRms(Ref):
    """Per matrix (leading axes batch): ``R = b R + (1 - b) (G^2 + eps1) 1_m``,
    ``C = b C + (1 - b) 1_n^T (G^2 + eps1)``, ``V = R C / (1_n^T R)``, ``U = G / sqrt(V)``;
    other leaves ``V = b V + (1 - b) (G^2 + eps1)``.  ``b = 1 - s^(-c)``, ``s = max(t - offset, 1)``
    (the paper: ``s = t``)."""

    def __init__(self, factored, decay_rate, offset, min_dim, epsilon, decay_rate_fn):
        self.factored, self.c, self.offset, self.min_dim = factored, decay_rate, offset, min_dim
        self.eps1, self.fn = epsilon, decay_rate_fn

    def init(self, params):
        self.axes = [_row_col(np.shape(p), self.factored, self.min_dim) for p in params]
        self.stats = []
        for p, axes in zip(params, self.axes, strict=True):
            if axes is None:
                self.stats.append(np.zeros(np.shape(p)))
            else:  # R and C of the tensor with its rows and columns moved last
                moved = np.moveaxis(np.zeros(np.shape(p)), axes, (-2, -1))
                self.stats.append((moved.sum(axis=-1), moved.sum(axis=-2)))

    def beta(self, t: int) -> float:
        s = max(t - self.offset, 1)
        if self.fn is not None:
            return float(np.asarray(self.fn(np.int32(s - 1), at(self.c, t))))
        return 1.0 - float(s) ** (-at(self.c, t))

    def step(self, grads, params, t):
        b, eps1, out = self.beta(t), at(self.eps1, t), []
        for i, (g, axes) in enumerate(zip(grads, self.axes, strict=True)):
            if axes is None:
                self.stats[i] = b * self.stats[i] + (1 - b) * (g * g + eps1)
                out.append(g / np.sqrt(self.stats[i]))
                continue
            gm = np.moveaxis(g, axes, (-2, -1))  # (..., n rows, m columns)
            sq = gm * gm + eps1
            r, c = self.stats[i]
            r = b * r + (1 - b) * sq.sum(axis=-1)
            c = b * c + (1 - b) * sq.sum(axis=-2)
            self.stats[i] = (r, c)
            v = r[..., :, None] * c[..., None, :] / r.sum(axis=-1)[..., None, None]
            out.append(np.moveaxis(gm / np.sqrt(v), (-2, -1), axes))
        return out


@reference("scale_by_factored_rms")
def scale_by_factored_rms(
    factored=True,
    decay_rate=0.8,
    step_offset=0,
    min_dim_size_to_factor=128,
    epsilon=1e-30,
    decay_rate_fn=None,
):
    return FactoredRms(
        factored, decay_rate, step_offset, min_dim_size_to_factor, epsilon, decay_rate_fn
    )


class ParamScale(Ref):
    """``u = g * max(min_scale, size(p))`` per leaf."""

    def __init__(self, min_scale, size):
        self.min_scale, self.size = min_scale, size

    def step(self, grads, params, t):
        floor = at(self.min_scale, t)
        return [g * max(floor, self.size(p)) for g, p in zip(grads, params, strict=True)]


@reference("scale_by_param_block_rms")
def scale_by_param_block_rms(min_scale=1e-3):
    return ParamScale(min_scale, _rms)


@reference("scale_by_param_block_norm")
def scale_by_param_block_norm(min_scale=1e-3):
    return ParamScale(min_scale, lambda p: float(np.sqrt(np.sum(p * p))))


class Adafactor(Ref):
    """Algorithm 4/5's step ``X_t = X_{t-1} - a_t U^``: ``U^ = U / max(1, RMS(U) / d)``,
    ``a_t = lr_t * max(eps2, RMS(X_{t-1}))`` with ``eps2 = 1e-3``; then an optional
    ``m = b1 m + (1 - b1) a_t U^`` (stored in ``dtype_momentum``) and ``+ wd X_{t-1}``."""

    def __init__(self, rms, lr, scale, d, momentum, dtype, wd, mask):
        self.rms, self.lr, self.scale, self.d = rms, lr, scale, d
        self.momentum, self.dtype, self.wd, self.mask = momentum, dtype, wd, mask

    def init(self, params):
        self.rms.init(params)
        self.m = zeros(params)

    def step(self, grads, params, t):
        u = self.rms.step(grads, params, t)
        decay, out = mask_leaves(self.mask, params), []
        for i, (x, p) in enumerate(zip(u, params, strict=True)):
            if self.d is not None:
                x = x / max(1.0, _rms(x) / at(self.d, t))
            if self.lr is not None:
                x = at(self.lr, t) * x
            if self.scale:
                x = x * max(1e-3, _rms(p))
            if self.momentum is not None:
                b1 = at(self.momentum, t)
                self.m[i] = stored(b1 * self.m[i] + (1 - b1) * x, self.dtype)
                x = self.m[i]
            if self.wd is not None and decay[i]:
                x = x + at(self.wd, t) * p
            out.append(-x)
        return out


@reference("adafactor")
def adafactor(
    learning_rate=None,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale=True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum=np.float32,
    weight_decay_rate=None,
    eps=1e-30,
    factored=True,
    weight_decay_mask=None,
):
    rms = FactoredRms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps, None)
    return Adafactor(
        rms, learning_rate, multiply_by_parameter_scale, clipping_threshold, momentum,
        dtype_momentum, weight_decay_rate, weight_decay_mask,
    )  # fmt: skip


class SM3(Ref):
    """SM3-II: ``nu'(i) = min_{r: S_r ∋ i} mu'(r) + g(i)^2``, ``mu'(r) = max_{i ∈ S_r} nu'(i)``,
    ``u'(i) = g(i) / sqrt(nu'(i) + eps)`` (``0/0 = 0``), with the sets ``S_r`` the slices
    ``{i: i_a = j}`` of every axis ``a`` (a vector or scalar: each element alone); ``b2 < 1``:
    ``nu' = (1 - b2) g^2 + b2 min mu'``.  Then ``m = b1 m + (1 - b1) u'``, ``u = m``."""

    def __init__(self, b1, b2, eps):
        self.b1, self.b2, self.eps = b1, b2, eps

    def init(self, params):
        self.mu = [
            [np.zeros(n) for n in np.shape(p)] if np.ndim(p) >= 2 else np.zeros(np.shape(p))
            for p in params
        ]
        self.m = zeros(params)

    def step(self, grads, params, t):
        b1, b2, eps, out = at(self.b1, t), at(self.b2, t), at(self.eps, t), []

        def accumulate(g2, smallest):
            return g2 + smallest if b2 == 1.0 else (1 - b2) * g2 + b2 * smallest

        for i, g in enumerate(grads):
            if g.ndim < 2:
                nu = accumulate(g * g, self.mu[i])
                self.mu[i] = nu
            else:
                nu = np.empty(g.shape)
                new = [np.zeros(n) for n in g.shape]
                for idx in np.ndindex(*g.shape):
                    cover = [self.mu[i][a][j] for a, j in enumerate(idx)]
                    nu[idx] = accumulate(g[idx] ** 2, min(cover))
                    for a, j in enumerate(idx):
                        new[a][j] = max(new[a][j], nu[idx])
                self.mu[i] = new
            scaled = np.where(nu > 0, g / np.sqrt(nu + eps), 0.0)
            self.m[i] = b1 * self.m[i] + (1 - b1) * scaled
            out.append(self.m[i].copy())
        return out


@reference("scale_by_sm3")
def scale_by_sm3(b1=0.9, b2=1.0, eps=1e-8):
    return SM3(b1, b2, eps)


@reference("sm3")
def sm3(learning_rate, momentum=0.9):
    return Chain(SM3(momentum, 1.0, 1e-8), descent(learning_rate))
