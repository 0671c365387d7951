"""The README's Python snippets run, in order, in one namespace (as a reader would paste them)."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snippets_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 10
    monkeypatch.chdir(tmp_path)
    # the one name the "Scaling out" snippet leaves to the reader's model
    ns = {"loss_fn": lambda params, batch: sum(jnp.sum(x**2) for x in jax.tree.leaves(params))}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), ns)
    out = capsys.readouterr().out
    assert "b2=1.5 is out of range; allowed: b2 in [0, 1)" in out
    assert "different tree structures" in out
