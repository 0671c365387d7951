"""Memory of a step: nothing param-sized beyond params + grads + state; low-precision moments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

N = 1 << 16  # 256 KiB of float32 per array


def _step(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


@pytest.mark.parametrize(
    "dtype, make",
    [
        (jnp.float32, lambda: gradtx.adam(1e-3)),
        (jnp.float32, lambda: gradtx.adamw(1e-3, weight_decay=1e-2)),
        (jnp.float32, lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3))),
        (jnp.float32, lambda: gradtx.sgd(1e-2, momentum=0.9, nesterov=True)),
        # low-precision state: the update must come from the moments as stored, or XLA keeps a
        # copy of each old moment while the new one is written in place (seen before the fix)
        (jnp.float32, lambda: gradtx.adam(1e-3, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)),
        (jnp.float32, lambda: gradtx.sgd(1e-2, momentum=0.9, accumulator_dtype=jnp.bfloat16)),
        (jnp.bfloat16, lambda: gradtx.adam(1e-3, mu_dtype=jnp.float32)),
        (jnp.bfloat16, lambda: gradtx.rmsprop(1e-3, centered=True)),
    ],
    ids=[
        "adam",
        "adamw",
        "clip_adamw",
        "sgd_nesterov",
        "adam_bf16_moments",
        "sgd_bf16_trace",
        "adam_bf16_params",
        "rmsprop_centered_bf16_params",
    ],
)
def test_donated_step_needs_no_param_sized_temporary(dtype, make):
    tx = make()
    params = {"w": jnp.zeros((N,), dtype), "b": jnp.zeros((64,), dtype)}
    state = jax.eval_shape(tx.init, params)
    compiled = _step(tx).lower(params, state, params).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < N * 4 // 4, f"{temp} bytes of temporaries for a {N * 4}-byte parameter"


def _state_bytes(state):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def test_bfloat16_moments_halve_adam_state_and_track_float32():
    params = {"w": jnp.linspace(-1.0, 1.0, 512, dtype=jnp.float32)}
    full, half = gradtx.adam(1e-2), gradtx.adam(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    s_full, s_half = full.init(params), half.init(params)
    moments = lambda s: [gradtx.tree_get(s, "mu"), gradtx.tree_get(s, "nu")]
    assert _state_bytes(moments(s_half)) * 2 == _state_bytes(moments(s_full))
    p_full, p_half = params, params
    for i in range(30):
        g = jax.tree.map(lambda p: 2 * p + 0.1 * np.sin(i), p_full)
        u, s_full = full.update(g, s_full, p_full)
        p_full = gradtx.apply_updates(p_full, u)
        g = jax.tree.map(lambda p: 2 * p + 0.1 * np.sin(i), p_half)
        u, s_half = half.update(g, s_half, p_half)
        p_half = gradtx.apply_updates(p_half, u)
    assert {x.dtype for x in jax.tree.leaves(moments(s_half))} == {jnp.dtype(jnp.bfloat16)}
    assert p_half["w"].dtype == jnp.float32
    drift = np.max(np.abs(np.asarray(p_half["w"]) - np.asarray(p_full["w"])))
    moved = np.max(np.abs(np.asarray(p_full["w"]) - np.asarray(params["w"])))
    assert 0 < drift < 0.05 * moved, (drift, moved)
