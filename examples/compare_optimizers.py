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
    compare_on_digits,
    save_figure,
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
    results, text = compare_on_digits(
        args.optimizers, lambda: CNN(nnx.Rngs(args.seed)),
        lambda n: build(n, LEARNING_RATES[n]), LABELS, LEARNING_RATES,
        images=True, epochs=epochs, batch_size=BATCH_SIZE, seed=args.seed,
        progress=not args.no_progress,
        timing=[("wall time (s)", lambda h: f"{h.train_s:.1f}"),
                ("steps/s", lambda h: f"{h.steps_per_s:.0f}")],
    )  # fmt: skip
    png = args.out / "compare_optimizers.png"
    plot(results, png)
    print(f"wrote {png}")
    return {"results": results, "table": text, "png": png}


if __name__ == "__main__":
    main(ARGS)
