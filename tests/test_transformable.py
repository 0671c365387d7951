"""Every alias under JAX transformations, and dtype handling.

ONE compiled function does the transformation work for all aliases (compilations are the cost
on this machine): ``jit(vmap(value_and_grad(loss after K scan steps)))`` over a batch of learning
rates, each optimizer built inside from the traced learning rate.  The batch holds ``lr0 +- h``
for a central finite difference of the meta-gradient at ``lr0``; members are compared with
unbatched eager runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_compile, make_params

import gradtx as A
from gradtx import apply_updates, tree_get


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


K = 6
CURVATURE = {"dense": {"b": 1.0, "w": 2.0}, "scale": 0.5}

# alias -> (factory of the learning rate, a representative learning rate)
ALIASES: dict[str, tuple[Callable[[Any], Any], float]] = {
    "sgd": (lambda lr: A.sgd(lr, momentum=0.9), 0.05),
    "adagrad": (A.adagrad, 0.3),
    "rmsprop": (lambda lr: A.rmsprop(lr, centered=True, momentum=0.5), 0.01),
    "adadelta": (lambda lr: A.adadelta(lr, weight_decay=0.01), 1.0),
    "adam": (A.adam, 0.05),
    "adamw": (A.adamw, 0.05),
    "amsgrad": (A.amsgrad, 0.05),
    "adamax": (A.adamax, 0.05),
    "adamaxw": (A.adamaxw, 0.05),
    "nadam": (A.nadam, 0.05),
    "nadamw": (A.nadamw, 0.05),
    "radam": (A.radam, 0.05),
    "lion": (A.lion, 0.01),
    "adabelief": (A.adabelief, 0.05),
    "yogi": (A.yogi, 0.05),
    "noisy_sgd": (lambda lr: A.noisy_sgd(lr, key=0), 0.05),
    "sign_sgd": (A.sign_sgd, 0.01),
}


def loss(params: Any) -> jax.Array:
    """A separable quadratic bowl around 0.3 with different curvatures per leaf."""
    terms = jax.tree.map(lambda p, c: 0.5 * c * jnp.sum((p - 0.3) ** 2), params, CURVATURE)
    return sum(jax.tree.leaves(terms))


def loss_grad(params: Any) -> Any:
    # written out rather than jax.grad(loss): keeps the meta-gradient first order (cheap to compile)
    return jax.tree.map(lambda p, c: c * (p - 0.3), params, CURVATURE)


def trajectory(make: Callable[[Any], Any], lr: Any, params: Any, scan: bool = True) -> Any:
    """Final params after ``K`` steps of gradient descent on ``loss`` with ``make(lr)``, under
    ``lax.scan`` or as a plain Python loop (the unbatched, uncompiled reference run)."""
    tx = make(lr)

    def step(carry, _):
        p, state = carry
        u, state = tx.update(loss_grad(p), state, p)
        return (apply_updates(p, u), state), None

    carry = (params, tx.init(params))
    if scan:
        return jax.lax.scan(step, carry, None, length=K)[0][0]
    for _ in range(K):
        carry, _ = step(carry, None)
    return carry[0]


# the batch of learning rates, as multiples of each alias's lr0: lr0 -+ h for the central
# difference, lr0, and a larger one
H = 1e-6
SCALES = jnp.asarray([1 - H, 1.0, 1 + H, 1.7], jnp.float64)


@functools.cache
def batched_runs() -> dict[str, Any]:
    """All aliases in ONE compiled function (one compilation is much cheaper than 17):
    ``jit(vmap(value_and_grad(loss after K scan steps)))`` over ``SCALES``."""
    params = make_params()

    def per_alias(make, lr0):
        def loss_after(scale):
            final = trajectory(make, lr0 * scale, params)
            return loss(final), final

        return jax.value_and_grad(loss_after, has_aux=True)

    def all_aliases(scale):
        return {name: per_alias(make, lr0)(scale) for name, (make, lr0) in ALIASES.items()}

    return jax.jit(jax.vmap(all_aliases))(SCALES)


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_jit_vmap_grad_scan(name):
    make, lr0 = ALIASES[name]
    params = make_params()
    (values, finals), dscale = batched_runs()[name]

    for i in (1, 3):  # batch members vs unbatched eager runs with a Python-float learning rate
        single = trajectory(make, lr0 * float(SCALES[i]), params, scan=False)
        for a, b in zip(jax.tree.leaves(finals), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-14)
    assert float(values[1]) < float(loss(params))  # the run makes progress
    # d loss / d lr at lr0 (the batch variable is lr / lr0)
    dlr = float(dscale[1]) / lr0
    fd = (float(values[2]) - float(values[0])) / (2 * H * lr0)
    assert abs(dlr) > 1e-3
    np.testing.assert_allclose(dlr, fd, rtol=1e-6)


# one tree mixing both low precisions: one run per alias covers bfloat16 and float16
LOW = {"dense": {"b": jnp.float16, "w": jnp.bfloat16}, "scale": jnp.bfloat16}


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_low_precision_params_keep_their_dtype(name):
    make, lr0 = ALIASES[name]
    params = jax.tree.map(lambda x, d: x.astype(d), make_params(), LOW)
    want = jax.tree.map(jnp.dtype, LOW)
    tx = make(lr0)
    state = tx.init(params)
    before = _float_dtypes(state)
    for _ in range(2):
        updates, state = tx.update(loss_grad(params), state, params)
        assert jax.tree.map(lambda x: x.dtype, updates) == want
        params = apply_updates(params, updates)
        assert jax.tree.map(lambda x: x.dtype, params) == want
        assert all(np.all(np.isfinite(np.asarray(x, np.float32))) for x in jax.tree.leaves(params))
    # the state keeps its dtypes (a jit/scan carry must), param-shaped moments in the params' dtype
    assert _float_dtypes(state) == before
    assert set(before.values()) <= {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)}
    for path, dt in before.items():
        assert dt == (jnp.float16 if "'b'" in path else jnp.bfloat16), path


def _float_dtypes(state: Any) -> dict[str, Any]:
    """dtype of each floating param-shaped state leaf, by path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return {
        jax.tree_util.keystr(path): x.dtype
        for path, x in flat
        if jnp.issubdtype(x.dtype, jnp.floating) and np.ndim(x) > 0
    }


MU_DTYPE_ALIASES = {
    "adam": A.adam,
    "adamw": A.adamw,
    "amsgrad": A.amsgrad,
    "lion": A.lion,
    "nadam": A.nadam,
}


@pytest.mark.parametrize("name", sorted(MU_DTYPE_ALIASES))
def test_mu_dtype_keeps_first_moment_in_bfloat16(name):
    params = make_params(jnp.float32)
    tx = MU_DTYPE_ALIASES[name](0.01, mu_dtype=jnp.bfloat16)
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(loss_grad(params), state, params)
        params = apply_updates(params, updates)
    assert {x.dtype for x in jax.tree.leaves(tree_get(state, "mu"))} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    if name != "lion":  # the second moment keeps the params' precision
        assert {x.dtype for x in jax.tree.leaves(tree_get(state, "nu"))} == {jnp.dtype(jnp.float32)}


def test_sgd_accumulator_dtype():
    params = make_params(jnp.float32)
    tx = A.sgd(0.1, momentum=0.9, accumulator_dtype=jnp.bfloat16)
    state = tx.init(params)
    g = loss_grad(params)
    updates, state = tx.update(g, state, params)
    trace = tree_get(state, "trace")
    assert {x.dtype for x in jax.tree.leaves(trace)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
    # first step: the trace is the gradient, rounded to bfloat16
    for t, x in zip(jax.tree.leaves(trace), jax.tree.leaves(g), strict=True):
        np.testing.assert_array_equal(np.asarray(t), np.asarray(x.astype(jnp.bfloat16)))
