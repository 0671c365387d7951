"""Properties of the parameter-free blocks the cross-cutting tests do not reach: the blocks optax
keeps private (``scale_by_dog``, ``scale_by_dowg``) against them, layer-wise DoG against optax on
a tree without scalar leaves (optax's update of a scalar leaf has shape ``(1,)``), Mechanic's
reference point taken at the first update, and the argument checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib._dog as optax_dog
import pytest
from helpers import fast_compile, make_grads, make_params, rel_err, run_tx

import gradtx


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _no_scalar(tree):
    return {"dense": tree["dense"]}


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (gradtx.scale_by_dog(), optax_dog.scale_by_dog(("heuristic", 1e-6))),
        (
            gradtx.scale_by_dog(("learning_rate", 0.01), eps=1e-6),
            optax_dog.scale_by_dog(("learning_rate", 0.01), eps=1e-6),
        ),
        (gradtx.scale_by_dog(("distance", 0.1)), optax_dog.scale_by_dog(("distance", 0.1))),
        (gradtx.scale_by_dowg(), optax_dog.scale_by_dowg()),
        (gradtx.scale_by_dowg(0.01, eps=1e-6), optax_dog.scale_by_dowg(0.01, eps=1e-6)),
    ],
    ids=["dog-heuristic", "dog-lr", "dog-distance", "dowg", "dowg-options"],
)
def test_private_optax_blocks_match(mine, theirs):
    params, grads = make_params(), make_grads(12)
    assert rel_err(run_tx(mine, params, grads)[0], run_tx(theirs, params, grads)[0]) <= 1e-12


@pytest.mark.parametrize(
    "kwargs", [{}, {"param_dtype": None}, {"reps_rel": 1e-4, "eps": 1e-6, "global_scale": -0.5}]
)
def test_layerwise_dog_matches_optax_without_scalar_leaves(kwargs):
    params, grads = _no_scalar(make_params()), [_no_scalar(g) for g in make_grads(12)]
    mine, _, _ = run_tx(gradtx.scale_by_distance_over_gradients(**kwargs), params, grads)
    theirs, _, _ = run_tx(optax.scale_by_distance_over_gradients(**kwargs), params, grads)
    assert rel_err(mine, theirs) <= 1e-12


def test_layerwise_dog_keeps_a_scalar_leafs_shape():
    tx = gradtx.scale_by_distance_over_gradients()
    params = {"s": jnp.asarray(2.0), "v": jnp.ones(3)}
    u, state = tx.update(params, tx.init(params), params)
    assert u["s"].shape == () and u["v"].shape == (3,)
    assert gradtx.tree_get(state, "init_params")["v"].dtype == jnp.float32  # optax's default


def test_mechanic_reference_point_is_the_first_update():
    """Params replaced between init and the first update (a restored checkpoint): both optax and
    gradtx measure the distance from the params of the first update."""
    start, params, grads = make_params(seed=3), make_params(), make_grads(8)
    mine = gradtx.mechanize(gradtx.adam(0.05))
    theirs = optax.contrib.mechanize(optax.adam(0.05))
    a, _, state = run_tx(mine, params, grads, start_state=mine.init(start))
    b, _, _ = run_tx(theirs, params, grads, start_state=theirs.init(start))
    assert rel_err(a, b) <= 1e-12
    for x, y in zip(jax.tree.leaves(state.inner[0].x0), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_cocob_update_lands_on_its_formula():
    """One step from x_0 (R = 0, theta = -g, L = max(eps, |g|), G = |g|): the new params are
    ``x_0 - g / (L max(G + L, alpha L)) * L``."""
    x0, g = jnp.asarray([0.5, -1.0, 2.0]), jnp.asarray([0.2, -3.0, 0.0])
    u, _ = gradtx.scale_by_cocob(alpha=10.0).update(g, gradtx.scale_by_cocob(10.0).init(x0), x0)
    big_l = np.maximum(1e-8, np.abs(g))
    want = -np.asarray(g) / (big_l * np.maximum(np.abs(g) + big_l, 10 * big_l)) * big_l
    np.testing.assert_allclose(u, want, rtol=1e-14)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: gradtx.dog(init_step=("guess", 1.0)), "init_step"),
        (lambda: gradtx.scale_by_dog(("distance", -1.0)), "init_step=-1.0 is out of range"),
        (lambda: gradtx.mechanize(gradtx.sgd(0.1), num_betas=0), "num_betas=0"),
    ],
)
def test_bad_arguments_fail_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_blocks_need_params():
    params = make_params()
    for tx in (gradtx.scale_by_cocob(), gradtx.scale_by_dog(), gradtx.mechanize(gradtx.sgd(1.0))):
        with pytest.raises(ValueError, match="needs params"):
            tx.update(params, tx.init(params))
