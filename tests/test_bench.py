"""The benchmark's roofline arithmetic (not its timings): bytes a step must move per parameter."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench import step_bytes, tree_big, tree_transformer

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
