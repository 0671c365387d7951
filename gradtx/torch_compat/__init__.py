"""PyTorch recipes, exactly: ``from_torch("AdamW", lr=1e-3)`` takes the same steps as
``torch.optim.AdamW(params, lr=1e-3)``; ``torch_schedule("OneCycleLR", ...)`` is the learning
rate of ``torch.optim.lr_scheduler.OneCycleLR``; ``reduce_on_plateau`` follows
``ReduceLROnPlateau``'s rules.  torch itself is not needed.
"""

from gradtx.torch_compat.optimizers import (
    DEFAULTS,
    IMPLEMENTATION_FLAGS,
    from_torch,
    torch_schedule,
)
from gradtx.torch_compat.plateau import ReduceOnPlateauState, reduce_on_plateau

__all__ = [
    "DEFAULTS",
    "IMPLEMENTATION_FLAGS",
    "ReduceOnPlateauState",
    "from_torch",
    "reduce_on_plateau",
    "torch_schedule",
]
