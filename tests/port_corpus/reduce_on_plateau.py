"""optax's documented recipe "Reduce learning rate on plateau" (docs/_collections/examples/
contrib/reduce_on_plateau.ipynb): ``optax.chain(optax.adam(lr), optax.contrib.reduce_on_plateau(
patience=..., cooldown=..., factor=..., rtol=..., accumulation_size=...))``, the loss handed to
``update`` as ``value=``, and the current scale read with ``optax.tree_utils.tree_get(opt_state,
"scale")`` for logging.  A small MLP regression in float64.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)

PATIENCE = 3
COOLDOWN = 2
FACTOR = 0.5
RTOL = 1e-3
ACCUMULATION_SIZE = 4


def init_mlp(key, sizes):
    params = []
    for din, dout in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        params.append(
            {"w": jax.random.normal(sub, (din, dout)) / jnp.sqrt(din), "b": jnp.zeros(dout)}
        )
    return params


def predict(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params, x, y):
    return jnp.mean(optax.l2_loss(predict(params, x), y))


def main():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(256, 3)))
    y = jnp.sin(x @ jnp.asarray([1.5, -2.0, 0.7]))[:, None] + 0.3 * jnp.asarray(
        rng.normal(size=(256, 1))
    )
    params = init_mlp(jax.random.key(0), [3, 16, 1])

    opt = optax.chain(
        optax.adam(3e-2),
        optax.contrib.reduce_on_plateau(
            patience=PATIENCE,
            cooldown=COOLDOWN,
            factor=FACTOR,
            rtol=RTOL,
            accumulation_size=ACCUMULATION_SIZE,
        ),
    )
    opt_state = opt.init(params)

    @jax.jit
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params, value=loss)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    losses, scales = [], []
    for epoch in range(20):
        for i in range(0, 256, 64):
            params, opt_state, loss = train_step(params, opt_state, x[i : i + 64], y[i : i + 64])
            losses.append(loss)
            scales.append(optax.tree_utils.tree_get(opt_state, "scale"))
        del epoch
    return {
        "losses": jnp.stack(losses),
        "lr_scale": jnp.stack(scales),
        "params": params,
        "best_value": optax.tree_utils.tree_get(opt_state, "best_value"),
        "plateau_count": optax.tree_utils.tree_get(opt_state, "plateau_count"),
    }
