"""Schedules: pure functions ``step -> value`` for learning rates and other hyperparameters.

A schedule takes the number of completed optimizer steps (an int32 array, 0 on the first update;
any integer shape, evaluated elementwise) and returns the value for that step, computed in the
default float dtype (float64 under ``jax_enable_x64``, else float32).  They are plain functions of
their argument, so they jit, vmap and differentiate like any JAX function.  Pass one wherever a
hyperparameter is accepted (``gradtx.adam(learning_rate=cosine_decay_schedule(1e-3, 10_000))``);
the optimizer evaluates it at its one step counter.

Names and arguments follow optax where optax has the schedule (optax evaluates in float32; these
are exact in float64).  Arguments are validated when the schedule is built.  The torch.optim
equivalents are noted per schedule: torch's scheduler steps after each optimizer step, so the
learning rate torch uses at step ``t`` is ``schedule(t)`` here.
"""

from gradtx.base import Schedule
from gradtx.hyperparams import InjectHyperparamsState, inject_hyperparams
from gradtx.schedules.cyclic import (
    cosine_onecycle_schedule,
    cosine_warm_restarts_schedule,
    cyclic_schedule,
    interpolate_schedule,
    linear_onecycle_schedule,
    onecycle_momentum,
    piecewise_interpolate_schedule,
    sgdr_schedule,
)
from gradtx.schedules.decay import (
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    inverse_time_decay,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from gradtx.stateful_hyperparams import (
    InjectStatefulHyperparamsState,
    StatefulSchedule,
    WrappedSchedule,
    inject_stateful_hyperparams,
)

# optax.schedules also holds the hyperparameter injection (defined in gradtx.hyperparams and
# gradtx.stateful_hyperparams; re-exported here, and kept out of ``__all__`` so that
# ``from gradtx.schedules import *`` brings schedules only)
_OPTAX_ALSO = (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    Schedule,
    StatefulSchedule,
    WrappedSchedule,
    inject_hyperparams,
    inject_stateful_hyperparams,
)

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "cosine_warm_restarts_schedule",
    "cyclic_schedule",
    "exponential_decay",
    "interpolate_schedule",
    "inverse_time_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "onecycle_momentum",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
