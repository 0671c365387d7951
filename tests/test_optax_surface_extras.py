"""optax's remaining transforms, wrappers, functions and state classes: monitoring (snapshot,
monitor, measure_with_ema), per-example clipping (DP-SGD), target-network updates, microbatching,
stateful hyperparameters, conditionally_mask and optax's state-class names.

Each against optax (float64, <= 1e-12 unless stated), NumPy formulas written out here, under
``jit``, and in the idioms real code uses them in.  The registered update blocks
(``keep_params_nonnegative``, ``centralize``, ``normalize_by_update_norm``) are covered by the
cross-cutting tests; here only their optax idioms.
"""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import leaves64, make_grads, make_params

import gradtx
from gradtx import apply_updates, tree_get
from gradtx import microbatching as gm
from gradtx.conditional import ConditionallyMaskState, conditionally_mask
from gradtx.monitoring import MonitorState, SnapshotState, measure_with_ema, monitor, snapshot
from gradtx.optax_names import LookaheadParams
from gradtx.per_example import (
    per_example_global_norm_clip,
    per_example_layer_norm_clip,
    unitwise_clip,
)
from gradtx.stateful_hyperparams import (
    InjectStatefulHyperparamsState,
    WrappedSchedule,
    inject_stateful_hyperparams,
)
from gradtx.target_networks import incremental_update, periodic_update

TOL = 1e-12

# every name this work adds, with its module: what gradtx re-exports at top level
TOP_LEVEL = {
    "gradtx.monitoring": ["monitor", "snapshot", "measure_with_ema"],
    "gradtx.per_example": ["per_example_global_norm_clip", "per_example_layer_norm_clip"],
    "gradtx.target_networks": ["incremental_update", "periodic_update"],
    "gradtx.microbatching": ["microbatch"],
    "gradtx.stateful_hyperparams": [
        "inject_stateful_hyperparams",
        "InjectStatefulHyperparamsState",
        "WrappedSchedule",
    ],
    "gradtx.conditional": ["conditionally_mask", "ConditionallyMaskState"],
    "gradtx.optax_names": [
        "AdaptiveGradClipState",
        "AddDecayedWeightsState",
        "ApplyEvery",
        "ClipState",
        "LookaheadParams",
        "MaskOrFn",
        "ScaleByBeliefState",
        "ScaleByScheduleState",
        "ScaleByTrustRatioState",
        "ScaleState",
        "ShouldSkipUpdateFunction",
        "TransformInitFn",
        "TransformUpdateExtraArgsFn",
        "TransformUpdateFn",
    ],
}
# optax has these at optax.transforms only; gradtx re-exports them at top level too (as it does
# unitwise_norm and its other state classes)
TRANSFORMS = {
    "gradtx.monitoring": ["MonitorState", "SnapshotState"],
    "gradtx.per_example": ["unitwise_clip"],
    "gradtx.conditional": ["ConditionFn"],
}


def close(a, b, tol=TOL):
    """Leaf by leaf ``max|a - b| <= tol * max(1, max|b|)``, same structure of leaves."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert x.shape == y.shape
        assert np.max(np.abs(x - y), initial=0) <= tol * max(1.0, np.max(np.abs(y), initial=0))


@pytest.fixture(scope="module")
def exported():
    """The names as ``gradtx.<name>`` (the lead re-exports them; until then patched in here)."""
    added = []
    for module, names in [*TOP_LEVEL.items(), *TRANSFORMS.items()]:
        mod = importlib.import_module(module)
        for name in names:
            if not hasattr(gradtx, name):
                setattr(gradtx, name, getattr(mod, name))
                added.append(name)
            assert getattr(gradtx, name) is getattr(mod, name), name
    yield
    for name in added:
        delattr(gradtx, name)


def test_every_name_exists_in_optax_where_claimed():
    for names in TOP_LEVEL.values():
        for name in names:
            assert hasattr(optax, name), name
    for names in TRANSFORMS.values():
        for name in names:
            assert hasattr(optax.transforms, name), name
    for name in ("microbatch", "micro_vmap", "micro_grad", "reshape_batch_axis"):
        assert hasattr(optax.microbatching, name) and hasattr(gm, name)
    for name in ("Accumulator", "AccumulationType"):
        assert hasattr(optax.microbatching, name) and hasattr(gm, name)


@pytest.mark.parametrize("module", [*TOP_LEVEL, "gradtx.optimizers.constraints"])
def test_doc_examples_run(module, exported):
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(importlib.import_module(module), optionflags=flags)
    assert result.failed == 0 and (result.attempted > 0 or module == "gradtx.optax_names")


# --- constraints: optax's idioms ------------------------------------------------------------------


def run_both(mine, theirs, params, grads, **extra):
    """Trajectories of two transformations (updates per step and final params)."""
    out = []
    for tx in (mine, theirs):
        p, state, history = params, tx.init(params), []
        for g in grads:
            u, state = tx.update(g, state, p, **extra)
            p = apply_updates(p, u)
            history.append(u)
        out.append((history, p, state))
    return out


def test_keep_params_nonnegative_after_adam_matches_optax_and_stays_nonnegative():
    params = jax.tree.map(jnp.abs, make_params())
    grads = make_grads(15)
    mine = gradtx.chain(gradtx.adam(0.3), gradtx.keep_params_nonnegative())
    theirs = optax.chain(optax.adam(0.3), optax.keep_params_nonnegative())
    (hm, pm, _), (ht, pt, _) = run_both(mine, theirs, params, grads)
    close(hm, ht)
    close(pm, pt)
    assert all(bool(jnp.all(p >= 0)) for p in jax.tree.leaves(pm))
    assert any(bool(jnp.any(p == 0)) for p in jax.tree.leaves(pm))  # the constraint was active


def test_keep_params_nonnegative_keeps_none_leaves_and_needs_params():
    tx = gradtx.keep_params_nonnegative()
    params = {"a": jnp.array([1.0, 0.5]), "frozen": None}
    u, _ = tx.update({"a": jnp.array([-2.0, 0.1]), "frozen": None}, tx.init(params), params)
    assert u["frozen"] is None
    np.testing.assert_array_equal(u["a"], [-1.0, 0.1])
    with pytest.raises(ValueError, match="needs params"):
        tx.update({"a": jnp.ones(2)}, tx.init(params))


def test_centralize_on_conv_and_dense_kernels_matches_optax_and_numpy():
    rng = np.random.default_rng(3)
    g = {
        "conv": jnp.asarray(rng.normal(size=(3, 3, 4, 8))),
        "dense": jnp.asarray(rng.normal(size=(6, 5))),
        "bias": jnp.asarray(rng.normal(size=(5,))),
    }
    u, _ = gradtx.centralize().update(g, gradtx.centralize().init(g))
    v, _ = optax.centralize().update(g, optax.centralize().init(g))
    close(u, v)
    for name in ("conv", "dense"):
        x = np.asarray(g[name])
        want = x - x.reshape(x.shape[0], -1).mean(axis=1).reshape(-1, *[1] * (x.ndim - 1))
        close(u[name], want)
        assert np.allclose(np.asarray(u[name]).reshape(x.shape[0], -1).sum(axis=1), 0)
    np.testing.assert_array_equal(u["bias"], g["bias"])


def test_normalize_by_update_norm_descends_as_optax_example():
    f = lambda x: jnp.sum(x**2)
    trajectories = []
    for lib in (gradtx, optax):
        solver = lib.normalize_by_update_norm(scale_factor=-1.0)
        params, losses = jnp.array([1.0, 2.0, 3.0]), []
        state = solver.init(params)
        for _ in range(5):
            u, state = solver.update(jax.grad(f)(params), state, params)
            params = apply_updates(params, u)
            losses.append(f(params))
        trajectories.append(losses)
    close(*trajectories)
    tx = gradtx.normalize_by_update_norm(0.25)
    g = make_grads(1)[0]
    u, _ = jax.jit(tx.update)(g, tx.init(g))
    assert float(gradtx.tree.norm(u)) == pytest.approx(0.25, rel=1e-5)


# --- monitoring ---------------------------------------------------------------------------------


def test_snapshot_in_a_chain_matches_optax():
    params, grads = make_params(), make_grads(6)
    mine = gradtx.chain(
        gradtx.sgd(0.1, momentum=0.9),
        snapshot("norm_before_clip", gradtx.tree.norm),
        gradtx.clip_by_global_norm(0.5),
    )
    theirs = optax.chain(
        optax.sgd(0.1, momentum=0.9),
        optax.snapshot("norm_before_clip", optax.tree.norm),
        optax.clip_by_global_norm(0.5),
    )
    sm, st = mine.init(params), theirs.init(params)
    close(tree_get(sm, "norm_before_clip"), optax.tree.get(st, "norm_before_clip"))
    for g in grads:
        um, sm = mine.update(g, sm, params)
        ut, st = theirs.update(g, st, params)
        close(um, ut)
        close(tree_get(sm, "norm_before_clip"), optax.tree.get(st, "norm_before_clip"))
        assert gradtx.tree.get(sm, "norm_before_clip") is tree_get(sm, "norm_before_clip")
    snap = [s for s in sm.inner if isinstance(s, SnapshotState)]
    assert len(snap) == 1 and snap[0]._fields == optax.transforms.SnapshotState._fields


def _measures(lib):
    return {
        "norm": lib.tree.norm,
        "clipped": (measure_with_ema if lib is gradtx else optax.measure_with_ema)(
            lambda u: lib.tree.norm(u) > 2.0, decay=0.9
        ),
        "mean_ema": (measure_with_ema if lib is gradtx else optax.measure_with_ema)(
            lambda u: jax.tree.map(jnp.mean, u), decay=0.8, debias=False
        ),
    }


def test_monitor_with_measure_with_ema_matches_optax():
    params, grads = make_params(), make_grads(10)
    mine = gradtx.chain(
        gradtx.sgd(0.5), monitor(_measures(gradtx)), gradtx.clip_by_global_norm(1.0)
    )
    theirs = optax.chain(
        optax.sgd(0.5), optax.monitor(_measures(optax)), optax.clip_by_global_norm(1.0)
    )
    sm, st = mine.init(params), theirs.init(params)
    fractions = []
    for g in grads:
        um, sm = mine.update(g, sm, params)
        ut, st = theirs.update(g, st, params)
        close(um, ut)
        for name in ("norm", "clipped", "mean_ema"):
            close(tree_get(sm, name), optax.tree.get(st, name))
        fractions.append(float(tree_get(sm, "clipped")))
    assert 0 < fractions[-1] < 1  # both outcomes occurred
    (mon,) = [s for s in sm.inner if isinstance(s, MonitorState)]
    assert mon._fields == optax.transforms.MonitorState._fields


def test_monitor_state_keeps_its_structure_so_it_scans_and_jits():
    """optax's monitor starts with ``measurements={}``: its state changes structure at the first
    update, so ``lax.scan`` over steps fails; gradtx's init holds zeros of the same shapes."""
    params, grads = make_params(), make_grads(4)
    tx = gradtx.chain(monitor(_measures(gradtx)), gradtx.sgd(0.1))
    state = tx.init(params)
    _, after = tx.update(grads[0], state, params)
    assert jax.tree.structure(state) == jax.tree.structure(after)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)

    def body(s, g):
        u, s = tx.update(g, s, params)
        return s, u

    final, _ = jax.jit(lambda s: jax.lax.scan(body, s, stacked))(state)
    eager = state
    for g in grads:
        _, eager = tx.update(g, eager, params)
    close(final, eager)
    o = optax.monitor({"norm": optax.tree.norm})
    s0 = o.init(params)
    assert jax.tree.structure(s0) != jax.tree.structure(o.update(grads[0], s0)[1])


def test_monitor_forwards_params_and_extra_keywords_to_transformation_measures():
    seen = {}

    def update(updates, state, params=None, **extra):
        seen.update(extra, params=params)
        return extra["value"] * 2, state

    tx = monitor({"twice_loss": gradtx.GradientTransformation(lambda p: (), update)})
    params = jnp.ones(2)
    state = tx.init(params)
    _, state = tx.update(jnp.zeros(2), state, params, value=jnp.asarray(1.5))
    assert float(tree_get(state, "twice_loss")) == 3.0 and seen["params"] is params
    with pytest.raises(TypeError, match="measure 'x'"):
        monitor({"x": 3})


def test_measure_with_ema_of_a_bool_is_a_fraction_as_optax():
    g = [jnp.array([2.0]), jnp.array([0.5]), jnp.array([3.0])]
    above = lambda u: u[0] > 1
    mine, theirs = measure_with_ema(above, 0.5), optax.measure_with_ema(above, 0.5)
    sm, st = mine.init(g[0]), theirs.init(g[0])
    for x in g:
        a, sm = mine.update(x, sm)
        b, st = theirs.update(x, st)
        close(a, b)
    assert jnp.issubdtype(jnp.result_type(a), jnp.floating)
    with pytest.raises(ValueError, match="decay"):
        measure_with_ema(jnp.sum, decay=1.5)


# --- per-example clipping (DP-SGD) --------------------------------------------------------------


def _per_example_grads(batch=16, seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "w1": jnp.asarray(rng.normal(size=(4, 8))),
        "b1": jnp.zeros(8),
        "w2": jnp.asarray(rng.normal(size=(8,))),
    }
    x, y = jnp.asarray(rng.normal(size=(batch, 4))), jnp.asarray(rng.normal(size=(batch,)))

    def loss(p, xi, yi):
        h = jnp.tanh(xi @ p["w1"] + p["b1"])
        return 0.5 * (h @ p["w2"] - yi) ** 2

    return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, x, y)


def _numpy_global_clip(grads, c):
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(grads)]
    total = [np.zeros(x.shape[1:]) for x in leaves]
    clipped = 0
    for b in range(leaves[0].shape[0]):
        norm = np.sqrt(sum(np.sum(x[b] ** 2) for x in leaves))
        factor = min(1.0, c / norm) if norm > 0 else 1.0
        clipped += factor < 1
        for t, x in zip(total, leaves, strict=True):
            t += factor * x[b]
    return total, clipped


@pytest.mark.parametrize("c", [0.0, 0.05, 0.5, 5.0, float("inf")])
def test_per_example_global_norm_clip_matches_optax_and_numpy(c):
    grads = _per_example_grads()
    summed, n = per_example_global_norm_clip(grads, c)
    want, want_n = optax.per_example_global_norm_clip(grads, c)
    close(summed, want)
    assert int(n) == int(want_n) and n.dtype == want_n.dtype
    ref, ref_n = _numpy_global_clip(grads, c)
    close(jax.tree.leaves(summed), ref)
    assert int(n) == ref_n


def test_dp_sgd_step_under_jit_matches_optax():
    """DP-SGD: clip per example, sum, add Gaussian noise, average, then an SGD step."""
    grads = _per_example_grads(batch=32)
    key, sigma, c = jax.random.key(0), 1.1, 0.3

    def step(clip_fn, grads, key):
        summed, _ = clip_fn(grads, c)
        keys = jax.random.split(key, len(jax.tree.leaves(summed)))
        noisy = [
            s + sigma * c * jax.random.normal(k, s.shape, s.dtype)
            for s, k in zip(jax.tree.leaves(summed), keys, strict=True)
        ]
        return jax.tree.unflatten(jax.tree.structure(summed), [x / 32 for x in noisy])

    mine = jax.jit(lambda g, k: step(per_example_global_norm_clip, g, k))(grads, key)
    theirs = jax.jit(lambda g, k: step(optax.per_example_global_norm_clip, g, k))(grads, key)
    close(mine, theirs)


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("c", [0.1, 1.0, 100.0])
def test_per_example_layer_norm_clip_matches_optax_and_numpy(uniform, c):
    grads = _per_example_grads()
    sums, counts = per_example_layer_norm_clip(grads, c, uniform)
    want_sums, want_counts = optax.per_example_layer_norm_clip(grads, c, uniform)
    close(sums, want_sums)
    assert jax.tree.map(int, counts) == jax.tree.map(int, want_counts)
    sizes = {k: int(np.prod(v.shape[1:])) for k, v in grads.items()}
    for k, v in grads.items():
        share = 1 / len(grads) if uniform else sizes[k] / sum(sizes.values())
        ref, n = _numpy_global_clip([v], c * np.sqrt(share))
        close(sums[k], ref[0])
        assert int(counts[k]) == n


def test_per_example_clipping_checks_the_batch_axis_and_the_bound():
    with pytest.raises(ValueError, match="batch on axis 0"):
        per_example_global_norm_clip({"a": jnp.ones((4, 2)), "b": jnp.ones((3,))}, 1.0)
    with pytest.raises(ValueError, match="batch on axis 0"):
        per_example_layer_norm_clip([jnp.ones(())], 1.0)
    with pytest.raises(ValueError, match="l2_norm_clip"):
        per_example_global_norm_clip([jnp.ones((2, 2))], -1.0)


def test_per_example_clip_sums_bfloat16_in_float32():
    grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _per_example_grads(batch=64))
    summed, _ = per_example_global_norm_clip(grads, 0.2)
    ref, _ = _numpy_global_clip(jax.tree.map(lambda x: x.astype(jnp.float64), grads), 0.2)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(summed))
    close(jax.tree.leaves(summed), ref, tol=1e-5)


def test_unitwise_clip_matches_optax():
    rng = np.random.default_rng(1)
    g = jnp.asarray(rng.normal(size=(5, 3)))
    norms = gradtx.unitwise_norm(g)
    limit = jnp.broadcast_to(jnp.asarray([1.0, 2.0, 3.0]), g.shape)
    close(unitwise_clip(norms, limit, g), optax.transforms.unitwise_clip(norms, limit, g))
    with pytest.raises(ValueError, match="one shape"):
        unitwise_clip(norms[0], limit, g)


# --- target networks ----------------------------------------------------------------------------


def test_soft_target_update_in_a_training_loop_matches_optax_and_numpy():
    """SAC/DDPG: ``target <- 0.005 online + 0.995 target`` after every Adam step, jitted."""
    online0, grads = make_params(), make_grads(30)
    opt = gradtx.adam(1e-2)

    def run(update_fn):
        @jax.jit
        def step(carry, g):
            online, target, state = carry
            u, state = opt.update(g, state, online)
            online = apply_updates(online, u)
            return (online, update_fn(online, target, 0.005), state), online

        carry = (online0, jax.tree.map(jnp.zeros_like, online0), opt.init(online0))
        history = []
        for g in grads:
            carry, online = step(carry, g)
            history.append(online)
        return carry[1], history

    mine, onlines = run(incremental_update)
    theirs, _ = run(optax.incremental_update)
    close(mine, theirs)
    target = [np.zeros(np.shape(x)) for x in jax.tree.leaves(online0)]
    for online in onlines:
        target = [0.005 * o + 0.995 * t for o, t in zip(leaves64(online), target, strict=True)]
    close(jax.tree.leaves(mine), target)


def test_incremental_update_ends_none_leaves_and_dtypes():
    new = {"a": jnp.array([1.0, 3.0], jnp.float32), "b": None}
    old = {"a": jnp.array([5.0, -1.0], jnp.float32), "b": None}
    np.testing.assert_array_equal(incremental_update(new, old, 1.0)["a"], new["a"])
    np.testing.assert_array_equal(incremental_update(new, old, 0.0)["a"], old["a"])
    out = incremental_update(new, old, jnp.asarray(0.5, jnp.float64))  # a float64 tau
    assert out["b"] is None and out["a"].dtype == jnp.float32  # optax's would be float64
    np.testing.assert_array_equal(out["a"], [3.0, 1.0])
    with pytest.raises(ValueError, match="step_size"):
        incremental_update(new, old, 1.5)


def test_periodic_update_matches_optax_with_a_traced_step():
    online, target = make_params(), jax.tree.map(jnp.zeros_like, make_params())
    mine = jax.jit(lambda s: periodic_update(online, target, s, 3))
    for s in range(7):
        want = optax.periodic_update(online, target, s, 3)
        close(mine(jnp.asarray(s)), want)
        close(want, online if s % 3 == 0 else target)
    with pytest.raises(ValueError, match="update_period"):
        periodic_update(online, target, 0, 0)


# --- microbatching ------------------------------------------------------------------------------

RNG = np.random.default_rng(7)
X, Y = jnp.asarray(RNG.normal(size=(12, 3))), jnp.asarray(RNG.normal(size=(12,)))


def _both(name, *args, **kwargs):
    """``name``'s result from gradtx and optax, with accumulation types translated."""

    def translate(tree, lib):
        return jax.tree.map(
            lambda a: (
                getattr(lib.AccumulationType, a.name) if isinstance(a, gm.AccumulationType) else a
            ),
            tree,
        )

    out = []
    for lib in (gm, optax.microbatching):
        a = [translate(x, lib) if isinstance(x, tuple | gm.AccumulationType) else x for x in args]
        kw = {k: translate(v, lib) if k == "accumulator" else v for k, v in kwargs.items()}
        out.append(getattr(lib, name)(*a, **kw))
    return out


@pytest.mark.parametrize("kind", ["SUM", "MEAN", "RUNNING_MEAN"])
@pytest.mark.parametrize("real", [None, 3])
def test_microbatch_reductions_match_optax_and_the_whole_batch(kind, real):
    fun = lambda x, y: ({"xy": x.T @ y, "sq": jnp.sum(x**2, axis=0)}, jnp.mean(y))
    acc = getattr(gm.AccumulationType, kind)
    mine, theirs = _both("microbatch", fun, (0, 1), 3, acc, num_real_microbatches=real)
    a, b = mine(X, Y), theirs(X, Y)
    close(a, b)
    if real is None and kind == "SUM":
        whole = fun(X, Y)
        close(a[0], whole[0])  # sums of the microbatches' sums are the batch's sums


def test_microbatch_concat_restores_order_and_mixes_accumulators():
    fun = lambda x, y: (x * 2 + 1, jnp.sum(y))
    T = gm.AccumulationType
    mine, theirs = _both("microbatch", fun, [0, 1], 4, (T.CONCAT, T.SUM))
    a, b = jax.jit(mine)(X, Y), theirs(X, Y)
    close(a, b)
    close(a[0], X * 2 + 1)
    close(a[1], jnp.sum(Y))
    assert gm.reshape_batch_axis(X, 4).shape == (3, 4, 3)
    close(gm.reshape_batch_axis(X, 4), optax.microbatching.reshape_batch_axis(X, 4))


def test_microbatch_keyword_batch_arguments_and_in_axes():
    fun = lambda w, *, xs: jnp.sum(w @ xs)  # xs: the batch on axis 1
    a = gm.microbatch(fun, (), 6, argnames="xs", in_axes=1)
    b = optax.microbatch(fun, (), 6, argnames="xs", in_axes=1)
    close(a(jnp.ones(3), xs=X.T), b(jnp.ones(3), xs=X.T))
    close(a(jnp.ones(3), xs=X.T), jnp.sum(X))
    with pytest.raises(ValueError, match="multiple of"):
        gm.microbatch(fun, (), 5, argnames="xs", in_axes=1)(jnp.ones(3), xs=X.T)
    with pytest.raises(ValueError, match="differ"):
        gm.microbatch(lambda x, y: x, (0, 1), 2)(X, Y[:6])


def test_optax_accumulation_types_and_custom_accumulators_are_accepted():
    max_acc = gm.Accumulator(
        init=lambda s: jnp.full(s.shape, -jnp.inf, s.dtype),
        update=lambda c, v, i: jnp.maximum(c, v),
        finalize=lambda c: c,
        aggregate=lambda v: jnp.max(v, axis=0),
    )
    fun = lambda x: (jnp.max(x), jnp.sum(x))
    got = gm.microbatch(fun, 0, 3, (max_acc, optax.microbatching.AccumulationType.SUM))(X)
    close(got, (jnp.max(X), jnp.sum(X)))
    with pytest.raises(ValueError, match="floating"):
        gm.microbatch(lambda x: x.sum(), 0, 2, gm.AccumulationType.MEAN)(jnp.arange(4))


def test_microbatch_sums_bfloat16_in_float32():
    x = jnp.asarray(RNG.uniform(0.5, 1.5, size=(512, 4)), jnp.bfloat16)
    got = gm.microbatch(lambda v: jnp.sum(v, axis=0), 0, 2)(x)
    exact = np.asarray(x, np.float64).sum(axis=0)
    assert got.dtype == jnp.bfloat16
    assert np.max(np.abs(np.asarray(got, np.float64) - exact) / exact) <= 2**-8  # one rounding


@pytest.mark.parametrize("kind", ["CONCAT", "SUM", "MEAN"])
def test_micro_vmap_matches_optax_and_vmap(kind):
    f = lambda x: jnp.sin(x) * jnp.sum(x)
    acc = getattr(gm.AccumulationType, kind)
    mine, theirs = _both("micro_vmap", f, microbatch_size=4, accumulator=acc)
    close(mine(X), theirs(X))
    full = jax.vmap(f)(X)
    want = {"CONCAT": full, "SUM": full.sum(0), "MEAN": full.mean(0)}[kind]
    close(mine(X), want)


def test_micro_vmap_int_in_axes_maps_every_argument_as_vmap():
    f = lambda x, y: x * y
    got = gm.micro_vmap(f, microbatch_size=3)(X, Y[:, None])
    close(got, jax.vmap(f)(X, Y[:, None]))
    got = gm.micro_vmap(f, in_axes=(0, None), microbatch_size=6)(X, 2.0)
    close(got, X * 2)


@pytest.mark.parametrize("size", [None, 4])
def test_micro_grad_matches_optax_and_per_example_loop(size):
    def loss(w, x, y):
        return 0.5 * jnp.mean((x @ w - y) ** 2)

    w = jnp.asarray(RNG.normal(size=(3,)))
    kw = {
        "argnums": 0,
        "batch_argnums": (1, 2),
        "accumulator": gm.AccumulationType.MEAN,
        "transform_fn": lambda g: (g, g**2),
        "metrics_fn": jnp.linalg.norm,
        "microbatch_size": size,
    }
    (a_g, a_aux), (b_g, b_aux) = (f(w, X, Y) for f in _both("micro_grad", loss, **kw))
    close(a_g, b_g)
    close((a_aux.values, a_aux.metrics), (b_aux.values, b_aux.metrics))
    per = [jax.grad(loss)(w, X[i : i + 1], Y[i : i + 1]) for i in range(12)]
    close(a_g, (sum(per) / 12, sum(g**2 for g in per) / 12))
    assert type(a_aux).__name__ == "Aux" and a_aux._fields == b_aux._fields


def test_micro_grad_with_aux_and_early_stop_under_jit():
    def loss(w, x):
        return jnp.sum((x @ w) ** 2), {"pred": x @ w}

    w = jnp.ones(3)
    fn = gm.micro_grad(loss, has_aux=True, microbatch_size=3, num_real_microbatches=None)
    g, aux = jax.jit(fn)(w, X)
    close(g, jax.grad(lambda w: loss(w, X)[0])(w))
    close(aux.aux["pred"], (X @ w)[:, None])
    early = jax.jit(
        lambda n: gm.micro_grad(loss, True, microbatch_size=3, num_real_microbatches=n)(w, X)[0]
    )
    want = optax.microbatching.micro_grad(loss, True, microbatch_size=3, num_real_microbatches=2)
    close(early(2), want(w, X)[0])


EXPLICIT_SHARDING_CHECK = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from gradtx import microbatching as gm
mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
x = jax.device_put(jnp.arange(16.0).reshape(8, 2), NamedSharding(mesh, P("data")))
T = gm.AccumulationType
with jax.set_mesh(mesh):
    split = gm.reshape_batch_axis(x, 4)
    assert str(jax.typeof(split)) == "float32[2,4@data,2]", jax.typeof(split)
    assert (np.asarray(split)[1, 0] == np.asarray(x)[1]).all()  # row 1 opens microbatch 1
    f = lambda v: (v * 2, jnp.sum(v, axis=0), jnp.mean(v))
    out = jax.jit(gm.microbatch(f, 0, 4, (T.CONCAT, T.SUM, T.MEAN)))(x)
    assert str(jax.typeof(out[0])) == "float32[8@data,2]", jax.typeof(out[0])
    assert bool(jnp.all(out[0] == x * 2)) and bool(jnp.all(out[1] == x.sum(0)))
    assert float(out[2]) == float(jnp.mean(x))
    assert bool(jnp.all(gm.micro_vmap(lambda v: v**2, microbatch_size=2)(x) == x**2))
print("ok")
"""


def test_microbatching_keeps_an_explicitly_sharded_batch_sharded():
    """On an explicit mesh the split batch keeps its sharding on the microbatch_size axis and
    CONCAT restores it.  (optax 0.2.8 fails here with jax 0.10: it compares version strings,
    ``"0.10.2" < "0.7.0"``, and so reshapes without ``out_sharding``.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", EXPLICIT_SHARDING_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


# --- stateful hyperparameters -------------------------------------------------------------------


class HalveOnPlateau:
    """A loss-driven stateful schedule: ``(best loss, value)``; the value halves whenever
    ``value=`` fails to improve on the best."""

    def __init__(self, start):
        self.start = start

    def init(self):
        return jnp.asarray(jnp.inf), jnp.asarray(self.start)

    def __call__(self, state, **extra):
        return state[1]

    def update(self, state, *, value, **extra):
        best, lr = state
        return jnp.minimum(value, best), jnp.where(value < best, lr, lr / 2)


def _stateful_run(tx, params, grads, values):
    state, out = tx.init(params), []
    for g, v in zip(grads, values, strict=True):
        u, state = tx.update(g, state, params, value=jnp.asarray(v))
        params = apply_updates(params, u)
        out.append(u)
    return out, state


LOSSES = [3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.5, 0.7, 0.4, 0.9]


@pytest.mark.parametrize("factory", ["adam", "scale_by_adam"])
def test_inject_stateful_hyperparams_matches_optax(factory):
    params, grads = make_params(), make_grads(len(LOSSES))
    sched = lambda c: 0.9 - 0.4 / (1 + c)
    if factory == "adam":
        kw = {"learning_rate": HalveOnPlateau(0.1), "b1": sched, "b2": 0.99}
    else:
        kw = {"b1": sched, "eps": HalveOnPlateau(1e-2)}
    with pytest.warns(DeprecationWarning):
        theirs = optax.inject_stateful_hyperparams(getattr(optax, factory))(**kw)
    for mine in (
        inject_stateful_hyperparams(getattr(gradtx, factory))(**kw),
        inject_stateful_hyperparams(getattr(optax, factory))(**kw),
    ):
        (hm, sm), (ht, st) = (_stateful_run(t, params, grads, LOSSES) for t in (mine, theirs))
        close(hm, ht)
        assert isinstance(sm, InjectStatefulHyperparamsState)
        assert set(sm._fields) == set(st._fields) - {"count"}
        assert set(sm.hyperparams) == set(st.hyperparams)
        close(sm.hyperparams, st.hyperparams)
        name = "learning_rate" if factory == "adam" else "eps"
        close(sm.hyperparams_states[name], st.hyperparams_states[name])
        assert int(sm.inner_state.count) == int(st.count) == len(LOSSES)


def test_stateful_schedules_scan_under_jit_in_a_chain_with_one_counter():
    params, grads = make_params(), make_grads(6)
    inner = inject_stateful_hyperparams(gradtx.sgd)(learning_rate=HalveOnPlateau(0.2), momentum=0.5)
    tx = gradtx.chain(gradtx.clip_by_global_norm(10.0), inner)
    state = tx.init(params)
    assert set(tree_get(state, "hyperparams")) == {"learning_rate", "momentum"}

    def body(s, gv):
        g, v = gv
        u, s = tx.update(g, s, params, value=v)
        return s, u

    stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)
    values = jnp.asarray(LOSSES[:6])
    final, us = jax.jit(lambda s: jax.lax.scan(body, s, (stacked, values)))(state)
    eager, s = [], state
    for g, v in zip(grads, values, strict=True):
        u, s = tx.update(g, s, params, value=v)
        eager.append(u)
    close(final, s)
    close(us, jax.tree.map(lambda *x: jnp.stack(x), *eager))
    assert int(final.count) == 6
    # 0.2 halved after the losses 2.5 and 1.5 failed to improve
    assert float(tree_get(final, "hyperparams")["learning_rate"]) == pytest.approx(0.05)


def test_wrapped_schedule_matches_optax_and_is_the_plain_schedule():
    fn = lambda c: 0.1 * 0.5**c
    mine, theirs = WrappedSchedule(fn), optax.WrappedSchedule(fn)
    sm, st = mine.init(), theirs.init()
    for _ in range(4):
        close(mine(sm), theirs(st))
        sm, st = mine.update(sm), theirs.update(st)
    assert sm._fields == st._fields
    params, grads = make_params(), make_grads(5)
    a = inject_stateful_hyperparams(gradtx.adam)(learning_rate=WrappedSchedule(fn))
    b = gradtx.adam(learning_rate=fn)
    (ha, sa), (hb, _) = (_stateful_run(t, params, grads, [0.0] * 5) for t in (a, b))
    close(ha, hb)
    assert sa.hyperparams_states == {}
    close(sa.hyperparams["learning_rate"], fn(4))


def test_numeric_hyperparameters_can_be_set_and_undeclared_ones_refused():
    tx = inject_stateful_hyperparams(gradtx.adam)(learning_rate=0.1, b1=HalveOnPlateau(0.9))
    state = gradtx.tree_set(tx.init(jnp.zeros(2)), learning_rate=0.0)
    u, _ = tx.update(jnp.ones(2), state, value=jnp.asarray(1.0))
    np.testing.assert_array_equal(u, 0.0)
    with pytest.raises(ValueError, match="not a numeric hyperparameter"):
        inject_stateful_hyperparams(gradtx.adam)(learning_rate=0.1, mu_dtype=HalveOnPlateau(1))
    with pytest.raises(ValueError, match="static_args"):
        inject_stateful_hyperparams(gradtx.adam, static_args="nope")


# --- conditionally_mask -------------------------------------------------------------------------


def test_conditionally_mask_matches_optax():
    params, grads = make_params(), make_grads(9)
    every_third = lambda step: step % 3 == 0
    mine = conditionally_mask(gradtx.adam(0.1), every_third)
    theirs = optax.conditionally_mask(optax.adam(0.1), every_third)
    (hm, pm, sm), (ht, pt, st) = run_both(mine, theirs, params, grads)
    close(hm, ht)
    close(pm, pt)
    assert isinstance(sm.inner[0], ConditionallyMaskState)
    assert int(sm.count) == int(st.step) == 9
    assert int(tree_get(sm, "inner_state").count) == 3  # the inner took 3 steps
    assert all(float(gradtx.tree.norm(u)) == 0 for i, u in enumerate(hm) if i % 3)


def test_conditionally_mask_forwards_extra_args_and_jits():
    pred = lambda step, value: value < 1.0
    tx = conditionally_mask(gradtx.sgd(1.0), pred, forward_extra_args=True)
    step = jax.jit(lambda g, s, v: tx.update(g, s, value=v))
    state = tx.init(jnp.zeros(2))
    u, state = step(jnp.ones(2), state, 2.0)
    np.testing.assert_array_equal(u, 0.0)
    u, state = step(jnp.ones(2), state, 0.5)
    np.testing.assert_array_equal(u, -1.0)


# --- optax's state-class names ------------------------------------------------------------------


def test_state_class_names_hold_gradtx_states_with_optax_fields_less_count():
    from gradtx import optax_names as names

    g = make_grads(1)[0]
    cases = [
        (names.ScaleByBeliefState, gradtx.scale_by_belief(), optax.ScaleByBeliefState),
        (names.ApplyEvery, gradtx.apply_every(2), optax.ApplyEvery),
        (names.ScaleByScheduleState, gradtx.scale_by_schedule(lambda c: 1.0), None),
        (names.ClipState, gradtx.clip(1.0), optax.ClipState),
        (names.ScaleState, gradtx.scale(2.0), optax.ScaleState),
        (names.AdaptiveGradClipState, gradtx.adaptive_grad_clip(0.1), None),
        (names.AddDecayedWeightsState, gradtx.add_decayed_weights(0.1), None),
        (names.ScaleByTrustRatioState, gradtx.scale_by_trust_ratio(), None),
    ]
    for cls, tx, theirs in cases:
        (member,) = tx.init(g).inner
        assert isinstance(member, cls), (cls, member)
        if theirs is not None:
            assert set(cls._fields) == set(theirs._fields) - {"count"}
    assert set(names.ScaleByScheduleState._fields) == set(optax.ScaleByScheduleState._fields) - {
        "count"
    }


def test_lookahead_params_pair_matches_optax_lookahead():
    params, grads = make_params(), make_grads(8)
    mine = gradtx.lookahead(gradtx.sgd(0.1), sync_period=3, slow_step_size=0.5)
    theirs = optax.lookahead(optax.sgd(0.1), sync_period=3, slow_step_size=0.5)
    p, s = params, mine.init(params)
    q = optax.LookaheadParams.init_synced(params)
    t = theirs.init(q)
    for g in grads:
        u, s = mine.update(g, s, p)
        p = apply_updates(p, u)
        v, t = theirs.update(g, t, q)
        q = apply_updates(q, v)
        pair = LookaheadParams.from_state(p, s)
        close(pair.fast, q.fast)
        close(pair.slow, q.slow)
    assert LookaheadParams._fields == optax.LookaheadParams._fields
    assert LookaheadParams.init_synced(params) == LookaheadParams(params, params)
