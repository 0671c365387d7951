"""Resuming training mid-run from a checkpoint, both ways public code does it: the optimizer
state (an ``optax.chain`` of clipping, ``optax.inject_hyperparams(optax.adamw)`` on a warmup-cosine
schedule) saved with ``flax.serialization.to_bytes`` and restored with
``from_bytes`` into a freshly initialised template, and with orbax's ``StandardCheckpointer``
given the abstract state; the resumed runs must continue exactly as the uninterrupted one.
float64.
"""

import tempfile

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

jax.config.update("jax_enable_x64", True)


def make_problem():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(64, 5)))
    b = jnp.asarray(rng.normal(size=(64, 2)))
    params = {"w": jnp.zeros((5, 2)), "b": jnp.zeros(2)}
    batches = jnp.stack([a[i::4] for i in range(4)]), jnp.stack([b[i::4] for i in range(4)])
    return params, lambda p, i: jnp.mean((batches[0][i] @ p["w"] + p["b"] - batches[1][i]) ** 2)


def make_optimizer():
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=0.05, warmup_steps=3, decay_steps=20, end_value=1e-3
    )
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=1e-2),
    )


def main():
    params, loss_fn = make_problem()
    tx = make_optimizer()

    @jax.jit
    def step(params, opt_state, i):
        grads = jax.grad(loss_fn)(params, i)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, sum(loss_fn(params, j) for j in range(4)) / 4

    def run(params, opt_state, start, stop):
        losses = []
        for i in range(start, stop):
            params, opt_state, loss = step(params, opt_state, i % 4)
            losses.append(loss)
        return params, opt_state, losses

    # uninterrupted
    p_full, s_full, losses = run(params, tx.init(params), 0, 20)

    # interrupted at step 8: bytes with flax.serialization
    p, s, first = run(params, tx.init(params), 0, 8)
    blob = flax.serialization.to_bytes({"params": p, "opt_state": s})
    template = {"params": params, "opt_state": tx.init(params)}
    restored = flax.serialization.from_bytes(template, blob)
    p_msgpack, s_msgpack, rest = run(restored["params"], restored["opt_state"], 8, 20)

    # and with orbax, restoring into the abstract state
    with tempfile.TemporaryDirectory() as tmp:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(f"{tmp}/step_8", {"params": p, "opt_state": s})
        checkpointer.wait_until_finished()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = checkpointer.restore(f"{tmp}/step_8", abstract)
    p_orbax, s_orbax, rest_orbax = run(restored["params"], restored["opt_state"], 8, 20)

    lr = lambda state: state[1].hyperparams["learning_rate"]
    return {
        "losses": jnp.stack(losses),
        "resumed_losses": jnp.stack(first + rest),
        "orbax_resumed_losses": jnp.stack(first + rest_orbax),
        "params": p_full,
        "msgpack_params": p_msgpack,
        "orbax_params": p_orbax,
        "lr": jnp.stack([lr(s_full), lr(s_msgpack), lr(s_orbax)]),
        "restored_type_is_kept": jnp.asarray(type(s_msgpack) is type(s_full)),
    }
