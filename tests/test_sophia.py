"""Sophia with its default Hessian estimator (Hutchinson's, which needs ``obj_fn=``): against
optax with the same key sequence (float64 and float32), against the NumPy reference fed
Hutchinson's estimates computed in NumPy from the same sign draws, and the estimator itself."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from helpers import fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import run
from references.core import Ref
from references.sophia import sophia as sophia_reference

import gradtx
from gradtx.contrib import HutchinsonState, hutchinson_estimator_diag_hessian, sophia

STEPS = 8
CURV = {"dense": {"b": 1.0, "w": 2.0}, "scale": 0.5}
COUPLING = 0.05


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def objective(params):
    """Separable quartic bowls plus ``COUPLING * (sum of all entries)^2``: the Hessian is
    ``diag(c + p^2) + 2 COUPLING`` everywhere, so Hutchinson's estimate is random."""
    terms = jax.tree.map(lambda p, c: jnp.sum(0.5 * c * p**2 + p**4 / 12), params, CURV)
    total = sum(jnp.sum(p) for p in jax.tree.leaves(params))
    return sum(jax.tree.leaves(terms)) + COUPLING * total**2


CASES = [
    {"learning_rate": 0.1, "update_interval": 2},
    {"learning_rate": 0.05, "b1": 0.9, "b2": 0.8, "eps": 1e-3, "gamma": 0.5,
     "clip_threshold": None, "update_interval": 1, "weight_decay": 0.01},
    {"learning_rate": 0.1, "gamma": 1.0, "clip_threshold": 0.3, "update_interval": 3,
     "seed": 5},
]  # fmt: skip


def _estimator(lib, case):
    seed = case.get("seed")
    key = None if seed is None else jax.random.PRNGKey(seed)
    return lib.hutchinson_estimator_diag_hessian(key)


def _build(lib, case):
    kwargs = {k: v for k, v in case.items() if k != "seed"}
    return lib.sophia(**kwargs, hessian_diagonal_fn=_estimator(lib, case))


def _jitted(tx):
    """One compiled step (optax's eager ``lax.cond`` would be traced again at every call)."""
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=objective))
    return gradtx.GradientTransformation(tx.init, update)


@pytest.mark.parametrize("case", CASES, ids=["default", "no_clip", "seeded"])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["f64", "f32"])
def test_matches_optax_with_the_same_keys(case, dtype):
    params, grads = make_params(dtype), make_grads(STEPS, dtype)
    mine, _, state = run_tx(_jitted(_build(gradtx.contrib, case)), params, grads)
    theirs, _, their_state = run_tx(_jitted(_build(optax.contrib, case)), params, grads)
    assert rel_err(mine, theirs) <= (1e-10 if dtype == jnp.float64 else 1e-5)
    hutchinson = gradtx.tree_get(state, "hessian_fn_state")
    np.testing.assert_array_equal(hutchinson.key, their_state[0].hessian_fn_state.key)


class NumpyHutchinson(Ref):
    """``d = z * (H z)`` with the analytic Hessian of ``objective`` and given sign draws."""

    def __init__(self, draws):
        self.draws = draws

    def step(self, grads, params, k, **extra):
        z = self.draws[k - 1]
        total = sum(np.sum(s) for s in z)
        curv = jax.tree.leaves(CURV)
        hz = [
            (c + p**2) * s + 2 * COUPLING * total for c, p, s in zip(curv, params, z, strict=True)
        ]
        return [s * h for s, h in zip(z, hz, strict=True)]


def _sign_draws(seed, params, n):
    """The signs Hutchinson draws, made with optax's tree utilities from the key sequence."""
    key, out = jax.random.PRNGKey(seed), []
    for _ in range(n):
        key, sub = jax.random.split(key)
        signs = optax.tree.random_like(sub, params, jax.random.rademacher, dtype=jnp.float32)
        out.append([np.asarray(s, np.float64) for s in jax.tree.leaves(signs)])
    return out


@pytest.mark.parametrize("case", CASES, ids=["default", "no_clip", "seeded"])
def test_matches_the_reference_given_the_same_estimates(case):
    steps = 12
    params, grads = make_params(), make_grads(steps)
    mine, _, _ = run_tx(_build(gradtx.contrib, case), params, grads, obj_fn=objective)
    kwargs = {k: v for k, v in case.items() if k != "seed"}
    draws = _sign_draws(case.get("seed", 0), params, steps)
    ref = sophia_reference(**kwargs, hessian_diagonal_fn=NumpyHutchinson(draws))
    want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(mine, want) <= 1e-10
    # other draws give other numbers: the key sequence is what is being matched
    ref = sophia_reference(**kwargs, hessian_diagonal_fn=NumpyHutchinson(draws[1:] + draws[:1]))
    wrong, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(mine, wrong) > 1e-4


def test_hutchinson_estimator():
    p = make_params()
    est = hutchinson_estimator_diag_hessian()
    state = est.init(p)
    assert isinstance(state, HutchinsonState)
    # separable objective: z * (H z) is exactly the diagonal, whatever the signs
    quartic = lambda x: sum(jnp.sum(v**4) / 12 for v in jax.tree.leaves(x))
    d, state2 = est.update(p, state, p, obj_fn=quartic)
    for a, b in zip(leaves64(d), leaves64(p), strict=True):
        np.testing.assert_allclose(a, b**2, rtol=1e-14)
    assert not np.array_equal(state2.key, state.key)
    # unbiased: the mean of many estimates approaches the true diagonal of the coupled Hessian
    many = jax.jit(jax.vmap(lambda k: est.update(p, HutchinsonState(k), p, obj_fn=objective)[0]))
    mean = jax.tree.map(lambda x: np.mean(np.asarray(x), axis=0),
                        many(jax.random.split(jax.random.PRNGKey(1), 4000)))  # fmt: skip
    true = jax.tree.map(lambda x, c: c + x**2 + 2 * COUPLING, p, CURV)
    for a, b in zip(leaves64(mean), leaves64(true), strict=True):
        np.testing.assert_allclose(a, b, atol=0.02)
    with pytest.raises(ValueError, match="obj_fn"):
        est.update(p, state, p)
    with pytest.raises(ValueError, match="params"):
        est.update(p, state, None, obj_fn=quartic)


def test_under_jit_and_verbose(capfd):
    params, grads = make_params(), make_grads(3)
    tx = sophia(0.1, update_interval=2, verbose=True, print_win_rate_every_n_steps=1)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=objective))
    eager, _, _ = run_tx(sophia(0.1, update_interval=2), params, grads, obj_fn=objective)
    jitted, _, _ = run_tx(gradtx.GradientTransformation(tx.init, step), params, grads)
    assert rel_err(jitted, eager) <= 1e-12
    jax.effects_barrier()
    assert capfd.readouterr().out.count("win rate") == 3
    with pytest.raises(ValueError, match="obj_fn"):
        sophia(0.1).update(grads[0], sophia(0.1).init(params), params)


def test_hutchinson_docstring_example():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(hutchinson_estimator_diag_hessian, "hutchinson"):
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0
