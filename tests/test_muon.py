"""Muon beyond the cross-cutting tests: optax parity of ``scale_by_muon`` on matrices (optax's
refuses the vectors and scalar of the shared harness), ``muon`` with dimension numbers over 20
steps, the NumPy reference of every option, the authors' update, ``torch.optim.Muon`` step for
step, higher-rank layouts and their errors and the batched orthogonalisation (quality against
tuned Adam: ``tests/test_matrix_quality.py``).

Figures: ``python tests/test_muon.py`` prints the worst error of every comparison.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import torch
from helpers import fast_compile, leaves64, rel_err, run_tx
from references import build, run
from references.muon import newton_schulz

import gradtx
from gradtx import MuonDimensionNumbers as Dims
from gradtx.contrib import muon, scale_by_muon
from gradtx.optimizers.orthogonalize import _layout, _orthogonalize
from gradtx.torch_compat.muon import EXAMPLES as TORCH_EXAMPLES
from gradtx.torch_compat.muon import torch_muon

STEPS = 20
TOL = 1e-10
TABLE = ((4.0, -6.0, 2.5), (3.4445, -4.7750, 2.0315), (2.0, -1.5, 0.5))


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    with fast_compile():
        yield


def _tree(shapes: dict, seed: int, steps: int | None = None):
    rng = np.random.RandomState(seed)
    if steps is None:
        return {k: jnp.asarray(rng.randn(*s)) for k, s in shapes.items()}
    return [
        {k: jnp.asarray((1 + 0.5 * np.sin(t)) * rng.randn(*s) + 0.1) for k, s in shapes.items()}
        for t in range(steps)
    ]


# matrices only (tall, wide, a 3-D leaf read through dimension numbers): what optax's
# scale_by_muon accepts
MATRICES = {"tall": (6, 3), "wide": (3, 5), "stack": (2, 4, 3)}
DIMS = {"tall": Dims(), "wide": Dims(1, 0), "stack": Dims(1, 2)}
# muon's tree: the matrices, a vector and a scalar (AdamW)
MIXED = {**MATRICES, "bias": (5,), "scale": ()}
MIXED_DIMS = {**DIMS, "bias": None, "scale": None}


def _optax_dims(tree):
    """The same dimension numbers as optax's class (optax checks the type)."""
    o = optax.contrib.MuonDimensionNumbers
    return jax.tree.map(
        lambda d: None if d is None else o(d.reduction_axis, d.output_axis),
        tree,
        is_leaf=lambda x: x is None or isinstance(x, Dims),
    )


SCALE_BY_MUON_CASES = [
    {},
    {"beta": 0.8, "nesterov": False, "ns_steps": 4, "eps": 1e-3, "adaptive": True},
    {"ns_coeffs": gradtx.NS_COEFFS_PRESETS["dion"], "preconditioning": "aol"},
    {"ns_coeffs": TABLE, "ns_steps": 3, "preconditioning": "schatten", "beta": 0.9},
    {"preconditioning": "spectral", "ns_steps": 6},
]  # fmt: skip


def _error_vs_optax(mine, theirs, shapes, steps=STEPS):
    """gradtx eager, optax jitted (its fori_loop, cond and vmap retrace on every eager call)."""
    params, grads = _tree(shapes, 0), _tree(shapes, 1, steps)
    got, _, _ = run_tx(mine, params, grads)
    want, _, _ = run_tx(optax.GradientTransformation(theirs.init, jax.jit(theirs.update)),
                        params, grads)  # fmt: skip
    return rel_err(got, want)


@pytest.mark.parametrize("kwargs", SCALE_BY_MUON_CASES)
def test_scale_by_muon_matches_optax(kwargs):
    mine = scale_by_muon(**kwargs, weight_dimension_numbers=DIMS)
    theirs = optax.contrib.scale_by_muon(**kwargs, weight_dimension_numbers=_optax_dims(DIMS))
    assert _error_vs_optax(mine, theirs, MATRICES) <= TOL


WD_MASK = {"tall": True, "wide": False, "stack": True, "bias": False, "scale": False}
WD_MASK = {"tall": True, "wide": False, "stack": True, "bias": False, "scale": False}
MUON_CASES = [
    {"learning_rate": 0.1},
    {"learning_rate": 0.05, "muon_weight_dimension_numbers": MIXED_DIMS, "weight_decay": 0.1,
     "weight_decay_mask": WD_MASK, "consistent_rms": 0.2,
     "adam_b2": 0.95, "adam_weight_decay": 0.01, "adam_learning_rate": 0.01, "nesterov": False},
    {"learning_rate": 0.05, "muon_weight_dimension_numbers": lambda p: MIXED_DIMS,
     "ns_coeffs": "dion", "preconditioning": "aol", "adaptive": True, "adam_eps_root": 1e-6},
]  # fmt: skip


def _optax_muon_kwargs(kwargs):
    spec = kwargs.get("muon_weight_dimension_numbers")
    if spec is None:
        return kwargs
    spec = spec(None) if callable(spec) else spec
    return {**kwargs, "muon_weight_dimension_numbers": _optax_dims(spec)}


@pytest.mark.parametrize("kwargs", MUON_CASES)
def test_muon_matches_optax_over_20_steps(kwargs):
    shapes = MIXED if "muon_weight_dimension_numbers" in kwargs else {"w": (3, 4), "b": (4,)}
    theirs = optax.contrib.muon(**_optax_muon_kwargs(kwargs))
    assert _error_vs_optax(muon(**kwargs), theirs, shapes) <= TOL


# --- the NumPy reference (scale_by_muon is not in the registry: optax's refuses the shared tree)


REFERENCE_CASES = [
    *SCALE_BY_MUON_CASES,
    {"beta": lambda c: 0.9 - 0.4 / (1 + c), "preconditioning": "schatten"},
    {"bias_correction": False, "eps": 1e-7, "eps_mode": "max", "mu_dtype": jnp.float32},
    {"bias_correction": False, "nesterov": False, "ns_coeffs": "dion"},
]


@pytest.mark.parametrize("kwargs", REFERENCE_CASES)
def test_scale_by_muon_matches_numpy_reference(kwargs):
    shapes = {**MATRICES, "bias": (5,)}
    dims = {**DIMS, "bias": Dims((), 0)}
    params, grads = _tree(shapes, 0), _tree(shapes, 1, STEPS)
    got, _, _ = run_tx(scale_by_muon(**kwargs, weight_dimension_numbers=dims), params, grads)
    ref = build("scale_by_muon", {**kwargs, "weight_dimension_numbers": jax.tree.leaves(
        dims, is_leaf=lambda x: isinstance(x, Dims))})  # fmt: skip
    want, _ = run(ref, leaves64(params), [leaves64(g) for g in grads])
    assert rel_err(got, want) <= TOL


def test_the_authors_update():
    """Keller Jordan's muon.py (``muon_update`` and ``MuonWithAuxAdam``'s ``adam_update``),
    transcribed in float64: plain Nesterov momentum, ``||X|| + 1e-7``, the scale
    ``max(1, rows / cols)^0.5`` of a torch ``(out, in)`` weight, decoupled decay; AdamW
    (0.9, 0.95, eps 1e-10) for the rest."""
    lr, wd, adam_lr = 0.02, 0.1, 3e-3
    shapes = {"w1": (6, 3), "w2": (3, 5), "b": (5,)}
    params, grads = _tree(shapes, 0), _tree(shapes, 1, STEPS)
    tx = muon(
        lr, eps=1e-7, weight_decay=wd, bias_correction=False, adam_b2=0.95, adam_eps=1e-10,
        adam_nesterov=False, adam_learning_rate=adam_lr, adam_weight_decay=wd,
        muon_weight_dimension_numbers={"w1": Dims(1, 0), "w2": Dims(1, 0), "b": None},
    )  # fmt: skip
    got, _, _ = run_tx(tx, params, grads)

    p = {k: np.asarray(v) for k, v in params.items()}
    buf = {k: np.zeros(s) for k, s in shapes.items()}
    v = np.zeros(shapes["b"])
    want = []
    for t, g in enumerate(grads, start=1):
        g, u = {k: np.asarray(x) for k, x in g.items()}, {}
        for k in ("w1", "w2"):
            buf[k] += (1 - 0.95) * (g[k] - buf[k])  # momentum.lerp_(grad, 1 - beta)
            x = g[k] + 0.95 * (buf[k] - g[k])  # grad.lerp_(momentum, beta)
            x = x.T if x.shape[0] > x.shape[1] else x
            x = x / (np.linalg.norm(x) + 1e-7)
            for _ in range(5):
                a = x @ x.T
                x = 3.4445 * x + (-4.7750 * a + 2.0315 * a @ a) @ x
            x = x.T if g[k].shape[0] > g[k].shape[1] else x
            x = x * max(1, g[k].shape[0] / g[k].shape[1]) ** 0.5
            u[k] = -lr * wd * p[k] - lr * x
        buf["b"] += (1 - 0.9) * (g["b"] - buf["b"])
        v += (1 - 0.95) * (g["b"] ** 2 - v)
        adam = (buf["b"] / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-10)
        u["b"] = -adam_lr * wd * p["b"] - adam_lr * adam
        want.append([u[k] for k in sorted(shapes)])
        p = {k: p[k] + u[k] for k in p}
    assert rel_err(got, want) <= TOL


# --- torch.optim.Muon --------------------------------------------------------------------------

TORCH_SHAPES = {"a": (3, 5), "b": (6, 4)}  # (out, in), torch's layout


@contextlib.contextmanager
def _torch_without_bfloat16_cast():
    """torch's Newton–Schulz casts to bfloat16 (``grad.bfloat16()``); this runs torch's own code
    in float64 (a copy, since torch divides the cast result in place)."""
    cast = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self: self.clone()
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = cast


def _torch_run(kwargs, steps, exact):
    p0, grads = _tree(TORCH_SHAPES, 0), _tree(TORCH_SHAPES, 1, steps)
    ps = [torch.tensor(np.asarray(p0[k]), requires_grad=True) for k in TORCH_SHAPES]
    opt = torch.optim.Muon(ps, **kwargs)
    out = []
    with _torch_without_bfloat16_cast() if exact else contextlib.nullcontext():
        for g in grads:
            for p, k in zip(ps, TORCH_SHAPES, strict=True):
                p.grad = torch.tensor(np.asarray(g[k]))
            opt.step()
            out.append([p.detach().numpy().copy() for p in ps])
    return p0, grads, out


def torch_error(kwargs, exact: bool, steps: int = STEPS, mine=None, tx=None) -> float:
    """Worst over steps of ``max|p_gradtx - p_torch| / max|p_torch - p_0|`` (gradtx built with
    ``mine`` when given, else with torch's ``kwargs``; or the transformation ``tx``)."""
    p0, grads, theirs = _torch_run(kwargs, steps, exact)
    if tx is None:
        tx = torch_muon(**(mine or kwargs), ns_dtype=None if exact else jnp.bfloat16)
    state, p, worst, update = tx.init(p0), p0, 0.0, jax.jit(tx.update)
    start = [np.asarray(p0[k]) for k in TORCH_SHAPES]
    for g, want in zip(grads, theirs, strict=True):
        u, state = update(g, state, p)
        p = gradtx.apply_updates(p, u)
        moved = max(np.max(np.abs(w - s)) for w, s in zip(want, start, strict=True))
        err = max(
            np.max(np.abs(np.asarray(p[k]) - w)) for k, w in zip(TORCH_SHAPES, want, strict=True)
        )
        worst = max(worst, err / moved)
    return worst


@pytest.mark.parametrize("kwargs", TORCH_EXAMPLES, ids=str)
def test_matches_torch_in_float64(kwargs):
    assert torch_error(kwargs, exact=True) <= TOL


def test_matches_torch_in_bfloat16():
    # torch's own bfloat16 iteration: the same roundings (measured 5e-13 here; bfloat16 noise in
    # the update is ~1e-3, so a summation order that flips a rounding stays far below 1e-6)
    assert torch_error(TORCH_EXAMPLES[1], exact=False) <= 1e-6


def test_from_torch_muon_is_torchs_muon():
    # from_torch("Muon") runs torch's bfloat16 iteration, with the lr live in its state
    for kwargs in TORCH_EXAMPLES[:2]:
        assert torch_error(kwargs, exact=False, tx=gradtx.from_torch("Muon", **kwargs)) <= 1e-6
    state = gradtx.from_torch("Muon", lr=0.05).init({"w": jnp.zeros((2, 3))})
    assert float(gradtx.tree_get(state, "learning_rate")) == pytest.approx(0.05)


def test_torch_comparison_can_fail():
    assert torch_error({"lr": 0.02}, True, 3, mine={"lr": 0.02, "momentum": 0.9501}) > 1e-8
    # and without the cast removed, torch's bfloat16 shows against a float64 iteration
    _, _, theirs = _torch_run({"lr": 0.02}, 3, exact=False)
    _, _, exact = _torch_run({"lr": 0.02}, 3, exact=True)
    assert max(np.max(np.abs(a - b)) for a, b in zip(theirs[-1], exact[-1], strict=True)) > 1e-6


def test_torch_checks_are_mirrored():
    with pytest.raises(ValueError, match=r"only supports 2-D parameters; 'b' has shape \(4,\)"):
        torch_muon(lr=0.02).init({"a": jnp.zeros((2, 3)), "b": jnp.zeros(4)})
    with pytest.raises(ValueError):
        torch.optim.Muon([torch.zeros(4, requires_grad=True)])
    for bad in ({"lr": -1.0}, {"weight_decay": -0.1}, {"adjust_lr_fn": "other"},
                {"ns_steps": 100}, {"ns_coefficients": (1.0, 2.0)}):  # fmt: skip
        with pytest.raises(ValueError):
            torch_muon(**bad)
    with pytest.raises(TypeError, match="betas"):
        torch_muon(betas=(0.9, 0.99))
    defaults = torch.optim.Muon([torch.zeros(2, 2, requires_grad=True)]).defaults
    from gradtx.torch_compat.muon import DEFAULTS

    assert {k: defaults[k] for k in DEFAULTS} == DEFAULTS


# --- layouts: higher ranks, errors, batching ---------------------------------------------------


def test_higher_rank_layouts_are_independent_matrices():
    rng = np.random.RandomState(3)
    stacked = jnp.asarray(rng.randn(3, 4, 6))  # 3 layers of (in=4, out=6)
    conv = jnp.asarray(rng.randn(3, 3, 2, 5))  # flax HWIO
    got = gradtx.orthogonalize_via_newton_schulz(stacked, dimension_numbers=Dims(1, 2))
    rows = [(3.4445, -4.7750, 2.0315)] * 5
    for i in range(3):
        np.testing.assert_allclose(got[i], newton_schulz(np.asarray(stacked[i]), rows), atol=1e-12)
    got = gradtx.orthogonalize_via_newton_schulz(conv, dimension_numbers=Dims((0, 1, 2), 3))
    want = newton_schulz(np.asarray(conv).reshape(18, 5), rows).reshape(3, 3, 2, 5)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_ambiguous_shapes_fail_naming_the_parameter():
    params = {"layers": {"kernel": jnp.zeros((2, 3, 4))}, "w": jnp.zeros((3, 4))}
    with pytest.raises(ValueError, match=r"'layers/kernel'.*\(2, 3, 4\).*MuonDimensionNumbers"):
        scale_by_muon().init(params)
    rule = gradtx.muon_dimension_numbers({})
    with pytest.raises(ValueError, match=r"'layers/kernel'.*no rule for rank 3"):
        muon(0.1, muon_weight_dimension_numbers=rule).init(params)
    # muon's default sends such a leaf to AdamW, as optax; a rule makes it Muon's
    by_rank = gradtx.muon_dimension_numbers({3: Dims(1, 2)})
    state = muon(0.1, muon_weight_dimension_numbers=by_rank).init(params)
    muon_state = gradtx.tree_get(state, "inner/0/inner_state/0/mu")
    assert muon_state["layers"]["kernel"].shape == (2, 3, 4)
    with pytest.raises(ValueError, match="distinct"):
        scale_by_muon(weight_dimension_numbers=Dims(0, 0)).init(params["w"])
    with pytest.raises(ValueError, match="ns_steps >= 3"):
        scale_by_muon(TABLE, ns_steps=2)
    with pytest.raises(ValueError, match="preconditioning"):
        scale_by_muon(preconditioning="svd")
    with pytest.raises(ValueError, match=r"beta=1.0 is out of range"):
        scale_by_muon(beta=1.0)
    with pytest.raises(ValueError, match=r"ns_steps=0 is out of range"):
        muon(0.1, ns_steps=0)


def test_batched_orthogonalisation_equals_one_matrix_at_a_time():
    """Same-shaped matrices of different leaves go through one batched iteration."""
    rng = np.random.RandomState(4)
    xs = [jnp.asarray(rng.randn(*s)) for s in [(4, 6), (6, 4), (2, 4, 6), (4, 6)]]
    dims = [Dims(), Dims(1, 0), Dims(1, 2), Dims()]
    lays = [_layout("t", str(i), x.shape, d) for i, (x, d) in enumerate(zip(xs, dims, strict=True))]
    rows = ((3.4445, -4.7750, 2.0315),) * 5
    together = _orthogonalize(xs, lays, rows, "frobenius", 1e-8, "add", None)
    for x, lay, got in zip(xs, lays, together, strict=True):
        (alone,) = _orthogonalize([x], [lay], rows, "frobenius", 1e-8, "add", None)
        np.testing.assert_array_equal(got, alone)


if __name__ == "__main__":
    import time

    jax.config.update("jax_enable_x64", True)
    t0 = time.time()
    for kw in TORCH_EXAMPLES:
        print(f"torch float64 {torch_error(kw, True):.2e}  bfloat16 {torch_error(kw, False):.2e}"
              f"  {kw}  {time.time() - t0:.1f}s")  # fmt: skip
    for kw in SCALE_BY_MUON_CASES:
        mine = scale_by_muon(**kw, weight_dimension_numbers=DIMS)
        theirs = optax.contrib.scale_by_muon(**kw, weight_dimension_numbers=_optax_dims(DIMS))
        print(f"optax scale_by_muon {_error_vs_optax(mine, theirs, MATRICES):.2e}  {kw}")
    for kw in MUON_CASES:
        shapes = MIXED if "muon_weight_dimension_numbers" in kw else {"w": (3, 4), "b": (4,)}
        err = _error_vs_optax(muon(**kw), optax.contrib.muon(**_optax_muon_kwargs(kw)), shapes)
        print(f"optax muon {err:.2e}  {kw}")
