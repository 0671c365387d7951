"""Optimizer state survives checkpointing: a run saved at step k and resumed is bit-identical to
the uninterrupted run, for every registered entry and for the combinators and wrappers, with
``flax.serialization`` (bytes and state dicts) and orbax's ``StandardCheckpointer``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import gradtx as aliases
from gradtx import apply_updates, chain, registry, tree_get
from gradtx.clipping import clip_by_global_norm
from gradtx.combinators import masked
from gradtx.wrappers import (
    MultiSteps,
    apply_every,
    apply_if_finite,
    conditionally_transform,
    ema_params,
    lookahead,
    zero_nans,
)

RNG = np.random.default_rng(7)
# Arrays orbax restores are committed to a device, and jit caches committed and uncommitted
# inputs separately; committing everything up front lets the resumed runs reuse the compiled step.
DEVICE = jax.devices()[0]
PARAMS = jax.device_put(
    {"w": jnp.asarray(RNG.normal(size=(3, 2))), "b": jnp.asarray(RNG.normal(size=(2,)))}, DEVICE
)
STEPS = 6  # checkpoint after STEPS // 2
C = jax.tree.map(lambda p: jnp.asarray(RNG.uniform(0.5, 1.5, (STEPS, *p.shape))), PARAMS)
D = jax.tree.map(lambda p: jnp.asarray(RNG.normal(size=(STEPS, *p.shape))), PARAMS)
NAN_STEP = 2  # the "with_nans" optimizers see a NaN gradient here, before the checkpoint


# every registered optimizer and block (their plain configuration), and the wrappers
OPTIMIZERS = {e.name: e.build(0) for e in registry.entries()}
OPTIMIZERS.update(
    {
        "masked_adam": masked(aliases.adam(0.05), {"w": True, "b": False}),
        "multi_steps_adam": MultiSteps(aliases.adam(0.05), 4).gradient_transformation(),
        "apply_if_finite_sgd": apply_if_finite(aliases.sgd(0.05, momentum=0.9), 3),
        "lookahead_adam": lookahead(aliases.adam(0.05), 2, 0.5, reset_state=True),
        "clip_then_adam": chain(clip_by_global_norm(0.5), aliases.adam(0.05)),
        "ema_params": chain(aliases.sgd(0.05), ema_params(0.9)),
        "conditional_adam": conditionally_transform(aliases.adam(0.05), lambda n: n % 2 == 0),
        "apply_every_sgd": chain(apply_every(2), aliases.sgd(0.05)),
        "zero_nans_sgd": chain(zero_nans(), aliases.sgd(0.05, momentum=0.5)),
    }
)
WITH_NANS = {"apply_if_finite_sgd", "zero_nans_sgd"}


def _square_norm(p):
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(p))


@functools.partial(jax.jit, static_argnums=(0, 1))
def segment(name, n, params, state, start):
    """``n`` steps of optimizer ``name`` from step index ``start``."""
    tx = OPTIMIZERS[name]

    def step(carry, t):
        p, s = carry
        g = jax.tree.map(lambda x, c, d: c[t] * x + d[t], p, C, D)
        if name in WITH_NANS:
            g = jax.tree.map(lambda x: jnp.where(t == NAN_STEP, x.at[0].set(jnp.nan), x), g)
        value, grad = jax.value_and_grad(_square_norm)(p)  # grad=, value_fn=: for line searches
        u, s = tx.update(g, s, p, value=value, grad=grad, value_fn=_square_norm)
        return (apply_updates(p, u), s), None

    return jax.lax.scan(step, (params, state), start + jnp.arange(n))[0]


@functools.cache
def trajectory(name):
    """(params, state) at the checkpoint and at the end of the uninterrupted run."""
    half = STEPS // 2
    mid = segment(name, half, PARAMS, jax.device_put(OPTIMIZERS[name].init(PARAMS), DEVICE), 0)
    end = segment(name, half, *mid, half)
    return mid, end


def resume(name, params, restored_state):
    return segment(name, STEPS // 2, params, jax.device_put(restored_state, DEVICE), STEPS // 2)


def assert_bit_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flax_serialization_resume_is_bit_identical(name):
    (p_mid, s_mid), end = trajectory(name)
    # the run really moves (otherwise an identical end would prove nothing)
    assert not np.array_equal(np.asarray(end[0]["w"]), np.asarray(p_mid["w"]))
    template = OPTIMIZERS[name].init(PARAMS)  # a fresh state: every value must come from the file
    from_bytes = serialization.from_bytes(template, serialization.to_bytes(s_mid))
    from_dict = serialization.from_state_dict(template, serialization.to_state_dict(s_mid))
    for restored in (from_bytes, from_dict):
        assert_bit_identical(restored, s_mid)
        assert_bit_identical(resume(name, p_mid, restored), end)


def test_prng_key_state_is_raw_uint32_and_continues_the_stream():
    (_, s_mid), _ = trajectory("noisy_sgd")
    key = tree_get(s_mid, "rng_key")
    assert key.dtype == jnp.uint32 and key.shape == (2,)
    restored = serialization.from_bytes(
        OPTIMIZERS["noisy_sgd"].init(PARAMS), serialization.to_bytes(s_mid)
    )
    np.testing.assert_array_equal(np.asarray(tree_get(restored, "rng_key")), np.asarray(key))
    # the key moved on from the seed, so resuming from a fresh init would give other noise
    fresh = tree_get(OPTIMIZERS["noisy_sgd"].init(PARAMS), "rng_key")
    assert not np.array_equal(np.asarray(fresh), np.asarray(key))


def test_checkpoint_holds_mid_run_wrapper_state():
    # the checkpoint falls inside an accumulation window and after a skipped NaN step
    (_, s_ms), _ = trajectory("multi_steps_adam")
    assert int(tree_get(s_ms, "mini_step")) == 3
    assert np.any(np.asarray(tree_get(s_ms, "acc_grads")["w"]) != 0)
    (_, s_fin), _ = trajectory("apply_if_finite_sgd")
    assert int(tree_get(s_fin, "total_notfinite")) == 1
    assert int(tree_get(s_fin, "inner_state").count) == STEPS // 2 - 1


def test_orbax_standard_checkpointer_round_trip(tmp_path):
    # one checkpoint holds every optimizer's state: orbax's cost is mostly per save/restore
    names = sorted(OPTIMIZERS)
    states = {n: trajectory(n)[0][1] for n in names}
    path = tmp_path / "opt_states"
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, states)
        ckpt.wait_until_finished()
        abstract = {n: jax.eval_shape(OPTIMIZERS[n].init, PARAMS) for n in names}
        restored = ckpt.restore(path, abstract)
    for n in names:
        (p_mid, s_mid), end = trajectory(n)
        assert_bit_identical(restored[n], s_mid)  # NamedTuple classes, dtypes and values
        assert_bit_identical(resume(n, p_mid, restored[n]), end)
    assert segment._cache_size() == len(names)  # resuming compiled nothing new
    assert restored["noisy_sgd"].inner[0].rng_key.dtype == jnp.uint32
