"""Half-precision leaves against a stored-rounding NumPy reference.

A bfloat16 (or float16) leaf with state of its own dtype is computed in float32 and rounded
once: each new state value is rounded to its stored dtype, the update is computed from the state
*as stored*, and the update is rounded once to the leaf's dtype.  The references below do the
same in float64 with an explicit ``R`` (round to the stored dtype), so the library must agree to
within one unit in the last place (ulp) of the stored dtype on every element; an op-by-op
half-precision computation (one rounding per operation) misses that by several ulps.

Each step is checked from the library's own previous state (teacher forcing), so a 1-ulp
difference in one step cannot grow into a trajectory drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gradtx as T

N = 4096
STEPS = 5
B1, B2, EPS = 0.9, 0.99, 1e-6


# name -> (block, reference).  A reference ``ref(g, old, new, t) -> (u, state)`` gets the
# gradient, the state before the step and the library's new state *as stored* (float64 copies of
# the stored values) and returns, exactly: the update computed from the stored new state, and each
# new state value from the old one (a value that depends on another new value, like AMSGrad's
# running max, uses the stored one).  Both must then be the library's outputs rounded once.
def _hat(m, g, t, nesterov=False):
    if nesterov:
        return B1 * m / (1 - B1 ** (t + 1)) + (1 - B1) * g / (1 - B1**t)
    return m / (1 - B1**t)


def _adam_like(m, v, g, t, nesterov=False):
    return _hat(m, g, t, nesterov) / (np.sqrt(v / (1 - B2**t)) + EPS)


def ref_trace(nesterov):
    def ref(g, old, new, t):
        (m,) = new
        return (g + 0.9 * m if nesterov else m), (0.9 * old[0] + g,)

    return ref


def ref_ema(g, old, new, t):
    return new[0] / (1 - 0.9**t), (0.9 * old[0] + 0.1 * g,)


def ref_rms(g, old, new, t):
    return g / np.sqrt(new[0] + EPS), (0.9 * old[0] + 0.1 * g * g,)


def ref_stddev(g, old, new, t):
    (m0, v0), (m, v) = old, new
    return g / np.sqrt(v - m * m + EPS), (0.9 * m0 + 0.1 * g, 0.9 * v0 + 0.1 * g * g)


def ref_rss(g, old, new, t):
    return g / np.sqrt(new[0] + EPS), (old[0] + g * g,)


def _first_moment(g, m):
    return B1 * m + (1 - B1) * g


def _adam_moments(g, old):
    return _first_moment(g, old[0]), B2 * old[1] + (1 - B2) * g * g


def ref_adam(nesterov):
    def ref(g, old, new, t):
        return _adam_like(*new, g, t, nesterov), _adam_moments(g, old)

    return ref


def ref_amsgrad(g, old, new, t):
    m, v, vmax = new
    u = _hat(m, g, t) / (np.sqrt(vmax) + EPS)
    return u, (*_adam_moments(g, old), np.maximum(old[2], v / (1 - B2**t)))


def ref_adamax(g, old, new, t):
    m, n = new
    n_exact = np.maximum(B2 * old[1], abs(g) + EPS)
    return m / ((1 - B1**t) * n), (_first_moment(g, old[0]), n_exact)


def ref_belief(g, old, new, t):
    m, s = new
    s_exact = B2 * old[1] + (1 - B2) * (g - m) ** 2 + EPS
    return _adam_like(m, s, g, t), (_first_moment(g, old[0]), s_exact)


def ref_yogi(g, old, new, t):
    g2 = g * g
    v = old[1] - (1 - B2) * np.sign(old[1] - g2) * g2
    return _adam_like(*new, g, t), (_first_moment(g, old[0]), v)


def ref_lion(g, old, new, t):
    (m,) = old
    return np.sign(_first_moment(g, m)), (B2 * m + (1 - B2) * g,)


CASES: dict[str, tuple[Callable[[], Any], Callable]] = {
    "trace": (lambda: T.trace(0.9), ref_trace(False)),
    "trace-nesterov": (lambda: T.trace(0.9, nesterov=True), ref_trace(True)),
    "ema": (lambda: T.ema(0.9), ref_ema),
    "scale_by_rms": (lambda: T.scale_by_rms(0.9, EPS), ref_rms),
    "scale_by_stddev": (lambda: T.scale_by_stddev(0.9, EPS), ref_stddev),
    "scale_by_rss": (lambda: T.scale_by_rss(0.1, EPS), ref_rss),
    "scale_by_adam": (lambda: T.scale_by_adam(B1, B2, EPS), ref_adam(False)),
    "scale_by_adam-nesterov": (lambda: T.scale_by_adam(B1, B2, EPS, nesterov=True), ref_adam(True)),
    "scale_by_amsgrad": (lambda: T.scale_by_amsgrad(B1, B2, EPS), ref_amsgrad),
    "scale_by_adamax": (lambda: T.scale_by_adamax(B1, B2, EPS), ref_adamax),
    "scale_by_belief": (lambda: T.scale_by_belief(B1, B2, EPS, EPS), ref_belief),
    "scale_by_yogi": (lambda: T.scale_by_yogi(B1, B2, EPS), ref_yogi),
    "scale_by_lion": (lambda: T.scale_by_lion(B1, B2), ref_lion),
}


def _state_arrays(state) -> list[jax.Array]:
    """The block's per-parameter state arrays (one leaf each), in field order."""
    return [x for x in jax.tree.leaves(state) if np.shape(x) == (N,)]


def _ambiguous(exact: np.ndarray, dtype: Any) -> np.ndarray:
    """Elements within float32 rounding of a rounding tie of ``dtype``: computed in float32 they
    may round either way, and XLA may compute such a value twice (once for the stored buffer, once
    fused into the update, with different contraction), so the update can see either neighbour."""
    lo, hi = (exact * (1 + f) for f in (-(2.0**-20), 2.0**-20))
    return lo.astype(dtype) != hi.astype(dtype)


def _assert_within_one_ulp(actual, expected_f64, dtype, what, skip=None):
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected_f64, np.float64)
    ulp = np.spacing(np.abs(e).astype(dtype)).astype(np.float64)
    err = np.abs(a - e) / ulp  # 0.5 for a correctly rounded value, at most
    # Where a sum nearly cancels (e.g. m = 0.9 m + g), float32 intermediates are off by far more
    # than the tiny result's ulp; judge those elements against the array's scale instead.
    err = np.where(np.abs(a - e) <= 1e-5 * np.sqrt(np.mean(e * e)), 0.0, err)
    if skip is not None:
        # ties are common: half-precision inputs have short mantissas (sums of them are often
        # exact midpoints); the update is still checked on the other >= 90% of the elements
        assert np.mean(skip) < 0.1, f"{what}: {np.mean(skip):.3f} of the elements are ambiguous"
        err = np.where(skip, 0.0, err)
    assert np.max(err) <= 1.0, f"{what}: {np.max(err):.2f} ulp at {int(np.argmax(err))}"
    # a rounding differs from float64's only where the exact value lies near a midpoint
    assert np.mean(err <= 0.5) >= 0.95, f"{what}: only {np.mean(err <= 0.5):.3f} within 1/2 ulp"


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("name", list(CASES))
def test_half_precision_leaf_matches_stored_rounding_reference(name, dtype):
    make, ref = CASES[name]
    np_dtype = ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.float16
    tx = make()
    rng = np.random.default_rng(0)
    params = jnp.zeros(N, dtype)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for t in range(1, STEPS + 1):
        # gradients spanning three decades, both signs
        g = (rng.standard_normal(N) * 10.0 ** rng.uniform(-2, 1, N)).astype(np_dtype)
        before = [np.asarray(x, np.float64) for x in _state_arrays(state)]
        u, state = update(jnp.asarray(g), state, params)
        after = _state_arrays(state)
        assert u.dtype == dtype and all(x.dtype == dtype for x in after), name
        stored = tuple(np.asarray(x, np.float64) for x in after)
        u_ref, s_ref = ref(g.astype(np.float64), tuple(before), stored, t)
        for k, (x, x_ref) in enumerate(zip(after, s_ref, strict=True)):
            _assert_within_one_ulp(x, x_ref, np_dtype, f"{name} state[{k}], step {t}")
        ties = np.any([_ambiguous(x, np_dtype) for x in s_ref], axis=0)
        _assert_within_one_ulp(u, u_ref, np_dtype, f"{name} update, step {t}", skip=ties)
