"""from_torch(name, **kwargs) against torch.optim itself, step for step, in float64.

The configurations are the examples of the registry's ``torch.<name>`` entries
(``gradtx.registry.entries("torch")``); the harness (gradients, error measure) is in
torch_helpers.py.

Figures: ``python tests/test_torch_parity.py`` prints the worst error of every configuration.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
import torch
from torch_helpers import (
    MATRICES,
    MIXED,
    TOL,
    VECTORS,
    run_gradtx,
    run_torch,
    sequence_error,
    torch_float64,
    trajectory_error,
)

from gradtx import registry, tree_get
from gradtx.hyperparams import inject_hyperparams
from gradtx.torch_compat import DEFAULTS, asgd_average, current_lr, from_torch
from gradtx.torch_compat.optimizers import SELF_TESTED

# --- configurations: the registry's examples -----------------------------------------------------

STEPS = 60
ENTRIES = registry.entries("torch")
CASES = [(e, i) for e in ENTRIES for i in range(len(e.examples))]
# rules that treat matrices apart run on a tree with matrices (torch's Muon takes nothing else)
PROBLEMS = {"Adafactor": MIXED, "Muon": MATRICES}


def torch_name(entry: registry.Entry) -> str:
    return entry.name.removeprefix("torch.")


@functools.cache
def parity_errors(name: str) -> list[float]:
    """The error of every example of ``torch.<name>`` (one compilation for them all)."""
    entry, problem = registry.get(f"torch.{name}"), PROBLEMS.get(name, VECTORS)
    txs = [entry.build(i) for i in range(len(entry.examples))]
    ours = run_gradtx(txs, STEPS, problem=problem)
    return [
        trajectory_error(traj, run_torch(name, dict(kw), STEPS, problem=problem)["params"], problem)
        for kw, (traj, _) in zip(entry.examples, ours, strict=True)
    ]


@pytest.mark.parametrize(("entry", "example"), CASES, ids=[f"{e.name}-{i}" for e, i in CASES])
def test_matches_torch(entry, example):
    assert parity_errors(torch_name(entry))[example] < TOL


def test_every_torch_optimizer_is_registered_with_torchs_defaults():
    # Muon (matrices only) and LBFGS (closure step) are checked in test_muon.py / test_lbfgs.py
    assert SELF_TESTED == {"Muon", "LBFGS"}
    assert [torch_name(e) for e in ENTRIES] == sorted(set(DEFAULTS) - SELF_TESTED)
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
            opt = getattr(torch.optim, name)([torch.zeros(2, 2, requires_grad=True)])
            for key, value in defaults.items():
                if (name, key) == ("LBFGS", "max_eval"):  # torch stores its resolved default
                    value = defaults["max_iter"] * 5 // 4
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
        ("Rprop", {"etas": (1.2, 1.5)}),
        ("Rprop", {"lr": -0.1}),
        ("ASGD", {"weight_decay": -0.1}),
        ("Adafactor", {"d": 0.5}),
        ("Adafactor", {"beta2_decay": 0.1}),
        ("Adafactor", {"eps": (None, -1.0)}),
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
        from_torch("Yogi")  # a name torch.optim does not have


# --- ASGD's average ------------------------------------------------------------------------------

ASGD = [{"lr": 0.05, "t0": 5.0, "lambd": 1e-3}, {"lr": 0.05, "t0": 5.0, "weight_decay": 0.1}]


def test_asgd_average_matches_torchs_ax():
    txs = [from_torch("ASGD", **kw) for kw in ASGD]
    ours = run_gradtx(txs, 40, record=lambda s: asgd_average(s))
    for kw, (_, ax) in zip(ASGD, ours, strict=True):
        ref = run_torch("ASGD", kw, 40, state_key="ax")
        got = np.concatenate([np.asarray(ax[k]) for k in ("a", "b")], axis=1)
        assert np.max(np.abs(got - ref["state"])) < 1e-12
        # the average really averages: it trails the params once t > t0 + 1
        assert np.max(np.abs(ref["state"][-1] - ref["params"][-1])) > 1e-3


# --- the live learning rate ----------------------------------------------------------------------

SET_AT, SET_TO = 17, 3.0  # param_groups[0]["lr"] = 3 * lr before step 17


@functools.cache
def live_lr_errors(problem_name: str) -> dict[str, tuple[float, float]]:
    """Per optimizer (torch's defaults, lr 0.02): the trajectory and the lr after each step
    against torch, when the lr is set to ``SET_TO * lr`` mid-run."""
    problem = {"vectors": VECTORS, "matrices": MATRICES}[problem_name]
    names = [
        n
        for n in sorted(set(DEFAULTS) - SELF_TESTED)
        if (PROBLEMS.get(n, VECTORS) is MATRICES) == (problem is MATRICES)
    ]
    txs = [from_torch(n, lr=0.02) for n in names]
    ours = run_gradtx(txs, 30, record=current_lr, problem=problem, set_lr={SET_AT: SET_TO * 0.02})
    out = {}
    for n, (traj, lr) in zip(names, ours, strict=True):
        ref = run_torch(n, {"lr": 0.02}, 30, problem=problem, set_lr={SET_AT: SET_TO * 0.02})
        out[n] = (
            trajectory_error(traj, ref["params"], problem),
            sequence_error(lr, ref["lr_after"]),
        )
    return out


@pytest.mark.parametrize("name", sorted(set(DEFAULTS) - SELF_TESTED))
def test_learning_rate_is_readable_and_settable_like_param_groups(name):
    matrices = PROBLEMS.get(name, VECTORS) is MATRICES
    traj, lr = live_lr_errors("matrices" if matrices else "vectors")[name]
    assert lr == 0.0  # the state shows what param_groups[0]["lr"] shows, step by step
    assert traj < TOL


def test_setting_the_learning_rate_changes_the_trajectory():
    # the test above has teeth: the same run without the edit ends elsewhere
    edited = run_gradtx([from_torch("Adam", lr=0.02)], 30, set_lr={SET_AT: SET_TO * 0.02})[0][0]
    plain = run_torch("Adam", {"lr": 0.02}, 30)["params"]
    assert trajectory_error(edited, plain) > 1e-3
    # Rprop reads the lr on its first step only (torch too): there the edit changes nothing
    rprop = run_gradtx([from_torch("Rprop", lr=0.02)], 30, set_lr={SET_AT: SET_TO * 0.02})[0][0]
    assert trajectory_error(rprop, run_torch("Rprop", {"lr": 0.02}, 30)["params"]) < TOL


def test_state_names_the_learning_rate():
    tx = from_torch("AdamW", lr=0.003)
    state = tx.init({"w": np.zeros(3)})
    assert float(tree_get(state, "learning_rate")) == 0.003 == float(current_lr(state))


def test_inject_hyperparams_is_refused_with_the_working_idiom():
    with pytest.raises(ValueError, match=r"tree_set\(state, learning_rate=x\)"):
        inject_hyperparams(from_torch)("SGD", lr=0.1)
    with pytest.raises(ValueError, match="tree_get"):
        inject_hyperparams(registry.get("torch.Adam").factory)(lr=0.1)


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    for entry, example in CASES:
        error = parity_errors(torch_name(entry))[example]
        print(f"{error:.2e}  {entry.name} {dict(entry.examples[example])}")
