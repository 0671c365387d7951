"""Twelve optimizers on the same small CNN and the same data: scikit-learn's handwritten digits.

Every optimizer starts from the same initial weights and sees the same minibatches; only the
update rule and its learning rate differ.  Prints a markdown table (final train loss, test
accuracy, wall time, steps/s) and writes ``compare_optimizers.png`` with the loss and accuracy
curves.

    python examples/compare_optimizers.py                  # all twelve, 20 epochs: ~1 minute
    python examples/compare_optimizers.py --quick          # four of them, 2 epochs: seconds
    python examples/compare_optimizers.py --optimizers sgd,adam,lion --epochs 10 --out /tmp/cmp

The optimizers train one after another, each with its own compiled step, so the table's wall
time and steps/s are each optimizer's own.  Compiling a step costs more than two epochs of
training it, so ``--quick`` runs four optimizers (SGD, Momentum, RMSProp, Adam) rather than
twelve.  (Training all of them in one program, the model vmapped over one copy of the weights
per optimizer, compiles once but steps several times slower here: it did not pay.)
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from _cli import parse, parser

# Each method's usual starting point for a small network, adjusted by a few trial runs on this
# model (batch 32, 20 epochs).  Sign-based Lion wants ~10x less than Adam.
LEARNING_RATES: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.03,
    "rmsprop": 1e-3,
    "adadelta": 1.0,
    "adam": 3e-3,
    "adamw": 3e-3,
    "nadam": 3e-3,
    "adamax": 1e-2,
    "amsgrad": 3e-3,
    "lion": 3e-4,
}

BATCH_SIZE = 32
QUICK_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
EPOCHS, QUICK_EPOCHS = 20, 2
FIGSIZE = (11.0, 4.5)


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "compare",
        __doc__.splitlines()[0],
        list(LEARNING_RATES),
        quick_optimizers=QUICK_OPTIMIZERS,
        epochs=f"training epochs (default {EPOCHS}, {QUICK_EPOCHS} with --quick)",
        quick=f"{QUICK_EPOCHS} epochs of {len(QUICK_OPTIMIZERS)} optimizers: seconds (smoke test)",
    )
    return parse(p, argv)


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    LABELS,
    History,
    build,
    colors,
    init_model,
    markdown_table,
    save_figure,
    train,
)
from flax import nnx


class CNN(nnx.Module):
    """Two 3x3 convolutions, 2x2 average pooling and a linear classifier (~10k parameters)."""

    def __init__(self, rngs: nnx.Rngs):
        f32 = dict(dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
        self.conv1 = nnx.Conv(1, 16, (3, 3), **f32)
        self.conv2 = nnx.Conv(16, 32, (3, 3), **f32)
        self.head = nnx.Linear(4 * 4 * 32, 10, **f32)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        return self.head(x.reshape(x.shape[0], -1))


def load_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8x8 digit images as float32 NHWC, standardised per pixel with the training set's
    statistics; a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split

    data = sk_load()
    x = data.images.astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)  # corner pixels are always 0
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def cross_entropy(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = model(x)
    return jnp.mean(
        jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    )


def metrics(model: nnx.Module, data: tuple[np.ndarray, ...]) -> dict[str, jax.Array]:
    """The loss over the whole training set and the accuracy on the test set."""
    x_tr, y_tr, x_te, y_te = data
    test_acc = jnp.mean(jnp.argmax(model(x_te), axis=-1) == y_te)
    return {"train_loss": cross_entropy(model, x_tr, y_tr), "test_acc": test_acc}


def run(
    names: Sequence[str], init, data, epochs: int, seed: int, progress: bool
) -> dict[str, History]:
    """Trains each of ``names`` from ``init`` (the same weights), one after another."""
    x_tr, y_tr = data[:2]
    common = dict(
        epochs=epochs, batch_size=BATCH_SIZE, seed=seed, metrics=metrics, metrics_data=data
    )
    return {
        n: train(
            *init,
            build(n, LEARNING_RATES[n]),
            cross_entropy,
            x_tr,
            y_tr,
            desc=f"{LABELS[n]:>9}",
            progress=progress,
            **common,
        )[1]
        for n in names
    }


def table(results: dict[str, History]) -> str:
    rows = [
        (
            LABELS[n],
            LEARNING_RATES[n],
            h.epochs[-1]["train_loss"],
            f"{100 * h.epochs[-1]['test_acc']:.1f}%",
            f"{h.train_s:.1f}",
            f"{h.steps_per_s:.0f}",
        )
        for n, h in results.items()
    ]
    headers = ["optimizer", "lr", "final train loss", "test accuracy", "wall time (s)", "steps/s"]
    return markdown_table(headers, rows)


def plot(results: dict[str, History], path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=FIGSIZE, layout="constrained")
    for (name, h), c in zip(results.items(), colors(len(results)), strict=True):
        epochs = h.series("epoch")
        ax_loss.plot(epochs, h.series("train_loss"), color=c, label=LABELS[name])
        ax_acc.plot(epochs, 100 * h.series("test_acc"), color=c, label=LABELS[name])
    ax_loss.set(xlabel="epoch", ylabel="train loss (cross-entropy)", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(80, 100))
    ax_loss.set_title("Training loss")
    ax_acc.set_title("Test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(loc="lower right", ncol=2, fontsize=8)
    fig.suptitle("gradtx optimizers: small CNN on scikit-learn digits")
    save_figure(fig, path)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> dict[str, Any]:
    """Runs the comparison; returns ``{"results": {name: History}, "table": str, "png": Path}``."""
    args = arguments(argv)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    data = load_digits(args.seed)
    init = init_model(lambda: CNN(nnx.Rngs(args.seed)))  # every optimizer starts from these

    results = run(args.optimizers, init, data, epochs, args.seed, not args.no_progress)
    text = table(results)
    n_train, n_test = len(data[0]), len(data[2])
    print(f"\n{n_train} train / {n_test} test digits, {epochs} epochs, batch {BATCH_SIZE}")
    print(text)
    png = args.out / "compare_optimizers.png"
    plot(results, png)
    print(f"wrote {png}")
    return {"results": results, "table": text, "png": png}


if __name__ == "__main__":
    main(ARGS)
