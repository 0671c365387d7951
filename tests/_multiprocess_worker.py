"""One of two processes (4 CPU devices each) running a ZeRO-1 training step on one 8-device mesh.

``python tests/_multiprocess_worker.py PROCESS_ID PORT OUT_DIR``: joins the coordinator on
``127.0.0.1:PORT`` (bound to loopback only), trains the clipped AdamW chain of
``_multidevice_checks`` for 4 steps, saves params and sharded state with orbax after step 2,
restores them into the sharded layout, replays steps 3-4, and writes ``result_<id>.json`` with the
errors against the single-device trajectory and against the uninterrupted run.
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import json
from pathlib import Path

import jax
import numpy as np
from _multidevice_checks import (
    AXIS,
    OPTIMIZERS,
    loss_fn,
    make_problem,
    max_err,
    reference,
    specs,
)
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from gradtx import parallel as par


def to_global(tree, shardings):
    """Global arrays from identical host copies on every process (each fills its own devices)."""

    def one(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(one, tree, shardings)


def local_copy(tree):
    """The host value of replicated arrays, read from this process's first shard."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def main(argv: list[str]) -> None:
    pid, port, out = int(argv[0]), int(argv[1]), Path(argv[2])
    address = f"127.0.0.1:{port}"
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=2,
        process_id=pid,
        coordinator_bind_address=address,
        initialization_timeout=60,
    )
    assert jax.process_count() == 2 and jax.device_count() == 8 and jax.local_device_count() == 4

    import orbax.checkpoint as ocp

    mesh = jax.make_mesh((8,), (AXIS,), axis_types=(AxisType.Auto,))
    params, batch = make_problem()
    tx = OPTIMIZERS["clipped_adamw"]()
    ref = reference(tx, params, batch, steps=4)

    layout = par.zero1_layout(tx, params, mesh, AXIS)
    step = par.sharded_step(loss_fn, tx, layout, donate=False)
    p = to_global(params, layout.params)
    g_batch = to_global(batch, (NamedSharding(mesh, P(AXIS)),) * 2)
    s = par.sharded_init(tx, layout)(p)
    for _ in range(2):
        p, s, _ = step(p, s, g_batch)

    ckptr = ocp.StandardCheckpointer()
    path = (out / "ckpt").absolute()
    ckptr.save(path, {"params": p, "state": s})
    ckptr.wait_until_finished()
    target = {
        "params": par.abstract_like(p, layout.params),
        "state": par.abstract_state(tx, params, layout.state),
    }
    restored = ckptr.restore(path, target)

    p2, s2 = restored["params"], restored["state"]
    for _ in range(2):
        p, s, _ = step(p, s, g_batch)
        p2, s2, _ = step(p2, s2, g_batch)

    final = local_copy(p)
    result = {
        "process": pid,
        "ref_err": max_err(final, ref[-1]),
        "ref_change": max_err(ref[-1], params),
        "restore_err": max_err(final, local_copy(p2)),
        "restored_specs_match": specs(s2) == specs(s),
        "state_specs": specs(s),
        "local_state_bytes": sorted(set(par.bytes_per_device(s).values())),
        "local_devices": len(par.bytes_per_device(s)),
        "final_params": {k: np.asarray(v).ravel().tolist() for k, v in final.items()},
    }
    (out / f"result_{pid}.json").write_text(json.dumps(result))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
