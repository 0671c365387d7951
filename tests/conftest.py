"""Test-wide settings: float64 on, so reference comparisons can be tight (1e-10).

Tests that check float32/bfloat16 behaviour create arrays with an explicit dtype.

Without torch installed, the test modules that compare with torch are left out with a message
saying how to install it (its CPU build); under CI (``CI`` set) a missing torch is an error, so
the parity tests always run there.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

# jax's CPU LAPACK calls (triangular solves, eigh, QR) run on scipy's OpenBLAS, whose threads
# fight XLA's when the cores are oversubscribed (as under pytest -n 2 on 2 cores): a float32
# 32x32 triangular solve took 7.8 ms instead of 0.013 ms at a load average of ~5.  OpenBLAS
# reads it once, when it loads, so it is set before jax is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax

jax.config.update("jax_enable_x64", True)

# GRADTX_TESTS_WITHOUT_TORCH=1 shows what a machine without torch runs
TORCH_MISSING = importlib.util.find_spec("torch") is None or bool(
    os.environ.get("GRADTX_TESTS_WITHOUT_TORCH")
)
INSTALL_TORCH = (
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    " (the CPU build; a plain `pip install torch` pulls a multi-GB CUDA build)"
)
_USES_TORCH = re.compile(
    r"^(import torch|from torch|from torch_helpers|import torch_helpers)\b", re.M
)
_left_out: list[str] = []

if TORCH_MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI runs the torch-parity tests; torch is not installed: {INSTALL_TORCH}")


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if not TORCH_MISSING or collection_path.suffix != ".py":
        return None
    if collection_path.name.startswith("test_") and _USES_TORCH.search(collection_path.read_text()):
        _left_out.append(collection_path.name)
        return True
    return None


def pytest_terminal_summary(terminalreporter) -> None:
    if _left_out:
        terminalreporter.write_line(
            f"torch is not installed: left out {len(_left_out)} torch-parity test modules "
            f"({', '.join(sorted(set(_left_out)))}). To run them: {INSTALL_TORCH}",
            yellow=True,
        )
