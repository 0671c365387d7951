"""Margin losses (hinge, perceptron) and the Fenchel-Young family (sparsemax losses and
``make_fenchel_young_loss``).

The multiclass losses read integer labels through a one-hot vector, as optax does: a label
outside ``[0, num_classes)`` selects no class (its score term is ``0``).
``multiclass_sparsemax_loss`` indexes instead (negative labels count from the end, labels past
the end are clipped), again as optax does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.losses._util import require_same_shape

__all__ = [
    "hinge_loss",
    "make_fenchel_young_loss",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss",
    "perceptron_loss",
    "sparsemax_loss",
]


def hinge_loss(predictor_outputs, targets):
    r"""Binary hinge loss, for targets in ``{-1, +1}``.

    .. math:: \ell(s, t) = \max(0,\ 1 - s\,t)

    optax: ``optax.losses.hinge_loss``.  torch: none (``torch.nn.HingeEmbeddingLoss`` is a
    different loss).

    Args:
      predictor_outputs: the decision function's scores.
      targets: ``-1`` or ``+1``, broadcastable to ``predictor_outputs``.

    Returns:
      The loss per element.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> scores = jnp.array([2.0, 0.3, -0.5], jnp.float32)
        >>> print(losses.hinge_loss(scores, jnp.array([1.0, 1.0, 1.0], jnp.float32)))
        [0.  0.7 1.5]
    """
    return jnp.maximum(0, 1 - predictor_outputs * targets)


def perceptron_loss(predictor_outputs, targets):
    r"""Binary perceptron loss, for targets in ``{-1, +1}``: the hinge without the margin.

    .. math:: \ell(s, t) = \max(0,\ -s\,t)

    optax: ``optax.losses.perceptron_loss``.  torch: none.

    Args:
      predictor_outputs: the model's scores.
      targets: ``-1`` or ``+1``, the same shape as ``predictor_outputs`` (``ValueError``
        otherwise).

    Returns:
      The loss per element.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> scores = jnp.array([2.0, 0.3, -0.5], jnp.float32)
        >>> print(losses.perceptron_loss(scores, jnp.array([1.0, -1.0, 1.0], jnp.float32)))
        [0.  0.3 0.5]
    """
    require_same_shape(predictor_outputs, targets)
    return jnp.maximum(0, -predictor_outputs * targets)


def sparsemax_loss(logits, labels):
    r"""Binary sparsemax loss: the Fenchel-Young loss of the sparse sigmoid.

    .. math:: \ell(x, y) = \operatorname{sparseplus}(z), \quad z = -x \text{ if } y
       \text{ else } x, \qquad \operatorname{sparseplus}(z) =
       \begin{cases} 0 & z \le -1 \\ (z + 1)^2 / 4 & |z| < 1 \\ z & z \ge 1 \end{cases}

    It is zero exactly when ``jax.nn.sparse_sigmoid(logits) == labels``.

    optax: ``optax.losses.sparsemax_loss``.  torch: none.

    Args:
      logits: the model's scores.
      labels: ``0`` or ``1`` (any non-zero value counts as ``1``).

    Returns:
      The loss per element.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([2.0, 0.0, -0.5], jnp.float32)
        >>> print(losses.sparsemax_loss(logits, jnp.array([1, 1, 1])))
        [0.     0.25   0.5625]
    """
    logits = jnp.asarray(logits)
    return jax.nn.sparse_plus(jnp.where(labels, -logits, logits))


def _one_hot_like(labels, scores):
    return jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)


def multiclass_hinge_loss(scores, labels):
    r"""Multiclass (Crammer-Singer) hinge loss.

    .. math:: \ell(s, y) = \max_j \bigl(s_j + [j \ne y]\bigr) - s_y

    optax: ``optax.losses.multiclass_hinge_loss``.  torch: none
    (``torch.nn.functional.multi_margin_loss`` averages the per-class hinges instead of taking
    their maximum).

    Args:
      scores: the model's scores, ``[..., num_classes]``.
      labels: integer labels, ``[...]``.

    Returns:
      The loss per example, ``[...]``, in ``scores``' dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> scores = jnp.array([[2.0, 0.5, 1.5], [0.0, 1.0, 0.2]], jnp.float32)
        >>> print(losses.multiclass_hinge_loss(scores, jnp.array([0, 2])))
        [0.5 1.8]
    """
    scores = jnp.asarray(scores)
    one_hot = _one_hot_like(labels, scores)
    return jnp.max(scores + 1.0 - one_hot, axis=-1) - jnp.sum(scores * one_hot, axis=-1)


def multiclass_perceptron_loss(scores, labels):
    r"""Multiclass perceptron loss: the best score's excess over the label's.

    .. math:: \ell(s, y) = \max_j s_j - s_y

    optax: ``optax.losses.multiclass_perceptron_loss``.  torch: none.

    Args:
      scores: the model's scores, ``[..., num_classes]``.
      labels: integer labels, ``[...]``.

    Returns:
      The loss per example, ``[...]``, in ``scores``' dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> scores = jnp.array([[2.0, 0.5, 1.5], [0.0, 1.0, 0.2]], jnp.float32)
        >>> print(losses.multiclass_perceptron_loss(scores, jnp.array([0, 2])))
        [0.  0.8]
    """
    scores = jnp.asarray(scores)
    return jnp.max(scores, axis=-1) - jnp.sum(scores * _one_hot_like(labels, scores), axis=-1)


@jax.custom_jvp
def _simplex_projection(v):
    """Euclidean projection of each last-axis row of ``v`` onto the probability simplex:
    ``max(v - tau, 0)`` with ``tau`` chosen so that the row sums to one (sort-based)."""
    n = v.shape[-1]
    u = jnp.flip(jnp.sort(v, axis=-1), axis=-1)
    partial = jnp.cumsum(u, axis=-1)
    k = jnp.arange(1, n + 1, dtype=v.dtype)
    support = jnp.sum(u * k > partial - 1, axis=-1, keepdims=True)
    top = jnp.take_along_axis(partial, support - 1, axis=-1)
    return jnp.maximum(v - (top - 1) / support.astype(v.dtype), 0)


@_simplex_projection.defjvp
def _simplex_projection_jvp(primals, tangents):
    # On the support S the projection is v - tau(v) with d tau = mean over S of dv.
    (v,), (dv,) = primals, tangents
    p = _simplex_projection(v)
    s = (p > 0).astype(v.dtype)
    mean_dv = jnp.sum(s * dv, axis=-1, keepdims=True) / jnp.sum(s, axis=-1, keepdims=True)
    return p, s * (dv - mean_dv)


def multiclass_sparsemax_loss(scores, labels):
    r"""Multiclass sparsemax loss: the Fenchel-Young loss of the Gini negentropy.

    .. math:: \ell(s, y) = \langle p, s \rangle + \tfrac12 (1 - \|p\|^2) - s_y, \qquad
       p = \operatorname{sparsemax}(s) = \operatorname*{argmin}_{q \in \Delta} \|q - s\|^2

    computed as ``Σ_{p_j > 0} p_j (s_j - s_y) + (1 - ‖p‖²) / 2``.  Its gradient in ``s`` is
    ``sparsemax(s) - onehot(y)``; it is zero when ``s_y`` leads every other score by ``1``.

    optax: ``optax.losses.multiclass_sparsemax_loss`` (which takes ``[batch, num_classes]``;
    any leading dimensions work here).  torch: none.

    Args:
      scores: the model's scores, ``[..., num_classes]``.
      labels: integer labels, ``[...]``.

    Returns:
      The loss per example, ``[...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> scores = jnp.array([[2.0, 0.5, 1.5], [0.0, 1.0, 0.2]], jnp.float32)
        >>> print(losses.multiclass_sparsemax_loss(scores, jnp.array([0, 2])))
        [0.0625 0.81  ]
    """
    scores = jnp.asarray(scores)
    labels = jnp.asarray(labels)[..., None]
    p = _simplex_projection(scores)
    gap = scores - jnp.take_along_axis(scores, labels, axis=-1, mode="clip")
    n = scores.shape[-1]
    at_label = jnp.arange(n) == jnp.clip(jnp.where(labels < 0, labels + n, labels), 0, n - 1)
    gap = jnp.where(at_label | (p <= 0), 0.0, gap)
    return jnp.sum(p * gap, axis=-1) + 0.5 * (1.0 - jnp.sum(p * p, axis=-1))


def make_fenchel_young_loss(max_fun):
    r"""Builds the Fenchel-Young loss of a regularized max function ``Ω*``.

    .. math:: \ell(s, y) = \Omega^*(s) - \langle y, s \rangle

    e.g. ``max_fun = logsumexp`` gives the softmax cross-entropy (for one-hot ``y``), a hard
    ``max`` the perceptron loss.  The returned ``loss(scores, targets, *args, **kwargs)``
    maps over any leading dimensions and applies ``max_fun(row, *args, **kwargs)`` to the
    last axis (jaxopt instead flattened the whole input into one vector).

    optax: ``optax.losses.make_fenchel_young_loss``.  torch: none.

    Args:
      max_fun: a function of a 1-D score vector returning a scalar (extra arguments of the
        loss are passed on to it).

    Returns:
      The loss function ``(scores, targets, *args, **kwargs) -> losses``, shape
      ``scores.shape[:-1]``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jax.scipy.special import logsumexp
        >>> from gradtx import losses
        >>> fy = losses.make_fenchel_young_loss(logsumexp)
        >>> scores = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]], jnp.float32)
        >>> targets = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], jnp.float32)
        >>> loss = fy(scores, targets)
        >>> print([round(float(v), 4) for v in loss])  # = softmax_cross_entropy
        [0.2761, 2.9518]
    """
    row_max = jnp.vectorize(max_fun, signature="(n)->()")

    def fenchel_young_loss(scores, targets, *args, **kwargs):
        return row_max(scores, *args, **kwargs) - jnp.sum(targets * scores, axis=-1)

    return fenchel_young_loss
