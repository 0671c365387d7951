"""PyTorch recipes, exactly: ``from_torch("AdamW", lr=1e-3)`` takes the same steps as
``torch.optim.AdamW(params, lr=1e-3)`` (``optimizers.py``); ``torch_schedule("OneCycleLR", ...)``
is the learning rate of ``torch.optim.lr_scheduler.OneCycleLR`` (``schedulers.py``, built from
``gradtx.schedules``); ``reduce_on_plateau`` follows ``ReduceLROnPlateau``'s rules.  torch itself
is not needed.
"""

from gradtx.torch_compat.optimizers import DEFAULTS, IMPLEMENTATION_FLAGS, from_torch
from gradtx.torch_compat.plateau import ReduceOnPlateauState, reduce_on_plateau
from gradtx.torch_compat.schedulers import TorchSchedules, torch_schedule, torch_schedules

__all__ = [
    "DEFAULTS",
    "IMPLEMENTATION_FLAGS",
    "ReduceOnPlateauState",
    "TorchSchedules",
    "from_torch",
    "reduce_on_plateau",
    "torch_schedule",
    "torch_schedules",
]
