"""Listwise ranking losses: items along the last axis, lists along the leading ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.losses._util import require_dtype

__all__ = ["ranking_softmax_loss"]


def ranking_softmax_loss(logits, labels, *, where=None, weights=None, reduce_fn=jnp.mean):
    r"""Listwise softmax ranking loss: cross-entropy between the relevance labels and the
    softmax of the item scores of each list.

    .. math:: \ell(s, y) = -\sum_i w_i y_i \log \frac{e^{s_i}}{\sum_{j \text{ valid}} e^{s_j}}

    Items outside ``where`` take no part (neither in the sum nor in the normalizer).  Lists
    are then reduced by ``reduce_fn(losses, where=list_has_a_valid_item)``; with
    ``jnp.mean``, a mean over no list gives ``0`` rather than ``nan`` (unless a loss was
    ``nan``); with ``None`` the per-list losses are returned, ``0`` for empty lists.

    optax: ``optax.losses.ranking_softmax_loss``.  torch: none (TF-Ranking's
    ``SoftmaxLoss``).

    Args:
      logits: ``[..., list_size]`` item scores.
      labels: ``[..., list_size]`` relevance labels (cast to ``logits``' dtype).
      where: ``[..., list_size]`` booleans, which items are valid.
      weights: ``[..., list_size]`` per-item weights (multiply the labels).
      reduce_fn: ``jnp.mean``, ``jnp.sum`` or any function with a ``where`` keyword;
        ``None`` for no reduction.

    Returns:
      The reduced loss (a scalar for ``jnp.mean``/``jnp.sum``), or ``[...]`` per list.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> scores = jnp.array([[2.0, 1.0, 0.0], [1.0, 0.5, 1.5]], jnp.float32)
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], jnp.float32)
        >>> where = jnp.array([[True, True, False], [True, True, True]])
        >>> print(f"{losses.ranking_softmax_loss(scores, labels, where=where):.4f}")
        0.4968
    """
    require_dtype(logits, jnp.floating, "logits")
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    if where is not None:
        labels = jnp.where(where, labels, 0.0)
        logits = jnp.where(where, logits, -jnp.inf)
    if weights is not None:
        labels = labels * weights
    per_list = -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1, where=where)
    valid = None if where is None else jnp.any(where, axis=-1)
    if reduce_fn is None:
        return per_list if valid is None else jnp.where(valid, per_list, 0.0)
    out = reduce_fn(per_list, where=valid)
    if reduce_fn is jnp.mean:
        # A mean over no list is nan: report 0 instead, unless a loss itself was nan.
        out = jnp.where(jnp.isnan(out) & ~jnp.any(jnp.isnan(per_list)), 0.0, out)
    return out
