"""Independent NumPy references, one per registered gradtx optimizer and block.

Each rule is transcribed from its paper (or from torch's documented algorithm where gradtx offers
torch's variant) and works on a *list* of float64 arrays, one per parameter leaf.  Nothing here
imports gradtx's implementation: only ``gradtx.registry.Use``, the marker an example uses for an
argument that is itself a transformation.

``REFERENCES[name](**kwargs)`` takes the same keyword arguments as ``gradtx.<name>`` (same names,
same defaults) and returns a ``Ref``, or ``None`` for a configuration no closed form can follow
(e.g. Gaussian noise with ``eta > 0``).  The modules mirror gradtx's family modules: the
reference of ``gradtx/optimizers/adam.py`` lives in ``tests/references/adam.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gradtx.registry import Use, resolve_uses

from .core import Ref

REFERENCES: dict[str, Callable[..., Ref | None]] = {}


def reference(name: str) -> Callable[[Callable[..., Ref | None]], Callable[..., Ref | None]]:
    """Registers the reference of the gradtx factory called ``name``."""

    def decorate(fn: Callable[..., Ref | None]) -> Callable[..., Ref | None]:
        if name in REFERENCES:
            raise ValueError(f"two references for {name!r}")
        REFERENCES[name] = fn
        return fn

    return decorate


def build(name: str, kwargs: Mapping[str, Any]) -> Ref | None:
    """The reference of ``gradtx.<name>(**kwargs)``; ``Use`` arguments become references too."""
    return REFERENCES[name](**resolve_uses(kwargs, build))


def run(
    ref: Ref,
    params: Sequence[np.ndarray],
    grads: Sequence[Sequence[np.ndarray]],
    with_value: bool = False,
):
    """``(updates per step, final params)`` of ``ref`` over the gradient sequence; with
    ``with_value`` each ``step`` also gets ``value=1 + sum(p**2) / 2`` (``helpers.loss_value``),
    and a reference with ``needs_objective = True`` (a line search) that loss as
    ``objective(params) -> (value, gradient)``."""
    params = [np.array(p, np.float64) for p in params]
    ref.init(params)
    history = []
    for t, g in enumerate(grads, start=1):
        values = {"value": _loss(params)} if with_value else {}
        if with_value and getattr(ref, "needs_objective", False):
            values["objective"] = lambda ps: (_loss(ps), [np.array(p) for p in ps])
        u = ref.step([np.asarray(x, np.float64) for x in g], params, t, **values)
        params = [p + d for p, d in zip(params, u, strict=True)]
        history.append(u)
    return history, params


def _loss(params: Sequence[np.ndarray]) -> float:
    return 1.0 + 0.5 * sum(np.sum(p**2) for p in params)


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "core":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REFERENCES", "Use", "build", "reference", "run"]
