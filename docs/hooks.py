"""MkDocs hook: a page line ``<!-- modules: gradtx.optimizers -->`` becomes one ``:::`` reference
section per public module of that package, so a new family module is documented without
editing any page (``tests/test_docs_site.py`` checks that every public module is referenced)."""

from __future__ import annotations

import importlib
import pkgutil
import re

_MARKER = re.compile(r"^<!-- modules: ([\w.]+) -->$", re.M)


def public_modules(package: str) -> list[str]:
    """The public submodules of ``package`` (names not starting with ``_``), sorted."""
    pkg = importlib.import_module(package)
    names = (m.name for m in pkgutil.iter_modules(pkg.__path__))
    return sorted(f"{package}.{name}" for name in names if not name.startswith("_"))


def _sections(match: re.Match) -> str:
    return "\n\n".join(f"::: {name}" for name in public_modules(match.group(1)))


def on_page_markdown(markdown: str, **kwargs) -> str:
    return _MARKER.sub(_sections, markdown)
