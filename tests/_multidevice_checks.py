"""Runs every 8-device check of ``tests/test_parallel.py`` in one process and writes the measured
numbers as JSON (``python tests/_multidevice_checks.py OUT_DIR``); the tests assert on them.

One process pays JAX's start-up and the device simulation once.  Everything runs in float32.
"""

from __future__ import annotations

import os

# a process that set its own device count first (the multi-process worker) keeps it
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx
from gradtx import parallel as par

STEPS = 3
AXIS = "data"


def make_problem() -> tuple[dict, tuple]:
    """A two-layer MLP and a 64-example regression batch.  ``b2`` (4 entries) is not divisible by
    8, so it exercises the replicated fallback of the sharded layouts."""
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {
        "w1": 0.5 * jax.random.normal(k[0], (16, 32)),
        "b1": jnp.zeros(32),
        "w2": 0.5 * jax.random.normal(k[1], (32, 4)),
        "b2": jnp.zeros(4),
    }
    x = jax.random.normal(k[2], (64, 16))
    y = jax.random.normal(k[3], (64, 4))
    return params, (x, y)


def loss_fn(params: dict, batch: tuple) -> jax.Array:
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


OPTIMIZERS = {
    "sgd": lambda: gradtx.sgd(0.1),
    "sgd_momentum": lambda: gradtx.sgd(0.1, momentum=0.9),
    "adam": lambda: gradtx.adam(1e-2),
    "clipped_adamw": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2, weight_decay=1e-2)
    ),
}


def fresh(tree):
    """A host copy, so donating the device copy never deletes a buffer we still use."""
    return jax.tree.map(np.array, tree)


def max_err(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def reference(tx, params, batch, steps=STEPS):
    """The single-device trajectory: params after each step."""

    @jax.jit
    def step(p, s):
        g = jax.grad(loss_fn)(p, batch)
        u, s = tx.update(g, s, p)
        return gradtx.apply_updates(p, u), s

    p, s, out = params, tx.init(params), []
    for _ in range(steps):
        p, s = step(p, s)
        out.append(p)
    return out


_RUNS: dict = {}


def run_layout(kind, name, mesh, params, batch):
    """Params after each step and the final state, for one layout and optimizer (memoised: the
    local-SGD check reuses the synchronous runs without compiling them again)."""
    if (kind, name) not in _RUNS:
        _RUNS[kind, name] = _run_layout(kind, OPTIMIZERS[name](), mesh, params, batch)
    return _RUNS[kind, name]


def _run_layout(kind, tx, mesh, params, batch):
    if kind == "data_parallel":
        p = jax.device_put(fresh(params), par.replicated(mesh))
        s = jax.device_put(tx.init(fresh(params)), par.replicated(mesh))
        step = par.data_parallel_step(loss_fn, tx, mesh, AXIS)
    else:
        layout = {"zero1": par.zero1_layout, "fsdp": par.fsdp_layout}[kind](tx, params, mesh, AXIS)
        p = jax.device_put(fresh(params), layout.params)
        # placing an eagerly built state saves a compilation; sharded_init is checked elsewhere
        s = jax.device_put(tx.init(fresh(params)), layout.state)
        step = par.sharded_step(loss_fn, tx, layout)
    out = []
    for _ in range(STEPS):
        p, s, _ = step(p, s, batch)
        out.append(fresh(p))
    return out, s, specs(p)


def specs(tree) -> dict[str, str]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(k): str(tuple(x.sharding.spec)) for k, x in flat}


def check_layouts(mesh, params, batch) -> dict:
    """Every optimizer in every layout against its single-device trajectory."""
    errors: dict = {}
    state_specs: dict = {}
    for name, make in OPTIMIZERS.items():
        tx = make()
        ref = reference(tx, params, batch)
        errors[name] = {"ref_change": max_err(ref[-1], params)}
        for kind in ("data_parallel", "zero1", "fsdp"):
            traj, state, param_specs = run_layout(kind, name, mesh, params, batch)
            errors[name][kind] = max(max_err(a, b) for a, b in zip(traj, ref, strict=True))
            if name == "clipped_adamw":
                state_specs[kind] = specs(state)
                state_specs[kind + "_params"] = param_specs
    return {"errors": errors, "state_specs": state_specs}


def check_explicit_mesh(params, batch) -> dict:
    """On an Explicit mesh (``jax.make_mesh``'s default): plain ``jit(tx.init)`` already follows
    the params' shardings, and the ZeRO-1 step (which reshards there) matches one device."""
    mesh = jax.make_mesh((8,), (AXIS,), axis_types=(AxisType.Explicit,))
    tx = OPTIMIZERS["clipped_adamw"]()
    split = jax.device_put(fresh(params), par.shard_leading(params, mesh, AXIS))
    with jax.set_mesh(mesh):
        plain = specs(jax.jit(tx.init)(split))
    layout = par.zero1_layout(tx, params, mesh, AXIS)
    p = jax.device_put(fresh(params), layout.params)
    s = par.sharded_init(tx, layout)(p)
    step = par.sharded_step(loss_fn, tx, layout)
    g_batch = jax.device_put(fresh(batch), layout.batch)
    ref = reference(tx, params, batch)
    err = 0.0
    for want in ref:
        p, s, _ = step(p, s, g_batch)
        err = max(err, max_err(p, want))
    return {"plain_init_specs": plain, "zero1_err": err, "zero1_state_specs": specs(s)}


def check_fsdp_params_and_masked(mesh, params) -> dict:
    """FSDP param shardings, and state_shardings through ``masked`` (no per-optimizer table)."""
    tx = gradtx.masked(gradtx.adam(1e-2), lambda p: {k: k.startswith("w") for k in p})
    layout = par.fsdp_layout(tx, params, mesh, AXIS)
    p = jax.device_put(fresh(params), layout.params)
    return {"fsdp_params": specs(p), "masked_state": specs(par.sharded_init(tx, layout)(p))}


def check_bytes(mesh) -> dict:
    """Adam state bytes per device on params whose leading dims all divide by 8."""
    params = {"w": jnp.ones((256, 64)), "b": jnp.ones((64,))}
    tx = gradtx.adam(1e-3)
    out = {"moment_bytes": 2 * sum(x.nbytes for x in jax.tree.leaves(params))}
    for name, make in (
        ("replicated", par.replicated_layout),
        ("zero1", par.zero1_layout),
        ("fsdp", par.fsdp_layout),
    ):
        layout = make(tx, params, mesh, AXIS)
        state = par.sharded_init(tx, layout)(jax.device_put(fresh(params), layout.params))
        out[name] = sorted(set(par.bytes_per_device(state).values()))
    # Auto mode: jit of init alone leaves the state replicated (why state_shardings exists)
    split = jax.device_put(fresh(params), par.shard_leading(params, mesh, AXIS))
    out["plain_jit_init"] = sorted(set(par.bytes_per_device(jax.jit(tx.init)(split)).values()))
    return out


def check_trap(mesh, params, batch) -> dict:
    """The shard_map gradient trap: pmean of local gradients vs the gradient of the pmean loss."""

    def naive(p, b):
        return jax.lax.pmean(jax.grad(loss_fn)(p, b), AXIS)

    def right(p, b):
        return par.data_parallel_value_and_grad(loss_fn, AXIS)(p, b)[1]

    grads = {}
    for name, fn in (("naive", naive), ("right", right)):
        mapped = jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P())
        grads[name] = jax.jit(mapped)(fresh(params), batch)
    full = jax.grad(loss_fn)(params, batch)
    ratio = np.asarray(grads["naive"]["w1"]) / np.asarray(full["w1"])
    return {
        "right_err": max_err(grads["right"], full),
        "naive_ratio_min": float(ratio.min()),
        "naive_ratio_max": float(ratio.max()),
    }


def check_local_sgd(mesh, params, batch) -> dict:
    """k=1 against synchronous data parallelism; k=4 replicas drift then meet."""
    out = {}
    for name, average_state in (("sgd", False), ("sgd_momentum", True)):
        sync, _, _ = run_layout("data_parallel", name, mesh, params, batch)
        tx = par.local_sgd(OPTIMIZERS[name](), AXIS, every=1, average_state=average_state)
        step = par.local_sgd_step(loss_fn, tx, mesh, AXIS)
        p, s = par.per_replica(params, mesh, AXIS), par.per_replica(tx.init(params), mesh, AXIS)
        err = 0.0
        for i in range(STEPS):
            p, s, _ = step(p, s, batch)
            err = max(err, max_err(jax.tree.map(lambda x: x[5], p), sync[i]))
        out[f"k1_{name}_err"] = err
    tx = par.local_sgd(gradtx.sgd(0.1, momentum=0.9), AXIS, every=4, average_state=True)
    step = par.local_sgd_step(loss_fn, tx, mesh, AXIS)
    p, s = par.per_replica(params, mesh, AXIS), par.per_replica(tx.init(params), mesh, AXIS)
    spread = []
    for _ in range(8):
        p, s, _ = step(p, s, batch)
        spread.append(float(max(np.ptp(np.asarray(x), axis=0).max() for x in jax.tree.leaves(p))))
    out["k4_spread"] = spread
    out["k4_state_spread"] = float(
        max(np.ptp(np.asarray(x), axis=0).max() for x in jax.tree.leaves(s))
    )
    return out


def check_checkpoint(mesh, params, batch, workdir: Path) -> dict:
    """ZeRO-1 clipped AdamW: save the sharded state with orbax after 2 steps, restore it into a
    sharded abstract target, and continue; the trajectory must be bit-identical."""
    import orbax.checkpoint as ocp

    tx = OPTIMIZERS["clipped_adamw"]()
    layout = par.zero1_layout(tx, params, mesh, AXIS)
    step = par.sharded_step(loss_fn, tx, layout, donate=False)
    p = jax.device_put(fresh(params), layout.params)
    s = par.sharded_init(tx, layout)(p)
    for _ in range(2):
        p, s, _ = step(p, s, batch)
    ckptr = ocp.StandardCheckpointer()
    path = (workdir / "ckpt").absolute()
    ckptr.save(path, {"params": p, "state": s})
    ckptr.wait_until_finished()
    target = {
        "params": par.abstract_like(p, layout.params),
        "state": par.abstract_state(tx, params, layout.state),
    }
    restored = ckptr.restore(path, target)
    same_specs = specs(restored["state"]) == specs(s)
    p2, s2 = restored["params"], restored["state"]
    for _ in range(2):
        p, s, _ = step(p, s, batch)
        p2, s2, _ = step(p2, s2, batch)
    return {
        "same_specs": same_specs,
        "params_err": max_err(p, p2),
        "state_err": max_err(s, s2),
        "restored_state_bytes": sorted(set(par.bytes_per_device(restored["state"]).values())),
        "state_bytes": sorted(set(par.bytes_per_device(s).values())),
    }


def check_example(workdir: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import data_parallel

    out = workdir / "example"
    data_parallel.main(["--quick", "--out", str(out)])
    return json.loads((out / "summary.json").read_text())


def main(argv: list[str]) -> None:
    workdir = Path(argv[0])
    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), (AXIS,), axis_types=(AxisType.Auto,))
    params, batch = make_problem()
    batch = jax.device_put(batch, NamedSharding(mesh, P(AXIS)))
    checks = {
        "layouts": lambda: check_layouts(mesh, params, batch),
        "explicit": lambda: check_explicit_mesh(params, batch),
        "fsdp_masked": lambda: check_fsdp_params_and_masked(mesh, params),
        "bytes": lambda: check_bytes(mesh),
        "trap": lambda: check_trap(mesh, params, batch),
        "local_sgd": lambda: check_local_sgd(mesh, params, batch),
        "checkpoint": lambda: check_checkpoint(mesh, params, batch, workdir),
        "example": lambda: check_example(workdir),
    }
    results: dict = {"seconds": {}}
    for name, check in checks.items():
        start = time.perf_counter()
        results[name] = check()
        results["seconds"][name] = round(time.perf_counter() - start, 2)
    (workdir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
