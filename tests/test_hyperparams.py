"""inject_hyperparams: wrapping never changes the trajectory (float64 bit-for-bit, constants and
schedules, several aliases), changing a hyperparameter between steps takes effect without a
retrace, vmap over hyperparameter values equals separate runs, dtypes are kept, and nesting in a
chain keeps one step counter."""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

import gradtx
from gradtx import ChainState, apply_updates, chain, registry, tree_get, tree_paths, tree_set
from gradtx.hyperparams import InjectHyperparamsState, declared_hyperparams, inject_hyperparams
from gradtx.schedules import cosine_decay_schedule, linear_schedule, piecewise_constant_schedule

STEPS = 7


def make_problem():
    """A least-squares problem with a two-leaf parameter tree (gradients depend on the params)."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(5, 3)))
    target = jnp.asarray(rng.normal(size=(5, 2)))
    params = {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=(2,)))}

    def loss(p):
        return 0.5 * jnp.sum((a @ p["w"] + p["b"] - target) ** 2)

    return params, loss


PARAMS, LOSS = make_problem()


def run(tx, params=PARAMS, steps=STEPS):
    """``steps`` updates on LOSS; returns final params, final state and the loss per step."""

    def body(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(LOSS)(p)
        u, s = tx.update(g, s, p, value=value, grad=g, value_fn=LOSS)  # a line search reads all
        return (apply_updates(p, u), s), value

    (p, s), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return p, s, losses


def assert_trees_equal(a, b):
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    assert ta == tb, (ta, tb)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_trees_close(a, b, rtol=1e-13):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-15)


# --- wrapping does not change the trajectory -----------------------------------------------------

LR_SCHEDULE = cosine_decay_schedule(0.05, 5, alpha=0.1)
CASES = {
    "sgd-nesterov": (gradtx.sgd, dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    "sgd-schedule": (gradtx.sgd, dict(learning_rate=LR_SCHEDULE, momentum=0.8)),
    "adam": (gradtx.adam, dict(learning_rate=0.03, b1=0.8, eps=1e-6)),
    "adam-schedules": (
        gradtx.adam,
        dict(learning_rate=LR_SCHEDULE, b1=linear_schedule(0.5, 0.9, 4)),
    ),
    "adamw-mask": (
        gradtx.adamw,
        dict(learning_rate=0.02, weight_decay=0.1, mask=lambda p: {"w": True, "b": False}),
    ),
    "rmsprop-centered": (
        gradtx.rmsprop,
        dict(
            learning_rate=piecewise_constant_schedule(0.01, {3: 0.5}), centered=True, momentum=0.5
        ),
    ),
    "nadam": (gradtx.nadam, dict(learning_rate=LR_SCHEDULE)),
    "lion": (gradtx.lion, dict(learning_rate=0.01, weight_decay=0.01)),
    "yogi": (gradtx.yogi, dict(learning_rate=LR_SCHEDULE)),
}


@functools.cache
def trajectories():
    """Every case wrapped and unwrapped, in one compiled function."""
    txs = {}
    for name, (factory, kwargs) in CASES.items():
        txs[name] = (factory(**kwargs), inject_hyperparams(factory)(**kwargs))
    return jax.jit(lambda: {n: (run(a), run(b)) for n, (a, b) in txs.items()})()


@pytest.mark.parametrize("name", sorted(CASES))
def test_wrapping_is_bit_identical(name):
    (p_ref, s_ref, l_ref), (p, s, losses) = trajectories()[name]
    assert_trees_equal(p, p_ref)
    assert_trees_equal(s.inner_state, s_ref)  # the same state, one counter
    np.testing.assert_array_equal(losses, l_ref)
    assert int(s.inner_state.count) == STEPS
    assert float(losses[-1]) < float(losses[0])  # and it is training


ENTRIES = [e for e in registry.entries() if e.kind in ("optimizer", "block")]


@functools.cache
def registry_trajectories(family: str):
    """Every example of every entry of ``family``, wrapped and unwrapped, in one compiled
    function (one per family keeps each compilation small)."""
    txs = {}
    for e in ENTRIES:
        if e.family != family:
            continue
        for i, example in enumerate(e.examples):
            kwargs = registry.resolve_uses(example, registry.build)
            txs[e.name, i] = (e.build(i), inject_hyperparams(e.factory)(**kwargs))
    return jax.jit(lambda: {k: (run(a), run(b)) for k, (a, b) in txs.items()})()


REGISTRY_CASES = [(e, i) for e in ENTRIES for i in range(len(e.examples))]


@pytest.mark.parametrize(
    ("entry", "example"), REGISTRY_CASES, ids=[f"{e.name}-{i}" for e, i in REGISTRY_CASES]
)
def test_every_registered_factory_wraps_bit_identically(entry, example):
    (p_ref, s_ref, l_ref), (p, s, losses) = registry_trajectories(entry.family)[entry.name, example]
    assert_trees_equal(p, p_ref)
    if isinstance(s_ref, ChainState):
        assert_trees_equal(s.inner_state, s_ref)
    else:  # a stateless transformation's own state is EmptyState(), injected it is counted
        assert jax.tree.leaves(s_ref) == [] and jax.tree.leaves(s.inner_state.inner) == []
    np.testing.assert_array_equal(losses, l_ref)
    # exactly the arguments the factory declares numeric are in the state
    given = {**{p.name: p.default for p in registry.parameters(entry)}, **entry.examples[example]}
    declared = declared_hyperparams(entry.factory) or set()
    numeric = {n for n in declared if given.get(n) is not None}
    assert set(s.hyperparams) == numeric


def test_schedule_values_are_recorded_for_the_latest_step():
    _, s, _ = trajectories()["adam-schedules"][1]
    # after STEPS updates the latest one used step STEPS - 1
    np.testing.assert_array_equal(tree_get(s, "learning_rate"), LR_SCHEDULE(STEPS - 1))
    np.testing.assert_array_equal(s.hyperparams["b1"], linear_schedule(0.5, 0.9, 4)(STEPS - 1))
    np.testing.assert_array_equal(s.hyperparams["b2"], 0.999)
    fresh = inject_hyperparams(gradtx.adam)(learning_rate=LR_SCHEDULE).init(PARAMS)
    np.testing.assert_array_equal(fresh.hyperparams["learning_rate"], LR_SCHEDULE(0))
    assert tree_paths(fresh, "count") == [("inner_state", "count")]  # one counter


def test_first_update_uses_step_zero():
    # lr 1 at step 0 and 0 afterwards: exactly one step of plain gradient descent
    tx = inject_hyperparams(gradtx.sgd)(learning_rate=piecewise_constant_schedule(1.0, {1: 0.0}))
    g = jax.grad(LOSS)(PARAMS)
    u, state = tx.update(g, tx.init(PARAMS), PARAMS)
    assert_trees_equal(u, jax.tree.map(lambda x: -x, g))
    u, state = tx.update(g, state, PARAMS)
    assert_trees_equal(u, jax.tree.map(lambda x: -0.0 * x, g))


# --- changing hyperparameters between steps ------------------------------------------------------


def test_tree_set_changes_the_next_step_without_retracing():
    traces = []
    tx = inject_hyperparams(gradtx.sgd)(learning_rate=0.1, momentum=0.5)

    @jax.jit
    def step(params, state):
        traces.append(None)
        g = jax.grad(LOSS)(params)
        u, state = tx.update(g, state, params)
        return apply_updates(params, u), state, g

    params, state = PARAMS, tx.init(PARAMS)
    params, state, g0 = step(params, state)
    state = tree_set(state, learning_rate=0.01)
    before = params
    params, state, g1 = step(params, state)
    # the second step used lr 0.01: p1 = p0 - 0.01 * (g1 + 0.5 * g0)
    expected = jax.tree.map(lambda p, a, b: p - 0.01 * (b + 0.5 * a), before, g0, g1)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-14), params, expected)
    # replacing the dict entry (same dtype) works too, and momentum changes the same way
    state.hyperparams["learning_rate"] = np.float64(0.2)
    state = tree_set(state, momentum=0.0)
    params, state, _ = step(params, state)
    assert float(tree_get(state, "learning_rate")) == 0.2
    assert float(tree_get(state, "momentum")) == 0.0
    assert len(traces) == 1


def test_setting_a_scheduled_value_has_no_effect():
    tx = inject_hyperparams(gradtx.sgd)(learning_rate=linear_schedule(1.0, 0.0, 10))
    g = jax.grad(LOSS)(PARAMS)
    state = tree_set(tx.init(PARAMS), learning_rate=123.0)
    u, state = tx.update(g, state, PARAMS)
    assert_trees_equal(u, jax.tree.map(lambda x: -1.0 * x, g))
    assert float(state.hyperparams["learning_rate"]) == 1.0


# --- vmap over hyperparameter values ------------------------------------------------------------


def test_vmap_over_learning_rates_equals_separate_runs():
    lrs, b1s = [1e-3, 1e-2, 3e-2, 1e-1], [0.9, 0.8, 0.9, 0.5]
    tx = inject_hyperparams(gradtx.adam)(learning_rate=0.0, b1=0.9)

    def one(lr, b1):
        state = tree_set(tx.init(PARAMS), learning_rate=lr, b1=b1)

        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(LOSS)(p)
            u, s = tx.update(g, s, p)
            return (apply_updates(p, u), s), value

        (p, s), losses = jax.lax.scan(body, (PARAMS, state), None, length=STEPS)
        return p, s, losses

    batched = jax.jit(jax.vmap(one))(jnp.asarray(lrs), jnp.asarray(b1s))
    pairs = zip(lrs, b1s, strict=True)
    singles = jax.jit(lambda: [run(gradtx.adam(lr, b1=b1)) for lr, b1 in pairs])()
    for i, (p, s, losses) in enumerate(singles):
        member_p, member_s, member_losses = jax.tree.map(lambda x, i=i: x[i], batched)
        assert_trees_close(member_p, p)
        assert_trees_close(member_s.inner_state, s)
        np.testing.assert_allclose(member_losses, losses, rtol=1e-13)
    assert batched[1].hyperparams["learning_rate"].shape == (4,)
    final = batched[2][:, -1]
    assert len(set(np.asarray(final).tolist())) == 4  # the members really differ


# --- dtypes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (gradtx.adam, dict(learning_rate=cosine_decay_schedule(0.1, 5))),
        (gradtx.sgd, dict(learning_rate=0.1, momentum=0.9)),
        (gradtx.rmsprop, dict(learning_rate=0.1, centered=True)),
    ],
)
def test_float32_params_keep_float32_state(factory, kwargs):
    params = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS)
    tx = inject_hyperparams(factory)(**kwargs)
    state = tx.init(params)
    g = jax.tree.map(lambda x: jnp.ones_like(x), params)
    u, state = jax.jit(tx.update)(g, state, params)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(u))
    float_leaves = [x for x in jax.tree.leaves(state.inner_state.inner)]
    assert float_leaves and all(x.dtype == jnp.float32 for x in float_leaves)
    # hyperparameters in the params' highest float dtype (as optax) and not weakly typed
    for v in state.hyperparams.values():
        assert v.dtype == jnp.float32 and not v.weak_type


def test_hyperparameters_take_the_params_highest_float_dtype_at_least_float32():
    """optax stores them in the params' highest float dtype; gradtx too, but never below float32:
    in bfloat16 optax's b2 = 0.999 becomes 1.0 and its injected Adam stops moving."""
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2, jnp.bfloat16)}
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3).init(params)
    assert theirs.hyperparams["b2"].dtype == jnp.bfloat16 and float(theirs.hyperparams["b2"]) == 1
    mine = inject_hyperparams(gradtx.adam)(learning_rate=1e-3).init(params)
    b2 = mine.hyperparams["b2"]
    assert b2.dtype == jnp.float32 and b2 == jnp.float32(0.999)
    state = inject_hyperparams(gradtx.adam)(learning_rate=1e-3).init({"a": jnp.ones(2)})
    assert state.hyperparams["learning_rate"].dtype == jnp.float64  # the params' float64


def test_hyperparam_dtype_override():
    tx = inject_hyperparams(gradtx.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.1)
    assert tx.init(PARAMS).hyperparams["learning_rate"].dtype == jnp.float32


# --- argument sorting, nesting, foreign factories, errors ----------------------------------------


def test_static_arguments_pass_through():
    tx = inject_hyperparams(gradtx.adamw)(
        0.01, mu_dtype=jnp.float32, mask=lambda p: {"w": True, "b": False}, nesterov=True
    )
    state = tx.init(PARAMS)
    numeric = {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"}
    assert set(state.hyperparams) == numeric
    assert tree_get(state, "mu")["w"].dtype == jnp.float32
    # an integer-typed argument stays a Python int; static_args forces a name static
    tx = inject_hyperparams(gradtx.noisy_sgd, static_args="eta")(0.1, eta=0.5, seed=3)
    assert set(tx.init(PARAMS).hyperparams) == {"learning_rate", "gamma"}
    # an integer where a float is expected is a hyperparameter; an integer key is not
    state = inject_hyperparams(gradtx.noisy_sgd)(1, key=0).init(PARAMS)
    assert set(state.hyperparams) == {"learning_rate", "eta", "gamma"}
    assert state.hyperparams["learning_rate"].dtype == jnp.float64


def test_nested_in_a_chain_shares_the_one_counter():
    inner = dict(learning_rate=LR_SCHEDULE, momentum=0.9)
    wrapped = chain(gradtx.clip_by_global_norm(1.0), inject_hyperparams(gradtx.sgd)(**inner))
    plain = chain(gradtx.clip_by_global_norm(1.0), gradtx.sgd(**inner))
    (p, s, _), (p_ref, s_ref, _) = jax.jit(lambda: (run(wrapped), run(plain)))()
    assert_trees_equal(p, p_ref)
    assert_trees_equal(s.inner[0], s_ref.inner[0])
    assert isinstance(s, ChainState) and tree_paths(s, "count") == [("count",)]
    injected = s.inner[1]
    assert isinstance(injected, InjectHyperparamsState)
    np.testing.assert_array_equal(injected.hyperparams["learning_rate"], LR_SCHEDULE(STEPS - 1))


def test_wraps_an_optax_factory():
    tx = inject_hyperparams(optax.adam)(learning_rate=0.05)
    (p, s, _), (p_ref, _, _) = jax.jit(lambda: (run(tx), run(optax.adam(0.05))))()
    assert_trees_close(p, p_ref, rtol=1e-12)
    assert int(s.inner_state.count) == STEPS and float(s.hyperparams["learning_rate"]) == 0.05


# --- schedules and stateful schedules from elsewhere (optax's own, lambdas, partials) ------------


def _decay(step, peak, rate):
    return peak * rate**step


def _as_int64(schedule):
    """``schedule`` handed the step as int64, as gradtx hands it (optax hands int32)."""
    return lambda count: schedule(jnp.asarray(count).astype(jnp.int64))


def run_logged(tx, lib, steps=STEPS):
    """Eager steps on LOSS; the params and the logged learning rate after every step."""
    p, s = PARAMS, tx.init(PARAMS)
    ps, lrs = [], []
    for _ in range(steps):
        u, s = tx.update(jax.grad(LOSS)(p), s, p)
        p = lib.apply_updates(p, u)
        ps.append(p)
        lrs.append(s.hyperparams["learning_rate"])
    return ps, np.asarray(lrs, np.float64)


OPTAX_COSINE = optax.warmup_cosine_decay_schedule(0.0, 0.05, 2, STEPS, 1e-3)
FOREIGN_SCHEDULES = {
    "lambda": (lambda c: 0.05 / (1.0 + c), 1e-13),
    "partial": (functools.partial(_decay, peak=0.05, rate=0.7), 1e-13),
    # optax's functions evaluate the int32 step in float32: gradtx's int64 step makes them exact
    "optax-schedule": (OPTAX_COSINE, 1e-6),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN_SCHEDULES))
@pytest.mark.parametrize("factory", ["gradtx", "optax"])
def test_foreign_schedules_work_as_in_optax(kind, factory):
    """A schedule not made by gradtx, in ``inject_hyperparams`` of a gradtx or optax factory,
    gives optax's trajectory and optax's logged values (each step's params and learning rate)."""
    schedule, tol = FOREIGN_SCHEDULES[kind]
    b1 = lambda c: 0.9 - 0.4 / (2.0 + c)
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=schedule, b1=b1)
    mine = inject_hyperparams((gradtx if factory == "gradtx" else optax).adam)(
        learning_rate=schedule, b1=b1
    )
    (pm, lm), (pt, lt) = run_logged(mine, gradtx), run_logged(theirs, optax)
    np.testing.assert_allclose(lm, lt, rtol=tol, atol=0)
    for a, b in zip(pm, pt, strict=True):
        assert_trees_close(a, b, rtol=tol)
    if kind == "optax-schedule":  # the whole difference is the step's integer type
        exact = optax.inject_hyperparams(optax.adam)(learning_rate=_as_int64(schedule), b1=b1)
        (pe, le) = run_logged(exact, optax)
        np.testing.assert_allclose(lm, le, rtol=1e-13)
        for a, b in zip(pm, pe, strict=True):
            assert_trees_close(a, b, rtol=1e-12)
        assert np.max(np.abs(lm - lt)) > 0  # and there is one: the float32 rounding


class _HalveOnPlateau:
    """A stateful schedule following the loss: ``(best, value)``, halved when no better."""

    def init(self):
        return jnp.asarray(jnp.inf), jnp.asarray(0.05)

    def __call__(self, state, **extra):
        return state[1]

    def update(self, state, *, value, **extra):
        best, lr = state
        return jnp.minimum(value, best), jnp.where(value < best, lr, lr / 2)


@pytest.mark.parametrize("kind", ["optax-wrapped", "gradtx-wrapped", "loss-driven"])
def test_stateful_schedules_in_inject_hyperparams_work_as_in_optax(kind):
    """optax's ``inject_hyperparams`` also takes stateful schedules (``WrappedSchedule``, any
    ``init``/``update``/``__call__`` object); gradtx's hands them to
    ``inject_stateful_hyperparams``: the same updates, logged values and schedule states."""
    make = {
        "optax-wrapped": lambda: optax.WrappedSchedule(OPTAX_COSINE),
        "gradtx-wrapped": lambda: gradtx.WrappedSchedule(lambda c: 0.05 / (1.0 + c)),
        "loss-driven": _HalveOnPlateau,
    }[kind]
    mine = inject_hyperparams(gradtx.adam)(learning_rate=make(), b2=0.99)
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=make(), b2=0.99)
    pm, sm, pt, st = PARAMS, mine.init(PARAMS), PARAMS, theirs.init(PARAMS)
    for loss in [3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.5]:
        um, sm = mine.update(jax.grad(LOSS)(pm), sm, pm, value=jnp.asarray(loss))
        ut, st = theirs.update(jax.grad(LOSS)(pt), st, pt, value=jnp.asarray(loss))
        pm, pt = apply_updates(pm, um), optax.apply_updates(pt, ut)
        assert_trees_close(pm, pt, rtol=1e-13)
        np.testing.assert_allclose(sm.hyperparams["learning_rate"], st.hyperparams["learning_rate"])
    assert type(sm).__name__ == "InjectStatefulHyperparamsState"
    if kind != "gradtx-wrapped":  # (gradtx's WrappedSchedule is the counter: no state)
        assert_trees_close(sm.hyperparams_states, st.hyperparams_states)
    if kind == "loss-driven":  # halved twice: after 2.5 and after 1.5 (1.2 still > 1.0)
        assert float(sm.hyperparams["learning_rate"]) == pytest.approx(0.05 / 8)


def test_errors():
    with pytest.raises(ValueError, match="static_args"):
        inject_hyperparams(gradtx.adam, static_args=("beta",))
    with pytest.raises(ValueError, match="b1"):
        inject_hyperparams(gradtx.adam)(learning_rate=0.1, b1=1.5)
    with pytest.raises(TypeError):
        inject_hyperparams(gradtx.adam)(learning_rate=0.1, beta=0.5)
    tx = inject_hyperparams(gradtx.adam)(learning_rate=0.1)
    g = jax.grad(LOSS)(PARAMS)
    with pytest.raises(ValueError, match="InjectHyperparamsState"):
        tx.update(g, gradtx.adam(0.1).init(PARAMS), PARAMS)
    other = inject_hyperparams(gradtx.sgd)(learning_rate=0.1).init(PARAMS)
    with pytest.raises(ValueError, match="hyperparams"):
        tx.update(g, other, PARAMS)


# --- the example ---------------------------------------------------------------------------------


def test_lr_sweep_example(tmp_path):
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "lr_sweep.py"
    spec = importlib.util.spec_from_file_location("example_lr_sweep", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--out", str(tmp_path)])
    final = np.asarray(result["final_loss"])
    lrs = np.asarray(result["learning_rates"])
    assert lrs.shape == final.shape == (8,) and np.all(np.diff(lrs) > 0)
    assert np.all(np.isfinite(final[:6]))
    initial = float(result["initial_loss"])
    best = int(np.nanargmin(final))
    assert 0 < best < 7  # too small a rate barely moves, too large a rate does worse than the best
    assert final[best] < 0.1 * initial  # the sweep finds a rate that fits
    assert final[0] > 2 * final[best] and final[-1] > 2 * final[best]
    with Image.open(tmp_path / "lr_sweep.png") as im:
        im.load()
        assert im.size[0] >= 600 and im.size[1] >= 300
        assert len(np.unique(np.asarray(im.convert("L")))) > 20
