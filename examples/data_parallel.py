"""Data-parallel training of a small MLP on scikit-learn's digits, on 8 simulated CPU devices.

Prints the optimizer state each device holds under the three layouts of ``gradtx.parallel``
(replicated, ZeRO-1, FSDP), trains with the chosen layout and reports the test accuracy::

    python examples/data_parallel.py              # ZeRO-1, 300 steps
    python examples/data_parallel.py --layout fsdp --quick --out /tmp/dp

The device count is simulated with ``XLA_FLAGS``, set here before JAX is imported; if JAX was
already imported with fewer devices, the mesh uses what is there.
"""

from __future__ import annotations

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import gradtx
from gradtx import parallel

LAYOUTS = {
    "replicated": parallel.replicated_layout,
    "zero1": parallel.zero1_layout,
    "fsdp": parallel.fsdp_layout,
}


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


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="zero1")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=128, help="global batch (split over devices)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--quick", action="store_true", help="60 steps, for a smoke test")
    ap.add_argument("--out", type=Path, default=None, help="directory for summary.json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    steps = 60 if args.quick else args.steps
    n_dev = jax.device_count()
    mesh = jax.make_mesh((n_dev,), ("data",), axis_types=(AxisType.Auto,))

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target.astype(np.int32), test_size=0.25, random_state=0
    )
    params = init_mlp(jax.random.PRNGKey(0), (64, 128, 10))
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(args.lr, weight_decay=1e-4))

    memory = state_bytes(tx, params, mesh)
    print(f"{n_dev} devices; optimizer state per device (bytes):")
    for name, b in memory.items():
        print(f"  {name:>10}: {b:8d}")

    layout = LAYOUTS[args.layout](tx, params, mesh)
    p = jax.device_put(jax.tree.map(np.array, params), layout.params)
    state = parallel.sharded_init(tx, layout)(p)
    step = parallel.sharded_step(loss_fn, tx, layout)
    rng = np.random.default_rng(0)
    batch = args.batch - args.batch % n_dev
    for i in range(steps):
        idx = rng.choice(len(x_tr), batch, replace=False)
        p, state, loss = step(p, state, (x_tr[idx], y_tr[idx]))
        if i % 50 == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.4f}")

    host = jax.tree.map(np.asarray, p)
    summary = {
        "devices": n_dev,
        "layout": args.layout,
        "steps": steps,
        "state_bytes_per_device": memory,
        "final_loss": float(loss),
        "test_accuracy": accuracy(host, x_te, y_te),
    }
    print(f"test accuracy ({args.layout}): {summary['test_accuracy']:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
