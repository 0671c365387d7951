"""Muon step time: gradtx.contrib.muon vs optax.contrib.muon on a transformer-shaped tree.

The tree: an embedding (vocab x d), ``layers`` blocks of an MLP pair ``(d, 4d)`` / ``(4d, d)``,
an attention projection ``(d, d)`` and two norm scales ``(d,)``, and a final norm; float32.
Every 2-D leaf is a Muon matrix (optax's default rule, the embedding included), the vectors go to
AdamW.  Each library's step ``(params, state, grads) -> (params, state)`` is jitted with params
and state donated and timed alternately (A, B, A, B, ...), so drifts in machine load hit both.

Reported: compile time, median ms per step and the gradtx/optax ratio, the state's bytes (from
``jax.eval_shape``), and, for the Newton–Schulz part alone, same-shaped matrices batched into one
stack (gradtx's default) against one leaf at a time.

    python benchmarks/bench_muon.py                   # d=256, 4 layers, 15 reps (~2 min, 2 cores)
    python benchmarks/bench_muon.py --d 128 --reps 5  # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import optax.contrib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _paired import compile_seconds, jitted_step, paired_times, state_bytes, transformer_tree

import gradtx
from gradtx.optimizers.orthogonalize import _layout, _orthogonalize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()

    params = transformer_tree(args.d, args.layers, args.vocab)
    grads = jax.tree.map(lambda x: x * 0.5 + 0.01, params)
    n = sum(x.size for x in jax.tree.leaves(params))
    leaves = len(jax.tree.leaves(params))
    print(f"tree: d={args.d}, {args.layers} layers, vocab {args.vocab}: {n / 1e6:.2f}M params, "
          f"{leaves} leaves, float32")  # fmt: skip

    txs = {"gradtx": gradtx.contrib.muon(0.02), "optax": optax.contrib.muon(0.02)}
    runs, rows = {}, []
    for name, tx in txs.items():
        p = jax.tree.map(jnp.copy, params)
        s = tx.init(p)
        compiled, seconds = compile_seconds(jitted_step(tx), p, s, grads)
        runs[name] = (compiled, p, s, grads)
        rows.append((name, seconds, state_bytes(tx, params)))
    for name, (fn, p, s, g) in runs.items():  # one warm-up step each
        p, s = fn(p, s, g)
        runs[name] = (fn, p, s, g)
    times, final = paired_times(runs, args.reps)
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(*(jax.tree.leaves(final[k]) for k in ("gradtx", "optax")), strict=True)
    )
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print("\n| library | compile s | median ms/step | state bytes |")
    print("|---|---|---|---|")
    for name, seconds, nbytes in rows:
        print(f"| {name} | {seconds:.2f} | {med[name]:.1f} | {nbytes:,} |")
    print(f"\ngradtx/optax step-time ratio: {med['gradtx'] / med['optax']:.3f} "
          f"({args.reps} paired reps); same params: max |gradtx - optax| = {diff:.1e}")  # fmt: skip

    # the Newton-Schulz part alone (not donated): same-shaped matrices in one stack, or one leaf
    # at a time
    leaves = [x for x in jax.tree.leaves(params) if x.ndim == 2]
    lays = [_layout("bench", str(i), x.shape, None) for i, x in enumerate(leaves)]
    rows5 = ((3.4445, -4.7750, 2.0315),) * 5

    def batched(xs):
        return _orthogonalize(xs, lays, rows5, "frobenius", 1e-8, "add", None)

    def one_by_one(xs):
        return [_orthogonalize([x], [lay], rows5, "frobenius", 1e-8, "add", None)[0]
                for x, lay in zip(xs, lays, strict=True)]  # fmt: skip

    fns = {}
    print("\n| Newton-Schulz of the matrices | compile s | median ms |")
    print("|---|---|---|")
    for name, fn in (("batched by shape", batched), ("one leaf at a time", one_by_one)):
        fns[name], seconds = compile_seconds(jax.jit(fn), leaves)
        fns[name](leaves)
        rows.append((name, seconds))
    ns_times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(leaves))
            ns_times[name].append(time.perf_counter() - t0)
    for name, seconds in rows[2:]:
        print(f"| {name} | {seconds:.2f} | {statistics.median(ns_times[name]) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
