"""Error messages: bad hyperparameters fail at construction, bad trees fail at update, and both
say what is wrong in words a user can act on."""

from __future__ import annotations

import re

import jax.numpy as jnp
import optax
import pytest
from helpers import fast_compile, make_grads, make_params

import gradtx as A


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


ADAM_LIKE = [
    "adam",
    "adamw",
    "amsgrad",
    "adamax",
    "adamaxw",
    "nadam",
    "nadamw",
    "radam",
    "adabelief",
    "yogi",
]
ALL = sorted([*ADAM_LIKE, "sgd", "adagrad", "rmsprop", "adadelta", "lion", "noisy_sgd", "sign_sgd"])

# (alias, keyword arguments, the argument the message must name, its allowed interval)
RANGE_CASES = [
    *[(name, {"learning_rate": -0.1}, "learning_rate", "[0, inf)") for name in ALL],
    *[(name, {"learning_rate": float("nan")}, "learning_rate", "[0, inf)") for name in ["adam"]],
    *[(n, {"learning_rate": 0.1, "b1": 1.0}, "b1", "[0, 1)") for n in ADAM_LIKE],
    *[(n, {"learning_rate": 0.1, "b1": -0.1}, "b1", "[0, 1)") for n in ADAM_LIKE],
    *[(n, {"learning_rate": 0.1, "b2": 1.5}, "b2", "[0, 1)") for n in ADAM_LIKE],
    *[(n, {"learning_rate": 0.1, "eps": -1e-8}, "eps", "[0, inf)") for n in ADAM_LIKE],
    *[
        (n, {"learning_rate": 0.1, "weight_decay": -1e-4}, "weight_decay", "[0, inf)")
        for n in ["adamw", "adamaxw", "nadamw", "lion", "adadelta"]
    ],
    ("adam", {"learning_rate": 0.1, "eps_root": -1.0}, "eps_root", "[0, inf)"),
    ("lion", {"learning_rate": 0.1, "b1": 1.5}, "b1", "[0, 1]"),
    ("lion", {"learning_rate": 0.1, "b2": -0.5}, "b2", "[0, 1]"),
    ("adagrad", {"learning_rate": 0.1, "eps": -1.0}, "eps", "[0, inf)"),
    (
        "adagrad",
        {"learning_rate": 0.1, "initial_accumulator_value": -1.0},
        "initial_accumulator_value",
        "[0, inf)",
    ),
    ("rmsprop", {"learning_rate": 0.1, "decay": 1.5}, "decay", "[0, 1]"),
    ("rmsprop", {"learning_rate": 0.1, "eps": -1.0}, "eps", "[0, inf)"),
    ("adadelta", {"learning_rate": 0.1, "rho": -0.5}, "rho", "[0, 1]"),
    ("adadelta", {"learning_rate": 0.1, "eps": -1.0}, "eps", "[0, inf)"),
    ("noisy_sgd", {"learning_rate": 0.1, "eta": -1.0}, "eta", "[0, inf)"),
    ("noisy_sgd", {"learning_rate": 0.1, "gamma": -1.0}, "gamma", "[0, inf)"),
    # sgd/rmsprop check momentum themselves, so the message names the caller's argument
    ("sgd", {"learning_rate": 0.1, "momentum": -0.1}, "momentum", "[0, inf)"),
    ("rmsprop", {"learning_rate": 0.1, "momentum": -0.1}, "momentum", "[0, inf)"),
]


@pytest.mark.parametrize(
    "name, kwargs, arg, interval",
    RANGE_CASES,
    ids=[f"{n}-{a}={v}" for n, kw, a, _ in RANGE_CASES for v in [kw.get(a)]],
)
def test_out_of_range_hyperparameter_raises_at_construction(name, kwargs, arg, interval):
    with pytest.raises(ValueError) as info:
        getattr(A, name)(**kwargs)
    msg = str(info.value)
    assert re.search(rf"\b{arg}=", msg), msg
    assert interval in msg, msg
    assert "out of range" in msg, msg


@pytest.mark.parametrize("name", ALL)
def test_in_range_edge_values_are_accepted(name):
    """Zero learning rate and the closed ends of the intervals are legal."""
    getattr(A, name)(learning_rate=0.0)
    if name in ADAM_LIKE:
        getattr(A, name)(learning_rate=0.1, b1=0.0, b2=0.0, eps=0.0)


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
