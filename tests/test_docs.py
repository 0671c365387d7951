"""Every registered optimizer and block documents itself: each argument described (the docstring's
own ``Args:`` or ``_docs.GLOSSARY``), its optax equivalent named (or "optax: none"), and an
``Example:`` whose doctest runs and prints what it says (with float64 on, as in the whole suite).
"""

import doctest
import inspect
import re

import pytest

from gradtx import _docs, registry

ENTRIES = [e for e in registry.entries() if e.kind in ("optimizer", "block")]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def run_examples(fn, name):
    """Runs the doctests of ``fn``'s docstring in a fresh namespace: (examples run, failures,
    the doctest report)."""
    tests = doctest.DocTestFinder(recurse=False).find(fn, name, globs={})
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    return runner.tries, runner.failures, "".join(report)


def test_the_registry_lists_the_families():
    assert len(ENTRIES) >= 50
    assert {e.kind for e in ENTRIES} == {"optimizer", "block"}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_argument_is_described(entry):
    assert _docs.missing(entry.factory) == []


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_names_optax_and_has_an_example(entry):
    doc = inspect.getdoc(entry.factory)
    if entry.optax is None:
        assert "optax: none" in doc
    else:
        assert f"optax.{entry.optax}" in doc
    assert "Args:" in doc or not registry.parameters(entry)
    example = re.search(r"^Example:\n(.*)", doc, re.M | re.S)
    assert example is not None, f"{entry.name}: no Example section"
    assert re.search(r"^\s+>>> ", example.group(1), re.M)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_example_runs(entry):
    tries, failures, report = run_examples(entry.factory, entry.name)
    assert tries > 0, f"{entry.name}: no doctest found"
    assert failures == 0, report


def test_the_checks_can_fail():
    def fake(learning_rate, frobnicate, b1=0.9):
        """A fake optimizer.

        Args:
          b1: the decay of something.

        Example:
            >>> print(1 + 1)
            3
        """

    _docs.complete(fake, fake)
    assert _docs.missing(fake) == ["frobnicate"]  # learning_rate is in the glossary
    tries, failures, report = run_examples(fake, "fake")
    assert (tries, failures) == (1, 1)
    assert "Expected:\n    3\nGot:\n    2" in report
