"""Kullback-Leibler divergences between target distributions and predicted ones given as
log-probabilities, reduced along ``axis`` (``where`` masks entries out of the sum)."""

from __future__ import annotations

import warnings

import jax.numpy as jnp

from gradtx.losses._util import require_dtype

__all__ = [
    "convex_kl_divergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
]


def kl_divergence(log_predictions, targets, axis=-1, where=None):
    r"""Kullback-Leibler divergence ``KL(targets ‖ predictions)``, predictions in log space.

    .. math:: \mathrm{KL}(t \,\|\, p) = \sum_j t_j (\log t_j - \log p_j)

    with ``0 log 0 = 0`` (a zero target contributes nothing, and its gradient in ``targets``
    is finite, ``-log p``: optax's is ``nan``, which poisons e.g. a target ``softmax`` that
    underflows to ``0``).

    optax: ``optax.losses.kl_divergence``.  torch:
    ``torch.nn.functional.kl_div(log_predictions, targets, reduction="none").sum(-1)``.

    Args:
      log_predictions: log-probabilities of the predicted distribution.
      targets: probabilities of the target distribution (``>= 0``), broadcastable.
      axis: the axis (or tuple of axes, or ``None``) summed over.
      where: which entries take part in the sum.

    Returns:
      The divergences, the inputs' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> log_p = jnp.log(jnp.array([[0.5, 0.25, 0.25]], jnp.float32))
        >>> t = jnp.array([[0.25, 0.25, 0.5]], jnp.float32)
        >>> loss = losses.kl_divergence(log_p, t)
        >>> print([round(float(v), 4) for v in loss])  # log(2) / 4
        [0.1733]
    """
    require_dtype(log_predictions, jnp.floating, "log_predictions")
    require_dtype(targets, jnp.floating, "targets")
    targets = jnp.asarray(targets)
    zero = targets == 0
    log_t = jnp.where(zero, 0.0, jnp.log(jnp.where(zero, 1.0, targets)))
    return jnp.sum(targets * (log_t - log_predictions), axis=axis, where=where)


def kl_divergence_with_log_targets(log_predictions, log_targets, axis=-1, where=None):
    r"""Kullback-Leibler divergence ``KL(targets ‖ predictions)``, both in log space.

    .. math:: \mathrm{KL}(t \,\|\, p) = \sum_j e^{\log t_j} (\log t_j - \log p_j)

    optax: ``optax.losses.kl_divergence_with_log_targets``.  torch:
    ``torch.nn.functional.kl_div(log_predictions, log_targets, reduction="none",
    log_target=True).sum(-1)``.

    Args:
      log_predictions: log-probabilities of the predicted distribution.
      log_targets: log-probabilities of the target distribution, broadcastable.
      axis: the axis (or tuple of axes, or ``None``) summed over.
      where: which entries take part in the sum.

    Returns:
      The divergences, the inputs' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> log_p = jnp.log(jnp.array([[0.5, 0.25, 0.25]], jnp.float32))
        >>> log_t = jnp.log(jnp.array([[0.25, 0.25, 0.5]], jnp.float32))
        >>> loss = losses.kl_divergence_with_log_targets(log_p, log_t)
        >>> print([round(float(v), 4) for v in loss])
        [0.1733]
    """
    require_dtype(log_predictions, jnp.floating, "log_predictions")
    require_dtype(log_targets, jnp.floating, "log_targets")
    log_targets = jnp.asarray(log_targets)
    terms = jnp.exp(log_targets) * (log_targets - log_predictions)
    return jnp.sum(terms, axis=axis, where=where)


def generalized_kl_divergence(log_predictions, targets, axis=-1, where=None):
    r"""Generalized KL divergence, for unnormalized (positive) measures.

    .. math:: D(t \,\|\, p) = \sum_j \bigl(t_j \log\tfrac{t_j}{p_j} - t_j + p_j\bigr)

    the Bregman divergence of ``x log x - x``; equal to ``kl_divergence`` when both sum to
    one.

    optax: ``optax.losses.generalized_kl_divergence``.  torch: none.

    Args:
      log_predictions: log of the predicted measure.
      targets: the target measure (``>= 0``), broadcastable.
      axis: the axis (or tuple of axes, or ``None``) summed over.
      where: which entries take part in the sums.

    Returns:
      The divergences, the inputs' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> log_p = jnp.log(jnp.array([[1.0, 2.0]], jnp.float32))
        >>> t = jnp.array([[2.0, 2.0]], jnp.float32)
        >>> loss = losses.generalized_kl_divergence(log_p, t)
        >>> print([round(float(v), 4) for v in loss])  # 2 log 2 - 1
        [0.3863]
    """
    kl = kl_divergence(log_predictions, targets, axis=axis, where=where)
    return kl + jnp.sum(jnp.exp(log_predictions) - targets, axis=axis, where=where)


def convex_kl_divergence(log_predictions, targets, axis=-1, where=None):
    r"""Deprecated name of ``generalized_kl_divergence`` (warns, as optax does).

    .. math:: D(t \,\|\, p) = \sum_j \bigl(t_j \log\tfrac{t_j}{p_j} - t_j + p_j\bigr)

    optax: ``optax.losses.convex_kl_divergence`` (deprecated there too).  torch: none.

    Args:
      log_predictions: log of the predicted measure.
      targets: the target measure (``>= 0``), broadcastable.
      axis: the axis (or tuple of axes, or ``None``) summed over.
      where: which entries take part in the sums.

    Returns:
      The divergences, the inputs' shape without ``axis``.

    Example:
        >>> import warnings
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> log_p = jnp.log(jnp.array([[1.0, 2.0]], jnp.float32))
        >>> t = jnp.array([[2.0, 2.0]], jnp.float32)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     print([round(float(v), 4) for v in losses.convex_kl_divergence(log_p, t)])
        [0.3863]
    """
    warnings.warn(
        "convex_kl_divergence is deprecated: use generalized_kl_divergence.",
        DeprecationWarning,
        stacklevel=2,
    )
    return generalized_kl_divergence(log_predictions, targets, axis=axis, where=where)
