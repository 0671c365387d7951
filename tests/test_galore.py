"""GaLore beyond the registry's examples (which use the harness's one 3 x 4 matrix): tall and wide
matrices, a 3-D leaf projected through ``weight_dimension_numbers`` (one spec, a tree of specs,
a function), against optax and against the NumPy reference; the state's shapes; errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from helpers import fast_compile, rel_err, run_tx
from references import run
from references.galore import galore as galore_reference

import gradtx
from gradtx.contrib import GaLoreDimensionNumbers, GaLoreState, galore, scale_by_galore

SHAPES = {"attn": (4, 2, 3), "b": (4,), "v": (3, 5), "w": (6, 4)}
STEPS = 9


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _tree(rng, dtype, shift=0.0):
    return {k: jnp.asarray(rng.randn(*s) + shift, dtype) for k, s in SHAPES.items()}


def _problem(dtype=jnp.float64, steps=STEPS):
    rng = np.random.RandomState(3)
    return _tree(rng, dtype), [_tree(rng, dtype, 0.1) for _ in range(steps)]


def _dims(lib, kind):
    """The same ``weight_dimension_numbers`` in ``lib``'s own class."""
    D = lib.GaLoreDimensionNumbers
    if kind == "default":
        return None
    if kind == "single":  # every leaf of rank >= 2, transposed (columns as rows)
        return D(reduction_axis=1, output_axis=0)
    if kind == "tree":  # the 3-D one as (2*3) x 4 (rows from two axes), w transposed, v left out
        return {"attn": D((1, 2), 0), "b": None, "v": None, "w": D(1, 0)}
    return lambda params: {"attn": D(-1, (0, 1)), "b": None, "v": D(), "w": D()}


KINDS = ["default", "single", "tree", "function"]
CONFIGS = {
    "default": {"learning_rate": 0.1, "rank": 2, "update_proj_gap": 4},
    "single": {"learning_rate": 0.05, "rank": 3, "update_proj_gap": 3, "scale": 0.5,
               "weight_decay": 0.01},
    "tree": {"learning_rate": 0.1, "rank": 1, "update_proj_gap": 2},
    "function": {"learning_rate": 0.1, "rank": 2, "update_proj_gap": 5, "weight_decay": 0.02},
}  # fmt: skip


def _build(lib, kind):
    return lib.galore(**CONFIGS[kind], weight_dimension_numbers=_dims(lib, kind))


def _jitted(tx):
    """One compiled step (optax's eager ``lax.cond`` would be traced again at every call)."""
    return gradtx.GradientTransformation(tx.init, jax.jit(tx.update))


def _problem_for(kind, dtype=jnp.float64, steps=STEPS):
    """One spec for every leaf of rank >= 2 cannot fit both the 2-D and the 3-D leaves."""
    params, grads = _problem(dtype, steps)
    if kind != "single":
        return params, grads
    drop = lambda t: {k: v for k, v in t.items() if k != "attn"}
    return drop(params), [drop(g) for g in grads]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["f64", "f32"])
def test_matches_optax(kind, dtype):
    params, grads = _problem_for(kind, dtype)
    mine, _, state = run_tx(_jitted(_build(gradtx.contrib, kind)), params, grads)
    theirs, _, their_state = run_tx(_jitted(_build(optax.contrib, kind)), params, grads)
    assert rel_err(mine, theirs) <= (1e-10 if dtype == jnp.float64 else 1e-5)
    # the same projectors and base-optimizer moments, leaf by leaf
    p_mine, p_theirs = gradtx.tree_get(state, "projector"), their_state[0].projector
    # (unprojected leaves: optax keeps a (0, 0) array, gradtx a scalar, since orbax saves no
    # empty arrays)
    shape = lambda x: jnp.shape(x) if jnp.size(x) else ()
    assert jax.tree.map(shape, p_mine) == jax.tree.map(shape, p_theirs)
    mu_mine = gradtx.tree_get(state, "mu")
    assert jax.tree.map(jnp.shape, mu_mine) == jax.tree.map(
        jnp.shape, their_state[0].base_optimizer_state.mu
    )


@pytest.mark.parametrize("kind", KINDS)
def test_matches_the_reference(kind):
    params, grads = _problem_for(kind, steps=12)
    leaves = lambda t: [np.asarray(x, np.float64) for x in jax.tree.leaves(t)]
    mine, _, _ = run_tx(_build(gradtx.contrib, kind), params, grads)
    dims = _dims(gradtx.contrib, kind)
    if isinstance(dims, dict):  # the reference takes per-leaf specs as a list, in leaf order
        dims = [dims[k] for k in sorted(dims)]
    elif callable(dims):
        made = dims(params)
        dims = [made[k] for k in sorted(made)]
    ref = galore_reference(**CONFIGS[kind], weight_dimension_numbers=dims)
    want, _ = run(ref, leaves(params), [leaves(g) for g in grads])
    assert rel_err(mine, want) <= 1e-10
    # the projection matters: plain AdamW on the same gradients differs
    plain, _, _ = run_tx(gradtx.adamw(0.1, weight_decay=0.0), params, grads)
    assert rel_err(plain, want) > 1e-2


def test_projection_side_rank_and_refresh():
    params, grads = _problem(steps=5)
    tx = scale_by_galore(rank=3, update_proj_gap=3)
    state = tx.init(params)
    proj = gradtx.tree_get(state, "projector")
    # w is 6 x 4 (tall): P is 6 x 3 on the left, Adam's moments 3 x 4; v is 3 x 5 (wide): P is
    # 5 x 3 on the right, moments 3 x 3; the vector and the 3-D leaf are not projected
    assert proj["w"].shape == (6, 3) and proj["v"].shape == (5, 3)
    assert proj["b"].shape == () and proj["attn"].shape == ()  # (orbax saves no empty arrays)
    mu = gradtx.tree_get(state, "mu")
    assert mu["w"].shape == (3, 4) and mu["v"].shape == (3, 3) and mu["attn"].shape == (4, 2, 3)
    assert isinstance(jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, GaLoreState)), list)
    seen = []
    for g in grads:
        _, state = tx.update(g, state, params)
        seen.append(np.asarray(gradtx.tree_get(state, "projector")["w"]))
    # refreshed at steps 0 and 3 (counted from 0), kept in between
    assert np.array_equal(seen[0], seen[1]) and np.array_equal(seen[1], seen[2])
    assert not np.allclose(seen[2], seen[3]) and np.array_equal(seen[3], seen[4])
    np.testing.assert_allclose(seen[0].T @ seen[0], np.eye(3), atol=1e-6)  # orthonormal columns
    # the rank is capped at the smaller side: rank 10 of a 3 x 5 matrix is 3
    capped = scale_by_galore(rank=10).init(params)
    assert gradtx.tree_get(capped, "projector")["v"].shape == (5, 3)


def test_low_precision_leaves_keep_their_dtype():
    """A bfloat16 matrix: SVD in float32, projections computed in float32 and rounded once;
    the update, the projector and the moments stay bfloat16 (jit/vmap/scan: test_transformable)."""
    params, grads = _problem(steps=1)
    tx = galore(0.1, rank=2)
    low = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    g = jax.tree.map(lambda x: x.astype(jnp.bfloat16), grads[0])
    u, state = tx.update(g, tx.init(low), low)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
    assert gradtx.tree_get(state, "projector")["w"].dtype == jnp.bfloat16
    full, _ = tx.update(grads[0], tx.init(params), params)
    np.testing.assert_allclose(np.asarray(u["w"], np.float64), full["w"], rtol=0.05, atol=1e-3)


def test_errors():
    params = {"w": jnp.ones((3, 4)), "t": jnp.ones((2, 3, 4))}
    with pytest.raises(ValueError, match="rank"):
        galore(0.1, rank=0)
    with pytest.raises(ValueError, match="rank"):
        scale_by_galore(rank=2.5)
    with pytest.raises(ValueError, match="update_proj_gap"):
        galore(0.1, update_proj_gap=0)
    with pytest.raises(ValueError, match="disjoint"):  # axis 2 of the 3-D leaf left out
        scale_by_galore(weight_dimension_numbers=GaLoreDimensionNumbers(0, 1)).init(params)
    with pytest.raises(ValueError, match="rank >= 2"):
        dims = {"w": GaLoreDimensionNumbers(), "t": None, "b": GaLoreDimensionNumbers()}
        scale_by_galore(weight_dimension_numbers=dims).init({**params, "b": jnp.ones(3)})
    s = GaLoreState(count=0, base_optimizer_state=(), projector={})
    assert s.projector == {}
