"""Optimizer paths on two 2-D test functions, drawn over their contour lines.

* Rosenbrock's long curved valley: plain SGD, near its stability limit, drops into the valley
  with a (damped) zig-zag across its floor, then crawls along it; momentum swings across the valley
  several times before settling; the adaptive methods reach the floor and follow it.
* The saddle ``f(x, y) = x^2 - y^2`` started just off the ridge ``y = 0``: plain SGD's escape
  speed is proportional to the tiny ``y`` gradient, so it slides into the saddle and stays there;
  momentum accumulates that gradient and RMSProp/Adam rescale it to ~lr per step, so they leave.

Writes ``loss_surfaces.png`` (both panels, whole paths) and ``loss_surfaces.gif`` (the same,
animated).  ``optimizer_path`` is the computation, usable on its own.

    python examples/loss_surfaces.py            # seconds
    python examples/loss_surfaces.py --quick    # fewer steps and frames
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from _cli import parse, parser

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
QUICK_FRACTION = 4  # --quick runs 1/4 of the steps
FIGSIZE, GIF_FIGSIZE, GIF_DPI, GIF_FRAMES = (12.0, 5.0), (9.0, 4.0), 60, 40


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "loss_surfaces",
        __doc__.splitlines()[0],
        OPTIMIZERS,
        epochs="steps on every surface (default: each surface's own, 800 on Rosenbrock and 150 "
        f"on the saddle; 1/{QUICK_FRACTION} of those with --quick)",
        quick=f"1/{QUICK_FRACTION} of the steps and GIF frames (smoke test)",
        ignored={"--seed": "the paths are deterministic (fixed starting points, exact gradients)"},
    )
    return parse(p, argv)


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

import jax
import jax.numpy as jnp
import numpy as np
from _common import LABELS, build, colors, save_figure

import gradtx

Fn2D = Callable[[jax.Array], jax.Array]


class Surface(NamedTuple):
    title: str
    fn: Fn2D
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    levels: np.ndarray
    steps: int
    learning_rates: dict[str, float]


def rosenbrock(p: jax.Array) -> jax.Array:
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def saddle(p: jax.Array) -> jax.Array:
    return p[0] ** 2 - p[1] ** 2


# The SGD-family rates sit just inside their stability limits on Rosenbrock (curvature ~1e3
# across the valley); the saddle uses one rate for everyone so only the update rule differs.
SURFACES: dict[str, Surface] = {
    "rosenbrock": Surface(
        "Rosenbrock valley",
        rosenbrock,
        (-1.5, 1.5),
        (-2.0, 2.0),
        (-1.0, 3.0),
        np.logspace(-1, 3.5, 14),
        800,
        {"sgd": 1.8e-3, "momentum": 3e-4, "adagrad": 0.5, "rmsprop": 0.01, "adam": 0.05},
    ),
    "saddle": Surface(
        "saddle x² - y², start (1, 0.001)",
        saddle,
        (1.0, 1e-3),
        (-1.5, 1.5),
        (-1.5, 1.5),
        np.linspace(-2.0, 2.0, 17),
        150,
        {"sgd": 0.01, "momentum": 0.01, "adagrad": 0.01, "rmsprop": 0.01, "adam": 0.01},
    ),
}


def optimizer_path(
    fn: Fn2D, start: Sequence[float], tx: gradtx.GradientTransformation, steps: int
) -> np.ndarray:
    """The ``(steps + 1, 2)`` float32 points ``tx`` visits minimising ``fn`` from ``start``."""

    @jax.jit
    def run(p0):
        def step(carry, _):
            p, state = carry
            updates, state = tx.update(jax.grad(fn)(p), state, p)
            p = gradtx.apply_updates(p, updates)
            return (p, state), p

        _, visited = jax.lax.scan(step, (p0, tx.init(p0)), None, length=steps)
        return jnp.concatenate([p0[None], visited])

    return np.asarray(run(jnp.asarray(start, jnp.float32)))


def all_paths(
    names: Sequence[str], surfaces: Sequence[str], steps_divisor: int = 1, steps: int | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """``{surface: {optimizer: path}}`` with each surface's own learning rates; ``steps``
    (``--epochs``) overrides every surface's own step budget."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in surfaces:
        s = SURFACES[key]
        n_steps = steps or max(1, s.steps // steps_divisor)
        out[key] = {
            n: optimizer_path(s.fn, s.start, build(n, s.learning_rates[n]), n_steps) for n in names
        }
    return out


def _draw_background(ax, s: Surface) -> None:
    xs = np.linspace(*s.xlim, 200)
    ys = np.linspace(*s.ylim, 200)
    grid = np.stack(np.meshgrid(xs, ys))
    z = np.asarray(jax.vmap(jax.vmap(s.fn, 1), 1)(jnp.asarray(grid, jnp.float32)))
    ax.contour(xs, ys, z, levels=s.levels, colors="0.6", linewidths=0.6)
    ax.plot(*s.start, "ko", ms=4)
    ax.set(xlim=s.xlim, ylim=s.ylim, title=s.title, aspect="auto")


def _panels(figsize, surfaces: Sequence[str], names: Sequence[str]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(surfaces), figsize=figsize, layout="constrained", squeeze=False)
    lines = {}
    for ax, key in zip(axes[0], surfaces, strict=True):
        _draw_background(ax, SURFACES[key])
        for n, c in zip(names, colors(len(names)), strict=True):
            (lines[key, n],) = ax.plot([], [], color=c, lw=1.2, label=LABELS[n])
    axes[0][0].legend(loc="lower left", fontsize=8)
    return fig, lines


def plot_png(paths: dict[str, dict[str, np.ndarray]], path) -> None:
    names = list(next(iter(paths.values())))
    fig, lines = _panels(FIGSIZE, list(paths), names)
    for (key, n), line in lines.items():
        line.set_data(*paths[key][n].T)
    save_figure(fig, path)


def plot_gif(paths: dict[str, dict[str, np.ndarray]], path, frames: int) -> None:
    """Both panels animated together; frame ``k`` shows each path up to the same fraction."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    names = list(next(iter(paths.values())))
    fig, lines = _panels(GIF_FIGSIZE, list(paths), names)

    def draw(k):
        for (key, n), line in lines.items():
            p = paths[key][n]
            line.set_data(*p[: 1 + (len(p) - 1) * (k + 1) // frames].T)
        return list(lines.values())

    FuncAnimation(fig, draw, frames=frames, blit=False).save(
        path, writer=PillowWriter(fps=10), dpi=GIF_DPI
    )
    plt.close(fig)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> dict[str, Any]:
    """Computes and draws the paths; returns ``{"paths": {surface: {name: (n, 2) array}},
    "png": Path, "gif": Path}``."""
    args = arguments(argv)
    divisor = QUICK_FRACTION if args.quick else 1
    paths = all_paths(args.optimizers, list(SURFACES), divisor, args.epochs)
    for key, by_name in paths.items():
        ends = ", ".join(
            f"{LABELS[n]} ({q[-1, 0]:.3g}, {q[-1, 1]:.3g})" for n, q in by_name.items()
        )
        print(f"{key}: {ends}")
    png, gif = args.out / "loss_surfaces.png", args.out / "loss_surfaces.gif"
    plot_png(paths, png)
    plot_gif(paths, gif, GIF_FRAMES // divisor)
    print(f"wrote {png} and {gif}")
    return {"paths": paths, "png": png, "gif": gif}


if __name__ == "__main__":
    main(ARGS)
