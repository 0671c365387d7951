"""References of gradtx/optimizers/muon.py: Muon (Jordan et al. 2024, "Muon: An optimizer for
hidden layers in neural networks"), transcribed from the blog post's algorithm: momentum, then
the quintic Newton–Schulz iteration ``X <- a X + b (X X^T) X + c (X X^T)^2 X`` on the momentum
scaled to spectral norm <= 1, a shape factor, decoupled weight decay; AdamW for the rest.

The options of the published variants are parameters here: optax's bias-corrected momentum, the
authors' / torch's plain one, the normalisation floor ``||X|| + eps`` or ``max(||X||, eps)``, the
preconditionings of Turbo-Muon (AOL row sums, Boissin et al. 2025) and of the Schatten-4 bound
(Grishina et al. 2025), the dual-norm scaling (Bernstein & Newhouse 2024) and the consistent-RMS
factor (Liu et al. 2025).  Each matrix is orthogonalised on its own, in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reference
from .adam import Adam
from .core import Ref, at, mask_leaves, stored, zeros

STANDARD = (3.4445, -4.7750, 2.0315)
DION = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)


def coefficient_rows(ns_coeffs: Any, ns_steps: int) -> list[tuple[float, float, float]]:
    """One ``(a, b, c)`` per iteration: a triple ``ns_steps`` times, or every row of a table."""
    if isinstance(ns_coeffs, str):
        ns_coeffs = {"standard": STANDARD, "dion": DION}[ns_coeffs]
    table = np.asarray(ns_coeffs, np.float64)
    if table.ndim == 1:
        return [tuple(table)] * ns_steps
    return [tuple(row) for row in table]


def newton_schulz(
    x: np.ndarray, rows, preconditioning: str = "frobenius", eps: float = 1e-8, floor="add"
) -> np.ndarray:
    """``NS(X)`` of one matrix, on its wide orientation (``NS(X^T) = NS(X)^T``)."""
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x.copy()
    if preconditioning in ("frobenius", "spectral"):
        norm = np.linalg.norm(x) if preconditioning == "frobenius" else np.linalg.norm(x, 2)
        x = x / (norm + eps if floor == "add" else max(norm, eps))
    for i, (a, b, c) in enumerate(rows):
        gram = x @ x.T
        if i == 0 and preconditioning == "aol":
            # rescale so every absolute row sum of X X^T is at most 1 (Gershgorin: spectrum <= 1)
            d = 1.0 / np.sqrt(np.maximum(np.abs(gram).sum(axis=1), eps))
            x, gram = d[:, None] * x, d[:, None] * gram * d[None, :]
        elif i == 0 and preconditioning == "schatten":
            s = 1.0 / np.sqrt(max(np.sqrt(np.sum(gram * gram)), eps))
            x, gram = s * x, s * s * gram
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def _axes(value: Any, ndim: int) -> list[int]:
    return [v % ndim for v in ((value,) if isinstance(value, int) else value)]


def as_matrices(x: np.ndarray, dims: Any) -> tuple[np.ndarray, int, int]:
    """``x`` as a stack ``(batch, fan_in, fan_out)``, and the two fans; ``dims=None``: (0, 1)."""
    red = _axes(0 if dims is None else dims.reduction_axis, x.ndim)
    out = _axes(1 if dims is None else dims.output_axis, x.ndim)
    batch = [a for a in range(x.ndim) if a not in red and a not in out]
    fan_in = int(np.prod([x.shape[a] for a in red]))
    fan_out = int(np.prod([x.shape[a] for a in out]))
    return np.transpose(x, batch + red + out).reshape(-1, fan_in, fan_out), fan_in, fan_out


def orthogonalized(x: np.ndarray, dims: Any, rows, preconditioning, eps, floor) -> np.ndarray:
    """``NS`` of every matrix of ``x``, back in ``x``'s layout."""
    red = _axes(0 if dims is None else dims.reduction_axis, x.ndim)
    out = _axes(1 if dims is None else dims.output_axis, x.ndim)
    batch = [a for a in range(x.ndim) if a not in red and a not in out]
    order = batch + red + out
    stack, _, _ = as_matrices(x, dims)
    done = np.stack([newton_schulz(m, rows, preconditioning, eps, floor) for m in stack])
    moved = done.reshape([x.shape[a] for a in order])
    return np.transpose(moved, np.argsort(order))


def resolve_dims(spec: Any, params) -> list[Any]:
    """Per-leaf dimension numbers (``None``: not a Muon matrix) from ``spec``: ``None`` (the 2-D
    leaves), one value for all, a list, or a function of the list of leaves."""
    if spec is None:
        return [_Default if np.ndim(p) == 2 else None for p in params]
    given = spec(list(params)) if callable(spec) else spec
    if hasattr(given, "reduction_axis"):
        return [given] * len(params)
    return list(given)


class _DefaultDims:
    reduction_axis, output_axis = 0, 1


_Default = _DefaultDims()


def shape_factor(fan_in: int, fan_out: int, consistent_rms: Any, t: int) -> float:
    if consistent_rms is None:
        return float(np.sqrt(max(1.0, fan_out / fan_in)))
    return at(consistent_rms, t) * float(np.sqrt(max(fan_in, fan_out)))


class MuonDirection(Ref):
    """``m = beta m + (1 - beta) g``; ``m_hat`` bias-corrected (optax) or not (the authors');
    ``NS(m_hat)`` per matrix, times ``<m_hat, NS(m_hat)>`` when adaptive."""

    def __init__(self, rows, beta, eps, mu_dtype, nesterov, adaptive, preconditioning, spec,
                 bias_correction, floor):  # fmt: skip
        self.rows, self.beta, self.eps, self.mu_dtype = rows, beta, eps, mu_dtype
        self.nesterov, self.adaptive, self.pre = nesterov, adaptive, preconditioning
        self.spec = spec
        self.bias_correction, self.floor = bias_correction, floor

    def init(self, params):
        self.m = zeros(params)

    def step(self, grads, params, t):
        beta, eps, out = at(self.beta, t), at(self.eps, t), []
        for i, (g, dims) in enumerate(zip(grads, resolve_dims(self.spec, grads), strict=True)):
            self.m[i] = stored(beta * self.m[i] + (1 - beta) * g, self.mu_dtype)
            m = self.m[i]
            if self.bias_correction and self.nesterov:
                m_hat = beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)
            elif self.bias_correction:
                m_hat = m / (1 - beta**t)
            else:
                m_hat = beta * m + (1 - beta) * g if self.nesterov else m
            o = orthogonalized(m_hat, dims, self.rows, self.pre, eps, self.floor)
            out.append(np.sum(m_hat * o) * o if self.adaptive else o)
        return out


class ShapeScale(Ref):
    def __init__(self, spec, consistent_rms):
        self.spec, self.rms = spec, consistent_rms

    def step(self, grads, params, t):
        out = []
        for g, dims in zip(grads, resolve_dims(self.spec, grads), strict=True):
            _, fan_in, fan_out = as_matrices(g, dims)
            out.append(shape_factor(fan_in, fan_out, self.rms, t) * g)
        return out


@reference("scale_by_shape")
def scale_by_shape(weight_dimension_numbers=None, consistent_rms=None) -> Ref:
    return ShapeScale(weight_dimension_numbers, consistent_rms)


@reference("scale_by_muon")
def scale_by_muon(
    ns_coeffs=STANDARD,
    ns_steps=5,
    beta=0.95,
    eps=1e-8,
    mu_dtype=None,
    *,
    nesterov=True,
    adaptive=False,
    preconditioning="frobenius",
    weight_dimension_numbers=None,
    bias_correction=True,
    eps_mode="add",
    ns_dtype=None,
) -> Ref | None:
    if ns_dtype is not None:
        return None  # a low-precision iteration: compared in tests/test_muon.py
    rows = coefficient_rows(ns_coeffs, ns_steps)
    return MuonDirection(rows, beta, eps, mu_dtype, nesterov, adaptive, preconditioning,
                         weight_dimension_numbers, bias_correction, eps_mode)  # fmt: skip


class Muon(Ref):
    """Muon on the leaves with dimension numbers, ``u = -lr (s NS(m_hat) + wd p)``; AdamW on
    the others, ``u = -lr_adam (adam + wd_adam p)``."""

    def __init__(self, lr, direction: MuonDirection, spec, rms, wd, wd_mask, adam: Adam,
                 adam_lr, adam_wd):  # fmt: skip
        self.lr, self.direction, self.spec, self.rms = lr, direction, spec, rms
        self.wd, self.wd_mask, self.adam = wd, wd_mask, adam
        self.adam_lr, self.adam_wd = adam_lr, adam_wd

    def init(self, params):
        self.dims = resolve_dims(self.spec, params)
        self.mine = [i for i, d in enumerate(self.dims) if d is not None]
        self.rest = [i for i, d in enumerate(self.dims) if d is None]
        self.direction.spec = [self.dims[i] for i in self.mine]
        self.direction.init([params[i] for i in self.mine])
        self.adam.init([params[i] for i in self.rest])

    def step(self, grads, params, t):
        out: list[Any] = [None] * len(grads)
        p_m = [params[i] for i in self.mine]
        o = self.direction.step([grads[i] for i in self.mine], p_m, t)
        decay = mask_leaves(self.wd_mask, p_m)
        for k, i in enumerate(self.mine):
            _, fan_in, fan_out = as_matrices(grads[i], self.dims[i])
            u = shape_factor(fan_in, fan_out, self.rms, t) * o[k]
            if decay[k]:
                u = u + at(self.wd, t) * params[i]
            out[i] = -at(self.lr, t) * u
        a = self.adam.step([grads[i] for i in self.rest], [params[i] for i in self.rest], t)
        for k, i in enumerate(self.rest):
            out[i] = -at(self.adam_lr, t) * (a[k] + at(self.adam_wd, t) * params[i])
        return out


@reference("muon")
def muon(
    learning_rate,
    ns_coeffs=STANDARD,
    ns_steps=5,
    beta=0.95,
    eps=1e-8,
    weight_decay=0.0,
    weight_decay_mask=None,
    mu_dtype=None,
    *,
    nesterov=True,
    adaptive=False,
    preconditioning="frobenius",
    adam_b1=0.9,
    adam_b2=0.999,
    adam_eps_root=0.0,
    adam_weight_decay=0.0,
    adam_learning_rate=None,
    muon_weight_dimension_numbers=None,
    consistent_rms=None,
    bias_correction=True,
    eps_mode="add",
    ns_dtype=None,
    adam_eps=None,
    adam_nesterov=None,
) -> Ref | None:
    if ns_dtype is not None:
        return None
    direction = MuonDirection(
        coefficient_rows(ns_coeffs, ns_steps), beta, eps, mu_dtype, nesterov, adaptive,
        preconditioning, None, bias_correction, eps_mode,
    )  # fmt: skip
    adam = Adam(adam_b1, adam_b2, eps if adam_eps is None else adam_eps, adam_eps_root,
                nesterov if adam_nesterov is None else adam_nesterov, mu_dtype)  # fmt: skip
    adam_lr = learning_rate if adam_learning_rate is None else adam_learning_rate
    return Muon(learning_rate, direction, muon_weight_dimension_numbers, consistent_rms,
                weight_decay, weight_decay_mask, adam, adam_lr, adam_weight_decay)  # fmt: skip
