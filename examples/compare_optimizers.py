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
from _common import (
    LABELS,
    History,
    build,
    colors,
    init_model,
    load_digits,
    markdown_table,
    save_figure,
    train_each,
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


def run(names: Sequence[str], init, data, epochs: int, seed: int, progress: bool):
    """Trains each of ``names`` from ``init`` (the same weights), one after another."""
    return train_each(
        names, lambda n: build(n, LEARNING_RATES[n]), LABELS, init, data,
        epochs=epochs, batch_size=BATCH_SIZE, seed=seed, progress=progress,
    )  # fmt: skip


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
    data = load_digits(args.seed, images=True)
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
