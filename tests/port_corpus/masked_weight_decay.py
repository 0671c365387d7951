"""Masked weight decay as Hugging Face's Flax scripts write it (run_mlm_flax.py,
run_clm_flax.py): ``optax.adamw(..., mask=decay_mask_fn)`` where the mask, built with
``flax.traverse_util``, leaves biases and LayerNorm scales undecayed, on a linear warmup + decay
schedule made with ``optax.join_schedules``; and the same decay written as ``optax.masked(
optax.add_decayed_weights(wd), mask)`` in a chain, as in Big Vision style configs.  float64.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

jax.config.update("jax_enable_x64", True)


class Encoder(nn.Module):
    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=jnp.float64, param_dtype=jnp.float64)
        x = nn.Dense(12, **kw)(x)
        x = nn.LayerNorm(**kw)(nn.gelu(x))
        x = nn.Dense(12, **kw)(x)
        x = nn.LayerNorm(**kw)(nn.gelu(x))
        return nn.Dense(3, **kw)(x)


def create_learning_rate_fn(
    train_ds_size, train_batch_size, num_train_epochs, num_warmup_steps, learning_rate
):
    """Returns a linear warmup, linear_decay learning rate function."""
    steps_per_epoch = train_ds_size // train_batch_size
    num_train_steps = steps_per_epoch * num_train_epochs
    warmup_fn = optax.linear_schedule(
        init_value=0.0, end_value=learning_rate, transition_steps=num_warmup_steps
    )
    decay_fn = optax.linear_schedule(
        init_value=learning_rate, end_value=0, transition_steps=num_train_steps - num_warmup_steps
    )
    schedule_fn = optax.join_schedules(
        schedules=[warmup_fn, decay_fn], boundaries=[num_warmup_steps]
    )
    return schedule_fn


# We use Optax's "masking" functionality to not apply weight decay
# to bias and LayerNorm scale parameters.
def decay_mask_fn(params):
    flat_params = traverse_util.flatten_dict(params)
    # find out all LayerNorm parameters
    layer_norm_candidates = ["layernorm", "layer_norm", "ln"]
    layer_norm_named_params = {
        layer[-2:]
        for layer_norm_name in layer_norm_candidates
        for layer in flat_params.keys()
        if layer_norm_name in "".join(layer).lower()
    }
    flat_mask = {
        path: (path[-1] != "bias" and path[-2:] not in layer_norm_named_params)
        for path in flat_params
    }
    return traverse_util.unflatten_dict(flat_mask)


def main():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, 6)))
    labels = jnp.asarray(np.argmax(np.asarray(x) @ rng.normal(size=(6, 3)), -1))
    model = Encoder()
    params = model.init(jax.random.key(0), x[:1])["params"]

    def loss_fn(params, xb, yb):
        logits = model.apply({"params": params}, xb)
        return optax.softmax_cross_entropy(logits, jax.nn.one_hot(yb, 3)).mean()

    lr_fn = create_learning_rate_fn(128, 32, 4, 3, 1e-2)
    txs = {
        "adamw_mask": optax.adamw(
            learning_rate=lr_fn, b1=0.9, b2=0.98, eps=1e-6, weight_decay=0.1, mask=decay_mask_fn
        ),
        "masked_chain": optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.scale_by_adam(b2=0.98),
            optax.masked(optax.add_decayed_weights(0.1), decay_mask_fn),
            optax.scale_by_learning_rate(lr_fn),
        ),
    }
    out = {"mask": decay_mask_fn(params)}
    for name, tx in txs.items():
        opt_state = tx.init(params)

        @jax.jit
        def train_step(params, opt_state, xb, yb, tx=tx):
            loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        p, losses = params, []
        for epoch in range(4):
            for i in range(0, 128, 32):
                p, opt_state, loss = train_step(p, opt_state, x[i : i + 32], labels[i : i + 32])
                losses.append(loss)
            del epoch
        out[name] = {"losses": jnp.stack(losses), "params": p}
    out["losses"] = out["adamw_mask"]["losses"]
    out["lr"] = jnp.stack([lr_fn(i) for i in range(16)])
    return out
