"""The documentation site (MkDocs Material + mkdocstrings, ``mkdocs.yml``): it builds with
warnings as errors, its API reference covers every public module, and the Python code on its
pages runs."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    p for p in DOCS.rglob("*.md") if p.name != "DESIGN.md" and "reference" not in p.parts
)
PROSE = {"guides/examples.md"}  # commands and figures only
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_site_builds_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    html = (tmp_path / "site" / "reference" / "optimizers" / "index.html").read_text()
    # the generated reference carries the registry-completed Args (default and range)
    assert 'id="gradtx.optimizers.adam.adam"' in html
    assert "in <code>[0, 1)</code>" in html


def _documented() -> set[str]:
    sys.path.insert(0, str(DOCS))
    try:
        hooks = importlib.import_module("hooks")
    finally:
        sys.path.remove(str(DOCS))
    names: set[str] = set()
    for page in (DOCS / "reference").glob("*.md"):
        text = page.read_text()
        names.update(re.findall(r"^::: ([\w.]+)", text, re.M))
        for package in re.findall(r"^<!-- modules: ([\w.]+) -->$", text, re.M):
            names.update(hooks.public_modules(package))
    return names


def test_every_public_module_is_in_the_reference():
    import gradtx

    public = {"gradtx"}
    for m in pkgutil.walk_packages(gradtx.__path__, "gradtx."):
        if not any(part.startswith("_") for part in m.name.split(".")):
            public.add(m.name)
    documented = _documented()
    missing = sorted(
        name for name in public - {"gradtx"} if name not in documented
    )  # a package documented by its modules counts
    missing = [n for n in missing if not any(d.startswith(n + ".") for d in documented)]
    assert not missing, f"public modules missing from docs/reference/*.md: {missing}"


_RUNNER = """
import json, sys, traceback
failures = {}
for name, code in json.loads(sys.stdin.read()):
    try:
        exec(compile(code, name, "exec"), {"__name__": "__docs__"})
    except BaseException:
        failures[name] = traceback.format_exc(limit=3)[-2000:]
print(json.dumps(failures))
"""


def test_the_code_on_every_page_runs():
    """Each page's ``python`` blocks run in order in a fresh namespace (as a reader pasting them
    would), with jax's default float32; one process for all pages saves the imports."""
    pages = []
    for page in PAGES:
        name = page.relative_to(DOCS).as_posix()
        blocks = _BLOCK.findall(page.read_text())
        assert blocks or name in PROSE, f"{name} has no runnable example"
        if blocks:
            pages.append((name, "\n\n".join(blocks)))
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    run = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps(pages), cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    failures = json.loads(run.stdout.strip().splitlines()[-1])
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
