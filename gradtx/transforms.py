"""optax.transforms' names at optax's path: ``gradtx.transforms.masked`` is ``gradtx.masked``.

optax keeps its wrappers and combinators in this namespace (and most of them at its top level
too); gradtx implements each in the module named for what it holds (``combinators``,
``wrappers``, ``clipping``, ``monitoring``, ...) and gathers optax's spelling here.
"""

from gradtx.base import (
    chain,
    named_chain,
)
from gradtx.blocks import (
    AddNoiseState,
    EmaState,
    TraceState,
    add_decayed_weights,
    add_noise,
    ema,
    trace,
)
from gradtx.clipping import (
    adaptive_grad_clip,
    clip,
    clip_by_block_rms,
    clip_by_global_norm,
    unitwise_norm,
)
from gradtx.combinators import (
    MaskedNode,
    MaskedState,
    PartitionState,
    freeze,
    masked,
    partition,
    selective_transform,
)
from gradtx.conditional import (
    ConditionallyMaskState,
    ConditionFn,
    conditionally_mask,
)
from gradtx.flat import (
    flatten,
)
from gradtx.monitoring import (
    MonitorState,
    SnapshotState,
    measure_with_ema,
    monitor,
    snapshot,
)
from gradtx.optax_names import (
    ShouldSkipUpdateFunction,
)
from gradtx.optimizers.constraints import (
    NonNegativeParamsState,
    keep_params_nonnegative,
)
from gradtx.per_example import (
    per_example_global_norm_clip,
    per_example_layer_norm_clip,
    unitwise_clip,
)
from gradtx.wrappers import (
    ApplyIfFiniteState,
    ConditionallyTransformState,
    MultiSteps,
    MultiStepsState,
    ZeroNansState,
    apply_if_finite,
    conditionally_transform,
    skip_large_updates,
    skip_not_finite,
    zero_nans,
)

__all__ = [
    "AddNoiseState",
    "ApplyIfFiniteState",
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "EmaState",
    "MaskedNode",
    "MaskedState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "NonNegativeParamsState",
    "PartitionState",
    "ShouldSkipUpdateFunction",
    "SnapshotState",
    "TraceState",
    "ZeroNansState",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "apply_if_finite",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_mask",
    "conditionally_transform",
    "ema",
    "flatten",
    "freeze",
    "keep_params_nonnegative",
    "masked",
    "measure_with_ema",
    "monitor",
    "named_chain",
    "partition",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "selective_transform",
    "skip_large_updates",
    "skip_not_finite",
    "snapshot",
    "trace",
    "unitwise_clip",
    "unitwise_norm",
    "zero_nans",
]
