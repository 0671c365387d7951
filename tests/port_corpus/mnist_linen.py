"""Flax's linen MNIST example (examples/mnist/train.py), shrunk: a small CNN in a
``TrainState``, ``optax.sgd(learning_rate, momentum)``, ``optax.softmax_cross_entropy`` on one-hot
labels, a jitted ``apply_model`` returning the gradients and ``state.apply_gradients``.

The data are synthetic 8x8 "digits": noise plus a class-dependent pattern.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=4, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(features=16)(x)
        x = nn.relu(x)
        x = nn.Dense(features=10)(x)
        return x


@jax.jit
def apply_model(state, images, labels):
    """Computes gradients, loss and accuracy for a single batch."""

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, images)
        one_hot = jax.nn.one_hot(labels, 10)
        loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
        return loss, logits

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return grads, loss, accuracy


@jax.jit
def update_model(state, grads):
    return state.apply_gradients(grads=grads)


def get_datasets(n=256, seed=0):
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(10, 8, 8, 1))
    labels = rng.integers(0, 10, size=n)
    images = 0.5 * rng.normal(size=(n, 8, 8, 1)) + patterns[labels]
    return jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32)


def create_train_state(rng, learning_rate, momentum):
    cnn = CNN()
    params = cnn.init(rng, jnp.ones([1, 8, 8, 1]))["params"]
    tx = optax.sgd(learning_rate, momentum)
    return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)


def train_epoch(state, images, labels, batch_size, rng):
    steps_per_epoch = len(images) // batch_size
    perms = jax.random.permutation(rng, len(images))
    perms = perms[: steps_per_epoch * batch_size].reshape((steps_per_epoch, batch_size))
    epoch_loss, epoch_accuracy = [], []
    for perm in perms:
        grads, loss, accuracy = apply_model(state, images[perm], labels[perm])
        state = update_model(state, grads)
        epoch_loss.append(loss)
        epoch_accuracy.append(accuracy)
    return state, epoch_loss, epoch_accuracy


def main():
    images, labels = get_datasets()
    rng = jax.random.key(0)
    rng, init_rng = jax.random.split(rng)
    state = create_train_state(init_rng, learning_rate=0.05, momentum=0.9)
    losses, accuracies = [], []
    for _ in range(3):
        rng, input_rng = jax.random.split(rng)
        state, loss, acc = train_epoch(state, images, labels, batch_size=32, rng=input_rng)
        losses += loss
        accuracies += acc
    return {
        "losses": jnp.stack(losses),
        "accuracy": jnp.stack(accuracies),
        "params": state.params,
        "step": state.step,
    }
