"""Soft Dice (Tversky) losses for segmentation: classes along the last axis, the first axis
the batch, the axes in between the spatial ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.losses._util import require_rank, require_same_shape

__all__ = ["binary_dice_loss", "dice_loss", "multiclass_generalized_dice_loss"]


def dice_loss(
    predictions,
    targets,
    *,
    class_weights=None,
    smooth=1.0,
    alpha=0.5,
    beta=0.5,
    apply_softmax=True,
    reduction="mean",
    ignore_background=False,
    axis=None,
):
    r"""Soft Dice loss per class (the Tversky loss for ``alpha ≠ beta``), reduced over the
    classes.

    With probabilities ``p`` and targets ``t`` summed over ``axis``: ``I_c = Σ p_c t_c``,
    ``P_c = Σ p_c``, ``T_c = Σ t_c``,

    .. math:: \ell_c = 1 - \frac{I_c + s}{I_c + \alpha (P_c - I_c) + \beta (T_c - I_c) + s}

    (``α = β = 1/2`` is the Dice coefficient; ``α`` weighs false positives, ``β`` false
    negatives).  The probabilities are ``softmax(predictions)`` over the classes, or
    ``sigmoid(predictions)`` for a single channel, unless ``apply_softmax=False``.

    optax: ``optax.losses.dice_loss``.  Two differences, where optax raises: the check that
    probability inputs (``apply_softmax=False``) sum to one is skipped under ``jit`` (optax
    raises ``TracerBoolConversionError`` there) and for a single channel (binary
    probabilities need not sum to one).  torch: none (MONAI's ``DiceLoss``/``TverskyLoss``).

    Args:
      predictions: logits ``[batch, ..., num_classes]``; ``[batch, ...]`` or a trailing ``1``
        for binary segmentation.
      targets: one-hot targets of the same shape (or without the trailing ``1``).
      class_weights: ``[num_classes]`` weights multiplying the per-class losses.
      smooth: added to the numerator and the denominator.
      alpha: weight of the false positives.
      beta: weight of the false negatives.
      apply_softmax: turn logits into probabilities first; ``False`` if they already are.
      reduction: ``"mean"`` or ``"sum"`` over the classes, or ``"none"``.
      ignore_background: leave class ``0`` out (when there is more than one class).
      axis: the axes summed over; ``None``: all but the first and the last.

    Returns:
      ``[batch]`` losses for ``"mean"``/``"sum"`` (with the default ``axis``),
      ``[batch, num_classes]`` for ``"none"``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 1.5]]], jnp.float32)
        >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], jnp.float32)
        >>> loss = losses.dice_loss(logits, targets)
        >>> print([round(float(v), 4) for v in loss])
        [0.08]
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.ndim == targets.ndim - 1:
        predictions = predictions[..., None]
    if targets.ndim == predictions.ndim - 1:
        targets = targets[..., None]
    require_same_shape(predictions, targets)
    classes = predictions.shape[-1]
    if apply_softmax:
        probs = jax.nn.sigmoid(predictions) if classes == 1 else jax.nn.softmax(predictions)
    else:
        if classes > 1 and not isinstance(predictions, jax.core.Tracer):
            totals = jnp.sum(predictions, axis=-1)
            if not jnp.allclose(totals, 1.0, rtol=1e-5):
                raise ValueError(
                    "With apply_softmax=False, predictions must be probability distributions "
                    f"over the last axis; their sums range over [{jnp.min(totals):.6f}, "
                    f"{jnp.max(totals):.6f}]."
                )
        probs = predictions
    if axis is None:
        axis = tuple(range(1, probs.ndim - 1))
    overlap = jnp.sum(probs * targets, axis=axis)
    false_pos = jnp.sum(probs, axis=axis) - overlap
    false_neg = jnp.sum(targets, axis=axis) - overlap
    score = (overlap + smooth) / (overlap + alpha * false_pos + beta * false_neg + smooth)
    per_class = 1.0 - score
    if class_weights is not None:
        require_rank(class_weights, 1, "class_weights")
        per_class = per_class * class_weights
    if ignore_background and classes > 1:
        per_class = per_class[..., 1:]
    if reduction == "mean":
        return jnp.mean(per_class, axis=-1)
    if reduction == "sum":
        return jnp.sum(per_class, axis=-1)
    if reduction == "none":
        return per_class
    raise ValueError(f"Unsupported reduction: {reduction}")


def multiclass_generalized_dice_loss(
    predictions, targets, *, smooth=1.0, apply_softmax=True, ignore_background=False
):
    r"""Generalized Dice loss: per-class Dice losses weighted by inverse squared class
    frequencies, averaged over the batch and the classes.

    .. math:: w_c \propto \frac{1}{F_c^2 + 10^{-7}}, \quad \sum_c w_c = C, \qquad
       \ell = \operatorname{mean}_{b, c}\, w_c\, \ell^{\text{Dice}}_{b, c}

    with ``F_c`` the target mass of class ``c`` over the whole batch (Sudre et al. 2017).

    optax: ``optax.losses.multiclass_generalized_dice_loss``.  torch: none (MONAI's
    ``GeneralizedDiceLoss``).

    Args:
      predictions: logits ``[batch, ..., num_classes]``.
      targets: one-hot targets of the same shape.
      smooth: added to the numerator and the denominator of each Dice ratio.
      apply_softmax: turn logits into probabilities first.
      ignore_background: leave class ``0`` out of the average.

    Returns:
      The scalar loss.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[[2.0, -1.0], [0.0, 1.0], [-1.0, 1.5]]], jnp.float32)
        >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], jnp.float32)
        >>> loss = losses.multiclass_generalized_dice_loss(logits, targets)
        >>> print(f"{loss:.4f}")
        0.0868
    """
    require_same_shape(predictions, targets)
    targets = jnp.asarray(targets)
    mass = jnp.sum(targets, axis=tuple(range(targets.ndim - 1)))
    weights = 1.0 / (mass**2 + 1e-7)
    weights = weights / jnp.sum(weights) * weights.shape[0]
    per_class = dice_loss(
        predictions,
        targets,
        class_weights=weights,
        smooth=smooth,
        apply_softmax=apply_softmax,
        reduction="none",
        ignore_background=ignore_background,
    )
    return jnp.mean(per_class)


def binary_dice_loss(predictions, targets, *, smooth=1.0, apply_sigmoid=True):
    r"""Dice loss of a single foreground channel (``sigmoid`` of the logits).

    .. math:: \ell = 1 - \frac{2 \sum p t + 2s}{\sum p + \sum t + 2s}

    (``dice_loss`` with ``α = β = 1/2``, per example).  With ``apply_sigmoid=False`` the
    predictions are probabilities; optax then wrongly requires each of them to equal ``1``
    and raises, here they are used as given.

    optax: ``optax.losses.binary_dice_loss``.  torch: none.

    Args:
      predictions: logits ``[batch, ...]`` or ``[batch, ..., 1]``.
      targets: binary targets, the same shape.
      smooth: added to the numerator and the denominator.
      apply_sigmoid: turn logits into probabilities first.

    Returns:
      The ``[batch]`` losses.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.array([[1.0, -1.0], [0.5, 0.5]], jnp.float32)
        >>> targets = jnp.array([[1.0, 0.0], [1.0, 0.0]], jnp.float32)
        >>> loss = losses.binary_dice_loss(logits, targets)
        >>> print([round(float(v), 4) for v in loss])
        [0.1345, 0.2356]
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.ndim == targets.ndim and predictions.shape[-1] != 1:
        predictions, targets = predictions[..., None], targets[..., None]
    return dice_loss(
        predictions, targets, smooth=smooth, apply_softmax=apply_sigmoid, reduction="mean"
    )
