"""MADGRAD beyond the registry-driven tests: why its float64 trajectory parts from optax's.

optax forms ``λ_k = (lr + eps) sqrt(k + 1)`` from ``jnp.sqrt`` of its int32 step counter, which
is float32 even under x64 (and a Python float times a float32 array stays float32), so its
``λ_k`` carries a float32 rounding (~3e-8) that shows as ~1e-6 in the updates.  gradtx forms
``λ_k`` in the leaf's precision and matches the NumPy transcription of the paper to ~1e-13.
Handing gradtx optax's rounded ``λ_k`` (through the learning-rate schedule) reproduces optax to
float64 accuracy: the rounding of ``λ_k`` is the whole difference.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax.contrib
from helpers import fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import build, run

import gradtx

LR, EPS, STEPS = 0.1, 1e-6, 12


def optax_rounded_lr(count):
    """The learning rate under which gradtx's ``(lr_k + eps) sqrt(k + 1)`` is optax's
    float32 ``λ_k``."""
    k1 = jnp.asarray(count) + 1
    lam32 = jnp.float32(LR + EPS) * jnp.sqrt(k1.astype(jnp.float32))
    return lam32.astype(jnp.float64) / jnp.sqrt(k1 * 1.0) - EPS


def test_the_float32_step_weight_is_the_whole_difference_from_optax():
    params, grads = make_params(), make_grads(STEPS)
    with fast_compile():
        theirs, _, _ = run_tx(optax.contrib.madgrad(LR, eps=EPS), params, grads)
        mine, _, _ = run_tx(gradtx.madgrad(LR, eps=EPS), params, grads)
        rounded, _, _ = run_tx(gradtx.madgrad(optax_rounded_lr, eps=EPS), params, grads)
    exact, _ = run(build("madgrad", {"learning_rate": LR, "eps": EPS}), leaves64(params),
                   [leaves64(g) for g in grads])  # fmt: skip
    assert rel_err(rounded, theirs) <= 1e-12
    assert rel_err(mine, exact) <= 1e-12
    assert 1e-8 < rel_err(theirs, exact) < 1e-5  # optax's float32 λ_k, not gradtx, is off


def test_dual_averaging_centre_is_the_params_given_to_init():
    params = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray([0.5])}
    tx = gradtx.scale_by_madgrad(learning_rate=0.1, momentum=0.0)
    state = tx.init(params)
    assert gradtx.tree_get(state, "x0")["w"] is not params["w"]  # a copy: params may be donated
    zero = {"w": jnp.zeros(2), "b": jnp.zeros(1)}
    moved = {"w": jnp.asarray([7.0, 7.0]), "b": jnp.asarray([7.0])}
    updates, _ = tx.update(zero, state, moved)  # no gradient: z = x0, momentum 0 jumps there
    for name in params:
        assert jnp.array_equal(moved[name] + updates[name], params[name])
