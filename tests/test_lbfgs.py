"""L-BFGS and the line searches on real objectives (a quadratic, Rosenbrock, a logistic
regression), float64, optax's documented loop with ``value_and_grad_from_state``, each step
compiled whole: against optax (<= 1e-10 over the trajectory), against the NumPy references
(``tests/references/quasi_newton.py``, ``linesearch.py``) and to convergence.

The registry's cross-cutting tests run the same entries on the harness's random gradients;
here the directions are gradients of the objective the line search evaluates.  Trajectories
are compared until the gradient is ~1e-7: past that, differences in the last bits decide the
line search's branches (on both sides alike) and trajectories part.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import fast_compile
from references.linesearch import Backtracking, Zoom
from references.quasi_newton import LBFGS

import gradtx

# --- the objectives, in JAX and in NumPy (value and gradient written out) ---------------------

RNG = np.random.RandomState(3)
Q = RNG.randn(5, 5)
Q = Q @ Q.T / 5 + 0.5 * np.eye(5)  # condition number ~10
C = RNG.randn(5)
X, Y = RNG.randn(24, 3), (RNG.rand(24) > 0.5).astype(np.float64)


def quad(w):
    return 0.5 * w["a"] @ jnp.asarray(Q) @ w["a"] + jnp.asarray(C) @ w["a"] + jnp.sum(w["b"] ** 2)


def quad_np(ws):
    a, b = ws
    return 0.5 * a @ Q @ a + C @ a + np.sum(b**2), [Q @ a + C, 2 * b]


def rosen(w):
    return jnp.sum(100.0 * (w[1:] - w[:-1] ** 2) ** 2 + (1 - w[:-1]) ** 2)


def rosen_np(ws):
    (w,) = ws
    d = w[1:] - w[:-1] ** 2
    g = np.zeros_like(w)
    g[:-1] += -400.0 * w[:-1] * d - 2 * (1 - w[:-1])
    g[1:] += 200.0 * d
    return np.sum(100.0 * d**2 + (1 - w[:-1]) ** 2), [g]


def logreg(w):
    z = jnp.asarray(X) @ w["w"] + w["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - jnp.asarray(Y) * z) + 0.01 * jnp.sum(w["w"] ** 2)


def logreg_np(ws):
    b, w = ws  # leaves in jax.tree order: "b" before "w"
    z = X @ w + b
    r = (1 / (1 + np.exp(-z)) - Y) / len(Y)
    value = np.mean(np.logaddexp(0.0, z) - Y * z) + 0.01 * np.sum(w**2)
    return value, [np.sum(r), X.T @ r + 0.02 * w]


PROBLEMS = {
    "quad": (quad, quad_np, {"a": jnp.ones(5), "b": jnp.full(2, 0.5)}),
    "rosen": (rosen, rosen_np, jnp.asarray([-1.2, 1.0])),
    "logreg": (logreg, logreg_np, {"w": jnp.zeros(3), "b": jnp.zeros(())}),
}

# --- the configurations: (build from a module, NumPy reference, problem, steps) ----------------


def _zoom_options(m):
    return m.scale_by_zoom_linesearch(
        8, max_learning_rate=2.0, increase_factor=3.0, slope_rtol=1e-3, curv_rtol=0.5,
        approx_dec_rtol=None, stepsize_precision=1e-3, initial_guess_strategy="keep",
    )  # fmt: skip


def _backtracking_options(m):
    return m.scale_by_backtracking_linesearch(
        20, slope_rtol=0.3, decrease_factor=0.5, increase_factor=2.0, max_learning_rate=1.5,
        store_grad=True,
    )  # fmt: skip


CONFIGS = {
    "lbfgs": (
        lambda m: m.lbfgs(),
        lambda: LBFGS(None, 10, True, Zoom(20, None, 0.0, 2.0, 1e-4, 0.9, 1e-6, 1e-5, "one")),
        "rosen", 34,
    ),
    "lbfgs_m3_unscaled": (
        lambda m: m.lbfgs(memory_size=3, scale_init_precond=False),
        lambda: LBFGS(None, 3, False, Zoom(20, None, 0.0, 2.0, 1e-4, 0.9, 1e-6, 1e-5, "one")),
        "logreg", 8,
    ),
    "lbfgs_zoom_options": (
        lambda m: m.lbfgs(memory_size=4, linesearch=_zoom_options(m)),
        lambda: LBFGS(None, 4, True, Zoom(8, 2.0, 0.0, 3.0, 1e-3, 0.5, None, 1e-3, "keep")),
        "quad", 10,
    ),
    "lbfgs_backtracking": (
        lambda m: m.lbfgs(linesearch=_backtracking_options(m)),
        lambda: LBFGS(None, 10, True, Backtracking(20, 0.3, 0.5, 2.0, 1.5, 0.0, 0.0)),
        "rosen", 20,  # Rosenbrock's valley amplifies rounding: ~1e-9 apart after 30 steps
    ),
    "sgd_zoom": (
        lambda m: m.chain(m.sgd(1.0), m.scale_by_zoom_linesearch(15, curv_rtol=jnp.inf)),
        lambda: _Descent(Zoom(15, None, 0.0, 2.0, 1e-4, np.inf, 1e-6, 1e-5, "keep")),
        "quad", 12,
    ),
}  # fmt: skip
IDS = list(CONFIGS)


class _Descent:
    """``-g`` then a line search (the reference of ``chain(sgd(1), linesearch)``)."""

    needs_objective = True

    def __init__(self, linesearch):
        self.linesearch = linesearch

    def init(self, params):
        self.linesearch.init(params)

    def step(self, grads, params, t, value=None, objective=None):
        u = [-g for g in grads]
        return self.linesearch.step(u, params, t, value=value, objective=objective)


def _run(module, tx, fn, params, steps):
    """Params after each of ``steps`` steps of optax's documented loop, compiled whole."""
    value_and_grad = module.value_and_grad_from_state(fn)

    def step(carry, _):
        w, state = carry
        value, grad = value_and_grad(w, state=state)
        u, state = tx.update(grad, state, w, value=value, grad=grad, value_fn=fn)
        w = module.apply_updates(w, u)
        return (w, state), w

    with fast_compile():
        return jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), None, length=steps))(params)


@functools.cache
def trajectory(config: str, library: str):
    build, _, problem, steps = CONFIGS[config]
    module = gradtx if library == "gradtx" else optax
    fn, _, params = PROBLEMS[problem]
    (_, state), path = _run(module, build(module), fn, params, steps)
    return [np.asarray(x) for x in jax.tree.leaves(path)], state


def numpy_trajectory(config: str):
    _, make_ref, problem, steps = CONFIGS[config]
    _, objective, params = PROBLEMS[problem]
    ws = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    ref = make_ref()
    ref.init(ws)
    path = []
    for t in range(1, steps + 1):
        value, grad = objective(ws)
        u = ref.step(grad, ws, t, value=value, objective=objective)
        ws = [w + d for w, d in zip(ws, u, strict=True)]
        path.append(ws)
    return [np.stack([w[i] for w in path]) for i in range(len(ws))]


def worst(got, want) -> float:
    """Worst over steps and leaves of ``max|got - want| / max|want|``."""
    return max(
        float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
        for a, b in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("config", IDS)
def test_float64_trajectory_matches_optax(config):
    assert worst(trajectory(config, "gradtx")[0], trajectory(config, "optax")[0]) <= 1e-10


# the NumPy gradient of Rosenbrock rounds differently from JAX's, and the curved valley
# amplifies that (1e-10 after 13 steps, 1e-8 after 25): the default's reference run stops at 10
NUMPY_STEPS = {"lbfgs": 10}


@pytest.mark.parametrize("config", IDS)
def test_float64_trajectory_matches_numpy_reference(config):
    want = numpy_trajectory(config)
    n = NUMPY_STEPS.get(config, len(want[0]))
    got = [x[:n] for x in trajectory(config, "gradtx")[0]]
    assert worst(got, [x[:n] for x in want]) <= 1e-10


def test_the_comparison_can_fail():
    """A 0.2% change of the backtracking factor shows in the trajectory."""
    _, _, problem, steps = CONFIGS["lbfgs_backtracking"]
    fn, _, params = PROBLEMS[problem]
    other = gradtx.scale_by_backtracking_linesearch(
        20, slope_rtol=0.3, decrease_factor=0.501, increase_factor=2.0, max_learning_rate=1.5,
        store_grad=True,
    )  # fmt: skip
    _, path = _run(gradtx, gradtx.lbfgs(linesearch=other), fn, params, steps)
    got = [np.asarray(x) for x in jax.tree.leaves(path)]
    assert worst(got, trajectory("lbfgs_backtracking", "gradtx")[0]) > 1e-6


def test_lbfgs_converges_on_rosenbrock():
    """From Rosenbrock's classic start (-1.2, 1) the default L-BFGS reaches f < 1e-8 in 34
    steps (f = 3.9e-10 after 33), with the zoom search's information in the state."""
    (path,), state = trajectory("lbfgs", "gradtx")
    assert rosen(jnp.asarray(path[-1])) < 1e-8
    np.testing.assert_allclose(path[-1], 1.0, atol=1e-4)
    info = gradtx.tree_get(state, "info")
    assert int(info.num_linesearch_steps) >= 1


def test_state_fields_are_optaxs():
    w = jnp.ones(3)
    state = gradtx.lbfgs(memory_size=4).init(w)
    lbfgs_state = state.inner[0]
    assert isinstance(lbfgs_state, gradtx.ScaleByLBFGSState)
    assert lbfgs_state.diff_params_memory.shape == (4, 3)
    assert lbfgs_state.weights_memory.shape == (4,)
    zoom = gradtx.tree_get(state, "info")
    assert isinstance(zoom, gradtx.ZoomLinesearchInfo)
    fields = set(optax.ScaleByZoomLinesearchState._fields)
    assert set(gradtx.ScaleByZoomLinesearchState._fields) == fields
    back = gradtx.scale_by_backtracking_linesearch(3).init(w).inner[0]
    assert type(back)._fields == optax.ScaleByBacktrackingLinesearchState._fields
    assert back.grad is None  # store_grad=False, as in optax


def test_value_and_grad_from_state_reuses_the_line_search_evaluation():
    calls = []

    def f(w):
        calls.append(1)
        return jnp.sum((w - 1.0) ** 2)

    opt = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_backtracking_linesearch(3, store_grad=True))
    w = jnp.zeros(2)
    state = opt.init(w)
    value_and_grad = gradtx.value_and_grad_from_state(f)
    value, grad = value_and_grad(w, state=state)  # first step: computed
    np.testing.assert_allclose(grad, [-2.0, -2.0])
    _, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
    # accepted: eta = 0.8, w = 1.6, where grad f = 2 (w - 1)
    np.testing.assert_allclose(gradtx.tree_get(state, "grad"), [1.2, 1.2], rtol=1e-12)
    stored = gradtx.tree_get(state, "value")
    calls.clear()
    value, _ = value_and_grad(w + 100.0, state=state)  # the stored pair, whatever the params
    assert float(value) == float(stored)
    no_grad = gradtx.scale_by_backtracking_linesearch(3).init(w)
    with pytest.raises(ValueError, match="store_grad=True"):
        value_and_grad(w, state=no_grad)


def test_missing_objective_raises_a_clear_error():
    w = jnp.ones(2)
    for tx in (gradtx.scale_by_zoom_linesearch(3), gradtx.scale_by_backtracking_linesearch(3)):
        with pytest.raises(ValueError, match="value_fn="):
            tx.update(w, tx.init(w), w, value=jnp.asarray(1.0))


def test_construction_checks():
    with pytest.raises(ValueError, match="initial_guess_strategy"):
        gradtx.scale_by_zoom_linesearch(5, initial_guess_strategy="two")
    with pytest.raises(ValueError, match="approx_dec_rtol"):
        gradtx.scale_by_zoom_linesearch(5, approx_dec_rtol=-1.0)
    with pytest.raises(ValueError, match="memory_size"):
        gradtx.lbfgs(memory_size=0)
    gradtx.scale_by_zoom_linesearch(5, approx_dec_rtol=None)  # Armijo's criterion alone


def test_extra_arguments_reach_the_objective():
    """``value_fn``'s other keyword arguments (a batch) are passed through ``update``."""

    def f(w, target):
        return jnp.sum((w - target) ** 2)

    tx = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_backtracking_linesearch(10))
    w, target = jnp.zeros(2), jnp.asarray([1.0, 2.0])
    value, grad = jax.value_and_grad(f)(w, target)
    u, _ = tx.update(grad, tx.init(w), w, value=value, grad=grad, value_fn=f, target=target)
    assert float(f(w + u, target)) < float(value)


# --- torch.optim.LBFGS: several iterations per step, its own line search -------------------------

TORCH_CONFIGS = [
    {},
    {"line_search_fn": "strong_wolfe", "lr": 4.0, "history_size": 3},  # overshoots: zooms
    {"line_search_fn": "strong_wolfe", "max_iter": 4, "history_size": 2, "max_eval": 6},
    {"line_search_fn": "strong_wolfe", "lr": 0.05, "max_iter": 6},  # too short: grows first
    {"lr": 0.5, "max_iter": 5, "history_size": 3, "tolerance_change": 1e-5},
]
LS_A, LS_B = RNG.randn(6, 4), RNG.randn(6)


def _torch_problem(w, lib):
    """A least-squares and a logistic term (well conditioned: torch's L-BFGS without a line
    search is chaotic on Rosenbrock-like problems)."""
    r = lib.asarray(LS_A) @ w[0] - lib.asarray(LS_B)
    z = lib.asarray(X) @ w[1]
    soft = lib.logaddexp(lib.asarray(0.0), z)
    return 0.5 * lib.sum(r**2) + lib.mean(soft - lib.asarray(Y) * z) + 0.1 * lib.sum(w[1] ** 2)


@pytest.mark.parametrize("kwargs", TORCH_CONFIGS, ids=lambda k: "-".join(map(str, k.values())))
def test_torch_lbfgs_matches_torch(kwargs):
    import torch

    from gradtx.torch_compat.lbfgs import torch_lbfgs

    class T:  # the array functions _torch_problem needs, for torch
        asarray = staticmethod(lambda x: torch.as_tensor(x, dtype=torch.float64))
        sum, mean, logaddexp = torch.sum, torch.mean, torch.logaddexp

    w0 = [np.zeros(4), np.full(3, 0.3)]
    ws = [torch.tensor(w, requires_grad=True) for w in w0]
    opt = torch.optim.LBFGS(ws, **kwargs)

    def closure():
        opt.zero_grad()
        loss = _torch_problem(ws, T)
        loss.backward()
        return loss

    want = []
    for _ in range(3):
        opt.step(closure)
        want.append(np.concatenate([w.detach().numpy().copy() for w in ws]))

    f = lambda w: _torch_problem(w, jnp)
    torch_state = opt.state[ws[0]]
    # torch_lbfgs, and (for two configurations) the same through from_torch, which keeps the
    # lr live in its state
    makers = [torch_lbfgs] + (
        [lambda **k: gradtx.from_torch("LBFGS", **k)] if kwargs in TORCH_CONFIGS[:2] else []
    )
    for make in makers:
        tx = make(**kwargs)

        def step(w, state, tx=tx):
            u, state = tx.update(jax.grad(f)(w), state, w, value_fn=f)
            return gradtx.apply_updates(w, u), state

        w = [jnp.asarray(x) for x in w0]
        state, got = tx.init(w), []
        with fast_compile():
            step = jax.jit(step)
            for _ in range(3):
                w, state = step(w, state)
                got.append(np.concatenate([np.asarray(x) for x in w]))
        assert worst(got, want) <= 1e-10
        assert int(gradtx.tree_get(state, "n_iter")) == torch_state["n_iter"]
        assert int(gradtx.tree_get(state, "func_evals")) == torch_state["func_evals"]
