"""The registry is complete and honest: every public optimizer and block of the family modules is
registered, every example builds, and every claim about optax (its name there, or that it has
none) holds against the installed optax."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import optax
import pytest

import gradtx
from gradtx import registry
from gradtx.base import GradientTransformation

FAMILY_MODULES = [
    "gradtx.blocks",
    "gradtx.clipping",
    *(f"gradtx.optimizers.{m}" for m in gradtx.optimizers.FAMILIES),
]
ENTRIES = registry.entries()

# optax names that exist but mean something else, so "optax has none" stays true
OTHER_MEANING: dict[str, str] = {}


def _returns_transformation(fn) -> bool:
    hints = inspect.get_annotations(inspect.unwrap(fn), eval_str=True)
    ret = hints.get("return")
    return isinstance(ret, type) and issubclass(ret, GradientTransformation)


def test_every_public_factory_of_a_family_module_is_registered():
    registered = {e.name for e in ENTRIES}
    missing = []
    for name in FAMILY_MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            fn = getattr(module, attr)
            if inspect.isfunction(fn) and _returns_transformation(fn) and attr not in registered:
                missing.append(f"{name}.{attr}")
    assert not missing, f"register these with @register(...): {missing}"


def test_every_family_module_is_imported_and_exported():
    """A new module in gradtx/optimizers is found without any other change."""
    found = {m.name for m in pkgutil.iter_modules(gradtx.optimizers.__path__)}
    assert found == set(gradtx.optimizers.FAMILIES)
    for name in found:
        module = importlib.import_module(f"gradtx.optimizers.{name}")
        assert all(getattr(gradtx, attr) is getattr(module, attr) for attr in module.__all__)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_examples_build_and_are_top_level(entry):
    for i in range(len(entry.examples)):
        tx = entry.build(i)
        assert isinstance(tx, GradientTransformation)
    if entry.kind in ("optimizer", "block"):
        assert getattr(gradtx, entry.name) is entry.factory
        assert entry.family in {m.rsplit(".", 1)[-1] for m in FAMILY_MODULES}
    assert entry.traced is None or entry.traced in {p.name for p in registry.parameters(entry)}


def _optax_attr(path: str):
    node = optax
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.kind != "torch"], ids=lambda e: e.name)
def test_optax_claim_holds(entry):
    if entry.optax is not None:
        assert callable(_optax_attr(entry.optax)), f"optax has no {entry.optax}"
    elif entry.name not in OTHER_MEANING:
        for path in (entry.name, f"contrib.{entry.name}"):
            assert _optax_attr(path) is None, f"optax has {path}: register optax={path!r}"


def test_registering_twice_is_refused():
    other = dataclasses.replace(registry.get("adam"), factory=lambda: None)
    with pytest.raises(ValueError, match="twice"):
        registry.add(other)
