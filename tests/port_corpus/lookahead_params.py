"""optax's lookahead recipe (the ``optax.lookahead`` docstring and its MNIST example): the
parameters are an ``optax.LookaheadParams.init_synced(params)`` pair, gradients are taken at
``params.fast``, ``opt.update(grads, state, params)`` updates both, and evaluation reads
``params.slow``.  Fast optimizer: Adam, then SGD with a state reset at every sync.  float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)


def loss_fn(params, x, y):
    logits = jnp.tanh(x @ params["w1"]) @ params["w2"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def train(fast_optimizer, reset_state):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, 4)))
    y = jnp.asarray(np.argmax(np.asarray(x) @ rng.normal(size=(4, 3)), -1))
    init = {
        "w1": jnp.asarray(rng.normal(size=(4, 8)) / 2),
        "w2": jnp.asarray(rng.normal(size=(8, 3)) / 3),
        "b": jnp.zeros(3),
    }
    opt = optax.lookahead(
        fast_optimizer, sync_period=5, slow_step_size=0.5, reset_state=reset_state
    )
    params = optax.LookaheadParams.init_synced(init)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        # gradients at the fast parameters
        loss, grads = jax.value_and_grad(loss_fn)(params.fast, xb, yb)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    fast_losses, slow_losses = [], []
    for epoch in range(3):
        for i in range(0, 128, 16):
            params, opt_state, loss = step(params, opt_state, x[i : i + 16], y[i : i + 16])
            fast_losses.append(loss)
            slow_losses.append(loss_fn(params.slow, x, y))  # evaluate the slow weights
        del epoch
    return {
        "losses": jnp.stack(slow_losses),
        "fast_losses": jnp.stack(fast_losses),
        "fast": params.fast,
        "slow": params.slow,
    }


def main():
    out = train(optax.adam(1e-2), reset_state=False)
    out["sgd_reset"] = train(optax.sgd(0.1, momentum=0.9), reset_state=True)
    return out
