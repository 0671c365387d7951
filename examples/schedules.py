"""Every gradtx schedule over one training run, in one figure.

Each panel is a schedule evaluated at steps 0..N-1 (N = 1,000; 200 with ``--quick``), all of them
in one jitted call.  The onecycle panels also show the matching momentum cycle on a second axis.

    python examples/schedules.py                 # writes ./out/schedules/schedules.png
    python examples/schedules.py --quick         # writes ./out/quick/schedules/schedules.png
    python examples/schedules.py --epochs 5000 --out /tmp/sched
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _cli, also when loaded by file path
from _cli import parse, parser

STEPS, QUICK_STEPS = 1000, 200


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "schedules",
        __doc__.splitlines()[0],
        ["none"],
        epochs=f"steps N each schedule is drawn over (default {STEPS}, {QUICK_STEPS} with --quick)",
        quick=f"{QUICK_STEPS} steps instead of {STEPS}",
        ignored={
            "--optimizers": "this example draws schedules; no optimizer runs",
            "--seed": "schedules are deterministic",
        },
    )
    return parse(p, argv)


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from gradtx import schedules as S

matplotlib.use("Agg")  # write files only, never open a window

import matplotlib.pyplot as plt

DPI = 100


def catalogue(n: int) -> dict[str, Callable[[jax.Array], jax.Array]]:
    """One example of each schedule, with its phase points placed relative to ``n`` steps, and
    the momentum cycles (named ``"momentum <panel>"``)."""
    q = n // 4
    cycles = {f"momentum {k}": f for k, f in momenta(n).items()}
    return cycles | {
        "constant_schedule(1.0)": S.constant_schedule(1.0),
        "piecewise_constant (multi-step)": S.piecewise_constant_schedule(
            1.0, {q: 0.3, 2 * q: 0.3, 3 * q: 0.3}
        ),
        "exponential_decay": S.exponential_decay(1.0, n // 10, 0.7),
        "exponential_decay(staircase)": S.exponential_decay(1.0, n // 10, 0.7, staircase=True),
        "inverse_time_decay": S.inverse_time_decay(1.0, n // 20, 0.5),
        "polynomial_schedule(power=2)": S.polynomial_schedule(1.0, 0.05, 2, 3 * q, q // 2),
        "linear_schedule": S.linear_schedule(0.1, 1.0, 2 * q, q),
        "cosine_decay(alpha=0.1)": S.cosine_decay_schedule(1.0, 3 * q, alpha=0.1),
        "warmup_cosine_decay": S.warmup_cosine_decay_schedule(0.0, 1.0, n // 10, n, 0.05),
        "warmup_exponential_decay": S.warmup_exponential_decay_schedule(
            0.0, 1.0, n // 10, n // 10, 0.6, end_value=0.05
        ),
        "cyclic triangular": S.cyclic_schedule(0.1, 1.0, n // 10),
        "cyclic triangular2": S.cyclic_schedule(0.1, 1.0, n // 10, mode="triangular2"),
        "cyclic exp_range": S.cyclic_schedule(
            0.1, 1.0, n // 10, mode="exp_range", gamma=0.1 ** (1 / n)
        ),
        "cosine_warm_restarts(t_mult=2)": S.cosine_warm_restarts_schedule(
            1.0, n // 15, t_mult=2, end_value=0.02, peak_decay=0.8
        ),
        "sgdr_schedule": S.sgdr_schedule(
            [
                {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": n // 20, "decay_steps": q},
                {"init_value": 0.0, "peak_value": 0.6, "warmup_steps": n // 20, "decay_steps": q},
                {"init_value": 0.0, "peak_value": 0.3, "warmup_steps": n // 20, "decay_steps": q},
                {"init_value": 0.0, "peak_value": 0.1, "warmup_steps": n // 20, "decay_steps": q},
            ]
        ),
        "cosine_onecycle (+ momentum)": S.cosine_onecycle_schedule(n, 1.0),
        "linear_onecycle (+ momentum)": S.linear_onecycle_schedule(n, 1.0),
        "join(linear, constant, cosine)": S.join_schedules(
            [
                S.linear_schedule(0.0, 1.0, q),
                S.constant_schedule(1.0),
                S.cosine_decay_schedule(1.0, q),
            ],
            [q, 2 * q],
        ),
    }


def momenta(n: int) -> dict[str, Callable[[jax.Array], jax.Array]]:
    """The momentum cycles drawn next to the onecycle learning rates."""
    return {
        "cosine_onecycle (+ momentum)": S.onecycle_momentum(n),
        "linear_onecycle (+ momentum)": S.onecycle_momentum(n, anneal_strategy="linear"),
    }


def evaluate(fns: dict[str, Callable], n: int) -> dict[str, np.ndarray]:
    """All schedules at steps 0..n-1, compiled once."""
    steps = jnp.arange(n, dtype=jnp.int32)
    values = jax.jit(lambda t: {k: jax.vmap(f)(t) for k, f in fns.items()})(steps)
    return {k: np.asarray(values[k]) for k in fns}  # catalogue order (jit sorts dict keys)


def plot(lrs: dict[str, np.ndarray], moms: dict[str, np.ndarray], path: Path) -> None:
    cols = 4
    rows = math.ceil(len(lrs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), dpi=DPI, squeeze=False)
    for ax, (name, values) in zip(axes.flat, lrs.items(), strict=False):
        ax.plot(values, color="tab:blue", lw=1.5)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if name in moms:
            twin = ax.twinx()
            twin.plot(moms[name], color="tab:orange", lw=1, ls="--")
            twin.tick_params(labelsize=7, colors="tab:orange")
    for ax in list(axes.flat)[len(lrs) :]:
        ax.axis("off")
    fig.suptitle("gradtx schedules: value vs step (orange dashed: momentum)")
    fig.subplots_adjust(left=0.04, right=0.96, bottom=0.04, top=0.93, wspace=0.3, hspace=0.45)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> Path:
    """Draws every schedule; returns the figure's path."""
    args = arguments(argv)
    n = args.epochs or (QUICK_STEPS if args.quick else STEPS)
    lrs = evaluate(catalogue(n), n)
    moms = {name: lrs.pop(f"momentum {name}") for name in momenta(n)}
    path = args.out / "schedules.png"
    plot(lrs, moms, path)
    for name, values in lrs.items():
        print(f"{name:34s} first {values[0]:.4g}  min {values.min():.4g}  last {values[-1]:.4g}")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main(ARGS)
