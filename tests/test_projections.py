"""gradtx.projections: every optax.projections function, checked against brute-force SciPy
quadratic programs, against the projection's optimality conditions (variational inequality at
the set's vertices, KKT multipliers), for parity with optax (float64, 1e-12) and for the cases
where gradtx is deliberately more robust than optax."""

import doctest
import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize

import gradtx.projections as gp

TIGHT = 1e-12  # float64 agreement / optimality-condition tolerance
QP_TOL = 1e-7  # SLSQP (ftol=1e-15) reaches ~1e-9 on these small problems; measured <= 3e-8


def leaves(tree):
    return [np.asarray(x, dtype=np.float64) for x in jax.tree.leaves(tree)]


def assert_trees_close(a, b, atol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=0, atol=atol)


# --- completeness --------------------------------------------------------------------------------


def public_callables(module):
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def signature_of(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_every_optax_projection_exists_with_optax_signature():
    names = public_callables(optax.projections)
    assert len(names) >= 12
    for name in names:
        assert hasattr(gp, name), f"gradtx.projections.{name} missing"
        assert signature_of(getattr(gp, name)) == signature_of(getattr(optax.projections, name))
    assert sorted(gp.__all__) == names


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    report = []
    for test in finder.find(gp, "gradtx.projections"):
        runner.run(test, out=report.append)
    assert runner.tries >= 12 and runner.failures == 0, "".join(report)
    for name in gp.__all__:
        doc = inspect.getdoc(getattr(gp, name))
        assert f"optax.projections.{name}" in doc and "Example:" in doc, name


# --- brute force: SciPy QPs ----------------------------------------------------------------------


def qp(x, constraints=(), bounds=None, x0=None):
    """argmin_y ||y - x||^2 by SLSQP."""
    res = optimize.minimize(
        lambda y: 0.5 * np.sum((y - x) ** 2),
        np.zeros_like(x) if x0 is None else x0,
        jac=lambda y: y - x,
        bounds=bounds,
        constraints=constraints,
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    # status 8 ("positive directional derivative"): stopped at the limit of precision
    assert res.status in (0, 8), res.message
    return res.x


def simplex_bisect(x, s):
    """Simplex projection by bisection on tau in sum(max(x - tau, 0)) = s (no sorting)."""
    lo, hi = x.min() - s, x.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(x - mid, 0).sum() > s else (lo, mid)
    return np.maximum(x - 0.5 * (lo + hi), 0)


def simplex_qp(x, s):
    eq = {"type": "eq", "fun": lambda y: np.sum(y) - s, "jac": lambda y: np.ones_like(y)}
    return qp(x, [eq], [(0, None)] * x.size, np.full_like(x, s / x.size))


def l1_sphere_brute(x, s):
    # nonconvex: best of the simplex QPs in each orthant
    best = None
    for signs in itertools.product([-1.0, 1.0], repeat=x.size):
        signs = np.array(signs)
        y = signs * simplex_qp(signs * x, s)
        if best is None or np.sum((y - x) ** 2) < np.sum((best - x) ** 2):
            best = y
    return best


def l1_ball_qp(x, s):
    # y = u - v with u, v >= 0 and sum(u + v) <= s (a smooth reformulation)
    n = x.size

    def obj(w):
        return 0.5 * np.sum((w[:n] - w[n:] - x) ** 2)

    def jac(w):
        r = w[:n] - w[n:] - x
        return np.concatenate([r, -r])

    ineq = {"type": "ineq", "fun": lambda w: s - np.sum(w), "jac": lambda w: -np.ones(2 * n)}
    res = optimize.minimize(
        obj,
        np.zeros(2 * n),
        jac=jac,
        bounds=[(0, None)] * (2 * n),
        constraints=[ineq],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert res.status in (0, 8), res.message
    return res.x[:n] - res.x[n:]


def l2_ball_qp(x, s):
    ineq = {"type": "ineq", "fun": lambda y: s**2 - y @ y, "jac": lambda y: -2 * y}
    return qp(x, [ineq])


def l2_sphere_qp(x, s):
    eq = {"type": "eq", "fun": lambda y: y @ y - s**2, "jac": lambda y: 2 * y}
    return qp(x, [eq], x0=np.full_like(x, s / np.sqrt(x.size)) * np.sign(x))


def halfspace_qp(x, a, b):
    return qp(x, [{"type": "ineq", "fun": lambda y: b - a @ y, "jac": lambda y: -a}])


def hyperplane_qp(x, a, b):
    return qp(x, [{"type": "eq", "fun": lambda y: a @ y - b, "jac": lambda y: a}])


def line_ls(x, a):
    t = optimize.minimize_scalar(lambda t: np.sum((t * a - x) ** 2), tol=1e-14).x
    return t * a


def box_qp(x, lo, hi):
    return qp(x, bounds=list(zip(lo, hi, strict=True)), x0=np.clip(np.zeros_like(x), lo, hi))


CASES = [
    # name, gradtx call on a flat array, SciPy reference
    ("simplex", lambda x: gp.projection_simplex(x, 1.7), lambda x: simplex_qp(x, 1.7)),
    ("l1_sphere", lambda x: gp.projection_l1_sphere(x, 1.3), lambda x: l1_sphere_brute(x, 1.3)),
    ("l1_ball", lambda x: gp.projection_l1_ball(x, 1.3), lambda x: l1_ball_qp(x, 1.3)),
    ("l2_ball", lambda x: gp.projection_l2_ball(x, 0.9), lambda x: l2_ball_qp(x, 0.9)),
    ("l2_sphere", lambda x: gp.projection_l2_sphere(x, 2.5), lambda x: l2_sphere_qp(x, 2.5)),
    (
        "linf_ball",
        lambda x: gp.projection_linf_ball(x, 0.6),
        lambda x: box_qp(x, np.full(x.size, -0.6), np.full(x.size, 0.6)),
    ),
    (
        "box",
        lambda x: gp.projection_box(x, jnp.arange(4.0) - 2, jnp.arange(4.0) - 1),
        lambda x: box_qp(x, np.arange(4.0) - 2, np.arange(4.0) - 1),
    ),
    (
        "hypercube",
        lambda x: gp.projection_hypercube(x, 0.5),
        lambda x: box_qp(x, np.zeros(x.size), np.full(x.size, 0.5)),
    ),
    (
        "non_negative",
        gp.projection_non_negative,
        lambda x: box_qp(x, np.zeros(x.size), np.full(x.size, np.inf)),
    ),
    (
        "halfspace",
        lambda x: gp.projection_halfspace(x, jnp.array([1.0, -2.0, 0.5, 1.0]), 0.3),
        lambda x: halfspace_qp(x, np.array([1.0, -2.0, 0.5, 1.0]), 0.3),
    ),
    (
        "hyperplane",
        lambda x: gp.projection_hyperplane(x, jnp.array([1.0, -2.0, 0.5, 1.0]), 0.3),
        lambda x: hyperplane_qp(x, np.array([1.0, -2.0, 0.5, 1.0]), 0.3),
    ),
    (
        "vector",
        lambda x: gp.projection_vector(x, jnp.array([1.0, -2.0, 0.5, 1.0])),
        lambda x: line_ls(x, np.array([1.0, -2.0, 0.5, 1.0])),
    ),
]


@pytest.mark.parametrize("name,ours,reference", CASES, ids=[c[0] for c in CASES])
def test_matches_brute_force_qp(name, ours, reference):
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=4) * 1.5
        np.testing.assert_allclose(jax.jit(ours)(jnp.asarray(x)), reference(x), atol=QP_TOL)


# --- optimality conditions -----------------------------------------------------------------------


def assert_variational_inequality(x, p, vertices):
    """p = proj_C(x) for the polytope C = conv(vertices) iff p in C and <x - p, v - p> <= 0."""
    gaps = (vertices - p) @ (x - p)
    assert np.max(gaps) <= TIGHT * max(1.0, np.abs(x).max() ** 2), np.max(gaps)


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_simplex_and_l1_optimality(scale):
    rng = np.random.default_rng(1)
    n = 7
    simplex_vertices = scale * np.eye(n)
    l1_vertices = np.concatenate([simplex_vertices, -simplex_vertices])
    for _ in range(5):
        x = rng.normal(size=n) * 2
        p = np.asarray(jax.jit(gp.projection_simplex)(jnp.asarray(x), scale))
        assert p.min() >= 0 and abs(p.sum() - scale) <= TIGHT
        assert_variational_inequality(x, p, simplex_vertices)
        # KKT: x - p = tau on the support, x <= tau off it
        tau = np.mean((x - p)[p > 0])
        np.testing.assert_allclose((x - p)[p > 0], tau, atol=TIGHT)
        assert np.all(x[p == 0] <= tau + TIGHT)

        q = np.asarray(jax.jit(gp.projection_l1_ball)(jnp.asarray(x), scale))
        assert np.abs(q).sum() <= scale + TIGHT
        assert_variational_inequality(x, q, l1_vertices)


def test_l2_linf_box_affine_optimality():
    rng = np.random.default_rng(2)
    a = rng.normal(size=6)
    for _ in range(5):
        x = rng.normal(size=6) * 2
        r = np.linalg.norm(x)
        for s in (0.5 * r, 2 * r):
            p = np.asarray(jax.jit(gp.projection_l2_ball)(jnp.asarray(x), s))
            np.testing.assert_allclose(p, x * min(1.0, s / r), rtol=TIGHT, atol=0)
        p = np.asarray(jax.jit(gp.projection_linf_ball)(jnp.asarray(x), 0.7))
        # coordinatewise VI: (x_i - p_i)(q_i - p_i) <= 0 for q_i = +-0.7
        assert np.all((x - p) * (0.7 - p) <= 0) and np.all((x - p) * (-0.7 - p) <= 0)
        b = 0.25
        h = np.asarray(jax.jit(gp.projection_hyperplane)(jnp.asarray(x), jnp.asarray(a), b))
        assert abs(a @ h - b) <= TIGHT * 10
        lam = (x - h) / a
        np.testing.assert_allclose(lam, lam[0], rtol=1e-10)  # x - h is parallel to a
        hs = np.asarray(jax.jit(gp.projection_halfspace)(jnp.asarray(x), jnp.asarray(a), b))
        np.testing.assert_allclose(hs, h if a @ x > b else x, atol=TIGHT)


# --- parity with optax ---------------------------------------------------------------------------


def random_tree(rng, scale=2.0):
    return {
        "w": jnp.asarray(rng.normal(size=(3, 4)) * scale),
        "b": (jnp.asarray(rng.normal(size=5) * scale), jnp.asarray(rng.normal() * scale)),
    }


PARITY = [
    ("projection_non_negative", lambda t: ()),
    (
        "projection_box",
        lambda t: (jax.tree.map(lambda x: x * 0 - 0.5, t), jax.tree.map(lambda x: x * 0 + 1, t)),
    ),
    ("projection_simplex", lambda t: (1.0,)),
    ("projection_simplex", lambda t: (3.5,)),
    ("projection_l1_sphere", lambda t: (2.0,)),
    ("projection_l1_ball", lambda t: (2.0,)),
    ("projection_l1_ball", lambda t: (100.0,)),
    ("projection_l2_sphere", lambda t: (1.5,)),
    ("projection_l2_ball", lambda t: (1.5,)),
    ("projection_l2_ball", lambda t: (100.0,)),
    ("projection_linf_ball", lambda t: (0.8,)),
    ("projection_vector", lambda t: (jax.tree.map(jnp.cos, t),)),
    ("projection_hyperplane", lambda t: (jax.tree.map(jnp.cos, t), 0.4)),
    ("projection_halfspace", lambda t: (jax.tree.map(jnp.cos, t), -3.0)),
    ("projection_halfspace", lambda t: (jax.tree.map(jnp.cos, t), 30.0)),
]


@pytest.mark.parametrize("name,extra", PARITY, ids=[f"{n}-{i}" for i, (n, _) in enumerate(PARITY)])
def test_parity_with_optax_float64(name, extra):
    rng = np.random.default_rng(3)
    for _ in range(3):
        tree = random_tree(rng)
        args = extra(tree)
        ours = jax.jit(getattr(gp, name))(tree, *args)
        theirs = jax.jit(getattr(optax.projections, name))(tree, *args)
        assert_trees_close(ours, theirs, atol=TIGHT)


def test_parity_with_optax_on_arrays():
    # optax's box and hypercube take scalar bounds only for a single array
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(4, 5)) * 2)
    calls = [
        ("projection_box", (-0.5, 1.0)),
        ("projection_box", (jnp.full((4, 5), -1.0), jnp.linspace(0, 1, 20).reshape(4, 5))),
        ("projection_hypercube", ()),
        ("projection_hypercube", (0.3,)),
        ("projection_simplex", ()),
        ("projection_l1_ball", (3.0,)),
        ("projection_l2_sphere", ()),
        ("projection_linf_ball", ()),
    ]
    for name, args in calls:
        ours = jax.jit(getattr(gp, name))(x, *args)
        theirs = jax.jit(getattr(optax.projections, name))(x, *args)
        assert_trees_close(ours, theirs, atol=TIGHT)


@jax.jit
def simplex_derivatives(x, v, scale):
    ours, theirs = gp.projection_simplex, optax.projections.projection_simplex
    eps = 1e-6
    return {
        "p": ours(x, scale),
        "fwd": jax.jacfwd(ours)(x, scale),
        "rev": jax.jacrev(ours)(x, scale),
        "optax_fwd": jax.jacfwd(theirs)(x, scale),
        "d_scale": jax.jacfwd(ours, argnums=1)(x, scale),
        "optax_d_scale": jax.jacfwd(theirs, argnums=1)(x, scale),
        "jvp": jax.jvp(lambda y: ours(y, scale), (x,), (v,))[1],
        "fd": (ours(x + eps * v, scale) - ours(x - eps * v, scale)) / (2 * eps),
    }


def test_simplex_jacobian_matches_closed_form_and_optax():
    rng = np.random.default_rng(4)
    x, v = jnp.asarray(rng.normal(size=6)), jnp.asarray(rng.normal(size=6))
    d = simplex_derivatives(x, v, 1.2)
    s = np.asarray(d["p"] > 0, dtype=float)
    assert 1 < s.sum() < 6  # a non-trivial support
    expected = np.diag(s) - np.outer(s, s) / s.sum()
    for key in ("fwd", "rev", "optax_fwd"):
        np.testing.assert_allclose(d[key], expected, atol=TIGHT)
    # derivative in the scale: 1_S / |S| (optax's comes through x / scale and back)
    np.testing.assert_allclose(d["d_scale"], s / s.sum(), atol=TIGHT)
    np.testing.assert_allclose(d["optax_d_scale"], s / s.sum(), atol=TIGHT)
    np.testing.assert_allclose(d["jvp"], d["fd"], atol=1e-8)


def test_gradient_at_zero_is_identity_inside_balls():
    grads = jax.jit(
        lambda x: (
            jax.grad(gp.projection_l2_ball)(x),
            jax.grad(gp.projection_l1_ball)(x),
            jax.jacrev(gp.projection_l2_ball)(jnp.zeros(3) + x),
        )
    )(0.0)
    assert grads[0] == 1.0 and grads[1] == 1.0
    np.testing.assert_array_equal(grads[2], np.eye(3))


def test_jit_and_vmap():
    rng = np.random.default_rng(5)
    xs, scales = jnp.asarray(rng.normal(size=(4, 6))), jnp.array([0.5, 1.0, 2.0, 3.0])
    for fn in (
        gp.projection_simplex,
        gp.projection_l1_ball,
        gp.projection_l2_ball,
        gp.projection_linf_ball,
    ):
        batched = jax.jit(jax.vmap(fn))(xs, scales)
        looped = np.stack([np.asarray(fn(x, s)) for x, s in zip(xs, scales, strict=True)])
        np.testing.assert_allclose(batched, looped, atol=TIGHT)


def test_simplex_edge_case_minus_inf():
    for s in (1.0, 0.8):
        p = gp.projection_simplex(jnp.array([0.0, 0.0, -jnp.inf]), s)
        np.testing.assert_allclose(p, [s / 2, s / 2, 0.0], atol=TIGHT)


# --- where gradtx is more robust than optax -----------------------------------------------------


def test_simplex_large_offset_float32():
    rng = np.random.default_rng(6)
    z = rng.normal(size=50)
    x32 = (np.float32(1e6) + z.astype(np.float32)).astype(np.float32)
    p = np.asarray(jax.jit(gp.projection_simplex)(jnp.asarray(x32)))
    reference = simplex_bisect(x32.astype(np.float64) - 1e6, 1.0)  # the same problem, float64
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, reference, atol=2e-6)
    assert abs(p.sum() - 1) <= 1e-6
    # optax's unshifted cumulative sums lose ~6% of the mass here
    assert (
        abs(float(jax.jit(optax.projections.projection_simplex)(jnp.asarray(x32)).sum()) - 1) > 1e-2
    )


def test_l1_sphere_with_zero_entries_stays_on_the_sphere():
    x = np.array([1.0, 0.0, -0.25])
    p = np.asarray(jax.jit(gp.projection_l1_sphere)(jnp.asarray(x), 3.0))
    assert abs(np.abs(p).sum() - 3.0) <= TIGHT
    np.testing.assert_allclose(
        np.sum((p - x) ** 2), np.sum((l1_sphere_brute(x, 3.0) - x) ** 2), atol=QP_TOL
    )
    theirs = np.asarray(jax.jit(optax.projections.projection_l1_sphere)(jnp.asarray(x), 3.0))
    assert np.abs(theirs).sum() < 3.0 - 0.5  # optax's sign(0) = 0 drops the zero entry's share


def test_l2_no_overflow_float32():
    x = jnp.array([3e19, 4e19], dtype=jnp.float32)
    np.testing.assert_allclose(gp.projection_l2_ball(x), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(gp.projection_l2_sphere(x, 10.0), [6.0, 8.0], rtol=1e-6)
    tiny = jnp.array([3e-30, 4e-30], dtype=jnp.float32)
    np.testing.assert_allclose(gp.projection_l2_sphere(tiny), [0.6, 0.8], rtol=1e-6)


def test_scalar_bounds_on_a_tree():
    tree = {"a": jnp.array([2.0, -1.0]), "b": (jnp.array(0.5), jnp.array([3.0]))}
    expected = {"a": jnp.array([1.0, 0.0]), "b": (jnp.array(0.5), jnp.array([1.0]))}
    assert_trees_close(gp.projection_box(tree, 0.0, 1.0), expected, atol=0)
    assert_trees_close(
        gp.projection_hypercube(tree, 0.25),
        jax.tree.map(lambda x: jnp.clip(x, 0, 0.25), tree),
        atol=0,
    )
    with pytest.raises(ValueError):  # optax: bounds must be full trees
        optax.projections.projection_hypercube(tree, 0.25)
    # a prefix tree of bounds: one per top-level entry
    out = gp.projection_box(tree, {"a": -1.0, "b": 0.6}, {"a": 1.5, "b": 0.7})
    expected = {"a": jnp.array([1.5, -1.0]), "b": (jnp.array(0.6), jnp.array([0.7]))}
    assert_trees_close(out, expected, atol=0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_leaf_dtypes_are_kept(dtype):
    tree = {"a": jnp.array([2.0, -1.0, 0.5], dtype), "b": jnp.array([[0.25, 3.0]], dtype)}
    a = jax.tree.map(lambda x: jnp.ones_like(x), tree)
    outputs = jax.jit(
        lambda t, a: [
            gp.projection_non_negative(t),
            gp.projection_box(t, 0.0, 1.0),
            gp.projection_hypercube(t),
            gp.projection_simplex(t),
            gp.projection_l1_sphere(t),
            gp.projection_l1_ball(t),
            gp.projection_l2_sphere(t),
            gp.projection_l2_ball(t),
            gp.projection_linf_ball(t),
            gp.projection_vector(t, a),
            gp.projection_hyperplane(t, a, 1.0),
            gp.projection_halfspace(t, a, 1.0),
        ]
    )(tree, a)
    for out in outputs:
        assert jax.tree.map(lambda x: x.dtype, out) == {"a": dtype, "b": dtype}
    s = outputs[3]
    # low precision still lands on the set (computed in float32, rounded once)
    assert abs(float(sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(s))) - 1) < 1e-2
