"""The optimizer families, one module each, every module holding a family's blocks and the
optimizers chained from them:

=================  ===========================================================================
``sgd``            SGD, momentum, gradient noise
``rms``            Adagrad, RMSProp, Adadelta: second-moment scaling without momentum
``adam``           Adam, AdamW, NAdam(W), AMSGrad: bias-corrected first and second moments
``adam_variants``  AdaMax, RAdam, torch's NAdam, AdaBelief, Yogi: Adam with another moment rule
``sign``           signSGD, Lion: the sign of a (smoothed) gradient
``trust_ratio``    LARS, LAMB, Fromage: per-leaf steps from the parameter/update norm ratio
``self_tuning``    hypergradient descent, SWATS, D-Adaptation, Prodigy: learned step sizes
``schedule_free``  Schedule-Free SGD and AdamW: averaging in place of a schedule
=================  ===========================================================================

The general-purpose blocks they share (learning rate, momentum, weight decay, noise) live in
``gradtx.blocks``; the kit they are written with in ``gradtx.kit``.
"""

from gradtx.optimizers.adam import *  # noqa: F403
from gradtx.optimizers.adam_variants import *  # noqa: F403
from gradtx.optimizers.rms import *  # noqa: F403
from gradtx.optimizers.schedule_free import *  # noqa: F403
from gradtx.optimizers.self_tuning import *  # noqa: F403
from gradtx.optimizers.sgd import *  # noqa: F403
from gradtx.optimizers.sign import *  # noqa: F403
from gradtx.optimizers.trust_ratio import *  # noqa: F403

FAMILIES = (
    "sgd",
    "rms",
    "adam",
    "adam_variants",
    "sign",
    "trust_ratio",
    "self_tuning",
    "schedule_free",
)
"""The family modules, in the order of the table above (each imported above)."""
