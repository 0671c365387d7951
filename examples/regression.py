"""The classic side-by-side demo: SGD, Momentum, RMSProp and Adam fitting ``y = x^2 + noise``.

1,000 points in [-1, 1], minibatches of 32, a 1-20-1 ReLU network, learning rate 0.01 for all
four.  Writes ``regression.png`` with the per-step minibatch losses.

    python examples/regression.py            # 12 epochs, seconds
    python examples/regression.py --quick    # 2 epochs
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from _cli import parse, parser

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
LEARNING_RATE = 0.01
N_POINTS, NOISE, BATCH_SIZE = 1000, 0.1, 32
EPOCHS, QUICK_EPOCHS = 12, 2
FIGSIZE = (8.0, 4.5)


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "regression",
        __doc__.splitlines()[0],
        OPTIMIZERS,
        epochs=f"training epochs (default {EPOCHS}, {QUICK_EPOCHS} with --quick)",
        quick=f"{QUICK_EPOCHS} epochs: seconds (smoke test)",
    )
    return parse(p, argv)


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

import jax
import jax.numpy as jnp
import numpy as np
from _common import LABELS, History, build, colors, init_model, save_figure, train
from flax import nnx


class Net(nnx.Module):
    """1 -> 20 -> 1 with a ReLU."""

    def __init__(self, rngs: nnx.Rngs):
        f32 = dict(dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
        self.hidden = nnx.Linear(1, 20, **f32)
        self.out = nnx.Linear(20, 1, **f32)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x)))


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, N_POINTS, dtype=np.float32)[:, None]
    y = (x**2 + NOISE * rng.standard_normal(x.shape)).astype(np.float32)
    return x, y


def mse(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model(x) - y) ** 2)


def metrics(model: nnx.Module, data: tuple[np.ndarray, np.ndarray]) -> dict[str, jax.Array]:
    """The loss over all the points."""
    return {"loss": mse(model, *data)}


def plot(results: dict[str, History], path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    for (name, h), c in zip(results.items(), colors(len(results)), strict=True):
        ax.plot(h.step_loss, color=c, lw=1.0, label=LABELS[name])
    ax.set(xlabel="step", ylabel="minibatch loss (MSE)", yscale="log")
    ax.set_title(f"y = x² + noise, 1-20-1 ReLU net, lr {LEARNING_RATE}")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> dict[str, Any]:
    """Runs the demo; returns ``{"results": {name: History}, "png": Path}``.  Each History's
    ``epochs`` holds the full-data loss before training and after every epoch."""
    args = arguments(argv)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    x, y = make_data(args.seed)
    init = init_model(lambda: Net(nnx.Rngs(args.seed)))

    results = {}
    for name in args.optimizers:
        _, results[name] = train(
            *init,
            build(name, LEARNING_RATE),
            mse,
            x,
            y,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            seed=args.seed,
            metrics=metrics,
            metrics_data=(x, y),
            desc=f"{LABELS[name]:>8}",
            progress=not args.no_progress,
        )
    for name, h in results.items():
        print(f"{LABELS[name]:>8}: loss {h.epochs[0]['loss']:.4f} -> {h.epochs[-1]['loss']:.4f}")
    png = args.out / "regression.png"
    plot(results, png)
    print(f"wrote {png}")
    return {"results": results, "png": png}


if __name__ == "__main__":
    main(ARGS)
