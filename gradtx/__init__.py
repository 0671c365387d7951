"""gradtx: composable, exact, fast optimizers for JAX.

An optimizer is a pair of pure functions ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``; see ``gradtx.base``.
The public names of the submodules are re-exported here.  Used as namespaces: ``gradtx.kit``
(writing your own block), ``gradtx.registry`` (every optimizer and block, for tests and docs),
``gradtx.paths`` (parameter selection by path), ``gradtx.parallel`` (sharded and data-parallel
layouts), ``gradtx.torch_compat`` (PyTorch recipes), and optax's namespaces at optax's paths:
``gradtx.contrib``, ``gradtx.losses``, ``gradtx.tree``, ``gradtx.tree_utils``,
``gradtx.projections``, ``gradtx.second_order``, ``gradtx.perturbations``,
``gradtx.transforms``.
"""

from gradtx import (  # noqa: F401
    base,
    blocks,
    clipping,
    combinators,
    conditional,
    contrib,
    flat,
    hyperparams,
    kit,
    losses,
    microbatching,
    monitoring,
    numerics,
    optax_names,
    optimizers,
    parallel,
    paths,
    per_example,
    perturbations,
    projections,
    registry,
    schedules,
    second_order,
    state,
    stateful_hyperparams,
    target_networks,
    torch_compat,
    transforms,
    tree,
    tree_utils,
    wrappers,
)
from gradtx.base import *  # noqa: F403
from gradtx.blocks import *  # noqa: F403
from gradtx.clipping import *  # noqa: F403
from gradtx.combinators import *  # noqa: F403
from gradtx.conditional import ConditionallyMaskState, conditionally_mask  # noqa: F401
from gradtx.flat import *  # noqa: F403
from gradtx.hyperparams import *  # noqa: F403
from gradtx.losses import (  # noqa: F401  (the losses optax also exports at its top level)
    convex_kl_divergence,
    cosine_distance,
    cosine_similarity,
    ctc_loss,
    ctc_loss_with_forward_probs,
    generalized_kl_divergence,
    hinge_loss,
    huber_loss,
    kl_divergence,
    l2_loss,
    log_cosh,
    ntxent,
    safe_softmax_cross_entropy,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    smooth_labels,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    squared_error,
)
from gradtx.microbatching import microbatch  # noqa: F401
from gradtx.monitoring import (  # noqa: F401
    MonitorState,
    SnapshotState,
    measure_with_ema,
    monitor,
    snapshot,
)
from gradtx.numerics import *  # noqa: F403
from gradtx.optax_names import *  # noqa: F403
from gradtx.optimizers import *  # noqa: F403
from gradtx.per_example import per_example_global_norm_clip, per_example_layer_norm_clip  # noqa: F401
from gradtx.schedules import *  # noqa: F403
from gradtx.state import *  # noqa: F403
from gradtx.stateful_hyperparams import (  # noqa: F401
    InjectStatefulHyperparamsState,
    WrappedSchedule,
    inject_stateful_hyperparams,
)
from gradtx.target_networks import incremental_update, periodic_update  # noqa: F401
from gradtx.torch_compat import from_torch, torch_schedule  # noqa: F401
from gradtx.tree import bias_correction  # noqa: F401  (optax's top-level tree function)
from gradtx.tree_utils import tree_map_params  # noqa: F401
from gradtx.wrappers import *  # noqa: F403

__version__ = "0.1.0"
