"""Griffe extension for the docs build: gradtx docstrings title their doctest section
``Example:`` (singular, as optax and Google's guide do); Griffe's Google parser knows only
``Examples:``, and would render the doctest as prose.  This renames the heading, so the example
becomes a code block."""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
