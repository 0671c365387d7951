"""DP-SGD (``gradtx.contrib.dpsgd``, ``differentially_private_aggregate``) on per-example
gradients: against optax with the same key (float64 and float32), against the NumPy reference
given the same noise draws, and the noise's statistics."""

from __future__ import annotations

import doctest
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from helpers import fast_compile, rel_err
from references.differential_privacy import DPSGD

import gradtx
from gradtx.contrib import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
    dpsgd,
)

BATCH, STEPS = 5, 8
SHAPES = {"b": (4,), "w": (3, 4)}


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _problem(dtype=jnp.float64, steps=STEPS, seed=0):
    """Params and per-example gradients; example norms range over ~0.3 .. 10, so a bound of 2
    clips some examples and not others."""
    rng = np.random.RandomState(seed)
    params = {k: jnp.asarray(rng.randn(*s), dtype) for k, s in SHAPES.items()}
    scales = np.geomspace(0.1, 3.0, BATCH)
    grads = [
        {k: jnp.asarray(scales.reshape((BATCH,) + (1,) * len(s)) * rng.randn(BATCH, *s), dtype)
         for k, s in SHAPES.items()}
        for _ in range(steps)
    ]  # fmt: skip
    return params, grads


def _run(tx, params, grads):
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = jax.tree.map(lambda p, d: (p + d).astype(p.dtype), params, u)
        out.append([np.asarray(x, np.float64) for x in jax.tree.leaves(u)])
    return out, state


def _optax_dpsgd(**kwargs):
    with warnings.catch_warnings():  # optax's dpsgd passes its seed by a deprecated keyword
        warnings.simplefilter("ignore")
        return optax.contrib.dpsgd(**kwargs)


DPSGD_CASES = [
    {"learning_rate": 0.1, "l2_norm_clip": 2.0, "noise_multiplier": 0.7, "seed": 3},
    {"learning_rate": 0.05, "l2_norm_clip": 1.0, "noise_multiplier": 1.1, "seed": 0,
     "momentum": 0.9},
    {"learning_rate": 0.05, "l2_norm_clip": 2.0, "noise_multiplier": 0.3, "seed": 11,
     "momentum": 0.8, "nesterov": True},
]  # fmt: skip


@pytest.mark.parametrize("kwargs", DPSGD_CASES, ids=["plain", "momentum", "nesterov"])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["f64", "f32"])
def test_dpsgd_matches_optax(kwargs, dtype):
    params, grads = _problem(dtype)
    mine, _ = _run(dpsgd(**kwargs), params, grads)
    theirs, _ = _run(_optax_dpsgd(**kwargs), params, grads)
    assert rel_err(mine, theirs) <= (1e-10 if dtype == jnp.float64 else 1e-5)


@pytest.mark.parametrize("key", [7, "typed"], ids=["int", "typed_key"])
def test_aggregate_matches_optax(key):
    key = jax.random.key(7) if key == "typed" else key
    params, grads = _problem()
    mine, state = _run(differentially_private_aggregate(2.0, 0.5, key), params, grads)
    theirs, their_state = _run(optax.contrib.differentially_private_aggregate(2.0, 0.5, key),
                               params, grads)  # fmt: skip
    assert rel_err(mine, theirs) <= 1e-10
    # the same key stream, stored as raw key data
    assert state.inner[0].rng_key.dtype == jnp.uint32
    np.testing.assert_array_equal(state.inner[0].rng_key, jax.random.key_data(their_state.rng_key))


def _noise_draws(seed, leaves, steps, dtype):
    """The normal draws optax's key handling makes: split into 1 + #leaves, keep the first."""
    key, out = jax.random.key(seed), []
    for _ in range(steps):
        keys = jax.random.split(key, len(leaves) + 1)
        key = keys[0]
        out.append([np.asarray(jax.random.normal(k, x.shape, dtype), np.float64)
                    for k, x in zip(keys[1:], leaves, strict=True)])  # fmt: skip
    return out


@pytest.mark.parametrize("kwargs", DPSGD_CASES, ids=["plain", "momentum", "nesterov"])
def test_dpsgd_matches_the_reference_given_the_noise(kwargs):
    params, grads = _problem(steps=20)
    mine, _ = _run(dpsgd(**kwargs), params, grads)
    ref = DPSGD(kwargs["learning_rate"], kwargs["l2_norm_clip"], kwargs["noise_multiplier"],
                kwargs.get("momentum"), kwargs.get("nesterov", False))  # fmt: skip
    noise = _noise_draws(kwargs["seed"], jax.tree.leaves(params), 20, jnp.float64)
    want = [ref.step([np.asarray(x, np.float64) for x in jax.tree.leaves(g)], z, t)
            for t, (g, z) in enumerate(zip(grads, noise, strict=True), start=1)]  # fmt: skip
    assert rel_err(mine, want) <= 1e-10
    # the harness can fail: another seed's noise is visible
    other = _noise_draws(kwargs["seed"] + 1, jax.tree.leaves(params), 20, jnp.float64)
    ref = DPSGD(kwargs["learning_rate"], kwargs["l2_norm_clip"], kwargs["noise_multiplier"],
                kwargs.get("momentum"), kwargs.get("nesterov", False))  # fmt: skip
    wrong = [ref.step([np.asarray(x, np.float64) for x in jax.tree.leaves(g)], z, t)
             for t, (g, z) in enumerate(zip(grads, other, strict=True), start=1)]  # fmt: skip
    assert rel_err(mine, wrong) > 1e-3


def test_clipping_bounds_each_example_and_noise_is_gaussian():
    """Without noise the mean of clipped examples has norm <= C; with zero gradients the output
    times B / (sigma C) is standard normal (mean 0, variance 1) and fresh at every step."""
    big = {"w": jnp.full((BATCH, 3, 4), 10.0), "b": jnp.full((BATCH, 4), -10.0)}
    params = {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)}
    tx = differentially_private_aggregate(1.5, 0.0, key=0)
    u, _ = tx.update(big, tx.init(params), params)
    assert abs(float(optax.tree.norm(u)) - 1.5) < 1e-12  # every example clipped to norm 1.5
    n = 20000
    zeros = {"w": jnp.zeros((2, n))}
    tx = differentially_private_aggregate(2.0, 0.5, key=1)
    state = tx.init({"w": jnp.zeros(n)})
    z = []
    for _ in range(2):
        u, state = tx.update(zeros, state)
        z.append(np.asarray(u["w"]) * 2 / (0.5 * 2.0))
    for zi in z:
        assert abs(zi.mean()) < 5 / np.sqrt(n) and abs(zi.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < 5 / np.sqrt(n)


def test_jit_errors_and_state():
    params, grads = _problem(steps=2)
    tx = dpsgd(0.1, 2.0, 0.7, seed=3, momentum=0.9)
    eager, _ = _run(tx, params, grads)
    jitted, _ = _run(gradtx.GradientTransformation(tx.init, jax.jit(tx.update)), params, grads)
    assert rel_err(jitted, eager) <= 1e-13
    state = differentially_private_aggregate(1.0, 1.0, key=5).init(params).inner[0]
    assert isinstance(state, DifferentiallyPrivateAggregateState)
    with pytest.raises(ValueError, match="l2_norm_clip"):
        dpsgd(0.1, -1.0, 1.0, seed=0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        differentially_private_aggregate(1.0, -0.5)
    with pytest.raises(ValueError, match="key or seed"):
        with pytest.warns(DeprecationWarning):
            differentially_private_aggregate(1.0, 1.0, key=1, seed=2)
    with pytest.raises(ValueError, match="per-example"):  # parameter-shaped input, a scalar leaf
        tx.update({"w": jnp.ones(3), "s": jnp.ones(())}, tx.init(params))


def test_docstring_examples():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for fn in (dpsgd, differentially_private_aggregate):
        for test in finder.find(fn, fn.__name__):
            runner.run(test)
    assert runner.tries >= 8 and runner.failures == 0


def test_vmap_grad_low_precision_checkpoint_and_injected_lr():
    # what the registry's cross-cutting tests check, on per-example gradients (the shared
    # harness feeds parameter-shaped ones, so dpsgd is not registered)
    from flax import serialization

    params, grads = _problem(steps=3)

    def final(lr):
        tx = dpsgd(lr, 2.0, 0.7, seed=3, momentum=0.9)
        state, p = tx.init(params), params
        for g in grads:
            u, state = tx.update(g, state, p)
            p = gradtx.apply_updates(p, u)
        return p, state

    # vmap over the learning rate equals separate runs; grad through the steps is finite and
    # matches a central difference (the noise is the same for every lr: the same key)
    lrs = jnp.array([0.05, 0.1, 0.2])
    batched, _ = jax.jit(jax.vmap(final))(lrs)
    for i, lr in enumerate([0.05, 0.1, 0.2]):
        single, _ = final(lr)
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-12)
    loss = lambda lr: sum(jnp.sum(x**2) for x in jax.tree.leaves(final(lr)[0]))
    h = 1e-5
    fd = (loss(0.1 + h) - loss(0.1 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(loss)(0.1), fd, rtol=1e-6)
    # injected learning rate: bit-identical
    kwargs = {"l2_norm_clip": 2.0, "noise_multiplier": 0.7, "seed": 3, "momentum": 0.9}
    injected = gradtx.inject_hyperparams(dpsgd)(learning_rate=0.1, **kwargs)
    a, _ = _run(injected, params, grads)
    b, _ = _run(dpsgd(0.1, 2.0, 0.7, seed=3, momentum=0.9), params, grads)
    assert rel_err(a, b) == 0.0
    # bfloat16 params keep their dtype
    low = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    tx = dpsgd(0.1, 2.0, 0.7, seed=3)
    u, _ = tx.update(jax.tree.map(lambda g: g.astype(jnp.bfloat16), grads[0]), tx.init(low), low)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
    # a flax-serialised state resumes bit-identically
    _, state = final(0.1)
    restored = serialization.from_bytes(final(0.05)[1], serialization.to_bytes(state))
    tx, g = dpsgd(0.1, 2.0, 0.7, seed=3, momentum=0.9), grads[0]
    u1, _ = tx.update(g, state, params)
    u2, _ = tx.update(g, restored, params)
    assert rel_err([jax.tree.leaves(u1)], [jax.tree.leaves(u2)]) == 0.0
