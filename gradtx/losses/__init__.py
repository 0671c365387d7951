"""Loss functions, the names, arguments and numbers of ``optax.losses``.

``gradtx.losses.<name>`` is a drop-in for ``optax.losses.<name>``: pure functions of arrays,
usable under ``jit``, ``vmap`` and ``grad``, returning their inputs' floating dtype.  Where
optax's behaviour is a plain bug (``triplet_margin_loss`` with odd ``norm_degree``,
``binary_dice_loss(apply_sigmoid=False)``, ``dice_loss(apply_softmax=False)`` under ``jit``),
gives ``nan`` gradients (``kl_divergence`` in zero targets, ``softmax_cross_entropy`` in the
labels of ``where``-masked classes) or loses precision (``log_cosh`` of small errors) the
function's docstring says what differs; the values are otherwise optax's to rounding.

Modules, by what they hold:

* ``classification``: softmax cross-entropies (probability, integer and ``0 log 0``-safe
  targets), sigmoid binary cross-entropy, focal and poly losses, label smoothing;
* ``margin``: hinge, perceptron and sparsemax losses (binary and multiclass) and
  ``make_fenchel_young_loss``;
* ``regression``: squared error, L2, Huber, log-cosh, cosine similarity and distance;
* ``divergences``: Kullback-Leibler divergences;
* ``sequence``: CTC;
* ``contrastive``: NT-Xent and the triplet margin loss;
* ``ranking``: the listwise softmax ranking loss;
* ``segmentation``: Dice losses.
"""

from gradtx.losses import (
    classification,
    contrastive,
    divergences,
    margin,
    ranking,
    regression,
    segmentation,
    sequence,
)
from gradtx.losses.classification import *  # noqa: F403
from gradtx.losses.contrastive import *  # noqa: F403
from gradtx.losses.divergences import *  # noqa: F403
from gradtx.losses.margin import *  # noqa: F403
from gradtx.losses.ranking import *  # noqa: F403
from gradtx.losses.regression import *  # noqa: F403
from gradtx.losses.segmentation import *  # noqa: F403
from gradtx.losses.sequence import *  # noqa: F403

__all__ = sorted(
    classification.__all__
    + contrastive.__all__
    + divergences.__all__
    + margin.__all__
    + ranking.__all__
    + regression.__all__
    + segmentation.__all__
    + sequence.__all__
)
