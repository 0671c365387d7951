"""Property tests: random pytrees and random valid hyperparameters for several aliases.

Trees mix nested dicts, lists and tuples, empty containers, 0-d leaves, None leaves and float
dtypes (float32, float64, bfloat16).  Each property compares two ways of computing the same
thing, so the expected values never come from the code path under test alone.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import gradtx
from gradtx import (
    add_decayed_weights,
    chain,
    paths,
    scale_by_adam,
    scale_by_learning_rate,
    tree_paths,
)
from gradtx.combinators import masked, multi_transform

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

DTYPES = [jnp.float32, jnp.float64, jnp.bfloat16]
# how closely two evaluations of the same formula must agree, per dtype (jit fuses and may
# keep intermediates in higher precision than eager op-by-op evaluation)
TOL = {jnp.dtype(jnp.float64): 1e-10, jnp.dtype(jnp.float32): 2e-5, jnp.dtype(jnp.bfloat16): 3e-2}


# --- strategies --------------------------------------------------------------------------------

array_specs = st.tuples(
    # few distinct shapes, so eager op-by-op runs reuse their compilations across examples
    st.sampled_from([(), (3,), (2, 3)]),
    st.sampled_from(DTYPES),
    st.integers(0, 2**16),
)
leaf_specs = st.one_of(array_specs, array_specs, st.none())  # arrays twice as likely as None


def _containers(children, min_size=0):
    keys = st.text("abcxyz_", min_size=1, max_size=3)
    return st.one_of(
        st.dictionaries(keys, children, min_size=min_size, max_size=3),
        st.lists(children, min_size=min_size, max_size=3),
        st.lists(children, min_size=min_size, max_size=3).map(tuple),
    )


# The root is a non-empty container (a bare None root reads as "no params passed" to
# add_decayed_weights); empty containers, None leaves and 0-d leaves occur below it, and in
# EDGE, which every property also runs on.
tree_specs = _containers(st.recursive(leaf_specs, _containers, max_leaves=5), min_size=1)
EDGE = {
    "empty_dict": {},
    "empty_list": [],
    "none": None,
    "scalar": ((), jnp.float32, 1),
    "mixed": [None, ((3,), jnp.bfloat16, 2), (((2, 3), jnp.float64, 3), ())],
    "nested": {"x": {"y": ((3,), jnp.float64, 4)}},
}


def build(spec, shift=0.0):
    """A tree of arrays from a spec (leaf specs are (shape, dtype, seed) tuples)."""

    def is_spec(x):
        return x is None or (isinstance(x, tuple) and len(x) == 3 and isinstance(x[2], int))

    def make(s):
        if s is None:
            return None
        shape, dtype, seed = s
        values = np.random.default_rng(seed).standard_normal(shape) + shift
        return jnp.asarray(values, dtype)

    return jax.tree.map(make, spec, is_leaf=is_spec)


_unit = st.floats(0.0, 0.99)
_lr = st.floats(1e-3, 1.0)
_eps = st.floats(1e-8, 1e-3)

aliases = st.one_of(
    st.fixed_dictionaries(
        {"learning_rate": _lr, "momentum": st.none() | _unit, "nesterov": st.booleans()}
    ).map(lambda kw: ("sgd", kw)),
    st.fixed_dictionaries(
        {"learning_rate": _lr, "b1": _unit, "b2": st.floats(0.5, 0.999), "eps": _eps}
    ).map(lambda kw: ("adam", kw)),
    st.fixed_dictionaries(
        {"learning_rate": _lr, "b1": _unit, "weight_decay": st.floats(0.0, 0.1)}
    ).map(lambda kw: ("adamw", kw)),
    st.fixed_dictionaries(
        {
            "learning_rate": _lr,
            "decay": st.floats(0.5, 0.99),
            "eps": _eps,
            "centered": st.booleans(),
            "momentum": st.none() | _unit,
        }
    ).map(lambda kw: ("rmsprop", kw)),
    st.fixed_dictionaries(
        {"learning_rate": _lr, "b1": _unit, "b2": _unit, "weight_decay": st.floats(0.0, 0.1)}
    ).map(lambda kw: ("lion", kw)),
    st.fixed_dictionaries(
        {"learning_rate": _lr, "initial_accumulator_value": st.floats(0.01, 1.0), "eps": _eps}
    ).map(lambda kw: ("adagrad", kw)),
)


def make_tx(alias):
    name, kw = alias
    return getattr(gradtx, name)(**kw)


def grads_for(params, step):
    return jax.tree.map(lambda p: (jnp.sin(3.0 * p + step) + 0.1).astype(p.dtype), params)


def run(tx, params, steps=2, step_fn=None):
    state = tx.init(params)
    update = step_fn or tx.update
    outs = []
    for t in range(steps):
        u, state = update(grads_for(params, t), state, params)
        outs.append(u)
    return outs, state


def assert_close(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        tol = TOL.get(jnp.dtype(x.dtype), 1e-5)
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=tol, atol=tol
        )


def shapes_dtypes(tree):
    return [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


# --- properties --------------------------------------------------------------------------------


@settings(SETTINGS, max_examples=5)  # one compilation per example
@given(spec=tree_specs, alias=aliases)
@example(spec=EDGE, alias=("adamw", {"learning_rate": 0.1, "weight_decay": 0.01}))
def test_structure_shapes_dtypes_and_jit(spec, alias):
    """init/update keep the updates' structure (None leaves and empty containers included),
    shapes and dtypes; the state keeps its structure and dtypes; jit agrees with eager."""
    params = build(spec)
    tx = make_tx(alias)
    state0 = tx.init(params)
    outs, state = run(tx, params)
    for u in outs:
        assert jax.tree.structure(u) == jax.tree.structure(params)
        assert shapes_dtypes(u) == shapes_dtypes(params)
    assert jax.tree.structure(state) == jax.tree.structure(state0)
    assert shapes_dtypes(state) == shapes_dtypes(state0)
    assert int(state.count) == 2 and tree_paths(state, "count") == [("count",)]

    jit_outs, jit_state = run(tx, params, step_fn=jax.jit(tx.update))
    for a, b in zip(outs, jit_outs, strict=True):
        assert_close(a, b)
    assert_close(state, jit_state)


@SETTINGS
@given(
    spec=tree_specs,
    lr=_lr,
    b1=_unit,
    wd=st.floats(0.0, 0.1),
    split=st.integers(0, 2),
)
@example(spec=EDGE, lr=0.1, b1=0.9, wd=0.01, split=0)
def test_chain_of_chains_equals_flat_chain(spec, lr, b1, wd, split):
    """However the three blocks of AdamW are nested, the result is the alias, with one counter."""
    params = build(spec)
    parts = [scale_by_adam(b1=b1), add_decayed_weights(wd), scale_by_learning_rate(lr)]
    nested = (
        chain(chain(*parts[:1]), chain(*parts[1:]))
        if split == 0
        else chain(chain(chain(*parts[:2])), parts[2])
        if split == 1
        else chain(chain(chain(chain(*parts))))
    )
    flat_outs, flat_state = run(gradtx.adamw(lr, b1=b1, weight_decay=wd), params)
    nested_outs, nested_state = run(nested, params)
    for a, b in zip(flat_outs, nested_outs, strict=True):
        assert_close(a, b)
    assert_close(flat_state, nested_state)
    assert tree_paths(nested_state, "count") == [("count",)]


@SETTINGS
@given(spec=tree_specs, alias=aliases, as_tree=st.booleans())
@example(spec=EDGE, alias=("rmsprop", {"learning_rate": 0.1, "centered": True}), as_tree=True)
def test_mask_everything_is_inner_and_nothing_is_identity(spec, alias, as_tree):
    params = build(spec)
    tx = make_tx(alias)

    def mask(value):
        return jax.tree.map(lambda _: value, params) if as_tree else value

    want, want_state = run(tx, params)
    got, got_state = run(masked(tx, mask(True)), params)
    for a, b in zip(want, got, strict=True):
        assert_close(a, b)
    assert_close(want_state.inner, got_state.inner[0].inner_state)

    same, none_state = run(masked(tx, mask(False)), params)
    for t, u in enumerate(same):
        assert_close(u, grads_for(params, t))
    assert [x for x in jax.tree.leaves(none_state) if np.ndim(x) > 0] == []


@SETTINGS
@given(spec=tree_specs, alias=aliases, by_path=st.booleans())
@example(spec=EDGE, alias=("lion", {"learning_rate": 0.1}), by_path=True)
def test_multi_transform_with_one_label_is_inner(spec, alias, by_path):
    params = build(spec)
    tx = make_tx(alias)
    labels = (
        paths.labels({"only": "**"}) if by_path else (lambda p: jax.tree.map(lambda _: "only", p))
    )
    want, want_state = run(tx, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a tree without leaves labels nothing
        got, got_state = run(multi_transform({"only": tx}, labels), params)
    for a, b in zip(want, got, strict=True):
        assert_close(a, b)
    assert_close(want_state.inner, got_state.inner[0].inner_states["only"])
    assert tree_paths(got_state, "count") == [("count",)]


@SETTINGS
@given(spec=tree_specs, alias=aliases, data=st.data())
def test_random_mask_splits_exactly(spec, alias, data):
    """With a random mask, selected leaves get exactly the inner transformation's updates (per
    leaf the inner optimizers here are elementwise) and the others pass through."""
    params = build(spec)
    n = len(jax.tree.leaves(params))
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    treedef = jax.tree.structure(params)
    tx = make_tx(alias)
    want, _ = run(tx, params)
    got, _ = run(masked(tx, treedef.unflatten(keep)), params)
    for t in range(len(want)):
        g = jax.tree.leaves(grads_for(params, t))
        expect = [w if k else x for w, x, k in zip(jax.tree.leaves(want[t]), g, keep, strict=True)]
        assert_close(treedef.unflatten(expect), got[t])
