"""Connectionist temporal classification (CTC) loss, batched and padded, with its forward
(alpha) variables.

The forward recursion runs in log space over two sets of states per label position ``n``:
``blank[n]`` (``n`` labels emitted, now in a blank) for ``n = 0..N`` and ``label[n]``
(currently emitting label ``n``) for ``n = 0..N-1``.  A time step does, in order:

1. *closure*: a finished label ``n`` may move on to ``blank[n+1]`` without consuming a frame,
   which lets the next label follow directly (``log_epsilon`` forbids this before a repeated
   label, which needs a blank in between);
2. *emit*: ``label[n]`` is reached from ``blank[n]`` (after the closure) or stays;
3. *blank*: ``blank[n]`` after the closure emits a blank, and a finished repeated label goes
   to ``blank[n+1]`` through a real blank.

"Impossible" is ``log_epsilon`` (finite, so no ``inf - inf``) rather than ``-inf``.  Padded
frames leave the state unchanged.  A final closure ends the sequence, and the loss is
``-blank[L]`` for the label length ``L``.  These are the semantics and numbers of optax's
implementation (itself after Lingvo's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.losses._util import require_dtype, require_rank, require_same_shape

__all__ = ["ctc_loss", "ctc_loss_with_forward_probs"]


def _add_to_next(blank, extra):
    """``blank[:, n+1] ⊕= extra[:, n]`` (log-space addition) for every label position ``n``."""
    return jnp.concatenate([blank[:, :1], jnp.logaddexp(blank[:, 1:], extra)], axis=1)


def ctc_loss_with_forward_probs(
    logits, logit_paddings, labels, label_paddings, *, blank_id=0, log_epsilon=-1e5
):
    r"""CTC loss and the log forward probabilities of the blank and label states.

    .. math:: \ell = -\log \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_{t=1}^{T} p_t(\pi_t)

    over the frame-level alignments ``π`` that reduce to the labels ``y`` after merging
    repeats and removing blanks (Graves et al. 2006); ``p_t = softmax(logits[:, t])``.

    optax: ``optax.losses.ctc_loss_with_forward_probs`` (same arguments, semantics and
    numbers).  torch: ``torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets,
    input_lengths, target_lengths, blank=blank_id, reduction="none")`` for the loss.

    Args:
      logits: ``[B, T, K]`` unnormalized log-probabilities of ``K`` classes (blank included).
      logit_paddings: ``[B, T]``, ``1.0`` on padded frames, ``0.0`` on real ones.
      labels: ``[B, N]`` integer labels.
      label_paddings: ``[B, N]``, ``1.0`` on padding; labels must be right-padded (each row a
        run of zeros then a run of ones).
      blank_id: the class index of the blank.
      log_epsilon: the finite stand-in for ``log 0``.

    Returns:
      ``(loss, log_alpha_blank, log_alpha_label)``: the ``[B]`` losses and the ``[T, B, N+1]``
      and ``[T, B, N]`` log forward probabilities after each frame (``[t, b, n]``: ``n``
      labels emitted and in a blank, resp. emitting label ``n``).

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.zeros((1, 3, 3), jnp.float32)  # 3 frames, uniform over {blank, a, b}
        >>> loss, a_blank, a_label = losses.ctc_loss_with_forward_probs(
        ...     logits, jnp.zeros((1, 3)), jnp.array([[1, 2]]), jnp.zeros((1, 2)))
        >>> print(round(float(loss[0]), 4), a_blank.shape, a_label.shape)  # 5 paths of 1/27
        1.6864 (3, 1, 3) (3, 1, 2)
    """
    require_rank(logits, 3, "logits")
    require_rank(labels, 2, "labels")
    require_same_shape(labels, label_paddings)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    require_same_shape(logits[..., 0], logit_paddings)
    require_dtype(logits, jnp.floating, "logits")
    batch, _, classes = logits.shape
    if labels.shape[0] != batch:
        raise ValueError(f"Expected `labels` to have batch size {batch}, got {labels.shape[0]}.")
    dtype = logits.dtype
    max_len = labels.shape[1]

    log_p = jax.nn.log_softmax(logits, axis=-1)
    lengths = max_len - jnp.sum(label_paddings, axis=1).astype(jnp.int32)
    # repeat[b, n]: label n+1 equals label n (the last position compares with nothing).
    repeat = jnp.pad((labels[:, 1:] == labels[:, :-1]).astype(dtype), ((0, 0), (0, 1)))
    # Log-probability of each frame emitting each label (0 for a label outside [0, K), as a
    # one-hot selection gives), time-major.
    valid = (labels >= 0) & (labels < classes)
    picked = jnp.take_along_axis(log_p, jnp.where(valid, labels, 0)[:, None, :], axis=2)
    emit_lp = jnp.moveaxis(jnp.where(valid[:, None, :], picked, 0.0), 1, 0)  # [T, B, N]
    blank_lp = jnp.moveaxis(log_p[:, :, blank_id : blank_id + 1], 1, 0)  # [T, B, 1]
    pads = jnp.moveaxis(jnp.asarray(logit_paddings).astype(dtype), 1, 0)[..., None]  # [T, B, 1]

    no_skip = log_epsilon * repeat  # closure barred before a repeat
    no_blank_hop = log_epsilon * (1.0 - repeat)  # blank hop only before a repeat

    def step(carry, frame):
        blank, label = carry
        e_lp, b_lp, pad = frame
        closed = _add_to_next(blank, label + no_skip)
        new_label = jnp.logaddexp(closed[:, :-1] + e_lp, label + e_lp)
        new_blank = _add_to_next(closed + b_lp, label + b_lp + no_blank_hop)
        new_label = pad * label + (1.0 - pad) * new_label
        new_blank = pad * blank + (1.0 - pad) * new_blank
        return (new_blank, new_label), (new_blank, new_label)

    start_blank = jnp.full((batch, max_len + 1), log_epsilon, dtype).at[:, 0].set(0.0)
    start_label = jnp.full((batch, max_len), log_epsilon, dtype)
    _, (alpha_blank, alpha_label) = jax.lax.scan(
        step, (start_blank, start_label), (emit_lp, blank_lp, pads)
    )
    final = _add_to_next(alpha_blank[-1], alpha_label[-1])
    alpha_blank = alpha_blank.at[-1].set(final)
    loss = -jnp.take_along_axis(final, lengths[:, None], axis=1)[:, 0]
    return loss, alpha_blank, alpha_label


def ctc_loss(logits, logit_paddings, labels, label_paddings, *, blank_id=0, log_epsilon=-1e5):
    r"""CTC loss per sequence: ``ctc_loss_with_forward_probs(...)[0]`` (see there).

    .. math:: \ell = -\log \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_{t=1}^{T} p_t(\pi_t)

    An impossible labelling (more labels, with the blanks repeats need, than frames) gives
    a loss of order ``-log_epsilon`` rather than ``inf``.

    optax: ``optax.losses.ctc_loss``.  torch: ``torch.nn.functional.ctc_loss(...,
    reduction="none")`` (time-major log-probabilities and lengths instead of paddings).

    Args:
      logits: ``[B, T, K]`` unnormalized log-probabilities of ``K`` classes (blank included).
      logit_paddings: ``[B, T]``, ``1.0`` on padded frames.
      labels: ``[B, N]`` integer labels.
      label_paddings: ``[B, N]``, ``1.0`` on padding (right-padded).
      blank_id: the class index of the blank.
      log_epsilon: the finite stand-in for ``log 0``.

    Returns:
      The ``[B]`` losses.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import losses
        >>> logits = jnp.zeros((2, 3, 3), jnp.float32)
        >>> labels = jnp.array([[1, 2], [1, 1]])
        >>> pads = jnp.array([[0.0, 0.0], [0.0, 0.0]], jnp.float32)
        >>> loss = losses.ctc_loss(logits, jnp.zeros((2, 3)), labels, pads)
        >>> print([round(float(v), 4) for v in loss])
        [1.6864, 3.2958]
    """
    return ctc_loss_with_forward_probs(
        logits, logit_paddings, labels, label_paddings, blank_id=blank_id, log_epsilon=log_epsilon
    )[0]
