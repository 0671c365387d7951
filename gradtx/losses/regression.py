"""Regression losses (squared error, Huber, log-cosh) and the cosine similarity/distance.

The element-wise losses return the per-element values: average them yourself
(``squared_error(p, t).mean()`` is the mean squared error).
"""

from __future__ import annotations

import jax.numpy as jnp

from gradtx.losses._util import require_dtype, require_same_shape

__all__ = [
    "cosine_distance",
    "cosine_similarity",
    "huber_loss",
    "l2_loss",
    "log_cosh",
    "squared_error",
]


def squared_error(predictions, targets=None):
    r"""Element-wise squared error.

    .. math:: \ell(p, t) = (p - t)^2

    optax: ``optax.losses.squared_error``.  torch:
    ``torch.nn.functional.mse_loss(predictions, targets, reduction="none")``.

    Args:
      predictions: floating predictions, any shape.
      targets: targets of the same shape (``ValueError`` otherwise: no broadcasting, as in
        optax); ``None`` for zeros.

    Returns:
      The loss per element, ``predictions``' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> p = jnp.array([1.0, 2.5, -1.0], jnp.float32)
        >>> print(losses.squared_error(p, jnp.array([1.5, 2.0, 1.0], jnp.float32)))
        [0.25 0.25 4.  ]
    """
    require_dtype(predictions, jnp.floating, "predictions")
    if targets is None:
        return jnp.asarray(predictions) ** 2
    require_same_shape(predictions, targets)
    return (jnp.asarray(predictions) - targets) ** 2


def l2_loss(predictions, targets=None):
    r"""Half the squared error (the ``1/2`` makes the gradient ``p - t``).

    .. math:: \ell(p, t) = \tfrac12 (p - t)^2

    optax: ``optax.losses.l2_loss``.  torch: ``0.5 * torch.nn.functional.mse_loss(...,
    reduction="none")``.

    Args:
      predictions: floating predictions, any shape.
      targets: targets of the same shape; ``None`` for zeros.

    Returns:
      The loss per element, ``predictions``' shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> p = jnp.array([1.0, 2.5, -1.0], jnp.float32)
        >>> print(losses.l2_loss(p, jnp.array([1.5, 2.0, 1.0], jnp.float32)))
        [0.125 0.125 2.   ]
    """
    return 0.5 * squared_error(jnp.asarray(predictions), targets)


def huber_loss(predictions, targets=None, *, delta=1.0):
    r"""Huber loss: quadratic for errors up to ``delta``, linear beyond.

    .. math:: \ell(e) = \tfrac12 \min(|e|, \delta)^2 + \delta\,(|e| - \min(|e|, \delta)),
       \qquad e = p - t

    Its gradient is the error clipped to ``[-delta, delta]``.

    optax: ``optax.losses.huber_loss``.  torch: ``torch.nn.functional.huber_loss(predictions,
    targets, reduction="none", delta=delta)`` (``smooth_l1_loss`` is this divided by
    ``delta``).

    Args:
      predictions: floating predictions, any shape.
      targets: targets broadcastable to ``predictions``; ``None`` for zeros.
      delta: where the quadratic part turns linear.

    Returns:
      The loss per element.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> p = jnp.array([0.5, -2.0, 4.0], jnp.float32)
        >>> print(losses.huber_loss(p, delta=1.0))
        [0.125 1.5   3.5  ]
    """
    require_dtype(predictions, jnp.floating, "predictions")
    err = jnp.asarray(predictions) if targets is None else jnp.asarray(predictions) - targets
    size = jnp.abs(err)
    inner = jnp.minimum(size, delta)
    return 0.5 * inner**2 + delta * (size - inner)


def log_cosh(predictions, targets=None):
    r"""Log-cosh loss: ``e²/2`` for small errors, ``|e| - log 2`` for large ones, smooth.

    .. math:: \ell(e) = \log\cosh e, \qquad e = p - t

    computed as ``log1p(2 sinh²(e/2))`` for ``|e| < 1`` (``cosh e - 1 = 2 sinh²(e/2)``: no
    cancellation, so tiny errors keep full relative precision) and as
    ``|e| + log1p(exp(-2|e|)) - log 2`` beyond (no overflow).  optax computes
    ``logaddexp(e, -e) - log 2`` everywhere, which loses the relative precision of small
    losses (``log_cosh(1e-4)`` is ``0`` in float32 there, ``5e-9`` here); elsewhere the two
    agree to rounding.

    optax: ``optax.losses.log_cosh``.  torch: none.

    Args:
      predictions: floating predictions, any shape.
      targets: targets broadcastable to ``predictions``; ``None`` for zeros.

    Returns:
      The loss per element.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> p = jnp.array([0.5, -2.0, 1e-4], jnp.float32)
        >>> print([float(f"{v:.4g}") for v in losses.log_cosh(p)])
        [0.1201, 1.325, 5e-09]
    """
    require_dtype(predictions, jnp.floating, "predictions")
    err = jnp.asarray(predictions) if targets is None else jnp.asarray(predictions) - targets
    size = jnp.abs(err)
    small = size < 1
    e_small = jnp.where(small, err, 0.0)
    e_large = jnp.where(small, 1.0, size)
    near = jnp.log1p(2 * jnp.sinh(e_small / 2) ** 2)
    far = e_large + jnp.log1p(jnp.exp(-2 * e_large)) - jnp.log(2.0).astype(err.dtype)
    return jnp.where(small, near, far)


def cosine_similarity(predictions, targets, *, epsilon=0.0, axis=-1, where=None):
    r"""Cosine of the angle between ``predictions`` and ``targets`` along ``axis``.

    .. math:: \cos(a, b) = \Bigl\langle \frac{a}{\sqrt{\max(\|a\|^2, \epsilon)}},
       \frac{b}{\sqrt{\max(\|b\|^2, \epsilon)}} \Bigr\rangle

    Note that ``epsilon`` bounds the *squared* norms from below (so the norms from below by
    ``sqrt(epsilon)``), which is what optax's code does (its docstring says "minimum norm").

    optax: ``optax.losses.cosine_similarity``.  torch:
    ``torch.nn.functional.cosine_similarity(a, b, dim=axis, eps=...)`` (torch bounds each
    norm by ``eps``).

    Args:
      predictions: floating vectors, features along ``axis``.
      targets: floating vectors broadcastable to ``predictions``.
      epsilon: lower bound on each squared norm (``0``: none; a zero vector gives ``nan``).
      axis: the feature axis (or tuple of axes, or ``None`` for all).
      where: which features take part (in the norms and the inner product).

    Returns:
      The similarities in ``[-1, 1]``, the inputs' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> a = jnp.array([[1.0, 0.0], [1.0, 1.0]], jnp.float32)
        >>> b = jnp.array([[0.0, 2.0], [3.0, 3.0]], jnp.float32)
        >>> print(losses.cosine_similarity(a, b))
        [0. 1.]
    """
    require_dtype(predictions, jnp.floating, "predictions")
    require_dtype(targets, jnp.floating, "targets")

    def unit(v):
        sq = jnp.sum(jnp.square(v), axis=axis, where=where, keepdims=True)
        return v / jnp.sqrt(jnp.maximum(sq, epsilon))

    return jnp.sum(unit(predictions) * unit(targets), axis=axis, where=where)


def cosine_distance(predictions, targets, *, epsilon=0.0, axis=-1, where=None):
    r"""Cosine distance ``1 - cos(a, b)``, in ``[0, 2]``; see ``cosine_similarity``.

    .. math:: d(a, b) = 1 - \frac{\langle a, b\rangle}{\|a\|\,\|b\|}

    optax: ``optax.losses.cosine_distance``.  torch:
    ``1 - torch.nn.functional.cosine_similarity(a, b, dim=axis)``
    (``torch.nn.functional.cosine_embedding_loss`` with target ``1``).

    Args:
      predictions: floating vectors, features along ``axis``.
      targets: floating vectors broadcastable to ``predictions``.
      epsilon: lower bound on each squared norm.
      axis: the feature axis (or tuple of axes, or ``None`` for all).
      where: which features take part.

    Returns:
      The distances, the inputs' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> a = jnp.array([[1.0, 0.0], [1.0, 1.0]], jnp.float32)
        >>> b = jnp.array([[0.0, 2.0], [-3.0, -3.0]], jnp.float32)
        >>> print(losses.cosine_distance(a, b))
        [1. 2.]
    """
    require_dtype(predictions, jnp.floating, "predictions")
    require_dtype(targets, jnp.floating, "targets")
    sim = cosine_similarity(predictions, targets, epsilon=epsilon, axis=axis, where=where)
    return 1.0 - sim
