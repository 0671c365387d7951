"""Prints the worst relative error of every registered optimizer and block, float64, against its
NumPy reference (50 steps, every example) and against optax (12 steps, every example optax
accepts), as the markdown table in the README:

    python tests/error_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import test_optax_parity as parity  # noqa: E402
import test_reference as reference  # noqa: E402

from gradtx import registry  # noqa: E402


def main() -> None:
    print("| name | kind | vs NumPy | vs optax |")
    print("|---|---|---|---|")
    for entry in registry.entries():
        if entry.kind == "torch":
            continue
        ref = [reference.error_vs_numpy(entry, i) for i in range(len(entry.examples))]
        ref = [e for e in ref if e is not None]
        opt = [
            parity.error_vs_optax(entry, i, jnp.float64)
            for i in range(len(entry.examples))
            if entry.optax is not None and parity.accepted(entry, i)
        ]
        print(f"| `{entry.name}` | {entry.kind} | {_fmt(ref)} | {_fmt(opt)} |")


def _fmt(errors: list[float]) -> str:
    if not errors:
        return "–"
    worst = max(errors)
    return "0" if worst == 0 else f"{worst:.0e}"


if __name__ == "__main__":
    main()
