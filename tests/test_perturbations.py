"""gradtx.perturbations: the perturbed estimator recomputed in NumPy on the same noise draws
(value, Jacobian and Hessian, 1e-12), its expectation against closed forms (Gumbel-max:
``softmax(x / sigma)``; Normal noise on linear and quadratic functions) within 5 standard
errors measured from the samples, exact parity with optax for the same key, and optax's names
and signatures."""

import doctest
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.perturbations as gpert

TIGHT = 1e-12
N = 20_000  # samples for the statistical checks
Z_BOUND = 5.0  # standard errors allowed (deterministic: the key is fixed)


def one_hot_argmax(x):
    return jax.nn.one_hot(jnp.argmax(x), x.shape[-1], dtype=x.dtype)


def draws(noise, key, n, shape):
    """The noise make_perturbed_fun draws for a single-array x (one key per draw, each split
    once more by ``random_like``), and the z it recomputes from ``y = x + sigma z``."""
    keys = jax.random.split(key, n)
    return np.asarray(jax.vmap(lambda k: noise.sample(jax.random.split(k, 1)[0], shape))(keys))


def score(noise_name, z, sigma):
    """d/dx log p((y - x) / sigma) and d^2/dx^2 (diagonal), per sample."""
    if noise_name == "normal":
        return z / sigma, np.full_like(z, -1.0 / sigma**2)
    return (1 - np.exp(-z)) / sigma, -np.exp(-z) / sigma**2


NOISES = {"normal": gpert.Normal(), "gumbel": gpert.Gumbel()}


def numpy_estimator(f, x, z, sigma, noise_name, use_baseline=True):
    """Per-sample terms of the value, Jacobian and (scalar f) Hessian estimators; ``f`` maps a
    batch of inputs, one per row."""
    y = x + sigma * z
    z = (y - x) / sigma  # as the estimator recomputes it
    fy = f(y)
    centred = fy - f(x[None])[0] if use_baseline else fy
    g, h_diag = score(noise_name, z, sigma)
    if fy.ndim == 2:  # vector output: Jacobian terms (f_j(y) - f_j(x)) * score_k
        return fy, centred[:, :, None] * g[:, None, :], None
    hess = centred[:, None, None] * (
        g[:, :, None] * g[:, None, :] + h_diag[:, :, None] * np.eye(x.size)
    )
    return fy, centred[:, None] * g, hess


def assert_unbiased(samples, expected):
    """mean(samples) within Z_BOUND standard errors of expected (entrywise)."""
    mean = samples.mean(axis=0)
    stderr = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(mean - expected) <= Z_BOUND * stderr + 1e-12), np.max(
        np.abs(mean - expected) / (stderr + 1e-300)
    )


# --- completeness --------------------------------------------------------------------------------


def public_callables(module):
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def comparable_default(default):
    # the noise default is an instance: compare its class name
    is_noise = hasattr(default, "sample") and hasattr(default, "log_prob")
    return type(default).__name__ if is_noise else default


def signature_of(fn):
    params = inspect.signature(fn).parameters.values()
    return [(p.name, p.kind, comparable_default(p.default)) for p in params]


def test_every_optax_perturbation_exists_with_optax_signature():
    names = public_callables(optax.perturbations)
    assert names == ["Gumbel", "Normal", "make_perturbed_fun"]
    for name in names:
        ours, theirs = getattr(gpert, name), getattr(optax.perturbations, name)
        assert signature_of(ours) == signature_of(theirs), name
        if inspect.isclass(theirs):
            methods = [m for m in dir(theirs) if not m.startswith("_")]
            for method in methods:
                assert signature_of(getattr(ours, method)) == signature_of(getattr(theirs, method))
    assert sorted(gpert.__all__) == names


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    report = []
    for test in finder.find(gpert, "gradtx.perturbations"):
        runner.run(test, out=report.append)
    assert runner.tries >= 5 and runner.failures == 0, "".join(report)
    for name in gpert.__all__:
        doc = inspect.getdoc(getattr(gpert, name))
        assert f"optax.perturbations.{name}" in doc and "Example:" in doc, name


def test_noise_objects():
    assert gpert.Gumbel() == gpert.Gumbel() and hash(gpert.Normal()) == hash(gpert.Normal())
    key = jax.random.key(1)
    for name in ("Gumbel", "Normal"):
        ours, theirs = getattr(gpert, name)(), getattr(optax.perturbations, name)()
        np.testing.assert_array_equal(ours.sample(key, (3, 2)), theirs.sample(key, (3, 2)))
        z = jnp.linspace(-3, 3, 7)
        np.testing.assert_array_equal(ours.log_prob(z), theirs.log_prob(z))
        assert ours.sample(key, (2,), jnp.float32).dtype == jnp.float32
    z = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(gpert.Gumbel().log_prob(jnp.asarray(z)), -z - np.exp(-z))
    np.testing.assert_allclose(gpert.Normal().log_prob(jnp.asarray(z)), -0.5 * z**2)


# --- estimator vs NumPy on the same draws, and vs its expectation --------------------------------


def test_gumbel_argmax_matches_numpy_and_softmax():
    sigma, key = 0.5, jax.random.key(0)
    x = np.array([0.3, -0.2, 0.5, 0.1])
    z = draws(gpert.Gumbel(), key, N, x.shape)
    s = np.exp(x / sigma) / np.exp(x / sigma).sum()  # Gumbel-max: E onehot(argmax) = softmax
    fns = [gpert.make_perturbed_fun(one_hot_argmax, N, sigma, gpert.Gumbel(), b) for b in (1, 0)]
    results = jax.jit(lambda k, x: [(g(k, x), jax.jacobian(g, argnums=1)(k, x)) for g in fns])(
        key, x
    )
    for use_baseline, (value, jac) in zip((True, False), results, strict=True):
        v_np, j_np, _ = numpy_estimator(
            lambda y: np.eye(4)[np.argmax(y, axis=-1)], x, z, sigma, "gumbel", use_baseline
        )
        np.testing.assert_allclose(value, v_np.mean(0), atol=TIGHT)
        np.testing.assert_allclose(jac, j_np.mean(0), atol=TIGHT)
        assert_unbiased(v_np, s)
        assert_unbiased(j_np, (np.diag(s) - np.outer(s, s)) / sigma)


def test_normal_linear_function_matches_numpy_and_closed_form():
    sigma, key = 0.7, jax.random.key(1)
    rng = np.random.default_rng(0)
    a, b, x = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=2)
    g = gpert.make_perturbed_fun(lambda v: jnp.asarray(a) @ v + b, N, sigma, gpert.Normal())
    value, jac = jax.jit(lambda k, x: (g(k, x), jax.jacobian(g, argnums=1)(k, x)))(key, x)
    z = draws(gpert.Normal(), key, N, x.shape)
    v_np, j_np, _ = numpy_estimator(lambda y: y @ a.T + b, x, z, sigma, "normal")
    np.testing.assert_allclose(value, v_np.mean(0), atol=TIGHT)
    np.testing.assert_allclose(jac, j_np.mean(0), atol=TIGHT)
    assert_unbiased(v_np, a @ x + b)
    assert_unbiased(j_np, a)


def test_hessian_of_quadratic():
    sigma, key = 1.0, jax.random.key(2)
    x = np.array([0.2, -0.4])
    fun = lambda v: 0.5 * jnp.sum(v**2, axis=-1)
    names = ("normal", "gumbel")
    fns = [gpert.make_perturbed_fun(fun, N, sigma, NOISES[name]) for name in names]
    hessians = jax.jit(lambda k, x: [jax.hessian(g, argnums=1)(k, x) for g in fns])(key, x)
    for name, hess in zip(names, hessians, strict=True):
        z = draws(NOISES[name], key, N, x.shape)
        _, _, h_np = numpy_estimator(lambda y: 0.5 * np.sum(y**2, axis=-1), x, z, sigma, name)
        np.testing.assert_allclose(hess, h_np.mean(0), atol=1e-10)
        assert_unbiased(h_np, np.eye(2))  # the smoothed quadratic has the same Hessian


# --- parity with optax and behaviour -------------------------------------------------------------


def tree_argmax(t):
    return jax.tree.map(one_hot_argmax, t)


@pytest.mark.parametrize("noise_name", ["Gumbel", "Normal"])
def test_exact_parity_with_optax(noise_name):
    key = jax.random.key(3)
    x = (jnp.array([0.1, 0.5, -0.3]), {"k": jnp.array([[0.2, 0.1], [0.0, -0.1]])})
    ours_noise = getattr(gpert, noise_name)()
    optax_noise = getattr(optax.perturbations, noise_name)()

    def estimates(make, noise, k, x):
        out = []
        for use_baseline in (True, False):
            g = make(tree_argmax, 300, 0.5, noise, use_baseline)
            out += [g(k, x), jax.jacobian(g, argnums=1)(k, x)]
        g = make(tree_argmax, 300, 0.5, noise)
        loss = lambda k, x: sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(g(k, x)))
        return [*out, jax.hessian(loss, argnums=1)(k, x)]

    ours, theirs, mixed = jax.jit(
        lambda k, x: (
            estimates(gpert.make_perturbed_fun, ours_noise, k, x),
            estimates(optax.perturbations.make_perturbed_fun, optax_noise, k, x),
            # optax's noise objects work here too, with the same numbers
            gpert.make_perturbed_fun(tree_argmax, 300, 0.5, optax_noise)(k, x),
        )
    )(key, x)
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=TIGHT)
    for a, b in zip(jax.tree.leaves(mixed), jax.tree.leaves(theirs[0]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fun_derivative_is_never_used_and_shapes():
    @jax.custom_jvp
    def f(x):
        return x[0, 0] * 2.0

    @f.defjvp
    def _never(primals, tangents):
        raise AssertionError("the derivative of fun was called")

    g = gpert.make_perturbed_fun(f, 10)
    grad = jax.jit(jax.grad(g, argnums=1))(jax.random.key(0), jnp.ones((1, 2)))
    assert grad.shape == (1, 2)


def test_vmap_over_keys_and_float32():
    g = gpert.make_perturbed_fun(lambda v: jnp.max(v), 64, 0.3, gpert.Normal())
    grad = jax.grad(g, argnums=1)
    x = jnp.array([0.1, 0.4, -0.2], dtype=jnp.float32)
    keys = jax.random.split(jax.random.key(4), 3)
    batched, single = jax.jit(lambda ks, x: (jax.vmap(grad, (0, None))(ks, x), grad(ks[1], x)))(
        keys, x
    )
    assert batched.shape == (3, 3) and batched.dtype == jnp.float32
    np.testing.assert_allclose(batched[1], single, rtol=1e-6)
