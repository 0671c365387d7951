"""Where an optimizer step's time goes on XLA:CPU: the pieces of the step timed one by one.

    python benchmarks/step_profile.py            # 16M float32 params, ~1 minute

1. Adam on one large leaf compiles (in gradtx and optax alike) to three loop fusions:
   ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2`` and ``p' = p - lr m'/(sqrt(v') + eps)``
   (bias corrections folded into scalars).  Each is timed alone as a donated jitted program,
   next to a triad ``a + s c`` (the bandwidth the roofline uses) and to the whole step.
2. The global norm of clip_by_global_norm: the same 16M floats as one leaf and as the ~200-leaf
   transformer tree, next to the clip+adamw and adamw steps on that tree.

Medians of 20 calls, 3 rounds; GB/s counts each array read or written once.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import optax
from bench import make_tree, tree_transformer, triad_bandwidth

import gradtx
from gradtx import kit

N = 16 * 2**20


def _median_ms(call: Callable[[], Any], n: int = 20) -> float:
    jax.block_until_ready(call())
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def donated_loop(fn: Callable, args: list[jax.Array]) -> Callable[[], jax.Array]:
    """Calls ``fn`` with its first argument donated and fed back, as a training loop would."""
    f = jax.jit(fn, donate_argnums=0)
    box = [jax.tree.map(jnp.copy, args[0])]

    def call() -> jax.Array:
        box[0] = f(box[0], *args[1:])
        return box[0]

    return call


def step_loop(tx: Any, lib: Any, params: Any, grads: Any) -> Callable[[], Any]:
    """A library's whole step, params and state donated (as ``bench.make_step``)."""

    def step(params_state: tuple[Any, Any], grads: Any) -> tuple[Any, Any]:
        params, state = params_state
        updates, state = tx.update(grads, state, params)
        return lib.apply_updates(params, updates), state

    return donated_loop(step, [(params, tx.init(params)), grads])


def adam_fusions() -> None:
    key = jax.random.PRNGKey(0)
    p, m, g = (0.01 * jax.random.normal(jax.random.fold_in(key, i), (N,)) for i in range(3))
    v = jnp.abs(m) + 1e-3
    b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
    pieces = {
        "fusion 1: `m' = b1 m + (1-b1) g`": (lambda m, g: b1 * m + (1 - b1) * g, [m, g], 3),
        "fusion 2: `v' = b2 v + (1-b2) g^2`": (lambda v, g: b2 * v + (1 - b2) * g * g, [v, g], 3),
        "fusion 3: `p' = p - lr m'/(sqrt(v')+eps)`": (
            lambda p, m, v: p - lr * (m / 0.1) / (jnp.sqrt(v / 1e-3) + eps),
            [p, m, v],
            4,
        ),
        "fusion 3 without sqrt and divide: `p - lr m' v'`": (
            lambda p, m, v: p - lr * m * v,
            [p, m, v],
            4,
        ),
    }
    f_m, f_v, f_p = (fn for fn, _, _ in list(pieces.values())[:3])

    def three(pmv: tuple[jax.Array, ...], g: jax.Array) -> tuple[jax.Array, ...]:
        p, m, v = pmv
        m, v = f_m(m, g), f_v(v, g)
        return f_p(p, m, v), m, v

    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(3):
        gbs = triad_bandwidth(N)  # bench's roofline bandwidth: 3 arrays per call
        rows.setdefault("triad `a + s*c` (bench.triad_bandwidth)", []).append(
            (12 * N / gbs / 1e6, gbs)
        )
        for name, (fn, args, arrays) in pieces.items():
            ms = _median_ms(donated_loop(fn, args))
            rows.setdefault(name, []).append((ms, arrays * N * 4 / ms / 1e6))
        ms = _median_ms(donated_loop(three, [(p, m, v), g]))
        one_program = "fusions 1-3 in one program (plain jnp)"
        rows.setdefault(one_program, []).append((ms, 7 * N * 4 / ms / 1e6))
        for lib in (gradtx, optax):
            ms = _median_ms(step_loop(lib.adam(1e-3), lib, {"w": p}, {"w": g}))
            rows.setdefault(f"whole adam step, {lib.__name__}", []).append(
                (ms, 7 * N * 4 / ms / 1e6)
            )
    print("| piece (16M float32, donated) | ms | GB/s |\n|---|---|---|")
    for name, r in rows.items():
        ms, gbs = (statistics.median(x[i] for x in r) for i in (0, 1))
        print(f"| {name} | {ms:.2f} | {gbs:.1f} |")


def global_norm() -> None:
    shapes = tree_transformer(N)
    tree = make_tree(shapes, jnp.float32, 1)
    one = {"w": jnp.concatenate([x.ravel() for x in jax.tree.leaves(tree)])}
    params = make_tree(shapes, jnp.float32, 0)
    norm = jax.jit(kit.global_norm)
    rows: dict[str, list[float]] = {}

    def adamw(lib: Any) -> Any:
        return lib.adamw(1e-3, weight_decay=1e-2)

    def clip_adamw(lib: Any) -> Any:
        return lib.chain(lib.clip_by_global_norm(1.0), adamw(lib))

    for _ in range(3):
        rows.setdefault(f"global norm, one leaf of {one['w'].size}", []).append(
            _median_ms(lambda: norm(one))
        )
        rows.setdefault(f"global norm, {len(shapes)} transformer leaves", []).append(
            _median_ms(lambda: norm(tree))
        )
        for lib in (gradtx, optax):
            for name, make in (("adamw", adamw), ("clip+adamw", clip_adamw)):
                ms = _median_ms(step_loop(make(lib), lib, params, tree))
                rows.setdefault(f"{name} step, transformer tree, {lib.__name__}", []).append(ms)
    print("\n| piece | ms |\n|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {statistics.median(r):.2f} |")


if __name__ == "__main__":
    adam_fusions()
    global_norm()
