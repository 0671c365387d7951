"""SAM (``gradtx.sam``) beyond the registry's transparent-mode examples: opaque mode against optax
and against the NumPy reference (with a ``grad_fn`` that depends on the climbed parameters),
``batch_axis_name`` under a mapped axis, and the documented ``sync_period=1`` difference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from helpers import fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import build

import gradtx
from gradtx.registry import Use

STEPS = 8
CURV = {"dense": {"b": 1.0, "w": 2.0}, "scale": 0.5}


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def grad_fn(params, i):
    """The gradient of a quadratic bowl, shifted by the climb index ``i``."""
    return jax.tree.map(lambda p, c: c * (p - 0.3) + 0.01 * (i + 1), params, CURV)


def grad_fn_leaves(leaves, i):
    curv = jax.tree.leaves(CURV)
    return [c * (p - 0.3) + 0.01 * (i + 1) for p, c in zip(leaves, curv, strict=True)]


CONFIGS = [
    {"sync_period": 2},
    {"sync_period": 3, "reset_state": False},
    {"sync_period": 4, "reset_state": True},
]
INNER = {
    "optimizer": Use("adam", {"learning_rate": 0.05}),
    "adv_optimizer": Use("sgd", {"learning_rate": 0.03, "momentum": 0.9}),
}


def _mine(config, opaque=True):
    return gradtx.sam(gradtx.adam(0.05), gradtx.sgd(0.03, momentum=0.9), opaque_mode=opaque,
                      **config)  # fmt: skip


def _theirs(config, opaque=True):
    return optax.contrib.sam(optax.adam(0.05), optax.sgd(0.03, momentum=0.9),
                             opaque_mode=opaque, **config)  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_opaque_mode_matches_optax(config):
    params, grads = make_params(), make_grads(STEPS)
    mine, _, _ = run_tx(_mine(config), params, grads, grad_fn=grad_fn)
    theirs, _, _ = run_tx(_theirs(config), params, grads, grad_fn=grad_fn)
    assert rel_err(mine, theirs) <= 1e-10


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_opaque_mode_matches_the_reference(config):
    params, grads = make_params(), make_grads(STEPS)
    mine, _, _ = run_tx(_mine(config), params, grads, grad_fn=grad_fn)
    ref = build("sam", {**INNER, **config, "opaque_mode": True})
    p = leaves64(params)
    ref.init(p)
    want = []
    for t, g in enumerate(grads, start=1):
        u = ref.step(leaves64(g), p, t, grad_fn=grad_fn_leaves)
        p = [a + b for a, b in zip(p, u, strict=True)]
        want.append(u)
    assert rel_err(mine, want) <= 1e-10
    # and the gradients at the climbed points matter: plain Adam on the same gradients differs
    plain, _, _ = run_tx(gradtx.adam(0.05), params, grads)
    assert rel_err(plain, want) > 1e-3


def test_opaque_mode_float32_matches_optax():
    params, grads = make_params(jnp.float32), make_grads(STEPS, jnp.float32)
    mine, _, _ = run_tx(_mine(CONFIGS[1]), params, grads, grad_fn=grad_fn)
    theirs, _, _ = run_tx(_theirs(CONFIGS[1]), params, grads, grad_fn=grad_fn)
    assert rel_err(mine, theirs) <= 1e-5


def test_opaque_mode_under_jit():
    params, grads = make_params(), make_grads(3)
    tx = _mine(CONFIGS[0])
    step = jax.jit(lambda g, s, p: tx.update(g, s, p, grad_fn=grad_fn))
    eager, _, _ = run_tx(tx, params, grads, grad_fn=grad_fn)
    jitted, _, _ = run_tx(gradtx.GradientTransformation(tx.init, step), params, grads)
    assert rel_err(jitted, eager) <= 1e-12


def test_batch_axis_name_averages_the_adversarial_gradients():
    """Under ``vmap(axis_name="batch")`` each member's climbed gradient is replaced by the mean
    over the axis, as in optax; without the axis name the members stay apart."""
    params = make_params()
    members = jnp.asarray([0.0, 1.0, 3.0])

    def run(factory, axis):
        tx = factory(jnp.float64)

        def member(shift):
            fn = lambda p, i: jax.tree.map(lambda x: x + shift, grad_fn(p, i))
            g = jax.tree.map(lambda x: x + shift, grad_fn(params, -1))
            u, _ = tx.update(g, tx.init(params), params, grad_fn=fn)
            return u

        return jax.vmap(member, axis_name="batch")(members) if axis else jax.vmap(member)(members)

    mine = lambda _: gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.05), sync_period=2,
                                opaque_mode=True, batch_axis_name="batch")  # fmt: skip
    theirs = lambda _: optax.contrib.sam(optax.sgd(0.1), optax.sgd(0.05), sync_period=2,
                                         opaque_mode=True, batch_axis_name="batch")  # fmt: skip
    a, b = run(mine, True), run(theirs, True)
    assert rel_err([leaves64(a)], [leaves64(b)]) <= 1e-12
    # every member descended with the same (averaged) final gradient, up to its own first one
    separate = gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.05), sync_period=2, opaque_mode=True)
    c = run(lambda _: separate, False)
    assert rel_err([leaves64(a)], [leaves64(c)]) > 1e-3


def test_opaque_mode_needs_grad_fn():
    params = make_params()
    tx = _mine(CONFIGS[0])
    with pytest.raises(ValueError, match="grad_fn"):
        tx.update(params, tx.init(params), params)


def test_sync_period_one_is_the_outer_optimizer():
    """Deliberate difference: with ``sync_period=1`` every call is an outer step from the current
    params (plain ``optimizer``); optax's steps from the params of the call before."""
    params, grads = make_params(), make_grads(STEPS)
    mine, _, _ = run_tx(gradtx.sam(gradtx.adam(0.05), gradtx.sgd(0.1), sync_period=1), params,
                        grads)  # fmt: skip
    plain, _, _ = run_tx(gradtx.adam(0.05), params, grads)
    assert rel_err(mine, plain) <= 1e-14
    theirs, _, _ = run_tx(optax.contrib.sam(optax.adam(0.05), optax.sgd(0.1), sync_period=1),
                          params, grads)  # fmt: skip
    assert rel_err(theirs, plain) > 1e-3


def test_transparent_mode_returns_to_the_cycle_start():
    """After each cycle the params are the cycle's start plus one outer step."""
    params, grads = make_params(), make_grads(6)
    tx = gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.05), sync_period=3)
    state, p = tx.init(params), params
    for t, g in enumerate(grads):
        if t % 3 == 0:
            start = p
        u, state = tx.update(g, state, p)
        p = gradtx.apply_updates(p, u)
    want = gradtx.apply_updates(start, jax.tree.map(lambda g: -0.1 * g, grads[-1]))
    for a, b in zip(leaves64(p), leaves64(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_state_classes_take_optax_fields():
    s = gradtx.contrib.SAMState(steps_since_sync=0, opt_state=(), adv_state=(), cache=None)
    assert s.cache is None
    assert gradtx.contrib.NormalizeState() == gradtx.base.EmptyState()
    with pytest.raises(ValueError, match="sync_period"):
        gradtx.sam(gradtx.sgd(0.1), gradtx.sgd(0.1), sync_period=0)
