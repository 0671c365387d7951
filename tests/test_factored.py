"""The factored family beyond the cross-cutting tests: Adafactor's state is the factored size on a
transformer-shaped tree, vectors and small matrices stay whole, low-precision params keep their
dtypes, the momentum has its own dtype, higher-rank leaves and ties factor as optax does, and the
places where optax is not defined (``decay_offset``/``step_offset`` > 0, SM3 on a scalar leaf)
are checked against the NumPy references instead.  Also: the whole float64 difference from optax
is optax's decay schedule, evaluated in float32."""

from __future__ import annotations

import contextlib
import inspect
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from optax._src import factorized
from references import build, run

import gradtx
from gradtx import ChainState, tree_get

TOL = 1e-10


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def vs_numpy(tx, name, kwargs, params, steps=20):
    grads = [jax.tree.map(lambda p, t=t: _grad(p, t), params) for t in range(steps)]
    got, _, _ = run_tx(tx, params, grads)
    want, _ = run(build(name, kwargs), leaves64(params), [leaves64(g) for g in grads])
    return rel_err(got, want)


def _grad(p, t):
    rng = np.random.default_rng(100 + t)
    return jnp.asarray((1 + 0.5 * np.sin(t)) * rng.normal(size=p.shape) + 0.1, p.dtype)


def pow64(step, decay_rate):
    """optax's default schedule, but in float64."""
    return 1.0 - jnp.asarray(step + 1, jnp.float64) ** (-decay_rate)


@contextlib.contextmanager
def optax_schedule_in_float64():
    """optax.adafactor with its default ``decay_rate_fn`` replaced by ``pow64``."""
    fn = factorized.scale_by_factored_rms
    names = [p.name for p in inspect.signature(fn).parameters.values() if p.default is not p.empty]
    defaults = list(fn.__defaults__)
    defaults[names.index("decay_rate_fn")] = pow64
    with mock.patch.object(fn, "__defaults__", tuple(defaults)):
        yield


# --- memory: the factored size --------------------------------------------------------------

D, F, V = 256, 1024, 1000
LAYER = {
    "attn": {"qkv": (D, 3 * D), "qkv_bias": (3 * D,), "out": (D, D), "heads": (D, 4, 64)},
    "mlp": {"up": (D, F), "up_bias": (F,), "down": (F, D)},
    "norm": (D,),
}
TRANSFORMER = {"embed": (V, D), "layers": [LAYER, LAYER], "final_norm": (D,)}


def abstract(shapes, dtype=jnp.float32):
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s, dtype),
        shapes,
        is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(d, int) for d in x),
    )


def state_size(tx, params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(tx.init, params)))


def test_adafactor_state_is_the_factored_size_on_a_transformer():
    params = abstract(TRANSFORMER)
    sizes = [x.shape for x in jax.tree.leaves(params)]
    # a matrix keeps m + n; vectors and the (256, 4, 64) heads tensor (its second-largest
    # dimension 64 < min_dim_size_to_factor = 128) keep every entry
    expected = sum(s[0] + s[1] if len(s) == 2 else int(np.prod(s)) for s in sizes)
    n_params = sum(int(np.prod(s)) for s in sizes)
    measured = state_size(gradtx.adafactor(1e-3), params) - 1  # less the step counter
    assert measured == expected == 2 * 65536 + 13800  # the heads tensors, and all the rest
    assert state_size(gradtx.adam(1e-3), params) - 1 == 2 * n_params
    # the matrices alone: m + n numbers each, not m * n
    matrices = {"embed": (V, D), "up": (D, F)}
    assert state_size(gradtx.adafactor(1e-3), abstract(matrices)) - 1 == V + D + D + F
    # with min_dim_size_to_factor=64 the heads tensor factors too (over its axes 0 and 2)
    assert state_size(gradtx.adafactor(1e-3, min_dim_size_to_factor=64), params) - 1 == (
        expected - 2 * 65536 + 2 * (4 * 64 + D * 4)
    )
    # momentum adds one full float32 copy
    with_momentum = state_size(gradtx.adafactor(1e-3, momentum=0.9), params) - 1
    assert with_momentum == expected + n_params


def test_vectors_and_small_matrices_stay_unfactored():
    params = {"b": jnp.ones(300), "w": jnp.ones((200, 130)), "small": jnp.ones((127, 500))}
    state = gradtx.scale_by_factored_rms().init(params)
    v_row, v_col, v = (tree_get(state, f) for f in ("v_row", "v_col", "v"))
    assert v["b"].shape == (300,) and v_row["b"] is None and v_col["b"] is None
    # rows run along the second-largest axis, columns along the largest
    assert v_row["w"].shape == (130,) and v_col["w"].shape == (200,) and v["w"] is None
    assert v["small"].shape == (127, 500) and v_row["small"] is None  # 127 < 128
    unfactored = gradtx.scale_by_factored_rms(factored=False).init(params)
    assert tree_get(unfactored, "v")["w"].shape == (200, 130)
    assert jax.tree.leaves(tree_get(unfactored, "v_row")) == []


def test_sm3_state_is_one_accumulator_per_axis_slice():
    params = {
        "w": jnp.ones((30, 40)),
        "c": jnp.ones((3, 5, 7)),
        "b": jnp.ones(9),
        "s": jnp.ones(()),
    }
    mu = tree_get(gradtx.sm3(0.1).init(params), "mu")
    assert [m.shape for m in mu["w"]] == [(30,), (40,)]
    assert [m.shape for m in mu["c"]] == [(3,), (5,), (7,)]
    assert [m.shape for m in mu["b"]] == [(9,)] and [m.shape for m in mu["s"]] == [()]


# --- dtypes ----------------------------------------------------------------------------------

LOW = {
    "w32": jnp.linspace(-1, 1, 12, dtype=jnp.float32).reshape(3, 4),
    "w16": jnp.linspace(-2, 1, 20, dtype=jnp.float32).reshape(4, 5).astype(jnp.bfloat16),
    "b16": jnp.linspace(0.5, 1, 5, dtype=jnp.float32).astype(jnp.bfloat16),
    "s32": jnp.asarray(0.7, jnp.float32),
}
DTYPES = jax.tree.map(lambda x: x.dtype, LOW)


def _steps(tx, params, n=3):
    state = tx.init(params)
    for t in range(n):
        grads = jax.tree.map(lambda p, t=t: (p * (t + 1) + 0.25).astype(p.dtype), params)
        updates, state = tx.update(grads, state, params)
        assert jax.tree.map(lambda x: x.dtype, updates) == DTYPES
        params = gradtx.apply_updates(params, updates)
        assert jax.tree.map(lambda x: x.dtype, params) == DTYPES
    assert all(np.all(np.isfinite(np.asarray(x, np.float32))) for x in jax.tree.leaves(params))
    return params, state


@pytest.mark.parametrize("dtype_momentum", [jnp.float32, None])
def test_float32_and_bfloat16_params_keep_their_dtypes(dtype_momentum):
    tx = gradtx.adafactor(0.1, 2, momentum=0.9, dtype_momentum=dtype_momentum)
    _, state = _steps(tx, LOW)
    v_row, v_col = tree_get(state, "v_row"), tree_get(state, "v_col")
    assert v_row["w16"].dtype == v_col["w16"].dtype == jnp.bfloat16
    assert v_row["w32"].dtype == jnp.float32 and tree_get(state, "v")["b16"].dtype == jnp.bfloat16
    ema = tree_get(state, "ema")
    want = DTYPES if dtype_momentum is None else jax.tree.map(lambda _: jnp.float32, LOW)
    assert jax.tree.map(lambda x: x.dtype, ema) == want


def test_sm3_and_param_scale_keep_low_precision_dtypes():
    _, state = _steps(gradtx.sm3(0.1), LOW)
    assert tree_get(state, "mu")["w16"][1].dtype == jnp.bfloat16
    assert tree_get(state, "nu")["w16"].dtype == jnp.bfloat16
    _steps(gradtx.chain(gradtx.scale_by_param_block_norm(), gradtx.scale(-0.1)), LOW)


def test_bfloat16_step_is_the_float32_step_rounded():
    """Computed in float32 from the state as stored: one bfloat16 rounding of the state and one
    of the update, not bfloat16 arithmetic throughout."""
    g = jnp.linspace(-2, 3, 20, dtype=jnp.float32).reshape(4, 5).astype(jnp.bfloat16)
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)
    u16, s16 = tx.update(g, tx.init(g))
    u32, _ = tx.update(g.astype(jnp.float32), tx.init(g.astype(jnp.float32)))
    np.testing.assert_allclose(np.asarray(u16, np.float32), np.asarray(u32), rtol=2e-2)
    assert tree_get(s16, "v_row").dtype == jnp.bfloat16


def test_default_float32_momentum_matches_the_reference_rounding():
    """The momentum is stored in float32 under float64 params, and the update is that stored
    value (optax returns the unrounded one: ~1e-8 apart)."""
    kwargs = {"learning_rate": 0.1, "min_dim_size_to_factor": 2, "momentum": 0.9}
    tx = gradtx.adafactor(**kwargs)
    assert vs_numpy(tx, "adafactor", kwargs, make_params()) <= TOL
    ema = tree_get(tx.init(make_params()), "ema")
    assert {x.dtype for x in jax.tree.leaves(ema)} == {jnp.dtype(jnp.float32)}


# --- where optax is not defined -----------------------------------------------------------------


def test_optax_gives_nan_for_a_decay_offset():
    """The quirk this family works around: optax's schedule uses ``t - offset`` from step 0."""
    params, g = make_params(), make_grads(1)[0]
    for tx in (optax.adafactor(0.1, decay_offset=3), optax.scale_by_factored_rms(step_offset=2)):
        u, _ = tx.update(g, tx.init(params), params)
        assert all(np.all(np.isnan(x)) for x in leaves64(u))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("adafactor", {"learning_rate": 0.1, "min_dim_size_to_factor": 2, "decay_offset": 3}),
        ("adafactor", {"learning_rate": 0.1, "decay_offset": 30, "momentum": 0.5}),
        ("scale_by_factored_rms", {"min_dim_size_to_factor": 2, "step_offset": 5}),
    ],
)
def test_offsets_match_the_numpy_reference(name, kwargs):
    tx = getattr(gradtx, name)(**kwargs)
    assert vs_numpy(tx, name, kwargs, make_params(), steps=40) <= TOL
    without = {k: v for k, v in kwargs.items() if k not in ("decay_offset", "step_offset")}
    assert vs_numpy(getattr(gradtx, name)(**without), name, kwargs, make_params()) > 1e-3


def test_offset_agrees_with_optax_once_optax_is_defined():
    """From a state whose counter has reached the offset, both use ``s = t - offset``."""
    offset, params, grads = 4, make_params(), make_grads(12)
    mine = gradtx.scale_by_factored_rms(
        step_offset=offset, min_dim_size_to_factor=2, decay_rate_fn=pow64
    )
    theirs = optax.scale_by_factored_rms(
        step_offset=offset, min_dim_size_to_factor=2, decay_rate_fn=pow64
    )
    count = jnp.asarray(offset, jnp.int32)
    start = mine.init(params)
    assert isinstance(start, ChainState)
    a, _, _ = run_tx(mine, params, grads, start_state=start._replace(count=count))
    b, _, _ = run_tx(theirs, params, grads, start_state=theirs.init(params)._replace(count=count))
    assert rel_err(a, b) <= 1e-12


def test_sm3_where_optax_is_defined_and_where_it_is_not():
    """optax's SM3 fails on a 0-d leaf; on the other leaves (a rank-3 one too) it agrees."""
    with pytest.raises(IndexError):
        optax.sm3(0.1).update(make_grads(1)[0], optax.sm3(0.1).init(make_params()))
    rng = np.random.default_rng(3)
    params = {"b": jnp.asarray(rng.normal(size=4)), "w": jnp.asarray(rng.normal(size=(3, 4)))}
    params["c"] = jnp.asarray(rng.normal(size=(2, 3, 4)))
    grads = [jax.tree.map(lambda p, t=t: _grad(p, t), params) for t in range(12)]
    cases = [("sm3", {"learning_rate": 0.1}), ("sm3", {"learning_rate": 0.05, "momentum": 0.0})]
    cases += [("scale_by_sm3", {"b1": 0.5, "b2": 0.99, "eps": 1e-4})]
    for name, kwargs in cases:
        a, _, _ = run_tx(getattr(gradtx, name)(**kwargs), params, grads)
        b, _, _ = run_tx(getattr(optax, name)(**kwargs), params, grads)
        assert rel_err(a, b) <= TOL, (name, kwargs)
        assert vs_numpy(getattr(gradtx, name)(**kwargs), name, kwargs, params) <= TOL


def test_sm3_takes_a_learning_rate_schedule():
    kwargs = {"learning_rate": lambda c: 0.1 / (1 + c / 3.0), "momentum": 0.5}
    assert vs_numpy(gradtx.sm3(**kwargs), "sm3", kwargs, make_params()) <= TOL


# --- higher rank, ties, and the float64 difference from optax -------------------------------------

TENSORS = {"conv": (3, 3, 4, 8), "heads": (2, 5, 6), "square": (4, 4), "tie": (4, 4, 2)}


def tensors():
    rng = np.random.default_rng(5)
    return {k: jnp.asarray(rng.normal(size=s)) for k, s in TENSORS.items()}


def test_higher_rank_and_square_leaves_match_the_reference_and_optax():
    params, kwargs = tensors(), {"min_dim_size_to_factor": 2, "decay_rate_fn": pow64}
    tx = gradtx.scale_by_factored_rms(**kwargs)
    assert vs_numpy(tx, "scale_by_factored_rms", kwargs, params) <= TOL
    grads = [jax.tree.map(lambda p, t=t: _grad(p, t), params) for t in range(12)]
    a, _, state = run_tx(tx, params, grads)
    b, _, optax_state = run_tx(optax.scale_by_factored_rms(**kwargs), params, grads)
    assert rel_err(a, b) <= 1e-12
    # the same axes factored: the same shapes in v_row and v_col
    for field in ("v_row", "v_col"):
        ours = jax.tree.map(jnp.shape, tree_get(state, field))
        for k, shape in ours.items():
            assert shape == getattr(optax_state, field)[k].shape, (field, k)


@pytest.mark.parametrize("example", range(3))
def test_float64_difference_from_optax_is_its_float32_schedule(example):
    """optax evaluates ``1 - t^-c`` in float32 even under x64 (~5e-8 relative); with that one
    function in float64 the trajectories agree to rounding."""
    entry = gradtx.registry.get("adafactor")
    params, grads = make_params(), make_grads(12)
    kwargs = gradtx.registry.resolve_uses(entry.examples[example], gradtx.registry.build)
    mine, _, _ = run_tx(entry.build(example), params, grads)
    theirs, _, _ = run_tx(optax.adafactor(**kwargs), params, grads)
    assert 1e-10 < rel_err(mine, theirs) < 1e-6
    with optax_schedule_in_float64():
        exact, _, _ = run_tx(optax.adafactor(**kwargs), params, grads)
    assert rel_err(mine, exact) <= 1e-13


# --- construction ------------------------------------------------------------------------------


def test_clipping_threshold_is_checked_and_none_switches_it_off():
    with pytest.raises(ValueError, match=r"adafactor: clipping_threshold=0.0 is out of range"):
        gradtx.adafactor(0.1, clipping_threshold=0.0)
    with pytest.raises(ValueError, match=r"min_dim_size_to_factor=2.5 is out of range"):
        gradtx.adafactor(0.1, min_dim_size_to_factor=2.5)
    unclipped = gradtx.adafactor(0.1, clipping_threshold=None)
    assert len(unclipped.blocks) == len(gradtx.adafactor(0.1).blocks) - 1


def test_a_state_of_other_params_is_refused_naming_the_path():
    tx = gradtx.adafactor(0.1, min_dim_size_to_factor=2)
    params = make_params()
    wrong = {**params, "dense": {**params["dense"], "w": jnp.ones((4, 5))}}
    with pytest.raises(ValueError, match=r"scale_by_factored_rms.*dense/w"):
        tx.update(wrong, tx.init(params), wrong)
    sm3 = gradtx.sm3(0.1)
    with pytest.raises(ValueError, match=r"scale_by_sm3.*dense/w"):
        sm3.update(wrong, sm3.init(params))
