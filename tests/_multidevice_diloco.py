"""DiLoCo on 8 simulated CPU devices (``python tests/_multidevice_diloco.py OUT_DIR``).

Runs ``gradtx.diloco.diloco`` under ``jax.shard_map`` (through ``parallel.local_sgd_step``) on a
small regression problem whose data differ per worker, in float32 and then in float64, and writes
the data, the initial parameters and every worker's parameters after each step to
``OUT_DIR/diloco.npz``; ``tests/test_diloco.py`` replays the same algorithm in NumPy and compares.
Also writes ``OUT_DIR/results.json`` with in-process checks (the outer step against
``parallel.local_sgd`` when the outer optimizer is ``sgd(1.0)``).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx
from gradtx import parallel as par
from gradtx.diloco import diloco

WORKERS, BATCH, H, ROUNDS = 8, 4, 3, 2
AXIS = "data"
INNER = {"learning_rate": 0.05, "weight_decay": 0.1}


def make_data() -> dict[str, np.ndarray]:
    """``x[t]``: the global batch of step ``t`` (worker ``i`` gets rows ``i*BATCH:(i+1)*BATCH``);
    each worker's targets come from its own linear map (non-iid shards)."""
    rng = np.random.default_rng(0)
    steps = H * ROUNDS
    x = rng.normal(size=(steps, WORKERS * BATCH, 4))
    maps = rng.normal(size=(WORKERS, 4, 3)) + np.linspace(-1, 1, WORKERS)[:, None, None]
    worker = np.repeat(np.arange(WORKERS), BATCH)
    y = np.einsum("tbi,bio->tbo", x, maps[worker]) + 0.1 * rng.normal(
        size=(steps, WORKERS * BATCH, 3)
    )
    return {"x": x, "y": y, "w0": 0.5 * rng.normal(size=(4, 3)), "b0": np.zeros(3)}


def loss_fn(params, batch):
    x, y = batch
    return jax.numpy.mean((x @ params["w"] + params["b"] - y) ** 2)


def flat(tree) -> np.ndarray:
    """``{"w": (8, 4, 3), "b": (8, 3)}`` as ``(8, 15)``: ``w`` row-major, then ``b``."""
    return np.concatenate([np.asarray(tree["w"]).reshape(WORKERS, -1), np.asarray(tree["b"])], 1)


def run(tx, data, dtype, mesh, theta: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Every worker's parameters after each step, ``(steps, WORKERS, 15)``, and (``theta``) its
    ``global_params`` after each step."""
    params = {"w": np.asarray(data["w0"], dtype), "b": np.asarray(data["b0"], dtype)}
    step = par.local_sgd_step(loss_fn, tx, mesh, AXIS, donate=False)
    p, s = par.per_replica(params, mesh, AXIS), par.per_replica(tx.init(params), mesh, AXIS)
    where = NamedSharding(mesh, P(AXIS))
    out, thetas = [], []
    for t in range(H * ROUNDS):
        batch = jax.device_put((data["x"][t].astype(dtype), data["y"][t].astype(dtype)), where)
        p, s, _ = step(p, s, batch)
        out.append(flat(p))
        if theta:
            thetas.append(flat(gradtx.tree_get(s, "global_params")))
    assert out[-1].dtype == dtype
    return np.stack(out), np.stack(thetas) if theta else None


def main(argv: list[str]) -> None:
    workdir = Path(argv[0])
    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), (AXIS,), axis_types=(AxisType.Auto,))
    data = make_data()
    seconds, arrays, results = {}, dict(data), {}

    start = time.perf_counter()
    tx = diloco(gradtx.adamw(**INNER), AXIS, every=H)
    arrays["f32"], arrays["f32_theta"] = run(tx, data, np.float32, mesh)
    seconds["f32"] = time.perf_counter() - start

    # periodic averaging two ways: diloco with outer sgd(1.0) and parallel.local_sgd
    start = time.perf_counter()
    avg = run(diloco(gradtx.sgd(0.1), AXIS, every=H, outer=gradtx.sgd(1.0)), data, np.float32, mesh)
    local = run(par.local_sgd(gradtx.sgd(0.1), AXIS, every=H), data, np.float32, mesh, False)[0]
    results["vs_local_sgd"] = float(np.max(np.abs(avg[0] - local)))
    seconds["local_sgd"] = time.perf_counter() - start

    jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    tx = diloco(gradtx.adamw(**INNER), AXIS, every=H)
    arrays["f64"], arrays["f64_theta"] = run(tx, data, np.float64, mesh)
    seconds["f64"] = time.perf_counter() - start

    np.savez(workdir / "diloco.npz", **arrays)
    results["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    (workdir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
