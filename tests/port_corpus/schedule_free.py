"""optax.contrib's Schedule-Free AdamW as its documentation uses it: ``optax.contrib.
schedule_free_adamw(learning_rate, warmup_steps=..., weight_decay=...)`` in the training loop,
and ``optax.contrib.schedule_free_eval_params(opt_state, params)`` for the parameters to evaluate
(and to checkpoint for inference).  Also the SGD variant ``optax.contrib.schedule_free_sgd``.
float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)


def predict(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


def loss_fn(params, x, y):
    return jnp.mean(optax.huber_loss(predict(params, x), y, delta=1.0))


def train(opt):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, 3)))
    y = jnp.asarray(np.cos(np.asarray(x) @ np.array([[1.0], [2.0], [-1.0]])))
    params = {
        "w1": jnp.asarray(rng.normal(size=(3, 16)) / 2),
        "b1": jnp.zeros(16),
        "w2": jnp.asarray(rng.normal(size=(16, 1)) / 4),
    }
    opt_state = opt.init(params)

    @jax.jit
    def train_step(params, opt_state, xb, yb):
        grads = jax.grad(loss_fn)(params, xb, yb)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    eval_losses, train_point_losses = [], []
    for epoch in range(4):
        for i in range(0, 128, 16):
            params, opt_state = train_step(params, opt_state, x[i : i + 16], y[i : i + 16])
            eval_params = optax.contrib.schedule_free_eval_params(opt_state, params)
            eval_losses.append(loss_fn(eval_params, x, y))
            train_point_losses.append(loss_fn(params, x, y))
        del epoch
    return {
        "losses": jnp.stack(eval_losses),
        "train_point_losses": jnp.stack(train_point_losses),
        "eval_params": optax.contrib.schedule_free_eval_params(opt_state, params),
        "params": params,
    }


def main():
    out = train(optax.contrib.schedule_free_adamw(5e-2, warmup_steps=5, weight_decay=1e-3))
    out["sgd"] = train(optax.contrib.schedule_free_sgd(0.2, warmup_steps=5))
    return out
