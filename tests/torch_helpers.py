"""The torch harness shared by test_torch_parity.py, test_torch_schedulers.py and test_plateau.py.

Both sides see the same gradients: ``g = w (p - c) - 0.3 sin(3 p) + noise_t`` (the gradient of
``0.5 w (p - c)^2 + 0.1 cos(3 p) + noise_t p``), on a two-leaf parameter tree.  The trajectory
error is the worst over steps of ``max|p_gradtx - p_torch| / max|p_torch - p_0|``: relative to how
far the parameters moved, so a wrong step cannot hide behind large parameter values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from gradtx import apply_updates

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
