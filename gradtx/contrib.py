"""optax.contrib's names at optax's paths: ``gradtx.contrib.prodigy`` is ``optax.contrib.prodigy``.

Each optimizer lives in its family module (``gradtx.optimizers.self_tuning`` for the
learning-rate-free ones); this namespace only gathers optax's contrib spellings.
"""

from gradtx.optimizers.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)
from gradtx.optimizers.self_tuning import DAdaptAdamWState, ProdigyState, dadapt_adamw, prodigy

__all__ = [
    "DAdaptAdamWState",
    "ProdigyState",
    "ScheduleFreeState",
    "dadapt_adamw",
    "prodigy",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
]
