"""gradtx.parallel: state shardings, ZeRO-1 / FSDP / data-parallel steps, local SGD, multi-process.

The multi-device checks run in subprocesses (8 simulated CPU devices; 2 processes x 4 devices) in
float32 and report numbers as JSON; the tests here assert on those numbers.  This process keeps
its single device.  Tolerances: float32 trajectories of 3-4 steps agree to 1e-5 (they differ only
in the order of the cross-device sums).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx
from gradtx import parallel as par

HERE = Path(__file__).resolve().parent
TOL = 1e-5
OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "clipped_adamw")
KINDS = ("data_parallel", "zero1", "fsdp")


# The children compile ~30 small programs and run each for a few steps: cheap LLVM code
# generation halves their CPU time, XLA:CPU's older loop emitter (no fusion emitters) takes
# another ~35% off the 8-device child (the results stay within the float32 tolerances).
FAST_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    "--xla_cpu_use_fusion_emitters=false"
)
# 16 simulated devices in three processes share 2 cores with the other pytest worker: a device
# thread can be starved for longer than XLA:CPU's default 40 s collective rendezvous timeout,
# which aborts the process (seen once in four full runs).  Wait up to the fixture's deadline.
COLLECTIVE_TIMEOUT = (
    "--xla_cpu_collective_call_terminate_timeout_seconds=900 "
    "--xla_cpu_collective_timeout_seconds=900"
)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = f"{FAST_COMPILE} {COLLECTIVE_TIMEOUT}"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def children(tmp_path_factory) -> dict[str, tuple[int, Path]]:
    """Runs ``_multidevice_checks.py`` (8 devices) and the two ``_multiprocess_worker.py``
    processes (4 devices each, coordinator on a free loopback port) at the same time, so their
    start-up and compilation overlap.  Every process is killed if still alive at the end.
    Returns ``{name: (exit code, output dir)}``."""
    md_out = tmp_path_factory.mktemp("multidevice")
    mp_out = tmp_path_factory.mktemp("multiprocess")
    port = str(_free_port())
    commands = {
        "md": ([str(HERE / "_multidevice_checks.py"), str(md_out)], md_out),
        **{
            f"worker{i}": (
                [str(HERE / "_multiprocess_worker.py"), str(i), port, str(mp_out)],
                mp_out,
            )
            for i in range(2)
        },
    }
    procs: dict[str, subprocess.Popen] = {}
    codes: dict[str, tuple[int, Path]] = {}
    deadline = time.monotonic() + 900
    try:
        for name, (args, out) in commands.items():
            log = out / f"log_{name}.txt"
            with open(log, "w") as fh:
                procs[name] = subprocess.Popen(
                    [sys.executable, *args], env=_child_env(), stdout=fh, stderr=subprocess.STDOUT
                )
        for name, p in procs.items():
            code = p.wait(timeout=max(1.0, deadline - time.monotonic()))
            codes[name] = (code, commands[name][1])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return codes


def _log_tail(out: Path, name: str) -> str:
    return (out / f"log_{name}.txt").read_text()[-3000:]


@pytest.fixture(scope="module")
def md(children) -> dict:
    """Results of ``_multidevice_checks.py``."""
    code, out = children["md"]
    assert code == 0, _log_tail(out, "md")
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def mp(children) -> list[dict]:
    """Results of the two ``_multiprocess_worker.py`` processes."""
    for name in ("worker0", "worker1"):
        code, out = children[name]
        assert code == 0, _log_tail(out, name)
    return [json.loads((out / f"result_{i}.json").read_text()) for i in range(2)]


# --- 8 simulated devices ----------------------------------------------------------------------


@pytest.mark.multidevice
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_layout_matches_single_device_trajectory(md, name, kind):
    errors = md["layouts"]["errors"][name]
    assert errors["ref_change"] > 1e-2  # the trajectory moved, so agreement means something
    assert errors[kind] < TOL


@pytest.mark.multidevice
def test_zero1_state_is_split_and_params_replicated(md):
    specs = md["layouts"]["state_specs"]
    for kind in ("zero1", "fsdp"):
        s = specs[kind]
        assert s[".count"] == s[".inner[0].global_norm"] == "()"
        for moment in ("mu", "nu"):
            for leaf in ("w1", "b1", "w2"):
                assert s[f".inner[1].{moment}['{leaf}']"] == "('data',)"
            # 4 entries do not divide over 8 devices: replicated, not padded
            assert s[f".inner[1].{moment}['b2']"] == "()"
    assert set(specs["zero1_params"].values()) == {"()"}
    assert set(specs["data_parallel"].values()) == {"()"}
    assert specs["fsdp_params"] == {
        "['b1']": "('data',)",
        "['b2']": "()",
        "['w1']": "('data',)",
        "['w2']": "('data',)",
    }


@pytest.mark.multidevice
def test_masked_state_follows_its_params(md):
    s = md["fsdp_masked"]["masked_state"]
    assert s[".count"] == "()"
    assert {k: v for k, v in s.items() if k != ".count"} == {
        f".inner[0].inner_state[0].{m}['{w}']": "('data',)"
        for m in ("mu", "nu")
        for w in ("w1", "w2")
    }


@pytest.mark.multidevice
def test_adam_state_bytes_per_device(md):
    b = md["bytes"]
    count = 4  # the int32 step counter, replicated
    assert b["replicated"] == [b["moment_bytes"] + count]
    assert b["zero1"] == [b["moment_bytes"] // 8 + count]
    assert b["fsdp"] == [b["moment_bytes"] // 8 + count]
    # without out_shardings, jit in Auto mode replicates the state of sharded params
    assert b["plain_jit_init"] == b["replicated"]


@pytest.mark.multidevice
def test_shard_map_gradient_trap(md):
    t = md["trap"]
    assert t["right_err"] < 1e-6
    # pmean of local gradients of replicated params: 8x too large
    assert 7.9 < t["naive_ratio_min"] <= t["naive_ratio_max"] < 8.1


@pytest.mark.multidevice
def test_local_sgd(md):
    r = md["local_sgd"]
    assert r["k1_sgd_err"] < TOL
    assert r["k1_sgd_momentum_err"] < TOL
    spread = r["k4_spread"]
    # replicas drift apart between averages and meet (to the last bit) after every 4th step
    assert min(spread[0], spread[1], spread[2], spread[4], spread[5], spread[6]) > 1e-2
    assert spread[3] < 1e-6 and spread[7] < 1e-6
    assert r["k4_state_spread"] < 1e-6


@pytest.mark.multidevice
def test_checkpoint_restore_into_sharded_layout(md):
    c = md["checkpoint"]
    assert c["same_specs"]
    assert c["params_err"] == 0.0 and c["state_err"] == 0.0
    assert c["restored_state_bytes"] == c["state_bytes"]


@pytest.mark.multidevice
def test_example_quick_run(md):
    e = md["example"]
    assert e["devices"] == 8 and e["layout"] == "zero1"
    mem = e["state_bytes_per_device"]
    assert mem["zero1"] == mem["fsdp"] < mem["replicated"] / 7
    assert e["test_accuracy"] > 0.85


# --- 2 processes x 4 devices --------------------------------------------------------------------


@pytest.mark.multidevice
def test_two_processes_match_one(mp):
    for r in mp:
        assert r["ref_change"] > 1e-2
        assert r["ref_err"] < TOL
        assert r["restore_err"] == 0.0 and r["restored_specs_match"]
        assert r["local_devices"] == 4
        assert r["state_specs"][".inner[1].mu['w1']"] == "('data',)"
    a, b = (r["final_params"] for r in mp)
    assert a == b


# --- in process: shardings derived from the state structure ---------------------------------------


@pytest.fixture(scope="module")
def mesh1():
    return jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


PARAMS = {"w": jnp.ones((4, 3)), "b": jnp.ones(3), "s": jnp.ones(())}


def _specs(tree):
    return jax.tree.map(lambda s: tuple(s.spec), tree)


def test_shard_leading(mesh1):
    assert _specs(par.shard_leading(PARAMS, mesh1)) == {"w": ("data",), "b": ("data",), "s": ()}


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.adam(1e-3),
        lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3)),
        lambda: gradtx.named_chain(("m", gradtx.sgd(0.1, momentum=0.9)), ("c", gradtx.clip(1.0))),
        lambda: optax.adam(1e-3),  # foreign: its own count and moments
        lambda: gradtx.chain(optax.scale_by_adam(), gradtx.scale(-1e-3)),
    ],
)
def test_state_shardings_follow_params(mesh1, make):
    tx = make()
    split = par.shard_leading(PARAMS, mesh1)
    sh = par.state_shardings(tx, PARAMS, split)
    abstract = jax.eval_shape(tx.init, PARAMS)
    assert jax.tree.structure(sh) == jax.tree.structure(abstract)
    got = [
        (a.shape, tuple(s.spec))
        for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(sh), strict=True)
    ]
    param_shapes = {(4, 3), (3,)}
    for shape, spec in got:
        assert spec == (("data",) if shape in param_shapes else ()), (shape, spec)
    n_moments = sum(shape in param_shapes for shape, _ in got)
    assert n_moments >= 2 and n_moments % 2 == 0


def test_state_shardings_masked_and_single_leaf(mesh1):
    tx = gradtx.masked(gradtx.adam(1e-3), {"w": True, "b": False, "s": True})
    sh = par.state_shardings(tx, PARAMS, par.shard_leading(PARAMS, mesh1))
    mu = sh.inner[0].inner_state[0].mu
    assert isinstance(mu["b"], gradtx.MaskedNode)
    assert tuple(mu["w"].spec) == ("data",) and tuple(mu["s"].spec) == ()
    # a bare array as params: the count (shape ()) is not mistaken for a moment
    leaf = jnp.ones((2, 2))
    sh = par.state_shardings(gradtx.sgd(0.1, momentum=0.9), leaf, par.shard_leading(leaf, mesh1))
    assert tuple(sh.count.spec) == () and tuple(sh.inner[0].trace.spec) == ("data",)


def test_state_shardings_default_from_params_and_abstract_state(mesh1):
    placed = jax.device_put(PARAMS, NamedSharding(mesh1, P()))
    tx = gradtx.adam(1e-3)
    sh = par.state_shardings(tx, placed)
    assert all(tuple(s.spec) == () for s in jax.tree.leaves(sh))
    target = par.abstract_state(tx, PARAMS, sh)
    assert [t.shape for t in jax.tree.leaves(target)] == [
        a.shape for a in jax.tree.leaves(jax.eval_shape(tx.init, PARAMS))
    ]
    assert all(t.sharding is not None for t in jax.tree.leaves(target))
    bytes_ = par.bytes_per_device(tx.init(placed))
    assert list(bytes_.values()) == [2 * 8 * (12 + 3 + 1) + 4]  # float64 moments + int32 count


def test_local_sgd_rejects_bad_period():
    with pytest.raises(ValueError, match="every"):
        par.local_sgd(gradtx.sgd(0.1), "data", every=0)


@pytest.mark.multidevice
def test_explicit_mesh(md):
    e = md["explicit"]
    # Explicit axis types: zeros_like keeps the param's sharding, so plain jit(init) follows it
    assert e["plain_init_specs"][".inner[1].mu['w1']"] == "('data', None)"
    assert e["plain_init_specs"][".count"] == "()"
    assert e["zero1_err"] < TOL
    assert e["zero1_state_specs"][".inner[1].nu['w2']"] == "('data',)"
