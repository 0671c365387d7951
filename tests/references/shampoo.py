"""Reference of ``gradtx/optimizers/shampoo.py``: scalable Shampoo (Anil et al. 2020, "Scalable
Second Order Optimization for Deep Learning"), transcribed from the paper's algorithm and the
authors' ``distributed_shampoo`` (single device, no quantisation), one block and one matrix at a
time with NumPy loops.

The inverse roots follow either the eigendecomposition (exact, ``root_method="eigh"``) or the
authors' coupled Newton iteration with their power-iteration estimate of ``lambda_max``
(``"newton"``).  Transcribed from google-research ``scalable_shampoo/optax/
distributed_shampoo.py`` (commit 01aac340199576a7aae3742b0497994187617e18): ``merge_small_dims``,
``BlockPartitioner``, ``power_iteration``, ``matrix_inverse_pth_root`` (no LOBPCG, no padding),
``_compute_stats``, ``_transform_grad`` (the grafts, momentum, Nesterov, coupled decay).  The
authors' file needs retired JAX APIs (``pjit.with_sharding_constraint``, ``jax.tree_map``) and
was audited by reading, not run.  ``"adam"`` grafting is gradtx's addition.
"""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Chain, Ref, at, is_zero
from .core import learning_rate as descent
from .soap import block_slices, gram, rotate


def shampoo_merged_shape(shape: tuple[int, ...], max_dim: int) -> tuple[int, ...]:
    """The authors' ``merge_small_dims``: a running product of neighbouring dimensions is kept
    while it stays <= ``max_dim``; all-ones gives ``(1,)``."""
    if len(shape) and all(d == 1 for d in shape):
        return (1,)
    out, product = [], 1
    for d in shape:
        if product * d <= max_dim:
            product *= d
        else:
            if product > 1:
                out.append(product)
            product = d
    if product > 1:
        out.append(product)
    return tuple(out)


def eigh_root(a: np.ndarray, p: float, eps: float, relative: bool) -> tuple[np.ndarray, float]:
    lam, q = np.linalg.eigh(a)
    ridge = eps * max(lam[-1], 1e-6) if relative else eps
    return (q * (np.maximum(lam, 0) + ridge) ** (-1 / p)) @ q.T, 0.0


def power_iteration(a: np.ndarray, iters=100, tol=1e-6) -> float:
    """The authors' estimate of ``lambda_max``: Rayleigh quotients of ``A^k v0`` with ``v0 ~
    U(-1, 1)`` from ``RandomState(1729)``, until one moves by at most ``tol``."""
    v = np.random.RandomState(1729).uniform(-1.0, 1.0, a.shape[0])
    s = 0.0
    for _ in range(iters):
        v = v / np.linalg.norm(v)
        av = a @ v
        s_new = float(v @ av)
        done = abs(s_new - s) <= tol
        v, s = av, s_new
        if done:
            break
    return s


def newton_root(a, p, eps, relative, iters=100, tol=1e-6) -> tuple[np.ndarray, float]:
    """The coupled Newton iteration for ``(A + rI)^(-1/p)`` (Higham 2008, eq. 7.18), stopped as
    the authors stop it (error ``max|M - I|`` below ``tol``, or grown by 1.2x: previous ``H``)."""
    n = a.shape[0]
    ridge = eps * max(power_iteration(a), 1e-6) if relative else eps
    if n == 1:
        return (a + ridge) ** (-1 / p), 0.0
    eye = np.eye(n)
    damped = a + ridge * eye
    z = (1 + p) / (2 * np.linalg.norm(damped))
    m, h = damped * z, eye * z ** (1 / p)
    prev, err, i = h, np.max(np.abs(m - eye)), 0
    grew = False
    while i < iters and err > tol and not grew:
        t = (1 + 1 / p) * eye - m / p
        m_new = np.linalg.matrix_power(t, int(p)) @ m
        new_err = np.max(np.abs(m_new - eye))
        grew = not new_err < 1.2 * err
        prev, h, m, err, i = h, h @ t, m_new, new_err, i + 1
    return (prev if grew else h), float(np.max(np.abs(m - eye)))


GRAFT_DIAGONAL = ("adagrad", "rmsprop", "adam", "rmsprop_normalized", "adagrad_normalized")


class ScaleByShampoo(Ref):
    def __init__(self, block_size=128, b1=0.9, b2=0.999, diagonal_epsilon=1e-10,
                 matrix_epsilon=1e-6, weight_decay=0.0, start_preconditioning_step=5,
                 preconditioning_compute_steps=1, statistics_compute_steps=1,
                 merge_small_dims_block_size=4096, best_effort_shape_interpretation=True,
                 graft_type="sgd", nesterov=True,
                 exponent_override=0, moving_average_for_momentum=False,
                 skip_preconditioning_dim_size_gt=4096, skip_preconditioning_rank_lt=1,
                 clip_by_scaled_gradient_norm=None, relative_matrix_epsilon=True,
                 preconditioner_type="all", inverse_failure_threshold=0.1, root_method="newton",
                 root_dtype=None, root_tolerance=1e-6, root_iterations=100,
                 statistics_dtype=None):  # fmt: skip
        del root_dtype, statistics_dtype  # float64 throughout
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def skipped(self, shape) -> bool:
        return len(shape) < self.skip_preconditioning_rank_lt or any(
            d > self.skip_preconditioning_dim_size_gt for d in shape
        )

    def view_shape(self, shape) -> tuple[int, ...]:
        if not self.best_effort_shape_interpretation:
            return tuple(shape)
        return shampoo_merged_shape(shape, self.merge_small_dims_block_size)

    def axes(self, rank: int) -> list[bool]:
        if self.preconditioner_type == "all" or rank <= 1:
            return [True] * rank
        return [True] * (rank - 1) + [False]

    def init(self, params):
        eps = at(self.matrix_epsilon, 1)
        self.leaves = []
        for p in params:
            shape = self.view_shape(p.shape)
            flags = self.axes(len(shape))
            blocks = [] if self.skipped(p.shape) else block_slices(shape, self.block_size or None)
            stats = [[eps * np.eye(x.stop - x.start) if f else None
                      for x, f in zip(b, flags, strict=True)] for b in blocks]  # fmt: skip
            roots = [[None if s is None else np.eye(len(s)) for s in st] for st in stats]
            self.leaves.append({"blocks": blocks, "stats": stats, "roots": roots,
                                "diag": np.zeros(p.shape), "mg": np.zeros(p.shape),
                                "ms": np.zeros(p.shape), "p": self.exponent_override
                                or 2 * sum(flags)})  # fmt: skip

    def root(self, a, p, t):
        eps, rel = at(self.matrix_epsilon, t), self.relative_matrix_epsilon
        if self.root_method == "eigh":
            return eigh_root(a, p, eps, rel)
        tol = at(self.root_tolerance, t)
        return newton_root(a, p, eps, rel, self.root_iterations, tol)

    def graft(self, g, leaf, t):
        b2, eps = at(self.b2, t), at(self.diagonal_epsilon, t)
        kind = self.graft_type
        if kind == "sgd":
            return g
        if kind == "sqrt_n":
            return np.sign(g)
        if kind.endswith("_normalized"):
            g = g / (np.linalg.norm(g) + 1e-16)
        if kind.startswith("adagrad"):
            leaf["diag"] = leaf["diag"] + g * g
            return g / (np.sqrt(leaf["diag"]) + eps)
        leaf["diag"] = b2 * leaf["diag"] + (1 - b2 if b2 != 1 else 1.0) * g * g
        if kind == "adam":
            return g / (np.sqrt(leaf["diag"] / (1 - b2**t)) + eps)
        step = g / (np.sqrt(leaf["diag"]) + eps)
        if self.clip_by_scaled_gradient_norm is not None:
            rms = np.linalg.norm(step) / np.sqrt(step.size)
            step = step / max(1.0, rms / at(self.clip_by_scaled_gradient_norm, t))
        return step

    def step(self, grads, params, t):
        c = t - 1
        b1, b2 = at(self.b1, t), at(self.b2, t)
        w2 = 1.0 if b2 == 1 else 1 - b2
        out = []
        for g, p, leaf in zip(grads, params, self.leaves, strict=True):
            x = g.reshape(self.view_shape(g.shape))
            if c % self.statistics_compute_steps == 0:
                for b, st in zip(leaf["blocks"], leaf["stats"], strict=True):
                    for a, s in enumerate(st):
                        if s is not None:
                            st[a] = b2 * s + w2 * gram(x[b], a)
            if c % self.preconditioning_compute_steps == 0:
                for st, rt in zip(leaf["stats"], leaf["roots"], strict=True):
                    for a, s in enumerate(st):
                        if s is not None:
                            r, err = self.root(s, leaf["p"], t)
                            if not (np.isnan(err) or err >= at(self.inverse_failure_threshold, t)):
                                rt[a] = r
            out.append(self.direction(g, x, p, leaf, t, b1))
        return out

    def direction(self, g, x, p, leaf, t, b1):
        graft = self.graft(g, leaf, t)
        if self.skipped(g.shape):
            pre = graft
        else:
            pre = np.zeros_like(x)
            for b, rt in zip(leaf["blocks"], leaf["roots"], strict=True):
                pre[b] = rotate(x[b], rt, back=False)
            pre = pre.reshape(g.shape)
        s = pre * (np.linalg.norm(graft) / (np.linalg.norm(pre) + 1e-16))
        a = graft
        if not is_zero(self.weight_decay):
            wd = at(self.weight_decay, t)
            s, a = s + wd * p, a + wd * p
        w = 1 - b1 if self.moving_average_for_momentum else 1.0
        leaf["ms"] = b1 * leaf["ms"] + w * s
        leaf["mg"] = b1 * leaf["mg"] + w * a
        run = t - 1 >= self.start_preconditioning_step
        mom = leaf["ms"] if run else leaf["mg"]
        if self.nesterov:
            return w * (s if run else a) + b1 * mom
        return mom.copy()


@reference("scale_by_shampoo")
def scale_by_shampoo(**kwargs) -> Ref:
    return ScaleByShampoo(**kwargs)


class DecoupledDecay(Ref):
    """``u = g + wd p``."""

    def __init__(self, wd):
        self.wd = wd

    def step(self, grads, params, t):
        return [g + at(self.wd, t) * p for g, p in zip(grads, params, strict=True)]


@reference("shampoo")
def shampoo(learning_rate, decoupled_weight_decay=False, weight_decay=0.0, **kwargs) -> Ref:
    """``u = -lr d`` (``-lr (d + wd p)`` with ``decoupled_weight_decay``)."""
    if decoupled_weight_decay:
        direction = ScaleByShampoo(weight_decay=0.0, **kwargs)
        return Chain(direction, DecoupledDecay(weight_decay), descent(learning_rate))
    return Chain(ScaleByShampoo(weight_decay=weight_decay, **kwargs), descent(learning_rate))
