"""The benchmark's arithmetic (never its timings): bytes a step must move per parameter, and the
optimizer state's size, which for Adafactor must be the factored one."""

import math
import sys
from pathlib import Path

import jax.numpy as jnp
import optax
import pytest

import gradtx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench import (
    LONG_TAIL,
    LONG_TAIL_DEFAULT,
    OPTS,
    TORCH_FUSED,
    TREES,
    build,
    build_torch,
    main,
    paired,
    param_shapes,
    state_bytes,
    step_bytes,
    tree_big,
    tree_bytes,
    tree_transformer,
)

N = 1 << 16


@pytest.mark.parametrize(
    "opt, per_param",
    [
        ("adam", 28),  # read p, g, m, v (4 x 4 B); write p, m, v (3 x 4 B)
        ("adamw", 28),
        ("sgd_nesterov", 20),  # read p, g, m; write p, m
        ("rmsprop", 20),
        ("clip_adamw", 32),  # one more read of g for the norm
        ("adam_bf16", 18),  # bfloat16 p, g, v (2 B), float32 m: 3 x 2 + 2 x 4 + 2 x 2
        ("adam_mu_bf16", 24),  # float32 p, g, v, bfloat16 m: 3 x 4 + 2 x 2 + 2 x 4
        ("adafactor", 20),  # a vector is not factored: v is kept whole
        ("lars", 20),  # one momentum
        ("sm3", 28),  # a vector's one accumulator, and the momentum
        ("ademamix", 36),  # m1, m2 (slow), v
        ("adan", 44),  # m, v, n and the previous gradient
    ],
)
def test_step_bytes_counts_each_array_at_its_stored_dtype(opt, per_param):
    # beyond that only scalars: the step counter, clipping's stored norm
    total = step_bytes(opt, tree_big(N))
    assert total // N == per_param and total % N < 64


def test_transformer_tree_sizes():
    assert sum(map(math.prod, tree_transformer(2**20))) == 1_061_888  # --quick
    assert sum(map(math.prod, tree_transformer(16 * 2**20))) == 21_038_080
    assert len(tree_transformer(2**20)) == 193


# --- state size ----------------------------------------------------------------------------------

COUNT_BYTES = 4  # the chain's int32 step counter


def factored_bytes(shapes: list[tuple[int, ...]], min_dim: int = 128) -> int:
    """Adafactor's second moment as the paper sizes it (float32): a matrix whose sides are both at
    least ``min_dim`` keeps a row and a column statistic, ``m + n`` numbers; any other leaf one
    number per element."""
    return 4 * sum(sum(s) if len(s) == 2 and min(s) >= min_dim else math.prod(s) for s in shapes)


@pytest.mark.parametrize(
    "shapes, factored_share",
    [
        (tree_transformer(16 * 2**20), 0.0073),  # 65 of 193 leaves factored (d = 320)
        ([(4096, 4096)], 0.0005),  # (4096 + 4096) / 4096**2
        (tree_transformer(2**20), 1.0),  # d = 64 < 128: nothing factored (--quick's tree)
        (tree_big(16 * 2**20), 1.0),  # a vector is never factored
    ],
)
def test_adafactor_state_is_factored(shapes, factored_share):
    params = tree_bytes(param_shapes(shapes, "float32"))
    got = state_bytes(gradtx, "adafactor", shapes)
    assert got == factored_bytes(shapes) + COUNT_BYTES
    assert got / params == pytest.approx(factored_share, abs=5e-5)


def test_adafactor_state_bytes_written_out():
    # a factored 256 x 512 matrix (256 + 512 numbers), a vector (512), a matrix with a side under
    # 128 (kept whole: 64 * 300), float32, and the int32 step counter
    shapes = [(256, 512), (512,), (64, 300)]
    assert state_bytes(gradtx, "adafactor", shapes) == 4 * (768 + 512 + 19_200) + 4
    assert tree_bytes(param_shapes(shapes, "float32")) == 4 * (131_072 + 512 + 19_200)


def test_the_big_transformer_tree_is_mostly_factored_matrices():
    # guards the test above: without factoring the state would be the params' size
    shapes = tree_transformer(16 * 2**20)
    assert factored_bytes(shapes) < 0.01 * tree_bytes(param_shapes(shapes, "float32"))


@pytest.mark.parametrize("opt", sorted(OPTS))
def test_state_is_optax_sized(opt):
    """The same arrays as optax's state, up to scalars (counters, clipping's stored norm) and
    optax's per-leaf placeholders (a (1,) ``v`` for a factored leaf, (1,) row and column
    statistics for a whole one, where gradtx keeps ``None``)."""
    for tree in ("big", "transformer", "tiny"):
        shapes = TREES[tree](2**20)
        ours, theirs = state_bytes(gradtx, opt, shapes), state_bytes(optax, opt, shapes)
        assert abs(ours - theirs) <= 8 * len(shapes) + 16, (tree, ours, theirs)
        assert ours <= theirs + 16, (tree, ours, theirs)


@pytest.mark.parametrize("opt", ["lamb", "adopt"])
def test_other_long_tail_state_is_two_moments(opt):
    shapes = [(256, 512), (512,)]
    params = tree_bytes(param_shapes(shapes, "float32"))
    assert state_bytes(gradtx, opt, shapes) == 2 * params + 4


def test_long_tail_default_is_adafactor_lamb_and_a_contrib_method():
    assert set(LONG_TAIL_DEFAULT) <= set(LONG_TAIL)
    assert {"adafactor", "lamb"} <= set(LONG_TAIL_DEFAULT)
    contrib = [o for o in LONG_TAIL_DEFAULT if o not in ("adafactor", "lamb")]
    assert contrib and all(hasattr(m.contrib, o) for o in contrib for m in (gradtx, optax))
    with pytest.raises(SystemExit):
        main(["--long-tail", "adafactor,nope"])  # refused before anything is timed


# --- the paired timing, with torch's foreach and fused optimizers ---------------------------------


def test_torch_fused_runs_on_cpu_and_matches_foreach():
    """The fused CPU kernels the benchmark times compute what foreach does (``build_torch`` has
    taken one step; three more here, over the same gradients)."""
    torch = pytest.importorskip("torch")
    shapes = [(300,), (16, 8)]
    for opt in TORCH_FUSED:
        runs = []
        for fused in (False, True):
            torch.manual_seed(0)
            runs.append(build_torch(opt, shapes, fused=fused))
            runs[-1].run(3)
        foreach, fused = (t.optimizer for t in runs)
        assert fused.defaults["fused"] and foreach.defaults["foreach"]
        torch.manual_seed(0)
        start = [torch.randn(s) * 0.01 for s in shapes]  # build_torch's first draws
        params = foreach.param_groups[0]["params"], fused.param_groups[0]["params"], start
        for a, b, p0 in zip(*params, strict=True):
            assert (a - p0).abs().max() > 1e-4  # four steps of ~lr each moved it
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_paired_times_every_variant_against_optax():
    pytest.importorskip("torch")
    shapes = [(64,), (8, 8)]
    makers = {
        "optax": lambda: build(optax, "adam", shapes, jnp.float32),
        "gradtx": lambda: build(gradtx, "adam", shapes, jnp.float32),
        "torch_fused": lambda: build_torch("adam", shapes, fused=True),
    }
    res = paired(makers, reps=2, builds=1, seconds=0.001)
    assert set(res) == set(makers)
    assert res["optax"][1] == 1.0
    assert all(ms > 0 and ratio > 0 for ms, ratio in res.values())


# --- bench_matrix: Kronecker-factored optimizers against Adam (tiny tree: runs, never timings) ----


def test_bench_matrix_rows_on_a_tiny_tree(capsys):
    from bench_matrix import main as matrix_main

    configs = ["adam", "soap_k10", "muon"]  # within 15 s; every config runs as soap_k10 or muon
    res = matrix_main(["--d", "16", "--layers", "1", "--vocab", "32", "--reps", "1",
                       "--configs", ",".join(configs)])  # fmt: skip
    printed = capsys.readouterr().out
    assert list(res["configs"]) == configs
    for name, row in res["configs"].items():
        assert f"| {name} | " in printed
        assert row["moved"] and row["finite"] and row["max_abs_change"] > 0
        assert row["state_bytes"] > 0 and row["state_over_params"] > 0
        for key in ("compile_s", "ms_per_step", "x_adam", "other_ms"):
            assert math.isfinite(row[key]) and row[key] > 0, (name, key)
    assert res["configs"]["adam"]["state_over_params"] == pytest.approx(2, abs=1e-3)
    assert res["configs"]["adam"]["refresh_ms"] is res["configs"]["muon"]["refresh_ms"] is None
    row = res["configs"]["soap_k10"]  # one refresh in the window of 10 (counts 1..10)
    assert (row["window"], row["refresh_steps"], row["other_steps"]) == (10, 1, 9)
    assert math.isfinite(row["refresh_ms"]) and row["refresh_ms"] > 0


def test_bench_matrix_windows_and_arguments():
    from bench_matrix import CONFIGS, parse, window_of

    assert window_of(CONFIGS["adam"], 10) == 10
    assert window_of(CONFIGS["soap"], 10) == window_of(CONFIGS["psgd"], 10) == 1
    assert window_of(CONFIGS["shampoo_k10"], 5) == 10  # whole refresh periods
    assert window_of(CONFIGS["psgd_p0.1"], 7) == 7
    with pytest.raises(SystemExit):
        parse(["--configs", "adam,nope"])


def test_bench_matrix_replays_psgd_draws():
    """The refresh steps it reports for PSGD are the steps on which the factors changed."""
    import jax
    from bench_matrix import Config, refresh_flags

    tx = gradtx.psgd_kron(1e-3, preconditioner_update_probability=0.5, key=3)
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    state = tx.init(params)
    flags = refresh_flags(Config(lambda: tx, probability=0.5), state, 0, 8)
    step = jax.jit(tx.update)
    changed = []
    for _ in range(8):
        before = gradtx.tree_get(state, "Qs")
        _, state = step(params, state, params)
        after = gradtx.tree_get(state, "Qs")
        changed.append(any(bool(jnp.any(a != b)) for a, b in zip(
            jax.tree.leaves(before), jax.tree.leaves(after), strict=True)))  # fmt: skip
    assert flags == changed
    assert 0 < sum(flags) < 8
