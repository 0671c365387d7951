"""A multi-head model trained on a mix of optax's losses, the way research code combines them:
``softmax_cross_entropy_with_integer_labels`` and ``softmax_cross_entropy`` with
``smooth_labels``, ``sigmoid_binary_cross_entropy``, ``sigmoid_focal_loss``, ``l2_loss``,
``huber_loss``, ``log_cosh``, ``squared_error``, ``cosine_distance``, ``hinge_loss``,
``kl_divergence`` and ``ntxent``; each term is logged, the sum trained with ``optax.adamw``.
float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)


def init(key):
    ks = jax.random.split(key, 4)
    return {
        "body": jax.random.normal(ks[0], (6, 16)) / 3,
        "cls": jax.random.normal(ks[1], (16, 4)) / 4,
        "bin": jax.random.normal(ks[2], (16, 3)) / 4,
        "reg": jax.random.normal(ks[3], (16, 2)) / 4,
    }


def heads(params, x):
    h = jnp.tanh(x @ params["body"])
    return h, h @ params["cls"], h @ params["bin"], h @ params["reg"]


def terms(params, batch):
    x, label, bits, target, sign = batch
    h, logits, bin_logits, reg = heads(params, x)
    one_hot = optax.smooth_labels(jax.nn.one_hot(label, 4), alpha=0.1)
    return {
        "ce_int": optax.softmax_cross_entropy_with_integer_labels(logits, label).mean(),
        "ce_smooth": optax.softmax_cross_entropy(logits, one_hot).mean(),
        "bce": optax.sigmoid_binary_cross_entropy(bin_logits, bits).mean(),
        "focal": optax.sigmoid_focal_loss(bin_logits, bits, alpha=0.25, gamma=2.0).mean(),
        "l2": optax.l2_loss(reg, target).mean(),
        "huber": optax.huber_loss(reg, target, delta=0.5).mean(),
        "log_cosh": optax.log_cosh(reg, target).mean(),
        "squared": optax.squared_error(reg, target).mean(),
        "cosine": optax.cosine_distance(reg, target).mean(),
        "hinge": optax.hinge_loss(reg[:, 0], sign).mean(),
        "kl": optax.kl_divergence(jax.nn.log_softmax(logits), jax.nn.softmax(logits[::-1])).mean(),
        "ntxent": optax.ntxent(h, label),
    }


def total_loss(params, batch):
    t = terms(params, batch)
    return sum(t.values()), t


def make_batch(rng, n=48):
    x = rng.normal(size=(n, 6))
    label = np.argmax(x[:, :4], -1)
    bits = (x[:, 3:6] > 0).astype(np.float64)
    target = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], -1)
    sign = np.where(x[:, 5] > 0, 1.0, -1.0)
    return tuple(jnp.asarray(v) for v in (x, label, bits, target, sign))


def main():
    rng = np.random.default_rng(0)
    params = init(jax.random.key(0))
    tx = optax.adamw(learning_rate=1e-2, weight_decay=1e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        (loss, parts), grads = jax.value_and_grad(total_loss, has_aux=True)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, parts

    losses, logs = [], []
    for _ in range(25):
        params, opt_state, loss, parts = step(params, opt_state, make_batch(rng))
        losses.append(loss)
        logs.append(parts)
    return {
        "losses": jnp.stack(losses),
        "terms": jax.tree.map(lambda *x: jnp.stack(x), *logs),
        "params": params,
    }
