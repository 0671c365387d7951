"""gradtx.second_order: Hessian-vector products, Hessian diagonal and Fisher diagonal against
``jax.hessian`` and closed forms (least squares: ``H = X^T X``), parity with optax (float64,
1e-12), transformations (jit, vmap, grad) and optax's names and signatures."""

import doctest
import inspect
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import flatten_util

import gradtx.second_order as so

TIGHT = 1e-12


def mlp_loss(params, inputs, targets):
    hidden = jnp.tanh(inputs @ params["w1"] + params["b1"])
    return jnp.mean((hidden @ params["w2"] - targets) ** 2) + 0.1 * jnp.sum(jnp.cos(params["b1"]))


def least_squares(w, inputs, targets):
    return 0.5 * jnp.sum((inputs @ w - targets) ** 2)


def problem(seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    params = {
        "w1": jnp.asarray(rng.normal(size=(3, 4)), dtype),
        "b1": jnp.asarray(rng.normal(size=4), dtype),
        "w2": jnp.asarray(rng.normal(size=4), dtype),
    }
    inputs = jnp.asarray(rng.normal(size=(5, 3)), dtype)
    targets = jnp.asarray(rng.normal(size=5), dtype)
    return params, inputs, targets


def full_hessian(loss, params, inputs, targets):
    flat, unravel = flatten_util.ravel_pytree(params)
    return jax.hessian(lambda f: loss(unravel(f), inputs, targets))(flat)


def ravel(tree):
    return flatten_util.ravel_pytree(tree)[0]


# --- completeness --------------------------------------------------------------------------------


def public_callables(module):
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def signature_of(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_every_optax_second_order_function_exists_with_optax_signature():
    names = public_callables(optax.second_order)
    assert names == ["fisher_diag", "hessian_diag", "hvp"]
    for name in names:
        assert hasattr(so, name), f"gradtx.second_order.{name} missing"
        assert signature_of(getattr(so, name)) == signature_of(getattr(optax.second_order, name))
    assert sorted(so.__all__) == names


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    report = []
    for test in finder.find(so, "gradtx.second_order"):
        runner.run(test, out=report.append)
    assert runner.tries >= 3 and runner.failures == 0, "".join(report)
    for name in so.__all__:
        doc = inspect.getdoc(getattr(so, name))
        assert f"optax.second_order.{name}" in doc and "Example:" in doc, name


# --- references ----------------------------------------------------------------------------------


@jax.jit
def mlp_quantities(params, inputs, targets, v):
    return {
        "hvp": ravel(so.hvp(mlp_loss, v, params, inputs, targets)),
        "diag": so.hessian_diag(mlp_loss, params, inputs, targets),
        "fisher": so.fisher_diag(mlp_loss, params, inputs, targets),
        "hessian": full_hessian(mlp_loss, params, inputs, targets),
        "grad": ravel(jax.grad(mlp_loss)(params, inputs, targets)),
    }


def test_against_jax_hessian():
    params, inputs, targets = problem()
    v = jnp.asarray(np.random.default_rng(1).normal(size=20))
    q = mlp_quantities(params, inputs, targets, v)
    h = np.asarray(q["hessian"])
    scale = np.abs(h).max()
    np.testing.assert_allclose(q["hvp"], h @ np.asarray(v), atol=TIGHT * scale * 20)
    np.testing.assert_allclose(q["diag"], np.diag(h), atol=TIGHT * scale)
    np.testing.assert_array_equal(q["fisher"], np.asarray(q["grad"]) ** 2)


def test_least_squares_closed_forms():
    rng = np.random.default_rng(2)
    x, y, w = rng.normal(size=(6, 4)), rng.normal(size=6), rng.normal(size=4)
    v = rng.normal(size=4)
    args = (jnp.asarray(w), jnp.asarray(x), jnp.asarray(y))
    out = jax.jit(
        lambda w, x, y, v: (
            so.hvp(least_squares, v, w, x, y),
            so.hessian_diag(least_squares, w, x, y),
            so.fisher_diag(least_squares, w, x, y),
        )
    )(*args, jnp.asarray(v))
    np.testing.assert_allclose(out[0], x.T @ x @ v, rtol=TIGHT)
    np.testing.assert_allclose(out[1], np.sum(x**2, axis=0), rtol=TIGHT)
    np.testing.assert_allclose(out[2], (x.T @ (x @ w - y)) ** 2, rtol=1e-10)


def test_parity_with_optax_float64():
    params, inputs, targets = problem(3)
    v = jnp.asarray(np.random.default_rng(4).normal(size=20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optax deprecates the namespace
        theirs = jax.jit(
            lambda p, x, y, v: (
                optax.second_order.hvp(mlp_loss, v, p, x, y),
                optax.second_order.hessian_diag(mlp_loss, p, x, y),
                optax.second_order.fisher_diag(mlp_loss, p, x, y),
            )
        )(params, inputs, targets, v)
    ours = jax.jit(
        lambda p, x, y, v: (
            so.hvp(mlp_loss, v, p, x, y),
            so.hessian_diag(mlp_loss, p, x, y),
            so.fisher_diag(mlp_loss, p, x, y),
        )
    )(params, inputs, targets, v)
    assert jax.tree.structure(ours[0]) == jax.tree.structure(theirs[0])  # hvp: a params tree
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=TIGHT)


def test_no_deprecation_warning():
    params, inputs, targets = problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jax.jit(partial(so.fisher_diag, mlp_loss))(params, inputs, targets)
        jax.jit(partial(so.hvp, mlp_loss))(jnp.ones(20), params, inputs, targets)


def test_float32_params_with_float64_enabled():
    # optax: jnp.eye is float64 here and jvp rejects the float32/float64 mix
    params, inputs, targets = problem(5, jnp.float32)
    diag = jax.jit(partial(so.hessian_diag, mlp_loss))(params, inputs, targets)
    assert diag.dtype == jnp.float32
    h = jax.jit(partial(full_hessian, mlp_loss))(*problem(5, jnp.float64))
    np.testing.assert_allclose(diag, np.diag(h), atol=1e-5)
    # a float64 vector
    out = jax.jit(partial(so.hvp, mlp_loss))(jnp.ones(20), params, inputs, targets)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(TypeError):
            jax.jit(partial(optax.second_order.hessian_diag, mlp_loss))(params, inputs, targets)


def test_vmap_and_grad():
    params, inputs, targets = problem(6)
    vs = jnp.asarray(np.random.default_rng(7).normal(size=(3, 20)))

    @jax.jit
    def run(params, inputs, targets, vs):
        batched = jax.vmap(lambda v: ravel(so.hvp(mlp_loss, v, params, inputs, targets)))(vs)
        # d/dinputs of the Hessian's trace, two ways
        trace = lambda x: jnp.sum(so.hessian_diag(mlp_loss, params, x, targets))
        reference = lambda x: jnp.trace(full_hessian(mlp_loss, params, x, targets))
        return (
            batched,
            full_hessian(mlp_loss, params, inputs, targets),
            (
                jax.grad(trace)(inputs),
                jax.grad(reference)(inputs),
            ),
        )

    batched, h, (g, g_ref) = run(params, inputs, targets, vs)
    np.testing.assert_allclose(batched, np.asarray(vs) @ np.asarray(h).T, atol=1e-11)
    np.testing.assert_allclose(g, g_ref, atol=1e-11)
