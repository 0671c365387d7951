"""Shampoo and SOAP on 8 simulated devices (``python tests/_multidevice_kronecker.py OUT_DIR``):
the trajectory with params and state sharded by ``gradtx.parallel`` (the FSDP layout, the
stacks of factor matrices split over their blocks with ``kronecker.stacked_shardings``)
against the same optimizer on one device.  Float64; writes the worst relative errors and the
state's partition specs as JSON for ``tests/test_shampoo.py``.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
os.environ["JAX_ENABLE_X64"] = "1"

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

import gradtx
from gradtx import parallel as par
from gradtx.optimizers import kronecker as kr

STEPS = 3  # the roots and the bases are refreshed at count 2
AXIS = "data"
KINDS = ("fsdp",)  # params and state sharded (ZeRO-1 shards the state alone: a subset)


def make_problem() -> tuple[dict, tuple]:
    """A small MLP whose leaves have rank 1, 2 and 4, and a 64-example batch."""
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    params = {
        "w1": 0.5 * jax.random.normal(k[0], (16, 8)),
        "b1": 0.1 * jax.random.normal(k[1], (8,)),
        "w2": 0.5 * jax.random.normal(k[2], (8, 2, 2, 1)),
    }
    x = jax.random.normal(k[3], (64, 16))
    y = jax.random.normal(k[4], (64, 4))
    return params, (x, y)


def loss_fn(params: dict, batch: tuple) -> jax.Array:
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"].reshape(8, 4) - y) ** 2)


OPTIMIZERS = {
    "shampoo": lambda: gradtx.shampoo(
        0.05,
        block_size=4,
        start_preconditioning_step=1,
        preconditioning_compute_steps=2,
        graft_type="adam",
        b2=0.9,
    ),
    "soap": lambda: gradtx.soap(0.05, precondition_frequency=2, block_size=4),
}


def one_device(tx, params, batch) -> list:
    step = jax.jit(lambda p, s: _step(tx, p, s, batch))
    state, out = tx.init(params), []
    for _ in range(STEPS):
        params, state = step(params, state)
        out.append(params)
    return out


def _step(tx, params, state, batch):
    grads = jax.grad(loss_fn)(params, batch)
    updates, state = tx.update(grads, state, params)
    return gradtx.apply_updates(params, updates), state


def sharded(tx, kind, mesh, params, batch) -> tuple[list, dict]:
    make = {"fsdp": par.fsdp_layout, "zero1": par.zero1_layout}[kind]
    layout = make(tx, params, mesh, AXIS)
    abstract = jax.eval_shape(tx.init, params)
    layout = layout._replace(state=kr.stacked_shardings(layout.state, abstract, mesh, AXIS))
    p = jax.device_put(jax.tree.map(jnp.copy, params), layout.params)
    state = par.sharded_init(tx, layout)(p)
    b = jax.device_put(batch, layout.batch)
    step = par.sharded_step(loss_fn, tx, layout, donate=False)
    out = []
    for _ in range(STEPS):
        p, state, _ = step(p, state, b)
        out.append(p)
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    specs = {jax.tree_util.keystr(k): str(x.sharding.spec) for k, x in flat if np.ndim(x) == 3}
    return out, specs


def rel_err(a: list, b: list) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True):
            u, v = np.asarray(u), np.asarray(v)
            worst = max(worst, float(np.max(np.abs(u - v)) / np.max(np.abs(v))))
    return worst


def main(out_dir: str) -> None:
    assert jax.device_count() == 8 and jnp.zeros(()).dtype == jnp.float64
    mesh = Mesh(np.array(jax.devices()), (AXIS,))
    params, batch = make_problem()
    report = {}
    for name, make in OPTIMIZERS.items():
        want = one_device(make(), params, batch)
        for kind in KINDS:
            got, specs = sharded(make(), kind, mesh, params, batch)
            report[f"{name}_{kind}"] = {"err": rel_err(got, want), "factor_specs": specs}
        report[f"{name}_moved"] = rel_err(want[-1:], [params])
    Path(out_dir, "kronecker.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
