"""The public kit for writing a block (gradtx.kit): its documented example is a real optimizer,
and each tool does what its docstring says."""

from __future__ import annotations

import inspect
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import leaves64, make_grads, make_params, run_tx

import gradtx
from gradtx import kit


def _kit_example() -> dict:
    """Runs the code block of kit's module docstring; returns its namespace."""
    block = re.search(r"about twenty lines::\n\n(.*?)\n\"\"\"", kit.__doc__ + '\n"""', re.S)
    assert block, "kit's docstring lost its example"
    code = "\n".join(line[4:] for line in block.group(1).splitlines())
    ns: dict = {}
    exec(compile(code, "kit example", "exec"), ns)
    return ns


def test_the_documented_example_is_adabelief_without_eps_root():
    ns = _kit_example()
    params, grads = make_params(), make_grads(30)
    mine, _, state = run_tx(ns["my_optimizer"], params, grads)
    theirs, _, _ = run_tx(gradtx.adabelief(1e-3, eps=1e-8, eps_root=0.0), params, grads)
    for a, b in zip(mine, theirs, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-13, atol=0)
    assert gradtx.tree_get(state, "s")["dense"]["w"].shape == (3, 4)
    with pytest.raises(ValueError, match=r"scale_by_my_belief: b1=1.0 is out of range.*\[0, 1\)"):
        ns["scale_by_my_belief"](b1=1.0)


# --- validation -----------------------------------------------------------------------------------


@kit.validated
def _factory(
    rate: kit.Rate,
    decay: kit.Decay = 0.9,
    steps: kit.Steps = 3,
    optional: kit.NonNegative | None = None,
) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"rate": float("nan")}, ValueError, r"_factory: rate=nan is out of range; .* in \(-inf"),
        ({"rate": 0.1, "decay": 1.0}, ValueError, r"decay=1.0 .* decay in \[0, 1\)"),
        ({"rate": 0.1, "steps": 2.5}, ValueError, r"steps=2.5 .* an integer in \[1, inf\)"),
        ({"rate": 0.1, "optional": -2.0}, ValueError, r"optional=-2.0"),
        ({"rate": "0.1"}, TypeError, r"rate='0.1' must be a number, an array or a schedule"),
        ({"rate": None}, TypeError, r"rate=None must be"),  # None only where it is the default
        ({"rate": 0.1, "decay": True}, TypeError, r"decay=True"),
    ],
)
def test_validated_names_the_argument_and_the_interval(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        _factory(**kwargs)


def test_validated_lets_through_schedules_arrays_and_tracers():
    _factory(rate=lambda c: 0.1 * c, decay=jnp.asarray([0.5, 0.9]), optional=None)
    jax.vmap(lambda r: _factory(rate=r) or 0.0)(jnp.asarray([-1.0, 1.0]))  # traced: unchecked
    with pytest.raises(ValueError, match="decay"):
        _factory(rate=0.1, decay=np.asarray([0.5, 1.5]))  # every element of a concrete array
    assert kit.ranges_of(_factory)["decay"].interval == "[0, 1)"


def test_range_rejects_a_malformed_interval():
    with pytest.raises(ValueError, match="not an interval"):
        kit.Range("0..1")


# --- the per-leaf map and the dtype rule ----------------------------------------------------------


class _Moment(NamedTuple):
    m: kit.Tree


def test_map_state_rounds_the_state_once_and_computes_the_update_from_it():
    """bfloat16 state of float32 params: the leaf is computed in float32, the new state rounded
    once to bfloat16, and the update read from the rounded value (keep)."""
    g = {"w": jnp.asarray([1.0, 2.0, 3.0], jnp.float32) / 3}
    state = _Moment({"w": jnp.asarray([0.1, 0.2, 0.3], jnp.bfloat16)})

    def leaf(x, s, *, keep):
        assert x.dtype == s.m.dtype == jnp.float32  # widened once
        s = keep(_Moment(0.9 * s.m + 0.1 * x))
        return 2 * s.m, s

    u, new = kit.map_state("test", leaf, g, state)
    exact = 0.9 * np.asarray(state.m["w"], np.float32) + 0.1 * np.asarray(g["w"])
    stored = np.asarray(jnp.asarray(exact).astype(jnp.bfloat16))
    assert new.m["w"].dtype == jnp.bfloat16 and u["w"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(new.m["w"]), stored)
    np.testing.assert_array_equal(np.asarray(u["w"]), 2 * stored.astype(np.float32))


def test_map_state_names_the_first_differing_path():
    state = _Moment({"w": jnp.zeros(3), "b": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"test: updates and m have different tree structures"):
        kit.map_state("test", lambda g, s, keep: (g, s), {"w": jnp.ones(3)}, state)


# --- making a block -------------------------------------------------------------------------------


def test_block_resolves_schedules_at_the_chain_step_and_forwards_extras():
    seen = []

    def step(updates, state, params, h):
        seen.append((int(h.count), float(h.factor), dict(h.extra)))
        return jax.tree.map(lambda x: h.factor * x, updates), state

    tx = gradtx.chain(
        gradtx.identity(), kit.block("double", step, hyper={"factor": lambda c: c + 2.0})
    )
    state = tx.init({"w": jnp.ones(2)})
    for _ in range(2):
        u, state = tx.update({"w": jnp.ones(2)}, state, value=1.5)
    assert seen == [(0, 2.0, {"value": 1.5}), (1, 3.0, {"value": 1.5})]
    np.testing.assert_array_equal(u["w"], [3.0, 3.0])


def test_block_errors():
    with pytest.raises(ValueError, match="may not be named"):
        kit.block("x", lambda u, s, p, h: (u, s), hyper={"count": 1.0})
    needy = kit.block("needy", lambda u, s, p, h: (u, s), needs_params=True)
    with pytest.raises(ValueError, match=r"needy: update needs params \(pass params=...\)"):
        needy.update({"w": jnp.ones(2)}, needy.init({"w": jnp.ones(2)}))
    with pytest.raises(ValueError, match=r"init_state: _Moment has no fields \['nu'\]"):
        kit.init_state(_Moment, nu=jnp.float32)


def test_init_state_fills_in_the_requested_dtypes():
    init = kit.init_state(_Moment, 0.5, m=jnp.bfloat16)
    state = init(make_params(jnp.float32))
    assert {x.dtype for x in jax.tree.leaves(state.m)} == {jnp.dtype(jnp.bfloat16)}
    assert all(np.all(x == 0.5) for x in leaves64(state.m))


def test_arguments_for_hands_a_block_the_shared_arguments():
    def block(b1=0.9, eps=1e-8, *, seed=None):
        return b1, eps, seed

    values = {"learning_rate": 0.1, "b1": 0.5, "eps": 1e-6, "seed": 3, "mask": None}
    assert kit.arguments_for(block, values) == {"b1": 0.5, "eps": 1e-6, "seed": 3}
    assert kit.arguments_for(block, values, eps=0.0)["eps"] == 0.0
    # the aliases that forward with it take every argument of their block, so none is dropped
    pairs = [(gradtx.shampoo, gradtx.scale_by_shampoo), (gradtx.soap, gradtx.scale_by_soap),
             (gradtx.psgd_kron, gradtx.scale_by_psgd_kron)]  # fmt: skip
    for alias, blk in pairs:
        missing = set(inspect.signature(blk).parameters) - set(inspect.signature(alias).parameters)
        assert not missing, (alias.__name__, missing)
