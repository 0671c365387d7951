"""from_torch(name, **kwargs) against torch.optim itself, step for step, in float64.

The configurations are the examples of the registry's ``torch.<name>`` entries
(``gradtx.registry.entries("torch")``); the harness (gradients, error measure) is in
torch_helpers.py.

Figures: ``python tests/test_torch_parity.py`` prints the worst error of every configuration.
"""

from __future__ import annotations

import functools

import jax
import pytest
import torch
from torch_helpers import TOL, run_gradtx, run_torch, torch_float64, trajectory_error

from gradtx import registry
from gradtx.torch_compat import DEFAULTS, from_torch

# --- configurations: the registry's examples -----------------------------------------------------

STEPS = 60
ENTRIES = registry.entries("torch")
CASES = [(e, i) for e in ENTRIES for i in range(len(e.examples))]


def torch_name(entry: registry.Entry) -> str:
    return entry.name.removeprefix("torch.")


@functools.cache
def parity_errors(name: str) -> list[float]:
    """The error of every example of ``torch.<name>`` (one compilation for them all)."""
    entry = registry.get(f"torch.{name}")
    ours = run_gradtx([entry.build(i) for i in range(len(entry.examples))], STEPS)
    return [
        trajectory_error(traj, run_torch(name, dict(kw), STEPS)["params"])
        for kw, (traj, _) in zip(entry.examples, ours, strict=True)
    ]


@pytest.mark.parametrize(("entry", "example"), CASES, ids=[f"{e.name}-{i}" for e, i in CASES])
def test_matches_torch(entry, example):
    assert parity_errors(torch_name(entry))[example] < TOL


def test_every_torch_optimizer_is_registered_with_torchs_defaults():
    assert [torch_name(e) for e in ENTRIES] == sorted(DEFAULTS)
    for entry in ENTRIES:
        defaults = DEFAULTS[torch_name(entry)]
        assert entry.kind == "torch" and entry.traced == "lr" and entry.optax is None
        assert dict(entry.examples[0]) == {"lr": defaults["lr"]}  # the plain configuration
        assert {p.name: p.default for p in registry.parameters(entry)} == defaults
        tx = entry.factory(**entry.examples[-1])
        assert callable(tx.init) and callable(tx.update)


def _lr_schedule(count):
    return 0.05 * 0.97**count


def test_lr_schedule_matches_torch_with_lr_set_each_step():
    kwargs = {"momentum": 0.9, "weight_decay": 0.1}
    ref = run_torch("SGD", {"lr": 0.05, **kwargs}, STEPS, lr_fn=_lr_schedule)["params"]
    [(ours, _)] = run_gradtx([from_torch("SGD", lr=_lr_schedule, **kwargs)], STEPS)
    assert trajectory_error(ours, ref) < TOL


def test_every_option_of_every_optimizer_is_covered():
    # guards the registry's examples: each torch option appears in at least one of them
    for entry in ENTRIES:
        used = set().union(*entry.examples)
        assert set(DEFAULTS[torch_name(entry)]) - {"lr"} <= used, entry.name


def test_the_comparison_can_fail():
    # a 1e-4 relative change of one hyperparameter is far above the tolerance
    ref = run_torch("Adagrad", {"lr": 0.3, "eps": 1e-2}, STEPS)["params"]
    [(ours, _)] = run_gradtx([from_torch("Adagrad", lr=0.3, eps=1e-2 * (1 + 1e-4))], STEPS)
    assert trajectory_error(ours, ref) > 1e-8


def test_defaults_are_torchs():
    with torch_float64():
        for name, defaults in DEFAULTS.items():
            opt = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)])
            for key, value in defaults.items():
                assert opt.defaults[key] == value, (name, key)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": -0.1}),
        ("SGD", {"momentum": -0.1}),
        ("SGD", {"nesterov": True}),
        ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
        ("Adam", {"betas": (1.0, 0.999)}),
        ("Adam", {"betas": (0.9, -0.1)}),
        ("Adam", {"eps": -1e-8}),
        ("Adadelta", {"rho": 1.5}),
        ("Adagrad", {"lr_decay": -1.0}),
        ("RMSprop", {"alpha": -0.5}),
        ("NAdam", {"momentum_decay": -1.0}),
        ("AdamW", {"weight_decay": -0.01}),
    ],
)
def test_out_of_range_raises_like_torch(name, kwargs):
    with torch_float64(), pytest.raises(ValueError):
        getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError):
        from_torch(name, **kwargs)


def test_unknown_arguments_raise_type_error_listing_accepted():
    with pytest.raises(TypeError, match=r"'nesterov'.*accepted.*'betas'"):
        from_torch("Adam", nesterov=True)
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        from_torch("AdamW", decoupled_weight_decay=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        from_torch("LBFGS")


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    for entry, example in CASES:
        error = parity_errors(torch_name(entry))[example]
        print(f"{error:.2e}  {entry.name} {dict(entry.examples[example])}")
