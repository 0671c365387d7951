"""PSGD-Kron against its NumPy reference on params of rank 1, 2 and 3 (float64, 20 steps), with
the preconditioner updated every step and under a probability < 1 (the same skip pattern, from
the same key), and the properties its rule promises: the factors' shapes, the whitening fixed
point, the skip pattern, and a fit that actually moves (the comparison can fail)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_compile, leaves64, rel_err
from references import build, run

import gradtx
from gradtx.optimizers.psgd import norm_lower_bound, triangular_axes

SHAPES = {"v": (5,), "m": (4, 3), "t": (2, 3, 4), "s": ()}
STEPS = 20


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _tree(rng, scale=1.0):
    return {k: jnp.asarray(scale * rng.randn(*s) + 0.1, jnp.float64) for k, s in SHAPES.items()}


def _data(steps=STEPS):
    rng = np.random.RandomState(7)
    params = _tree(rng)
    grads = [_tree(rng, 1 + 0.5 * np.sin(t)) for t in range(steps)]
    return params, grads


def run_tx(tx, params, grads):
    """The trajectory ``(updates per step, final params, final state)`` with one compiled
    update (eager ops would compile each small op of the factors' fit per shape)."""
    state, history = tx.init(params), []
    update = jax.jit(tx.update)
    for g in grads:
        u, state = update(g, state, params)
        params = jax.tree.map(lambda p, d: p + d, params, u)
        history.append(leaves64(u))
    return history, params, state


def _compare(name, kwargs, steps=STEPS):
    params, grads = _data(steps)
    got, _, state = run_tx(getattr(gradtx, name)(**kwargs), params, grads)
    ref = build(name, kwargs)
    want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    return rel_err(got, want), ref, state


def _direction(ref):
    return ref if hasattr(ref, "skips") else ref.members[0]


CASES = {
    "every-step": {"preconditioner_update_probability": 1.0, "key": 11},
    "every-step-all-triangular": {
        "preconditioner_update_probability": 1.0,
        "min_ndim_triangular": 1,
        "b1": 0.0,
        "precond_lr": 0.3,
        "precond_init_scale": 0.5,
        "key": 12,
    },
    "probability-0.4": {"preconditioner_update_probability": 0.4, "key": 13},
}


@pytest.mark.parametrize("case", list(CASES))
def test_direction_matches_the_reference_on_rank_1_2_3(case):
    err, ref, _ = _compare("scale_by_psgd_kron", CASES[case])
    assert err <= 1e-10, err
    skips = _direction(ref).skips
    if "probability" in case:  # a real mixture of updated and skipped steps
        assert 3 <= sum(skips) <= STEPS - 3, skips
    else:
        assert not any(skips)


def test_optimizer_with_weight_decay_and_skew_matches_the_reference():
    kwargs = {"learning_rate": 0.05, "weight_decay": 0.02, "max_skew_triangular": 1.2,
              "memory_save_mode": "smart_one_diag", "preconditioner_update_probability": 0.7,
              "key": 3}  # fmt: skip
    err, _, _ = _compare("psgd_kron", kwargs)
    assert err <= 1e-10, err


def test_the_comparison_can_fail():
    """A different precond_lr, or another key (other probes), is detected."""
    params, grads = _data()
    got, _, _ = run_tx(gradtx.scale_by_psgd_kron(preconditioner_update_probability=1.0, key=11),
                       params, grads)  # fmt: skip
    for other in ({"precond_lr": 0.11, "key": 11}, {"precond_lr": 0.1, "key": 12}):
        ref = build("scale_by_psgd_kron", {"preconditioner_update_probability": 1.0, **other})
        want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
        assert rel_err(got, want) > 1e-6


def test_skipped_steps_keep_the_factors():
    """With probability < 1 the factors change exactly on the steps the draw selects, and the
    reference's pattern for the same key is the library's."""
    params, grads = _data(10)
    tx = gradtx.scale_by_psgd_kron(preconditioner_update_probability=0.5, key=13)
    state, update = tx.init(params), jax.jit(tx.update)
    changed = []
    for g in grads:
        before = jax.tree.leaves(gradtx.tree_get(state, "Qs"))
        _, state = update(g, state)
        after = jax.tree.leaves(gradtx.tree_get(state, "Qs"))
        changed.append(any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)))
    ref = build("scale_by_psgd_kron", {"preconditioner_update_probability": 0.5, "key": 13})
    run(ref, leaves64(params), [leaves64(g) for g in grads])
    assert changed == [not s for s in ref.skips]
    assert 0 < sum(changed) < len(changed)


def test_factor_shapes_follow_the_size_skew_and_rank_rules():
    assert triangular_axes((4, 3)) == (True, True)
    assert triangular_axes((5,)) == (False,)
    assert triangular_axes((5,), min_ndim_triangular=1) == (True,)
    assert triangular_axes(()) == (False,)
    assert triangular_axes((1, 7)) == (False, True)
    assert triangular_axes((100, 10), max_skew_triangular=4) == (False, True)
    assert triangular_axes((100, 10), max_size_triangular=50) == (False, True)
    assert triangular_axes((6, 6, 2), memory_save_mode="one_diag") == (True, False, True)
    assert triangular_axes((6, 6, 2), memory_save_mode="smart_one_diag") == (True, True, True)
    assert triangular_axes((6, 8), memory_save_mode="all_diag") == (False, False)
    state = gradtx.scale_by_psgd_kron(precond_init_scale=8.0).init(
        {k: jnp.zeros(s) for k, s in SHAPES.items()}
    )
    qs = gradtx.tree_get(state, "Qs")
    assert [q.shape for q in qs["t"]] == [(2, 2), (3, 3), (4, 4)]
    assert [q.shape for q in qs["v"]] == [(5,)] and [q.shape for q in qs["s"]] == [(1,)]
    np.testing.assert_allclose(qs["t"][0], 2.0 * np.eye(2))  # 8^(1/3): P = 64 I


def test_norm_lower_bound_is_a_tight_lower_bound():
    rng, bound = np.random.RandomState(0), jax.jit(norm_lower_bound)
    for n in (1, 3, 8):
        x = rng.randn(n, n + 2)
        s = x @ x.T
        exact = np.linalg.norm(s, 2)
        lb = float(bound(jnp.asarray(s)))
        assert exact / np.sqrt(2) <= lb <= exact * (1 + 1e-12)
    assert float(bound(jnp.zeros((3, 3)))) == 0.0


def test_the_fitted_preconditioner_whitens_the_gradient():
    """On gradients g = C z (z ~ N(0, I)), Li's criterion has its minimum at P = (C C^T)^-1/2
    (a Kronecker product here: C = C1 (x) C2); after a few hundred fits P C C^T P ~ I."""
    rng = np.random.RandomState(1)
    c1, c2 = np.diag([3.0, 1.0, 0.3]), np.diag([2.0, 0.5])
    tx = gradtx.scale_by_psgd_kron(b1=0.0, preconditioner_update_probability=1.0, key=0,
                                   clip_update_rms=0.0)  # fmt: skip
    z = rng.randn(400, 3, 2)
    grads = jnp.asarray(np.einsum("ij,tjk,lk->til", c1, z, c2))

    def fit(state, g):
        return tx.update(g, state)[1], None

    state = jax.jit(lambda gs: jax.lax.scan(fit, tx.init(gs[0]), gs)[0])(grads)
    q1, q2 = gradtx.tree_get(state, "Qs")
    p = np.kron(q1.T @ q1, q2.T @ q2)
    cov = np.kron(c1 @ c1.T, c2 @ c2.T)
    whitened = np.diag(p @ cov @ p)
    # from 1/36 .. 36 at the start to within a factor 2.5 of 1 (the normalised step's noise
    # floor keeps it slightly above 1)
    assert np.all(np.abs(np.log(whitened)) < np.log(2.5)), whitened
    assert whitened.max() / whitened.min() < 2.5, whitened


def test_same_key_replays_and_another_key_differs():
    params, grads = _data(3)

    def run_with(key):
        return run_tx(gradtx.psgd_kron(0.1, preconditioner_update_probability=1.0, key=key),
                      params, grads)[0]  # fmt: skip

    a, b, c = run_with(4), run_with(4), run_with(5)
    assert rel_err(a, b) == 0.0 and rel_err(a, c) > 1e-8
