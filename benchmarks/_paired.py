"""What the matrix-optimizer benchmarks share: the transformer-shaped tree, the donated jitted
step, compile time, the state's bytes and the paired (alternating) timing loop.

Used by ``bench_muon.py`` and ``bench_matrix.py``; ``bench.py`` has its own harness (many builds
in rotated orders, for trees of thousands of tiny leaves).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def transformer_tree(d: int, layers: int, vocab: int) -> dict[str, Any]:
    """An embedding ``(vocab, d)``, per layer an attention projection ``(d, d)``, an MLP pair
    ``(d, 4d)`` / ``(4d, d)`` and two norm scales ``(d,)``, and a final norm; float32, drawn
    from ``N(0, 0.02^2)`` with seed 0."""
    rng = np.random.default_rng(0)

    def leaf(*shape):
        return jnp.asarray(rng.standard_normal(shape) * 0.02, jnp.float32)

    tree: dict[str, Any] = {"embed": leaf(vocab, d), "final_norm": leaf(d)}
    for i in range(layers):
        tree[f"layer{i}"] = {
            "attn_out": leaf(d, d), "mlp_in": leaf(d, 4 * d), "mlp_out": leaf(4 * d, d),
            "norm1": leaf(d), "norm2": leaf(d),
        }  # fmt: skip
    return tree


def jitted_step(tx: Any) -> Any:
    """``(params, state, grads) -> (params, state)``, jitted with params and state donated."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def compile_seconds(fn: Any, *args: Any) -> tuple[Any, float]:
    """The compiled ``fn`` for ``args`` and the seconds its lowering and compiling took."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def tree_nbytes(tree: Any) -> int:
    """Bytes of every array (or shape-dtype struct) in ``tree``."""
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def state_bytes(tx: Any, params: Any) -> int:
    """Bytes of ``tx``'s state for ``params`` (from ``jax.eval_shape``: nothing allocated)."""
    return tree_nbytes(jax.eval_shape(tx.init, params))


def paired_times(
    runs: dict[str, tuple], reps: int, *, window: int | dict[str, int] = 1, swap: bool = False
) -> tuple[dict[str, list[float]], dict]:
    """Alternating timed steps: each rep runs ``window`` consecutive steps (``window[name]``
    for a dict) of every entry of ``runs[name] = (compiled, params, state, grads)`` in turn (in
    reverse order on odd reps with ``swap``), so drifts in machine load hit all of them.
    Returns the seconds of every step, ``reps * window`` per name in the order they ran (each
    step waited for on its own), and the final params of each."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    carry = {name: (p, s) for name, (_, p, s, _) in runs.items()}
    names = list(runs)
    for rep in range(reps):
        for name in names[::-1] if swap and rep % 2 else names:
            fn, grads = runs[name][0], runs[name][3]
            p, s = carry[name]
            for _ in range(window[name] if isinstance(window, dict) else window):
                t0 = time.perf_counter()
                p, s = fn(p, s, grads)
                jax.block_until_ready(p)  # XLA:CPU readies all outputs of a call together
                times[name].append(time.perf_counter() - t0)
            carry[name] = (p, s)
    return times, {name: p for name, (p, _) in carry.items()}
