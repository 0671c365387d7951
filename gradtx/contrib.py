"""optax.contrib's names at optax's paths: ``gradtx.contrib.prodigy`` is ``optax.contrib.prodigy``.

Each optimizer lives in its family module and is registered with its optax path
(``@register(optax="contrib.prodigy")``); this namespace gathers every such entry, so a new
contrib optimizer appears here without any change to this file.  The other names optax.contrib
exports (state classes, helpers) are listed below.
"""

from gradtx import registry
from gradtx.complex import SplitRealAndImaginaryState, split_real_and_imaginary
from gradtx.optimizers.ademamix import ScaleByAdemamixState, ScaleBySimplifiedAdEMAMixState
from gradtx.optimizers.coin_betting import COCOBState, MechanicState
from gradtx.optimizers.differential_privacy import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
    dpsgd,
)
from gradtx.optimizers.distance_over_gradients import DoGState, DoWGState
from gradtx.optimizers.galore import GaLoreDimensionNumbers, GaLoreState
from gradtx.optimizers.madgrad import MadgradState
from gradtx.optimizers.muon import MuonDimensionNumbers, MuonState, scale_by_muon
from gradtx.optimizers.plateau import ReduceLROnPlateauState
from gradtx.optimizers.polyak import MomoAdamState, MomoState
from gradtx.optimizers.sam import NormalizeState, SAMState
from gradtx.optimizers.schedule_free import ScheduleFreeState, schedule_free_eval_params
from gradtx.optimizers.self_tuning import DAdaptAdamWState, ProdigyState
from gradtx.optimizers.sophia import HutchinsonState, SophiaState, hutchinson_estimator_diag_hessian

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "DoGState",
    "DoWGState",
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "HutchinsonState",
    "MadgradState",
    "MechanicState",
    "MomoAdamState",
    "MomoState",
    "MuonDimensionNumbers",
    "MuonState",
    "NormalizeState",
    "ProdigyState",
    "ReduceLROnPlateauState",
    "SAMState",
    "ScaleByAdemamixState",
    "ScaleBySimplifiedAdEMAMixState",
    "ScheduleFreeState",
    "SophiaState",
    "SplitRealAndImaginaryState",
    "differentially_private_aggregate",
    "dpsgd",
    "hutchinson_estimator_diag_hessian",
    "scale_by_muon",
    "schedule_free_eval_params",
    "split_real_and_imaginary",
]

for _entry in registry.entries():
    if _entry.optax is not None and _entry.optax.startswith("contrib."):
        _name = _entry.optax.split(".", 1)[1]
        globals()[_name] = _entry.factory
        __all__.append(_name)
__all__.sort()
