"""Data-parallel training of a small MLP on scikit-learn's digits, on 8 simulated CPU devices.

Prints the optimizer state each device holds under the three layouts of ``gradtx.parallel``
(replicated, ZeRO-1, FSDP), trains with the chosen layout and reports the test accuracy; writes
``summary.json`` and ``data_parallel.png`` (loss curves; per-device state bytes per layout)::

    python examples/data_parallel.py              # ZeRO-1, clip + AdamW, 300 steps
    python examples/data_parallel.py --quick      # 60 steps, writes ./out/quick/data_parallel/
    python examples/data_parallel.py --layout fsdp --optimizers adamw,momentum --out /tmp/dp

The device count is simulated with ``XLA_FLAGS``, set here before JAX is imported; if JAX was
already imported with fewer devices, the mesh uses what is there.
"""

# ruff: noqa: E402  (the arguments are parsed before the heavy imports: an instant --help)
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from _cli import parse, parser

LAYOUT_NAMES = ("replicated", "zero1", "fsdp")
# name -> the learning rate it trains with unless --lr is given
LEARNING_RATES = {"adamw": 3e-3, "adam": 3e-3, "momentum": 0.03, "sgd": 0.1}
STEPS, QUICK_STEPS = 300, 60


def arguments(argv: Sequence[str] | argparse.Namespace | None) -> argparse.Namespace:
    p = parser(
        "data_parallel",
        __doc__.splitlines()[0],
        list(LEARNING_RATES),
        default_optimizers=["adamw"],
        epochs=f"training steps (default {STEPS}, {QUICK_STEPS} with --quick)",
        quick=f"{QUICK_STEPS} steps: seconds (smoke test)",
    )
    p.add_argument("--steps", dest="epochs", type=int, help=argparse.SUPPRESS)  # older spelling
    p.add_argument("--layout", choices=LAYOUT_NAMES, default="zero1")
    p.add_argument("--batch", type=int, default=128, help="global batch (split over devices)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate for every optimizer (default: "
        + ", ".join(f"{k} {v:g}" for k, v in LEARNING_RATES.items())
        + "; adamw is clip_by_global_norm(1) + adamw(weight_decay=1e-4))",
    )
    return parse(p, argv)


if __name__ == "__main__":
    ARGS = arguments(None)  # --help and bad options answer here, before JAX loads

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType

import gradtx
from gradtx import parallel

LAYOUTS = {
    "replicated": parallel.replicated_layout,
    "zero1": parallel.zero1_layout,
    "fsdp": parallel.fsdp_layout,
}
DPI, FIGSIZE = 100, (10.0, 4.0)


def make_tx(name: str, lr: float) -> gradtx.GradientTransformation:
    if name == "adamw":
        return gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(lr, weight_decay=1e-4))
    if name == "momentum":
        return gradtx.sgd(lr, momentum=0.9)
    return getattr(gradtx, name)(lr)


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> dict:
    """``{"w0", "b0", "w1", ...}``: He-initialised weights ``(fan_in, fan_out)``, zero biases."""
    params = {}
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = jax.random.normal(k, (n_in, n_out)) * np.sqrt(2.0 / n_in)
        params[f"b{i}"] = jnp.zeros(n_out)
    return params


def logits(params: dict, x: jax.Array) -> jax.Array:
    n = len(params) // 2
    for i in range(n):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < n - 1:
            x = jax.nn.relu(x)
    return x


def loss_fn(params: dict, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Mean softmax cross-entropy of the batch."""
    x, y = batch
    logp = jax.nn.log_softmax(logits(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def accuracy(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(np.asarray(logits(params, x)), axis=1) == y))


def state_bytes(tx: gradtx.GradientTransformation, params: dict, mesh) -> dict[str, int]:
    """The largest per-device optimizer-state size (bytes) under each layout."""
    out = {}
    for name, make in LAYOUTS.items():
        layout = make(tx, params, mesh)
        placed = jax.device_put(jax.tree.map(np.array, params), layout.params)
        state = parallel.sharded_init(tx, layout)(placed)
        out[name] = max(parallel.bytes_per_device(state).values())
    return out


def train(tx, params: dict, layout, data, steps: int, batch: int, seed: int) -> tuple[dict, list]:
    """``steps`` sharded steps on minibatches drawn with ``seed``: (host params, losses)."""
    x_tr, y_tr = data
    p = jax.device_put(jax.tree.map(np.array, params), layout.params)
    state = parallel.sharded_init(tx, layout)(p)
    step = parallel.sharded_step(loss_fn, tx, layout)
    rng = np.random.default_rng(seed)
    losses = []
    for i in range(steps):
        idx = rng.choice(len(x_tr), batch, replace=False)
        p, state, loss = step(p, state, (x_tr[idx], y_tr[idx]))
        losses.append(loss)
        if i % 50 == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.4f}")
    return jax.tree.map(np.asarray, p), [float(v) for v in jax.device_get(losses)]


def plot(summary: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # write files only, never open a window
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=FIGSIZE, layout="constrained")
    for name, run in summary["runs"].items():
        ax.plot(run["losses"], lw=1.0, label=f"{name} (test acc {run['test_accuracy']:.3f})")
    ax.set(xlabel="step", ylabel="minibatch loss", yscale="log")
    ax.set_title(f"{summary['devices']} devices, {summary['layout']} layout")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    mem = summary["state_bytes_per_device"]
    bars = bx.bar(list(mem), [b / 1024 for b in mem.values()], color="tab:blue")
    bx.bar_label(bars, fmt="%.1f", fontsize=8)
    bx.set(ylabel="KiB per device", title=f"optimizer state per device ({summary['optimizer']})")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> dict:
    """Runs the example; returns the summary also written to ``summary.json``: the device count,
    the layout, per-device state bytes under each layout and the final loss and test accuracy
    (of the first optimizer; ``runs`` holds every optimizer's)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    args = arguments(argv)
    steps = args.epochs or (QUICK_STEPS if args.quick else STEPS)
    n_dev = jax.device_count()
    mesh = jax.make_mesh((n_dev,), ("data",), axis_types=(AxisType.Auto,))

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target.astype(np.int32), test_size=0.25, random_state=args.seed
    )
    params = init_mlp(jax.random.PRNGKey(args.seed), (64, 128, 10))
    txs = {n: make_tx(n, args.lr or LEARNING_RATES[n]) for n in args.optimizers}
    first = args.optimizers[0]

    memory = state_bytes(txs[first], params, mesh)
    print(f"{n_dev} devices; optimizer state per device (bytes, {first}):")
    for name, b in memory.items():
        print(f"  {name:>10}: {b:8d}")

    batch = args.batch - args.batch % n_dev
    runs = {}
    for name, tx in txs.items():
        print(f"{name}, {args.layout} layout:")
        layout = LAYOUTS[args.layout](tx, params, mesh)
        host, losses = train(tx, params, layout, (x_tr, y_tr), steps, batch, args.seed)
        runs[name] = {"losses": losses, "test_accuracy": accuracy(host, x_te, y_te)}
        print(f"test accuracy ({name}, {args.layout}): {runs[name]['test_accuracy']:.3f}")

    summary = {
        "devices": n_dev,
        "layout": args.layout,
        "steps": steps,
        "optimizer": first,
        "state_bytes_per_device": memory,
        "final_loss": runs[first]["losses"][-1],
        "test_accuracy": runs[first]["test_accuracy"],
        "runs": runs,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    png = args.out / "data_parallel.png"
    plot(summary, png)
    print(f"wrote {args.out / 'summary.json'} and {png}")
    return summary | {"png": png}


if __name__ == "__main__":
    main(ARGS)
