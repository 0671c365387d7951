"""``gradtx.numerics`` against optax 0.2.8 and NumPy/SciPy float64 references.

Every optax top-level name from optax's numerics, linear algebra, utils and tree modules exists in
gradtx with optax's parameters and (float64, to 1e-12) optax's numbers, except where gradtx is
deliberately different: ``matrix_inverse_pth_root`` for ``p`` not in {1, 2, 4, 8} (optax's is
wrong there), ``multi_normal(...).log_prob`` at extreme scales (optax's overflows) and
``scale_gradient`` with a traced scale (optax's fails).
"""

from __future__ import annotations

import doctest
import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import gradtx.numerics as gn
import gradtx.tree as gt

RNG = np.random.default_rng(1)
X = RNG.normal(size=(5, 5))
SPD = jnp.asarray(X @ X.T + 0.5 * np.eye(5))

# optax's top-level names from the modules this file covers, and where gradtx has them
TOP_LEVEL = {
    "bias_correction": gt.bias_correction,  # gradtx's top-level bias_correction is a block
    "global_norm": gn.global_norm,
    "matrix_inverse_pth_root": gn.matrix_inverse_pth_root,
    "multi_normal": gn.multi_normal,
    "nnls": gn.nnls,
    "power_iteration": gn.power_iteration,
    "safe_increment": gn.safe_increment,
    "safe_int32_increment": gn.safe_int32_increment,
    "safe_norm": gn.safe_norm,
    "safe_root_mean_squares": gn.safe_root_mean_squares,
    "scale_gradient": gn.scale_gradient,
    "tree_map_params": gt.map_params,
    "update_infinity_moment": gn.update_infinity_moment,
    "update_moment": gn.update_moment,
    "update_moment_per_elem_norm": gn.update_moment_per_elem_norm,
}
MODULES = ("optax._src.linear_algebra", "optax._src.numerics", "optax._src.utils", "optax.tree")


def test_every_top_level_name_exists_with_its_signature():
    theirs = {
        n
        for n in dir(optax)
        if not n.startswith("_")
        and callable(getattr(optax, n))
        and inspect.unwrap(getattr(optax, n)).__module__.startswith(MODULES)
    }
    assert theirs == set(TOP_LEVEL)
    for name, ours in TOP_LEVEL.items():
        a = list(inspect.signature(ours).parameters.values())
        b = list(inspect.signature(getattr(optax, name)).parameters.values())
        assert [(p.name, p.kind) for p in a] == [(p.name, p.kind) for p in b], name
        for p, q in zip(a, b, strict=True):
            assert p.default is q.default or p.default == q.default, (name, p, q)
    assert set(gn.__all__) == set(TOP_LEVEL) - {"bias_correction", "tree_map_params"}
    assert gn.safe_int32_increment is gn.safe_increment
    assert gn.update_moment is gt.update_moment


def test_examples_in_docstrings_run():
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    failures, tries = doctest.testmod(gn, optionflags=flags)
    assert tries > 15 and failures == 0


def test_global_norm_and_moments_match_optax():
    tree = {"a": jnp.asarray(RNG.normal(size=(3, 2))), "b": [jnp.asarray(RNG.normal(size=4))]}
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = optax.global_norm(tree)
    assert float(gn.global_norm(tree)) == pytest.approx(float(theirs), rel=1e-14)
    assert float(gn.global_norm(tree)) == pytest.approx(np.linalg.norm(flat), rel=1e-14)
    m = jax.tree.map(jnp.abs, tree)
    for name, args in [
        ("update_moment", (0.9, 2)),
        ("update_moment_per_elem_norm", (0.9, 2)),
        ("update_infinity_moment", (0.9, 1e-8)),
    ]:
        got, want = getattr(gn, name)(tree, m, *args), getattr(optax, name)(tree, m, *args)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-15)


# --- safe norms and counters --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"ord": 1},
        {"ord": np.inf},
        {"axis": 1},
        {"axis": 0, "keepdims": True},
        {"ord": 3, "axis": -1},
        {"ord": "fro", "axis": (0, 1)},
        {"ord": 1, "axis": (0, 1), "keepdims": True},
    ],
    ids=str,
)
def test_safe_norm_matches_numpy_and_optax(kw):
    x = jnp.asarray(RNG.normal(size=(3, 4)))
    x = x.at[0].set(0.0)  # a zero row: below min_norm along axis 1
    ord_, axis, keepdims = kw.get("ord"), kw.get("axis"), kw.get("keepdims", False)
    if axis is None and ord_ is not None:
        x = x.ravel()
    want = np.maximum(np.linalg.norm(np.asarray(x), ord_, axis, keepdims), 0.5)
    got = gn.safe_norm(x, 0.5, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(got, optax.safe_norm(x, 0.5, **kw), rtol=1e-14)
    assert got.shape == want.shape
    grad = jax.grad(lambda v: jnp.sum(gn.safe_norm(v, 0.5, **kw)))(x)
    np.testing.assert_allclose(grad, jax.grad(lambda v: jnp.sum(optax.safe_norm(v, 0.5, **kw)))(x))
    assert np.all(np.isfinite(grad))


def test_safe_norms_have_zero_gradient_at_zero():
    for fn in (gn.safe_norm, gn.safe_root_mean_squares):
        assert float(fn(jnp.zeros(3), 1e-6)) == pytest.approx(1e-6)
        np.testing.assert_array_equal(jax.grad(lambda v, f=fn: f(v, 1e-6))(jnp.zeros(3)), 0.0)
    x = jnp.asarray(RNG.normal(size=7))
    want = np.sqrt(np.mean(np.asarray(x) ** 2))
    assert float(gn.safe_root_mean_squares(x, 1e-3)) == pytest.approx(want, rel=1e-14)
    assert float(gn.safe_root_mean_squares(x, 1e-3)) == float(optax.safe_root_mean_squares(x, 1e-3))
    np.testing.assert_allclose(
        jax.grad(gn.safe_root_mean_squares)(x, 1e-3), np.asarray(x) / (x.size * want), rtol=1e-14
    )
    z = jnp.asarray([3 + 4j, 0j])
    assert float(gn.safe_root_mean_squares(z, 0.1)) == pytest.approx(np.sqrt(12.5), rel=1e-15)


def test_safe_increment():
    for dt in (jnp.int32, jnp.int64, jnp.uint8, jnp.float32):
        top = jnp.iinfo(dt).max if jnp.issubdtype(dt, jnp.integer) else jnp.finfo(dt).max
        for count, want in [(jnp.asarray(5, dt), 6), (jnp.asarray(top, dt), top)]:
            got = jax.jit(gn.safe_increment)(count)
            assert got.dtype == dt and got == jnp.asarray(want, dt)
            assert got == optax.safe_increment(count)
    with pytest.raises(ValueError, match="dtype"):
        gn.safe_increment(jnp.asarray(True))


# --- linear algebra -----------------------------------------------------------------------------


def test_power_iteration_matches_numpy_and_optax():
    w, v = np.linalg.eigh(np.asarray(SPD))
    lam, vec = gn.power_iteration(SPD, num_iters=500, error_tolerance=1e-12)
    assert float(lam) == pytest.approx(w[-1], rel=1e-10)
    assert abs(float(np.dot(vec, v[:, -1]))) == pytest.approx(1.0, rel=1e-10)
    for kw in [{}, {"key": jax.random.PRNGKey(4), "num_iters": 7}, {"v0": jnp.ones(5)}]:
        ours, theirs = gn.power_iteration(SPD, **kw), optax.power_iteration(SPD, **kw)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    # a matrix-free operator on a tree, under jit
    op = lambda t: {"x": SPD @ t["x"]}
    lam, vec = jax.jit(lambda v0: gn.power_iteration(op, v0=v0, num_iters=500))({"x": jnp.ones(5)})
    assert float(lam) == pytest.approx(w[-1], rel=1e-6) and set(vec) == {"x"}
    with pytest.raises(ValueError, match="v0"):
        gn.power_iteration(op)


def _inverse_root(a, p, ridge=1e-6):
    w, v = np.linalg.eigh(np.asarray(a))
    return (v * (w + ridge * w.max()) ** (-1.0 / p)) @ v.T


def test_matrix_inverse_pth_root_matches_optax_for_powers_of_two():
    for p in (1, 2, 4, 8):
        root, err = gn.matrix_inverse_pth_root(SPD, p)
        theirs, their_err = optax.matrix_inverse_pth_root(SPD, p)
        np.testing.assert_allclose(root, theirs, rtol=1e-12, atol=1e-14)
        assert float(err) == pytest.approx(float(their_err), rel=1e-9, abs=1e-15)
        np.testing.assert_allclose(root, _inverse_root(SPD, p), atol=1e-6)
    one = jnp.asarray([[4.0]])
    root, err = gn.matrix_inverse_pth_root(one, 2)
    np.testing.assert_allclose(root, optax.matrix_inverse_pth_root(one, 2)[0], rtol=1e-12)
    assert float(root[0, 0]) == pytest.approx(0.5, rel=1e-5) and err == 0


def test_matrix_inverse_pth_root_is_right_for_every_p():
    """optax raises the iterate to the nearest power of two (p = 3 -> 4, p = 16 -> 8): its root is
    ~1e-2 off while it reports a tiny error."""
    for p in (3, 5, 16):
        root, err = gn.matrix_inverse_pth_root(SPD, p)
        np.testing.assert_allclose(root, _inverse_root(SPD, p), atol=1e-6)
        assert float(err) < 1e-5
        theirs, _ = optax.matrix_inverse_pth_root(SPD, p)
        assert np.max(np.abs(np.asarray(theirs) - _inverse_root(SPD, p))) > 1e-3
    traced = jax.jit(gn.matrix_inverse_pth_root)(SPD, 3)  # p as a traced integer
    np.testing.assert_allclose(traced[0], gn.matrix_inverse_pth_root(SPD, 3)[0], rtol=1e-10)
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            gn.matrix_inverse_pth_root(SPD, bad)


def test_nnls_matches_optax_and_scipy():
    a = jnp.asarray(RNG.normal(size=(8, 4)))
    b = jnp.asarray(RNG.normal(size=8))
    x = gn.nnls(a, b, 3000)
    np.testing.assert_allclose(x, optax.nnls(a, b, 3000), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x, scipy.optimize.nnls(np.asarray(a), np.asarray(b))[0], atol=1e-8)
    assert np.all(np.asarray(x) >= 0)
    bs = jnp.stack([b, -b, 2 * b], axis=1)  # a batch of right-hand sides
    xs = jax.jit(gn.nnls, static_argnums=(2, 3))(a, bs, 3000, 4)
    for k in range(3):
        want = scipy.optimize.nnls(np.asarray(a), np.asarray(bs[:, k]))[0]
        np.testing.assert_allclose(xs[:, k], want, atol=1e-8)
    big_l = 10 * float(jnp.linalg.norm(a.T @ a))
    np.testing.assert_allclose(
        gn.nnls(a, b, 50, L=big_l), optax.nnls(a, b, 50, L=big_l), rtol=1e-12
    )
    with pytest.raises(ValueError, match="nnls"):
        gn.nnls(a, jnp.ones(3), 10)


# --- a Gaussian, gradient scaling ---------------------------------------------------------------


def test_multi_normal_matches_optax_and_numpy():
    loc, log_scale = jnp.asarray([0.5, -1.0]), jnp.asarray([0.1, -0.7])
    ours, theirs = gn.multi_normal(loc, log_scale), optax.multi_normal(loc, log_scale)
    key = jax.random.PRNGKey(2)
    np.testing.assert_array_equal(ours.sample((4, 3), key), theirs.sample((4, 3), key))
    assert ours.sample((4, 3), key).shape == (4, 3, 2)
    x = jnp.asarray(RNG.normal(size=(6, 2)))
    s = np.exp(np.asarray(log_scale))
    want = np.sum(
        -0.5 * ((np.asarray(x) - np.asarray(loc)) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi)), -1
    )
    np.testing.assert_allclose(ours.log_prob(x), theirs.log_prob(x), rtol=1e-12)
    np.testing.assert_allclose(ours.log_prob(x), want, rtol=1e-13)
    assert ours.log_scale is ours.params[1] and len(ours.params) == 2
    grad = jax.grad(lambda ls: gn.multi_normal(loc, ls).log_prob(x).sum())(log_scale)
    np.testing.assert_allclose(
        grad,
        jax.grad(lambda ls: optax.multi_normal(loc, ls).log_prob(x).sum())(log_scale),
        rtol=1e-12,
    )


def test_multi_normal_log_prob_is_finite_at_extreme_scales():
    """With ``log_scale = -400`` the squared scale underflows to 0 and optax's log density is
    NaN; gradtx's, computed from ``log_scale`` itself, is exact."""
    loc, log_scale = jnp.zeros(2), jnp.asarray([-400.0, 400.0])
    got = gn.multi_normal(loc, log_scale).log_prob(jnp.zeros(2))
    assert float(got) == pytest.approx(-np.log(2 * np.pi), rel=1e-15)
    assert not np.isfinite(float(optax.multi_normal(loc, log_scale).log_prob(jnp.zeros(2))))


def test_scale_gradient():
    x = {"a": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(3.0, jnp.float32)}
    loss = lambda f, s: lambda t: sum(jnp.sum(v**2) for v in jax.tree.leaves(f(t, s)))
    for s in (0.5, -2.0, 1.0, 0.0):
        got = jax.grad(loss(gn.scale_gradient, s))(x)
        for g, w, v in zip(
            jax.tree.leaves(got),
            jax.tree.leaves(jax.grad(loss(optax.scale_gradient, s))(x)),
            jax.tree.leaves(x),
            strict=True,
        ):
            np.testing.assert_array_equal(g, w)
            np.testing.assert_allclose(g, 2 * s * np.asarray(v), rtol=1e-7)
            assert g.dtype == v.dtype
    assert gn.scale_gradient(x, 1.0) is x
    # a traced scale (optax's fails on its `scale == 1.0` test), cotangents kept in float32
    traced = jax.jit(lambda t, s: jax.grad(loss(gn.scale_gradient, s))(t))(x, jnp.asarray(0.25))
    np.testing.assert_allclose(traced["a"], 0.5 * np.asarray(x["a"]), rtol=1e-15)
    assert traced["b"].dtype == jnp.float32
    with pytest.raises(jax.errors.TracerBoolConversionError):
        jax.jit(lambda t, s: jax.grad(loss(optax.scale_gradient, s))(t))(x, jnp.asarray(0.25))
