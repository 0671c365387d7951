"""delayed_gradients: an optimizer fed stale gradients (bounded staleness, async-SGD simulation).

Every option against the NumPy reference (``tests/references/delayed.py``) over 30 float64 steps
(<= 1e-10); a random staleness against the reference fed the draws read back from the state;
the draws' range and distribution; the warm-up; jit/vmap/grad/scan; checkpoints; the classic
instability of delayed gradient descent and its cure by the staleness-aware step size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization
from helpers import SCHED, fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import build, run
from references.delayed import Delayed

import gradtx
from gradtx import tree_get

TOL = 1e-10
STEPS = 30


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _sgd_ref(lr, momentum=None):
    return build("sgd", {"learning_rate": lr, "momentum": momentum})


def _adam_ref(lr):
    return build("adam", {"learning_rate": lr})


INNER = {
    "sgd_momentum_schedule": (
        lambda: gradtx.sgd(SCHED, momentum=0.9),
        lambda: _sgd_ref(SCHED, 0.9),
    ),
    "adam": (lambda: gradtx.adam(0.05), lambda: _adam_ref(0.05)),
}
AWARE = {"plain": False, "aware": True, "exp": lambda tau: jnp.exp(-0.5 * tau)}
AWARE_REF = {"plain": False, "aware": True, "exp": lambda tau: float(np.exp(-0.5 * tau))}


def run_recording(tx, params, grads):
    """Eager trajectory of ``tx`` and the staleness recorded after each step."""
    state, history, taus = tx.init(params), [], []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = jax.tree.map(lambda p, d: p + d, params, u)
        history.append(leaves64(u))
        taus.append(int(tree_get(state, "staleness")))
    return history, taus, state


def error_vs_reference(tx, ref, grads=None):
    params = make_params()
    grads = make_grads(STEPS) if grads is None else grads
    got, taus, _ = run_recording(tx, params, grads)
    want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    return rel_err(got, want), taus


@pytest.mark.parametrize(
    "inner, delay, aware",
    [
        ("sgd_momentum_schedule", 1, "plain"),
        ("sgd_momentum_schedule", 3, "aware"),
        ("sgd_momentum_schedule", 3, "exp"),
        ("adam", 1, "aware"),
        ("adam", 3, "plain"),
        ("adam", 2, "exp"),
    ],
)
def test_fixed_delay_matches_reference(inner, delay, aware):
    make, make_ref = INNER[inner]
    tx = gradtx.delayed_gradients(make(), delay, staleness_aware=AWARE[aware])
    err, taus = error_vs_reference(tx, Delayed(make_ref(), delay, aware=AWARE_REF[aware]))
    assert err <= TOL
    assert taus == [-1] * delay + [delay] * (STEPS - delay)


@pytest.mark.parametrize("inner, aware", [("sgd_momentum_schedule", "aware"), ("adam", "plain")])
def test_random_delay_matches_reference_fed_the_draws(inner, aware):
    make, make_ref = INNER[inner]
    tx = gradtx.delayed_gradients(
        make(), 4, random_delay=True, staleness_aware=AWARE[aware], key=jax.random.key(3)
    )
    params, grads = make_params(), make_grads(STEPS)
    got, taus, _ = run_recording(tx, params, grads)
    ref = Delayed(make_ref(), 4, staleness=taus, aware=AWARE_REF[aware])
    want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(got, want) <= TOL
    assert all(0 <= tau <= min(t, 4) for t, tau in enumerate(taus))
    assert len(set(taus)) == 5  # every staleness 0..4 occurs in 30 draws


def test_buffer_dtype_rounds_the_stored_gradients():
    tx = gradtx.delayed_gradients(gradtx.adam(0.05), 2, buffer_dtype=jnp.float32)
    ref = Delayed(_adam_ref(0.05), 2, dtype=np.float32)
    err, _ = error_vs_reference(tx, ref)
    assert err <= TOL
    # the rounding is really there: the float64 reference is off by float32's resolution
    loose, _ = error_vs_reference(tx, Delayed(_adam_ref(0.05), 2))
    assert 1e-9 < loose < 1e-4
    state = tx.init(make_params())
    assert {x.dtype for x in jax.tree.leaves(tree_get(state, "gradients"))} == {jnp.dtype("f4")}


def test_the_reference_can_fail():
    """A delay off by one step, or a missing staleness factor, is detected."""
    tx = gradtx.delayed_gradients(gradtx.sgd(0.1), 3)
    assert error_vs_reference(tx, Delayed(_sgd_ref(0.1), 2))[0] > 1e-2
    tx = gradtx.delayed_gradients(gradtx.sgd(0.1), 3, staleness_aware=True)
    assert error_vs_reference(tx, Delayed(_sgd_ref(0.1), 3))[0] > 0.5


def test_warmup_applies_nothing_and_leaves_inner_untouched():
    params, grads = make_params(), make_grads(4)
    tx = gradtx.delayed_gradients(gradtx.adam(0.05), 3)
    state = tx.init(params)
    start = tree_get(state, "inner_state")
    for g in grads[:3]:
        u, state = tx.update(g, state, params)
        assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
        for a, b in zip(
            jax.tree.leaves(tree_get(state, "inner_state")), jax.tree.leaves(start), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    # step 4 feeds grads[0] to Adam's first step: |u| = lr per coordinate (m/sqrt(v) = sign(g))
    u, state = tx.update(grads[3], state, params)
    want = jax.tree.map(lambda g: -0.05 * np.sign(g), grads[0])
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert int(tree_get(state, "count")) == 4


def test_delay_zero_is_the_inner_optimizer():
    params, grads = make_params(), make_grads(10)
    want, _, _ = run_tx(gradtx.adam(0.05), params, grads)
    got, _, _ = run_tx(gradtx.delayed_gradients(gradtx.adam(0.05), 0), params, grads)
    assert rel_err(got, want) == 0.0


def test_staleness_aware_sgd_is_sgd_with_the_learning_rate_divided():
    params, grads = make_params(), make_grads(20)
    aware = gradtx.delayed_gradients(gradtx.sgd(0.3, momentum=0.5), 3, staleness_aware=True)
    divided = gradtx.delayed_gradients(gradtx.sgd(0.1, momentum=0.5), 3)
    got, _, _ = run_tx(aware, params, grads)
    want, _, _ = run_tx(divided, params, grads)
    assert rel_err(got, want) <= 1e-14


def test_an_optax_inner_gets_the_same_delayed_gradients():
    params, grads = make_params(), make_grads(12)
    got, _, _ = run_tx(gradtx.delayed_gradients(optax.adam(0.05), 2), params, grads)
    want, _, _ = run_tx(gradtx.delayed_gradients(gradtx.adam(0.05), 2), params, grads)
    assert rel_err(got, want) <= 1e-12


# --- the random staleness: range, distribution, reproducibility ----------------------------------


def draws(key, delay=4, steps=4000):
    """The staleness of each of ``steps`` updates (one compiled scan)."""
    tx = gradtx.delayed_gradients(gradtx.sgd(0.1), delay, random_delay=True, key=key)
    x = jnp.zeros(2)

    def body(state, _):
        _, state = tx.update(x, state, x)
        return state, tree_get(state, "staleness")

    return np.asarray(jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps)[1])(tx.init(x)))


def test_random_staleness_is_uniform_on_the_available_range():
    taus = draws(0)
    t = np.arange(len(taus))
    assert np.all(taus >= 0) and np.all(taus <= np.minimum(t, 4))
    assert taus[0] == 0  # only the current gradient exists at the first step
    counts = np.bincount(taus[4:], minlength=5)
    expected = (len(taus) - 4) / 5
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 18.5, counts  # 4 degrees of freedom: p = 0.001


def test_random_staleness_is_reproducible_from_the_key():
    a, b, c = draws(0, steps=200), draws(0, steps=200), draws(1, steps=200)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.5
    typed = draws(jax.random.key(1), steps=200)
    np.testing.assert_array_equal(typed, c)  # an int seed and its typed key agree


def test_state_layout_does_not_depend_on_the_draws():
    params = make_params()
    tx = gradtx.delayed_gradients(gradtx.adam(0.05), 4, random_delay=True, key=5)
    state = tx.init(params)
    shapes = jax.tree.map(lambda x: (x.shape, x.dtype), state)
    for g in make_grads(6):
        _, state = tx.update(g, state, params)
        assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == shapes
    key = tree_get(state, "rng_key")
    assert key.dtype == jnp.uint32 and key.shape == (2,)
    assert [x.shape for x in jax.tree.leaves(tree_get(state, "gradients"))] == [
        (4, 4),
        (4, 3, 4),
        (4,),
    ]


# --- transformations, checkpoints, errors --------------------------------------------------------

K = 12


def _loss(p):
    return sum(
        jnp.sum(c * (x - 0.3) ** 2)
        for c, x in zip((1.0, 2.0, 0.5), jax.tree.leaves(p), strict=True)
    )


def _final_loss(lr, random_delay, scan=True):
    tx = gradtx.delayed_gradients(
        gradtx.sgd(lr, momentum=0.5), 3, random_delay=random_delay, staleness_aware=True, key=2
    )

    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(_loss)(p), s, p)
        return (gradtx.apply_updates(p, u), s), None

    carry = (make_params(), tx.init(make_params()))
    if scan:
        carry = jax.lax.scan(body, carry, None, length=K)[0]
    else:
        for _ in range(K):
            carry, _ = body(carry, None)
    return _loss(carry[0])


@pytest.mark.parametrize("random_delay", [False, True])
def test_jit_vmap_grad_scan(random_delay):
    lrs = jnp.asarray([0.05, 0.1, 0.1 * (1 + 1e-6), 0.1 * (1 - 1e-6)])
    fn = jax.jit(jax.vmap(jax.value_and_grad(lambda lr: _final_loss(lr, random_delay))))
    values, grads = fn(lrs)
    for i in (0, 1):  # batch members against eager, unbatched runs
        eager = _final_loss(float(lrs[i]), random_delay, scan=False)
        np.testing.assert_allclose(values[i], eager, rtol=1e-12)
    fd = (values[2] - values[3]) / (float(lrs[2]) - float(lrs[3]))
    np.testing.assert_allclose(grads[1], fd, rtol=1e-5)
    assert abs(float(grads[1])) > 1e-3  # the meta-gradient is not vacuous


def test_checkpoint_mid_run_resumes_bit_identically():
    params, grads = make_params(), make_grads(8)
    tx = gradtx.delayed_gradients(gradtx.adam(0.05), 3, random_delay=True, key=9)
    step = jax.jit(tx.update)

    def go(state, p, gs):
        for g in gs:
            u, state = step(g, state, p)
            p = gradtx.apply_updates(p, u)
        return state, p

    mid, p_mid = go(tx.init(params), params, grads[:4])
    end, p_end = go(mid, p_mid, grads[4:])
    restored = serialization.from_bytes(tx.init(params), serialization.to_bytes(mid))
    end2, p_end2 = go(restored, p_mid, grads[4:])
    for a, b in zip(jax.tree.leaves((end, p_end)), jax.tree.leaves((end2, p_end2)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.any(np.asarray(tree_get(mid, "gradients")["dense"]["w"]) != 0)


def test_wrong_tree_is_named():
    tx = gradtx.delayed_gradients(gradtx.sgd(0.1), 2)
    state = tx.init(make_params())
    bad = {"dense": {"b": jnp.zeros(4), "w": jnp.zeros((3, 5))}, "scale": jnp.zeros(())}
    with pytest.raises(ValueError, match=r"delayed_gradients: .*'dense/w'"):
        tx.update(bad, state, bad)


@pytest.mark.parametrize("delay", [-1, 1.5])
def test_bad_delay_is_refused(delay):
    with pytest.raises(ValueError, match=r"delayed_gradients: delay="):
        gradtx.delayed_gradients(gradtx.sgd(0.1), delay)


# --- what staleness does to gradient descent, and the staleness-aware cure -----------------------


def _quadratic_run(delay, lr, aware, steps=300):
    """Final |x| of delayed gradient descent on f(x) = x²/2 from x = 1 (one compiled scan)."""
    tx = gradtx.delayed_gradients(gradtx.sgd(lr), delay, staleness_aware=aware)

    def body(carry, _):
        x, s = carry
        u, s = tx.update(x, s, x)
        return (x + u, s), None

    x = jnp.asarray(1.0)
    return float(
        jnp.abs(jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))((x, tx.init(x)))[0][0])
    )


def test_staleness_destabilises_gradient_descent_and_the_aware_step_restores_it():
    """x_{t+1} = x_t - lr x_{t-4} is stable only for lr < 2 sin(pi / 18) = 0.347; lr = 0.5
    (stable without delay) diverges with it, and lr / 4 converges again."""
    assert _quadratic_run(0, 0.5, False) < 1e-12
    assert _quadratic_run(4, 0.5, False) > 1e6
    assert _quadratic_run(4, 0.5, True) < 1e-6
    assert _quadratic_run(4, 0.3, False) < 1e-3  # below the bound: slow but stable
