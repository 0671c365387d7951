"""``import gradtx as optax`` for real code: every public callable of the installed optax, in each
of its namespaces, exists in gradtx at the same path with a compatible signature (the same
parameter names in the same order and the same defaults; gradtx may add parameters after them
with defaults), and every optax state class can be built with optax's field names.

The exceptions are two short, explicit lists: DELIBERATE differences (each documented in the
README's "Coming from optax") and OTHER_ISSUES, names whose optimizers belong to the open
long-tail and matrix-aware issues.
"""

from __future__ import annotations

import importlib
import inspect

import optax
import pytest

import gradtx

NAMESPACES = [
    "",
    "contrib",
    "schedules",
    "transforms",
    "tree",
    "tree_utils",
    "losses",
    "projections",
    "second_order",
    "perturbations",
]

# name -> why gradtx differs on purpose (README "Coming from optax")
DELIBERATE = {
    # one step counter per optimizer: gradtx's states have no per-block counter field; their
    # optax spelling still constructs (kit.one_counter), and state.count says where the count is
    "MultiStepsState": "gradient_step is a property (the inner optimizer's count)",
    "ClipByGlobalNormState": "keeps the pre-clip global_norm for logging",
    "ReduceLROnPlateauState": "the window counter is accumulation_count (count is the chain's)",
    "ScaleByScheduleState": "scale_by_schedule reads the chain's count: its state is EmptyState",
}

# optimizers of the open long-tail (#14) and matrix-aware/second-order (#15) issues
OTHER_ISSUES = {
}  # fmt: skip


def _module(root, path: str):
    return (
        root
        if not path
        else getattr(root, path, None) or importlib.import_module(f"{root.__name__}.{path}")
    )


def _public(ns) -> list[str]:
    return sorted(n for n in dir(ns) if not n.startswith("_") and callable(getattr(ns, n)))


ALL = [(path, name) for path in NAMESPACES for name in _public(_module(optax, path))]
CASES = [(path, name) for path, name in ALL if name not in OTHER_ISSUES]
IDS = [f"{path or 'optax'}.{name}" for path, name in CASES]


def _signature(obj) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def _compatible(theirs: inspect.Signature, mine: inspect.Signature) -> str | None:
    """Why ``mine`` cannot take every call ``theirs`` takes, or None."""
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    t = [p for p in theirs.parameters.values() if p.kind not in kinds]
    m = [p for p in mine.parameters.values() if p.kind not in kinds]
    if [p.name for p in m[: len(t)]] != [p.name for p in t]:
        return f"parameters {[p.name for p in t]} vs {[p.name for p in m]}"
    for a, b in zip(t, m, strict=False):
        if a.default is not inspect.Parameter.empty and b.default != a.default:
            if callable(a.default) and (b.default is None or callable(b.default)):
                continue  # a default rule (decay_rate_fn, clip_value_fn): checked by the numbers
            if all(hasattr(d, "update") for d in (a.default, b.default)):
                continue  # a default transformation (lbfgs's line search): checked by the numbers
            kind = type(a.default)
            if kind.__module__ != "builtins" and kind.__name__ == type(b.default).__name__:
                continue  # an equal default object of the same kind (noise=Gumbel())
            both_dtypes = a.default is not None and b.default is not None
            if not (both_dtypes and str(a.default) == str(b.default)):
                return f"default of {a.name}: {a.default!r} vs {b.default!r}"
    extra = [p for p in m[len(t) :] if p.default is inspect.Parameter.empty]
    if extra:
        return f"extra required parameters {[p.name for p in extra]}"
    return None


@pytest.mark.parametrize(("path", "name"), CASES, ids=IDS)
def test_optax_name_exists_with_a_compatible_signature(path, name):
    theirs = getattr(_module(optax, path), name)
    mine = getattr(_module(gradtx, path), name, None)
    assert mine is not None, f"gradtx.{path + '.' if path else ''}{name} is missing"
    if isinstance(theirs, type) and hasattr(theirs, "_fields"):
        if name in DELIBERATE:
            return
        fields = {f: None for f in theirs._fields}
        mine(**fields)  # optax's spelling constructs (counters are dropped by kit.one_counter)
        return
    if isinstance(theirs, type) or name in DELIBERATE:
        return
    s_theirs, s_mine = _signature(theirs), _signature(mine)
    if s_theirs is None or s_mine is None:
        return
    problem = _compatible(s_theirs, s_mine)
    assert problem is None, f"{path or 'optax'}.{name}: {problem}"


def test_surface_count():
    """Most of optax's surface is here; the rest is named in the two lists above."""
    present = sum(getattr(_module(gradtx, path), name, None) is not None for path, name in CASES)
    assert present >= len(CASES) - len(OTHER_ISSUES), (present, len(CASES))
    assert len(DELIBERATE) <= 10, "each deliberate difference costs a user a port edit"
