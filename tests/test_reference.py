"""Every registered optimizer and block against its independent NumPy reference
(``tests/references``), for every example configuration the registry lists.

50 steps of a fixed pseudo-random gradient sequence on a small tree (a matrix, a vector and a
scalar leaf), float64, worst relative error per update <= 1e-10.
"""

from __future__ import annotations

import pytest
from helpers import fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import REFERENCES, build, run

from gradtx import registry

TOL = 1e-10
CHECKED = [e for e in registry.entries() if e.kind in ("optimizer", "block")]
CASES = [(e, i) for e in CHECKED for i in range(len(e.examples))]


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def error_vs_numpy(entry: registry.Entry, example: int, steps: int = 50) -> float | None:
    """Worst relative error of example ``example`` of ``entry`` against its reference, or
    ``None`` when the reference declines that configuration."""
    ref = build(entry.name, entry.examples[example])
    if ref is None:
        return None
    params, grads = make_params(), make_grads(steps)
    got, _, _ = run_tx(entry.build(example), params, grads)
    want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    return rel_err(got, want)


@pytest.mark.parametrize(
    ("entry", "example"), CASES, ids=[f"{e.name}-{i}" for e, i in CASES]
)
def test_matches_numpy_reference(entry, example):
    if entry.name not in REFERENCES:
        pytest.fail(f"{entry.name} has no NumPy reference in tests/references/{entry.family}.py")
    err = error_vs_numpy(entry, example)
    if err is None:
        pytest.skip("the reference declines this configuration (e.g. random noise)")
    assert err <= TOL


@pytest.mark.parametrize("entry", CHECKED, ids=lambda e: e.name)
def test_every_entry_has_a_checked_reference(entry):
    """The completeness test: a registered optimizer or block without a NumPy reference, or
    whose reference declines every example, fails here."""
    assert entry.name in REFERENCES, f"add @reference({entry.name!r}) to tests/references"
    assert any(build(entry.name, ex) is not None for ex in entry.examples), entry.name


def test_references_are_sensitive():
    """The harness can fail: a slightly different hyperparameter is detected."""
    entry = registry.get("adam")
    params, grads = make_params(), make_grads()
    got, _, _ = run_tx(entry.factory(learning_rate=0.1, b2=0.999), params, grads)
    want, _ = run(build("adam", {"learning_rate": 0.1, "b2": 0.998}), leaves64(params),
                  [leaves64(g) for g in grads])  # fmt: skip
    assert rel_err(got, want) > 1e-4
