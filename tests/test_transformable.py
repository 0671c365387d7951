"""Every registered optimizer and block under JAX's transformations, and with low-precision params.

For each entry, ``jit(vmap(value_and_grad(loss after K scan steps)))`` over a batch of values of
its traced hyperparameter (``Entry.traced``, the learning rate for optimizers): every batch
member equals an unbatched eager run, and the meta-gradient matches a central finite difference.
Compilations are the cost on this machine: each entry's program is compiled on its own (one
program holding all 55 optimizers took 1.3x as long: XLA's time grows faster than the program),
with XLA:CPU's older loop emitter, which compiles these many tiny kernels 1.5x as fast.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_compile, make_params

from gradtx import apply_updates, registry


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


K = 6
CURVATURE = {"dense": {"b": 1.0, "w": 2.0}, "scale": 0.5}
BLOCK_STEP = 0.05  # a block's output is a direction: the trajectory takes p - 0.05 u
H = 1e-6
SCALES = jnp.asarray([1 - H, 1.0, 1 + H, 0.8], jnp.float64)


def traced_value(entry: registry.Entry) -> Any:
    """The example's value of the traced hyperparameter (a nonzero number), or None."""
    if entry.traced is None:
        return None
    value = entry.examples[0].get(entry.traced)
    if value is None:
        param = next(p for p in registry.parameters(entry) if p.name == entry.traced)
        value = param.default
    if callable(value) or not isinstance(value, int | float) or value == 0:
        return None
    return float(value)


ENTRIES = registry.entries()
TRACED = [e for e in ENTRIES if traced_value(e) is not None]


def loss(params: Any) -> jax.Array:
    """A separable quadratic bowl around 0.3 with different curvatures per leaf."""
    terms = jax.tree.map(lambda p, c: 0.5 * c * jnp.sum((p - 0.3) ** 2), params, CURVATURE)
    return sum(jax.tree.leaves(terms))


def loss_grad(params: Any) -> Any:
    # written out rather than jax.grad(loss): keeps the meta-gradient first order (cheap to compile)
    return jax.tree.map(lambda p, c: c * (p - 0.3), params, CURVATURE)


def make(entry: registry.Entry, value: Any = None) -> Any:
    overrides = {} if value is None else {entry.traced: value}
    return entry.build(0, **overrides)


def apply(entry: registry.Entry, p: Any, u: Any) -> Any:
    if entry.kind == "block":
        u = jax.tree.map(lambda x: -BLOCK_STEP * x, u)
    return apply_updates(p, u)


def trajectory(entry: registry.Entry, value: Any, params: Any, scan: bool = True) -> Any:
    """Final params after ``K`` steps on ``loss``, under ``lax.scan`` or as a Python loop."""
    tx = make(entry, value)

    def step(carry, _):
        p, state = carry
        u, state = tx.update(loss_grad(p), state, p, value=loss(p))
        return (apply(entry, p, u), state), None

    carry = (params, tx.init(params))
    if scan:
        return jax.lax.scan(step, carry, None, length=K)[0][0]
    for _ in range(K):
        carry, _ = step(carry, None)
    return carry[0]


# XLA:CPU's default fusion emitters spend more time in LLVM than these tiny programs run; the
# older emitter gives the same results (to the last bit or so: the tolerances are 1e-10 and up)
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def batched_run(name: str) -> Any:
    """``jit(vmap(value_and_grad(loss after K scan steps)))`` of the entry ``name`` over
    ``SCALES``: ``((losses, final params), d loss / d scale)``, batched over the scales."""
    entry, params = registry.get(name), make_params()

    def loss_after(scale):
        final = trajectory(entry, traced_value(entry) * scale, params)
        return loss(final), final

    run = jax.vmap(jax.value_and_grad(loss_after, has_aux=True))
    return jax.jit(run, compiler_options=COMPILER_OPTIONS)(SCALES)


# SOAP rotates into the eigenbasis of its factors: eigh inside a vmapped batch rounds differently
# from eigh on one matrix, and the basis amplifies the last bits (4e-8 relative measured; the
# same amplification shows between 8 devices and one in tests/test_soap.py)
BATCH_RTOL = {"soap": 1e-6, "scale_by_soap": 1e-6}


@pytest.mark.parametrize("entry", TRACED, ids=lambda e: e.name)
def test_jit_vmap_grad_scan(entry):
    params, v0 = make_params(), traced_value(entry)
    (values, finals), dscale = batched_run(entry.name)
    for i in (1, 3):  # batch members vs unbatched eager runs with a Python-float value
        single = trajectory(entry, v0 * float(SCALES[i]), params, scan=False)
        for a, b in zip(jax.tree.leaves(finals), jax.tree.leaves(single), strict=True):
            rtol = BATCH_RTOL.get(entry.name, 1e-10)
            np.testing.assert_allclose(a[i], b, rtol=rtol, atol=1e-12)
    assert np.all(np.isfinite(np.asarray(values)))
    # d loss / d value at v0 (the batch variable is value / v0) against a central difference
    derivative = float(dscale[1]) / v0
    fd = (float(values[2]) - float(values[0])) / (2 * H * v0)
    rounding = 1e-14 * max(1.0, abs(float(values[1]))) / (H * abs(v0))  # the difference's noise
    np.testing.assert_allclose(derivative, fd, rtol=1e-5, atol=1e-7 + rounding)


def test_meta_gradients_are_not_vacuous():
    """Most traced hyperparameters move the loss: the finite-difference check has teeth."""
    moved = 0
    for entry in TRACED:
        (_, _), dscale = batched_run(entry.name)
        moved += abs(float(dscale[1])) > 1e-6
    assert moved >= 0.8 * len(TRACED), (moved, len(TRACED))


# one tree mixing both low precisions: one run per entry covers bfloat16 and float16
LOW = {"dense": {"b": jnp.float16, "w": jnp.bfloat16}, "scale": jnp.bfloat16}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_low_precision_params_keep_their_dtype(entry):
    params = jax.tree.map(lambda x, d: x.astype(d), make_params(), LOW)
    want = jax.tree.map(jnp.dtype, LOW)
    tx = make(entry)
    state = tx.init(params)
    before = _param_shaped_dtypes(state)
    for _ in range(2):
        g = loss_grad(params)  # grad= and value_fn=: the objective a line search reads
        updates, state = tx.update(g, state, params, value=loss(params), grad=g, value_fn=loss)
        assert jax.tree.map(lambda x: x.dtype, updates) == want
        params = apply(entry, params, updates)
        assert jax.tree.map(lambda x: x.dtype, params) == want
        assert all(np.all(np.isfinite(np.asarray(x, np.float32))) for x in jax.tree.leaves(params))
    # the state keeps its dtypes (a jit/scan carry must), param-shaped leaves in the params' dtype
    assert _param_shaped_dtypes(state) == before
    for path, dt in before.items():
        assert dt == (jnp.float16 if "'b'" in path else jnp.bfloat16), path


def _param_shaped_dtypes(state: Any) -> dict[str, Any]:
    """dtype of each floating state leaf with a dimension, by path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return {
        jax.tree_util.keystr(path): x.dtype
        for path, x in flat
        if jnp.issubdtype(x.dtype, jnp.floating) and np.ndim(x) > 0
    }


MU_DTYPE = [e for e in ENTRIES if "mu_dtype" in {p.name for p in registry.parameters(e)}]
MU = {"mu", "m1", "m2"}  # the first-moment fields (AdEMAMix keeps two, with optax's names)


@pytest.mark.parametrize("entry", MU_DTYPE, ids=lambda e: e.name)
def test_mu_dtype_keeps_first_moment_in_bfloat16(entry):
    params = make_params(jnp.float32)
    tx = entry.build(0, mu_dtype=jnp.bfloat16)
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(loss_grad(params), state, params)
        params = apply(entry, params, updates)
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    first = [x for p, x in flat if jax.tree_util.keystr(p).split(".")[-1].split("[")[0] in MU]
    assert first and {x.dtype for x in first} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
