"""reduce_on_plateau against torch.optim.lr_scheduler.ReduceLROnPlateau.

Scripted metric sequences (improvements, plateaus finer than the threshold, a NaN) drive both;
per step we compare the lr the step used and, after the step, the best value, the count of bad
steps and the cooldown counter.  Then whole trajectories of from_torch(..., scheduler=
("ReduceLROnPlateau", ...)) fed ``value=loss`` against torch's ``opt.step(); sched.step(loss)``.

Figures: ``python tests/test_plateau.py``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch_helpers import (
    TOL,
    run_gradtx,
    run_torch,
    sequence_error,
    torch_float64,
    trajectory_error,
)

from gradtx import tree_get
from gradtx.torch_compat import from_torch
from gradtx.torch_compat.plateau import reduce_on_plateau


def scripted_metric() -> np.ndarray:
    """Falls by 10% for 6 steps, then wobbles by 5e-5 (relative) for 12, eight times; one NaN."""
    seq, v = [], 1.0
    for _ in range(8):
        for _ in range(6):
            v *= 0.9
            seq.append(v)
        seq.extend(v * (1 + 5e-5 * (-1) ** i) for i in range(12))
    seq[40] = np.nan
    return np.asarray(seq)


BASE_LR = 0.1
# (torch kwargs, how the metric is presented: "loss" falls, "score" rises)
SCRIPTED: list[tuple[dict[str, Any], str]] = [
    ({"factor": 0.5, "patience": 3, "cooldown": 2, "min_lr": 0.02}, "loss"),
    ({"threshold_mode": "abs", "threshold": 0.01, "patience": 2, "factor": 0.3,
      "min_lr": 1e-3}, "loss"),
    ({"mode": "max", "threshold": 1e-3, "patience": 4, "cooldown": 3}, "score"),
    ({"mode": "max", "threshold_mode": "abs", "threshold": 0.05, "patience": 0, "cooldown": 1,
      "factor": 0.5, "eps": 4e-3}, "score"),
    ({}, "loss"),
]  # fmt: skip


def _metric(kind: str) -> np.ndarray:
    m = scripted_metric()
    return m if kind == "loss" else 1 / m


def torch_plateau(metrics: np.ndarray, kwargs: dict[str, Any]) -> np.ndarray:
    """Rows of (lr used by the step, best, num_bad_epochs, cooldown_counter after it)."""
    with torch_float64():
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        rows = []
        for m in metrics:
            lr = opt.param_groups[0]["lr"]
            sched.step(float(m))
            rows.append([lr, sched.best, sched.num_bad_epochs, sched.cooldown_counter])
    return np.asarray(rows)


def _block(kwargs: dict[str, Any]):
    """The torch kwargs stated as reduce_on_plateau's own arguments."""
    kw = dict(kwargs)
    min_lr = kw.pop("min_lr", 0.0)
    return reduce_on_plateau(**kw, min_scale=min_lr / BASE_LR, base_lr=BASE_LR)


@functools.cache
def scripted_rows() -> list[tuple[np.ndarray, np.ndarray]]:
    """(ours, torch's) rows for every scripted configuration, one compilation."""
    txs = [_block(kw) for kw, _ in SCRIPTED]
    metrics = np.stack([_metric(kind) for _, kind in SCRIPTED], axis=1)

    @jax.jit
    def go(ms):
        def body(states, m):
            rows, new = [], []
            for i, (tx, s) in enumerate(zip(txs, states, strict=True)):
                u, s = tx.update({"x": jnp.ones([])}, s, None, value=m[i])
                rows.append(
                    jnp.stack(
                        [
                            BASE_LR * u["x"],
                            tree_get(s, "best_value"),
                            tree_get(s, "plateau_count").astype(u["x"].dtype),
                            tree_get(s, "cooldown_count").astype(u["x"].dtype),
                        ]
                    )
                )
                new.append(s)
            return new, jnp.stack(rows)

        return jax.lax.scan(body, [tx.init({"x": jnp.ones([])}) for tx in txs], ms)[1]

    ours = np.asarray(go(jnp.asarray(metrics)))
    return [(ours[:, i], torch_plateau(metrics[:, i], kw)) for i, (kw, _) in enumerate(SCRIPTED)]


@pytest.mark.parametrize("index", range(len(SCRIPTED)), ids=[str(c[0]) for c in SCRIPTED])
def test_scripted_metric_matches_torch(index):
    ours, ref = scripted_rows()[index]
    assert sequence_error(ours[:, 0], ref[:, 0]) < TOL  # lr of every step
    np.testing.assert_allclose(ours[:, 1], ref[:, 1], rtol=1e-15)  # best value
    np.testing.assert_array_equal(ours[:, 2:], ref[:, 2:])  # bad steps, cooldown
    assert len(np.unique(ref[:, 0])) >= 3  # at least two reductions happened


def test_scripted_sequences_reach_every_rule():
    rows = [ref for _, ref in scripted_rows()]
    kwargs = [kw for kw, _ in SCRIPTED]
    assert rows[0][-1, 0] == pytest.approx(kwargs[0]["min_lr"])  # floor at min_lr
    assert rows[1][-1, 0] == pytest.approx(kwargs[1]["min_lr"])
    assert max(r[:, 3].max() for r in rows) >= 2  # cooldown counted down
    # eps stops the halvings at 0.1 / 16: the next one would change the lr by 0.003125 < eps
    assert rows[3][-1, 0] == pytest.approx(BASE_LR * 0.5**4)
    assert np.all(rows[3][-30:, 2] == 0)  # patience 0: each bad step is a (refused) cut


TRAJ_STEPS = 200
PLATEAU = {"factor": 0.5, "patience": 2, "threshold": 1e-2, "cooldown": 1, "min_lr": 0.004}
TRAJECTORIES = [("Adam", {"lr": 0.05}), ("SGD", {"lr": 0.05, "momentum": 0.9})]


@functools.cache
def trajectory_errors() -> list[dict[str, float]]:
    txs = [
        from_torch(name, **kw, scheduler=("ReduceLROnPlateau", PLATEAU))
        for name, kw in TRAJECTORIES
    ]
    ours = run_gradtx(txs, TRAJ_STEPS, with_value=True, record=lambda s: tree_get(s, "scale"))
    out = []
    for (name, kw), (traj, scale) in zip(TRAJECTORIES, ours, strict=True):
        ref = run_torch(name, kw, TRAJ_STEPS, scheduler=("ReduceLROnPlateau", PLATEAU))
        lr_used = kw["lr"] * np.concatenate([[1.0], np.asarray(scale)[:-1]])
        out.append(
            {
                "params": trajectory_error(traj, ref["params"]),
                "lr": sequence_error(lr_used, ref["lr"]),
                "reductions": len(np.unique(ref["lr"])) - 1,
            }
        )
    return out


@pytest.mark.parametrize("index", range(len(TRAJECTORIES)), ids=[t[0] for t in TRAJECTORIES])
def test_trajectory_with_plateau_matches_torch(index):
    err = trajectory_errors()[index]
    assert err["reductions"] >= 2
    assert err["lr"] < TOL
    assert err["params"] < TOL


def test_missing_value_raises():
    tx = reduce_on_plateau()
    with pytest.raises(ValueError, match="value="):
        tx.update({"x": jnp.ones(2)}, tx.init({"x": jnp.ones(2)}))


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "up"}, {"threshold_mode": "pct"}, {"factor": 1.0}, {"patience": -1},
     {"min_scale": -0.1}],
)  # fmt: skip
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        reduce_on_plateau(**kwargs)


def test_from_torch_rejects_factor_one_like_torch():
    with torch_float64(), pytest.raises(ValueError):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError):
        from_torch("SGD", lr=0.1, scheduler=("ReduceLROnPlateau", {"factor": 1.0}))


def test_state_is_visible_by_name():
    tx = from_torch("Adam", lr=0.1, scheduler=("ReduceLROnPlateau", {"patience": 0}))
    params = {"x": jnp.ones(3)}
    state, update = tx.init(params), jax.jit(tx.update)
    for value in (1.0, 2.0, 3.0):
        _, state = update(params, state, params, value=value)
    assert float(tree_get(state, "scale")) == pytest.approx(0.01)
    assert float(tree_get(state, "best_value")) == 1.0
    assert int(tree_get(state, "plateau_count")) == 0


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    for (kw, kind), (ours, ref) in zip(SCRIPTED, scripted_rows(), strict=True):
        print(f"lr {sequence_error(ours[:, 0], ref[:, 0]):.1e}  {kind} {kw}")
    for cfg, err in zip(TRAJECTORIES, trajectory_errors(), strict=True):
        print(f"lr {err['lr']:.1e} params {err['params']:.1e} ({err['reductions']} cuts)  {cfg}")
