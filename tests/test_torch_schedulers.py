"""torch_schedule / from_torch(..., scheduler=...) against torch.optim.lr_scheduler, 300 steps.

torch runs ``opt.step(); sched.step()`` each step and records the lr (and the cycled momentum or
beta1) each step used; gradtx evaluates the schedules and runs the optimizer in one jitted scan
for all configurations.  Errors: elementwise relative for the lr/momentum sequences, relative to
the distance moved for the trajectories (see torch_helpers.py).

Figures: ``python tests/test_torch_schedulers.py``.
"""

from __future__ import annotations

import functools
import warnings
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

from gradtx.torch_compat import current_lr, from_torch, torch_schedule, torch_schedules

STEPS = 300


def _every_tenth(t):
    # works on a Python int (torch's LambdaLR) and on a jax array (gradtx)
    return 0.95 ** (t // 10)


def _wobble(t):
    # MultiplicativeLR's factor: works on a Python int (torch) and on a jax array (gradtx)
    return 0.99 + 0.02 * (t % 2 == 0)


def _shrinking(x):
    # a custom CyclicLR scale_fn: torch calls it with a Python number, gradtx with an array
    return 1 / (1.0 + 0.01 * x)


CONFIGS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "StepLR", {"step_size": 30, "gamma": 0.5}),
    ("Adam", {"lr": 0.05}, "MultiStepLR", {"milestones": [50, 120, 120, 200], "gamma": 0.3}),
    ("SGD", {"lr": 0.05}, "ConstantLR", {"factor": 0.25, "total_iters": 40}),
    ("AdamW", {"lr": 0.05}, "LinearLR",
     {"start_factor": 0.1, "end_factor": 0.9, "total_iters": 100}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5}, "ExponentialLR", {"gamma": 0.99}),
    ("SGD", {"lr": 0.05, "momentum": 0.5}, "PolynomialLR", {"total_iters": 200, "power": 2.0}),
    # past T_max the cosine rises again (300 steps: more than four half periods)
    ("Adam", {"lr": 0.05}, "CosineAnnealingLR", {"T_max": 70, "eta_min": 1e-3}),
    ("SGD", {"lr": 0.05}, "CosineAnnealingLR", {"T_max": 100}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, "CosineAnnealingWarmRestarts",
     {"T_0": 20, "T_mult": 2, "eta_min": 1e-4}),
    ("Adam", {"lr": 0.05}, "CosineAnnealingWarmRestarts", {"T_0": 30}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "CyclicLR",
     {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 25}),
    ("Adam", {"lr": 0.05}, "CyclicLR",
     {"base_lr": 0.005, "max_lr": 0.05, "step_size_up": 20, "step_size_down": 15,
      "mode": "triangular2"}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5}, "CyclicLR",
     {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 30, "mode": "exp_range",
      "gamma": 0.995}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "CyclicLR",
     {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 10, "scale_fn": _shrinking,
      "scale_mode": "iterations", "base_momentum": 0.5}),
    ("Adagrad", {"lr": 0.3, "lr_decay": 0.01}, "CyclicLR",
     {"base_lr": 0.05, "max_lr": 0.3, "step_size_up": 40, "cycle_momentum": False}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}, "OneCycleLR",
     {"max_lr": 0.1, "total_steps": 300}),
    ("Adam", {"lr": 0.05}, "OneCycleLR",
     {"max_lr": 0.05, "total_steps": 300, "anneal_strategy": "linear", "three_phase": True,
      "pct_start": 0.25}),
    ("NAdam", {"lr": 0.05}, "OneCycleLR",
     {"max_lr": 0.05, "epochs": 10, "steps_per_epoch": 30}),
    # three cosine phases, the first ending between steps (0.33 * 300 - 1 = 98.00000000000001)
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "OneCycleLR",
     {"max_lr": 0.1, "total_steps": 300, "three_phase": True, "pct_start": 0.33}),
    # the first phase ends before step 0: torch starts in the second one
    ("AdamW", {"lr": 0.05}, "OneCycleLR",
     {"max_lr": 0.05, "total_steps": 300, "anneal_strategy": "linear", "pct_start": 0.002}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1}, "OneCycleLR",
     {"max_lr": 0.05, "total_steps": 300, "base_momentum": 0.8, "max_momentum": 0.9,
      "div_factor": 10.0, "final_div_factor": 100.0}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "SequentialLR",
     {"schedulers": [("LinearLR", {"start_factor": 0.1, "total_iters": 20}),
                     ("CosineAnnealingLR", {"T_max": 100})],
      "milestones": [20]}),
    ("Adamax", {"lr": 0.05}, "SequentialLR",
     {"schedulers": [("ConstantLR", {"factor": 0.5, "total_iters": 10}),
                     ("ExponentialLR", {"gamma": 0.98}),
                     ("StepLR", {"step_size": 25, "gamma": 0.5})],
      "milestones": [30, 150]}),
    ("Adadelta", {"lr": 1.0, "weight_decay": 0.05}, "LambdaLR", {"lr_lambda": _every_tenth}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "MultiplicativeLR", {"lr_lambda": _wobble}),
    ("Adam", {"lr": 0.05}, "SWALR", {"swa_lr": 0.01, "anneal_epochs": 40}),
    ("SGD", {"lr": 0.05}, "SWALR",
     {"swa_lr": 0.01, "anneal_epochs": 30, "anneal_strategy": "linear"}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "ChainedScheduler",
     {"schedulers": [("ConstantLR", {"factor": 0.5, "total_iters": 40}),
                     ("ExponentialLR", {"gamma": 0.995}),
                     ("MultiplicativeLR", {"lr_lambda": _wobble})]}),
    ("Adam", {"lr": 0.05}, "ChainedScheduler",
     {"schedulers": [("LinearLR", {"start_factor": 0.2, "total_iters": 50}),
                     ("CosineAnnealingLR", {"T_max": 70, "eta_min": 1e-3}),
                     ("StepLR", {"step_size": 40, "gamma": 0.5})]}),
    ("SGD", {"lr": 0.05}, "ChainedScheduler",
     {"schedulers": [("LambdaLR", {"lr_lambda": _every_tenth}),
                     ("MultiStepLR", {"milestones": [50, 90, 90], "gamma": 0.5}),
                     ("PolynomialLR", {"total_iters": 200, "power": 1.5})]}),
    # the cycled momentum of a chained OneCycleLR, with an ExponentialLR on top of its lr
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "ChainedScheduler",
     {"schedulers": [("OneCycleLR", {"max_lr": 0.1, "total_steps": 300}),
                     ("ExponentialLR", {"gamma": 0.998})]}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "SequentialLR",
     {"schedulers": [("CosineAnnealingLR", {"T_max": 150}),
                     ("SWALR", {"swa_lr": 0.02, "anneal_epochs": 20})],
      "milestones": [100]}),
    ("RMSprop", {"lr": 0.01}, "SequentialLR",
     {"schedulers": [("LinearLR", {"start_factor": 0.1, "total_iters": 30}),
                     ("MultiplicativeLR", {"lr_lambda": _wobble}),
                     ("SWALR", {"swa_lr": 0.002, "anneal_epochs": 0})],
      "milestones": [50, 150]}),
]  # fmt: skip


def _id(cfg) -> str:
    opt, _, sched, kw = cfg
    return f"{opt}-{sched}-{sorted(kw)}"


@functools.cache
def _all_errors() -> list[dict[str, float]]:
    """Per configuration: lr, momentum and trajectory errors (two compilations in all)."""
    lr_fns = [torch_schedule(s, kw_o["lr"], **kw_s) for _, kw_o, s, kw_s in CONFIGS]
    mom_fns = [torch_schedules(s, kw_o["lr"], **kw_s).momentum for _, kw_o, s, kw_s in CONFIGS]
    steps = jnp.arange(STEPS)

    @jax.jit
    def sequences():
        lrs = [jax.vmap(f)(steps) for f in lr_fns]
        moms = [None if f is None else jax.vmap(f)(steps) for f in mom_fns]
        return lrs, moms

    lrs, moms = sequences()
    txs = [from_torch(o, **kw_o, scheduler=(s, kw_s)) for o, kw_o, s, kw_s in CONFIGS]
    trajs = run_gradtx(txs, STEPS, record=current_lr)
    errors = []
    for cfg, lr, mom, (traj, live) in zip(CONFIGS, lrs, moms, trajs, strict=True):
        ref = run_torch(cfg[0], cfg[1], STEPS, scheduler=(cfg[2], cfg[3]))
        errors.append(
            {
                "lr": sequence_error(lr, ref["lr"]),
                "live_lr": sequence_error(live, ref["lr_after"]),
                "momentum": 0.0 if mom is None else sequence_error(mom, ref["momentum"]),
                "params": trajectory_error(traj, ref["params"]),
                "momentum_cycled": mom is not None,
                "lr_values": len(np.unique(ref["lr"])),
            }
        )
    return errors


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[_id(c) for c in CONFIGS])
def test_schedule_and_trajectory_match_torch(index):
    err = _all_errors()[index]
    assert err["lr_values"] > 1  # the schedule really changes the lr over the run
    assert err["lr"] < TOL  # torch_schedule
    assert err["live_lr"] < TOL  # the lr in from_torch's state after each step
    assert err["momentum"] < TOL
    assert err["params"] < TOL


# --- setting the lr mid-run: param_groups[0]["lr"] = x / tree_set(state, learning_rate=x) -------

LIVE_STEPS, SET_AT, SET_TO = 60, 25, 0.02
LIVE: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    # chainable: continue from the set value
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "StepLR", {"step_size": 10, "gamma": 0.5}),
    ("Adam", {"lr": 0.05}, "CosineAnnealingLR", {"T_max": 20, "eta_min": 1e-3}),
    ("SGD", {"lr": 0.05}, "LinearLR", {"start_factor": 0.2, "total_iters": 40}),
    ("Adam", {"lr": 0.05}, "ExponentialLR", {"gamma": 0.97}),
    ("SGD", {"lr": 0.05}, "PolynomialLR", {"total_iters": 40, "power": 2.0}),
    ("SGD", {"lr": 0.05}, "ConstantLR", {"factor": 0.5, "total_iters": 30}),
    ("Adam", {"lr": 0.05}, "MultiStepLR", {"milestones": [20, 30, 30], "gamma": 0.5}),
    ("SGD", {"lr": 0.05}, "MultiplicativeLR", {"lr_lambda": _wobble}),
    ("Adam", {"lr": 0.05}, "SWALR", {"swa_lr": 0.01, "anneal_epochs": 40}),
    ("SGD", {"lr": 0.05}, "ChainedScheduler",
     {"schedulers": [("ExponentialLR", {"gamma": 0.97}),
                     ("StepLR", {"step_size": 7, "gamma": 0.5})]}),
    # a SequentialLR member restarted at its milestone after the edit: its closed form again
    ("SGD", {"lr": 0.05}, "SequentialLR",
     {"schedulers": [("ExponentialLR", {"gamma": 0.9}), ("StepLR", {"step_size": 5})],
      "milestones": [35]}),
    # closed forms: overwrite the set value at their next step
    ("Adam", {"lr": 0.05}, "LambdaLR", {"lr_lambda": _every_tenth}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, "OneCycleLR", {"max_lr": 0.1, "total_steps": 60}),
    ("SGD", {"lr": 0.05}, "CosineAnnealingWarmRestarts", {"T_0": 15}),
    # the metric-driven one: its cuts continue from the set value, down to min_lr
    ("Adam", {"lr": 0.05}, "ReduceLROnPlateau",
     {"factor": 0.5, "patience": 1, "threshold": 0.05, "min_lr": 0.004}),
]  # fmt: skip


@functools.cache
def _live_errors() -> list[dict[str, float]]:
    """Each LIVE pair against torch with ``param_groups[0]["lr"] = SET_TO`` before step
    ``SET_AT`` (gradtx: ``tree_set(state, learning_rate=SET_TO)``); one compilation."""
    txs = [from_torch(o, **kw_o, scheduler=(s, kw_s)) for o, kw_o, s, kw_s in LIVE]
    ours = run_gradtx(txs, LIVE_STEPS, with_value=True, record=current_lr, set_lr={SET_AT: SET_TO})
    errors = []
    for (opt, kw_o, sched, kw_s), (traj, live) in zip(LIVE, ours, strict=True):
        ref = run_torch(opt, kw_o, LIVE_STEPS, scheduler=(sched, kw_s), set_lr={SET_AT: SET_TO})
        plain = run_torch(opt, kw_o, LIVE_STEPS, scheduler=(sched, kw_s))
        errors.append(
            {
                "params": trajectory_error(traj, ref["params"]),
                "live_lr": sequence_error(live, ref["lr_after"]),
                "used": ref["lr"][SET_AT],
                "changed": float(np.max(np.abs(ref["lr"] - plain["lr"]))),
            }
        )
    return errors


@pytest.mark.parametrize("index", range(len(LIVE)), ids=[f"{c[2]}-{c[0]}" for c in LIVE])
def test_setting_the_lr_mid_run_matches_torch(index):
    err = _live_errors()[index]
    assert err["used"] == SET_TO and err["changed"] > 1e-3  # the edit took effect in torch
    assert err["live_lr"] < TOL
    assert err["params"] < TOL


def test_momentum_cycling_is_exercised():
    cycled = [c[0] for c, e in zip(CONFIGS, _all_errors(), strict=True) if e["momentum_cycled"]]
    assert {"SGD", "Adam", "RMSprop", "RAdam"} <= set(cycled)


def test_cosine_annealing_rises_past_t_max():
    lr = np.asarray(jax.vmap(torch_schedule("CosineAnnealingLR", 1.0, T_max=10))(jnp.arange(21)))
    np.testing.assert_allclose(lr[[0, 10, 20]], [1.0, 0.0, 1.0], atol=1e-15)
    assert np.all(np.diff(lr[10:]) > 0)


def test_cosine_warm_restarts_restart_steps():
    fn = torch_schedule("CosineAnnealingWarmRestarts", 1.0, T_0=3, T_mult=2)
    lr = np.asarray(jax.vmap(fn)(jnp.arange(25)))
    # restarts at 3, 3 + 6 = 9 and 9 + 12 = 21
    assert [int(t) for t in np.flatnonzero(lr == 1.0)] == [0, 3, 9, 21]


def test_one_cycle_holds_its_last_value_past_total_steps():
    fn = torch_schedule("OneCycleLR", 0.1, max_lr=0.1, total_steps=50)
    lr = np.asarray(jax.vmap(fn)(jnp.arange(48, 60)))
    assert lr[1] < lr[0] and np.all(lr[2:] == lr[2])  # step 50 is torch's last valid step


ONE_CYCLE = [
    {"total_steps": 40},
    {"total_steps": 37, "pct_start": 0.25, "anneal_strategy": "linear"},
    {"total_steps": 40, "three_phase": True, "pct_start": 0.45},
    {"total_steps": 33, "three_phase": True, "anneal_strategy": "linear"},
    {"total_steps": 50, "pct_start": 0.01},  # the first phase ends before step 0
    {"total_steps": 20, "pct_start": 1.0},  # a last phase of no length (torch fails at step 20)
    {"total_steps": 20, "three_phase": True, "pct_start": 0.6},  # phase 2 outlasts the run
]


@pytest.mark.parametrize("kwargs", ONE_CYCLE, ids=str)
def test_one_cycle_matches_torch_up_to_total_steps(kwargs):
    # step total_steps included: torch computes it (past it, torch raises)
    rows = []
    with torch_float64(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no optimizer.step() here
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, **kwargs)
        for t in range(kwargs["total_steps"] + 1):
            rows.append([opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]])
            if t == kwargs["total_steps"]:
                break
            try:
                sched.step()
            except ZeroDivisionError:  # torch divides by the length of a phase of no length
                break
    assert len(rows) >= kwargs["total_steps"]
    ours = torch_schedules("OneCycleLR", 0.1, max_lr=0.1, **kwargs)
    steps = jnp.arange(len(rows))
    ref = np.asarray(rows)
    assert sequence_error(jax.vmap(ours.lr)(steps), ref[:, 0]) < TOL
    assert sequence_error(jax.vmap(ours.momentum)(steps), ref[:, 1]) < TOL


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: torch_schedule("WarmupLR", 0.1), ValueError),
        (lambda: torch_schedule("StepLR", 0.1, step_size=3, gama=0.5), TypeError),
        (lambda: torch_schedule("ReduceLROnPlateau", 0.1), ValueError),
        (lambda: torch_schedule("ConstantLR", 0.1, factor=1.5), ValueError),
        (lambda: torch_schedule("CosineAnnealingWarmRestarts", 0.1, T_0=0), ValueError),
        (lambda: torch_schedule("OneCycleLR", 0.1, max_lr=0.1), ValueError),
        (lambda: torch_schedule("CyclicLR", 0.1, base_lr=0.1, max_lr=1, mode="x"), ValueError),
        (lambda: torch_schedule("SequentialLR", 0.1, schedulers=[("StepLR", {"step_size": 2})],
                                milestones=[3]), ValueError),
        (lambda: from_torch("Adagrad", scheduler=("OneCycleLR", {"max_lr": 0.1,
                                                                 "total_steps": 10})), ValueError),
        (lambda: from_torch("SGD", lr=lambda c: 0.1, scheduler=("StepLR", {"step_size": 2})),
         ValueError),
    ],
)  # fmt: skip
def test_invalid_schedulers_raise(call, error):
    with pytest.raises(error):
        call()


def test_torch_also_rejects_cycling_without_momentum():
    with torch_float64(), pytest.raises(ValueError, match="momentum"):
        opt = torch.optim.Adagrad([torch.zeros(1, requires_grad=True)])
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    for cfg, err in zip(CONFIGS, _all_errors(), strict=True):
        print(f"lr {err['lr']:.1e} momentum {err['momentum']:.1e} params {err['params']:.1e}  "
              f"{_id(cfg)}")  # fmt: skip
