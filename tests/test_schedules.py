"""Schedules vs NumPy transcriptions of their formulas (float64, 1e-12), vs optax's same-named
schedules (float32 there, so ~1e-6), vs torch.optim.lr_scheduler where torch has them, under
jit and vmap, at step 0, at the transition points and far past the end."""

from __future__ import annotations

import functools
import importlib.util
import math
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from PIL import Image

from gradtx import schedules as S

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """Imports examples/<name>.py by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# every step up to 130 (all transition points below are inside), plus far past the end
STEPS = np.concatenate([np.arange(131), [199, 200, 201, 999, 1000, 123_457, 2**31 - 1]]).astype(
    np.int32
)


def evaluate_all(schedules: dict, steps=STEPS) -> dict:
    """Every schedule on a batch of steps in one compiled function (one compilation for the lot),
    two ways that must agree: called on the step array, and vmapped over the steps (XLA's fused
    cos may differ in the last bit)."""

    def both(t):
        return {n: (f(t), jax.vmap(f)(t)) for n, f in schedules.items()}

    out = {}
    for name, (on_array, vmapped) in jax.jit(both)(jnp.asarray(steps)).items():
        np.testing.assert_allclose(on_array, vmapped, rtol=1e-14, atol=1e-16, err_msg=name)
        out[name] = np.asarray(vmapped)
    return out


@functools.cache
def our_values() -> dict:
    return evaluate_all({name: schedule for name, (schedule, _) in CASES.items()})


# --- NumPy references (written from the formulas, not from the implementation) ------------------


def np_poly(t, init, end, power, steps, begin=0):
    if steps == 0:
        return np.full(t.shape, float(init))
    c = np.clip(t - begin, 0, steps)
    return (init - end) * (1 - c / steps) ** power + end


def np_piecewise(t, init, bs):
    out = np.full(t.shape, float(init))
    for b, s in bs.items():
        out = np.where(t >= b, out * s, out)
    return out


def np_exp(t, init, steps, rate, begin=0, staircase=False, end=None):
    p = (t - begin) / steps
    p = np.floor(p) if staircase else p
    with np.errstate(over="ignore"):  # growth overflows to inf far out; the cap applies
        out = np.where(t - begin <= 0, init, init * rate**p)
    if end is not None:
        out = np.maximum(out, end) if rate < 1 else np.minimum(out, end)
    return out


def np_cos(t, init, steps, alpha=0.0, exponent=1.0):
    c = 0.5 * (1 + np.cos(np.pi * np.minimum(t, steps) / steps))
    return init * ((1 - alpha) * c**exponent + alpha)


def np_warmup_cos(t, init, peak, warmup, total, end=0.0, exponent=1.0):
    frac = np.clip((t - warmup) / (total - warmup), 0, 1)
    decay = end + (peak - end) * (0.5 * (1 + np.cos(np.pi * frac))) ** exponent
    ramp = init + (peak - init) * t / max(warmup, 1)
    return np.where(t < warmup, ramp, decay)


def np_cyclic(t, lo, hi, up, down, mode, gamma=1.0, scale_fn=None, scale_mode="cycle"):
    # torch's CyclicLR formulation (cycle counted from 1, position as a fraction of the cycle),
    # with the fraction taken exactly (torch's 1 + t / total - cycle loses digits at huge t)
    total = up + down
    cycle = t // total + 1
    x = (t % total) / total
    ratio = up / total
    scale = np.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
    if scale_fn is not None:
        return lo + (hi - lo) * scale * scale_fn(cycle if scale_mode == "cycle" else t)
    with np.errstate(over="ignore"):  # 2**cycle overflows far out: the factor is then 0
        halving = 1 / 2.0 ** (cycle - 1)
    factor = {"triangular": 1.0, "triangular2": halving, "exp_range": gamma**t}
    return lo + (hi - lo) * scale * factor[mode]


def shrinking(x):
    # a custom CyclicLR scale_fn: works on NumPy and JAX arrays and on Python numbers (torch)
    return 1 / (1.0 + 0.1 * x)


def np_restarts(t, init, period, mult, end=0.0, peak_decay=1.0):
    out = []
    for step in t.astype(np.int64):
        i, start, length = 0, 0, period
        if mult == 1:
            i = step // period
            start = i * period
        else:
            while step >= start + length:
                start, length, i = start + length, length * mult, i + 1
        peak = init * peak_decay**i
        out.append(end + (peak - end) * (1 + math.cos(math.pi * (step - start) / length)) / 2)
    return np.asarray(out)


def np_through(t, xs, ys, kind):
    """Piecewise interpolation through the points (xs, ys); cosine = half waves."""
    out = np.full(t.shape, float(ys[-1]))
    out = np.where(t < xs[0], ys[0], out)
    for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:], strict=True):
        if x1 <= x0:
            continue
        f = (t - x0) / (x1 - x0)
        w = f if kind == "linear" else (1 - np.cos(np.pi * f)) / 2
        out = np.where((t >= x0) & (t < x1), y0 + (y1 - y0) * w, out)
    return out


T = STEPS.astype(np.float64)


def _constant_with_warning():
    with pytest.warns(UserWarning, match="transition_steps=0"):
        return S.polynomial_schedule(1.0, 0.5, 2, 0)


CASES = {
    "constant": (S.constant_schedule(0.3), np.full(T.shape, 0.3)),
    "piecewise_constant": (
        S.piecewise_constant_schedule(0.5, {30: 0.1, 10: 0.5, 100: 2.0}),
        np_piecewise(T, 0.5, {10: 0.5, 30: 0.1, 100: 2.0}),
    ),
    "polynomial": (
        S.polynomial_schedule(1.0, 0.01, 2.5, 100, 7),
        np_poly(T, 1.0, 0.01, 2.5, 100, 7),
    ),
    "polynomial_zero_steps": (_constant_with_warning(), np_poly(T, 1.0, 0.5, 2, 0)),
    "linear": (S.linear_schedule(0.0, 2.0, 50, 20), np_poly(T, 0.0, 2.0, 1, 50, 20)),
    "warmup_constant": (S.warmup_constant_schedule(0.1, 1.0, 17), np_poly(T, 0.1, 1.0, 1, 17)),
    "exponential": (S.exponential_decay(2.0, 13, 0.7), np_exp(T, 2.0, 13, 0.7)),
    "exponential_stair_end": (
        S.exponential_decay(2.0, 10, 0.5, transition_begin=25, staircase=True, end_value=0.1),
        np_exp(T, 2.0, 10, 0.5, 25, True, 0.1),
    ),
    "exponential_growth_capped": (
        S.exponential_decay(0.1, 7, 1.5, end_value=3.0),
        np_exp(T, 0.1, 7, 1.5, end=3.0),
    ),
    "inverse_time": (S.inverse_time_decay(0.5, 7, 0.3), 0.5 / (1 + 0.3 * T / 7)),
    "inverse_time_stair": (
        S.inverse_time_decay(0.5, 7, 0.3, staircase=True),
        0.5 / (1 + 0.3 * np.floor(T / 7)),
    ),
    "cosine": (S.cosine_decay_schedule(0.7, 90), np_cos(T, 0.7, 90)),
    "cosine_alpha_exp": (
        S.cosine_decay_schedule(0.7, 90, alpha=0.1, exponent=2.0),
        np_cos(T, 0.7, 90, 0.1, 2.0),
    ),
    "warmup_cosine": (
        S.warmup_cosine_decay_schedule(0.0, 1.0, 20, 120, end_value=0.05),
        np_warmup_cos(T, 0.0, 1.0, 20, 120, 0.05),
    ),
    "warmup_cosine_no_warmup": (
        S.warmup_cosine_decay_schedule(0.2, 1.0, 0, 60, exponent=1.5),
        np_warmup_cos(T, 0.2, 1.0, 0, 60, 0.0, 1.5),
    ),
    "warmup_exponential": (
        S.warmup_exponential_decay_schedule(0.0, 1.0, 15, 10, 0.8, transition_begin=5),
        np.where(T < 15, T / 15, np_exp(T - 15, 1.0, 10, 0.8, 5)),
    ),
    "cyclic_triangular": (
        S.cyclic_schedule(0.1, 1.0, 10, 6),
        np_cyclic(T, 0.1, 1.0, 10, 6, "triangular"),
    ),
    "cyclic_triangular2": (
        S.cyclic_schedule(0.1, 1.0, 8, mode="triangular2"),
        np_cyclic(T, 0.1, 1.0, 8, 8, "triangular2"),
    ),
    "cyclic_exp_range": (
        S.cyclic_schedule(0.1, 1.0, 5, 9, mode="exp_range", gamma=0.99),
        np_cyclic(T, 0.1, 1.0, 5, 9, "exp_range", 0.99),
    ),
    "cyclic_momentum_down": (
        S.cyclic_schedule(0.95, 0.85, 10),
        np_cyclic(T, 0.95, 0.85, 10, 10, "triangular"),
    ),
    "cyclic_scale_fn_cycle": (
        S.cyclic_schedule(0.1, 1.0, 6, 4, scale_fn=shrinking),
        np_cyclic(T, 0.1, 1.0, 6, 4, "", scale_fn=shrinking),
    ),
    "cyclic_scale_fn_iterations": (
        S.cyclic_schedule(0.9, 0.8, 7, scale_fn=shrinking, scale_mode="iterations"),
        np_cyclic(T, 0.9, 0.8, 7, 7, "", scale_fn=shrinking, scale_mode="iterations"),
    ),
    "restarts_t_mult_1": (
        S.cosine_warm_restarts_schedule(1.0, 12, end_value=0.1),
        np_restarts(T, 1.0, 12, 1, 0.1),
    ),
    "restarts_t_mult_2_decay": (
        S.cosine_warm_restarts_schedule(1.0, 5, 2, end_value=0.01, peak_decay=0.5),
        np_restarts(T, 1.0, 5, 2, 0.01, 0.5),
    ),
    "restarts_t_mult_3": (S.cosine_warm_restarts_schedule(0.4, 3, 3), np_restarts(T, 0.4, 3, 3)),
    "linear_onecycle": (
        S.linear_onecycle_schedule(100, 1.0),
        np_through(T, [0, 30, 85, 100], [1 / 25, 1.0, 1 / 25, 1 / 25 / 1e4], "linear"),
    ),
    "cosine_onecycle": (
        S.cosine_onecycle_schedule(97, 2.0, pct_start=0.25, div_factor=10.0),
        np_through(T, [0, 24, 97], [0.2, 2.0, 0.2 / 1e4], "cosine"),
    ),
    "onecycle_momentum_cos": (
        S.onecycle_momentum(100, 0.3),
        np_through(T, [0, 30, 100], [0.95, 0.85, 0.95], "cosine"),
    ),
    "onecycle_momentum_linear": (
        S.onecycle_momentum(100, 0.2, 0.8, 0.9, "linear", pct_final=0.6),
        np_through(T, [0, 20, 60, 100], [0.9, 0.8, 0.9, 0.9], "linear"),
    ),
    "piecewise_interpolate_cosine": (
        S.piecewise_interpolate_schedule("cosine", 2.0, {40: 0.5, 10: 3.0, 90: 0.1}),
        np_through(T, [0, 10, 40, 90], [2.0, 6.0, 3.0, 0.3], "cosine"),
    ),
    # float, negative and repeated boundaries (a jump at 29), a small end value
    "interpolate_cosine": (
        S.interpolate_schedule([-0.5, 29, 29, 84.25, 100.0], [0.1, 1.0, 0.5, 2e-6, 3e-6], "cosine"),
        np_through(T, [-0.5, 29, 29, 84.25, 100], [0.1, 1.0, 0.5, 2e-6, 3e-6], "cosine"),
    ),
    "interpolate_linear": (
        S.interpolate_schedule([3, 10.5, 120], [2.0, 0.5, 1e-6]),
        np_through(T, [3, 10.5, 120], [2.0, 0.5, 1e-6], "linear"),
    ),
    "interpolate_one_point": (S.interpolate_schedule([7.5], [0.4]), np.full(T.shape, 0.4)),
    "sgdr": (
        S.sgdr_schedule(
            [
                dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=40),
                dict(init_value=0.1, peak_value=0.5, warmup_steps=0, decay_steps=30),
                dict(
                    init_value=0.0, peak_value=0.2, warmup_steps=10, decay_steps=50, end_value=0.01
                ),
            ]
        ),
        np.select(
            [T < 40, T < 70],
            [np_warmup_cos(T, 0.0, 1.0, 5, 40), np_warmup_cos(T - 40, 0.1, 0.5, 0, 30)],
            np_warmup_cos(T - 70, 0.0, 0.2, 10, 50, 0.01),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy_formula(name):
    got = our_values()[name]
    assert got.dtype == np.float64 and got.shape == STEPS.shape
    np.testing.assert_allclose(got, CASES[name][1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["polynomial", "cyclic_triangular2", "restarts_t_mult_2_decay"])
def test_python_int_steps(name):
    schedule = CASES[name][0]
    for k in (0, 63, 2**31 - 1):
        got = schedule(k)
        assert got.shape == () and got.dtype == jnp.float64
        expected = our_values()[name][list(STEPS).index(k)]
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)


def test_join_schedules_shifts_the_step():
    seen = []
    joined = S.join_schedules(
        [S.constant_schedule(1.0), lambda s: (seen.append(s), s * 10.0)[1], lambda s: -s * 1.0],
        [5, 8],
    )
    got = np.asarray(joined(jnp.arange(12, dtype=jnp.int32)))
    expected = [1.0] * 5 + [0.0, 10.0, 20.0] + [-0.0, -1.0, -2.0, -3.0]
    np.testing.assert_array_equal(got, expected)
    assert seen[0].dtype == jnp.int32  # later schedules still see integer steps
    # a repeated boundary skips the middle schedule entirely
    skip = S.join_schedules([S.constant_schedule(v) for v in (1.0, 2.0, 3.0)], [4, 4])
    np.testing.assert_array_equal(np.asarray(skip(jnp.arange(6))), [1, 1, 1, 1, 3, 3])


# --- against optax's same-named schedules (float32 there) ---------------------------------------

OPTAX_CASES = [
    ("constant_schedule", (0.3,), {}),
    ("piecewise_constant_schedule", (0.5, {10: 0.5, 30: 0.1, 100: 2.0}), {}),
    ("polynomial_schedule", (1.0, 0.01, 2.5, 100, 7), {}),
    ("linear_schedule", (0.0, 2.0, 50, 20), {}),
    ("warmup_constant_schedule", (0.1, 1.0, 17), {}),
    ("exponential_decay", (2.0, 13, 0.7), {}),
    ("exponential_decay", (2.0, 10, 0.5), dict(transition_begin=25, staircase=True, end_value=0.1)),
    ("cosine_decay_schedule", (0.7, 90), dict(alpha=0.1, exponent=2.0)),
    ("warmup_cosine_decay_schedule", (0.0, 1.0, 20, 120), dict(end_value=0.05)),
    ("warmup_exponential_decay_schedule", (0.0, 1.0, 15, 10, 0.8), dict(transition_begin=5)),
    ("linear_onecycle_schedule", (100, 1.0), {}),
    ("cosine_onecycle_schedule", (97, 2.0), dict(pct_start=0.25, div_factor=10.0)),
    ("piecewise_interpolate_schedule", ("linear", 2.0, {40: 0.5, 10: 3.0, 90: 0.1}), {}),
    ("piecewise_interpolate_schedule", ("cosine", 2.0, {40: 0.5, 10: 3.0, 90: 0.1}), {}),
    (
        "sgdr_schedule",
        (
            [
                dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=40),
                dict(init_value=0.1, peak_value=0.5, warmup_steps=0, decay_steps=30),
            ],
        ),
        {},
    ),
]


OPTAX_IDS = [f"{c[0]}-{i}" for i, c in enumerate(OPTAX_CASES)]


@functools.cache
def optax_pairs() -> tuple[dict, dict]:
    ours = {i: getattr(S, n)(*a, **k) for i, (n, a, k) in zip(OPTAX_IDS, OPTAX_CASES, strict=True)}
    theirs = {
        i: getattr(optax, n)(*a, **k) for i, (n, a, k) in zip(OPTAX_IDS, OPTAX_CASES, strict=True)
    }
    # optax's schedules are not all elementwise over an array of steps: vmap only
    steps = jnp.asarray(STEPS[:-3])
    optax_values = jax.jit(lambda t: {i: jax.vmap(f)(t) for i, f in theirs.items()})(steps)
    return evaluate_all(ours), optax_values


@pytest.mark.parametrize("case", OPTAX_IDS)
def test_matches_optax(case):
    ours, theirs = optax_pairs()
    got = ours[case]
    scale = np.max(np.abs(got))
    np.testing.assert_allclose(got[:-3], theirs[case], rtol=2e-6, atol=1e-6 * scale)


def test_join_matches_optax():
    parts = [optax.linear_schedule(0.0, 1.0, 10), optax.cosine_decay_schedule(1.0, 50)]
    steps = jnp.asarray(STEPS)
    ours = jax.jit(jax.vmap(S.join_schedules(parts, [10])))(steps)
    theirs = optax.join_schedules(parts, [10])(steps)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)


# --- against torch.optim.lr_scheduler -------------------------------------------------------------


def torch_lrs(make_scheduler, n, lr=1.0, momentum=0.0):
    """The learning rate torch uses at steps 0..n-1 (scheduler stepped after each step).

    ``optimizer.step()`` itself is left out (it does not touch the lr, and its first call is
    slow); torch's warning about the missing call is silenced."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=momentum)
    sched = make_scheduler(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            sched.step()
    return np.asarray(out)


TORCH_CASES = {
    "CyclicLR-triangular": (
        lambda o: torch.optim.lr_scheduler.CyclicLR(o, 0.1, 1.0, 10, 6, cycle_momentum=False),
        S.cyclic_schedule(0.1, 1.0, 10, 6),
    ),
    "CyclicLR-triangular2": (
        lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, 0.1, 1.0, 7, mode="triangular2", cycle_momentum=False
        ),
        S.cyclic_schedule(0.1, 1.0, 7, mode="triangular2"),
    ),
    "CyclicLR-exp_range": (
        lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, 0.1, 1.0, 5, 9, mode="exp_range", gamma=0.98, cycle_momentum=False
        ),
        S.cyclic_schedule(0.1, 1.0, 5, 9, mode="exp_range", gamma=0.98),
    ),
    "CyclicLR-scale_fn": (
        lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, 0.1, 1.0, 6, 4, scale_fn=shrinking, cycle_momentum=False
        ),
        S.cyclic_schedule(0.1, 1.0, 6, 4, scale_fn=shrinking),
    ),
    # torch's phases end at pct_start * total_steps - 1 = 38 and total_steps - 1 = 129
    "OneCycleLR": (
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 1.0, 130, cycle_momentum=False),
        S.interpolate_schedule([0, 38, 129], [1 / 25, 1.0, 1 / 25 / 1e4], "cosine"),
    ),
    "OneCycleLR-three_phase_linear": (
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o,
            1.0,
            130,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            cycle_momentum=False,
        ),
        S.interpolate_schedule([0, 31.5, 63, 129], [0.04, 1.0, 0.04, 4e-6]),
    ),
    "CosineAnnealingWarmRestarts-1": (
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 12, 1, eta_min=0.1),
        S.cosine_warm_restarts_schedule(1.0, 12, 1, end_value=0.1),
    ),
    "CosineAnnealingWarmRestarts-2": (
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 5, 2, eta_min=0.01),
        S.cosine_warm_restarts_schedule(1.0, 5, 2, end_value=0.01),
    ),
    "MultiStepLR": (
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10, 30, 31], gamma=0.3),
        S.piecewise_constant_schedule(1.0, {10: 0.3, 30: 0.3, 31: 0.3}),
    ),
    "StepLR": (
        lambda o: torch.optim.lr_scheduler.StepLR(o, 9, gamma=0.5),
        S.exponential_decay(1.0, 9, 0.5, staircase=True),
    ),
    "ExponentialLR": (
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.97),
        S.exponential_decay(1.0, 1, 0.97),
    ),
    "PolynomialLR": (
        lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=40, power=2.0),
        S.polynomial_schedule(1.0, 0.0, 2.0, 40),
    ),
    "LinearLR": (
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, total_iters=20),
        S.linear_schedule(0.25, 1.0, 20),
    ),
    "CosineAnnealingLR": (
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.05),
        S.cosine_decay_schedule(1.0, 50, alpha=0.05),
    ),
}


@functools.cache
def ours_for_torch() -> dict:
    steps = jnp.arange(130, dtype=jnp.int32)
    return evaluate_all({name: ours for name, (_, ours) in TORCH_CASES.items()}, steps)


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_matches_torch_scheduler(name):
    n = 51 if name == "CosineAnnealingLR" else 130  # torch's cosine rises again past T_max
    expected = torch_lrs(TORCH_CASES[name][0], n)
    np.testing.assert_allclose(ours_for_torch()[name][:n], expected, rtol=1e-12, atol=1e-14)


# --- properties and argument checks --------------------------------------------------------------


def test_schedules_are_differentiable_in_their_values():
    d = jax.grad(lambda peak: S.warmup_cosine_decay_schedule(0.0, peak, 10, 100)(40))(2.0)
    np.testing.assert_allclose(d, 0.5 * (1 + np.cos(np.pi * 30 / 90)), rtol=1e-12)


def test_vmap_over_schedule_parameters():
    def values(peak, rate, end):
        warm = S.warmup_cosine_decay_schedule(0.0, peak, 10, 100, end_value=0.01)
        decay = S.exponential_decay(peak, 10, rate, end_value=end)
        return warm(jnp.asarray([5, 40, 200])), decay(jnp.asarray([0, 30, 5000]))

    peaks, rates, ends = jnp.asarray([1.0, 2.0]), jnp.asarray([0.5, 1.5]), jnp.asarray([0.05, 10.0])
    warm, decay = jax.jit(jax.vmap(values))(peaks, rates, ends)
    for i in range(2):
        t = np.asarray([5.0, 40.0, 200.0])
        expected = np_warmup_cos(t, 0.0, float(peaks[i]), 10, 100, 0.01)
        np.testing.assert_allclose(warm[i], expected, rtol=1e-12)
    np.testing.assert_allclose(decay[0], [1.0, 0.125, 0.05], rtol=1e-12)  # floor when decaying
    np.testing.assert_allclose(decay[1], [2.0, 2.0 * 1.5**3, 10.0], rtol=1e-12)  # cap when growing


def test_onecycle_momentum_is_low_where_the_rate_peaks():
    steps = jnp.arange(201)
    lr = np.asarray(S.cosine_onecycle_schedule(200, 1.0, 0.3)(steps))
    mom = np.asarray(S.onecycle_momentum(200, 0.3)(steps))
    assert np.argmax(lr) == np.argmin(mom) == 60
    assert mom[0] == mom[-1] == 0.95 and mom[60] == 0.85


BAD = [
    (lambda: S.inverse_time_decay(1.0, 0, 0.5), "decay_steps"),
    (lambda: S.inverse_time_decay(1.0, 10, -0.5), "decay_rate"),
    (lambda: S.piecewise_constant_schedule(1.0, {10: -0.1}), "scale"),
    (lambda: S.cosine_decay_schedule(1.0, 0), "decay_steps"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), "decay_steps"),
    (lambda: S.cyclic_schedule(0.1, 1.0, 0), "step_size_up"),
    (lambda: S.cyclic_schedule(0.1, 1.0, 5, mode="triangle"), "mode"),
    (lambda: S.cyclic_schedule(0.1, 1.0, 5, mode="exp_range", gamma=0.0), "gamma"),
    (lambda: S.cosine_warm_restarts_schedule(1.0, 0), "first_period"),
    (lambda: S.cosine_warm_restarts_schedule(1.0, 10, t_mult=0), "t_mult"),
    (lambda: S.cosine_onecycle_schedule(0, 1.0), "transition_steps"),
    (lambda: S.cosine_onecycle_schedule(100, 1.0, pct_start=1.5), "pct_start"),
    (lambda: S.linear_onecycle_schedule(100, 1.0, 0.5, 0.4), "pct_final"),
    (lambda: S.onecycle_momentum(100, anneal_strategy="cosine"), "anneal_strategy"),
    (lambda: S.piecewise_interpolate_schedule("cubic", 1.0, {}), "interpolate_type"),
    (lambda: S.interpolate_schedule([0, 5], [1.0, 2.0], "cubic"), "interpolate_type"),
    (lambda: S.interpolate_schedule([0, 5, 3], [1.0, 2.0, 3.0]), "non-decreasing"),
    (lambda: S.interpolate_schedule([0, 5], [1.0]), "as many values"),
    (lambda: S.interpolate_schedule([], []), "at least one"),
    (lambda: S.cyclic_schedule(0.1, 1.0, 5, scale_fn=shrinking, scale_mode="epoch"), "scale_mode"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 2, []), "one boundary fewer"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [5, 3]), "non-decreasing"),
    (lambda: S.exponential_decay(1.0, 10, -0.5), "decay_rate"),
    (lambda: S.linear_schedule(1.0, 0.0, float("nan")), "finite number"),
    (lambda: S.sgdr_schedule([]), "at least one"),
]


@pytest.mark.parametrize("make, word", BAD, ids=[w for _, w in BAD])
def test_bad_arguments_raise_at_construction(make, word):
    with pytest.raises(ValueError, match=word):
        make()


# --- the example ---------------------------------------------------------------------------------


def test_schedules_example_writes_a_png(tmp_path):
    main = load_example("schedules").main
    main(["--quick", "--out", str(tmp_path)])
    with Image.open(tmp_path / "schedules.png") as im:
        im.load()
        assert im.size[0] >= 600 and im.size[1] >= 400
        assert len(np.unique(np.asarray(im.convert("L")))) > 20  # something was drawn


# What optax accepts and computes, gradtx accepts and computes the same (real code relies on it:
# the Flax ImageNet example passes transition_steps=8.0).  Degenerate ones warn, as optax logs.
OPTAX_LENIENT = [
    ("float transition_steps", lambda L: L.linear_schedule(1.0, 0.0, 8.0), False),
    ("non-integer steps", lambda L: L.polynomial_schedule(1.0, 0.1, 2, 7.5), False),
    ("zero transition_steps", lambda L: L.linear_schedule(1.0, 0.0, 0), True),
    ("negative transition_steps", lambda L: L.polynomial_schedule(1.0, 0.0, 1.0, -1), True),
    ("negative transition_begin", lambda L: L.exponential_decay(1.0, 4, 0.5, -3), False),
    ("zero decay_rate", lambda L: L.exponential_decay(1.0, 10, 0.0), True),
    ("zero transition_steps, exp", lambda L: L.exponential_decay(1.0, 0, 0.5), True),
    ("alpha above 1", lambda L: L.cosine_decay_schedule(1.0, 10, alpha=1.5), False),
    ("float warmup", lambda L: L.warmup_cosine_decay_schedule(0.0, 1.0, 2.0, 10.0), False),
    ("an unused last boundary", lambda L: L.join_schedules(
        [L.constant_schedule(1.0), L.linear_schedule(2.0, 0.0, 8), L.constant_schedule(3.0)],
        [5, 10, 15]), False),
]  # fmt: skip


@pytest.mark.parametrize(
    "make, warns", [c[1:] for c in OPTAX_LENIENT], ids=[c[0] for c in OPTAX_LENIENT]
)
def test_what_optax_accepts_is_accepted_with_its_numbers(make, warns):
    steps = jnp.arange(0, 20)
    if warns:
        with pytest.warns(UserWarning, match="constant init_value"):
            mine = make(S)
    else:
        mine = make(S)
    np.testing.assert_allclose(mine(steps), make(optax)(steps), rtol=2e-7, atol=1e-7)
