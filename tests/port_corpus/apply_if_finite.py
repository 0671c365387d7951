"""Guarding training against bad batches with ``optax.apply_if_finite`` (mixed-precision and
large-model code): ``optax.apply_if_finite(optax.chain(optax.clip_by_global_norm(1.0),
optax.adam(lr)), max_consecutive_errors=2)``; some batches hold NaNs (a corrupted record) and
an Inf; the loop logs ``opt_state.notfinite_count``, ``last_finite`` and ``total_notfinite``.
float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)


def loss_fn(params, x, y):
    pred = jnp.tanh(x @ params["w"] + params["b"]) @ params["v"]
    return jnp.mean(optax.l2_loss(pred, y))


def main():
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(size=(4, 8)) / 2),
        "b": jnp.zeros(8),
        "v": jnp.asarray(rng.normal(size=(8, 1)) / 3),
    }
    batches = []
    for step in range(24):
        x = rng.normal(size=(16, 4))
        y = np.sin(x.sum(-1, keepdims=True))
        if step in (5, 11, 12):  # corrupted records (two in a row: still within the limit)
            x[3, 1] = np.nan
        if step == 18:
            y[0, 0] = np.inf
        batches.append((jnp.asarray(x), jnp.asarray(y)))

    opt = optax.apply_if_finite(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(2e-2)), max_consecutive_errors=2
    )
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    log = {"notfinite_count": [], "last_finite": [], "total_notfinite": [], "params_finite": []}
    clean_losses = []
    x_eval = jnp.asarray(rng.normal(size=(64, 4)))
    y_eval = jnp.sin(x_eval.sum(-1, keepdims=True))
    for x, y in batches:
        params, opt_state, _ = step(params, opt_state, x, y)
        log["notfinite_count"].append(opt_state.notfinite_count)
        log["last_finite"].append(opt_state.last_finite)
        log["total_notfinite"].append(opt_state.total_notfinite)
        log["params_finite"].append(
            jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        )
        clean_losses.append(loss_fn(params, x_eval, y_eval))
    out = {k: jnp.stack(v) for k, v in log.items()}
    out["losses"] = jnp.stack(clean_losses)
    out["params"] = params
    return out
