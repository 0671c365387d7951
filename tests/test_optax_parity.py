"""gradtx vs optax: same names, same keyword arguments, same trajectory, for every registered
entry optax also has (``Entry.optax``) and every example whose arguments optax accepts.

float64 worst relative error per update <= 1e-10, float32 <= 1e-5, over 12 steps (the 50-step
trajectories are in test_reference.py; 12 steps cover RAdam's switch-on and several
maxima/clipping events).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import optax
import optax.contrib
import pytest
from helpers import (
    fast_compile,
    float32_mode,
    leaves64,
    make_grads,
    make_params,
    needs_value,
    rel_err,
    run_tx,
)
from references import build, run

from gradtx import registry

STEPS = 12
TOL = {jnp.float64: 1e-10, jnp.float32: 1e-5}

# Documented float64 differences, by (entry, example):
# - with a moment stored in a lower precision than the update (mu_dtype float32, params float64),
#   gradtx computes the update from the moment as stored, optax from the unrounded one, so float32
#   rounding of ``m`` (~6e-8 relative per step) shows;
# - optax evaluates its schedules in float32 even under x64 (the Schedule-Free warmups, and
#   Adafactor's second-moment decay ``1 - t^-c``).
DOCUMENTED = {
    ("scale_by_adam", 3): 1e-6,
    ("adam", 2): 1e-6,
    ("schedule_free_sgd", 0): 1e-6,
    ("schedule_free_adamw", 0): 1e-6,
    **{("scale_by_factored_rms", i): 1e-6 for i in range(3)},
    **{("adafactor", i): 1e-6 for i in range(4)},
    # optax forms MADGRAD's step weight (lr + eps) sqrt(k + 1) from its int32 counter in float32
    **{("madgrad", i): 1e-6 for i in range(2)},
    **{("scale_by_madgrad", i): 1e-6 for i in range(3)},
    ("lbfgs", 2): 1e-6,  # a learning-rate schedule, evaluated by optax in float32
}

# optax's SM3 raises IndexError on a scalar leaf: compared on the tree without it
NO_SCALARS = {"sm3", "scale_by_sm3"}


# optax's layer-wise DoG returns a scalar leaf's update with shape (1,): reshaped to compare
SCALAR_AS_VECTOR = {"scale_by_distance_over_gradients"}


def _shaped_like_updates(tx):
    def update(updates, state, params=None, **extra):
        out, state = tx.update(updates, state, params, **extra)
        return jax.tree.map(lambda o, g: o.reshape(jnp.shape(g)), out, updates), state

    return optax.GradientTransformation(tx.init, update)


def _harness(entry: registry.Entry, dtype, steps: int):
    params, grads = make_params(dtype), make_grads(steps, dtype)
    if entry.name in NO_SCALARS:
        drop = lambda tree: {k: v for k, v in tree.items() if k != "scale"}
        params, grads = drop(params), [drop(g) for g in grads]
    return params, grads


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def optax_factory(entry: registry.Entry):
    node = optax
    for part in entry.optax.split("."):
        node = getattr(node, part)
    return node


def accepted(entry: registry.Entry, example: int) -> bool:
    """Whether optax's factory takes every argument of the example."""
    names = set(inspect.signature(optax_factory(entry)).parameters)
    return set(entry.examples[example]) <= names


CASES = [
    (e, i)
    for e in registry.entries()
    if e.optax is not None
    for i in range(len(e.examples))
    if accepted(e, i)
]


def trajectories(entry: registry.Entry, example: int, dtype, steps: int):
    """The updates of gradtx's and optax's transformation, step by step."""
    params, grads = _harness(entry, dtype, steps)
    kwargs = registry.resolve_uses(entry.examples[example], registry.build)
    value = needs_value(entry)
    mine, p_mine, _ = run_tx(entry.build(example), params, grads, with_value=value)
    theirs_tx = optax_factory(entry)(**kwargs)
    if entry.name in SCALAR_AS_VECTOR:
        theirs_tx = _shaped_like_updates(theirs_tx)
    theirs, p_theirs, _ = run_tx(theirs_tx, params, grads, with_value=value)
    assert jax.tree.map(lambda x: x.dtype, p_mine) == jax.tree.map(lambda x: x.dtype, p_theirs)
    return mine, theirs


def error_vs_optax(entry: registry.Entry, example: int, dtype, steps: int = STEPS) -> float:
    return rel_err(*trajectories(entry, example, dtype, steps))


IDS = [f"{e.name}-{i}" for e, i in CASES]


@pytest.mark.parametrize(("entry", "example"), CASES, ids=IDS)
def test_float64_trajectory_matches_optax(entry, example):
    tol = DOCUMENTED.get((entry.name, example), TOL[jnp.float64])
    assert error_vs_optax(entry, example, jnp.float64) <= tol


# x64 off: in a float32 run optax's own scalars (counts, step sizes) are float32 too
float32_only = float32_mode


@pytest.mark.parametrize(("entry", "example"), CASES, ids=IDS)
def test_float32_trajectory_matches_optax(entry, example):
    """Within 1e-5 of optax in a float32 run, or else as accurate as optax (at most twice its
    error against the float64 NumPy reference): where float32 rounding is amplified (RAdam's
    ``rho_t``, the learning-rate-free estimates, Schedule-Free's updates taken as differences of
    parameters) two float32 implementations part, and gradtx must not be the worse one (on
    RAdam it is 100x more accurate).  This caught gradtx forming ``1 - b^t`` from ``b`` rounded to
    float32 (off by ~1/(1 - b) ulps); it is ``-expm1(t log b)`` with ``log b`` in double."""
    with float32_only():
        mine, theirs = trajectories(entry, example, jnp.float32, steps=8)
    if rel_err(mine, theirs) > TOL[jnp.float32]:
        ref = build(entry.name, entry.examples[example])
        params, grads = _harness(entry, jnp.float32, 8)
        grads64 = [leaves64(g) for g in grads]
        truth, _ = run(ref, leaves64(params), grads64, with_value=needs_value(entry))
        assert rel_err(mine, truth) <= 2 * rel_err(theirs, truth)


def test_every_optax_entry_has_a_checked_example():
    for entry in registry.entries():
        if entry.optax is not None:
            assert any(accepted(entry, i) for i in range(len(entry.examples))), entry.name


def test_harness_detects_a_difference():
    """A different eps must show up: the comparison is not vacuous."""
    params, grads = make_params(), make_grads(10)
    a, _, _ = run_tx(registry.get("adam").factory(0.1, eps=1e-3), params, grads)
    b, _, _ = run_tx(optax.adam(0.1, eps=1e-2), params, grads)
    assert rel_err(a, b) > 1e-4
