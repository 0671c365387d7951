"""Kronecker-factored optimizers against Adam on a transformer-shaped tree: step time with and
without amortisation, the refresh step against the others, state memory and compile time.

The tree is ``bench_muon``'s (``_paired.transformer_tree``: an embedding ``(vocab, d)``, per
layer ``(d, d)``, ``(d, 4d)``, ``(4d, d)`` matrices and two ``(d,)`` norm scales, a final norm;
float32).  The gradients are fixed, ``0.5 p + 0.01`` of the starting params.  Configurations
(``--configs``, comma-separated; default all):

- ``adam``: ``gradtx.adam(1e-3)``, the baseline of every ratio;
- ``shampoo`` / ``shampoo_k10``: ``gradtx.shampoo(1e-3, block_size=128, graft_type="adam",
  start_preconditioning_step=1)`` with the inverse roots recomputed every step
  (``preconditioning_compute_steps=1``) or every 10th, by the authors' coupled Newton iteration
  (the default) or, ``shampoo_eigh_k10``, from ``eigh`` (``root_method="eigh"``);
- ``soap`` / ``soap_k10``: ``gradtx.soap(1e-3)`` with the eigenbases refreshed every step
  (``precondition_frequency=1``) or every 10th (the paper's default); no blocking (the
  authors' layout: a ``4d x 4d`` factor per side of length ``4d``);
- ``psgd`` / ``psgd_p0.1``: ``gradtx.psgd_kron(1e-3, key=0)`` with the factors refitted at
  every step (``preconditioner_update_probability=1.0``) or with probability 0.1;
- ``muon``: ``gradtx.contrib.muon(0.02)``, for context (no refresh: Newton-Schulz every step).

Measured per configuration:

- compile time: lowering and compiling the jitted step ``(params, state, grads) -> (params,
  state)`` with params and state donated;
- step time: after one warm-up step, each rep runs a *window* of consecutive steps of every
  configuration in turn, the order reversed on odd reps (paired: load drifts hit all).  A
  window is ``--window`` steps (default 10, so an every-10th refresh falls exactly once in
  each; rounded up to whole periods), or one step for a configuration that refreshes at every
  step (its steps are all alike).  Every step is timed on its own (waiting for the params:
  XLA:CPU readies all outputs of a call together).  "median ms/step" is the median over
  reps of a whole window's mean step, "x Adam" the median over reps of that mean's ratio to
  Adam's in the same rep; "refresh-step ms" and "other-step ms" are medians over the single
  steps that did or did not recompute the preconditioner (which steps did is read from the
  schedule, ``count % k == 0``; for PSGD the update draws are replayed from the state's key as
  ``psgd.py`` makes them, so a window of ``psgd_p0.1`` holds 0, 1, 2, ... refits at random);
- state memory: bytes of ``jax.eval_shape(tx.init, params)`` and their ratio to the params';
- sanity: every configuration moved the params, and they are finite.

Commands:

    python benchmarks/bench_matrix.py --json benchmarks/results_matrix.json  # ~1 min, 2 cores
    python benchmarks/bench_matrix.py --d 128 --configs adam,shampoo_k10,soap_k10  # a quick look

Figures and how to read them: ``benchmarks/RESULTS.md``.  (Before ``kronecker.grouped`` ordered
the stacks' batched LAPACK calls, 4 of 6 runs here deadlocked inside a step; see RESULTS.md.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _paired import (
    compile_seconds,
    jitted_step,
    paired_times,
    state_bytes,
    transformer_tree,
    tree_nbytes,
)

import gradtx


@dataclass(frozen=True)
class Config:
    """An optimizer to time; ``every``: its refresh period in steps, or ``probability``: its
    chance of a refresh per step (PSGD); neither: no refresh."""

    make: Callable[[], Any]
    every: int | None = None
    probability: float | None = None


def _shampoo(k: int, root_method: str = "newton") -> Config:
    return Config(
        lambda: gradtx.shampoo(
            1e-3, block_size=128, graft_type="adam", start_preconditioning_step=1,
            preconditioning_compute_steps=k, root_method=root_method,
        ),
        every=k,
    )  # fmt: skip


def _soap(k: int) -> Config:
    return Config(lambda: gradtx.soap(1e-3, precondition_frequency=k), every=k)


def _psgd(p: float) -> Config:
    make = lambda: gradtx.psgd_kron(1e-3, preconditioner_update_probability=p, key=0)
    return Config(make, probability=p)


CONFIGS: dict[str, Config] = {
    "adam": Config(lambda: gradtx.adam(1e-3)),
    "shampoo": _shampoo(1),
    "shampoo_k10": _shampoo(10),
    "shampoo_eigh_k10": _shampoo(10, "eigh"),
    "soap": _soap(1),
    "soap_k10": _soap(10),
    "psgd": _psgd(1.0),
    "psgd_p0.1": _psgd(0.1),
    "muon": Config(lambda: gradtx.contrib.muon(0.02)),
}


def psgd_draws(key: Any, probability: float, n: int) -> list[bool]:
    """Whether each of the next ``n`` PSGD steps refits its factors, replayed from the state's
    raw key as ``scale_by_psgd_kron`` draws it: ``key, draw = split(key)``, ``k_update, _ =
    split(draw)``, refit when ``uniform(k_update) < probability`` (float32)."""
    out = []
    key = jnp.asarray(key)
    for _ in range(n):
        key, draw = jax.random.split(key)
        k_update, _ = jax.random.split(draw)
        out.append(bool(jax.random.uniform(k_update, (), jnp.float32) < probability))
    return out


def window_of(cfg: Config, window: int) -> int:
    """Steps per timed window: 1 where every step refreshes (all steps are alike), else
    ``window`` rounded up to a whole number of refresh periods."""
    if cfg.every == 1 or cfg.probability == 1.0:
        return 1
    return -(-window // cfg.every) * cfg.every if cfg.every else window


def refresh_flags(cfg: Config, state: Any, first: int, n: int) -> list[bool]:
    """Which of the steps with counts ``first .. first + n - 1`` recompute the preconditioner
    (``state``: the state before step 0)."""
    if cfg.every is not None:
        return [c % cfg.every == 0 for c in range(first, first + n)]
    if cfg.probability is not None:
        key = gradtx.tree_get(state, "key")
        return psgd_draws(key, cfg.probability, first + n)[first:]
    return [False] * n


def _median_ms(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) * 1e3 if xs else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    params = transformer_tree(args.d, args.layers, args.vocab)
    grads = jax.tree.map(lambda x: x * 0.5 + 0.01, params)
    param_bytes = tree_nbytes(params)
    names = args.configs
    out: dict[str, Any] = {
        "tree": {"d": args.d, "layers": args.layers, "vocab": args.vocab,
                 "params": sum(x.size for x in jax.tree.leaves(params)),
                 "leaves": len(jax.tree.leaves(params)), "bytes": param_bytes},
        "reps": args.reps, "window": args.window, "load_before": os.getloadavg(),
        "configs": {},
    }  # fmt: skip
    runs, flags = {}, {}
    windows = {name: window_of(CONFIGS[name], args.window) for name in names}
    for name in names:
        cfg, tx = CONFIGS[name], CONFIGS[name].make()
        p = jax.tree.map(jnp.copy, params)
        s = tx.init(p)
        flags[name] = refresh_flags(cfg, s, 1, args.reps * windows[name])
        compiled, seconds = compile_seconds(jitted_step(tx), p, s, grads)
        p, s = compiled(p, s, grads)  # the warm-up step (count 0; SOAP's first basis)
        jax.block_until_ready((p, s))
        runs[name] = (compiled, p, s, grads)
        nbytes = state_bytes(tx, params)
        out["configs"][name] = {"compile_s": seconds, "state_bytes": nbytes,
                                "state_over_params": nbytes / param_bytes}  # fmt: skip
    times, final = paired_times(runs, args.reps, window=windows, swap=True)
    out["load_after"] = os.getloadavg()

    means = {}  # per rep, the mean step of the window
    for name, t in times.items():
        w = windows[name]
        means[name] = [sum(t[i : i + w]) / w for i in range(0, len(t), w)]
    for name in names:
        row, t, f = out["configs"][name], times[name], flags[name]
        row["window"], row["window_ms"] = windows[name], [x * 1e3 for x in means[name]]
        row["ms_per_step"] = statistics.median(means[name]) * 1e3
        if "adam" in means:
            ratios = [a / b for a, b in zip(means[name], means["adam"], strict=True)]
            row["x_adam"] = statistics.median(ratios)
        row["refresh_ms"] = _median_ms([x for x, r in zip(t, f, strict=True) if r])
        row["other_ms"] = _median_ms([x for x, r in zip(t, f, strict=True) if not r])
        row["refresh_steps"], row["other_steps"] = sum(f), len(f) - sum(f)
        moved = [np.asarray(a - b) for a, b in zip(
            jax.tree.leaves(final[name]), jax.tree.leaves(params), strict=True)]  # fmt: skip
        row["max_abs_change"] = max(float(np.max(np.abs(x))) for x in moved)
        row["finite"] = all(bool(np.all(np.isfinite(x))) for x in jax.tree.leaves(final[name]))
        row["moved"] = row["finite"] and all(float(np.max(np.abs(x))) > 0 for x in moved)
    return out


def table(res: dict[str, Any]) -> str:
    def num(x: float | None, fmt: str) -> str:
        return "–" if x is None else format(x, fmt)

    lines = [
        "| config | compile s | median ms/step | x Adam | refresh-step ms | other-step ms "
        "| state MB | state/params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["configs"].items():
        lines.append(
            f"| {name} | {r['compile_s']:.2f} | {r['ms_per_step']:.2f} | "
            f"{num(r.get('x_adam'), '.2f')} | {num(r['refresh_ms'], '.2f')} | "
            f"{num(r['other_ms'], '.2f')} | {r['state_bytes'] / 1e6:.2f} | "
            f"{r['state_over_params']:.2f} |"
        )
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3, help="timed windows per configuration")
    ap.add_argument("--window", type=int, default=10, help="consecutive steps per timed window")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"of {', '.join(CONFIGS)}")
    ap.add_argument("--json", type=Path, default=None, help="save the figures here")
    args = ap.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown or not args.configs:
        ap.error(f"--configs: unknown {unknown or 'none given'}; allowed: {', '.join(CONFIGS)}")
    if args.reps < 1 or args.window < 1:
        ap.error("--reps and --window must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    res = run(args)
    tree = res["tree"]
    print(f"tree: d={args.d}, {args.layers} layers, vocab {args.vocab}: "
          f"{tree['params'] / 1e6:.2f}M params ({tree['bytes'] / 1e6:.1f} MB), {tree['leaves']} "
          f"leaves, float32; {args.reps} reps x {args.window} steps; load average "
          f"{res['load_before'][0]:.1f} -> {res['load_after'][0]:.1f}\n")  # fmt: skip
    print(table(res))
    bad = [n for n, r in res["configs"].items() if not r["moved"]]
    changes = ", ".join(f"{n} {r['max_abs_change']:.1e}" for n, r in res["configs"].items())
    print(f"\nsanity: params finite and moved: {'all' if not bad else 'NOT ' + ', '.join(bad)} "
          f"(max |p - p0|: {changes})")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=1))
    if bad:
        raise SystemExit(f"configurations that did not move the params: {bad}")
    return res


if __name__ == "__main__":
    main()
