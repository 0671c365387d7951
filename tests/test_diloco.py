"""gradtx.diloco: DiLoCo (Douillard et al. 2023) against a NumPy replay of the paper's loop.

The replay below is written from the paper, independently of gradtx: ``M`` workers each take
``H`` AdamW steps on their own data from the shared ``theta``; ``theta`` then takes a Nesterov
SGD step (lr 0.7, momentum 0.9) on ``theta - mean_i theta_i`` and every worker restarts from it
with its own AdamW moments.  It is compared with gradtx on 8 simulated devices (a subprocess,
``_multidevice_diloco.py``, shard_map over a mesh axis; float32 and float64) and on one device
with ``jax.vmap(..., axis_name=...)`` (float64).  The degenerate cases: one worker with outer
``sgd(1.0)`` is the inner optimizer; ``H = 1`` with outer ``sgd(1.0)`` is synchronous
data-parallel SGD (with momentum) on the mean gradient, which does NOT hold for AdamW (it
averages the workers' Adam directions, not their gradients).
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_compile

import gradtx
from gradtx.diloco import diloco

HERE = Path(__file__).resolve().parent
INNER = {"learning_rate": 0.05, "weight_decay": 0.1}
# cheap LLVM code generation and XLA:CPU's older loop emitter: the 8-device child compiles
# ~1/3 faster (its results stay within the tolerances below)
FAST_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    "--xla_cpu_use_fusion_emitters=false"
)
COLLECTIVE_TIMEOUT = (
    "--xla_cpu_collective_call_terminate_timeout_seconds=900 "
    "--xla_cpu_collective_timeout_seconds=900"
)


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


# --- the NumPy replay -------------------------------------------------------------------------


def grad(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of ``mean((x @ w + b - y)**2)`` with ``p = [w.ravel(), b]``, ``w`` (4, 3)."""
    w, b = p[:12].reshape(4, 3), p[12:]
    r = x @ w + b - y
    scale = p.dtype.type(2.0 / r.size)
    return np.concatenate([(scale * (x.T @ r)).ravel(), scale * r.sum(0)])


class AdamW:
    """optax/torch AdamW (b1 0.9, b2 0.999, eps 1e-8), decay ``lr * wd * p``."""

    def __init__(self, lr, wd, n, dtype):
        self.lr, self.wd, self.t = lr, wd, 0
        self.m, self.v = np.zeros(n, dtype), np.zeros(n, dtype)

    def __call__(self, g, p):
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mhat = self.m / (1 - 0.9**self.t)
        vhat = self.v / (1 - 0.999**self.t)
        return (-self.lr * (mhat / (np.sqrt(vhat) + 1e-8) + self.wd * p)).astype(p.dtype)


class Momentum:
    """SGD with heavy-ball (``m = mu m + g``, ``u = -lr m``) or Nesterov momentum."""

    def __init__(self, lr, mu, nesterov, n, dtype):
        self.lr, self.mu, self.nesterov, self.m = lr, mu, nesterov, np.zeros(n, dtype)

    def __call__(self, g, p):
        self.m = self.mu * self.m + g
        return (-self.lr * (g + self.mu * self.m if self.nesterov else self.m)).astype(p.dtype)


def replay(data, dtype, workers, every, rounds, make_inner=None, make_outer=None):
    """The paper's loop; returns every worker's params and ``theta`` after each inner step,
    ``(steps, workers, 15)`` and ``(steps, 15)``."""
    x, y = data["x"].astype(dtype), data["y"].astype(dtype)
    theta = np.concatenate([data["w0"].ravel(), data["b0"]]).astype(dtype)
    make_inner = make_inner or (
        lambda: AdamW(INNER["learning_rate"], INNER["weight_decay"], 15, dtype)
    )
    inner = [make_inner() for _ in range(workers)]
    outer = (make_outer or (lambda: Momentum(0.7, 0.9, True, 15, dtype)))()
    local = [theta.copy() for _ in range(workers)]
    batch = x.shape[1] // workers
    trajectory, thetas = [], []
    for t in range(every * rounds):
        for i in range(workers):
            rows = slice(i * batch, (i + 1) * batch)
            local[i] = local[i] + inner[i](grad(local[i], x[t, rows], y[t, rows]), local[i])
        if (t + 1) % every == 0:
            delta = theta - np.mean(local, axis=0, dtype=dtype)
            theta = theta + outer(delta, theta)
            local = [theta.copy() for _ in range(workers)]
        trajectory.append(np.stack(local))
        thetas.append(theta)
    return np.stack(trajectory), np.stack(thetas)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


# --- 8 simulated devices ------------------------------------------------------------------------


def run_eight_devices(out: Path) -> tuple[dict, dict]:
    """Runs ``_multidevice_diloco.py``; returns its arrays and its results."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"{FAST_COMPILE} {COLLECTIVE_TIMEOUT}")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(HERE / "_multidevice_diloco.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(np.load(out / "diloco.npz")), json.loads((out / "results.json").read_text())


@pytest.mark.multidevice
def test_eight_devices_match_the_replay(tmp_path):
    """One subprocess (one test, so that pytest-xdist starts it once)."""
    arrays, results = run_eight_devices(tmp_path)
    for name, dtype, tol in (("f32", np.float32, 1e-6), ("f64", np.float64, 1e-13)):
        got, got_theta = arrays[name], arrays[f"{name}_theta"]
        assert got.dtype == dtype
        want, want_theta = replay(arrays, dtype, workers=8, every=3, rounds=2)
        assert rel(got, want) <= tol
        assert np.ptp(got_theta, axis=1).max() == 0  # theta is the same on every worker
        assert rel(got_theta, np.broadcast_to(want_theta[:, None], got_theta.shape)) <= tol
        print(f"{name}: workers {rel(got, want):.1e}, theta {rel(got_theta[:, 0], want_theta):.1e}")
        # the workers drift apart inside a round and all sit on theta after it (up to the last
        # bit of the p + (theta - p) round trip)
        spread = np.ptp(got, axis=1).max(axis=1)
        assert np.all(spread[[0, 1, 3, 4]] > 1e-2)
        assert np.all(spread[[2, 5]] <= 2 * np.finfo(dtype).eps)
        np.testing.assert_array_equal(got_theta[2], got_theta[3])  # theta moves once per round
        assert rel(got[[2, 5], 0], want_theta[[2, 5]]) <= tol
        # the outer step is not plain averaging: Nesterov moves theta past the workers' mean
        plain, _ = replay(
            arrays, dtype, 8, 3, 2, make_outer=lambda d=dtype: Momentum(1.0, 0.0, False, 15, d)
        )
        assert rel(got, plain) > 1e-2
    # outer sgd(1.0) is periodic averaging: parallel.local_sgd's numbers, bit for bit
    assert results["vs_local_sgd"] == 0.0


# --- one device, workers simulated with vmap --------------------------------------------------


def make_data(workers, batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps, workers * batch, 4))
    maps = rng.normal(size=(workers, 4, 3))
    y = np.einsum("tbi,bio->tbo", x, np.repeat(maps, batch, axis=0))
    return {"x": x, "y": y, "w0": 0.5 * rng.normal(size=(4, 3)), "b0": np.zeros(3)}


def loss_fn(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def run_vmapped(tx, data, workers, steps):
    """gradtx with ``jax.vmap(axis_name="w")`` over the workers: every worker's params after
    each step, ``(steps, workers, 15)``, and ``theta`` (when ``tx`` is a diloco)."""
    params = {"w": jnp.asarray(data["w0"]), "b": jnp.asarray(data["b0"])}

    def one(p, s, x, y):
        u, s = tx.update(jax.grad(loss_fn)(p, x, y), s, p)
        return gradtx.apply_updates(p, u), s

    def body(carry, xy):
        p, s = carry
        x, y = (a.reshape(workers, -1, a.shape[-1]) for a in xy)
        p, s = jax.vmap(one, axis_name="w")(p, s, x, y)
        flat = jnp.concatenate([p["w"].reshape(workers, -1), p["b"]], 1)
        return (p, s), flat

    start = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (workers, *a.shape)), (params, tx.init(params))
    )
    (_, state), out = jax.jit(lambda c, xy: jax.lax.scan(body, c, xy))(
        start, (jnp.asarray(data["x"][:steps]), jnp.asarray(data["y"][:steps]))
    )
    return np.asarray(out), state


def test_vmapped_workers_match_the_replay():
    data = make_data(workers=3, batch=2, steps=6)
    tx = diloco(gradtx.adamw(**INNER), "w", every=2)
    got, state = run_vmapped(tx, data, 3, 6)
    want, want_theta = replay(data, np.float64, workers=3, every=2, rounds=3)
    assert rel(got, want) <= 1e-13
    theta = gradtx.tree_get(state, "global_params")
    flat = np.concatenate([np.asarray(theta["w"]).reshape(3, -1), np.asarray(theta["b"])], 1)
    assert rel(flat, np.broadcast_to(want_theta[-1], (3, 15))) <= 1e-13
    # the replay can fail: heavy-ball instead of Nesterov in the outer step
    other, _ = replay(
        data, np.float64, 3, 2, 3, make_outer=lambda: Momentum(0.7, 0.9, False, 15, np.float64)
    )
    assert rel(got, other) > 1e-3


def test_one_worker_with_outer_sgd_one_is_the_inner_optimizer():
    data = make_data(workers=1, batch=4, steps=6)
    got, _ = run_vmapped(
        diloco(gradtx.adamw(**INNER), "w", every=3, outer=gradtx.sgd(1.0)), data, 1, 6
    )
    plain, _ = run_vmapped(gradtx.adamw(**INNER), data, 1, 6)
    assert rel(got, plain) <= 1e-15


def test_one_step_rounds_with_outer_sgd_one_are_data_parallel_sgd_but_not_adamw():
    """H = 1, outer sgd(1.0): theta + mean_i u_i.  For SGD with momentum (linear in the gradient,
    every worker at the same params) that is SGD on the mean gradient; for AdamW it is the mean
    of the workers' Adam directions, which differs."""
    workers, steps = 4, 5
    data = make_data(workers, batch=2, steps=steps, seed=1)
    one = gradtx.sgd(1.0)
    x, y = data["x"], data["y"]

    def mean_grad_run(make):
        opt, p, out = make(), np.concatenate([data["w0"].ravel(), data["b0"]]), []
        for t in range(steps):
            g = np.mean(
                [
                    grad(p, xb, yb)
                    for xb, yb in zip(np.split(x[t], workers), np.split(y[t], workers), strict=True)
                ],
                0,
            )
            p = p + opt(g, p)
            out.append(np.broadcast_to(p, (workers, 15)))
        return np.stack(out)

    got, _ = run_vmapped(
        diloco(gradtx.sgd(0.1, momentum=0.9), "w", every=1, outer=one), data, workers, steps
    )
    assert rel(got, mean_grad_run(lambda: Momentum(0.1, 0.9, False, 15, np.float64))) <= 1e-14
    got, _ = run_vmapped(
        diloco(gradtx.adamw(**INNER), "w", every=1, outer=one), data, workers, steps
    )
    assert (
        rel(
            got,
            mean_grad_run(
                lambda: AdamW(INNER["learning_rate"], INNER["weight_decay"], 15, np.float64)
            ),
        )
        > 1e-2
    )
    want, _ = replay(
        data,
        np.float64,
        workers,
        every=1,
        rounds=steps,
        make_outer=lambda: Momentum(1.0, 0.0, False, 15, np.float64),
    )
    assert rel(got, want) <= 1e-13


def test_state_layout_and_errors():
    params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
    tx = diloco(gradtx.adamw(0.1), "w", every=4)
    state = tx.init(params)
    assert set(gradtx.tree_get(state, "global_params")) == {"w", "b"}
    assert gradtx.tree_get(state, "global_params")["w"] is not params["w"]  # donatable copy
    with pytest.raises(ValueError, match=r"diloco: every=0"):
        diloco(gradtx.adamw(0.1), "w", every=0)
    with pytest.raises(ValueError, match="diloco: update needs params"):
        tx.update(params, state)


def test_matches_the_optax_port_corpus_script():
    """``tests/port_corpus/diloco_outer.py`` writes DiLoCo with optax and ``jax.vmap`` the way
    open reimplementations do (inner loops from theta, optax Nesterov outer step): the same
    problem through ``gradtx.diloco`` gives its final theta and outer momentum."""
    spec = importlib.util.spec_from_file_location(
        "corpus_diloco", HERE / "port_corpus" / "diloco_outer.py"
    )
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    want = corpus.main()
    xs, ys = corpus.make_shards()
    workers, every = corpus.WORKERS, corpus.INNER_STEPS
    tx = diloco(gradtx.adamw(1e-2, weight_decay=1e-4), "w", every=every)

    def one(p, s, x, y):
        u, s = tx.update(jax.grad(corpus.loss_fn)(p, x, y), s, p)
        return gradtx.apply_updates(p, u), s

    def body(carry, t):
        h = t % every
        return jax.vmap(one, axis_name="w")(*carry, xs[:, h], ys[:, h]), None

    params = corpus.init(jax.random.key(0))
    start = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (workers, *a.shape)), (params, tx.init(params))
    )
    steps = jnp.arange(every * corpus.OUTER_STEPS)
    _, state = jax.jit(lambda c: jax.lax.scan(body, c, steps)[0])(start)
    theta = jax.tree.map(lambda a: a[0], gradtx.tree_get(state, "global_params"))
    momentum = jax.tree.map(lambda a: a[0], gradtx.tree_get(state, "outer_state"))
    for got, ref in (
        (theta, want["params"]),
        (jax.tree.leaves(momentum), jax.tree.leaves(want["outer_momentum"])),
    ):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            assert rel(a, np.asarray(b)) <= 1e-12


def test_bfloat16_params_get_the_outer_gradient_averaged_in_float32():
    """Two bfloat16 workers at 1 + 2**-7 and 1: their mean 1 + 2**-8 is not a bfloat16 number
    (summed in bfloat16 it rounds to 1 and the outer gradient to 0); averaged in float32 the
    outer gradient is -2**-8 exactly, which the outer momentum stores."""
    tx = diloco(gradtx.sgd(1.0), "w", every=1, outer=gradtx.sgd(1.0, momentum=0.5))
    x = jnp.ones(2, jnp.bfloat16)
    state = jax.vmap(tx.init)(x)

    def one(x, s, g):
        u, s = tx.update(g, s, x)
        return gradtx.apply_updates(x, u), s

    grads = jnp.asarray([-(2.0**-7), 0.0], jnp.bfloat16)
    x, state = jax.vmap(one, axis_name="w")(x, state, grads)
    trace = jax.tree.leaves(gradtx.tree_get(state, "outer_state"))[0]
    assert x.dtype == trace.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(trace, np.float32), [-(2.0**-8)] * 2)


def test_docstring_example_runs():
    import gradtx.diloco

    result = doctest.testmod(gradtx.diloco, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0
