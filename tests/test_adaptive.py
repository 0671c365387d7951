"""Self-tuning optimizers (gradtx.adaptive) against NumPy transcriptions of the papers'
algorithms and against optax.contrib, on a small quadratic with a two-leaf parameter tree.

Every trajectory is one jitted ``lax.scan`` (one compilation per optimizer).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx
from gradtx.adaptive import (
    adam_hd,
    dadapt_adamw,
    prodigy,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
    sgd_hd,
    swats,
)
from gradtx.base import tree_get, tree_paths, tree_set

TOL = 1e-10

# --- the problem: f(x) = 0.5 x^T A x - b^T x, x split into two leaves {"v": (2,), "w": (3,)} ----

_rng = np.random.default_rng(0)
_Q, _ = np.linalg.qr(_rng.normal(size=(5, 5)))
A = _Q @ np.diag([1.0, 1.5, 2.0, 3.0, 4.0]) @ _Q.T
B = _rng.normal(size=5)
X0 = _rng.normal(size=5)


def np_grad(x: np.ndarray) -> np.ndarray:
    return A @ x - B


def flat(tree) -> jax.Array:
    return jnp.concatenate([tree["v"], tree["w"]])


def unflat(x, dtype=jnp.float64) -> dict:
    x = jnp.asarray(x, dtype)
    return {"v": x[:2], "w": x[2:]}


def loss(params) -> jax.Array:
    x = flat(params)
    return 0.5 * x @ jnp.asarray(A, x.dtype) @ x - jnp.asarray(B, x.dtype) @ x


def runner(txs, steps: int):
    """One jitted ``(params, states) -> [(params_t, state_t) for each tx]`` over ``steps``
    updates: all optimizers of a test run in the same scan, so they compile once together."""

    def step(carry, _):
        new = []
        for tx, (params, state) in zip(txs, carry, strict=True):
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            new.append((gradtx.apply_updates(params, updates), state))
        return new, new

    @jax.jit
    def run(params, states):
        return jax.lax.scan(step, [(params, s) for s in states], None, length=steps)[1]

    return run


def trajectories(txs, steps: int, x0=X0, dtype=jnp.float64):
    """``[(x_t as a (steps, 5) array, stacked states) for each tx]``."""
    params = unflat(x0, dtype)
    out = runner(txs, steps)(params, [tx.init(params) for tx in txs])
    return [(np.asarray(jax.vmap(flat)(xs)), states) for xs, states in out]


def trajectory(tx, steps: int, x0=X0):
    return trajectories([tx], steps, x0)[0]


# --- hypergradient descent (Baydin et al. 2018, Algorithms 1-4) ---------------------------------


def np_hd(steps, alpha0, beta, direction):
    """The paper's loop: h_t = g_t . grad_alpha u_{t-1} with grad_alpha u_{t-1} = -d_{t-1};
    alpha_t = alpha_{t-1} - beta h_t; u_t = -alpha_t d_t.  ``direction(g, t)`` returns d_t."""
    x, alpha, d_prev = X0.copy(), alpha0, np.zeros(5)
    xs, alphas = [], []
    for t in range(1, steps + 1):
        g = np_grad(x)
        h = g @ (-d_prev)
        alpha = alpha - beta * h
        d = direction(g, t)
        x = x - alpha * d
        d_prev = d
        xs.append(x)
        alphas.append(alpha)
    return np.array(xs), np.array(alphas)


def np_momentum(mu, nesterov):
    v = np.zeros(5)

    def direction(g, t):
        nonlocal v
        v = mu * v + g
        return g + mu * v if nesterov else v

    return direction


def np_adam_direction(b1, b2, eps):
    m, v = np.zeros(5), np.zeros(5)

    def direction(g, t):
        nonlocal m, v
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)

    return direction


@pytest.mark.parametrize(
    "momentum, nesterov", [(None, False), (0.9, True), (0.8, False)], ids=["sgd", "sgdn", "heavy"]
)
def test_sgd_hd_matches_paper(momentum, nesterov):
    steps, alpha0, beta = 60, 0.01, 1e-3
    xs, states = trajectory(sgd_hd(alpha0, beta, momentum, nesterov), steps)
    direction = (lambda g, t: g) if momentum is None else np_momentum(momentum, nesterov)
    ref_x, ref_alpha = np_hd(steps, alpha0, beta, direction)
    np.testing.assert_allclose(xs, ref_x, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(tree_get(states, "learning_rate"), ref_alpha, rtol=TOL, atol=TOL)
    # the lr actually moved, so the comparison covers the hypergradient and not only SGD
    assert np.all(np.isfinite(ref_x)) and ref_alpha[-1] > 3 * alpha0


def test_adam_hd_matches_paper():
    steps, alpha0, beta = 80, 0.01, 1e-3
    xs, states = trajectory(adam_hd(alpha0, beta), steps)
    ref_x, ref_alpha = np_hd(steps, alpha0, beta, np_adam_direction(0.9, 0.999, 1e-8))
    np.testing.assert_allclose(xs, ref_x, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(tree_get(states, "learning_rate"), ref_alpha, rtol=TOL, atol=TOL)
    assert ref_alpha[-1] > 2 * alpha0


def test_hd_learning_rate_grows_from_too_small_and_shrinks_from_too_large():
    # curvatures in [1, 4]: SGD is stable for lr < 0.5; the best constant lr is 0.4
    steps, beta = 100, 0.005
    tx = sgd_hd(0.5, beta)
    params = unflat(X0)
    starts = [tree_set(tx.init(params), learning_rate=lr0) for lr0 in (0.01, 0.49)]
    (_, small), (_, large) = runner([tx, tx], steps)(params, starts)
    small, large = (np.asarray(tree_get(s, "learning_rate")) for s in (small, large))
    assert small[-1] > 10 * 0.01 and small[-1] < 0.5
    assert np.all(np.diff(small[:20]) >= 0)  # rises steadily while steps agree in sign
    assert large[-1] < 0.49 and large.min() < 0.45
    # both end up in the stable range, away from where they started
    assert 0.1 < small[-1] < 0.5 and 0.1 < large[-1] < 0.5


# --- SWATS (Keskar & Socher 2017, Algorithm 1) ----------------------------------------------------


def np_swats(steps, alpha, b1, b2, eps, tol):
    x = X0.copy()
    m, a, lam, v = np.zeros(5), np.zeros(5), 0.0, np.zeros(5)
    phase, big_lambda, switch_at = "adam", 0.0, 0
    xs, lams = [], []
    for k in range(1, steps + 1):
        g = np_grad(x)
        if phase == "sgd":
            v = b1 * v + g
            x = x - (1 - b1) * big_lambda * v
            xs.append(x)
            lams.append(lam)
            continue
        m = b1 * m + (1 - b1) * g
        a = b2 * a + (1 - b2) * g * g
        p = -alpha * np.sqrt(1 - b2**k) / (1 - b1**k) * m / (np.sqrt(a) + eps)
        x = x + p
        if p @ g != 0:
            gamma = (p @ p) / (-(p @ g))
            lam = b2 * lam + (1 - b2) * gamma
            if k > 1 and abs(lam / (1 - b2**k) - gamma) < tol:
                phase, v, big_lambda, switch_at = "sgd", np.zeros(5), lam / (1 - b2**k), k
        xs.append(x)
        lams.append(lam)
    return np.array(xs), np.array(lams), big_lambda, switch_at


def test_swats_matches_algorithm_1_and_switches():
    steps, alpha, tol = 120, 0.02, 1e-4
    xs, states = trajectory(swats(alpha, switch_tol=tol), steps)
    ref_x, ref_lam, ref_big, ref_k = np_swats(steps, alpha, 0.9, 0.999, 1e-9, tol)
    assert 2 < ref_k < steps - 20  # the switch happens, with a long SGD phase after it
    switch = np.asarray(tree_get(states, "switch_step"))
    assert switch[-1] == ref_k
    assert np.all(switch[: ref_k - 1] == 0) and np.all(switch[ref_k - 1 :] == ref_k)
    np.testing.assert_allclose(tree_get(states, "sgd_learning_rate")[-1], ref_big, rtol=TOL)
    np.testing.assert_allclose(tree_get(states, "gamma_ema"), ref_lam, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(xs, ref_x, rtol=TOL, atol=TOL)


def test_swats_paper_criterion_on_constant_gradient():
    """With the paper's tolerance (eps = 1e-9) the estimate settles only when the Adam step is
    stationary: a linear loss has a constant gradient c, so gamma_t -> lr * n / ||c||_1."""
    c = jnp.array([1.0, -2.0, 0.5])
    tx = swats(0.1)
    params = jnp.zeros(3)

    def step(carry, _):
        p, s = carry
        u, s = tx.update(c, s, p)
        return (p + u, s), (u, s)

    us, states = jax.jit(lambda s: jax.lax.scan(step, (params, s), None, length=6)[1])(
        tx.init(params)
    )
    _, _, big, k = _np_swats_constant(np.asarray(c), 6, 0.1)
    assert int(tree_get(states, "switch_step")[-1]) == k == 2
    np.testing.assert_allclose(tree_get(states, "sgd_learning_rate")[-1], big, rtol=TOL)
    np.testing.assert_allclose(big, 0.1 * 3 / 3.5, rtol=1e-6)
    # after the switch: SGD with momentum 0.9, v_3 = c, u = -(1 - 0.9) * Lambda * c
    np.testing.assert_allclose(us[2], -0.1 * big * np.asarray(c), rtol=TOL)


def _np_swats_constant(c, steps, alpha, b1=0.9, b2=0.999, eps=1e-9):
    m, a, lam = np.zeros_like(c), np.zeros_like(c), 0.0
    for k in range(1, steps + 1):
        m = b1 * m + (1 - b1) * c
        a = b2 * a + (1 - b2) * c * c
        p = -alpha * np.sqrt(1 - b2**k) / (1 - b1**k) * m / (np.sqrt(a) + eps)
        gamma = (p @ p) / (-(p @ c))
        lam = b2 * lam + (1 - b2) * gamma
        if k > 1 and abs(lam / (1 - b2**k) - gamma) < eps:
            return None, None, lam / (1 - b2**k), k
    return None, None, 0.0, 0


# --- learning-rate-free methods against optax.contrib -------------------------------------------


def _against_optax(ours, theirs, steps, scalars=()):
    (xs, states), (ref_xs, ref_states) = trajectories([ours, theirs], steps)
    np.testing.assert_allclose(xs, ref_xs, rtol=TOL, atol=TOL)
    for name in scalars:
        np.testing.assert_allclose(
            tree_get(states, name), getattr(ref_states, name), rtol=TOL, atol=TOL
        )
    return xs, states, ref_states


def test_prodigy_matches_optax():
    kw = dict(learning_rate=0.7, weight_decay=0.01, estim_lr0=1e-3)
    _, states, _ = _against_optax(
        prodigy(**kw), optax.contrib.prodigy(**kw), 60, ("estim_lr", "numerator_weighted")
    )
    assert tree_get(states, "estim_lr")[-1] > 100 * 1e-3  # d was actually adapted


def test_prodigy_safeguard_warmup_schedule_and_beta3_match_optax():
    sched = optax.linear_schedule(0.1, 1.0, 20)
    kw = dict(learning_rate=sched, beta3=0.99, safeguard_warmup=True, estim_lr_coef=0.5)
    _against_optax(prodigy(**kw), optax.contrib.prodigy(**kw), 50, ("estim_lr",))


def test_dadapt_adamw_matches_optax():
    kw = dict(learning_rate=0.5, weight_decay=0.02, estim_lr0=1e-2)
    _, states, _ = _against_optax(
        dadapt_adamw(**kw), optax.contrib.dadapt_adamw(**kw), 60, ("estim_lr",)
    )
    assert tree_get(states, "estim_lr")[-1] > 10 * 1e-2


def np_schedule_free_sgd(steps, lr, beta, wd):
    """Schedule-Free SGD as in Defazio et al. (2024) with weights c_{t+1} = lr_t^2 / sum lr_i^2
    (constant lr: x is the uniform average of z_2..z_{t+1})."""
    x = z = X0.copy()
    total = 0.0
    ys, xs = [], []
    for _ in range(steps):
        y = (1 - beta) * z + beta * x
        z = z - lr * (np_grad(y) + wd * y)
        total += lr**2
        c = lr**2 / total
        x = (1 - c) * x + c * z
        ys.append((1 - beta) * z + beta * x)
        xs.append(x)
    return np.array(ys), np.array(xs)


def test_schedule_free_sgd_matches_paper_and_optax():
    steps, lr, beta, wd = 60, 0.2, 0.9, 0.05
    ys, states = trajectory(schedule_free_sgd(lr, b1=beta, weight_decay=wd), steps)
    ref_y, ref_x = np_schedule_free_sgd(steps, lr, beta, wd)
    np.testing.assert_allclose(ys, ref_y, rtol=TOL, atol=TOL)
    params = jax.vmap(unflat)(jnp.asarray(ys))
    x = jax.vmap(schedule_free_eval_params)(states, params)
    np.testing.assert_allclose(jax.vmap(flat)(x), ref_x, rtol=TOL, atol=TOL)
    assert np.abs(ref_x - ref_y).max() > 1e-3  # the eval point is not y itself
    oy, _ = trajectory(optax.contrib.schedule_free_sgd(lr, b1=beta, weight_decay=wd), steps)
    np.testing.assert_allclose(ys, oy, rtol=TOL, atol=TOL)


def test_schedule_free_adamw_and_eval_params_match_optax():
    kw = dict(learning_rate=0.05, b1=0.8, weight_decay=0.01, weight_lr_power=1.5)
    ours, theirs = schedule_free_adamw(**kw), optax.contrib.schedule_free_adamw(**kw)
    xs, states, ref_states = _against_optax(ours, theirs, 60)
    y = unflat(xs[-1])
    x = schedule_free_eval_params(jax.tree.map(lambda a: a[-1], states), y)
    ref = optax.contrib.schedule_free_eval_params(jax.tree.map(lambda a: a[-1], ref_states), y)
    np.testing.assert_allclose(flat(x), flat(ref), rtol=TOL, atol=TOL)
    assert np.linalg.norm(flat(x) - xs[-1]) > 1e-3  # x and y differ, so the check has teeth


def test_schedule_free_warmup_matches_optax_up_to_its_float32_schedule():
    # optax evaluates schedules in float32 even under x64 (see FIELD_NOTES), hence 1e-5
    kw = dict(learning_rate=0.3, warmup_steps=10, b1=0.9)
    (xs, _), (ref, _) = trajectories(
        [schedule_free_sgd(**kw), optax.contrib.schedule_free_sgd(**kw)], 40
    )
    np.testing.assert_allclose(xs, ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(xs[:3], X0)  # warmup moved the params early on


def test_schedule_free_wraps_a_gradtx_chain_with_one_counter():
    base = gradtx.chain(gradtx.scale_by_adam(b1=0.0), gradtx.scale_by_learning_rate(0.1))
    ours = schedule_free(base, 0.1, b1=0.9)
    theirs = optax.contrib.schedule_free(optax.adam(0.1, b1=0.0), 0.1, b1=0.9)
    _against_optax(ours, theirs, 50)
    assert len(tree_paths(ours.init(unflat(X0)), "count")) == 1


# --- common contract ------------------------------------------------------------------------------

ALL = {
    "sgd_hd": lambda: sgd_hd(0.1, 1e-3, momentum=0.9, nesterov=True),
    "adam_hd": lambda: adam_hd(0.01, 1e-4),
    "swats": lambda: swats(0.01, switch_tol=1e-2),
    "prodigy": lambda: prodigy(),
    "dadapt_adamw": lambda: dadapt_adamw(),
    "schedule_free_sgd": lambda: schedule_free_sgd(0.1, warmup_steps=2),
    "schedule_free_adamw": lambda: schedule_free_adamw(),
}


def test_float32_stays_float32_under_jit_with_one_counter():
    txs = [make() for make in ALL.values()]
    runs = trajectories(txs, 3, dtype=jnp.float32)
    for name, tx, (xs, states) in zip(ALL, txs, runs, strict=True):
        last = jax.tree.map(lambda a: a[-1], states)
        assert xs.dtype == np.float32 and np.all(np.isfinite(xs)), name
        floats = [x for x in jax.tree.leaves(last) if jnp.issubdtype(x.dtype, jnp.floating)]
        assert all(x.dtype == jnp.float32 for x in floats), (name, [x.dtype for x in floats])
        assert len(tree_paths(last, "count")) == 1, name
        assert int(tree_get(last, "count")) == 3, name
        # apply_updates casts, so check the updates' own dtype (traced only, not compiled)
        p32 = unflat(X0, jnp.float32)
        u, _ = jax.eval_shape(tx.update, p32, last, p32)
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(u)), name


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: sgd_hd(-0.1, 1e-3), "learning_rate"),
        (lambda: sgd_hd(0.1, -1.0), "hyper_lr"),
        (lambda: sgd_hd(0.1, 1e-3, momentum=1.5), "decay"),
        (lambda: adam_hd(0.1, 1e-3, b2=1.0), "b2"),
        (lambda: swats(b1=1.0), "b1"),
        (lambda: swats(switch_tol=-1.0), "switch_tol"),
        (lambda: prodigy(betas=(0.9, 1.0)), "betas"),
        (lambda: prodigy(estim_lr0=0.0), "estim_lr0"),
        (lambda: dadapt_adamw(weight_decay=-1.0), "weight_decay"),
        (lambda: schedule_free_sgd(b1=0.0), "b1"),
        (lambda: schedule_free_adamw(warmup_steps=0), "warmup_steps"),
        (lambda: schedule_free_adamw(weight_lr_power=-1.0), "weight_lr_power"),
    ],
)
def test_hyperparameters_are_validated_at_construction(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_nesterov_without_momentum_is_rejected():
    with pytest.raises(ValueError, match="nesterov"):
        sgd_hd(0.1, 1e-3, nesterov=True)


def test_params_required():
    tx = prodigy()
    params = unflat(X0)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, tx.init(params))
