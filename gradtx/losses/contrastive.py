"""Contrastive and metric-learning losses on embeddings: NT-Xent and the triplet margin loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.losses._util import require_dtype
from gradtx.losses.regression import cosine_similarity

__all__ = ["ntxent", "triplet_margin_loss"]


def ntxent(embeddings, labels, temperature=0.07):
    r"""Normalized temperature-scaled cross-entropy (NT-Xent, SimCLR's contrastive loss).

    With ``s_ij = cos(e_i, e_j) / temperature``, ``P`` the positive pairs (same label,
    ``i ≠ j``) and ``N(i)`` the negatives of ``i`` (different label):

    .. math:: \ell = \frac{1}{|P|} \sum_{(i,j) \in P}
       -\log \frac{e^{s_{ij}}}{e^{s_{ij}} + \sum_{k \in N(i)} e^{s_{ik}}}

    Each row is shifted by its largest similarity (a constant for the gradient) before the
    exponentials; the cosines bound the squared norms below by the dtype's machine epsilon.

    optax: ``optax.losses.ntxent``.  torch: none (``pytorch_metric_learning.losses.NTXentLoss``
    is the same loss).

    Args:
      embeddings: ``[batch, features]`` floating embeddings.
      labels: ``[batch]`` group ids: embeddings with equal ids are positive pairs.
      temperature: divides the cosine similarities.

    Returns:
      The scalar loss, averaged over the positive pairs.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> emb = jnp.array([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0], [0.1, 0.8]], jnp.float32)
        >>> print(f"{losses.ntxent(emb, jnp.array([0, 0, 1, 1]), temperature=0.5):.4f}")
        0.2974
    """
    require_dtype(embeddings, jnp.floating, "embeddings")
    embeddings, labels = jnp.asarray(embeddings), jnp.asarray(labels)
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            "Labels and embeddings must have the same leading dimension, found "
            f"{labels.shape[0]} for labels and {embeddings.shape[0]} for embeddings."
        )
    eps = jnp.finfo(embeddings.dtype).eps
    sim = cosine_similarity(embeddings[None, :, :], embeddings[:, None, :], epsilon=eps)
    sim = sim / temperature
    same = labels[:, None] == labels[None, :]
    itself = jnp.eye(labels.shape[0], dtype=bool)
    positive, negative = same & ~itself, ~same
    shift = jax.lax.stop_gradient(jnp.max(jnp.where(itself, -jnp.inf, sim), axis=1, keepdims=True))
    z = sim - shift
    neg_mass = jnp.sum(jnp.exp(jnp.where(negative, z, -jnp.inf)), axis=1, keepdims=True)
    pos_mass = jnp.exp(jnp.where(positive, z, -jnp.inf))
    nll = jnp.log(jnp.where(positive, pos_mass + neg_mass, 1.0)) - z
    return jnp.sum(jnp.where(positive, nll, 0.0)) / jnp.sum(positive)


def triplet_margin_loss(
    anchors, positives, negatives, axis=-1, norm_degree=2, margin=1.0, eps=1e-6
):
    r"""Triplet margin loss: the anchor should be nearer its positive than its negative by
    ``margin``.

    .. math:: \ell = \max\bigl(0,\ d(a, p) - d(a, n) + m\bigr), \qquad
       d(x, y) = \Bigl(\sum_k |x_k - y_k|^q + \varepsilon\Bigr)^{1/q}

    with ``q = norm_degree``.  optax omits the absolute value (``(x - y)^q``), which is the
    same for even degrees and wrong for odd ones (``norm_degree=1`` sums signed differences,
    ``3`` gives ``nan``); here it is the ``q``-norm the argument names.

    optax: ``optax.losses.triplet_margin_loss`` (equal for even ``norm_degree``).  torch:
    ``torch.nn.functional.triplet_margin_loss(a, p, n, margin=margin, p=norm_degree,
    eps=eps, reduction="none")`` (torch adds ``eps`` to the differences, not to the sum).

    Args:
      anchors: ``[batch, features]`` floating embeddings.
      positives: embeddings that should be near the anchors, the same shape.
      negatives: embeddings that should be far from them, the same shape.
      axis: the feature axis.
      norm_degree: the ``q`` of the ``q``-norm distance.
      margin: the required gap between the two distances.
      eps: added to the sum of powers before the root (keeps the gradient finite at ``0``).

    Returns:
      The loss per triplet, the inputs' shape without ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> a = jnp.array([[0.0, 0.0], [1.0, 1.0]], jnp.float32)
        >>> p = jnp.array([[0.1, 0.1], [1.1, 1.1]], jnp.float32)
        >>> n = jnp.array([[1.0, 0.0], [0.0, 1.0]], jnp.float32)
        >>> loss = losses.triplet_margin_loss(a, p, n)
        >>> print([round(float(v), 4) for v in loss])
        [0.1414, 0.1414]
    """
    require_dtype(anchors, jnp.floating, "anchors")
    require_dtype(positives, jnp.floating, "positives")
    require_dtype(negatives, jnp.floating, "negatives")
    anchors = jnp.asarray(anchors)

    def distance(other):
        powers = jnp.power(jnp.abs(anchors - other), norm_degree)
        return jnp.power(jnp.sum(powers, axis=axis) + eps, 1 / norm_degree)

    return jnp.maximum(distance(positives) - distance(negatives) + margin, 0)
