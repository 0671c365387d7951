"""Cross-entropy losses for classification: softmax (probability or integer targets), sigmoid
(independent binary targets), focal, poly, and label smoothing.

Every function is a pure function of arrays (jit, vmap and grad work through it) and returns
the dtype of its logits.  Log-probabilities are computed in the stable forms
``log_softmax(x) = x - logsumexp(x)`` and ``log(sigmoid(x)) = log_sigmoid(x)``, never as the
log of a probability.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from gradtx.losses._util import expand_where, normalize_axis, require_dtype

__all__ = [
    "poly_loss_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]


def softmax_cross_entropy(logits, labels, axis=-1, where=None):
    r"""Cross-entropy between target distributions and ``softmax(logits)``.

    .. math:: \ell(x, y) = -\sum_j y_j \log \operatorname{softmax}(x)_j
       = -\sum_j y_j \bigl(x_j - \log\textstyle\sum_k e^{x_k}\bigr)

    optax: ``optax.losses.softmax_cross_entropy`` (same arguments and numbers).
    torch: ``torch.nn.functional.cross_entropy(logits, probs, reduction="none")`` with
    probability targets (class axis 1 there, ``axis`` here).

    Args:
      logits: unnormalized log-probabilities, classes along ``axis``.
      labels: target distributions (e.g. one-hot), broadcastable to ``logits``.
      axis: the class axis, or a tuple of axes treated together as one class axis.
      where: which classes take part: a mask of ``logits``' shape, or of the batch shape
        (then it applies to the whole row).  Masked classes are left out of the softmax's
        normalizer and of the sum, and get zero gradients (optax's gradient in ``labels`` is
        ``nan`` there).

    Returns:
      The loss per example: ``logits``' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]], jnp.float32)
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], jnp.float32)
        >>> loss = losses.softmax_cross_entropy(logits, labels)
        >>> print([round(float(v), 4) for v in loss])
        [0.2761, 2.9518]
    """
    require_dtype(logits, jnp.floating, "logits")
    logits = jnp.asarray(logits)
    where = expand_where(where, logits.ndim, axis)
    log_p = jax.nn.log_softmax(logits, axis=axis, where=where)
    if where is not None:  # masked classes: log_p = -inf, which would give nan label gradients
        log_p = jnp.where(where, log_p, 0.0)
    return -jnp.sum(labels * log_p, axis=axis, where=where)


def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None):
    r"""Cross-entropy of ``softmax(logits)`` at integer class labels.

    .. math:: \ell(x, y) = \log\textstyle\sum_k e^{x_k} - x_y

    Only the label's logit is read, so the log-normalizer is subtracted once per example
    rather than from every class.  Labels follow ``jnp.take_along_axis``: a negative label
    counts from the end (``-1`` is the last class) and a label ``>= num_classes`` (or
    ``< -num_classes``) gives ``nan``, as in optax.

    optax: ``optax.losses.softmax_cross_entropy_with_integer_labels`` (same arguments and
    numbers).  torch: ``torch.nn.functional.cross_entropy(logits, labels, reduction="none")``
    (torch's ``ignore_index`` has no counterpart: mask those examples with ``where``).

    Args:
      logits: unnormalized log-probabilities, classes along ``axis``.
      labels: integer class indices, ``logits``' shape without ``axis``.
      axis: the class axis; a tuple of axes is flattened (in the order given) into one class
        axis, and a label is a flat index into that block.
      where: which classes take part (``logits``' shape, or the batch shape for whole rows).
        A row with no class left gives ``0``.

    Returns:
      The loss per example: ``labels``' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]], jnp.float32)
        >>> labels = jnp.array([0, 1])
        >>> ce = losses.softmax_cross_entropy_with_integer_labels(logits, labels)
        >>> print([round(float(v), 4) for v in ce])
        [0.2761, 2.9518]
    """
    require_dtype(logits, jnp.floating, "logits")
    require_dtype(labels, jnp.integer, "labels")
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    where = expand_where(where, logits.ndim, axis)
    if isinstance(axis, tuple):
        class_axes = tuple(normalize_axis(a, logits.ndim) for a in axis)
        batch_axes = tuple(a for a in range(logits.ndim) if a not in class_axes)
        order = batch_axes + class_axes
        logits = logits.transpose(order).reshape(*_dims(logits, batch_axes), -1)
        if where is not None:
            where = where.transpose(order).reshape(*_dims(where, batch_axes), -1)
        axis = len(batch_axes)
    else:
        try:
            axis = normalize_axis(axis, logits.ndim)
        except TypeError:
            raise ValueError(f"axis must be an int or a tuple of ints, got {type(axis)}") from None
    label_logit = jnp.take_along_axis(logits, jnp.expand_dims(labels, axis), axis=axis)
    loss = jax.nn.logsumexp(logits, axis=axis, where=where) - jnp.squeeze(label_logit, axis)
    if where is not None:
        loss = jnp.where(jnp.any(where, axis=axis), loss, 0.0)
    return loss


def _dims(x, axes):
    return tuple(x.shape[a] for a in axes)


@jax.custom_jvp
def _weighted_log_softmax(x, w):
    """``w * log_softmax(x)`` over the last axis, ``0`` wherever ``w == 0`` (``0 log 0 = 0``)."""
    log_p = jax.nn.log_softmax(x, axis=-1)
    return jnp.where(w != 0, w * log_p, 0.0)


@_weighted_log_softmax.defjvp
def _weighted_log_softmax_jvp(primals, tangents):
    # d/dx [w * log_softmax(x)] = w * (dx - <softmax(x), dx>): finite even where x = -inf
    # (there softmax(x) = 0), unlike autodiff through the masked product.
    x, w = primals
    dx, dw = tangents
    log_p = jax.nn.log_softmax(x, axis=-1)
    mean_dx = jnp.sum(dx * jax.nn.softmax(x, axis=-1), axis=-1, keepdims=True)
    out = jnp.where(w != 0, w * log_p, 0.0)
    return out, w * (dx - mean_dx) + dw * log_p


def safe_softmax_cross_entropy(logits, labels):
    r"""Softmax cross-entropy that reads ``0 log 0`` as ``0``: classes with ``logits = -inf``
    and ``labels = 0`` contribute nothing (and no ``nan`` to the value or the gradient).

    .. math:: \ell(x, y) = -\sum_{j:\, y_j \ne 0} y_j \log \operatorname{softmax}(x)_j

    optax: ``optax.losses.safe_softmax_cross_entropy``.  torch:
    ``torch.nn.functional.cross_entropy(logits, probs, reduction="none")``.

    Args:
      logits: unnormalized log-probabilities ``[..., num_classes]``; ``-inf`` marks an
        impossible class.
      labels: target distributions broadcastable to ``logits``.

    Returns:
      The loss per example, shape ``[...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[0.5, -jnp.inf, 1.0]], jnp.float32)
        >>> labels = jnp.array([[0.5, 0.0, 0.5]], jnp.float32)
        >>> loss = losses.safe_softmax_cross_entropy(logits, labels)
        >>> print([round(float(v), 4) for v in loss])
        [0.7241]
        >>> print(losses.softmax_cross_entropy(logits, labels))  # 0 * -inf
        [nan]
    """
    require_dtype(logits, jnp.floating, "logits")
    return -jnp.sum(_weighted_log_softmax(jnp.asarray(logits), jnp.asarray(labels)), axis=-1)


def sigmoid_binary_cross_entropy(logits, labels):
    r"""Element-wise binary cross-entropy of ``sigmoid(logits)`` against ``labels``.

    .. math:: \ell(x, y) = -y \log\sigma(x) - (1 - y)\log\sigma(-x)

    with ``log σ`` computed as ``log_sigmoid`` (no overflow for large ``|x|``).  For several
    independent binary labels (multi-label classification) pass one logit per label.

    optax: ``optax.losses.sigmoid_binary_cross_entropy``.  torch:
    ``torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")``.

    Args:
      logits: logit of the positive class, any shape.
      labels: targets in ``[0, 1]`` (hard or soft), broadcastable to ``logits``; cast to
        ``logits``' dtype.

    Returns:
      The loss per element, the broadcast shape of ``logits`` and ``labels``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([2.0, -1.0, 0.0], jnp.float32)
        >>> labels = jnp.array([1.0, 1.0, 0.3], jnp.float32)
        >>> loss = losses.sigmoid_binary_cross_entropy(logits, labels)
        >>> print([round(float(v), 4) for v in loss])
        [0.1269, 1.3133, 0.6931]
    """
    require_dtype(logits, jnp.floating, "logits")
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    return -labels * jax.nn.log_sigmoid(logits) - (1.0 - labels) * jax.nn.log_sigmoid(-logits)


def sigmoid_focal_loss(logits, labels, *, alpha=None, gamma=2.0):
    r"""Focal loss: the sigmoid cross-entropy scaled down for well-classified elements.

    .. math::
       \ell = \alpha_t (1 - p_t)^\gamma \operatorname{BCE}(x, y), \qquad
       1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x), \qquad
       \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    (``α_t = 1`` when ``alpha`` is ``None``).  The factor is computed in log space,
    ``exp(γ · logsumexp([log σ(x), log σ(-x)], b=[1 - y, y]))``, which stays accurate for
    extreme logits and for ``γ < 1``; soft labels in ``[0, 1]`` are allowed.

    optax: ``optax.losses.sigmoid_focal_loss``.  torch: ``torchvision.ops.sigmoid_focal_loss``
    (there ``alpha=0.25`` by default, ``-1`` for none).

    Args:
      logits: logit of the positive class, any shape.
      labels: targets in ``[0, 1]`` broadcastable to ``logits``; cast to ``logits``' dtype.
      alpha: weight of the positives (negatives get ``1 - alpha``); ``None``: no weighting.
      gamma: focusing exponent; ``0`` gives the (``alpha``-weighted) cross-entropy.

    Returns:
      The loss per element, the broadcast shape of ``logits`` and ``labels``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([3.0, -0.5, 0.5], jnp.float32)
        >>> labels = jnp.array([1.0, 1.0, 0.0], jnp.float32)
        >>> loss = losses.sigmoid_focal_loss(logits, labels, alpha=0.25)
        >>> print([round(float(v), 4) for v in loss])
        [0.0, 0.0944, 0.2831]
    """
    require_dtype(logits, jnp.floating, "logits")
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    ce = sigmoid_binary_cross_entropy(logits, labels)
    log_p, log_q = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    log_p, log_q, labels_b = jnp.broadcast_arrays(log_p, log_q, labels)
    log_miss = logsumexp(
        jnp.stack([log_p, log_q], axis=-1), axis=-1, b=jnp.stack([1 - labels_b, labels_b], axis=-1)
    )
    loss = ce * jnp.exp(gamma * log_miss)
    if alpha is None:
        return loss
    return (alpha * labels + (1.0 - alpha) * (1.0 - labels)) * loss


def poly_loss_cross_entropy(logits, labels, *, epsilon=2.0, axis=-1, where=None):
    r"""Poly-1 loss: softmax cross-entropy plus ``epsilon`` times the first term of its
    Taylor expansion in ``1 - p_t``.

    .. math:: \ell = \operatorname{CE}(x, y) + \epsilon \sum_j y_j (1 - \operatorname{softmax}(x)_j)

    ``epsilon = -1`` removes the first term of the expansion, the paper's ``2.0`` is the
    default (Leng et al. 2022, "PolyLoss").

    optax: ``optax.losses.poly_loss_cross_entropy``.  torch: none.

    Args:
      logits: unnormalized log-probabilities, classes along ``axis``.
      labels: target distributions (floating) broadcastable to ``logits``.
      epsilon: coefficient of the first polynomial term.
      axis: the class axis (or tuple of axes).
      where: which classes take part, ``logits``' shape.

    Returns:
      The loss per example: ``logits``' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]], jnp.float32)
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], jnp.float32)
        >>> loss = losses.poly_loss_cross_entropy(logits, labels)
        >>> print([round(float(v), 4) for v in loss])
        [0.7587, 4.8473]
    """
    require_dtype(logits, jnp.floating, "logits")
    require_dtype(labels, jnp.floating, "labels")
    p = jax.nn.softmax(logits, axis=axis, where=where)
    one_minus_pt = jnp.sum(labels * (1 - p), axis=axis, where=where)
    return softmax_cross_entropy(logits, labels, axis=axis, where=where) + epsilon * one_minus_pt


def smooth_labels(labels, alpha, *, axis=-1, where=None):
    r"""Label smoothing: mixes the targets with the uniform distribution over the classes.

    .. math:: \tilde y = (1 - \alpha)\, y + \alpha / K

    with ``K`` the number of classes along ``axis`` (with ``where``: the number of classes
    it keeps in each row; every entry, kept or not, gets the ``α / K`` term).

    optax: ``optax.losses.smooth_labels``.  torch: the ``label_smoothing=alpha`` argument of
    ``torch.nn.functional.cross_entropy`` applies the same mixture to its targets.

    Args:
      labels: one-hot (or probability) targets, floating.
      alpha: the smoothing weight, in ``[0, 1]``.
      axis: the class axis (or tuple of axes, or ``None`` for all).
      where: which classes count in ``K``, ``labels``' shape.

    Returns:
      The smoothed targets, ``labels``' shape and dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> labels = jnp.array([[0.0, 1.0, 0.0, 0.0]], jnp.float32)
        >>> print(losses.smooth_labels(labels, 0.2))
        [[0.05 0.85 0.05 0.05]]
    """
    require_dtype(labels, jnp.floating, "labels")
    labels = jnp.asarray(labels)
    if where is not None:
        classes = jnp.sum(where, axis=axis, keepdims=True).astype(labels.dtype)
    elif axis is None:
        classes = labels.size
    elif isinstance(axis, tuple):
        classes = math.prod(labels.shape[a] for a in axis)
    else:
        classes = labels.shape[axis]
    return (1.0 - alpha) * labels + alpha / classes
