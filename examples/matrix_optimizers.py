"""Adam against the matrix optimizers (Muon, Shampoo, SOAP, PSGD-Kron) on one small MLP and the
same data: scikit-learn's handwritten digits, flattened to 64 inputs.

Every optimizer starts from the same initial weights and sees the same minibatches; only the
update rule and its learning rate differ.  Prints a markdown table (final train loss, test
accuracy, step time, compile time) and writes ``matrix_optimizers.png``: the training loss
against steps and against wall time (each step at the optimizer's own measured mean step time,
so a method that is better per step but slower per step is seen as such).

    python examples/matrix_optimizers.py                 # all five, 10 epochs
    python examples/matrix_optimizers.py --quick         # Adam and PSGD, 1 epoch: seconds
    python examples/matrix_optimizers.py --optimizers adam,muon --epochs 3 --out /tmp/m
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from _cli import parse, parser

# Constant learning rates, each the best final train loss of a 3-4 point grid over 10 epochs
# (adam 1e-3/3e-3/1e-2; muon 0.01/0.02/0.05/0.1; shampoo 3e-4/1e-3/3e-3; soap and psgd
# 1e-3/3e-3/1e-2).  Shampoo at >= 1e-3 turns unstable late in training at a constant rate (its
# loss climbs back from ~1e-3 to 0.1-1): a decaying schedule or a lower rate fixes it.  The matrix
# methods' own defaults otherwise (Shampoo grafted onto Adam's step sizes, preconditioning from
# step 1, roots every 10 steps).
LEARNING_RATES: dict[str, float] = {
    "adam": 3e-3,
    "muon": 0.01,
    "shampoo": 3e-4,
    "soap": 3e-3,
    "psgd": 1e-3,
}
LABELS = {"adam": "Adam", "muon": "Muon", "shampoo": "Shampoo", "soap": "SOAP", "psgd": "PSGD-Kron"}
BATCH_SIZE = 32
QUICK_OPTIMIZERS = ("adam", "psgd")
EPOCHS, QUICK_EPOCHS = 10, 1
FIGSIZE = (11.0, 4.5)


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "matrix_optimizers",
        __doc__.splitlines()[0],
        list(LEARNING_RATES),
        quick_optimizers=QUICK_OPTIMIZERS,
        epochs=f"training epochs (default {EPOCHS}, {QUICK_EPOCHS} with --quick)",
        quick=f"{QUICK_EPOCHS} epoch of {len(QUICK_OPTIMIZERS)} optimizers: seconds (smoke test)",
    )
    return parse(p, argv)


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

import os

# jax's CPU triangular solves and eigendecompositions run on scipy's OpenBLAS, whose threads fight
# XLA's when the cores are oversubscribed (PSGD's 64x64 solves: ~8 ms each instead of ~0.02 ms)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    History,
    colors,
    compare_on_digits,
    save_figure,
)
from flax import nnx

import gradtx


def build(name: str, lr: float) -> gradtx.GradientTransformation:
    if name == "adam":
        return gradtx.adam(lr)
    if name == "muon":
        return gradtx.contrib.muon(lr)
    if name == "shampoo":
        return gradtx.shampoo(lr, graft_type="adam", start_preconditioning_step=1,
                              preconditioning_compute_steps=10)  # fmt: skip
    if name == "soap":
        return gradtx.soap(lr)
    return gradtx.psgd_kron(lr)


class MLP(nnx.Module):
    """64 -> 128 -> 128 -> 10 with GELU (~26k parameters: three matrices and three biases)."""

    def __init__(self, rngs: nnx.Rngs):
        f32 = dict(dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
        self.l1 = nnx.Linear(64, 128, **f32)
        self.l2 = nnx.Linear(128, 128, **f32)
        self.l3 = nnx.Linear(128, 10, **f32)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.gelu(self.l1(x.reshape(x.shape[0], -1)))
        return self.l3(jax.nn.gelu(self.l2(x)))


def _smooth(x: np.ndarray, k: int = 10) -> np.ndarray:
    k = max(1, min(k, len(x)))
    return np.convolve(x, np.ones(k) / k, mode="valid")


def plot(results: dict[str, History], path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=FIGSIZE, layout="constrained")
    for (name, h), c in zip(results.items(), colors(len(results)), strict=True):
        loss = _smooth(np.asarray(h.step_loss))
        steps = np.arange(1, len(loss) + 1)
        per_step = h.train_s / max(h.steps, 1)
        ax_s.plot(steps, loss, color=c, label=LABELS[name])
        ax_t.plot(steps * per_step, loss, color=c, label=LABELS[name])
    ax_s.set(xlabel="step", ylabel="minibatch loss (10-step mean)", yscale="log")
    ax_t.set(xlabel="wall time (s, compile excluded)", ylabel="minibatch loss", yscale="log")
    ax_s.set_title("Loss against steps")
    ax_t.set_title("Loss against wall time")
    for ax in (ax_s, ax_t):
        ax.grid(alpha=0.3)
    ax_s.legend(loc="upper right", fontsize=8)
    fig.suptitle("gradtx matrix optimizers: MLP on scikit-learn digits")
    save_figure(fig, path)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> dict[str, Any]:
    """Runs the comparison; returns ``{"results": {name: History}, "table": str, "png": Path}``."""
    args = arguments(argv)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    results, text = compare_on_digits(
        args.optimizers, lambda: MLP(nnx.Rngs(args.seed)),
        lambda n: build(n, LEARNING_RATES[n]), LABELS, LEARNING_RATES,
        images=False, epochs=epochs, batch_size=BATCH_SIZE, seed=args.seed,
        progress=not args.no_progress,
        timing=[("ms/step", lambda h: f"{1e3 * h.train_s / max(h.steps, 1):.2f}"),
                ("compile (s)", lambda h: f"{h.compile_s:.1f}")],
    )  # fmt: skip
    png = args.out / "matrix_optimizers.png"
    plot(results, png)
    print(f"wrote {png}")
    return {"results": results, "table": text, "png": png}


if __name__ == "__main__":
    main(ARGS)
