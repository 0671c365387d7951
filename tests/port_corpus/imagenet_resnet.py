"""Flax's ImageNet example (examples/imagenet/train.py), shrunk: a tiny ResNet-style network with
BatchNorm in a ``TrainState`` subclass holding ``batch_stats``, SGD with Nesterov momentum on a
warmup + cosine schedule built with ``optax.join_schedules`` from
``warmup_epochs * steps_per_epoch`` (a float, as in the example's config), and weight decay as
an L2 term over the kernels.  A second run uses the step schedule of the classic recipe
(``optax.piecewise_constant_schedule``) and decoupled weight decay masked to the kernels
(``optax.add_decayed_weights(mask=...)``).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from flax.training import train_state


class ResidualBlock(nn.Module):
    filters: int

    @nn.compact
    def __call__(self, x, train):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
        y = nn.Conv(self.filters, (3, 3), use_bias=False)(x)
        y = nn.relu(norm()(y))
        y = nn.Conv(self.filters, (3, 3), use_bias=False)(y)
        y = norm()(y)
        return nn.relu(x + y)


class TinyResNet(nn.Module):
    num_classes: int = 5

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(4, (3, 3), use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        x = ResidualBlock(4)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


class TrainState(train_state.TrainState):
    batch_stats: Any


def create_learning_rate_fn(base_learning_rate, steps_per_epoch, warmup_epochs, num_epochs):
    """Linear warmup then cosine decay, as in the example."""
    warmup_fn = optax.linear_schedule(
        init_value=0.0,
        end_value=base_learning_rate,
        transition_steps=warmup_epochs * steps_per_epoch,
    )
    cosine_epochs = max(num_epochs - warmup_epochs, 1)
    cosine_fn = optax.cosine_decay_schedule(
        init_value=base_learning_rate, decay_steps=cosine_epochs * steps_per_epoch
    )
    return optax.join_schedules(
        schedules=[warmup_fn, cosine_fn], boundaries=[warmup_epochs * steps_per_epoch]
    )


def kernel_mask(params):
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: k[-1] == "kernel" for k in flat})


def make_train_step(learning_rate_fn, weight_decay):
    @jax.jit
    def train_step(state, batch):
        def loss_fn(params):
            logits, new_model_state = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats},
                batch["image"],
                mutable=["batch_stats"],
            )
            one_hot = jax.nn.one_hot(batch["label"], 5)
            loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
            weight_penalty_params = jax.tree_util.tree_leaves(params)
            weight_l2 = sum(jnp.sum(x**2) for x in weight_penalty_params if x.ndim > 1)
            loss = loss + weight_decay * 0.5 * weight_l2
            return loss, (new_model_state, logits)

        step = state.step
        lr = learning_rate_fn(step)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (new_model_state, logits)), grads = grad_fn(state.params)
        new_state = state.apply_gradients(grads=grads, batch_stats=new_model_state["batch_stats"])
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
        return new_state, {"loss": loss, "accuracy": accuracy, "learning_rate": lr}

    return train_step


def make_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(5, 8, 8, 3))
    labels = rng.integers(0, 5, size=n)
    images = rng.normal(size=(n, 8, 8, 3)) + patterns[labels]
    return jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32)


def train(tx_fn, learning_rate_fn, weight_decay, images, labels, num_epochs, batch_size):
    model = TinyResNet()
    variables = model.init(jax.random.key(0), images[:1], train=False)
    tx = tx_fn(variables["params"])
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=tx,
        batch_stats=variables["batch_stats"],
    )
    train_step = make_train_step(learning_rate_fn, weight_decay)
    metrics = []
    for _ in range(num_epochs):
        for i in range(0, len(images), batch_size):
            batch = {"image": images[i : i + batch_size], "label": labels[i : i + batch_size]}
            state, m = train_step(state, batch)
            metrics.append(m)
    metrics = jax.tree.map(lambda *x: jnp.stack(x), *metrics)
    return state, metrics


def main():
    images, labels = make_data()
    batch_size, num_epochs = 32, 4
    steps_per_epoch = len(images) // batch_size
    base_lr = 0.1 * batch_size / 256.0
    out = {}

    # the example's optimizer: Nesterov SGD on warmup + cosine, L2 penalty in the loss
    lr_fn = create_learning_rate_fn(base_lr, steps_per_epoch, warmup_epochs=1.0, num_epochs=4)
    tx_fn = lambda params: optax.sgd(learning_rate=lr_fn, momentum=0.9, nesterov=True)
    state, metrics = train(tx_fn, lr_fn, 1e-4, images, labels, num_epochs, batch_size)
    out["losses"] = metrics["loss"]
    out["learning_rate"] = metrics["learning_rate"]
    out["params"] = state.params
    out["batch_stats"] = state.batch_stats

    # the step-decay recipe with decoupled, masked weight decay
    boundaries = {int(2 * steps_per_epoch): 0.1, int(3 * steps_per_epoch): 0.1}
    step_fn = optax.piecewise_constant_schedule(base_lr, boundaries)
    tx_fn = lambda params: optax.chain(
        optax.add_decayed_weights(1e-3, mask=kernel_mask(params)),
        optax.sgd(learning_rate=step_fn, momentum=0.9, nesterov=True),
    )
    state, metrics = train(tx_fn, step_fn, 0.0, images, labels, num_epochs, batch_size)
    out["step_decay_losses"] = metrics["loss"]
    out["step_decay_lr"] = metrics["learning_rate"]
    out["step_decay_params"] = state.params
    return out
