"""Self-tuning optimizers (gradtx.optimizers.self_tuning, .schedule_free) against NumPy
transcriptions of the papers' algorithms and against optax.contrib, on a small quadratic with a
two-leaf parameter tree.

Each group of trajectories is one jitted ``lax.scan``, computed once per module by a fixture,
so the whole file compiles five programs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx
from gradtx import (
    adam_hd,
    dadapt_adamw,
    prodigy,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
    sgd_hd,
    swats,
    tree_get,
    tree_paths,
    tree_set,
)

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


def runner(txs, steps: int, grads=None):
    """One jitted ``(params, states) -> [(params_t, state_t) for each tx]`` over ``steps``
    updates.  All optimizers of a group run in the same scan, so they compile once together;
    ``grads[i]`` (default ``jax.grad(loss)``) gives the i-th optimizer's gradient."""
    grads = grads or [jax.grad(loss)] * len(txs)

    def step(carry, _):
        new = []
        for tx, grad, (params, state) in zip(txs, grads, carry, strict=True):
            updates, state = tx.update(grad(params), state, params)
            new.append((gradtx.apply_updates(params, updates), state))
        return new, new

    @jax.jit
    def run(params, states):
        return jax.lax.scan(step, [(params, s) for s in states], None, length=steps)[1]

    return run


def trajectories(txs, steps: int, dtype=jnp.float64, states=None, grads=None):
    """``[(x_t as a (steps, 5) array, stacked states) for each tx]`` from ``X0``."""
    params = unflat(X0, dtype)
    states = states or [tx.init(params) for tx in txs]
    out = runner(txs, steps, grads)(params, states)
    return [(np.asarray(jax.vmap(flat)(xs)), st) for xs, st in out]


def last(states):
    # NumPy slicing: no eager XLA op (and compilation) per state leaf
    return jax.tree.map(lambda a: np.asarray(a)[-1], states)


# --- hypergradient descent (Baydin et al. 2018: SGD-HD, SGDN-HD, Adam-HD) ---------------------

HD_STEPS, HD_ALPHA0, HD_BETA = 100, 0.01, 1e-3
HD_VARIANTS = {
    "sgd": (None, False),
    "sgdn": (0.9, True),
    "heavy": (0.8, False),
}


@pytest.fixture(scope="module")
def hd_runs():
    """The SGD-HD variants and Adam-HD from HD_ALPHA0, plus SGD-HD started from a too-small and
    a too-large learning rate (set in the state with tree_set: same program)."""
    txs = [sgd_hd(HD_ALPHA0, HD_BETA, m, n) for m, n in HD_VARIANTS.values()]
    txs.append(adam_hd(HD_ALPHA0, HD_BETA))
    probe = sgd_hd(0.5, 0.005)
    params = unflat(X0)
    states = [tx.init(params) for tx in txs]
    states += [tree_set(probe.init(params), learning_rate=lr0) for lr0 in (0.01, 0.49)]
    runs = trajectories([*txs, probe, probe], HD_STEPS, states=states)
    names = [*HD_VARIANTS, "adam", "too_small", "too_large"]
    return dict(zip(names, runs, strict=True))


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


@pytest.mark.parametrize("name", [*HD_VARIANTS, "adam"])
def test_hd_matches_paper(hd_runs, name):
    if name == "adam":
        direction = np_adam_direction(0.9, 0.999, 1e-8)
    else:
        momentum, nesterov = HD_VARIANTS[name]
        direction = (lambda g, t: g) if momentum is None else np_momentum(momentum, nesterov)
    ref_x, ref_alpha = np_hd(HD_STEPS, HD_ALPHA0, HD_BETA, direction)
    xs, states = hd_runs[name]
    np.testing.assert_allclose(xs, ref_x, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(tree_get(states, "learning_rate"), ref_alpha, rtol=TOL, atol=TOL)
    # the lr actually moved, so the comparison covers the hypergradient and not only the base
    assert np.all(np.isfinite(ref_x)) and ref_alpha[-1] > 3 * HD_ALPHA0


def test_hd_learning_rate_grows_from_too_small_and_shrinks_from_too_large(hd_runs):
    # curvatures in [1, 4]: SGD is stable for lr < 0.5 and slow for small lr
    small = np.asarray(tree_get(hd_runs["too_small"][1], "learning_rate"))
    large = np.asarray(tree_get(hd_runs["too_large"][1], "learning_rate"))
    assert np.all(np.diff(small[:6]) >= 0) and small[-1] > 10 * 0.01  # rises while steps agree
    assert np.all(np.diff(large[:6]) <= 0) and large[-1] < 0.8 * 0.49  # oscillation pushes it down
    # adapting pays: both reach the optimum, where plain SGD from either lr has not
    for name, lr0 in (("too_small", 0.01), ("too_large", 0.49)):
        x_sgd = X0.copy()
        for _ in range(HD_STEPS):
            x_sgd = x_sgd - lr0 * np_grad(x_sgd)
        assert np.linalg.norm(np_grad(hd_runs[name][0][-1])) < 1e-6
        assert np.linalg.norm(np_grad(x_sgd)) > 1e-2


# --- SWATS (Keskar & Socher 2017, Algorithm 1) ----------------------------------------------------

SW_STEPS, SW_ALPHA, SW_TOL = 120, 0.02, 1e-4
C_LINEAR = np.array([1.0, -2.0, 0.5, 1.5, -1.0])  # gradient of the linear loss <c, x>


@pytest.fixture(scope="module")
def swats_runs():
    """SWATS with a loose switch_tol on the quadratic, and with the paper's default tolerance on
    a linear loss (constant gradient)."""
    txs = [swats(SW_ALPHA, switch_tol=SW_TOL), swats(0.1)]
    grads = [jax.grad(loss), lambda p: unflat(C_LINEAR)]
    return trajectories(txs, SW_STEPS, grads=grads)


def np_swats(steps, alpha, grad=np_grad, b1=0.9, b2=0.999, eps=1e-9, tol=1e-9):
    x = X0.copy()
    m, a, lam, v = np.zeros(5), np.zeros(5), 0.0, np.zeros(5)
    phase, big_lambda, switch_at = "adam", 0.0, 0
    xs, lams = [], []
    for k in range(1, steps + 1):
        g = grad(x)
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


def test_swats_matches_algorithm_1_and_switches(swats_runs):
    xs, states = swats_runs[0]
    ref_x, ref_lam, ref_big, ref_k = np_swats(SW_STEPS, SW_ALPHA, tol=SW_TOL)
    assert 2 < ref_k < SW_STEPS - 20  # the switch happens, with a long SGD phase after it
    switch = np.asarray(tree_get(states, "switch_step"))
    assert switch[-1] == ref_k
    assert np.all(switch[: ref_k - 1] == 0) and np.all(switch[ref_k - 1 :] == ref_k)
    np.testing.assert_allclose(tree_get(states, "sgd_learning_rate")[-1], ref_big, rtol=TOL)
    np.testing.assert_allclose(tree_get(states, "gamma_ema"), ref_lam, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(xs, ref_x, rtol=TOL, atol=TOL)


def test_swats_paper_criterion_on_constant_gradient(swats_runs):
    """With the paper's tolerance (eps = 1e-9) the estimate settles only when the Adam step is
    stationary: a constant gradient c gives p = -lr sign(c), so gamma = lr n / ||c||_1."""
    xs, states = swats_runs[1]
    ref_x, _, ref_big, ref_k = np_swats(SW_STEPS, 0.1, grad=lambda x: C_LINEAR)
    assert int(tree_get(states, "switch_step")[-1]) == ref_k == 2
    np.testing.assert_allclose(tree_get(states, "sgd_learning_rate")[-1], ref_big, rtol=TOL)
    np.testing.assert_allclose(ref_big, 0.1 * 5 / 6, rtol=1e-6)
    np.testing.assert_allclose(xs, ref_x, rtol=TOL, atol=TOL)
    # first SGD step: v = c, u = -(1 - 0.9) * Lambda * c
    np.testing.assert_allclose(xs[2] - xs[1], -0.1 * ref_big * C_LINEAR, rtol=1e-9)


# --- learning-rate-free methods against optax.contrib -------------------------------------------

LR_FREE_STEPS = 60
LR_FREE = {
    "prodigy": (prodigy, dict(learning_rate=0.7, weight_decay=0.01, estim_lr0=1e-3)),
    "prodigy_safeguard": (
        prodigy,
        dict(
            learning_rate=optax.linear_schedule(0.1, 1.0, 20),
            beta3=0.99,
            safeguard_warmup=True,
            estim_lr_coef=0.5,
        ),
    ),
    "dadapt_adamw": (dadapt_adamw, dict(learning_rate=0.5, weight_decay=0.02, estim_lr0=1e-2)),
}


@pytest.fixture(scope="module")
def lr_free_runs():
    txs = []
    for ours, kw in LR_FREE.values():
        txs += [ours(**kw), getattr(optax.contrib, ours.__name__)(**kw)]
    runs = trajectories(txs, LR_FREE_STEPS)
    return {name: runs[2 * i : 2 * i + 2] for i, name in enumerate(LR_FREE)}


def _assert_same(ours, theirs, scalars=()):
    (xs, states), (ref_xs, ref_states) = ours, theirs
    np.testing.assert_allclose(xs, ref_xs, rtol=TOL, atol=TOL)
    for name in scalars:
        np.testing.assert_allclose(
            tree_get(states, name), getattr(ref_states, name), rtol=TOL, atol=TOL
        )


@pytest.mark.parametrize("name", list(LR_FREE))
def test_lr_free_matches_optax(lr_free_runs, name):
    _assert_same(*lr_free_runs[name], scalars=("estim_lr", "numerator_weighted"))
    d = np.asarray(tree_get(lr_free_runs[name][0][1], "estim_lr"))
    assert d[-1] > 5 * d[0]  # the distance estimate was actually adapted


# --- Schedule-Free -------------------------------------------------------------------------------

SF_STEPS = 60
SF_SGD = dict(learning_rate=0.2, b1=0.9, weight_decay=0.05)
SF_ADAMW = dict(learning_rate=0.05, b1=0.8, weight_decay=0.01, weight_lr_power=1.5)
SF_WARMUP = dict(learning_rate=0.3, warmup_steps=10, b1=0.9)


@pytest.fixture(scope="module")
def sf_runs():
    pairs = {
        "sgd": (schedule_free_sgd(**SF_SGD), optax.contrib.schedule_free_sgd(**SF_SGD)),
        "adamw": (schedule_free_adamw(**SF_ADAMW), optax.contrib.schedule_free_adamw(**SF_ADAMW)),
        "warmup": (schedule_free_sgd(**SF_WARMUP), optax.contrib.schedule_free_sgd(**SF_WARMUP)),
        "chain": (
            schedule_free(
                gradtx.chain(gradtx.scale_by_adam(b1=0.0), gradtx.scale_by_learning_rate(0.1)),
                0.1,
            ),
            optax.contrib.schedule_free(optax.adam(0.1, b1=0.0), 0.1),
        ),
    }
    runs = trajectories([tx for pair in pairs.values() for tx in pair], SF_STEPS)
    return {name: runs[2 * i : 2 * i + 2] for i, name in enumerate(pairs)}


def np_schedule_free_sgd(steps, learning_rate, b1, weight_decay):
    """Schedule-Free SGD as in Defazio et al. (2024) with weights c_{t+1} = lr_t^2 / sum lr_i^2
    (constant lr: x is the uniform average of z_2..z_{t+1})."""
    x = z = X0.copy()
    total = 0.0
    ys, xs = [], []
    for _ in range(steps):
        y = (1 - b1) * z + b1 * x
        z = z - learning_rate * (np_grad(y) + weight_decay * y)
        total += learning_rate**2
        c = learning_rate**2 / total
        x = (1 - c) * x + c * z
        ys.append((1 - b1) * z + b1 * x)
        xs.append(x)
    return np.array(ys), np.array(xs)


def _eval_points(ys, states, fn=schedule_free_eval_params):
    return np.stack(
        [
            np.asarray(flat(fn(jax.tree.map(lambda a: np.asarray(a)[i], states), unflat(ys[i]))))
            for i in (0, -1)
        ]
    )


def test_schedule_free_sgd_matches_paper_and_optax(sf_runs):
    ref_y, ref_x = np_schedule_free_sgd(SF_STEPS, **SF_SGD)
    (ys, states), theirs = sf_runs["sgd"]
    np.testing.assert_allclose(ys, ref_y, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(_eval_points(ys, states), ref_x[[0, -1]], rtol=TOL, atol=TOL)
    assert np.abs(ref_x - ref_y).max() > 1e-3  # the eval point is not y itself
    _assert_same((ys, states), theirs)


def test_schedule_free_adamw_and_eval_params_match_optax(sf_runs):
    ours, theirs = sf_runs["adamw"]
    _assert_same(ours, theirs, scalars=("weight_sum", "max_lr"))
    x = _eval_points(*ours)
    ref = _eval_points(*theirs, fn=optax.contrib.schedule_free_eval_params)
    np.testing.assert_allclose(x, ref, rtol=TOL, atol=TOL)
    assert np.abs(x[-1] - ours[0][-1]).max() > 1e-3


def test_schedule_free_warmup_matches_optax_up_to_its_float32_schedule(sf_runs):
    # optax evaluates schedules in float32 even under x64 (see FIELD_NOTES), hence 1e-5
    (xs, _), (ref, _) = sf_runs["warmup"]
    np.testing.assert_allclose(xs, ref, rtol=1e-5, atol=1e-6)
    assert np.abs(xs[2] - X0).max() > 1e-3  # warmup moved the params early on


def test_schedule_free_wraps_a_gradtx_chain_with_one_counter(sf_runs):
    _assert_same(*sf_runs["chain"])
    assert len(tree_paths(last(sf_runs["chain"][0][1]), "count")) == 1


def test_eval_params_pair_z_with_params_leaf_by_leaf():
    # nnx.Optimizer wraps state leaves in other variable types than the params: only the leaves
    # have to line up, and the result keeps the params' structure
    tx = schedule_free_sgd(0.1, b1=0.9)
    params = unflat(X0)
    state = tree_set(tx.init(params), z=[2 * params["v"], 2 * params["w"]])
    x = schedule_free_eval_params(state, params)
    assert isinstance(x, dict)
    np.testing.assert_allclose(flat(x), (X0 - 0.1 * 2 * X0) / 0.9, rtol=TOL)
    with pytest.raises(ValueError, match="z differ"):
        schedule_free_eval_params(state, {"v": params["v"], "w": params["w"][:2]})


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
    p32 = unflat(X0, jnp.float32)
    for name, tx, (xs, states) in zip(ALL, txs, runs, strict=True):
        state = last(states)
        assert xs.dtype == np.float32 and np.all(np.isfinite(xs)), name
        floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
        assert all(x.dtype == jnp.float32 for x in floats), (name, [x.dtype for x in floats])
        assert len(tree_paths(state, "count")) == 1, name
        assert int(tree_get(state, "count")) == 3, name
        # apply_updates casts, so check the updates' own dtype (traced only, not compiled)
        u, _ = jax.eval_shape(tx.update, p32, state, p32)
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(u)), name


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: sgd_hd(-0.1, 1e-3), "learning_rate"),
        (lambda: sgd_hd(0.1, -1.0), "hyper_lr"),
        (lambda: sgd_hd(0.1, 1e-3, momentum=1.5), "sgd_hd: momentum"),
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
