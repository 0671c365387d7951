"""The registry: every optimizer and block gradtx offers, with what the tests need to know.

Each family module decorates its public factories with ``@register(...)``.  The decorator also
checks the factory's ``Range``-annotated arguments on every call (``kit.validated``) and
completes its docstring's ``Args:`` section with each argument's default and range.  The test
suite iterates ``entries()`` for every cross-cutting property (NumPy references, optax and torch
parity, jit/vmap/grad, errors, injected hyperparameters, low precision, checkpoints, the flat
layout), so a new optimizer is covered by all of them the moment it is registered, and a
completeness test fails until it has a NumPy reference.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from gradtx import _docs
from gradtx.kit import validated

Kind = Literal["optimizer", "block", "torch"]
F = TypeVar("F", bound=Callable[..., Any])

TRAITS = frozenset({"elementwise", "stochastic", "needs_value"})
"""``elementwise``: each element's update depends only on that element's history, so the flat
layout (``gradtx.flatten``) gives the same numbers; ``stochastic``: draws random numbers (its
NumPy reference runs the noise-free configuration); ``needs_value``: ``update`` needs
``value=`` (the loss)."""


class Use(NamedTuple):
    """An example argument that is itself a registered transformation: ``Use("trace",
    {"decay": 0.9})`` is ``trace(decay=0.9)`` on the gradtx side and the reference's ``trace``
    on a reference's side."""

    name: str
    kwargs: Mapping[str, Any] = {}


def resolve_uses(kwargs: Mapping[str, Any], build: Callable[[str, Mapping[str, Any]], Any]) -> dict:
    """``kwargs`` with every ``Use`` replaced by ``build(name, kwargs)``."""
    return {k: build(v.name, v.kwargs) if isinstance(v, Use) else v for k, v in kwargs.items()}


@dataclass(frozen=True)
class Entry:
    """One registered factory.

    ``examples``: keyword arguments of representative configurations (the first is the plain
    one; the others exercise the options); ``optax``: the path of the same name under ``optax``
    (``"adam"``, ``"contrib.prodigy"``) or ``None`` when optax has none; ``traced``: the numeric
    argument the transformation tests trace (vmap over, differentiate through), ``None`` if
    none; ``traits``: a subset of ``TRAITS``.
    """

    name: str
    factory: Callable[..., Any]
    kind: Kind
    family: str
    examples: tuple[Mapping[str, Any], ...]
    optax: str | None
    traced: str | None
    traits: frozenset[str] = field(default_factory=frozenset)

    def build(self, example: int = 0, **overrides: Any) -> Any:
        """The transformation of example ``example``, with ``overrides`` on top."""
        kwargs = resolve_uses({**self.examples[example], **overrides}, build)
        return self.factory(**kwargs)


_ENTRIES: dict[str, Entry] = {}


def add(entry: Entry) -> None:
    """Records ``entry`` (names are unique across kinds)."""
    if entry.name in _ENTRIES and _ENTRIES[entry.name].factory is not entry.factory:
        raise ValueError(f"registry: {entry.name!r} is registered twice")
    unknown = entry.traits - TRAITS
    if unknown:
        raise ValueError(f"registry: {entry.name!r} has unknown traits {sorted(unknown)}")
    _ENTRIES[entry.name] = entry


def register(
    kind: Kind = "optimizer",
    *,
    optax: str | None,
    examples: Iterable[Mapping[str, Any]] | None = None,
    traced: str | None = "learning_rate",
    traits: Iterable[str] = ("elementwise",),
) -> Callable[[F], F]:
    """Registers a public factory (an optimizer alias or a block) of a family module.

    ``optax`` is required (``None`` says, on purpose, that optax has no equivalent); a test
    checks the claim against the installed optax either way.  ``examples`` default to one
    configuration with ``learning_rate=0.1`` for an optimizer and the defaults for a block.
    """

    def decorate(fn: F) -> F:
        checked = validated(fn)
        _docs.complete(checked, fn)
        module = fn.__module__.rsplit(".", 1)[-1]
        given = tuple(examples) if examples is not None else None
        default = ({"learning_rate": 0.1},) if kind == "optimizer" else ({},)
        add(
            Entry(
                name=fn.__name__,
                factory=checked,
                kind=kind,
                family=module,
                examples=given or default,
                optax=optax,
                traced=traced if kind == "optimizer" or traced != "learning_rate" else None,
                traits=frozenset(traits),
            )
        )
        return checked  # type: ignore[return-value]

    return decorate


def build(name: str, kwargs: Mapping[str, Any]) -> Any:
    """``gradtx.<name>(**kwargs)``, with ``Use`` arguments built the same way."""
    return get(name).factory(**resolve_uses(kwargs, build))


def entries(kind: Kind | None = None) -> list[Entry]:
    """Every registered entry (of ``kind``), sorted by name; imports the whole package first."""
    if "gradtx" not in sys.modules or not hasattr(sys.modules["gradtx"], "__version__"):
        importlib.import_module("gradtx")
    return sorted(
        (e for e in _ENTRIES.values() if kind is None or e.kind == kind), key=lambda e: e.name
    )


def get(name: str) -> Entry:
    entries()
    try:
        return _ENTRIES[name]
    except KeyError:
        raise KeyError(f"registry: no entry {name!r}; known: {sorted(_ENTRIES)}") from None


def matrices(params: Any) -> Any:
    """``True`` for the leaves with two or more dimensions: the mask the examples use (weight
    decay on matrices, none on biases and scales)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x: jnp.ndim(x) > 1, params)


def parameters(entry: Entry) -> list[inspect.Parameter]:
    """The factory's parameters, in order (``*args``/``**kwargs`` excluded)."""
    sig = inspect.signature(inspect.unwrap(entry.factory))
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p for p in sig.parameters.values() if p.kind not in kinds]


__all__ = [
    "TRAITS",
    "Entry",
    "Use",
    "add",
    "build",
    "entries",
    "get",
    "matrices",
    "parameters",
    "register",
    "resolve_uses",
]
