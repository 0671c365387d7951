"""DiLoCo (Douillard et al. 2023) as its open JAX reimplementations write it: ``M`` simulated
workers (``jax.vmap``) each take ``H`` inner AdamW steps from the shared parameters on their own
data shard; the outer gradient is the shared parameters minus the workers' average, and the outer
optimizer is ``optax.sgd(0.7, momentum=0.9, nesterov=True)``.  float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)

WORKERS, INNER_STEPS, OUTER_STEPS = 4, 5, 6


def init(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (3, 16)) / 2,
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 1)) / 4,
    }


def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean(optax.squared_error(h @ params["w2"], y))


def make_shards():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(WORKERS, INNER_STEPS, 16, 3))
    # each worker's data come from a slightly different distribution
    shift = np.linspace(-0.5, 0.5, WORKERS)[:, None, None, None]
    y = np.sin((x + shift) @ np.array([1.0, -1.0, 0.5]))[..., None]
    return jnp.asarray(x), jnp.asarray(y)


inner_tx = optax.adamw(learning_rate=1e-2, weight_decay=1e-4)
outer_tx = optax.sgd(learning_rate=0.7, momentum=0.9, nesterov=True)


def inner_loop(global_params, inner_state, xs, ys):
    def body(carry, batch):
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, state = inner_tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, inner_state), losses = jax.lax.scan(body, (global_params, inner_state), (xs, ys))
    return params, inner_state, losses


@jax.jit
def outer_step(global_params, outer_state, inner_states, xs, ys):
    worker_params, inner_states, losses = jax.vmap(inner_loop, in_axes=(None, 0, 0, 0))(
        global_params, inner_states, xs, ys
    )
    averaged = jax.tree.map(lambda p: p.mean(axis=0), worker_params)
    outer_grad = jax.tree.map(lambda g, a: g - a, global_params, averaged)
    updates, outer_state = outer_tx.update(outer_grad, outer_state, global_params)
    return optax.apply_updates(global_params, updates), outer_state, inner_states, losses


def main():
    xs, ys = make_shards()
    params = init(jax.random.key(0))
    outer_state = outer_tx.init(params)
    # each worker keeps its own inner optimizer state across outer steps
    inner_states = jax.vmap(lambda _: inner_tx.init(params))(jnp.arange(WORKERS))
    losses, evals = [], []
    for _ in range(OUTER_STEPS):
        params, outer_state, inner_states, inner_losses = outer_step(
            params, outer_state, inner_states, xs, ys
        )
        losses.append(inner_losses.mean())
        evals.append(loss_fn(params, xs.reshape(-1, 3), ys.reshape(-1, 1)))
    return {
        "losses": jnp.stack(evals),
        "inner_losses": jnp.stack(losses),
        "params": params,
        "outer_momentum": optax.tree_utils.tree_get(outer_state, "trace"),
    }
