"""PyTorch recipes, exactly: ``from_torch("AdamW", lr=1e-3)`` takes the same steps as
``torch.optim.AdamW(params, lr=1e-3)`` (``optimizers.py``); ``torch_schedule("OneCycleLR", ...)``
is the learning rate of ``torch.optim.lr_scheduler.OneCycleLR`` (``schedulers.py``, built from
``gradtx.schedules``); ``reduce_on_plateau`` follows ``ReduceLROnPlateau``'s rules; ``Rprop``,
``ASGD`` and torch's ``Adafactor`` are recipes of their own (``legacy.py``); ``swa.py`` holds
``swa_utils``' ``SWALR`` and ``AveragedModel`` (``averaged_model``).  A ``from_torch`` state
holds torch's live lr: ``current_lr(state)`` / ``gradtx.tree_get(state, "learning_rate")``
read it, ``gradtx.tree_set(state, learning_rate=x)`` sets it.  torch itself
is not needed.  A module here that registers more optimizers with ``torch_recipe`` (those that
are not "decay, scaler, decay, lr") is imported automatically.
"""

import importlib
import pkgutil

from gradtx.torch_compat.legacy import asgd_average
from gradtx.torch_compat.optimizers import (
    DEFAULTS,
    IMPLEMENTATION_FLAGS,
    RECIPES,
    TorchOptimizerState,
    current_lr,
    from_torch,
    torch_recipe,
)
from gradtx.torch_compat.plateau import ReduceOnPlateauState, reduce_on_plateau
from gradtx.torch_compat.schedulers import TorchSchedules, torch_schedule, torch_schedules
from gradtx.torch_compat.swa import averaged_model

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DEFAULTS",
    "IMPLEMENTATION_FLAGS",
    "RECIPES",
    "ReduceOnPlateauState",
    "TorchOptimizerState",
    "TorchSchedules",
    "asgd_average",
    "averaged_model",
    "current_lr",
    "from_torch",
    "reduce_on_plateau",
    "torch_recipe",
    "torch_schedule",
    "torch_schedules",
]
