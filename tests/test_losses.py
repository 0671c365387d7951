"""gradtx.losses: every public callable of ``optax.losses``, same signatures and numbers.

For every loss, over cases covering its options (``axis`` ints and tuples, ``where`` masks over
classes or whole rows, integer labels out of range, label smoothing, focal ``alpha``/``gamma``,
Huber ``delta``, reductions, ...):

1. an independent float64 NumPy reference written from the formula (loops and closed forms, no
   JAX): relative error <= 1e-12;
2. ``optax.losses.<name>`` on the same inputs: <= 1e-12 in float64, <= 1e-6 in float32 (and the
   float32 result stays float32; bfloat16 stays bfloat16);
3. ``jax.grad`` of a fixed weighting of the output equals optax's gradient to <= 1e-10;
4. the signatures: every public callable of ``optax.losses`` exists with the same parameter
   names, kinds, order and defaults; every docstring names its optax equivalent and has an
   ``Example:`` that runs.

All cases of one dtype run in one compiled program (fixtures ``r64``, ``r32``): on a 2-core
machine that is far cheaper than a compilation per case or eager execution.  CTC is checked
against optax (loss and forward probabilities) and a NumPy dynamic program over the
blank-extended label sequence.  Errors are ``max|got - want| / max|want|`` per output, with
``nan`` required in the same places.  Where gradtx deliberately differs from optax (odd
``norm_degree`` in ``triplet_margin_loss``, ``log_cosh`` of tiny errors, the Dice input checks,
gradients in ``kl_divergence``'s zero targets and in the labels of ``where``-masked classes,
where optax gives ``nan``) a test pins the difference.
"""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.losses as OL
import pytest
from helpers import fast_compile
from jax.scipy.special import logsumexp

import gradtx.losses as GL

jax.config.update("jax_enable_x64", True)

F64, F32 = 1e-12, 1e-6
GRAD = 1e-10


# --------------------------------------------------------------------------------------------
# comparison


def rel_err(got, want) -> float:
    """Worst over the outputs of ``max|got - want| / max|want|``; ``nan`` must coincide."""
    worst = 0.0
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape, (a.shape, b.shape)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
        ok = ~np.isnan(b)
        a, b = a[ok], b[ok]
        assert np.array_equal(np.isinf(a), np.isinf(b)) and np.all(a[np.isinf(b)] == b[np.isinf(b)])
        fin = np.isfinite(b)
        a, b = a[fin], b[fin]
        if b.size:
            scale = np.max(np.abs(b))
            err = np.max(np.abs(a - b))
            worst = max(worst, float(err / scale) if scale > 0 else float(err))
    return worst


# --------------------------------------------------------------------------------------------
# NumPy references (float64, from the formulas)


def np_lse(x, axis=-1, where=None, keepdims=False):
    if where is not None:
        x = np.where(where, x, -np.inf)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def softplus(z):
    return np.logaddexp(0.0, z)


def expit(z):  # sigma(z) without cancellation for z << 0
    return np.exp(-softplus(-z))


def _expand(where, logits, axis):
    if where is None:
        return None
    where = np.asarray(where)
    if where.ndim != logits.ndim:
        where = np.expand_dims(where, axis)
    return np.broadcast_to(where, logits.shape)


def ref_softmax_ce(logits, labels, axis=-1, where=None):
    where = _expand(where, logits, axis)
    with np.errstate(invalid="ignore"):
        log_p = logits - np_lse(logits, axis, where, keepdims=True)
        terms = labels * log_p
    if where is not None:
        terms = np.where(where, terms, 0.0)
    return -np.sum(terms, axis=axis)


def ref_int_ce(logits, labels, axis=-1, where=None):
    where = _expand(where, logits, axis)
    axes = tuple(a % logits.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    batch = [a for a in range(logits.ndim) if a not in axes]
    bshape = tuple(logits.shape[a] for a in batch)
    x = logits.transpose(batch + list(axes)).reshape(*bshape, -1)
    w = None if where is None else where.transpose(batch + list(axes)).reshape(*bshape, -1)
    classes = x.shape[-1]
    out = np.empty(bshape)
    for idx in np.ndindex(*bshape):
        row = x[idx]
        keep = np.ones(classes, bool) if w is None else w[idx]
        if not keep.any():
            out[idx] = 0.0
            continue
        lab = int(labels[idx])
        picked = row[lab] if -classes <= lab < classes else np.nan
        m = row[keep].max()
        out[idx] = m + np.log(np.sum(np.exp(row[keep] - m))) - picked
    return out


def ref_safe_ce(logits, labels):
    lse = np_lse(logits, -1, np.isfinite(logits), keepdims=True)
    labels = np.broadcast_to(labels, logits.shape)
    with np.errstate(invalid="ignore"):
        terms = np.where(labels != 0, labels * (logits - lse), 0.0)
    return -terms.sum(-1)


def ref_bce(logits, labels):
    return labels * softplus(-logits) + (1 - labels) * softplus(logits)


def ref_focal(logits, labels, alpha=None, gamma=2.0):
    labels = np.asarray(labels, np.float64)
    miss = labels * expit(-logits) + (1 - labels) * expit(logits)  # 1 - p_t
    loss = miss**gamma * ref_bce(logits, labels)
    if alpha is not None:
        loss = (alpha * labels + (1 - alpha) * (1 - labels)) * loss
    return loss


def ref_poly(logits, labels, epsilon=2.0, axis=-1, where=None):
    p = np.exp(logits - np_lse(logits, axis, where, keepdims=True))
    terms = labels * (1 - p)
    if where is not None:
        terms = np.where(where, terms, 0.0)
    return ref_softmax_ce(logits, labels, axis, where) + epsilon * terms.sum(axis)


def ref_smooth(labels, alpha, axis=-1, where=None):
    if where is not None:
        k = np.sum(where, axis=axis, keepdims=True)
    else:
        k = labels.size if axis is None else np.prod([labels.shape[a] for a in np.atleast_1d(axis)])
    return (1 - alpha) * labels + alpha / k


def ref_hinge(scores, targets):
    return np.maximum(0, 1 - scores * targets)


def ref_perceptron(scores, targets):
    return np.maximum(0, -scores * targets)


def ref_sparsemax_binary(logits, labels):
    z = np.where(labels != 0, -logits, logits)
    return np.where(z <= -1, 0.0, np.where(z >= 1, z, (z + 1) ** 2 / 4))


def _label_rows(scores, labels):
    c = scores.shape[-1]
    return scores.reshape(-1, c), np.asarray(labels).reshape(-1), scores.shape[:-1]


def ref_mc_hinge(scores, labels):
    s, y, shape = _label_rows(scores, labels)
    out = []
    for row, lab in zip(s, y, strict=True):
        if 0 <= lab < row.size:
            others = np.delete(row, lab)
            out.append(max(0.0, others.max() + 1 - row[lab]))
        else:  # the one-hot vector selects nothing
            out.append((row + 1).max())
    return np.array(out).reshape(shape)


def ref_mc_perceptron(scores, labels):
    s, y, shape = _label_rows(scores, labels)
    out = [
        row.max() - (row[lab] if 0 <= lab < row.size else 0.0)
        for row, lab in zip(s, y, strict=True)
    ]
    return np.array(out).reshape(shape)


def sparsemax(row):
    """Projection onto the simplex by bisection on the threshold, then the exact threshold
    on the support it finds."""
    lo, hi = row.min() - 1, row.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(row - mid, 0).sum() > 1 else (lo, mid)
    support = row > lo
    tau = (row[support].sum() - 1) / support.sum()
    return np.maximum(row - tau, 0)


def ref_mc_sparsemax(scores, labels):
    s, y, shape = _label_rows(scores, labels)
    out = []
    for row, lab in zip(s, y, strict=True):
        lab = min(max(lab + row.size if lab < 0 else lab, 0), row.size - 1)  # optax indexes
        p = sparsemax(row)
        out.append(p @ row + 0.5 * (1 - p @ p) - row[lab])
    return np.array(out).reshape(shape)


def ref_kl(log_pred, targets, axis=-1, where=None):
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(targets > 0, targets * (np.log(targets) - log_pred), 0.0)
    return np.sum(terms, axis=axis, where=True if where is None else where)


def ref_kl_log(log_pred, log_targets, axis=-1, where=None):
    terms = np.exp(log_targets) * (log_targets - log_pred)
    return np.sum(terms, axis=axis, where=True if where is None else where)


def ref_gkl(log_pred, targets, axis=-1, where=None):
    w = True if where is None else where
    return ref_kl(log_pred, targets, axis, where) + np.sum(
        np.exp(log_pred) - targets, axis=axis, where=w
    )


def ref_sq(predictions, targets=None):
    e = predictions if targets is None else predictions - targets
    return e * e


def ref_huber(predictions, targets=None, delta=1.0):
    e = np.abs(predictions if targets is None else predictions - targets)
    return np.where(e <= delta, 0.5 * e * e, delta * (e - 0.5 * delta))


def ref_log_cosh(predictions, targets=None):
    e = np.abs(predictions if targets is None else predictions - targets)
    # Taylor series of log cosh below 0.1 (next term ~x^12, < 1e-13 relative), log(cosh)
    # where it has no cancellation, the asymptotic form where cosh overflows.
    with np.errstate(over="ignore", invalid="ignore"):
        series = e**2 / 2 - e**4 / 12 + e**6 / 45 - 17 * e**8 / 2520 + 31 * e**10 / 14175
        mid = np.log(np.cosh(np.minimum(e, 20.0)))
    far = e - np.log(2) + np.log1p(np.exp(-2 * e))
    return np.where(e < 0.1, series, np.where(e < 20, mid, far))


def ref_cos(a, b, epsilon=0.0, axis=-1, where=None):
    w = True if where is None else where
    na = np.sqrt(np.maximum(np.sum(a * a, axis=axis, where=w), epsilon))
    nb = np.sqrt(np.maximum(np.sum(b * b, axis=axis, where=w), epsilon))
    return np.sum(a * b, axis=axis, where=w) / (na * nb)


def ref_cos_dist(a, b, epsilon=0.0, axis=-1, where=None):
    return 1 - ref_cos(a, b, epsilon, axis, where)


def ref_ntxent(emb, labels, temperature=0.07):
    eps = np.finfo(emb.dtype).eps
    u = emb / np.sqrt(np.maximum(np.sum(emb**2, axis=1, keepdims=True), eps))
    s = u @ u.T / temperature
    terms = []
    for i in range(len(labels)):
        negatives = s[i, labels != labels[i]]
        for j in range(len(labels)):
            if j != i and labels[j] == labels[i]:
                terms.append(np.logaddexp(s[i, j], np_lse(negatives, -1)) - s[i, j])
    return np.mean(terms)


def ref_triplet(a, p, n, axis=-1, norm_degree=2, margin=1.0, eps=1e-6):
    def d(x):
        return (np.sum(np.abs(a - x) ** norm_degree, axis=axis) + eps) ** (1 / norm_degree)

    return np.maximum(d(p) - d(n) + margin, 0)


def ref_ranking(logits, labels, where=None, weights=None, reduce_fn=jnp.mean):
    lists = logits.reshape(-1, logits.shape[-1])
    rel = np.asarray(labels, np.float64).reshape(lists.shape)
    valid = np.ones(lists.shape, bool) if where is None else np.asarray(where).reshape(lists.shape)
    w = np.ones(lists.shape) if weights is None else np.broadcast_to(weights, logits.shape)
    w = w.reshape(lists.shape)
    out, keep = [], []
    for s, y, v, wt in zip(lists, rel, valid, w, strict=True):
        keep.append(v.any())
        if not v.any():
            out.append(0.0)
            continue
        log_p = s[v] - np_lse(s[v])
        out.append(-np.sum(wt[v] * y[v] * log_p))
    out, keep = np.array(out).reshape(logits.shape[:-1]), np.array(keep).reshape(logits.shape[:-1])
    if reduce_fn is None:
        return out
    if reduce_fn is jnp.sum:
        return out[keep].sum()
    return out[keep].mean() if keep.any() else 0.0


def _probs(predictions, apply):
    if not apply:
        return predictions
    if predictions.shape[-1] == 1:
        return expit(predictions)
    return np.exp(predictions - np_lse(predictions, -1, keepdims=True))


def ref_dice(
    predictions,
    targets,
    class_weights=None,
    smooth=1.0,
    alpha=0.5,
    beta=0.5,
    apply_softmax=True,
    reduction="mean",
    ignore_background=False,
    axis=None,
):
    if predictions.ndim == targets.ndim - 1:
        predictions = predictions[..., None]
    if targets.ndim == predictions.ndim - 1:
        targets = targets[..., None]
    p = _probs(predictions, apply_softmax)
    axis = tuple(range(1, p.ndim - 1)) if axis is None else axis
    tp = np.sum(p * targets, axis=axis)
    fp = np.sum(p * (1 - targets), axis=axis)  # = sum(p) - tp for any targets
    fn = np.sum((1 - p) * targets, axis=axis)
    loss = 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    if class_weights is not None:
        loss = loss * class_weights
    if ignore_background and p.shape[-1] > 1:
        loss = loss[..., 1:]
    return {"mean": np.mean, "sum": np.sum}[reduction](loss, -1) if reduction != "none" else loss


def ref_gdice(predictions, targets, smooth=1.0, apply_softmax=True, ignore_background=False):
    freq = targets.reshape(-1, targets.shape[-1]).sum(0)
    w = 1 / (freq**2 + 1e-7)
    w = w * len(w) / w.sum()
    per = ref_dice(
        predictions,
        targets,
        class_weights=w,
        smooth=smooth,
        apply_softmax=apply_softmax,
        reduction="none",
        ignore_background=ignore_background,
    )
    return per.mean()


def ref_binary_dice(predictions, targets, smooth=1.0, apply_sigmoid=True):
    p = expit(predictions) if apply_sigmoid else predictions
    if p.ndim == targets.ndim and p.shape[-1] == 1:
        p, targets = p[..., 0], targets[..., 0]
    axes = tuple(range(1, p.ndim))
    i, s = np.sum(p * targets, axes), np.sum(p, axes) + np.sum(targets, axes)
    return 1 - (2 * i + 2 * smooth) / (s + 2 * smooth)


def ref_fy(scores, targets):
    return np_lse(scores, -1) - np.sum(targets * scores, -1)


def ref_ctc(logits, logit_paddings, labels, label_paddings, blank_id=0):
    """-log of the total probability of the alignments, by the forward recursion over the
    label sequence with blanks inserted (Graves et al. 2006); padded frames skipped."""
    out = []
    for b in range(logits.shape[0]):
        frames = logits[b][logit_paddings[b] == 0]
        lp = frames - np_lse(frames, -1, keepdims=True)
        y = labels[b][label_paddings[b] == 0]
        ext = [blank_id]
        for c in y:
            ext += [int(c), blank_id]
        alpha = np.full(len(ext), -np.inf)
        alpha[0] = lp[0, ext[0]]
        if len(ext) > 1:
            alpha[1] = lp[0, ext[1]]
        for t in range(1, len(frames)):
            new = np.full(len(ext), -np.inf)
            for s in range(len(ext)):
                terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
                if s >= 2 and ext[s] != blank_id and ext[s] != ext[s - 2]:
                    terms.append(alpha[s - 2])
                new[s] = np_lse(np.array(terms)) + lp[t, ext[s]]
            alpha = new
        out.append(-np_lse(alpha[-2:]))
    return np.array(out)


# --------------------------------------------------------------------------------------------
# cases


@dataclasses.dataclass
class Case:
    name: str
    args: tuple
    kwargs: dict
    ref: Callable | None
    diff: tuple = (0,)  # float arguments the gradient is taken in
    optax: bool = True  # whether optax agrees (False: a documented difference)
    gx: Callable | None = None  # defaults to gradtx.losses.<name> / optax.losses.<name>
    ox: Callable | None = None
    optax_jit: bool = True  # False: optax's function raises under jit

    def gfn(self):
        return self.gx or getattr(GL, self.name)

    def ofn(self):
        return self.ox or getattr(OL, self.name)


R = np.random.RandomState(0)


def randn(*shape, scale=1.0):
    return R.randn(*shape) * scale


def probs(*shape, axis=-1):
    x = R.randn(*shape)
    return np.exp(x - np_lse(x, axis, keepdims=True))


def mask(*shape, p=0.7):
    m = R.rand(*shape) < p
    m[..., 0] = True
    return m


def one_hot(labels, k):
    return np.eye(k)[labels]


X, Y = randn(6, 5), probs(6, 5)
W_FULL = mask(6, 5)
W_FULL[2] = False  # a row with no class left
W_ROWS = np.array([True, True, False, True, True, True])
INT_Y = np.array([0, 4, 2, 1, 3, 0])
BAD_Y = np.array([0, -1, 5, -6, 3, 2])  # -1 wraps, 5 and -6 are out of range
X4 = randn(3, 4, 2, 5)
SAFE_X = X.copy()
SAFE_X[0, 1] = SAFE_X[3, 4] = -np.inf
SAFE_Y = Y.copy()
SAFE_Y[0, 1] = SAFE_Y[3, 4] = 0.0
SAFE_Y /= SAFE_Y.sum(-1, keepdims=True)
BIG_X = np.concatenate([randn(12), [-60.0, -25.0, 25.0, 60.0]])
HARD_Y = (R.rand(16) < 0.5).astype(np.int32)
SOFT_Y = R.rand(16)
LOG_P = X - np_lse(X, -1, keepdims=True)
Y_ZEROS = Y.copy()
Y_ZEROS[1, 2] = Y_ZEROS[4, 0] = 0.0
EMB = randn(8, 4)
EMB_Y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
EMB_Y3 = np.array([0, 0, 0, 1, 1, 2, 5, 5])  # a group of 3, a singleton
SEG = randn(2, 4, 4, 3)
SEG_Y = one_hot(R.randint(0, 3, (2, 4, 4)), 3)
SEG_P = np.exp(SEG - np_lse(SEG, -1, keepdims=True))
BIN = randn(2, 4, 4)
BIN_Y = (R.rand(2, 4, 4) < 0.4).astype(np.float64)
RANK_Y = R.randint(0, 3, (4, 6)).astype(np.float64)
RANK_W = mask(4, 6)
RANK_W[1] = False

CASES = [
    Case("softmax_cross_entropy", (X, Y), {}, ref_softmax_ce, (0, 1)),
    Case("softmax_cross_entropy", (randn(5, 6), probs(5, 6, axis=0)), {"axis": 0}, ref_softmax_ce),
    Case("softmax_cross_entropy", (X4, probs(3, 4, 2, 5, axis=(1, 3))), {"axis": (1, 3)},
         ref_softmax_ce, (0, 1)),
    Case("softmax_cross_entropy", (X, Y), {"where": W_FULL}, ref_softmax_ce, (0, 1)),
    Case("softmax_cross_entropy", (X, Y), {"where": W_ROWS}, ref_softmax_ce),
    Case("softmax_cross_entropy", (X, one_hot(3, 5)), {}, ref_softmax_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X, INT_Y), {}, ref_int_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X, BAD_Y), {}, ref_int_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X4, R.randint(0, 4, (3, 2, 5))),
         {"axis": 1}, ref_int_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X4, R.randint(0, 20, (3, 2))),
         {"axis": (1, 3)}, ref_int_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X4, R.randint(0, 20, (3, 2))),
         {"axis": (3, 1), "where": mask(3, 4, 2, 5)}, ref_int_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X, INT_Y), {"where": W_FULL}, ref_int_ce),
    Case("softmax_cross_entropy_with_integer_labels", (X, INT_Y), {"where": W_ROWS}, ref_int_ce),
    Case("safe_softmax_cross_entropy", (SAFE_X, SAFE_Y), {}, ref_safe_ce),
    Case("safe_softmax_cross_entropy", (X, Y), {}, ref_safe_ce, (0, 1)),
    Case("sigmoid_binary_cross_entropy", (BIG_X, HARD_Y), {}, ref_bce),
    Case("sigmoid_binary_cross_entropy", (BIG_X, SOFT_Y), {}, ref_bce, (0, 1)),
    Case("sigmoid_focal_loss", (BIG_X, HARD_Y), {}, ref_focal),
    Case("sigmoid_focal_loss", (BIG_X, SOFT_Y), {"alpha": 0.25, "gamma": 0.5}, ref_focal, (0, 1)),
    Case("sigmoid_focal_loss", (BIG_X, HARD_Y), {"alpha": 0.7, "gamma": 0.0}, ref_focal),
    Case("sigmoid_focal_loss", (BIG_X, SOFT_Y), {"gamma": 3.5}, ref_focal, (0, 1)),
    Case("poly_loss_cross_entropy", (X, Y), {}, ref_poly, (0, 1)),
    Case("poly_loss_cross_entropy", (randn(5, 6), probs(5, 6, axis=0)),
         {"epsilon": -1.0, "axis": 0}, ref_poly),
    Case("poly_loss_cross_entropy", (X, Y), {"epsilon": 0.5, "where": mask(6, 5)}, ref_poly,
         (0, 1)),
    Case("smooth_labels", (one_hot(INT_Y, 5), 0.1), {}, ref_smooth),
    Case("smooth_labels", (one_hot(INT_Y, 5), 0.3), {"axis": 0}, ref_smooth),
    Case("smooth_labels", (Y, 0.2), {"axis": (0, 1)}, ref_smooth),
    Case("smooth_labels", (Y, 0.2), {"axis": None}, ref_smooth),
    Case("smooth_labels", (one_hot(INT_Y, 5), 0.1), {"where": mask(6, 5)}, ref_smooth),
    Case("hinge_loss", (randn(16, scale=2), np.sign(randn(16))), {}, ref_hinge),
    Case("perceptron_loss", (randn(16), np.sign(randn(16))), {}, ref_perceptron),
    Case("sparsemax_loss", (randn(16, scale=2), HARD_Y), {}, ref_sparsemax_binary),
    Case("multiclass_hinge_loss", (randn(6, 5), BAD_Y), {}, ref_mc_hinge),
    Case("multiclass_hinge_loss", (randn(2, 3, 5), R.randint(0, 5, (2, 3))), {}, ref_mc_hinge),
    Case("multiclass_perceptron_loss", (randn(6, 5), BAD_Y), {}, ref_mc_perceptron),
    Case("multiclass_perceptron_loss", (randn(2, 3, 5), R.randint(0, 5, (2, 3))), {},
         ref_mc_perceptron),
    Case("multiclass_sparsemax_loss", (randn(6, 5, scale=2), INT_Y), {}, ref_mc_sparsemax),
    Case("multiclass_sparsemax_loss", (randn(6, 5, scale=0.3), np.array([0, -1, 7, -9, 3, 2])),
         {}, ref_mc_sparsemax),
    # optax vmaps over the first axis only (a 3-D input is flattened per slice there).
    Case("multiclass_sparsemax_loss", (randn(2, 3, 5), R.randint(0, 5, (2, 3))), {},
         ref_mc_sparsemax, optax=False),
    Case("make_fenchel_young_loss", (X, Y), {}, ref_fy, (0, 1),
         gx=GL.make_fenchel_young_loss(logsumexp), ox=OL.make_fenchel_young_loss(logsumexp)),
    Case("kl_divergence", (LOG_P, Y), {}, ref_kl, (0, 1)),
    Case("kl_divergence", (LOG_P, Y_ZEROS), {}, ref_kl),
    Case("kl_divergence", (LOG_P, Y), {"axis": 0, "where": mask(6, 5)}, ref_kl, (0, 1)),
    Case("kl_divergence", (LOG_P, Y), {"axis": None}, ref_kl),
    Case("kl_divergence_with_log_targets", (LOG_P, np.log(Y)), {}, ref_kl_log, (0, 1)),
    Case("kl_divergence_with_log_targets", (LOG_P, np.log(Y)), {"axis": (0, 1), "where": W_FULL},
         ref_kl_log, (0, 1)),
    Case("generalized_kl_divergence", (randn(6, 5), np.exp(randn(6, 5))), {}, ref_gkl, (0, 1)),
    Case("generalized_kl_divergence", (randn(6, 5), Y_ZEROS), {"where": mask(6, 5)}, ref_gkl),
    Case("convex_kl_divergence", (randn(6, 5), np.exp(randn(6, 5))), {"axis": 0}, ref_gkl, (0, 1)),
    Case("squared_error", (X, randn(6, 5)), {}, ref_sq, (0, 1)),
    Case("squared_error", (X,), {}, ref_sq),
    Case("l2_loss", (X, randn(6, 5)), {}, lambda p, t=None: 0.5 * ref_sq(p, t), (0, 1)),
    Case("l2_loss", (X,), {}, lambda p, t=None: 0.5 * ref_sq(p, t)),
    Case("huber_loss", (randn(6, 5, scale=2), randn(6, 5)), {}, ref_huber, (0, 1)),
    Case("huber_loss", (randn(6, 5, scale=2), randn(5)), {"delta": 0.5}, ref_huber, (0, 1)),
    Case("huber_loss", (randn(6, 5, scale=3),), {"delta": 2.0}, ref_huber),
    Case("log_cosh", (np.sign(randn(20)) * np.exp(R.uniform(np.log(0.05), np.log(30), 20)),), {},
         ref_log_cosh),
    Case("log_cosh", (randn(6, 5, scale=3), randn(6, 5)), {}, ref_log_cosh, (0, 1)),
    Case("cosine_similarity", (X, randn(6, 5)), {}, ref_cos, (0, 1)),
    Case("cosine_similarity", (randn(6, 5, scale=0.1), randn(6, 5)), {"epsilon": 0.1}, ref_cos,
         (0, 1)),
    Case("cosine_similarity", (X, randn(6, 5)), {"axis": 0, "where": mask(6, 5)}, ref_cos, (0, 1)),
    Case("cosine_similarity", (X4, randn(3, 4, 2, 5)), {"axis": (1, 2)}, ref_cos),
    Case("cosine_distance", (X, randn(6, 5)), {}, ref_cos_dist, (0, 1)),
    Case("cosine_distance", (X4, randn(3, 4, 2, 5)), {"axis": 0, "epsilon": 1e-3}, ref_cos_dist),
    Case("ntxent", (EMB, EMB_Y), {}, ref_ntxent),
    Case("ntxent", (EMB, EMB_Y3), {"temperature": 0.5}, ref_ntxent),
    Case("ntxent", (EMB, EMB_Y), {"temperature": 1.3}, ref_ntxent),
    Case("triplet_margin_loss", (randn(6, 4), randn(6, 4), randn(6, 4)), {}, ref_triplet,
         (0, 1, 2)),
    Case("triplet_margin_loss", (randn(4, 6), randn(4, 6), randn(4, 6)),
         {"axis": 0, "margin": 0.3, "eps": 1e-3}, ref_triplet, (0, 1, 2)),
    Case("triplet_margin_loss", (randn(6, 4), randn(6, 4), randn(6, 4)), {"norm_degree": 4},
         ref_triplet, (0, 1, 2)),
    # optax omits |.| in the q-norm: different (and wrong) for odd degrees.
    Case("triplet_margin_loss", (randn(6, 4), randn(6, 4), randn(6, 4)), {"norm_degree": 1},
         ref_triplet, optax=False),
    Case("ranking_softmax_loss", (randn(4, 6), RANK_Y), {}, ref_ranking),
    Case("ranking_softmax_loss", (randn(4, 6), RANK_Y), {"where": RANK_W}, ref_ranking),
    Case("ranking_softmax_loss", (randn(4, 6), RANK_Y),
         {"where": RANK_W, "weights": R.rand(4, 6), "reduce_fn": jnp.sum}, ref_ranking),
    Case("ranking_softmax_loss", (randn(2, 3, 6), R.randint(0, 3, (2, 3, 6)).astype(float)),
         {"reduce_fn": None}, ref_ranking),
    Case("ranking_softmax_loss", (randn(4, 6), RANK_Y), {"where": RANK_W, "reduce_fn": None},
         ref_ranking),
    Case("dice_loss", (SEG, SEG_Y), {}, ref_dice),
    Case("dice_loss", (SEG, SEG_Y),
         {"alpha": 0.3, "beta": 0.7, "smooth": 0.5, "class_weights": R.rand(3),
          "reduction": "sum"}, ref_dice),
    Case("dice_loss", (SEG, SEG_Y), {"ignore_background": True, "reduction": "none"}, ref_dice),
    Case("dice_loss", (SEG, SEG_Y), {"axis": (1,)}, ref_dice),
    Case("dice_loss", (SEG_P, SEG_Y), {"apply_softmax": False}, ref_dice, (), optax_jit=False),
    Case("dice_loss", (BIN, BIN_Y), {}, ref_dice),
    Case("dice_loss", (BIN[..., None], BIN_Y), {"smooth": 0.1}, ref_dice),
    Case("multiclass_generalized_dice_loss", (SEG, SEG_Y), {}, ref_gdice),
    Case("multiclass_generalized_dice_loss", (SEG, SEG_Y),
         {"ignore_background": True, "smooth": 0.3}, ref_gdice),
    Case("multiclass_generalized_dice_loss", (SEG_P, SEG_Y), {"apply_softmax": False}, ref_gdice,
         (), optax_jit=False),
    Case("binary_dice_loss", (BIN, BIN_Y), {}, ref_binary_dice),
    Case("binary_dice_loss", (BIN[..., None], BIN_Y[..., None]), {"smooth": 0.5}, ref_binary_dice),
    # optax requires each probability of a single channel to be 1 and raises.
    Case("binary_dice_loss", (expit(BIN), BIN_Y), {"apply_sigmoid": False}, ref_binary_dice,
         optax=False),
]  # fmt: skip


def _id(case):
    opts = ",".join(sorted(case.kwargs))
    return f"{case.name}[{opts}]" if opts else case.name


IDS = [f"{_id(c)}-{i}" for i, c in enumerate(CASES)]


def call(fn, args, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


def split(case, dtype=None):
    """The case's array arguments (floating ones cast to ``dtype``), as a list to pass to a
    jitted function, and ``rebuild(arrays) -> (args, kwargs)`` (the rest stays static)."""

    def conv(x):
        floating = np.issubdtype(x.dtype, np.floating)
        return jnp.asarray(x, dtype if dtype is not None and floating else None)

    keys = sorted(case.kwargs)
    arrays = [conv(a) for a in case.args if isinstance(a, np.ndarray)]
    arrays += [conv(case.kwargs[k]) for k in keys if isinstance(case.kwargs[k], np.ndarray)]

    def rebuild(arrays):
        it = iter(arrays)
        args = tuple(next(it) if isinstance(a, np.ndarray) else a for a in case.args)
        kwargs = {
            k: next(it) if isinstance(case.kwargs[k], np.ndarray) else case.kwargs[k] for k in keys
        }
        return args, kwargs

    return arrays, rebuild


def weighted_grad(fn, case, args, kwargs):
    """Gradient in the ``case.diff`` arguments of ``sum(w * fn(...))`` for fixed weights ``w``
    (nan outputs, e.g. out-of-range integer labels, weighted 0)."""

    def f(*diff):
        full = list(args)
        for k, a in zip(case.diff, diff, strict=True):
            full[k] = a
        out = call(fn, full, kwargs)
        w = jnp.cos(0.7 * jnp.arange(out.size) + 0.3).reshape(out.shape) + 0.2
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out) * w)

    return jax.grad(f, argnums=tuple(range(len(case.diff))))(*(args[k] for k in case.diff))


def evaluate(dtype, grads):
    """Every case through gradtx and optax (and, with ``grads``, their gradients), all in one
    compiled program: on this 2-core machine one compilation is far cheaper than one per case
    (or than eager execution, which compiles every operation for every new shape)."""
    parts = [split(c, dtype) for c in CASES]

    def run(all_arrays):
        results = []
        for case, (_, rebuild), arrays in zip(CASES, parts, all_arrays, strict=True):
            args, kwargs = rebuild(arrays)
            r = {"gradtx": call(case.gfn(), args, kwargs)}
            if case.optax and case.optax_jit:
                r["optax"] = call(case.ofn(), args, kwargs)
            if grads and case.optax and case.diff:
                r["gradtx_grad"] = weighted_grad(case.gfn(), case, args, kwargs)
                r["optax_grad"] = weighted_grad(case.ofn(), case, args, kwargs)
            results.append(r)
        return results

    with fast_compile():
        results = jax.jit(run)([a for a, _ in parts])
    for case, (arrays, rebuild), r in zip(CASES, parts, results, strict=True):
        if case.optax and not case.optax_jit:  # optax raises under jit: eagerly
            r["optax"] = call(case.ofn(), *rebuild(arrays))
    return results


@pytest.fixture(scope="module")
def r64():
    return evaluate(jnp.float64, grads=True)


@pytest.fixture(scope="module")
def r32():
    return evaluate(jnp.float32, grads=False)


def test_every_loss_has_cases():
    names = {n for n in dir(OL) if not n.startswith("_")}
    assert {c.name for c in CASES} | {"ctc_loss", "ctc_loss_with_forward_probs"} == names


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_against_numpy_reference(i, r64):
    case = CASES[i]
    want = case.ref(*case.args, **case.kwargs)
    assert rel_err(r64[i]["gradtx"], want) <= F64


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_against_optax_float64(i, r64):
    if not CASES[i].optax:
        pytest.skip("documented difference, pinned in its own test")
    assert r64[i]["gradtx"].dtype == jnp.float64
    assert rel_err(r64[i]["gradtx"], r64[i]["optax"]) <= F64


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_float32_against_optax_and_dtype(i, r32, r64):
    got = r32[i]["gradtx"]
    assert got.dtype == jnp.float32
    want = r32[i]["optax"] if CASES[i].optax else r64[i]["gradtx"]
    assert rel_err(got, want) <= F32


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_gradient_matches_optax(i, r64):
    if not CASES[i].optax or not CASES[i].diff:
        pytest.skip("documented difference" if not CASES[i].optax else "no float argument")
    got, want = r64[i]["gradtx_grad"], r64[i]["optax_grad"]
    assert all(np.all(np.isfinite(g)) for g in got)
    # optax's gradients in the labels of masked classes (softmax_cross_entropy and
    # poly_loss_cross_entropy with ``where``) are nan: 0 * log_softmax = 0 * -inf.  Zero here.
    finite = [np.isfinite(np.asarray(w)) for w in want]
    if i not in NAN_LABEL_GRADS_IN_OPTAX:
        assert all(f.all() for f in finite)
    got = [np.asarray(g)[f] for g, f in zip(got, finite, strict=True)]
    want = [np.asarray(w)[f] for w, f in zip(want, finite, strict=True)]
    assert rel_err(got, want) <= GRAD


NAN_LABEL_GRADS_IN_OPTAX = [
    i
    for i, c in enumerate(CASES)
    if c.name in ("softmax_cross_entropy", "poly_loss_cross_entropy")
    and c.kwargs.get("where") is not None
    and 1 in c.diff
]


FIRST = sorted({c.name: i for i, c in reversed(list(enumerate(CASES)))}.values())


def test_jit_of_vmap(r64):
    """For the first case of every loss: vmapped over a new leading axis of every array
    argument (under jit), the same numbers as the single call.  (Eager execution is what the
    docstring examples run.)"""
    parts = {i: split(CASES[i]) for i in FIRST}

    def run(all_arrays):
        out = {}
        for i, arrays in all_arrays.items():
            rebuild = parts[i][1]
            out[i] = jax.vmap(lambda *a, i=i, rb=rebuild: call(CASES[i].gfn(), *rb(a)))(*arrays)
        return out

    stacked = {i: [jnp.stack([a, a]) for a in arrays] for i, (arrays, _) in parts.items()}
    with fast_compile():
        vmapped = jax.jit(run)(stacked)
    for i in FIRST:
        assert rel_err(vmapped[i], jnp.stack([r64[i]["gradtx"]] * 2)) <= F64, CASES[i].name


def test_bfloat16_keeps_its_dtype():
    for case in CASES:
        arrays, rebuild = split(case, jnp.bfloat16)
        out = jax.eval_shape(lambda arrays, c=case, rb=rebuild: call(c.gfn(), *rb(arrays)), arrays)
        assert out.dtype == jnp.bfloat16, (case.name, out.dtype)


# --------------------------------------------------------------------------------------------
# CTC

CTC_T, CTC_K = 8, 5
CTC_LOGITS = randn(4, CTC_T, CTC_K, scale=2)
CTC_LOGIT_PADS = np.zeros((4, CTC_T))
CTC_LOGIT_PADS[1, 6:] = 1.0  # 6 frames
CTC_LOGIT_PADS[2, 3] = CTC_LOGIT_PADS[2, 7] = 1.0  # a padded frame inside: skipped
CTC_LABEL_PADS = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]], np.float64)


def ctc_labels(blank_id, pad_value):
    labels = np.array([[1, 1, 2, pad_value], [3, 3, pad_value, pad_value], [1, 2, 2, 4],
                       [pad_value] * 4])  # fmt: skip
    return np.where(labels == blank_id, 0 if blank_id else 1, labels)


CTC_CASES = [  # blank_id, padding label value, keyword arguments
    (0, 0, {}),
    (2, 0, {"blank_id": 2}),
    (0, -1, {}),  # padding labels outside [0, K): a one-hot selects nothing
    (4, 7, {"blank_id": 4, "log_epsilon": -1e4}),
]


@pytest.fixture(scope="module")
def ctc_results():
    """Per case: gradtx's and optax's (loss, alpha_blank, alpha_label) in float64, their
    losses' weighted gradients in the logits, and both losses from float32 logits."""
    pads = (jnp.asarray(CTC_LOGIT_PADS), jnp.asarray(CTC_LABEL_PADS))

    def run(logits, all_labels):
        out = []
        for labels, (_, _, kw) in zip(all_labels, CTC_CASES, strict=True):
            r = {}
            for name, m in (("gradtx", GL), ("optax", OL)):
                r[name] = m.ctc_loss_with_forward_probs(logits, pads[0], labels, pads[1], **kw)
                w = jnp.array([1.0, -0.5, 2.0, 0.3])

                def f(x, m=m, labels=labels, kw=kw, w=w):
                    return jnp.sum(w * m.ctc_loss(x, pads[0], labels, pads[1], **kw))

                r[name + "_grad"] = jax.grad(f)(logits)
                x32 = logits.astype(jnp.float32)
                r[name + "_32"] = m.ctc_loss_with_forward_probs(x32, pads[0], labels, pads[1], **kw)
            r["ctc_loss"] = GL.ctc_loss(logits, pads[0], labels, pads[1], **kw)
            out.append(r)
        return out

    labels = [jnp.asarray(ctc_labels(b, p)) for b, p, _ in CTC_CASES]
    with fast_compile():
        return jax.jit(run)(jnp.asarray(CTC_LOGITS), labels)


@pytest.mark.parametrize("k", range(len(CTC_CASES)))
def test_ctc(k, ctc_results):
    blank, pad_value, _ = CTC_CASES[k]
    r = ctc_results[k]
    assert [g.shape for g in r["gradtx"]] == [(4,), (CTC_T, 4, 5), (CTC_T, 4, 4)]
    assert rel_err(r["gradtx"], r["optax"]) <= F64
    assert rel_err(r["ctc_loss"], r["gradtx"][0]) == 0
    ref = ref_ctc(CTC_LOGITS, CTC_LOGIT_PADS, ctc_labels(blank, pad_value), CTC_LABEL_PADS, blank)
    assert rel_err(r["gradtx"][0], ref) <= F64
    assert rel_err(r["gradtx_grad"], r["optax_grad"]) <= GRAD
    assert all(a.dtype == jnp.float32 for a in r["gradtx_32"])
    assert rel_err(r["gradtx_32"][0], r["optax_32"][0]) <= F32


def test_ctc_impossible_labelling_and_input_checks():
    """Two labels 'a a' need three frames: with two the loss is of order -log_epsilon."""
    logits = jnp.asarray(randn(1, 2, 3))
    args = (logits, jnp.zeros((1, 2)), jnp.array([[1, 1]]), jnp.zeros((1, 2)))
    got, want = GL.ctc_loss(*args), OL.ctc_loss(*args)
    assert got[0] > 5e4
    assert rel_err(got, want) <= F64
    for bad in [(logits[0], *args[1:]), (*args[:2], args[2][0], args[3]),
                (*args[:3], args[3][:, :1]), (logits, jnp.zeros((1, 3)), *args[2:])]:  # fmt: skip
        for fn in (GL.ctc_loss, OL.ctc_loss):
            with pytest.raises(ValueError):
                fn(*bad)


# --------------------------------------------------------------------------------------------
# signatures, docs, errors


def public(module):
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def test_signatures_match_optax():
    assert public(OL) == GL.__all__
    for name in public(OL):
        want = inspect.signature(getattr(OL, name)).parameters
        got = inspect.signature(getattr(GL, name)).parameters
        assert list(got) == list(want), name
        for p, q in zip(got.values(), want.values(), strict=True):
            assert p.kind == q.kind, (name, p.name)
            assert p.default is q.default or p.default == q.default, (name, p.name)


def test_top_level_optax_losses_are_here():
    """The losses optax also exports at its top level (``optax.<name>``) all exist here."""
    top = [n for n in public(optax) if getattr(OL, n, None) is getattr(optax, n)]
    assert len(top) == 19
    assert set(top) <= set(GL.__all__)


@pytest.mark.parametrize("name", GL.__all__)
def test_docstring(name):
    fn = getattr(GL, name)
    doc = inspect.getdoc(fn)
    assert f"optax.losses.{name}" in doc
    assert "torch" in doc and "Args:" in doc and "Example:" in doc and ".. math::" in doc
    params = inspect.signature(fn).parameters
    args = doc.split("Args:")[1]
    for p in params:
        assert f"  {p}:" in args, (name, p)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report = []
    for test in doctest.DocTestFinder(recurse=False).find(fn, name, globs={}):
        runner.run(test, out=report.append)
    assert runner.tries > 0
    assert runner.failures == 0, "".join(report)


ERRORS = [
    ("softmax_cross_entropy", (np.ones((2, 3), np.int32), Y[:2, :3]), {}, TypeError),
    ("softmax_cross_entropy_with_integer_labels", (X, Y), {}, TypeError),
    ("softmax_cross_entropy_with_integer_labels", (X, INT_Y), {"axis": 1.0}, ValueError),
    ("sigmoid_binary_cross_entropy", (HARD_Y, HARD_Y), {}, TypeError),
    ("poly_loss_cross_entropy", (X, INT_Y[:, None]), {}, TypeError),
    ("squared_error", (X, randn(5)), {}, ValueError),
    ("squared_error", (INT_Y,), {}, TypeError),
    ("perceptron_loss", (randn(3), randn(1)), {}, ValueError),
    ("kl_divergence", (LOG_P, INT_Y[:, None]), {}, TypeError),
    ("cosine_similarity", (X, INT_Y[:, None]), {}, TypeError),
    ("ntxent", (EMB, EMB_Y[:5]), {}, ValueError),
    ("triplet_margin_loss", (EMB, EMB, EMB_Y[:, None]), {}, TypeError),
    ("ranking_softmax_loss", (RANK_Y.astype(np.int32), RANK_Y), {}, TypeError),
    ("dice_loss", (SEG, SEG_Y), {"reduction": "max"}, ValueError),
    ("dice_loss", (SEG, SEG_Y), {"apply_softmax": False}, ValueError),
    ("dice_loss", (SEG, SEG_Y[..., :2]), {}, ValueError),
    ("dice_loss", (SEG, SEG_Y), {"class_weights": np.ones((1, 3))}, ValueError),
    ("multiclass_generalized_dice_loss", (SEG, SEG_Y[..., :2]), {}, ValueError),
]


@pytest.mark.parametrize("name, args, kwargs, error", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_as_optax(name, args, kwargs, error):
    args = tuple(jnp.asarray(a) for a in args)
    for module in (GL, OL):
        with pytest.raises(error):
            getattr(module, name)(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# documented differences and numerics


def test_convex_kl_divergence_warns_like_optax():
    args = (jnp.asarray(LOG_P), jnp.asarray(Y))
    with pytest.warns(DeprecationWarning, match="generalized_kl_divergence"):
        got = GL.convex_kl_divergence(*args)
    assert rel_err(got, GL.generalized_kl_divergence(*args)) == 0


def jit_run(fn, *args):
    """``jax.jit(fn)(*args)`` with fast compilation (one program per test, not one per op)."""
    with fast_compile():
        return jax.jit(fn)(*args)


def test_log_cosh_keeps_relative_precision_for_small_errors():
    e = np.sign(randn(40)) * np.logspace(-9, 0, 40)
    big = np.array([700.0, -1e4, 1e300])

    def run(e, e32, big):
        grad = jax.vmap(jax.grad(GL.log_cosh))(e)  # tanh(e)
        return GL.log_cosh(e), grad, GL.log_cosh(e32), OL.log_cosh(e32), GL.log_cosh(big)

    e32 = jnp.asarray([1e-4, 1e-3], jnp.float32)
    val, grad, got32, optax32, got_big = jit_run(run, jnp.asarray(e), e32, jnp.asarray(big))
    assert rel_err(val / ref_log_cosh(e), np.ones(40)) <= F64
    assert rel_err(grad / np.tanh(e), np.ones(40)) <= F64
    np.testing.assert_allclose(got32, [5e-9, 5e-7 - 1e-12 / 12], rtol=2e-6)
    assert float(optax32[0]) == 0.0  # optax: cancellation in logaddexp(e, -e) - log 2
    assert rel_err(got_big, ref_log_cosh(big)) <= F64


def test_triplet_margin_loss_odd_degree_is_a_norm():
    a, p, n = (randn(6, 4) for _ in range(3))

    def run(a, p, n):
        return (
            GL.triplet_margin_loss(a, p, n, norm_degree=1, eps=0.0),
            GL.triplet_margin_loss(a, p, n, norm_degree=3),
            OL.triplet_margin_loss(a, p, n, norm_degree=3),
        )

    l1, l3, optax3 = jit_run(run, jnp.asarray(a), jnp.asarray(p), jnp.asarray(n))
    d = np.abs(a - p).sum(-1) - np.abs(a - n).sum(-1) + 1
    assert rel_err(l1, np.maximum(d, 0)) <= F64
    assert rel_err(l3, ref_triplet(a, p, n, norm_degree=3)) <= F64
    assert np.any(np.isnan(optax3))  # optax: (a - p) ** 3 summed, then a cube root


def test_kl_divergence_gradient_at_zero_targets_is_finite():
    """optax's ``log(targets)`` inside its ``where`` gives nan gradients in ``targets`` at 0;
    here they are finite (elsewhere equal to optax's), so the chain rule through
    ``targets = softmax(z)`` with an underflowing class gives a finite gradient in ``z``."""
    z = jnp.array([[0.0, 1.0, -800.0]])  # softmax(z)[2] underflows to exactly 0

    def run(lp, t, z):
        out = []
        for m in (GL, OL):
            out.append(jax.grad(lambda t, m=m: jnp.sum(m.kl_divergence(lp, t)))(t))
            log_u = jnp.log(jnp.full((1, 3), 1 / 3))
            out.append(
                jax.grad(lambda z, m=m: jnp.sum(m.kl_divergence(log_u, jax.nn.softmax(z))))(z)
            )
        return out

    g, gz, o, oz = jit_run(run, jnp.asarray(LOG_P), jnp.asarray(Y_ZEROS), z)
    zero = Y_ZEROS == 0
    assert np.all(np.isfinite(g)) and np.all(np.isnan(np.asarray(o)[zero]))
    assert rel_err(np.asarray(g)[~zero], np.asarray(o)[~zero]) <= GRAD
    assert np.all(np.isfinite(gz)) and np.any(np.isnan(oz))


def test_dice_checks_are_skipped_under_jit_and_for_one_channel():
    p, y = jnp.asarray(SEG_P), jnp.asarray(SEG_Y)
    got = jit_run(lambda p, y: GL.dice_loss(p, y, apply_softmax=False), p, y)
    assert rel_err(got, ref_dice(SEG_P, SEG_Y, apply_softmax=False)) <= F64
    with pytest.raises(jax.errors.TracerBoolConversionError):
        jax.jit(lambda p: OL.dice_loss(p, y, apply_softmax=False))(p)
    with pytest.raises(ValueError):  # eagerly, gradtx checks the sums too
        GL.dice_loss(p * 1.1, y, apply_softmax=False)
    with pytest.raises(ValueError):  # optax asks each binary probability to be 1
        OL.binary_dice_loss(jnp.asarray(expit(BIN)), BIN_Y, apply_sigmoid=False)


def test_safe_softmax_cross_entropy_gradient_is_finite_at_minus_inf():
    def run(x, y):
        g = jax.grad(lambda x: jnp.sum(GL.safe_softmax_cross_entropy(x, y)))(x)
        return g, GL.softmax_cross_entropy(x, y)

    g, plain = jit_run(run, jnp.asarray(SAFE_X), jnp.asarray(SAFE_Y))
    assert np.all(np.isfinite(g))
    p = np.exp(SAFE_X - np_lse(SAFE_X, -1, np.isfinite(SAFE_X), keepdims=True))
    assert rel_err(g, p * SAFE_Y.sum(-1, keepdims=True) - SAFE_Y) <= F64  # softmax - y
    assert np.all(np.isnan(np.asarray(plain)[[0, 3]]))  # 0 * -inf without the safe form


def test_sparsemax_gradients_are_projection_minus_one_hot():
    s = randn(6, 5, scale=2)
    loss = lambda s: jnp.sum(GL.multiclass_sparsemax_loss(s, INT_Y))
    g = jit_run(jax.grad(loss), jnp.asarray(s))
    want = np.stack([sparsemax(r) for r in s]) - one_hot(INT_Y, 5)
    assert rel_err(g, want) <= F64
