"""A learning-rate sweep in one compiled step: 8 learning rates, 8 models, one ``jax.vmap``.

The swept optimizer is Adam unless ``--optimizers`` names another (one name).
``inject_hyperparams(gradtx.adam)`` keeps the learning rate in the optimizer state, so a batch of
states holding different rates, vmapped together with a batch of parameter copies, trains every
member of the sweep at once.  The problem is a small tanh MLP fitted to a noisy 1-D function in
plain JAX.  Prints the final loss per learning rate and writes ``lr_sweep.png`` (loss curves).

    python examples/lr_sweep.py                  # 2,000 steps, writes ./out/lr_sweep/lr_sweep.png
    python examples/lr_sweep.py --quick          # 200 steps, writes ./out/quick/lr_sweep/
    python examples/lr_sweep.py --optimizers lion --epochs 500 --out /tmp/sweep
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _cli, also when loaded by file path
from _cli import parse, parser

# The optimizers whose learning rate can be swept: name -> (factory, label, other arguments)
SWEEPABLE = {
    "adam": ("adam", "Adam", {}),
    "adamw": ("adamw", "AdamW", {"weight_decay": 1e-2}),
    "sgd": ("sgd", "SGD", {}),
    "momentum": ("sgd", "Momentum", {"momentum": 0.9}),
    "rmsprop": ("rmsprop", "RMSProp", {}),
    "lion": ("lion", "Lion", {}),
}
STEPS, QUICK_STEPS = 2000, 200


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "lr_sweep",
        __doc__.splitlines()[0],
        list(SWEEPABLE),
        default_optimizers=["adam"],
        epochs=f"training steps (full batch; default {STEPS}, {QUICK_STEPS} with --quick)",
        quick=f"{QUICK_STEPS} steps instead of {STEPS}",
    )
    args = parse(p, argv)
    if len(args.optimizers) != 1:
        p.error("lr_sweep sweeps one optimizer's learning rate: give one name to --optimizers")
    return args


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import gradtx
from gradtx.hyperparams import inject_hyperparams

matplotlib.use("Agg")  # write files only, never open a window

import matplotlib.pyplot as plt

DPI = 100
LEARNING_RATES = np.logspace(-4, 0, 8)  # 1e-4 ... 1


def make_data(rng: np.random.Generator, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``y = sin(3x) + x/2 + noise`` on ``x in [-2, 2]``."""
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    y = np.sin(3 * x) + 0.5 * x + 0.05 * rng.normal(size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def init_mlp(
    rng: np.random.Generator, sizes: Sequence[int] = (1, 32, 32, 1)
) -> list[dict[str, jax.Array]]:
    """Dense layers with ``N(0, 1/fan_in)`` weights and zero biases (float32)."""
    return [
        {
            "w": jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(m), jnp.float32),
            "b": jnp.zeros(n, jnp.float32),
        }
        for m, n in pairwise(sizes)
    ]


def mse(params: list[dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    out = h @ params[-1]["w"] + params[-1]["b"]
    return jnp.mean((out - y) ** 2)


def sweep(
    steps: int, learning_rates: np.ndarray, seed: int = 0, optimizer: str = "adam"
) -> dict[str, Any]:
    """Trains one model per learning rate, all from the same initial weights, in one program."""
    rng = np.random.default_rng(seed)
    x, y = make_data(rng)
    params = init_mlp(rng)
    factory, _, kwargs = SWEEPABLE[optimizer]
    tx = inject_hyperparams(getattr(gradtx, factory))(learning_rate=1e-3, **kwargs)

    def train(lr):
        # same initial weights for every member; only the stored learning rate differs
        p, state = params, gradtx.tree_set(tx.init(params), learning_rate=lr)

        def step(carry, _):
            p, state = carry
            loss, g = jax.value_and_grad(mse)(p, x, y)
            u, state = tx.update(g, state, p)
            return (gradtx.apply_updates(p, u), state), loss

        (p, state), losses = jax.lax.scan(step, (p, state), None, length=steps)
        return losses, mse(p, x, y), gradtx.tree_get(state, "learning_rate")

    # one compiled program: vmap over the learning rates, scan over the steps
    losses, final, lrs_in_state = jax.jit(jax.vmap(train))(jnp.asarray(learning_rates))
    return {
        "learning_rates": np.asarray(lrs_in_state),
        "losses": np.asarray(losses),  # (members, steps), the loss before each step
        "final_loss": np.asarray(final),
        "initial_loss": float(losses[0, 0]),
        "optimizer": optimizer,
    }


def plot(result: dict[str, Any], path) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), dpi=DPI)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(result["learning_rates"])))
    for lr, curve, c in zip(result["learning_rates"], result["losses"], colors, strict=True):
        ax.plot(np.arange(1, curve.size + 1), curve, color=c, lw=1.2, label=f"lr={lr:.0e}")
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="train MSE", title="loss curves")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    bx.plot(result["learning_rates"], result["final_loss"], "o-")
    bx.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final train MSE")
    bx.set_title(f"final loss vs learning rate ({SWEEPABLE[result['optimizer']][1]})")
    bx.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> dict[str, Any]:
    """Runs the sweep; returns ``sweep``'s dict (learning rates, loss curves, final losses)."""
    args = arguments(argv)
    steps = args.epochs or (QUICK_STEPS if args.quick else STEPS)
    result = sweep(steps, LEARNING_RATES, args.seed, args.optimizers[0])
    path = args.out / "lr_sweep.png"
    plot(result, path)
    print(f"initial loss {result['initial_loss']:.4f}")
    for lr, loss in zip(result["learning_rates"], result["final_loss"], strict=True):
        print(f"lr {lr:8.1e}  final loss {loss:.5f}")
    best = result["learning_rates"][np.nanargmin(result["final_loss"])]
    print(f"best lr {best:.1e}; wrote {path}")
    return result


if __name__ == "__main__":
    main(ARGS)
