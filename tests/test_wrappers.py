"""Wrappers: accumulation, NaN safety, lookahead, parameter EMA, periodic/conditional updates.

References are independent: the inner optimizer run on hand-built inputs (mean gradients, the
accepted subset of gradients), NumPy formulas, and optax's same-named wrappers.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx import adam, adamw, apply_updates, chain, sgd, tree_get
from gradtx.wrappers import (
    MultiSteps,
    accumulate,
    apply_every,
    apply_if_finite,
    averaged_params,
    conditionally_transform,
    ema_params,
    lookahead,
    skip_large_updates,
    skip_not_finite,
    slow_params,
    zero_nans,
)

RNG = np.random.default_rng(0)
P0 = {"w": jnp.asarray(RNG.normal(size=(3, 2))), "b": jnp.asarray(RNG.normal(size=(2,)))}
N_MICRO = 12
# micro-step i has gradient c_i * p + d_i (depends on the params, so a wrong step shows up later)
C = jax.tree.map(lambda p: jnp.asarray(RNG.uniform(0.5, 1.5, (N_MICRO, *p.shape))), P0)
D = jax.tree.map(lambda p: jnp.asarray(RNG.normal(size=(N_MICRO, *p.shape))), P0)


def grad_at(p, i):
    return jax.tree.map(lambda x, c, d: c[i] * x + d[i], p, C, D)


def assert_tree_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


ULP = 1e-15  # a few units in the last place of float64


def assert_tree_close(a, b, tol=1e-12):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


# --- gradient accumulation -----------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 1))
def accumulated_run(tx, n, params):
    """n micro-steps of ``tx``; returns params, updates and has_updated after every micro-step."""
    ms = tx if isinstance(tx, MultiSteps) else None

    def step(carry, i):
        p, s = carry
        u, s = tx.update(grad_at(p, i), s, p)
        flag = ms.has_updated(s) if ms else jnp.asarray(False)
        return (apply_updates(p, u), s), (p, u, flag)

    (p, s), hist = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(n))
    return p, s, hist


@functools.partial(jax.jit, static_argnums=(0, 1))
def mean_grad_run(inner, ks, params):
    """The reference: one ``inner`` step per group of micro-steps, on their mean gradient."""
    p, s, start, traj = params, inner.init(params), 0, []
    for k in ks:
        total = grad_at(p, start)
        for j in range(start + 1, start + k):
            total = jax.tree.map(jnp.add, total, grad_at(p, j))
        u, s = inner.update(jax.tree.map(lambda t: t / k, total), s, p)
        p = apply_updates(p, u)
        traj.append(p)
        start += k
    return traj, s


@pytest.mark.parametrize(
    "make_inner",
    [
        lambda: sgd(0.1, momentum=0.9),
        lambda: adam(0.05),
        lambda: adamw(lambda n: 0.1 * 0.7**n, weight_decay=0.1),  # float64 schedule
    ],
    ids=["sgd_momentum", "adam", "adamw_schedule"],
)
def test_multisteps_equals_one_step_on_mean_gradient(make_inner):
    inner, k = make_inner(), 3
    ms = MultiSteps(inner, every_k_schedule=k, accumulator_dtype=None)  # the params' float64
    p, s, (p_before, updates, flags) = accumulated_run(ms, N_MICRO, P0)
    ref, ref_state = mean_grad_run(inner, (k,) * (N_MICRO // k), P0)
    # after each real step the params match the big-batch run (to the last bit or so: the two
    # compiled programs fuse multiply-adds differently; the mean itself is exact, see below)
    for r in range(N_MICRO // k):
        after = jax.tree.map(lambda x: x[(r + 1) * k], p_before) if r + 1 < N_MICRO // k else p
        assert_tree_close(after, ref[r], ULP)
    assert_tree_close(tree_get(s, "inner_opt_state"), ref_state, ULP)
    # intermediate micro-steps emit exactly zero; the real ones do not
    emitting = (np.arange(N_MICRO) % k) == k - 1
    for leaf in jax.tree.leaves(updates):
        assert np.all(np.asarray(leaf)[~emitting] == 0)
        assert np.all(np.abs(np.asarray(leaf)[emitting]) > 0)
    np.testing.assert_array_equal(np.asarray(flags), emitting)
    # counters: outer counts micro-steps, inner counts real updates; the accumulator is cleared
    assert int(s.count) == N_MICRO and int(tree_get(s, "inner_opt_state").count) == N_MICRO // k
    assert int(tree_get(s, "mini_step")) == 0 and int(s.inner[0].gradient_step) == N_MICRO // k
    assert all(np.all(np.asarray(a) == 0) for a in jax.tree.leaves(tree_get(s, "acc_grads")))


def test_multisteps_hands_the_inner_optimizer_the_exact_mean():
    # the inner optimizer is u = g, so each real update *is* the gradient it was given
    ms = MultiSteps(chain(), 3, accumulator_dtype=None)
    grads = [jax.tree.map(lambda d: d[i], D) for i in range(6)]
    s, out, step = ms.init(P0), [], jax.jit(ms.update)
    for g in grads:
        u, s = step(g, s, P0)
        out.append(u)
    for r in range(2):
        # bit for bit (g1 + g2 + g3) / 3 as JAX divides: XLA on CPU divides by multiplying with
        # the reciprocal, which differs from NumPy's correctly rounded x / 3 in the last bit
        want = jax.tree.map(lambda a, b, c: (a + b + c) / 3, *grads[3 * r : 3 * r + 3])
        assert_tree_equal(out[3 * r + 2], want)
        as_np = jax.tree.map(np.asarray, grads[3 * r : 3 * r + 3])
        numpy_mean = jax.tree.map(lambda a, b, c: (a + b + c) / 3, *as_np)
        assert_tree_close(out[3 * r + 2], numpy_mean, ULP)


def test_multisteps_state_has_one_accumulator():
    state = MultiSteps(sgd(0.1), 4).init(P0)
    n_params = sum(x.size for x in jax.tree.leaves(P0))
    sizes = [x.size for x in jax.tree.leaves(state)]
    # sgd without momentum has no buffers: the only param-sized arrays are the accumulator
    assert sum(s for s in sizes if s > 1) == n_params
    assert tree_get(state, "acc_grads")["w"].dtype == jnp.float32  # optax's default
    own = accumulate(sgd(0.1), 4).init(P0)  # gradtx's: the gradients' precision
    assert tree_get(own, "acc_grads")["w"].dtype == jnp.float64
    # low-precision gradients are summed in at least float32, or the sum would lose the small ones
    low = accumulate(sgd(0.1), 4).init({"w": jnp.zeros(3, jnp.bfloat16)})
    assert tree_get(low, "acc_grads")["w"].dtype == jnp.float32
    forced = MultiSteps(sgd(0.1), 4, accumulator_dtype=jnp.bfloat16).init(P0)
    assert tree_get(forced, "acc_grads")["w"].dtype == jnp.bfloat16


def test_accumulate_schedule_of_k_and_sum_mode():
    ks = (2, 3, 3, 4)  # k depends on the number of real steps done: 2, then 3, 3, then 4
    inner = adam(0.05)
    tx = accumulate(inner, lambda n: jnp.where(n == 0, 2, jnp.where(n < 3, 3, 4)))
    p, s, _ = accumulated_run(tx, N_MICRO, P0)
    ref, ref_state = mean_grad_run(inner, ks, P0)
    assert_tree_close(p, ref[-1], ULP)
    assert_tree_close(tree_get(s, "inner_opt_state"), ref_state, ULP)
    # sum mode: with plain sgd, two micro-steps make p <- p - lr * (g_1 + g_2)
    tx = accumulate(sgd(0.05), 2, use_grad_mean=False)
    step, s = jax.jit(tx.update), tx.init(P0)
    u1, s = step(grad_at(P0, 0), s, P0)
    u2, s = step(grad_at(P0, 1), s, P0)
    want = -0.05 * (np.asarray(grad_at(P0, 0)["w"]) + np.asarray(grad_at(P0, 1)["w"]))
    np.testing.assert_allclose(np.asarray(u2["w"]), want, rtol=1e-14)
    assert np.all(np.asarray(u1["w"]) == 0)


def test_multisteps_skip_not_finite_drops_the_micro_step():
    ms = MultiSteps(
        sgd(0.1, momentum=0.5), 2, should_skip_update_fn=skip_not_finite, accumulator_dtype=None
    )
    s, step = ms.init(P0), jax.jit(ms.update)
    g1 = grad_at(P0, 0)
    u, s1 = step(g1, s, P0)
    bad = {"w": g1["w"].at[0, 0].set(jnp.nan), "b": g1["b"]}
    u_bad, s2 = step(bad, s1, P0)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u_bad))
    assert_tree_equal(s2.inner[0][:3], s1.inner[0][:3])  # mini_step, inner state, accumulator
    assert int(tree_get(s2, "num_not_finite")) == 1
    g2 = grad_at(P0, 1)
    u, s3 = step(g2, s2, P0)
    ref_u, _ = sgd(0.1, momentum=0.5).update(
        jax.tree.map(lambda a, b: (a + b) / 2, g1, g2), sgd(0.1, momentum=0.5).init(P0), P0
    )
    assert_tree_equal(u, ref_u)
    assert bool(ms.has_updated(s3)) and not bool(ms.has_updated(s2))


def test_skip_large_updates_predicate():
    g = {"a": jnp.array([3.0, 4.0])}  # squared norm 25
    assert not bool(skip_large_updates(g, 0, None, max_squared_norm=25.5)[0])
    skip, info = skip_large_updates(g, 0, None, max_squared_norm=25.0)
    assert bool(skip) and float(info["norm_squared"]) == 25.0
    assert bool(skip_large_updates({"a": jnp.array([jnp.nan])}, 0, None, 1.0)[0])


# --- non-finite safety ---------------------------------------------------------------------------


def run_if_finite(inner, max_errors, plan):
    """Steps ``apply_if_finite(inner)`` through ``plan`` = [(gradient, accepted, streak, total)],
    checking it against ``inner`` run on the accepted gradients only."""
    tx = apply_if_finite(inner, max_consecutive_errors=max_errors)
    step, ref_step = jax.jit(tx.update), jax.jit(inner.update)
    s, ref_s = tx.init(P0), inner.init(P0)
    for grad, accepted, streak, total in plan:
        before = s
        u, s = step(grad, s, P0)
        if accepted:
            ref_u, ref_s = ref_step(grad, ref_s, P0)
            assert_tree_equal(u, ref_u)
        else:
            assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
            assert_tree_equal(apply_updates(P0, u), P0)
            assert_tree_equal(s.inner[0].inner_state, before.inner[0].inner_state)
        assert_tree_equal(s.inner[0].inner_state, ref_s)
        assert int(tree_get(s, "notfinite_count")) == streak
        assert int(tree_get(s, "total_notfinite")) == total
        assert bool(tree_get(s, "last_finite")) == (streak == 0)
    return s


G = grad_at(P0, 0)
NAN = jax.tree.map(lambda x: x.at[0].set(jnp.nan), G)
INF = jax.tree.map(lambda x: x.at[0].set(-jnp.inf), G)


def test_apply_if_finite_skips_and_keeps_state_bit_identical():
    # momentum state: a skipped step must leave it (and the inner counter) untouched
    plan = [
        (G, True, 0, 0),
        (NAN, False, 1, 1),
        (INF, False, 2, 2),
        (G, True, 0, 2),
        (NAN, False, 1, 3),
        (G, True, 0, 3),
    ]
    s = run_if_finite(sgd(0.1, momentum=0.9), 2, plan)
    assert int(s.inner[0].inner_state.count) == 3 and int(s.count) == 6


def test_apply_if_finite_gives_up_after_max_errors_then_resets():
    # after 2 skipped non-finite steps the 3rd and 4th go through (as in optax); a finite step
    # resets the streak, after which a single Inf is skipped again.  Plain sgd: an accepted NaN
    # does not poison later steps, so the streak reset is visible.
    plan = [
        (G, True, 0, 0),
        (NAN, False, 1, 1),
        (NAN, False, 2, 2),
        (NAN, True, 3, 3),
        (INF, True, 4, 4),
        (G, True, 0, 4),
        (INF, False, 1, 5),
        (G, True, 0, 5),
    ]
    s = run_if_finite(sgd(0.1), 2, plan)
    assert int(s.inner[0].inner_state.count) == 5 and int(s.count) == 8


def test_apply_if_finite_catches_non_finite_updates_from_finite_gradients():
    tx = apply_if_finite(adam(0.1, eps=0.0), max_consecutive_errors=3)
    params = {"x": jnp.ones(3)}
    s0 = tx.init(params)
    u, s1 = tx.update({"x": jnp.zeros(3)}, s0, params)  # 0 / (sqrt(0) + 0) = NaN in adam
    assert np.all(np.asarray(u["x"]) == 0)
    assert_tree_equal(s1.inner[0].inner_state, s0.inner[0].inner_state)
    assert not bool(tree_get(s1, "last_finite"))


def test_zero_nans():
    tx = zero_nans()
    g = {"a": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.array([2.0, 3.0])}
    u, s = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(np.asarray(u["a"]), [1.0, 0.0, np.inf])
    np.testing.assert_array_equal(np.asarray(u["b"]), [2.0, 3.0])
    assert bool(s.inner[0].found_nan["a"]) and not bool(s.inner[0].found_nan["b"])
    opt_u, _ = optax.zero_nans().update(g, optax.zero_nans().init(g))
    assert_tree_equal(u, opt_u)


# --- lookahead -----------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_matches_optax_and_numpy(reset_state):
    sync, alpha, steps = 3, 0.5, 8
    fast = adam(0.1) if reset_state else sgd(0.2)
    tx = lookahead(fast, sync, alpha, reset_state=reset_state)
    ref = optax.lookahead(
        optax.adam(0.1) if reset_state else optax.sgd(0.2), sync, alpha, reset_state=reset_state
    )
    p, s = P0, tx.init(P0)
    lp = optax.LookaheadParams.init_synced(P0)
    rs = ref.init(lp)
    np_fast = np_slow = np.asarray(P0["b"])
    step, ref_step = jax.jit(tx.update), jax.jit(ref.update)
    for t in range(steps):
        u, s = step(grad_at(p, t), s, p)
        p = apply_updates(p, u)
        ru, rs = ref_step(grad_at(lp.fast, t), rs, lp)
        lp = optax.apply_updates(lp, ru)
        assert_tree_close(p, lp.fast)
        assert_tree_close(slow_params(s), lp.slow)
        if not reset_state:  # plain NumPy: sgd fast steps, then slow <- slow + a (fast - slow)
            np_fast = np_fast - 0.2 * (np.asarray(C["b"][t]) * np_fast + np.asarray(D["b"][t]))
            if (t + 1) % sync == 0:
                np_slow = np_slow + alpha * (np_fast - np_slow)
                np_fast = np_slow
            np.testing.assert_allclose(np.asarray(p["b"]), np_fast, rtol=1e-12)
            np.testing.assert_allclose(np.asarray(slow_params(s)["b"]), np_slow, rtol=1e-12)
    if reset_state:  # synced after step 6: the fast state restarted, then took 2 steps
        assert int(s.inner[0].fast_state.count) == steps % sync


@pytest.mark.parametrize(
    ("pair_class", "reset_state"),
    [("gradtx", False), ("gradtx", True), ("optax", False)],
)
def test_lookahead_with_lookahead_params_matches_optax(pair_class, reset_state):
    """optax's form: params are a ``LookaheadParams(fast, slow)`` pair (gradtx's class or
    optax's own), gradients at ``params.fast``; every step's fast and slow weights as optax's."""
    sync, alpha, steps = 3, 0.6, 8
    pair = gradtx.LookaheadParams if pair_class == "gradtx" else optax.LookaheadParams
    tx = lookahead(adam(0.1), sync, alpha, reset_state=reset_state)
    ref = optax.lookahead(optax.adam(0.1), sync, alpha, reset_state=reset_state)
    p, q = pair.init_synced(P0), optax.LookaheadParams.init_synced(P0)
    s, rs = tx.init(p), ref.init(q)
    assert s.inner[0].slow is None  # the pair carries the slow weights: no copy in the state
    step, ref_step = jax.jit(tx.update), jax.jit(ref.update)
    for t in range(steps):
        u, s = step(grad_at(p.fast, t), s, p)
        assert type(u) is pair
        p = apply_updates(p, u)
        ru, rs = ref_step(grad_at(q.fast, t), rs, q)
        q = optax.apply_updates(q, ru)
        assert_tree_close(p.fast, q.fast, 1e-13)
        assert_tree_close(p.slow, q.slow, 1e-13)
        if (t + 1) % sync == 0:  # synced: the two halves are the same weights
            assert_tree_close(p.fast, p.slow, 1e-15)
        else:
            assert not np.allclose(np.asarray(p.fast["b"]), np.asarray(p.slow["b"]))


def test_lookahead_state_forms():
    """optax's state spelling builds the pair form; mixing the two forms is refused."""
    tx = lookahead(sgd(0.1), 2, 0.5)
    pair = gradtx.LookaheadParams.init_synced(P0)
    fast_state = tx.init(pair).inner[0].fast_state
    made = gradtx.LookaheadState(fast_state=fast_state, steps_since_sync=jnp.asarray(0))
    assert made == gradtx.LookaheadState(fast_state) and made.slow is None
    with pytest.raises(AttributeError, match="one step counter"):
        made.steps_since_sync  # noqa: B018
    with pytest.raises(ValueError, match="LookaheadParams params but the state"):
        tx.update(P0, tx.init(P0), pair)
    with pytest.raises(ValueError, match="plain params but the state"):
        tx.update(P0, tx.init(pair), P0)


# --- parameter EMA -------------------------------------------------------------------------------


@pytest.mark.parametrize("debias", [True, False])
def test_ema_params_numpy_reference(debias):
    decay, lr = 0.8, 0.1
    tx = chain(sgd(lr), ema_params(decay, debias=debias))
    p, s = P0, tx.init(P0)
    x = np.asarray(P0["w"])
    m = np.zeros_like(x) if debias else x.copy()
    step = jax.jit(tx.update)
    for t in range(1, 6):
        u, s = step(grad_at(p, t), s, p)
        p = apply_updates(p, u)
        x = x - lr * (np.asarray(C["w"][t]) * x + np.asarray(D["w"][t]))
        m = decay * m + (1 - decay) * x
        want = m / (1 - decay**t) if debias else m
        np.testing.assert_allclose(np.asarray(averaged_params(s)["w"]), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(p["w"]), x, rtol=1e-12)  # updates pass through


# --- periodic and conditional updates ------------------------------------------------------------


def test_apply_every_matches_optax():
    tx, ref = apply_every(3), optax.apply_every(3)
    s, rs = tx.init(P0), ref.init(P0)
    step, ref_step = jax.jit(tx.update), jax.jit(ref.update)
    for t in range(8):
        g = grad_at(P0, t)
        u, s = step(g, s, P0)
        ru, rs = ref_step(g, rs, P0)
        assert_tree_equal(u, ru)
        want = sum(np.asarray(D["b"][j] + C["b"][j] * P0["b"]) for j in range(t - 2, t + 1))
        if t % 3 == 2:
            np.testing.assert_allclose(np.asarray(u["b"]), want, rtol=1e-13)


def test_conditionally_transform_matches_optax_and_freezes_state():
    pred = lambda n: n % 3 != 1
    tx = conditionally_transform(adam(0.1), pred)
    ref = optax.conditionally_transform(optax.adam(0.1), pred)
    s, rs = tx.init(P0), ref.init(P0)
    p, step, ref_step = P0, jax.jit(tx.update), jax.jit(ref.update)
    for t in range(7):
        g = grad_at(p, t)
        before = s.inner[0].inner_state
        u, s = step(g, s, p)
        ru, rs = ref_step(g, rs, p)
        assert_tree_close(u, ru, 1e-12)
        if not pred(t):
            assert_tree_equal(u, g)
            assert_tree_equal(s.inner[0].inner_state, before)
        p = apply_updates(p, u)
    assert int(s.inner[0].inner_state.count) == 5  # steps 1 and 4 were passed through


def test_argument_validation():
    with pytest.raises(ValueError, match="sync_period"):
        lookahead(sgd(0.1), 0, 0.5)
    with pytest.raises(ValueError, match="slow_step_size"):
        lookahead(sgd(0.1), 2, 1.5)
    with pytest.raises(ValueError, match="every_k_schedule"):
        MultiSteps(sgd(0.1), 0)
    with pytest.raises(ValueError, match="max_consecutive_errors"):
        apply_if_finite(sgd(0.1), -1)
    with pytest.raises(ValueError, match="needs params"):
        tx = lookahead(sgd(0.1), 2, 0.5)
        tx.update(P0, tx.init(P0))
