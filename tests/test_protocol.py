"""The core protocol: one step counter per optimizer, composition, state navigation,
interoperability with optax and Flax, serialisation and schedule precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    fast_compile,
    leaves64,
    make_grads,
    make_params,
    needs_value,
    rel_err,
    run_tx,
)

import gradtx as A
import gradtx as C
import gradtx as T
from gradtx import (
    ChainState,
    apply_updates,
    blocks_of,
    chain,
    identity,
    named_chain,
    registry,
    tree_get,
    tree_paths,
    tree_set,
)


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


# every registered optimizer and block, in its plain configuration
ENTRIES = {e.name: e for e in registry.entries()}


def SCHED(c):
    return 0.1 / (1 + c / 3.0)


# --- one counter ------------------------------------------------------------------------------


def test_adamw_with_schedule_has_exactly_one_count():
    state = A.adamw(SCHED, weight_decay=lambda c: 1e-3 * c).init(make_params())
    assert tree_paths(state, "count") == [("count",)]
    assert isinstance(state, ChainState)
    assert state.count.dtype == jnp.int32 and int(state.count) == 0


def test_constant_and_schedule_give_the_same_state_structure():
    params = make_params()
    a = A.adamw(0.1, weight_decay=1e-4).init(params)
    b = A.adamw(SCHED, weight_decay=lambda c: 1e-4 / (1 + c)).init(params)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), a) == jax.tree.map(
        lambda x: (x.shape, x.dtype), b
    )


def test_count_advances_once_per_update():
    params, grads = make_params(), make_grads(3)
    _, _, state = run_tx(chain(A.adamw(0.1), C.clip(1.0), A.sgd(0.1)), params, grads)
    assert tree_paths(state, "count") == [("count",)]
    assert int(state.count) == 3


def test_nested_chains_flatten():
    params, grads = make_params(), make_grads(5)
    nested = chain(chain(C.clip(0.8), chain(T.scale_by_adam())), chain(identity(), A.sgd(0.05)))
    flat = chain(C.clip(0.8), T.scale_by_adam(), identity(), T.scale_by_learning_rate(0.05))
    assert len(blocks_of(nested)) == len(blocks_of(A.sgd(0.05))) + 3
    got, _, state = run_tx(nested, params, grads)
    want, _, _ = run_tx(flat, params, grads)
    assert tree_paths(state, "count") == [("count",)]
    assert len(state.inner) == len(blocks_of(nested))
    assert rel_err(got, want) == 0.0


def test_named_chain_keys_states_by_name_and_matches_chain():
    params, grads = make_params(), make_grads(5)
    named = named_chain(("clip", C.clip_by_global_norm(2.0)), ("adam", A.adam(0.1)))
    got, _, state = run_tx(named, params, grads)
    want, _, _ = run_tx(chain(C.clip_by_global_norm(2.0), A.adam(0.1)), params, grads)
    assert rel_err(got, want) == 0.0
    assert set(state.inner) == {"clip", "adam"}
    assert tree_paths(state, "count") == [("count",)]
    assert tree_get(state, "global_norm").shape == ()
    # the adam member's moments live under its name
    assert tree_paths(state, "mu") == [("inner", "adam", "0", "mu")]


def test_named_chain_rejects_duplicate_names():
    with pytest.raises(ValueError, match="unique"):
        named_chain(("a", identity()), ("a", identity()))


# --- tree_get / tree_set ------------------------------------------------------------------------


def test_tree_get_and_set_drive_the_bias_correction():
    """Setting ``count`` to 10 on a fresh Adam makes the next step use t = 11 in the bias
    corrections (hyperparameters are closed over, not stored: tree_set is for state fields)."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.1
    params, g = make_params(), make_grads(1)[0]
    tx = A.adam(lr, b1, b2, eps)
    state = tree_set(tx.init(params), count=10)
    assert int(tree_get(state, "count")) == 10
    assert tree_get(state, "count").dtype == jnp.int32
    assert tree_get(state, "learning_rate", default=None) is None
    u, state = tx.update(g, state, params)
    assert int(state.count) == 11
    for got, x in zip(leaves64(u), leaves64(g), strict=True):
        m, v = (1 - b1) * x, (1 - b2) * x * x
        want = -lr * (m / (1 - b1**11)) / (np.sqrt(v / (1 - b2**11)) + eps)
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_tree_set_moments_and_paths():
    params = make_params()
    state = A.adam(0.1).init(params)
    ones = jax.tree.map(jnp.ones_like, params)
    state = tree_set(state, nu=ones)
    assert all(np.all(np.asarray(x) == 1) for x in jax.tree.leaves(tree_get(state, "nu")))
    state = tree_set(state, **{"inner/0/mu": ones})
    assert all(np.all(np.asarray(x) == 1) for x in jax.tree.leaves(tree_get(state, "mu")))
    with pytest.raises(KeyError, match="no field named 'nope'"):
        tree_set(state, nope=1)


def test_tree_get_ambiguous_name_lists_candidates():
    state = chain(A.adam(0.1), T.scale_by_adam()).init(make_params())
    with pytest.raises(KeyError, match="ambiguous") as info:
        tree_get(state, "mu")
    assert "inner/0/mu" in str(info.value) and "inner/2/mu" in str(info.value)


# --- optax interoperability -----------------------------------------------------------------------


def test_gradtx_inside_optax_chain():
    params, grads = make_params(), make_grads(8)
    mixed = optax.chain(T.scale_by_adam(0.8), optax.scale(-0.1))
    got, _, _ = run_tx(mixed, params, grads)
    want, _, _ = run_tx(optax.adam(0.1, b1=0.8), params, grads)
    assert rel_err(got, want) <= 1e-12


def test_optax_inside_gradtx_chain():
    params, grads = make_params(), make_grads(8)
    mixed = chain(optax.clip_by_global_norm(2.0), optax.scale_by_adam(), A.sgd(0.1))
    got, _, state = run_tx(mixed, params, grads, value=jnp.asarray(1.0))
    want, _, _ = run_tx(chain(C.clip_by_global_norm(2.0), A.adam(0.1)), params, grads)
    assert rel_err(got, want) <= 1e-12
    # optax members keep their own state (its count), gradtx's counter is the one at the top
    assert int(state.count) == 8


# --- extras, apply_updates, serialisation ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_unknown_extra_keywords_are_accepted_and_ignored(name):
    params, grads, value = make_params(), make_grads(2), needs_value(ENTRIES[name])
    plain, _, _ = run_tx(ENTRIES[name].build(0), params, grads, with_value=value)
    # with_value already passes grad= (a line search reads it); otherwise it is unknown too
    unknown = {"other": 1} if value else {"grad": grads[0], "other": 1}
    extra, _, _ = run_tx(ENTRIES[name].build(0), params, grads, with_value=value, **unknown)
    assert rel_err(extra, plain) == 0.0


def test_apply_updates_keeps_dtypes_and_none_leaves():
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": None, "c": jnp.ones((), jnp.float32)}
    updates = {"a": jnp.full(3, 0.5, jnp.float32), "b": None, "c": jnp.asarray(0.25, jnp.float64)}
    new = apply_updates(params, updates)
    assert new["b"] is None
    assert new["a"].dtype == jnp.bfloat16 and new["c"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(new["a"], np.float32), [1.5, 1.5, 1.5])
    assert float(new["c"]) == 1.25


# --- schedule precision -------------------------------------------------------------------------


def test_schedule_is_evaluated_in_float64():
    """``lambda c: 0.1 / (1 + c / 3)`` must be evaluated in float64 under x64: in JAX
    ``int32 / 3`` is float32, so schedules are handed the step as the default integer type."""
    sched = lambda c: 0.1 / (1 + c / 3)
    params, grads = make_params(), make_grads(20)
    got, _, _ = run_tx(A.sgd(sched), params, grads)
    for t, (u, g) in enumerate(zip(got, grads, strict=True)):
        lr = 0.1 / (1 + t / 3)
        for a, x in zip(u, leaves64(g), strict=True):
            np.testing.assert_allclose(a, -lr * x, rtol=1e-15, atol=0)
