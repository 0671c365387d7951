"""The kit for writing a block: every block in gradtx is written with it, and so can yours be.

A block turns incoming updates into outgoing ones, leaf by leaf, with some state.  Writing one
takes four things, each a tool here:

1. **Validated hyperparameters.**  Annotate each argument with its allowed interval
   (``b1: kit.Decay = 0.9``) and decorate the factory with ``@kit.validated``: a bad value fails
   when the optimizer is built, naming the argument and the interval.
2. **Constants or schedules.**  Every numeric hyperparameter may be a number, an array (traced
   under ``jit``/``vmap``/``grad``) or a schedule ``step -> value``.  ``kit.block(..., hyper=...)``
   resolves them at the chain's step and hands the values to your step function as ``h.name``.
3. **A per-leaf function with the dtype rule.**  ``kit.map_state(name, leaf, updates, state)``
   calls ``leaf(g, s, keep=...)`` on every leaf, where ``s`` is your state NamedTuple holding that
   leaf's values.  Leaves whose inputs differ in dtype or are below float32 are computed once in
   float32 (or wider) and rounded once; ``keep(new_state)`` rounds the new state to its stored
   dtypes, so the update is computed from the state as it will be stored.  Outputs are cast back
   to their inputs' dtypes.  Mismatched trees raise an error naming the first differing path.
4. **A named state.**  A NamedTuple of parameter-shaped trees (``kit.init_state`` builds its
   ``init``), readable later with ``gradtx.tree_get(state, "field")``.

The kit is four modules, re-exported here: ``hyperparameters`` (ranges, validation, schedules),
``leaves`` (the per-leaf map, the dtype rule, tree checks), ``numerics`` (precision, bias
corrections, moving averages, norms) and ``blocks`` (``kit.block``, named state).

A complete optimizer (AdaBelief's second moment with a momentum on top) is about twenty lines::

    from typing import NamedTuple
    import jax.numpy as jnp
    import gradtx
    from gradtx import kit

    class BeliefState(NamedTuple):
        mu: kit.Tree
        s: kit.Tree

    @kit.validated
    def scale_by_my_belief(b1: kit.Decay = 0.9, b2: kit.Decay = 0.999, eps: kit.NonNegative = 1e-8):
        def step(updates, state, params, h):
            debias1, debias2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

            def leaf(g, s, *, keep):
                mu = kit.ema(g, s.mu, h.b1)
                s = keep(BeliefState(mu, kit.ema_sq(g - mu, s.s, h.b2)))
                return debias1(s.mu) / (jnp.sqrt(debias2(s.s)) + h.eps), s

            return kit.map_state("scale_by_my_belief", leaf, updates, state)

        return kit.block("scale_by_my_belief", step, kit.init_state(BeliefState),
                         hyper=dict(b1=b1, b2=b2, eps=eps))

    my_optimizer = gradtx.chain(scale_by_my_belief(), gradtx.scale_by_learning_rate(1e-3))
"""

from gradtx.kit.blocks import StepFn, block, check_float_params, init_state, one_counter, when
from gradtx.kit.hyperparameters import (
    ConstantDecay,
    Decay,
    Fraction,
    NonNegative,
    NonNegativeConstant,
    Positive,
    PositiveConstant,
    Range,
    Rate,
    Steps,
    _range_in,  # noqa: F401  (inject_hyperparams reads a hint's Range)
    arguments_for,
    check_ranges,
    is_zero,
    ranges_of,
    resolve,
    scalar,
    validated,
)
from gradtx.kit.leaves import check_match, leafwise, map_state, need_params
from gradtx.kit.numerics import (
    Debias,
    Tree,
    abs_sq,
    canonical_dtype,
    cast,
    cast_like,
    compute_dtype,
    copy,
    ema,
    ema_sq,
    full_like,
    global_norm,
    l1_norm,
    one_minus_power,
    power,
    safe_norm,
    safe_sqrt,
    scalar_dtype,
    vdot,
    zeros_like,
)

__all__ = [
    "ConstantDecay",
    "Debias",
    "Decay",
    "Fraction",
    "NonNegative",
    "NonNegativeConstant",
    "Positive",
    "PositiveConstant",
    "Range",
    "Rate",
    "StepFn",
    "Steps",
    "Tree",
    "abs_sq",
    "arguments_for",
    "block",
    "canonical_dtype",
    "cast",
    "cast_like",
    "check_float_params",
    "check_match",
    "check_ranges",
    "compute_dtype",
    "copy",
    "ema",
    "ema_sq",
    "full_like",
    "global_norm",
    "init_state",
    "is_zero",
    "l1_norm",
    "leafwise",
    "map_state",
    "need_params",
    "one_counter",
    "one_minus_power",
    "power",
    "ranges_of",
    "resolve",
    "safe_norm",
    "safe_sqrt",
    "scalar",
    "scalar_dtype",
    "validated",
    "vdot",
    "when",
    "zeros_like",
]
