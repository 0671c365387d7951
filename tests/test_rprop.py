"""Rprop's two variants: ``variant="torch"`` takes torch.optim.Rprop's steps (float64, the same
gradients fed to both), and ``variant="optax"`` emits torch's step one update late (optax 0.2.8's
behaviour, google-deepmind/optax#1725), or nothing where the new gradient disagrees with it."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from helpers import fast_compile, leaves64, make_grads, make_params, run_tx

import gradtx


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def torch_updates(params, grads, **kwargs):
    """torch.optim.Rprop's parameter changes, step by step, on the given gradient sequence."""
    leaves = [torch.tensor(x, dtype=torch.float64) for x in leaves64(params)]
    opt = torch.optim.Rprop(leaves, **kwargs)
    history = []
    for g in grads:
        before = [p.detach().clone() for p in leaves]
        for p, x in zip(leaves, leaves64(g), strict=True):
            p.grad = torch.tensor(x, dtype=torch.float64)
        opt.step()
        history.append([(p.detach() - b).numpy() for p, b in zip(leaves, before, strict=True)])
    return history


CASES = [
    ({"learning_rate": 0.01}, {"lr": 0.01}),
    (
        {"learning_rate": 0.05, "eta_minus": 0.3, "eta_plus": 1.5, "max_step_size": 0.2},
        {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-6, 0.2)},
    ),
    # a first step size above the maximum: torch clips it on the first step
    ({"learning_rate": 0.5, "max_step_size": 0.3}, {"lr": 0.5, "step_sizes": (1e-6, 0.3)}),
    ({"learning_rate": 1e-4, "min_step_size": 1e-3}, {"lr": 1e-4, "step_sizes": (1e-3, 50)}),
]


@pytest.mark.parametrize(("mine", "theirs"), CASES)
def test_torch_variant_takes_torchs_steps(mine, theirs):
    params, grads = make_params(), make_grads(30)
    got, _, _ = run_tx(gradtx.rprop(**mine, variant="torch"), params, grads)
    want = torch_updates(params, grads, **theirs)
    for a_step, b_step in zip(got, want, strict=True):
        for a, b in zip(a_step, b_step, strict=True):
            # torch's step is read back as a difference of params of size ~1: ~1e-16 absolute
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


def test_optax_variant_is_torchs_step_one_update_late():
    params, grads = make_params(), make_grads(30)
    late, _, _ = run_tx(gradtx.scale_by_rprop(0.01), params, grads)
    now, _, _ = run_tx(gradtx.scale_by_rprop(0.01, variant="torch"), params, grads)
    assert all(np.all(u == 0) for u in late[0])  # the first update is empty
    flips = 0
    for t in range(1, len(grads)):
        for a, b, g in zip(late[t], now[t - 1], leaves64(grads[t]), strict=True):
            disagree = g * b < 0  # the new gradient flips the pending step's sign
            np.testing.assert_array_equal(a, np.where(disagree, 0.0, b))
            flips += int(np.sum(disagree))
    assert flips > 0


def test_step_size_state_and_errors():
    params = {"w": jax.numpy.ones(3)}
    tx = gradtx.scale_by_rprop(0.1, eta_plus=2.0, max_step_size=0.3, variant="torch")
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update(params, state)
    np.testing.assert_allclose(gradtx.tree_get(state, "step_sizes")["w"], 0.3)  # 0.1, 0.2, 0.3
    with pytest.raises(ValueError, match="variant='pytorch'"):
        gradtx.rprop(0.1, variant="pytorch")
    with pytest.raises(ValueError, match=r"min_step_size=1\.0 exceeds max_step_size=0\.5"):
        gradtx.scale_by_rprop(0.1, min_step_size=1.0, max_step_size=0.5)
