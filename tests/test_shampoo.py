"""Shampoo (``gradtx/optimizers/shampoo.py``) and the Kronecker machinery it shares with SOAP
(``gradtx/optimizers/kronecker.py``).

- the float64 trajectory against the NumPy transcription of the authors' ``distributed_shampoo``
  (``tests/references/shampoo.py``) on leaves of rank 1, 2 and 4 (merged, blocked, skipped),
  over runs that refresh the roots, <= 1e-10;
- the inverse roots are recomputed only every ``preconditioning_compute_steps`` (a ``cond``);
- the coupled Newton root against the eigendecomposition at the iteration's tolerance;
- blocking, merging and stacking round-trip and follow both authors' merge rules;
- 8 simulated devices (a subprocess): sharded params and state give one device's trajectory.

Quality against tuned Adam: ``tests/test_matrix_quality.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_compile, leaves64, rel_err, run_jit, shaped_problem
from references import build, run
from references.shampoo import shampoo_merged_shape
from references.soap import soap_merged_shape

import gradtx
from gradtx.optimizers import kronecker as kr

HERE = Path(__file__).resolve().parent
SHAPES = {"vec": (5,), "mat": (6, 4), "conv": (2, 3, 2, 2), "big": (3, 9)}


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def problem(steps: int, seed: int = 0) -> tuple[dict, list]:
    return shaped_problem(SHAPES, steps, seed)


def error_vs_reference(name: str, steps: int, **kwargs) -> float:
    params, grads = problem(steps)
    got = run_jit(getattr(gradtx, name)(**kwargs), params, grads)
    want, _ = run(build(name, kwargs), leaves64(params), [leaves64(g) for g in grads])
    return rel_err(got, want)


CONFIGS = {
    # blocks of 4 (remainders included), (2, 3, 2, 2) merged to (6, 4), (3, 9) skipped for its
    # long axis; Newton roots (float64, the defaults) refreshed every 3 steps
    "newton": dict(
        learning_rate=0.1, block_size=4, merge_small_dims_block_size=6,
        preconditioning_compute_steps=3, start_preconditioning_step=2, graft_type="adam",
        b2=0.9, skip_preconditioning_dim_size_gt=8,
    ),
    "eigh_one_sided": dict(
        learning_rate=0.05, block_size=3, best_effort_shape_interpretation=False,
        root_method="eigh", preconditioner_type="input", graft_type="rmsprop_normalized",
        statistics_compute_steps=2, preconditioning_compute_steps=2, weight_decay=0.01,
        nesterov=False, moving_average_for_momentum=True, relative_matrix_epsilon=False,
        matrix_epsilon=1e-4,
    ),
}  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_the_authors_rule_on_rank_1_2_4(config):
    assert error_vs_reference("shampoo", 8, **CONFIGS[config]) <= 1e-10


def test_the_reference_check_can_fail():
    kwargs = dict(CONFIGS["newton"], b2=0.95)
    params, grads = problem(6)
    got = run_jit(gradtx.shampoo(**CONFIGS["newton"]), params, grads)
    want, _ = run(build("shampoo", kwargs), leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(got, want) > 1e-4


def test_roots_are_refreshed_only_every_preconditioning_compute_steps():
    tx = gradtx.scale_by_shampoo(block_size=4, preconditioning_compute_steps=3,
                                 start_preconditioning_step=0)  # fmt: skip
    params, grads = problem(7)
    update = jax.jit(tx.update)
    assert "cond" in str(jax.make_jaxpr(tx.update)(grads[0], tx.init(params)))
    state, roots = tx.init(params), []
    for g in grads:
        _, state = update(g, state)
        roots.append(jax.tree.leaves(gradtx.tree_get(state, "preconditioners")))
    changed = [
        any(not np.array_equal(a, b) for a, b in zip(roots[i], roots[i - 1], strict=True))
        for i in range(1, len(roots))
    ]
    assert changed == [False, False, True, False, False, True]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_newton_root_agrees_with_eigh_at_its_tolerance(dtype):
    rng = np.random.RandomState(3)
    x = rng.randn(6, 10)
    a = jnp.asarray(x @ x.T / 10, dtype)
    p = jnp.asarray([2.0, 4.0])
    tol = 1e-6 if dtype == jnp.float32 else 1e-12
    both = {
        m: kr.inverse_roots(jnp.stack([a, a]), p, 1e-6, tol, method=m, dtype=dtype)
        for m in ("newton", "eigh")
    }  # fmt: skip
    (newton, err), (exact, _) = both["newton"], both["eigh"]
    assert newton.dtype == dtype and np.all(np.asarray(err) < 1e-4)
    got = np.max(np.abs(newton - exact)) / np.max(np.abs(exact))
    assert got < (1e-4 if dtype == jnp.float32 else 1e-9), got
    # the definition: (A + r I)^(-1/p), r relative to lambda_max
    lam = np.linalg.eigvalsh(np.asarray(a, np.float64))
    want = np.linalg.matrix_power(np.asarray(exact[1], np.float64), 4)
    ridge = 1e-6 * lam[-1]
    inv = np.linalg.inv(np.asarray(a, np.float64) + ridge * np.eye(6))
    bound = 1e-4 if dtype == jnp.float32 else 1e-9
    assert np.max(np.abs(want - inv)) / np.max(np.abs(inv)) < bound


@pytest.mark.parametrize(
    ("shape", "block", "perm"),
    [((7, 5), 3, None), ((2, 3, 4, 5), 2, (0, 3, 1, 2)), ((9,), 4, None), ((), None, None)],
)
def test_blocks_round_trip_and_stack(shape, block, perm):
    x = jnp.arange(float(np.prod(shape))).reshape(shape)
    lay = kr.layout(shape, merge=None, block_size=block, perm=perm)
    blocks = kr.to_blocks(x, lay)
    assert sum(b.size for b in blocks) == x.size
    assert all(max(b.shape[1:], default=0) <= (block or 10**9) for b in blocks)
    np.testing.assert_array_equal(kr.from_blocks(blocks, lay), x)
    if shape == (7, 5):  # blocks (3, 3) x 2 x 1, then remainders: stacked by shape
        assert [b.shape for b in blocks] == [(2, 3, 3), (2, 3, 2), (1, 1, 3), (1, 1, 2)]
        np.testing.assert_array_equal(blocks[0][1], x[3:6, 0:3])


def test_merge_rule_is_both_authors():
    rng = np.random.RandomState(0)
    for _ in range(300):
        shape = tuple(int(d) for d in rng.choice([1, 2, 3, 5, 8, 40], size=rng.randint(1, 6)))
        cap = int(rng.choice([1, 4, 10, 64]))
        got = kr.merge_dims(shape, cap)
        assert got == shampoo_merged_shape(shape, cap) == soap_merged_shape(shape, cap), shape
    assert kr.merge_dims((1, 2, 512, 1, 2048, 1, 3, 4), 1024) == (1024, 2048, 12)


def test_sharded_over_8_devices_matches_one_device(tmp_path):
    """``tests/_multidevice_kronecker.py`` in a subprocess: the FSDP layout (params and state
    sharded), factor stacks split over their blocks, float64, against one device."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = (
        "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
        "--xla_cpu_collective_call_terminate_timeout_seconds=900 "
        "--xla_cpu_collective_timeout_seconds=900"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    script = HERE / "_multidevice_kronecker.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "kronecker.json").read_text())
    # the sharded sums (gradients, factors) differ from one device's in the last bits; SOAP's
    # eigenvectors amplify that (measured 4e-10), Shampoo's roots do not (measured 8e-14)
    for name, tol in (("shampoo", 1e-11), ("soap", 1e-8)):
        assert report[f"{name}_moved"] > 1e-2  # the runs did something
        for kind in ("fsdp",):
            assert report[f"{name}_{kind}"]["err"] <= tol, (name, kind, report)
            specs = report[f"{name}_{kind}"]["factor_specs"]
            assert any("data" in s for s in specs.values()), specs  # factor stacks are split


LAPACK_CHILD = """
import gradtx
from test_matrix_quality import final_losses, mlp

def make(lr):
    return gradtx.shampoo(lr, graft_type="adam", start_preconditioning_step=1, root_method="eigh")

print(final_losses(mlp(), make, (3e-3, 0.01), 5))
"""


def test_batched_lapack_calls_run_one_after_another():
    """jaxlib 0.10.2's CPU ``eigh`` splits a batch over XLA's intra-op pool and blocks on it:
    two stacks' ``eigh`` running at once deadlocked a 2-thread pool (this program before
    ``kronecker.grouped`` ordered the stacks: 7 of 8 runs hung at 0% CPU, and this test failed
    with the ordering removed).  Pinned to 2 CPUs so the pool is that small."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    cpus = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_getaffinity") else None

    def pin():
        if cpus:
            os.sched_setaffinity(0, cpus)

    for _ in range(2):
        try:
            done = subprocess.run([sys.executable, "-c", LAPACK_CHILD], env=env, timeout=120,
                                  capture_output=True, text=True, preexec_fn=pin)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("the vmapped Shampoo run with eigh roots hung (LAPACK deadlock)")
        assert done.returncode == 0, done.stderr[-2000:]
