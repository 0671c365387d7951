"""NovoGrad beyond the registry-driven tests: options optax cannot run side by side (a moment
stored in float32 under float64 params, where optax rounds ``b1 m`` to float32 before adding;
a weight-decay schedule, which optax's ``scale_by_novograd`` cannot take), and the per-leaf
second moment kept in float32 for half-precision leaves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import WD_SCHED, fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import build, run

import gradtx


@pytest.mark.parametrize(
    "kwargs",
    [{"weight_decay": 0.05, "mu_dtype": jnp.float32}, {"b1": 0.8, "weight_decay": WD_SCHED}],
    ids=["mu_dtype", "weight_decay_schedule"],
)
def test_matches_the_reference(kwargs):
    params, grads = make_params(), make_grads(30)
    with fast_compile():
        got, _, state = run_tx(gradtx.scale_by_novograd(**kwargs), params, grads)
    want, _ = run(build("scale_by_novograd", kwargs), leaves64(params),
                  [leaves64(g) for g in grads])  # fmt: skip
    assert rel_err(got, want) <= 1e-10
    mu = gradtx.tree_get(state, "mu")
    assert {x.dtype for x in jax.tree.leaves(mu)} == {jnp.dtype(kwargs.get("mu_dtype", "float64"))}


def test_second_moment_is_one_float32_scalar_per_leaf_for_half_precision():
    params = {"h": jnp.zeros(100, jnp.float16), "b": jnp.zeros((4, 4), jnp.bfloat16)}
    grads = {"h": jnp.full(100, 300.0, jnp.float16), "b": jnp.ones((4, 4), jnp.bfloat16)}
    tx = gradtx.scale_by_novograd()
    updates, state = tx.update(grads, tx.init(params), params)
    nu = gradtx.tree_get(state, "nu")
    assert all(x.shape == () and x.dtype == jnp.float32 for x in jax.tree.leaves(nu))
    # ‖g‖² = 9e6 is beyond float16 (65504): kept in float32 the step is still g / ‖g‖
    assert float(nu["h"]) == 9e6
    np.testing.assert_allclose(np.asarray(updates["h"], np.float32), 0.1, rtol=1e-3)
    assert updates["h"].dtype == jnp.float16 and updates["b"].dtype == jnp.bfloat16
