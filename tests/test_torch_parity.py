"""from_torch(name, **kwargs) against torch.optim itself, step for step, in float64.

Both sides see the same gradients: ``g = w (p - c) - 0.3 sin(3 p) + noise_t`` (the gradient of
``0.5 w (p - c)^2 + 0.1 cos(3 p) + noise_t p``), on a two-leaf parameter tree.  The error is the
worst over steps of ``max|p_gradtx - p_torch| / max|p_torch - p_0|``: relative to how far the
parameters moved, so a wrong step cannot hide behind large parameter values.

Figures: ``python tests/test_torch_parity.py`` prints the worst error of every configuration.
The helpers here are shared by test_torch_schedulers.py and test_plateau.py.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from gradtx import apply_updates
from gradtx.torch_compat import DEFAULTS, from_torch

KEYS = ("a", "b")
W = {"a": np.array([0.5, 1.0, 2.0, 3.0]), "b": np.array([0.2, 1.5, 4.0])}
C = {"a": np.array([1.0, -2.0, 0.5, 3.0]), "b": np.array([-1.0, 0.3, 2.0])}
P0 = {"a": np.array([0.3, 0.1, -0.7, 1.2]), "b": np.array([0.8, -0.4, 0.05])}
TOL = 1e-10


def noise(steps: int, seed: int = 0, size: float = 0.3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: size * rng.standard_normal((steps, *P0[k].shape)) for k in KEYS}


def flat(tree: dict[str, Any]) -> np.ndarray:
    return np.concatenate([np.asarray(tree[k]) for k in KEYS])


# --- torch side ----------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_float64() -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def torch_scheduler(opt: torch.optim.Optimizer, name: str, kwargs: dict[str, Any]):
    sched = torch.optim.lr_scheduler
    if name == "SequentialLR":
        members = [torch_scheduler(opt, n, kw) for n, kw in kwargs["schedulers"]]
        return sched.SequentialLR(opt, members, milestones=kwargs["milestones"])
    return getattr(sched, name)(opt, **kwargs)


def _cycled(group: dict[str, Any]) -> float:
    return group["betas"][0] if "betas" in group else group.get("momentum", math.nan)


def run_torch(
    name: str,
    kwargs: dict[str, Any],
    steps: int,
    scheduler: tuple[str, dict[str, Any]] | None = None,
    lr_fn: Callable[[int], float] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """torch's trajectory (params after each step), the lr and momentum/beta1 each step used, and
    (for ReduceLROnPlateau) the scheduler's bookkeeping after each step."""
    out: dict[str, list] = {"params": [], "lr": [], "momentum": [], "plateau": []}
    with torch_float64():
        nz = [torch.tensor(v) for v in noise(steps, seed).values()]
        ps = [torch.tensor(P0[k], requires_grad=True) for k in KEYS]
        opt = getattr(torch.optim, name)(ps, **kwargs)
        sched = None if scheduler is None else torch_scheduler(opt, *scheduler)
        plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        w, c = [torch.tensor(W[k]) for k in KEYS], [torch.tensor(C[k]) for k in KEYS]
        for t in range(steps):
            if lr_fn is not None:
                opt.param_groups[0]["lr"] = float(lr_fn(t))
            out["lr"].append(float(opt.param_groups[0]["lr"]))
            out["momentum"].append(float(_cycled(opt.param_groups[0])))
            with torch.no_grad():
                for p, wi, ci, n in zip(ps, w, c, nz, strict=True):
                    p.grad = wi * (p - ci) - 0.3 * torch.sin(3 * p) + n[t]
                if plateau:
                    loss = sum(
                        float((0.5 * wi * (p - ci) ** 2 + 0.1 * torch.cos(3 * p) + n[t] * p).sum())
                        for p, wi, ci, n in zip(ps, w, c, nz, strict=True)
                    )
            opt.step()
            if plateau:
                sched.step(loss)
                out["plateau"].append([sched.best, sched.num_bad_epochs, sched.cooldown_counter])
            elif sched is not None:
                sched.step()
            out["params"].append(torch.cat([p.detach() for p in ps]).numpy().copy())
    return {k: np.asarray(v) for k, v in out.items()}


# --- gradtx side ---------------------------------------------------------------------------------


def _loss_and_grad(p, n):
    loss = sum(
        jnp.sum(0.5 * W[k] * (p[k] - C[k]) ** 2 + 0.1 * jnp.cos(3 * p[k]) + n[k] * p[k])
        for k in KEYS
    )
    g = {k: W[k] * (p[k] - C[k]) - 0.3 * jnp.sin(3 * p[k]) + n[k] for k in KEYS}
    return loss, g


def run_gradtx(
    txs: list, steps: int, seed: int = 0, with_value: bool = False, record: Callable | None = None
) -> list[tuple[np.ndarray, Any]]:
    """The trajectories of several transformations on the same gradients, in one jitted scan
    (one compilation for the lot); ``record(state)`` is stacked per step when given."""
    p0 = {k: jnp.asarray(P0[k]) for k in KEYS}

    def step(tx, p, s, n):
        loss, g = _loss_and_grad(p, n)
        u, s = tx.update(g, s, p, **({"value": loss} if with_value else {}))
        p = apply_updates(p, u)
        return (p, s), (jnp.concatenate([p[k] for k in KEYS]), record and record(s))

    @jax.jit
    def go(nz):
        def body(carry, n):
            moved = [step(tx, p, s, n) for tx, (p, s) in zip(txs, carry, strict=True)]
            return [m[0] for m in moved], [m[1] for m in moved]

        return jax.lax.scan(body, [(p0, tx.init(p0)) for tx in txs], nz)[1]

    out = go({k: jnp.asarray(v) for k, v in noise(steps, seed).items()})
    return [(np.asarray(traj), rec) for traj, rec in out]


def trajectory_error(ours: np.ndarray, ref: np.ndarray) -> float:
    moved = np.max(np.abs(ref - flat(P0)), axis=1)
    assert np.all(moved > 0), "reference did not move"
    return float(np.max(np.max(np.abs(ours - ref), axis=1) / moved))


def sequence_error(ours: Any, ref: np.ndarray) -> float:
    """Worst elementwise relative error, with a floor of 1e-12 of the largest value (for
    sequences that touch 0)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    floor = 1e-12 * np.max(np.abs(ref))
    return float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), floor)))


# --- configurations ------------------------------------------------------------------------------

STEPS = 60

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("SGD", {}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.02}),
    ("SGD", {"lr": 0.02, "momentum": 0.5, "maximize": True, "weight_decay": 0.1}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.3, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.3, "initial_accumulator_value": 0.1, "eps": 1e-3, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.02, "alpha": 0.9, "eps": 1e-4, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.8}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.7, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True, "weight_decay": 0.05}),
    ("Adam", {}),
    ("Adam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.05, "amsgrad": True}),
    ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True}),
    ("AdamW", {"lr": 0.05, "maximize": True}),
    ("AdamW", {"lr": 0.05, "betas": (0.7, 0.9), "eps": 1e-3, "weight_decay": 0.5}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.05, "betas": (0.8, 0.95), "weight_decay": 0.1}),
    ("Adamax", {"lr": 0.05, "eps": 1e-2, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.05, "momentum_decay": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-4, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    # implementation flags are accepted and change nothing
    ("Adam", {"lr": 0.05, "foreach": False, "fused": None, "capturable": False,
              "differentiable": False}),
]  # fmt: skip


@functools.cache
def parity_errors(name: str) -> dict[str, float]:
    """The error of every configuration of optimizer ``name`` (one compilation for them all)."""
    configs = [kw for n, kw in CONFIGS if n == name]
    ours = run_gradtx([from_torch(name, **kw) for kw in configs], STEPS)
    return {
        repr(kw): trajectory_error(traj, run_torch(name, kw, STEPS)["params"])
        for kw, (traj, _) in zip(configs, ours, strict=True)
    }


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=lambda x: str(x))
def test_matches_torch(name, kwargs):
    assert parity_errors(name)[repr(kwargs)] < TOL


def _lr_schedule(count):
    return 0.05 * 0.97**count


def test_lr_schedule_matches_torch_with_lr_set_each_step():
    kwargs = {"momentum": 0.9, "weight_decay": 0.1}
    ref = run_torch("SGD", {"lr": 0.05, **kwargs}, STEPS, lr_fn=_lr_schedule)["params"]
    [(ours, _)] = run_gradtx([from_torch("SGD", lr=_lr_schedule, **kwargs)], STEPS)
    assert trajectory_error(ours, ref) < TOL


def test_every_option_of_every_optimizer_is_covered():
    # guards the table above: each torch option appears in at least one configuration
    for name, defaults in DEFAULTS.items():
        used = set().union(*(kw for n, kw in CONFIGS if n == name))
        assert set(defaults) - {"lr"} <= used, name


def test_the_comparison_can_fail():
    # a 1e-4 relative change of one hyperparameter is far above the tolerance
    ref = run_torch("Adagrad", {"lr": 0.3, "eps": 1e-2}, STEPS)["params"]
    [(ours, _)] = run_gradtx([from_torch("Adagrad", lr=0.3, eps=1e-2 * (1 + 1e-4))], STEPS)
    assert trajectory_error(ours, ref) > 1e-8


def test_defaults_are_torchs():
    with torch_float64():
        for name, defaults in DEFAULTS.items():
            opt = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)])
            for key, value in defaults.items():
                assert opt.defaults[key] == value, (name, key)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": -0.1}),
        ("SGD", {"momentum": -0.1}),
        ("SGD", {"nesterov": True}),
        ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
        ("Adam", {"betas": (1.0, 0.999)}),
        ("Adam", {"betas": (0.9, -0.1)}),
        ("Adam", {"eps": -1e-8}),
        ("Adadelta", {"rho": 1.5}),
        ("Adagrad", {"lr_decay": -1.0}),
        ("RMSprop", {"alpha": -0.5}),
        ("NAdam", {"momentum_decay": -1.0}),
        ("AdamW", {"weight_decay": -0.01}),
    ],
)
def test_out_of_range_raises_like_torch(name, kwargs):
    with torch_float64(), pytest.raises(ValueError):
        getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError):
        from_torch(name, **kwargs)


def test_unknown_arguments_raise_type_error_listing_accepted():
    with pytest.raises(TypeError, match=r"'nesterov'.*accepted.*'betas'"):
        from_torch("Adam", nesterov=True)
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        from_torch("AdamW", decoupled_weight_decay=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        from_torch("LBFGS")


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    for cfg in CONFIGS:
        print(f"{parity_errors(cfg[0])[repr(cfg[1])]:.2e}  {cfg}")
