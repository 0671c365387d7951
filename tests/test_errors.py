"""Error messages: bad hyperparameters fail at construction, bad trees fail at update, and both
say what is wrong in words a user can act on."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import fast_compile, make_grads, make_params

import gradtx as A
from gradtx import kit, registry


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


ENTRIES = registry.entries()


def _bad_values(rng: kit.Range) -> list[float]:
    """Values just outside each end of the interval (an unbounded end gives none), a
    non-integer for an integer range, NaN for a range unbounded on both sides."""
    lo, hi = rng._lo, rng._hi
    out = []
    if np.isfinite(lo):
        out.append(lo - 0.5 if rng._closed[0] else lo)
    if np.isfinite(hi):
        out.append(hi + 0.5 if rng._closed[1] else hi)
    if rng.integer:
        out.append(max(lo, 0) + 1.5)
    return out or [float("nan")]  # an unbounded rate (negative ascends) still refuses NaN


# (entry, argument, bad value, interval): derived from every Range annotation, so a new optimizer
# is covered as soon as it is registered
RANGE_CASES = [
    (e, name, bad, rng)
    for e in ENTRIES
    if e.kind != "torch"
    for name, rng in kit.ranges_of(e.factory).items()
    for bad in _bad_values(rng)
]


@pytest.mark.parametrize(
    ("entry", "arg", "bad", "rng"),
    RANGE_CASES,
    ids=[f"{e.name}-{a}={b}" for e, a, b, _ in RANGE_CASES],
)
def test_out_of_range_hyperparameter_raises_at_construction(entry, arg, bad, rng):
    with pytest.raises(ValueError) as info:
        entry.build(0, **{arg: bad})
    msg = str(info.value)
    assert msg.startswith(f"{entry.name}: "), msg
    assert re.search(rf"\b{arg}=", msg), msg
    assert rng.interval in msg and "out of range" in msg, msg


def test_range_cases_cover_every_entry_with_ranges():
    assert {e.name for e, *_ in RANGE_CASES} == {
        e.name for e in ENTRIES if e.kind != "torch" and kit.ranges_of(e.factory)
    }
    assert len(RANGE_CASES) > 150


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if e.kind == "optimizer"], ids=lambda e: e.name
)
def test_in_range_edge_values_are_accepted(entry):
    """The closed ends of the intervals are legal (e.g. a zero learning rate)."""
    for name, rng in kit.ranges_of(entry.factory).items():
        for end, closed in ((rng._lo, rng._closed[0]), (rng._hi, rng._closed[1])):
            if closed and np.isfinite(end):
                entry.build(0, **{name: int(end) if rng.integer else float(end)})


LEARNING_RATES = [e for e in ENTRIES if "learning_rate" in kit.ranges_of(e.factory)]


@pytest.mark.parametrize("entry", LEARNING_RATES, ids=lambda e: e.name)
@pytest.mark.parametrize("bad", ["1e-3", [0.1], True])
def test_a_learning_rate_of_the_wrong_type_fails_at_construction(entry, bad):
    with pytest.raises(TypeError, match=r"learning_rate=.* must be a number, an array or a sched"):
        entry.build(0, learning_rate=bad)


# --- tree mismatches at update ---------------------------------------------------------------


def _grads():
    return make_grads(1)[0]


def _missing_key(g):
    return {"dense": g["dense"]}


def _extra_leaf(g):
    return {**g, "extra": jnp.ones(2)}


def _wrong_shape(g):
    return {"dense": {"b": g["dense"]["b"], "w": g["dense"]["w"].T}, "scale": g["scale"]}


# (mutation of the grads, the path the message must name, a fragment of the explanation)
MISMATCHES = [
    ("missing-key", _missing_key, "scale", "tree structure"),
    ("extra-leaf", _extra_leaf, "extra", "tree structure"),
    ("wrong-shape", _wrong_shape, "dense/w", "(4, 3)"),
]


@pytest.mark.parametrize("case", MISMATCHES, ids=lambda c: c[0])
@pytest.mark.parametrize(
    "name, block", [("adam", "scale_by_adam"), ("sgd", "trace"), ("adagrad", "scale_by_rss")]
)
def test_grads_state_mismatch_names_transformation_and_path(name, block, case):
    _, mutate, path, fragment = case
    params = make_params()
    tx = A.sgd(0.1, momentum=0.9) if name == "sgd" else getattr(A, name)(0.1)
    state = tx.init(params)
    with pytest.raises(ValueError) as info:
        tx.update(mutate(_grads()), state, params)
    msg = str(info.value)
    assert msg.startswith(block), msg
    assert path in msg, msg
    assert fragment in msg, msg


def test_params_mismatch_names_weight_decay_and_path():
    params = make_params()
    tx = A.adamw(0.1, weight_decay=0.1)
    state = tx.init(params)
    with pytest.raises(ValueError) as info:
        tx.update(_grads(), state, {"dense": params["dense"]})
    msg = str(info.value)
    assert msg.startswith("add_decayed_weights"), msg
    assert "params" in msg and "scale" in msg, msg


@pytest.mark.parametrize(
    "other",
    [lambda: A.adamw(0.1), lambda: A.rmsprop(0.1, momentum=0.9)],
    ids=["adamw-3-members", "rmsprop-3-members"],
)
def test_state_with_wrong_member_count_is_rejected(other):
    params = make_params()
    tx = A.adam(0.1)
    with pytest.raises(ValueError, match=r"chain: expected ChainState.* 2 member states.* 3"):
        tx.update(_grads(), other().init(params), params)


def test_optax_state_is_rejected():
    params = make_params()
    with pytest.raises(ValueError, match=r"chain: expected ChainState.*got tuple"):
        A.adam(0.1).update(_grads(), optax.adam(0.1).init(params), params)


def test_state_of_another_optimizer_with_same_member_count():
    """sgd(momentum) and adam both have two member states; adam's must still be refused with a
    ValueError that names the state it got and the missing field.
    """
    params = make_params()
    state = A.adam(0.1).init(params)
    with pytest.raises(ValueError, match=r"trace"):
        A.sgd(0.1, momentum=0.9).update(_grads(), state, params)


# --- integer and boolean parameters -------------------------------------------------------------
# A float update applied to an int32 leaf is rounded away: every step would silently be 0.

_INT_PARAMS = {"w": jnp.ones(3), "layer": {"steps": jnp.array(3), "on": jnp.array(True)}}


@pytest.mark.parametrize(
    "make",
    [lambda: A.adam(0.1), lambda: A.sgd(0.1), lambda: A.lookahead(A.sgd(0.1), 2, 0.5),
     lambda: A.chain(A.clip_by_global_norm(1.0), A.adamw(0.1))],
    ids=["adam", "sgd", "lookahead", "clip+adamw"],
)  # fmt: skip
def test_integer_params_are_refused_at_init_naming_the_path(make):
    with pytest.raises(TypeError, match=r"params leaf 'layer/(steps|on)' has dtype (int32|bool)"):
        make().init(_INT_PARAMS)


@pytest.mark.parametrize(
    "make",
    [
        lambda: A.masked(A.adam(0.1), {"w": True, "layer": {"steps": False, "on": False}}),
        lambda: A.masked(optax.adam(0.1), {"w": True, "layer": {"steps": False, "on": False}}),
        lambda: A.multi_transform(
            {"train": A.adam(0.1), "keep": A.set_to_zero()},
            {"w": "train", "layer": {"steps": "keep", "on": "keep"}},
        ),
        lambda: A.selective_transform(
            A.adam(0.1), freeze_mask={"w": False, "layer": {"steps": True, "on": True}}
        ),
    ],
    ids=["masked", "masked-optax", "multi_transform", "selective_transform"],
)
def test_integer_params_left_out_of_the_optimizer_are_fine(make):
    tx = make()
    state = tx.init(_INT_PARAMS)
    grads = {"w": jnp.ones(3), "layer": {"steps": jnp.array(0), "on": jnp.array(False)}}
    updates, _ = tx.update(grads, state, _INT_PARAMS)
    new = A.apply_updates(_INT_PARAMS, updates)
    assert new["layer"]["steps"] == 3 and new["layer"]["on"].dtype == jnp.bool_
    assert float(jnp.abs(new["w"] - 1).max()) > 0.05
