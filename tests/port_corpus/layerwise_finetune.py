"""Transfer learning with frozen layers, as in Flax's guide "Transfer learning" and its ports:
labels per parameter from ``flax.traverse_util.path_aware_map``, then
``optax.multi_transform({'trainable': optax.adam(lr), 'frozen': optax.set_to_zero()}, labels)``
in a ``TrainState``; a second stage unfreezes the last backbone layer at a smaller rate with
``optax.multi_transform`` on three groups (``optax.sgd``, ``optax.adamw``, frozen).  float64.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from flax.training import train_state

jax.config.update("jax_enable_x64", True)

F64 = dict(dtype=jnp.float64, param_dtype=jnp.float64)


class Backbone(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(16, name="layer1", **F64)(x))
        return nn.relu(nn.Dense(16, name="layer2", **F64)(x))


class Classifier(nn.Module):
    num_classes: int = 3

    @nn.compact
    def __call__(self, x):
        x = Backbone(name="backbone")(x)
        return nn.Dense(self.num_classes, name="head", **F64)(x)


def make_data(n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5))
    y = np.argmax(x[:, :3] + 0.5 * x[:, 3:4], -1)
    return jnp.asarray(x), jnp.asarray(y)


@jax.jit
def train_step(state, x, y):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


def fit(state, x, y, epochs):
    losses = []
    for _ in range(epochs):
        for i in range(0, len(x), 32):
            state, loss = train_step(state, x[i : i + 32], y[i : i + 32])
            losses.append(loss)
    return state, losses


def main():
    x, y = make_data()
    model = Classifier()
    params = model.init(jax.random.key(0), x[:1])["params"]  # "pretrained" backbone

    partition_optimizers = {"trainable": optax.adam(5e-3), "frozen": optax.set_to_zero()}
    param_partitions = traverse_util.path_aware_map(
        lambda path, v: "frozen" if "backbone" in path else "trainable", params
    )
    tx = optax.multi_transform(partition_optimizers, param_partitions)
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    state, losses = fit(state, x, y, epochs=3)
    frozen_moved = jax.tree.map(
        lambda a, b: jnp.max(jnp.abs(a - b)), state.params["backbone"], params["backbone"]
    )

    # stage 2: unfreeze the top backbone layer with a smaller rate
    def label(path, v):
        if path[0] == "head":
            return "head"
        return "top" if path[1] == "layer2" else "frozen"

    tx = optax.multi_transform(
        {
            "head": optax.sgd(0.05, momentum=0.9),
            "top": optax.adamw(1e-3, weight_decay=1e-2),
            "frozen": optax.set_to_zero(),
        },
        traverse_util.path_aware_map(label, state.params),
    )
    state = train_state.TrainState.create(apply_fn=model.apply, params=state.params, tx=tx)
    state, more = fit(state, x, y, epochs=3)
    return {
        "losses": jnp.stack(losses + more),
        "params": state.params,
        "frozen_moved_in_stage_1": frozen_moved,
    }
