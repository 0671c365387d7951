"""The torch harness shared by test_torch_parity.py, test_torch_schedulers.py and test_plateau.py.

Both sides see the same gradients: ``g = w (p - c) - 0.3 sin(3 p) + noise_t`` (the gradient of
``0.5 w (p - c)^2 + 0.1 cos(3 p) + noise_t p``), on a parameter tree (a ``Problem``: two vectors
by default, ``MIXED`` / ``MATRICES`` for rules that treat matrices apart).  The trajectory
error is the worst over steps of ``max|p_gradtx - p_torch| / max|p_torch - p_0|``: relative to how
far the parameters moved, so a wrong step cannot hide behind large parameter values.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import torch

from gradtx import apply_updates, tree_get, tree_set

TOL = 1e-10


class Problem(NamedTuple):
    """A parameter tree (``p0``) and the gradient's weights ``w`` and centres ``c``, by key."""

    keys: tuple[str, ...]
    w: dict[str, np.ndarray]
    c: dict[str, np.ndarray]
    p0: dict[str, np.ndarray]


VECTORS = Problem(
    ("a", "b"),
    {"a": np.array([0.5, 1.0, 2.0, 3.0]), "b": np.array([0.2, 1.5, 4.0])},
    {"a": np.array([1.0, -2.0, 0.5, 3.0]), "b": np.array([-1.0, 0.3, 2.0])},
    {"a": np.array([0.3, 0.1, -0.7, 1.2]), "b": np.array([0.8, -0.4, 0.05])},
)
_rng = np.random.default_rng(7)
# a matrix, a stack of matrices and a vector: factored and unfactored leaves
MIXED = Problem(
    ("a", "b", "c"),
    {"a": _rng.uniform(0.3, 3.0, (3, 4)), "b": _rng.uniform(0.3, 3.0, (2, 3, 2)),
     "c": np.array([0.5, 2.0, 1.0])},
    {"a": _rng.normal(size=(3, 4)), "b": _rng.normal(size=(2, 3, 2)),
     "c": np.array([1.0, -1.0, 0.2])},
    {"a": _rng.normal(size=(3, 4)), "b": _rng.normal(size=(2, 3, 2)),
     "c": np.array([0.3, 0.4, -0.6])},
)  # fmt: skip
# matrices only (torch's Muon refuses anything else)
MATRICES = Problem(
    ("a", "b"),
    {"a": _rng.uniform(0.3, 3.0, (3, 4)), "b": _rng.uniform(0.3, 3.0, (4, 2))},
    {"a": _rng.normal(size=(3, 4)), "b": _rng.normal(size=(4, 2))},
    {"a": _rng.normal(size=(3, 4)), "b": _rng.normal(size=(4, 2))},
)
KEYS, W, C, P0 = VECTORS


def noise(
    steps: int, seed: int = 0, size: float = 0.3, problem: Problem = VECTORS
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: size * rng.standard_normal((steps, *problem.p0[k].shape)) for k in problem.keys}


def flat(tree: dict[str, Any], problem: Problem = VECTORS) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(tree[k])) for k in problem.keys])


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
    """torch's scheduler ``name``; members of SequentialLR / ChainedScheduler given as
    ``(name, kwargs)`` pairs are built on ``opt`` in order, as a torch user would."""
    sched = torch.optim.lr_scheduler
    if name in ("SequentialLR", "ChainedScheduler"):
        members = [torch_scheduler(opt, n, kw) for n, kw in kwargs["schedulers"]]
        rest = {k: v for k, v in kwargs.items() if k != "schedulers"}
        if name == "ChainedScheduler":
            return sched.ChainedScheduler(members, **rest)
        return sched.SequentialLR(opt, members, **rest)
    if name == "SWALR":
        return torch.optim.swa_utils.SWALR(opt, **kwargs)
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
    problem: Problem = VECTORS,
    set_lr: dict[int, float] | None = None,
    state_key: str | None = None,
) -> dict[str, np.ndarray]:
    """torch's trajectory (params after each step), the lr and momentum/beta1 each step used,
    the lr ``param_groups[0]`` shows after each ``scheduler.step()`` (``lr_after``), (for
    ReduceLROnPlateau) the scheduler's bookkeeping after each step, and ``optimizer.state[p]
    [state_key]`` after each step when asked.  ``set_lr[t] = x``: ``param_groups[0]["lr"] = x``
    just before step ``t``."""
    out: dict[str, list] = {
        "params": [], "lr": [], "lr_after": [], "momentum": [], "plateau": [], "state": []
    }  # fmt: skip
    keys = problem.keys
    with torch_float64(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        nz = [torch.tensor(v) for v in noise(steps, seed, problem=problem).values()]
        ps = [torch.tensor(problem.p0[k], requires_grad=True) for k in keys]
        opt = getattr(torch.optim, name)(ps, **kwargs)
        sched = None if scheduler is None else torch_scheduler(opt, *scheduler)
        plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        w, c = (
            [torch.tensor(problem.w[k]) for k in keys],
            [torch.tensor(problem.c[k]) for k in keys],
        )
        for t in range(steps):
            if lr_fn is not None:
                opt.param_groups[0]["lr"] = float(lr_fn(t))
            if set_lr and t in set_lr:
                opt.param_groups[0]["lr"] = float(set_lr[t])
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
            out["lr_after"].append(float(opt.param_groups[0]["lr"]))
            out["params"].append(torch.cat([p.detach().ravel() for p in ps]).numpy().copy())
            if state_key is not None:
                got = [opt.state[p][state_key].detach().ravel() for p in ps]
                out["state"].append(torch.cat(got).numpy().copy())
    return {k: np.asarray(v) for k, v in out.items()}


# --- gradtx side ---------------------------------------------------------------------------------


def _loss_and_grad(p, n, problem: Problem = VECTORS):
    w, c = problem.w, problem.c
    loss = sum(
        jnp.sum(0.5 * w[k] * (p[k] - c[k]) ** 2 + 0.1 * jnp.cos(3 * p[k]) + n[k] * p[k])
        for k in problem.keys
    )
    g = {k: w[k] * (p[k] - c[k]) - 0.3 * jnp.sin(3 * p[k]) + n[k] for k in problem.keys}
    return loss, g


def run_gradtx(
    txs: list,
    steps: int,
    seed: int = 0,
    with_value: bool = False,
    record: Callable | None = None,
    problem: Problem = VECTORS,
    set_lr: dict[int, float] | None = None,
) -> list[tuple[np.ndarray, Any]]:
    """The trajectories of several transformations on the same gradients, in one jitted scan
    (one compilation for the lot); ``record(state)`` is stacked per step when given;
    ``set_lr[t] = x``: ``tree_set(state, learning_rate=x)`` just before step ``t``."""
    keys = problem.keys
    p0 = {k: jnp.asarray(problem.p0[k]) for k in keys}
    edits = sorted((set_lr or {}).items())

    def step(tx, p, s, n, t):
        for when, value in edits:
            current = tree_get(s, "learning_rate")
            s = tree_set(s, learning_rate=jnp.where(t == when, value, current))
        loss, g = _loss_and_grad(p, n, problem)
        u, s = tx.update(g, s, p, **({"value": loss} if with_value else {}))
        p = apply_updates(p, u)
        return (p, s), (jnp.concatenate([jnp.ravel(p[k]) for k in keys]), record and record(s))

    @jax.jit
    def go(nz):
        def body(carry, xs):
            n, t = xs
            moved = [step(tx, p, s, n, t) for tx, (p, s) in zip(txs, carry, strict=True)]
            return [m[0] for m in moved], [m[1] for m in moved]

        return jax.lax.scan(body, [(p0, tx.init(p0)) for tx in txs], (nz, jnp.arange(steps)))[1]

    out = go({k: jnp.asarray(v) for k, v in noise(steps, seed, problem=problem).items()})
    return [(np.asarray(traj), rec) for traj, rec in out]


def trajectory_error(ours: np.ndarray, ref: np.ndarray, problem: Problem = VECTORS) -> float:
    moved = np.max(np.abs(ref - flat(problem.p0, problem)), axis=1)
    assert np.all(moved > 0), "reference did not move"
    return float(np.max(np.max(np.abs(ours - ref), axis=1) / moved))


def sequence_error(ours: Any, ref: np.ndarray) -> float:
    """Worst elementwise relative error, with a floor of 1e-12 of the largest value (for
    sequences that touch 0)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    floor = 1e-12 * np.max(np.abs(ref))
    return float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), floor)))
