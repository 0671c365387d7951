"""DP-SGD written by hand as in the JAX/optax differential-privacy examples: per-example
gradients with ``jax.vmap(jax.grad(...))``, clipped and summed with
``optax.per_example_global_norm_clip``, Gaussian noise scaled by the noise multiplier, then
``optax.sgd`` with momentum; a logistic-regression model on ``optax.sigmoid_binary_cross_entropy``.
Also the per-layer variant ``optax.per_example_layer_norm_clip``.  float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)

L2_NORM_CLIP = 1.0
NOISE_MULTIPLIER = 0.5
BATCH = 32


def init_params(key, dim):
    return {"w": 0.1 * jax.random.normal(key, (dim,)), "b": jnp.zeros(())}


def loss_fn(params, x, y):
    logits = x @ params["w"] + params["b"]
    return optax.sigmoid_binary_cross_entropy(logits, y).mean()


def private_grad(params, batch, key, clip_fn):
    x, y = batch
    per_example = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(params, x[:, None], y[:, None])
    summed, num_clipped = clip_fn(per_example)
    leaves, treedef = jax.tree.flatten(summed)
    keys = jax.random.split(key, len(leaves))
    noised = [
        g + NOISE_MULTIPLIER * L2_NORM_CLIP * jax.random.normal(k, g.shape, g.dtype)
        for g, k in zip(leaves, keys, strict=True)
    ]
    grads = jax.tree.map(lambda g: g / BATCH, jax.tree.unflatten(treedef, noised))
    return grads, num_clipped


def train(clip_fn):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(256, 5)))
    y = jnp.asarray((np.asarray(x) @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) > 0).astype(np.float64))
    params = init_params(jax.random.key(0), 5)
    tx = optax.sgd(learning_rate=0.5, momentum=0.9)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, batch, key):
        grads, num_clipped = private_grad(params, batch, key, clip_fn)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, num_clipped

    key = jax.random.key(42)
    losses, clipped = [], []
    for epoch in range(3):
        for i in range(0, 256, BATCH):
            key, sub = jax.random.split(key)
            batch = (x[i : i + BATCH], y[i : i + BATCH])
            params, opt_state, num_clipped = step(params, opt_state, batch, sub)
            losses.append(loss_fn(params, x, y))
            clipped.append(jnp.asarray(num_clipped))
        del epoch
    return {"losses": jnp.stack(losses), "num_clipped": jnp.stack(clipped), "params": params}


def main():
    global_clip = lambda g: optax.per_example_global_norm_clip(jax.tree.leaves(g), L2_NORM_CLIP)

    def as_tree(fn):
        def clip(per_example):
            leaves, treedef = jax.tree.flatten(per_example)
            summed, num = fn(leaves)
            return jax.tree.unflatten(treedef, summed), num

        return clip

    layer_clip = lambda g: optax.per_example_layer_norm_clip(g, L2_NORM_CLIP, uniform=True)
    out = train(as_tree(global_clip))
    out["layerwise"] = train(as_tree(layer_clip))
    return out
