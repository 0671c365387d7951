"""optax's documented gradient accumulation (docs/_collections/examples/gradient_accumulation):
``optax.MultiSteps(optax.sgd(...), every_k_schedule=k)`` in a loop, with ``opt.has_updated(state)``
and ``state.gradient_step`` for logging, and its ``gradient_transformation()`` inside a Flax
``TrainState`` (the recipe for a larger effective batch), checked against the big-batch step.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(16)(x))
        return nn.Dense(1)(x)


def make_data(n=128):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (np.cos(x @ np.array([1.0, -1.0, 0.5, 2.0])) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y[:, None])


model = MLP()


def loss_fn(params, x, y):
    return jnp.mean(optax.squared_error(model.apply({"params": params}, x), y))


def main():
    x, y = make_data()
    params = model.init(jax.random.key(1), x[:1])["params"]
    k = 4
    opt = optax.MultiSteps(optax.sgd(0.05, momentum=0.9), every_k_schedule=k)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    p, losses, updated, gradient_steps, mini_steps = params, [], [], [], []
    for epoch in range(2):
        for i in range(0, len(x), 8):
            p, opt_state, loss = step(p, opt_state, x[i : i + 8], y[i : i + 8])
            losses.append(loss)
            updated.append(opt.has_updated(opt_state))
            gradient_steps.append(opt_state.gradient_step)
            mini_steps.append(opt_state.mini_step)
        del epoch
    out = {
        "losses": jnp.stack(losses),
        "has_updated": jnp.stack(updated),
        "gradient_step": jnp.stack(gradient_steps),
        "mini_step": jnp.stack(mini_steps),
        "params": p,
    }

    # the same accumulation inside a TrainState, against one step on the 4x larger batch
    state = train_state.TrainState.create(
        apply_fn=model.apply,
        params=params,
        tx=optax.MultiSteps(
            optax.sgd(0.1, momentum=0.9), every_k_schedule=k
        ).gradient_transformation(),
    )
    big = train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=optax.sgd(0.1, momentum=0.9)
    )

    @jax.jit
    def train_step(state, xb, yb):
        return state.apply_gradients(grads=jax.grad(loss_fn)(state.params, xb, yb))

    for i in range(0, 64, 8):
        state = train_step(state, x[i : i + 8], y[i : i + 8])
        if (i // 8 + 1) % k == 0:
            j = i + 8 - 8 * k
            big = train_step(big, x[j : i + 8], y[j : i + 8])
    out["accumulated_params"] = state.params
    out["big_batch_params"] = big.params
    out["big_batch_step"] = big.step
    return out
