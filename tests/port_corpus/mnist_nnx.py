"""Flax's NNX MNIST tutorial, shrunk: an ``nnx.Module`` CNN, ``nnx.Optimizer(model,
optax.adamw(learning_rate, momentum), wrt=nnx.Param)``, ``nnx.MultiMetric`` for loss and
accuracy, ``optax.softmax_cross_entropy_with_integer_labels`` and ``nnx.jit`` train/eval steps.

The data are synthetic 8x8 "digits": noise plus a class-dependent pattern.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class CNN(nnx.Module):
    """A simple CNN model."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
        self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
        self.linear1 = nnx.Linear(64, 16, rngs=rngs)
        self.linear2 = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        x = self.avg_pool(nnx.relu(self.conv1(x)))
        x = x.reshape(x.shape[0], -1)  # flatten
        x = nnx.relu(self.linear1(x))
        x = self.linear2(x)
        return x


def loss_fn(model: CNN, batch):
    logits = model(batch["image"])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits=logits, labels=batch["label"]
    ).mean()
    return loss, logits


@nnx.jit
def train_step(model: CNN, optimizer: nnx.Optimizer, metrics: nnx.MultiMetric, batch):
    """Train for a single step."""
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(model, batch)
    metrics.update(loss=loss, logits=logits, labels=batch["label"])
    optimizer.update(model, grads)


@nnx.jit
def eval_step(model: CNN, metrics: nnx.MultiMetric, batch):
    loss, logits = loss_fn(model, batch)
    metrics.update(loss=loss, logits=logits, labels=batch["label"])


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(123).normal(size=(10, 8, 8, 1))
    labels = rng.integers(0, 10, size=n)
    images = 0.6 * rng.normal(size=(n, 8, 8, 1)) + patterns[labels]
    return {"image": jnp.asarray(images, jnp.float32), "label": jnp.asarray(labels, jnp.int32)}


def main():
    train_ds, test_ds = make_data(192, 0), make_data(64, 1)
    model = CNN(rngs=nnx.Rngs(0))
    learning_rate, momentum = 0.005, 0.9
    optimizer = nnx.Optimizer(model, optax.adamw(learning_rate, momentum), wrt=nnx.Param)
    metrics = nnx.MultiMetric(
        accuracy=nnx.metrics.Accuracy(),
        loss=nnx.metrics.Average("loss"),
    )
    history = {"losses": [], "accuracy": [], "test_loss": [], "test_accuracy": []}
    batch_size = 32
    for epoch in range(3):
        for i in range(0, len(train_ds["label"]), batch_size):
            batch = jax.tree.map(lambda x, i=i: x[i : i + batch_size], train_ds)
            train_step(model, optimizer, metrics, batch)
        for metric, value in metrics.compute().items():
            history[{"loss": "losses", "accuracy": "accuracy"}[metric]].append(value)
        metrics.reset()
        eval_step(model, metrics, test_ds)
        for metric, value in metrics.compute().items():
            history[f"test_{metric}"].append(value)
        metrics.reset()
        del epoch
    history = {k: jnp.stack(v) for k, v in history.items()}
    history["params"] = nnx.state(model, nnx.Param)
    history["step"] = optimizer.step[...]
    return history
