"""The optimistic methods beyond the registry-driven tests: schedules where optax takes only
numbers (``alpha``/``beta`` of the optimistic gradient, ``optimistic_adam``'s learning rate),
against the NumPy references, and the two Optimistic Adam interfaces agreeing."""

from __future__ import annotations

import pytest
from helpers import SCHED, fast_compile, leaves64, make_grads, make_params, rel_err, run_tx
from references import build, run

import gradtx


def _beta(count):
    return 1.0 / (1 + count)


CASES = [
    ("scale_by_optimistic_gradient", {"alpha": SCHED, "beta": _beta}),
    ("optimistic_gradient_descent", {"learning_rate": 0.1, "alpha": SCHED, "beta": _beta}),
    ("optimistic_adam", {"learning_rate": SCHED, "optimism": 0.05, "nesterov": False}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_schedules_match_the_reference(name, kwargs):
    params, grads = make_params(), make_grads(20)
    with fast_compile():
        got, _, _ = run_tx(getattr(gradtx, name)(**kwargs), params, grads)
    want, _ = run(build(name, kwargs), leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(got, want) <= 1e-10


def test_optimistic_adam_is_v2_with_alpha_and_beta_the_learning_rate():
    params, grads = make_params(), make_grads(8)
    v1, _, _ = run_tx(gradtx.optimistic_adam(0.05), params, grads)
    v2, _, _ = run_tx(gradtx.optimistic_adam_v2(1.0, alpha=0.05, beta=0.05), params, grads)
    assert rel_err(v1, v2) <= 1e-15
