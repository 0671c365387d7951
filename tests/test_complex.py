"""``gradtx.contrib.split_real_and_imaginary``: complex parameters as pairs of real ones, against
optax (float64 and float32) and against the NumPy references run on the real and imaginary
parts as separate leaves."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from helpers import fast_compile, rel_err
from references import build, run

import gradtx
from gradtx import complex as gcomplex

STEPS = 10
CASES = {
    "adam": (lambda: gradtx.adam(0.05), lambda: optax.adam(0.05),
             ("adam", {"learning_rate": 0.05})),
    "clip_sgd": (lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.sgd(0.1, 0.9)),
                 lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, 0.9)),
                 None),
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _problem(dtype, steps=STEPS, seed=0):
    """Complex params and gradients (a matrix and a vector) and a real scalar leaf."""
    rng = np.random.RandomState(seed)
    cplx = jnp.complex128 if dtype == jnp.float64 else jnp.complex64

    def draw(shape, complex_=True):
        x = rng.randn(*shape) + (1j * rng.randn(*shape) if complex_ else 0)
        return jnp.asarray(x, cplx if complex_ else dtype)

    tree = lambda: {"w": draw((3, 4)), "b": draw((4,)), "s": draw((), False)}
    return tree(), [tree() for _ in range(steps)]


def _run(tx, params, grads):
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = jax.tree.map(lambda p, d: p + d, params, u)
        out.append([np.asarray(x) for x in jax.tree.leaves(u)])
    return out, params


def _as_real(history):
    return [[part for x in step for part in (np.real(x), np.imag(x))] for step in history]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["f64", "f32"])
def test_matches_optax(name, dtype):
    mine_tx, theirs_tx, _ = CASES[name]
    params, grads = _problem(dtype)
    mine, p_mine = _run(gcomplex.split_real_and_imaginary(mine_tx()), params, grads)
    theirs, p_theirs = _run(optax.contrib.split_real_and_imaginary(theirs_tx()), params, grads)
    assert jax.tree.map(jnp.result_type, p_mine) == jax.tree.map(jnp.result_type, p_theirs)
    tol = 1e-10 if dtype == jnp.float64 else 1e-5
    assert rel_err(_as_real(mine), _as_real(theirs)) <= tol


def test_matches_the_numpy_reference_on_split_leaves():
    """Adam on ``z = x + iy`` is Adam on the real leaves ``x`` and ``y``."""
    params, grads = _problem(jnp.float64, steps=30)
    mine, _ = _run(gcomplex.split_real_and_imaginary(gradtx.adam(0.05)), params, grads)

    def halves(leaves):  # complex leaves as (real, imaginary), real ones as they are
        out = []
        for x in map(np.asarray, leaves):
            out += [x.real, x.imag] if np.iscomplexobj(x) else [x]
        return out

    ref = build("adam", {"learning_rate": 0.05})
    want, _ = run(ref, halves(jax.tree.leaves(params)), [halves(jax.tree.leaves(g)) for g in grads])
    assert rel_err([halves(step) for step in mine], want) <= 1e-10
    # the split matters: Adam on the complex leaves directly (|g|^2 mixes the parts) differs
    joint, _ = _run(gradtx.adam(0.05), params, grads)
    assert rel_err(_as_real(joint), _as_real(mine)) > 1e-3


def test_state_and_real_leaves():
    params, grads = _problem(jnp.float64, steps=1)
    tx = gcomplex.split_real_and_imaginary(gradtx.adam(0.05))
    state = tx.init(params)
    assert isinstance(state, gradtx.contrib.SplitRealAndImaginaryState)
    mu = gradtx.tree_get(state, "mu")
    assert isinstance(mu["w"], gcomplex.SplitRealAndImaginaryArrays)
    assert mu["w"].real.dtype == jnp.float64 and mu["s"].dtype == jnp.float64
    u, _ = tx.update(grads[0], state, params)
    plain, _ = gradtx.adam(0.05).update(grads[0], gradtx.adam(0.05).init(params), params)
    np.testing.assert_array_equal(u["s"], plain["s"])  # a real leaf passes through
    assert u["w"].dtype == jnp.complex128
    # under jit, with an extra keyword forwarded to the inner transformation
    u_jit, _ = jax.jit(lambda g, s, p: tx.update(g, s, p, value=1.0))(grads[0], state, params)
    np.testing.assert_allclose(u_jit["w"], u["w"], rtol=1e-14)
    assert gradtx.contrib.split_real_and_imaginary is gcomplex.split_real_and_imaginary


def test_docstring_example():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(gcomplex.split_real_and_imaginary, "split_real_and_imaginary"):
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0
