"""A WMT / LM1B-style language-model loop (Flax's examples/wmt and examples/lm1b, nanoGPT ports),
shrunk: a one-block causal transformer in linen, AdamW on the example's warmup + rsqrt schedule,
``optax.clip_by_global_norm``, and ``optax.inject_hyperparams`` so the learning rate is read
from ``opt_state[...].hyperparams['learning_rate']`` for logging.  Then two sweeps: the weight
decay written into ``opt_state[1].hyperparams`` per run with the same compiled step, and the
learning rate vmapped over the rates (``jax.vmap`` of a scanned training loop).

The data are synthetic token sequences from a fixed random bigram table.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

VOCAB, LENGTH, WIDTH = 12, 8, 8


class TinyLM(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(VOCAB, WIDTH)(tokens)
        x = x + self.param("pos", nn.initializers.normal(0.02), (LENGTH, WIDTH))
        mask = nn.make_causal_mask(tokens)
        y = nn.LayerNorm()(x)
        y = nn.SelfAttention(num_heads=2, qkv_features=WIDTH, use_bias=False)(y, mask=mask)
        x = x + y
        y = nn.Dense(2 * WIDTH)(nn.LayerNorm()(x))
        x = x + nn.Dense(WIDTH)(nn.gelu(y))
        return nn.Dense(VOCAB)(nn.LayerNorm()(x))


def rsqrt_schedule(init_value: float, shift: int = 0):
    def schedule(count):
        return init_value * (count + shift) ** -0.5 * shift**0.5

    return schedule


def create_learning_rate_schedule(learning_rate: float, warmup_steps: int):
    """Linear warmup, then inverse square root decay (the WMT example's schedule)."""
    return optax.join_schedules(
        [
            optax.linear_schedule(
                init_value=0, end_value=learning_rate, transition_steps=warmup_steps
            ),
            rsqrt_schedule(init_value=learning_rate, shift=warmup_steps),
        ],
        boundaries=[warmup_steps],
    )


def make_batches(num_batches, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(0.3 * np.ones(VOCAB), size=VOCAB)
    seqs = np.zeros((num_batches * batch_size, LENGTH + 1), np.int32)
    seqs[:, 0] = rng.integers(0, VOCAB, size=len(seqs))
    for t in range(1, LENGTH + 1):
        u = rng.random(len(seqs))[:, None]
        seqs[:, t] = np.minimum((u > np.cumsum(table[seqs[:, t - 1]], -1)).sum(-1), VOCAB - 1)
    return jnp.asarray(seqs).reshape(num_batches, batch_size, LENGTH + 1)


model = TinyLM()


def loss_fn(params, batch):
    logits = model.apply({"params": params}, batch[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()


def make_step(tx):
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, optax.global_norm(grads)

    return train_step


def main():
    batches = make_batches(num_batches=10, batch_size=8)
    params = jax.jit(model.init)(jax.random.key(0), batches[0, :, :-1])["params"]
    out = {}

    # 1. the example's optimizer, with the learning rate injected for logging
    schedule = create_learning_rate_schedule(learning_rate=3e-3, warmup_steps=4)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adamw)(
            learning_rate=schedule, b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.1
        ),
    )
    opt_state = tx.init(params)
    train_step = jax.jit(make_step(tx))
    p, lrs, losses, norms = params, [], [], []
    for batch in batches:
        p, opt_state, loss, norm = train_step(p, opt_state, batch)
        lrs.append(opt_state[1].hyperparams["learning_rate"])  # the rate this step used
        losses.append(loss)
        norms.append(norm)
    out.update(losses=jnp.stack(losses), logged_lr=jnp.stack(lrs), grad_norms=jnp.stack(norms))
    out["params"] = p

    # 2. a weight-decay sweep with the same compiled step: the injected values are optimizer
    #    state, so writing them into opt_state[1].hyperparams does not recompile
    finals = []
    for wd in [0.0, 0.1, 0.3]:
        p, opt_state = params, tx.init(params)
        opt_state[1].hyperparams["weight_decay"] = jnp.asarray(wd, jnp.float32)
        for batch in batches[:4]:
            p, opt_state, loss, _ = train_step(p, opt_state, batch)
        finals.append(loss)
    out["wd_sweep_final_loss"] = jnp.stack(finals)
    out["wd_sweep_cache_size"] = jnp.asarray(train_step._cache_size())

    # 3. a learning-rate sweep vmapped over the rates: one model per rate in one compiled step
    tx = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, weight_decay=0.01)
    sweep = [1e-3, 3e-3, 1e-2]

    def init_with_lr(lr):
        opt_state = tx.init(params)
        opt_state.hyperparams["learning_rate"] = lr
        return opt_state

    def run(lr):
        def body(carry, batch):
            p, s = carry
            p, s, loss, _ = make_step(tx)(p, s, batch)
            return (p, s), loss

        (_, s), losses = jax.lax.scan(body, (params, init_with_lr(lr)), batches[:4])
        return losses, s.hyperparams["learning_rate"]

    losses, used = jax.jit(jax.vmap(run))(jnp.asarray(sweep, jnp.float32))
    out["vmapped_sweep_losses"] = losses
    out["vmapped_sweep_lr"] = used
    return out
