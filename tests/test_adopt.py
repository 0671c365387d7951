"""ADOPT and ACProp beyond the registry-driven tests: a first moment stored in float32 (optax
takes the update from the unrounded moment, so only the reference can judge it), ADOPT's
``b2 = 1`` (legal: ADOPT converges for any ``b2``), and the size of optax's ACProp centering
deviation (its steps are ``b1`` times the paper's)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from helpers import fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import build, run

import gradtx


def test_adopt_mu_dtype_matches_the_stored_rounding_reference():
    kwargs = {"b1": 0.8, "mu_dtype": jnp.float32, "nesterov": True}
    params, grads = make_params(), make_grads(30)
    with fast_compile():
        got, _, state = run_tx(gradtx.adopt(0.1, **kwargs), params, grads)
    want, _ = run(build("adopt", {"learning_rate": 0.1, **kwargs}), leaves64(params),
                  [leaves64(g) for g in grads])  # fmt: skip
    assert rel_err(got, want) <= 1e-10
    assert gradtx.tree_get(state, "mu")["scale"].dtype == jnp.float32


def test_adopt_with_b2_one_keeps_the_first_squared_gradient():
    tx = gradtx.scale_by_adopt(b2=1.0, use_clipping=False)
    state = tx.init(jnp.zeros(2))
    first = jnp.asarray([2.0, -0.5])
    for g in (first, jnp.asarray([1.0, 1.0]), jnp.asarray([-3.0, 4.0])):
        updates, state = tx.update(g, state)
    np.testing.assert_array_equal(gradtx.tree_get(state, "nu"), first**2)
    assert np.all(np.isfinite(np.asarray(updates)))


def test_acprop_optax_steps_are_b1_times_the_papers_after_the_first():
    """``g - m_{t-1} = (g - m_t) / b1``: with no eps terms optax's ``s`` is ``1 / b1^2`` times
    the paper's, so its steps are ``b1`` times as large (the first step, ``g``, is shared)."""
    b1, params, grads = 0.8, make_params(), make_grads(6)
    runs = [
        run_tx(gradtx.scale_by_acprop(b1, eps=0.0, eps_root=0.0, paper_centering=p), params, grads)
        for p in (False, True)
    ]
    (optax_form, _, _), (paper_form, _, _) = runs
    assert rel_err(optax_form[:1], paper_form[:1]) == 0.0
    assert rel_err(optax_form[1:], [[b1 * u for u in step] for step in paper_form[1:]]) <= 1e-13
