"""Step-time benchmark: gradtx vs optax (and torch.optim, foreach and fused) on the same cases.

Each case builds one jitted step ``(params, state, grads) -> (params, state)`` per library, with
params and state donated, and times them alternately in one process (A, B, A, B, ...), so drifts in
machine load hit both.  Reported: median ms per step for each, the gradtx/optax ratio, and the
memory-roofline estimate (bytes a step must move / measured triad bandwidth).

    python benchmarks/bench.py            # full run (~30 min on 2 cores)
    python benchmarks/bench.py --quick    # under a minute: adam and clip+adamw, 1M elements
    python benchmarks/bench.py --cases adam:big,adam:tiny --reps 15
    python benchmarks/bench.py --long-tail --trees big,transformer   # adafactor, lamb, adopt
    python benchmarks/bench.py --cases adam:big --torch               # + torch foreach and fused

Results go to stdout as markdown tables (and to --json if given): step times, compile times, XLA's
temp memory, and the optimizer state's size (from ``jax.eval_shape(tx.init, params)``, so nothing
is allocated) against optax's and against the params'.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gradtx

Tree = Any

# --- trees ---------------------------------------------------------------------------------------


def tree_big(n: int) -> list[tuple[int, ...]]:
    return [(n,)]


def tree_transformer(n: int) -> list[tuple[int, ...]]:
    """~200 leaves shaped like a small transformer (embeddings, qkv/out/mlp kernels, biases,
    norm scales), scaled so the total is about ``n`` elements."""
    d = 64  # the smallest width whose tree reaches n: 320 for 16M (21M elements), 64 for 1M
    while True:
        shapes: list[tuple[int, ...]] = [(4096, d)]
        for _ in range(16):
            shapes += [(d, 3 * d), (3 * d,), (d, d), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
            shapes += [(d,), (d,), (d,), (d,)]
        if sum(int(np.prod(s)) for s in shapes) >= n or d > 4096:
            return shapes
        d += 64


def tree_tiny(n_leaves: int) -> list[tuple[int, ...]]:
    return [(64,)] * n_leaves


def make_tree(shapes: list[tuple[int, ...]], dtype: Any, seed: int = 0) -> dict[str, jax.Array]:
    key = jax.random.PRNGKey(seed)
    keys = jax.random.split(key, len(shapes))
    return {
        f"p{i:05d}": (0.01 * jax.random.normal(k, s, jnp.float32)).astype(dtype)
        for i, (k, s) in enumerate(zip(keys, shapes, strict=True))
    }


# --- optimizers ----------------------------------------------------------------------------------

OPTS: dict[str, Callable[[Any], Any]] = {
    # name -> factory(lib), for lib in (gradtx, optax)
    "adam": lambda lib: lib.adam(1e-3),
    "adamw": lambda lib: lib.adamw(1e-3, weight_decay=1e-2),
    "sgd_nesterov": lambda lib: lib.sgd(1e-2, momentum=0.9, nesterov=True),
    "rmsprop": lambda lib: lib.rmsprop(1e-3),
    "clip_adamw": lambda lib: lib.chain(
        lib.clip_by_global_norm(1.0), lib.adamw(1e-3, weight_decay=1e-2)
    ),
    "adam_bf16": lambda lib: lib.adam(1e-3, mu_dtype=jnp.float32),
    # float32 params, first moment stored in bfloat16 (optax has no nu_dtype): memory table only
    "adam_mu_bf16": lambda lib: lib.adam(1e-3, mu_dtype=jnp.bfloat16),
    # the long tail (--long-tail), each at its defaults; both libraries spell them alike
    "adafactor": lambda lib: lib.adafactor(1e-3),
    "lamb": lambda lib: lib.lamb(1e-3),
    "lars": lambda lib: lib.lars(1e-3),
    "adan": lambda lib: lib.adan(1e-3),
    "novograd": lambda lib: lib.novograd(1e-3),
    "sm3": lambda lib: lib.sm3(1e-3),
    "ademamix": lambda lib: lib.contrib.ademamix(1e-3),
    "adopt": lambda lib: lib.contrib.adopt(1e-3),
}
PARAM_DTYPE = {"adam_bf16": jnp.bfloat16}  # default float32
LONG_TAIL = ("adafactor", "lamb", "lars", "adan", "novograd", "sm3", "ademamix", "adopt")
"""Timed only with ``--long-tail`` (or named in ``--cases``), and without the ``flatten`` variant:
per-leaf rules (norms, factoring) are not element-wise, so packing leaves would change them."""
LONG_TAIL_DEFAULT = ("adafactor", "lamb", "adopt")
"""What a bare ``--long-tail`` times: factored second moments, a per-leaf trust ratio, and one of
optax.contrib's methods (``--long-tail all`` times every one of ``LONG_TAIL``)."""


def tree_bytes(tree: Tree) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) in ``tree``."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def param_shapes(shapes: list[tuple[int, ...]], dtype: Any) -> Tree:
    """The params ``make_tree`` would build (same keys), as shapes only."""
    return {f"p{i:05d}": jax.ShapeDtypeStruct(s, dtype) for i, s in enumerate(shapes)}


def state_bytes(lib: Any, opt: str, shapes: list[tuple[int, ...]]) -> int:
    """Bytes of ``lib``'s optimizer state for these params (``jax.eval_shape`` of ``init``:
    nothing is allocated, so the full-size trees cost nothing to measure)."""
    params = param_shapes(shapes, PARAM_DTYPE.get(opt, jnp.float32))
    return tree_bytes(jax.eval_shape(OPTS[opt](lib).init, params))


def step_bytes(opt: str, shapes: list[tuple[int, ...]]) -> int:
    """Bytes one step must move: read p, g and the state; write p and the state (at the dtypes
    gradtx stores them in).  Clipping adds one more read of g (the norm).  For the per-leaf norm
    rules of the long tail (lamb, lars, novograd, adafactor's clipping) this one-pass count is a
    lower bound: the update's norm is known only after a first pass over the leaf."""
    p_bytes = tree_bytes(param_shapes(shapes, PARAM_DTYPE.get(opt, jnp.float32)))
    s_bytes = state_bytes(gradtx, opt, shapes)
    return (4 if opt.startswith("clip") else 3) * p_bytes + 2 * s_bytes


def make_step(tx: Any, apply: Callable[[Tree, Tree], Tree]) -> Callable:
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


@dataclass
class Timed:
    name: str
    step: Callable
    params: Tree
    state: Tree
    grads: Tree
    samples: list[float]

    def run(self, n: int) -> None:
        p, s = self.params, self.state
        jax.block_until_ready((p, s))
        t0 = time.perf_counter()
        for _ in range(n):
            p, s = self.step(p, s, self.grads)
        jax.block_until_ready((p, s))
        self.samples.append((time.perf_counter() - t0) / n * 1e3)
        self.params, self.state = p, s


def build(
    lib: Any,
    opt: str,
    shapes: list[tuple[int, ...]],
    dtype: Any,
    wrap: Callable = lambda t: t,
    packed: bool = False,
) -> Timed:
    """One library's jitted step, compiled and warmed.  ``packed``: params and grads kept in
    ``gradtx.ravel``'s layout, as a training loop that unravels inside its loss would hold them."""
    tx = wrap(OPTS[opt](lib))
    params = make_tree(shapes, dtype, 0)
    grads = make_tree(shapes, dtype, 1)
    if packed:
        params, grads = gradtx.ravel(params)[0], gradtx.ravel(grads)[0]
    state = jax.jit(tx.init)(params)
    step = make_step(tx, lib.apply_updates)
    p, s = step(params, state, grads)  # compile + warm
    jax.block_until_ready((p, s))
    return Timed(lib.__name__, step, p, s, grads, [])


def build_floor(shapes: list[tuple[int, ...]], dtype: Any) -> Timed:
    """The cheapest possible step over the same leaves, ``p - 1e-3 * g`` with no state: what
    passing the params in and out of ``jit`` costs by itself."""
    params, grads = make_tree(shapes, dtype, 0), make_tree(shapes, dtype, 1)
    step = jax.jit(
        lambda p, s, g: (jax.tree.map(lambda a, b: a - 1e-3 * b, p, g), s), donate_argnums=(0,)
    )
    p, s = step(params, (), grads)
    jax.block_until_ready(p)
    return Timed("floor", step, p, s, grads, [])


def paired(
    makers: dict[str, Callable[[], Timed | TorchTimed]],
    reps: int,
    builds: int = 2,
    seconds: float = 0.5,
) -> dict[str, tuple[float, float]]:
    """Times every variant against ``makers["optax"]``: ``{name: (median ms, median ratio)}``.

    Where buffers land in memory matters as much as the code on this machine: identical steps over
    2,000 small leaves, built one after another in one process, run anywhere between 10 and 19 ms
    per step, whichever library built them (``O0:11.8 G1:13.2 O2:13.3 ...``; ``G0:10.9 O1:18.6
    G2:10.7 ...``).  So every variant is built ``builds`` times, each set in a rotated order
    (reversed every other set) so that no variant is always built first; each round runs one set,
    in an order reversed every other round.  Ratios are taken within a round, and their median is
    reported.
    """
    names = list(makers)
    sets = []
    for b in range(builds):
        order = names[b % len(names) :] + names[: b % len(names)]
        sets.append({k: makers[k]() for k in (order[::-1] if b % 2 else order)})
    n = steps_per_sample(sets[0]["optax"], seconds)
    ratios: dict[str, list[float]] = {k: [] for k in names}
    for r in range(max(reps, builds)):
        timed = sets[r % builds]
        order = names if (r // builds) % 2 == 0 else names[::-1]
        for k in order:
            timed[k].run(n)
        for k in names:
            ratios[k].append(timed[k].samples[-1] / timed["optax"].samples[-1])
    return {
        k: (
            statistics.median(x for t in sets for x in t[k].samples),
            statistics.median(ratios[k]),
        )
        for k in names
    }


def steps_for(ms_per_step: float, seconds: float) -> int:
    """Steps for one timing sample to last about ``seconds`` (3 to 200)."""
    return max(3, min(200, int(seconds * 1e3 / ms_per_step)))


def steps_per_sample(t: Timed, seconds: float) -> int:
    """``steps_for`` a variant, from 3 untimed steps (not kept as a sample)."""
    t.run(3)
    return steps_for(t.samples.pop(), seconds)


# --- machine figures -----------------------------------------------------------------------------


def triad_bandwidth(n: int = 16 * 2**20, reps: int = 15) -> float:
    """STREAM-like scale-add ``a <- a + s * c`` (float32, jitted, ``a`` donated so the output
    reuses its buffer): 3 arrays moved / time, GB/s.  (Writing ``b + s * c`` into a donated but
    unused ``a`` is not aliased by XLA: a fresh buffer each call and 4x slower from page faults.)"""
    f = jax.jit(lambda a, b, c: a + 1.5 * c, donate_argnums=(0,))
    a = jnp.zeros(n, jnp.float32)
    b = jnp.ones(n, jnp.float32)
    c = jnp.ones(n, jnp.float32)
    a = f(a, b, c).block_until_ready()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a = f(a, b, c).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 3 * 4 * n / statistics.median(times) / 1e9


def compile_seconds(lib: Any, n_leaves: int, wrap: Callable = lambda t: t) -> float:
    tx = wrap(lib.adamw(1e-3))
    params = make_tree(tree_tiny(n_leaves), jnp.float32)
    state = jax.eval_shape(tx.init, params)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return lib.apply_updates(p, u), s

    t0 = time.perf_counter()
    jax.jit(step).lower(params, state, params).compile()
    return time.perf_counter() - t0


def peak_temp_bytes(lib: Any, opt: str, shapes: list[tuple[int, ...]], dtype: Any) -> int:
    """XLA's temp-buffer allocation for the donated step (what it needs beyond inputs/outputs)."""
    tx = OPTS[opt](lib)
    params = make_tree(shapes, dtype)
    state = jax.eval_shape(tx.init, params)
    step = make_step(tx, lib.apply_updates)
    mem = step.lower(params, state, params).compile().memory_analysis()
    return int(getattr(mem, "temp_size_in_bytes", -1))


# torch.optim's counterparts, same hyperparameters (torch's RMSprop ``alpha`` is optax's decay).
# ``fused=True`` runs on CPU in torch 2.13 for Adam, AdamW and SGD (RMSprop has no fused form).
# Fused SGD is left out: with nesterov it writes into ``p.grad`` (foreach does not), so steps
# repeated over the same gradients, as timed here, are no longer the same computation.
TORCH: dict[str, Callable[[Any, list, dict], Any]] = {
    "adam": lambda optim, ps, kw: optim.Adam(ps, lr=1e-3, **kw),
    "adamw": lambda optim, ps, kw: optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, **kw),
    "sgd_nesterov": lambda optim, ps, kw: optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, **kw),
    "rmsprop": lambda optim, ps, kw: optim.RMSprop(ps, lr=1e-3, alpha=0.9, **kw),
}
TORCH_FUSED = ("adam", "adamw")
TORCH_KEYS = ("torch", "torch_fused")


@dataclass
class TorchTimed:
    """A torch.optim optimizer over float32 params with fixed gradients, timed like ``Timed``
    (torch on CPU runs synchronously: a step is done when ``step()`` returns)."""

    name: str
    optimizer: Any
    samples: list[float]

    def run(self, n: int) -> None:
        t0 = time.perf_counter()
        for _ in range(n):
            self.optimizer.step()
        self.samples.append((time.perf_counter() - t0) / n * 1e3)


def build_torch(opt: str, shapes: list[tuple[int, ...]], fused: bool) -> TorchTimed:
    """torch's ``opt`` with ``fused=True`` or ``foreach=True``, its state created by one step."""
    import torch

    ps = [torch.nn.Parameter(torch.randn(s) * 0.01) for s in shapes]
    for p in ps:
        p.grad = torch.randn_like(p) * 0.01
    o = TORCH[opt](torch.optim, ps, {"fused": True} if fused else {"foreach": True})
    o.step()
    return TorchTimed("torch_fused" if fused else "torch", o, [])


def torch_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    torch.set_num_threads(2)  # the machine's two cores, as XLA uses them
    return True


def state_table(
    opts: list[str], tree_shapes: list[list[tuple[int, ...]]], names: list[str]
) -> list[dict[str, Any]]:
    """Prints (and returns) each optimizer's state size on each tree: gradtx's, optax's, and
    gradtx's as a multiple of the params' size."""
    print(
        "\n| optimizer | tree | params MB | gradtx state MB | optax state MB | gradtx/optax | "
        "gradtx state / params |\n|---|---|---|---|---|---|---|"
    )
    rows = []
    for opt in opts:
        for name, shapes in zip(names, tree_shapes, strict=True):
            p = tree_bytes(param_shapes(shapes, PARAM_DTYPE.get(opt, jnp.float32)))
            g, o = state_bytes(gradtx, opt, shapes), state_bytes(optax, opt, shapes)
            print(
                f"| {opt} | {name} | {p / 2**20:.2f} | {g / 2**20:.3f} | {o / 2**20:.3f} | "
                f"{g / o:.3f} | {g / p:.4f} |",
                flush=True,
            )
            rows.append(dict(opt=opt, tree=name, params=p, gradtx=g, optax=o))
    return rows


FLAT_MAX = 2**16  # leaves up to 64K elements are packed; larger ones stay separate

# --- driver --------------------------------------------------------------------------------------

TREES = {
    "big": lambda total: tree_big(total),
    "transformer": lambda total: tree_transformer(total),
    "tiny": lambda total: tree_tiny(2000 if total > 2**20 else 250),  # --quick: 250 leaves
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="adam and clip+adamw at 1M elements (250 tiny leaves), short samples: under a minute",
    )
    ap.add_argument("--cases", default="", help="comma list of opt:tree (default: all)")
    ap.add_argument(
        "--long-tail",
        nargs="?",
        const=",".join(LONG_TAIL_DEFAULT),
        default="",
        metavar="NAMES",
        help="time these (comma list, or 'all') instead of the core cases "
        f"(default: {','.join(LONG_TAIL_DEFAULT)}; all: {','.join(LONG_TAIL)})",
    )
    ap.add_argument("--trees", default="", help=f"comma subset of {','.join(TREES)} (default: all)")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument(
        "--builds", type=int, default=0, help="instances per variant (default 4 tiny, 2 else)"
    )
    ap.add_argument(
        "--torch",
        action="store_true",
        help="also time torch.optim, foreach and (adam, adamw) fused, paired with the others",
    )
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time table")
    ap.add_argument("--no-memory", action="store_true", help="skip the temp-memory table")
    ap.add_argument("--json", default="", help="write results as JSON here")
    args = ap.parse_args(argv)

    total = 2**20 if args.quick else 16 * 2**20
    reps = args.reps or (4 if args.quick else 12)
    seconds = 0.1 if args.quick else 0.5  # per timing sample
    trees = args.trees.split(",") if args.trees else list(TREES)
    if args.cases:
        cases = [tuple(c.split(":")) for c in args.cases.split(",")]
    elif args.long_tail:
        long_tail = LONG_TAIL if args.long_tail == "all" else args.long_tail.split(",")
        unknown = sorted(set(long_tail) - set(LONG_TAIL))
        if unknown:
            ap.error(f"--long-tail: unknown {unknown}; choose from {','.join(LONG_TAIL)}")
        cases = [(o, t) for o in long_tail for t in trees]
    elif args.quick:
        cases = [(o, t) for o in ("adam", "clip_adamw") for t in trees]
    else:
        cases = [
            (o, t)
            for o in OPTS
            if o != "adam_mu_bf16" and o not in LONG_TAIL  # memory table only; --long-tail
            for t in trees
            if (o, t) != ("adam_bf16", "tiny")
        ]

    bw = triad_bandwidth(max(total, 4 * 2**20))
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].platform}, "
        f"triad bandwidth {bw:.1f} GB/s, {total / 2**20:.0f}M params per large case\n"
    )
    with_torch = args.torch and torch_available()
    print(
        "| case | tree | leaves | gradtx ms | optax ms | gradtx/optax | roofline ms | "
        "gradtx/roofline | flatten ms (/optax) | torch foreach ms (/optax) | "
        "torch fused ms (/optax) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results: dict[str, Any] = {"bandwidth_gbs": bw, "cases": []}
    for opt, tree in cases:
        shapes = TREES[tree](total)
        dtype = PARAM_DTYPE.get(opt, jnp.float32)
        makers: dict[str, Callable[[], Timed | TorchTimed]] = {
            "optax": lambda: build(optax, opt, shapes, dtype),
            "gradtx": lambda: build(gradtx, opt, shapes, dtype),
        }
        if len(shapes) > 1 and opt not in LONG_TAIL:  # the one-flag fast path for many leaves
            makers["flatten"] = lambda: build(
                gradtx, opt, shapes, dtype, lambda t: gradtx.flatten(t, FLAT_MAX)
            )
        if tree == "tiny" and opt not in LONG_TAIL:  # params kept packed: no per-leaf work
            makers["packed"] = lambda: build(gradtx, opt, shapes, dtype, packed=True)
        if tree == "tiny":  # the bare jit boundary: p - lr * g over the same leaves, no state
            makers["floor"] = lambda: build_floor(shapes, dtype)
        if with_torch and opt in TORCH and dtype == jnp.float32:
            makers["torch"] = lambda: build_torch(opt, shapes, fused=False)
            if opt in TORCH_FUSED:
                makers["torch_fused"] = lambda: build_torch(opt, shapes, fused=True)
        builds = args.builds or (4 if tree == "tiny" and not args.quick else 2)
        res = paired(makers, reps, builds, seconds)
        (ma, ratio), (mb, _) = res["gradtx"], res["optax"]
        fcol = "–"
        if "flatten" in res:
            fcol = f"{res['flatten'][0]:.3f} ({res['flatten'][1]:.2f})"
        if "packed" in res:
            fcol += f"; packed params {res['packed'][0]:.3f} ({res['packed'][1]:.2f})"
        if "floor" in res:
            fcol += f"; bare `p - lr*g` {res['floor'][0]:.3f} ({res['floor'][1]:.2f})"
        roof = step_bytes(opt, shapes) / (bw * 1e9) * 1e3
        tcols = [f"{res[k][0]:.3f} ({res[k][1]:.2f})" if k in res else "–" for k in TORCH_KEYS]
        print(
            f"| {opt} | {tree} | {len(shapes)} | {ma:.3f} | {mb:.3f} | {ratio:.2f} | "
            f"{roof:.3f} | {ma / roof:.2f} | {fcol} | {' | '.join(tcols)} |",
            flush=True,
        )
        results["cases"].append(
            dict(
                opt=opt,
                tree=tree,
                leaves=len(shapes),
                gradtx_ms=ma,
                optax_ms=mb,
                ratio=ratio,
                roofline_ms=roof,
                torch_ms=res["torch"][0] if "torch" in res else None,
                torch_fused_ms=res["torch_fused"][0] if "torch_fused" in res else None,
                flatten=fcol,
                variants={k: dict(ms=v[0], ratio_to_optax=v[1]) for k, v in res.items()},
            )
        )

    if not args.no_compile and not args.long_tail:
        print(
            "\n| leaves | gradtx compile s | gradtx flatten compile s | optax compile s | "
            "ratio | flatten ratio |\n|---|---|---|---|---|---|"
        )
        for n_leaves in [100, 300] if args.quick else [100, 1000, 4000]:
            co = compile_seconds(optax, n_leaves)
            cg = compile_seconds(gradtx, n_leaves)
            cf = compile_seconds(gradtx, n_leaves, lambda t: gradtx.flatten(t, FLAT_MAX))
            print(
                f"| {n_leaves} | {cg:.2f} | {cf:.2f} | {co:.2f} | {cg / co:.2f} | {cf / co:.2f} |",
                flush=True,
            )
            results.setdefault("compile", []).append(
                dict(leaves=n_leaves, gradtx=cg, gradtx_flatten=cf, optax=co)
            )

    core = ["adam", "clip_adamw", "adam_mu_bf16"]
    timed_tail = list(dict.fromkeys(o for o, _ in cases if o in LONG_TAIL))
    temp_opts = [] if args.no_memory else (["adam", *timed_tail] if args.long_tail else core)
    for i, opt in enumerate(temp_opts):
        if i == 0:
            print("\n| case | gradtx temp MB | optax temp MB |\n|---|---|---|")
        shapes = tree_big(total)
        tg = peak_temp_bytes(gradtx, opt, shapes, jnp.float32) / 2**20
        to = peak_temp_bytes(optax, opt, shapes, jnp.float32) / 2**20
        print(f"| {opt} big | {tg:.1f} | {to:.1f} |", flush=True)
        results.setdefault("temp_mb", []).append(dict(opt=opt, gradtx=tg, optax=to))
    if not args.no_memory:
        state_opts = ["adam", *timed_tail] if args.long_tail else [*core, "adamw", "sgd_nesterov"]
        results["state"] = state_table(state_opts, [TREES[t](total) for t in trees], trees)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
