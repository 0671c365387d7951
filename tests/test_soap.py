"""SOAP (``gradtx/optimizers/soap.py``): the float64 trajectory against the NumPy transcription of
the authors' PyTorch ``SOAP`` (``tests/references/soap.py``, itself checked once against the
authors' file with its bases kept in float64: 3e-15 over 30 steps) on leaves of rank 1, 2 and
4 over runs that refresh the eigenbases, <= 1e-10; the refresh happens only every
``precondition_frequency`` steps; the completed first basis is orthonormal.  (Quality against
tuned Adam: ``tests/test_matrix_quality.py``; the 8-device run: ``tests/test_shampoo.py``.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_compile, leaves64, rel_err, run_jit, shaped_problem
from references import build, run

import gradtx
from gradtx.optimizers import kronecker as kr

SHAPES = {"vec": (5,), "mat": (6, 4), "conv": (2, 3, 2, 2), "scalar": ()}


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def problem(steps: int, seed: int = 0) -> tuple[dict, list]:
    return shaped_problem(SHAPES, steps, seed)


# every refresh sees full-rank factors (a rank-deficient factor's QR is arbitrary in its null
# space); the first bases of the rank-deficient (6, 4) and (5,) factors are completed
CONFIGS = {
    "default_1d": dict(learning_rate=0.05, precondition_frequency=5, precondition_1d=True,
                       complete_basis=True),
    "merged_channels_last": dict(learning_rate=0.05, b1=0.9, b2=0.99, shampoo_beta=0.8,
                                 precondition_frequency=4, merge_dims=True, max_precond_dim=4,
                                 data_format="channels_last", complete_basis=True,
                                 normalize_grads=True, weight_decay=0.1),
    "one_sided_blocks": dict(learning_rate=0.05, precondition_frequency=3, one_sided=True,
                             block_size=3, correct_bias=False, max_precond_dim=5,
                             complete_basis=True),
}  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_the_authors_rule_on_rank_1_2_4(config):
    params, grads = problem(9)
    kwargs = CONFIGS[config]
    got = run_jit(gradtx.soap(**kwargs), params, grads)
    want, _ = run(build("soap", kwargs), leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(got, want) <= 1e-10
    if config == "default_1d":  # the check can fail: another shampoo_beta is seen
        other, _ = run(build("soap", dict(kwargs, shampoo_beta=0.9)), leaves64(params),
                       [leaves64(g) for g in grads])  # fmt: skip
        assert rel_err(got, other) > 1e-4


def test_bases_are_refreshed_only_every_precondition_frequency():
    tx = gradtx.scale_by_soap(precondition_frequency=3)
    params, grads = problem(8)
    update = jax.jit(tx.update)
    state, bases = tx.init(params), []
    for g in grads:
        _, state = update(g, state)
        bases.append(jax.tree.leaves(gradtx.tree_get(state, "bases")))
    changed = [
        any(not np.array_equal(a, b) for a, b in zip(bases[i], bases[i - 1], strict=True))
        for i in range(1, len(bases))
    ]
    # step 0 builds the first bases; Adam steps s = 3, 6 refresh them
    assert changed == [False, False, True, False, False, True, False]


def test_completed_first_basis_is_orthonormal_and_sorted():
    rng = np.random.RandomState(0)
    x = rng.randn(6, 2)
    a = jnp.asarray(x @ x.T)  # rank 2 of 6
    q = kr.eigenbasis(a, complete=True)
    np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-12)
    lam = np.diag(np.asarray(q.T @ a @ q))
    assert lam[0] >= lam[1] > 1e-6 and np.all(np.abs(lam[2:]) < 1e-10)
    # the completion depends on the null space alone, not on the eigh call's choice
    q2 = kr.eigenbasis(a + 0.0 * jnp.eye(6), complete=True)
    np.testing.assert_allclose(np.abs(q2), np.abs(q), atol=1e-10)
