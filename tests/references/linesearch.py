"""References of ``gradtx/optimizers/linesearch.py``: the backtracking (Armijo) line search and
the zoom line search for the strong Wolfe conditions (Nocedal & Wright, *Numerical Optimization*,
Algorithms 3.5 and 3.6), with the additions optax documents: Hager & Zhang's approximate
sufficient decrease near a minimum, safeguarded cubic/quadratic interpolation, a fallback to the
best point with sufficient decrease, an interval-length threshold and a step-size cap.

A line search scales the incoming direction ``u`` by a step size ``eta`` chosen from evaluations
of the objective along ``w + eta u``: ``step(u, w, t, value=f(w), objective=...)`` with
``objective(w') -> (f(w'), grad f(w'))`` (``references.run`` passes the harness's loss; the tests
of ``test_lbfgs.py`` pass their own).  Written as plain loops over the textbook's phases.
"""

from __future__ import annotations

import math

import numpy as np

from . import reference
from .core import Ref, dot


def _along(params, eta, direction):
    return [p + eta * d for p, d in zip(params, direction, strict=True)]


def _clean(x: float) -> float:
    """An error: at least 0, NaN (outside the objective's domain) counted as infinite."""
    return math.inf if math.isnan(x) else max(float(x), 0.0)


class Backtracking(Ref):
    """Armijo backtracking: the first ``eta = eta_0 * decrease_factor^k`` (``k = 0 ..
    max_backtracking_steps``) with ``f(w + eta u) <= (1 + rtol) f(w) + c eta <g, u> + atol``,
    ``eta_0 = min(increase_factor * eta_prev, max_learning_rate)``; after the last reduction the
    last ``eta`` is kept, or 0 if ``f`` is not finite there."""

    needs_objective = True

    def __init__(self, max_steps, slope_rtol, decrease, increase, max_lr, atol, rtol):
        self.max_steps, self.c, self.atol, self.rtol = max_steps, slope_rtol, atol, rtol
        self.decrease, self.increase, self.max_lr = decrease, increase, max_lr

    def init(self, params):
        self.eta = 1.0

    def step(self, grads, params, t, value=None, objective=None):
        slope = dot(objective(params)[1], grads)
        eta = min(self.increase * self.eta, self.max_lr)
        for k in range(self.max_steps + 1):
            if k > 0:
                eta *= self.decrease
            with np.errstate(all="ignore"):
                f = objective(_along(params, eta, grads))[0]
                err = _clean(f - (1 + self.rtol) * value - eta * self.c * slope)
            if err <= self.atol:
                break
        self.eta = 0.0 if math.isinf(err) else eta
        return [self.eta * u for u in grads]


class Zoom(Ref):
    """The zoom line search; see ``gradtx.scale_by_zoom_linesearch`` for the criteria.

    Phase 1 (Algorithm 3.5) tries ``eta_0`` (1, or the last accepted step with ``keep``) and grows
    it by ``increase_factor`` (capped at ``max_learning_rate``) until a trial is acceptable or an
    interval holding an acceptable step is bracketed: the trial lacks sufficient decrease or does
    not improve on the previous one (``[prev, trial]``), or its slope is non-negative
    (``[trial, prev]``).  Phase 2 (Algorithm 3.6) shrinks ``[lo, hi]`` (``lo`` the end with the
    lower value) trying the minimiser of the cubic through ``lo`` (value and slope), ``hi`` and the
    end replaced last, if it lies inside the interval's middle 60%, else that of the quadratic
    through ``lo`` (value and slope) and ``hi``, if inside the middle 80%, else the midpoint.
    The search fails after ``max_linesearch_steps`` evaluations, or once the interval is shorter
    than ``stepsize_precision`` while some trial had sufficient decrease; it then takes the best
    trial with sufficient decrease (lowest value in phase 2, latest in phase 1), or the last trial
    when none had it (no step when ``f`` is not finite there)."""

    needs_objective = True

    def __init__(self, max_steps, max_lr, tol, increase, c1, c2, c3, precision, strategy):
        self.max_steps, self.max_lr, self.tol, self.increase = max_steps, max_lr, tol, increase
        self.c1, self.c2, self.c3, self.precision = c1, c2, c3, precision
        self.strategy = strategy

    def init(self, params):
        self.eta = 1.0

    def errors(self, eta, f, s):
        """(decrease error, curvature error) of a trial: value ``f`` and slope ``s`` at ``eta``."""
        f0, s0 = self.f0, self.s0
        with np.errstate(all="ignore"):
            decrease = f - f0 - self.c1 * eta * s0  # Armijo
            if self.c3 is not None:  # Hager & Zhang: slope test, once f is within c3 |f0| of f0
                approx = np.maximum(s - (2 * self.c1 - 1) * s0, f - f0 - self.c3 * abs(f0))
                decrease = np.minimum(approx, decrease)
            curvature = abs(s) - self.c2 * abs(s0)
        return _clean(decrease), _clean(curvature)

    def search(self, evaluate, guess):
        """The accepted ``(eta, value, gradient)``."""
        tol, n = self.tol, 0
        prev = (0.0, self.f0, self.s0, self.g0)
        safe = prev
        # phase 1: bracketing
        while True:
            eta = guess if n == 0 else self.increase * prev[0]
            capped = self.max_lr is not None and eta >= self.max_lr
            if self.max_lr is not None:
                eta = min(eta, self.max_lr)
            trial = evaluate(eta)
            n += 1
            dec, curv = self.errors(*trial[:3])
            if dec <= tol:
                safe = trial
            if max(dec, curv) <= tol:
                return trial
            if dec > 0 or (trial[1] >= prev[1] and n > 1):
                lo, hi = prev, trial
            elif trial[2] >= 0:
                lo, hi = trial, prev
            elif capped:  # no larger step may be tried: keep this one
                return trial
            else:
                lo = hi = None
            if n >= self.max_steps:
                return self.fallback(trial, dec, safe)
            if lo is not None:
                break
            prev = trial
        # phase 2: zoom
        ref = lo
        while True:
            width = abs(hi[0] - lo[0])
            left, right = min(lo[0], hi[0]), max(lo[0], hi[0])
            eta = _cubic_min(lo, hi, ref)
            if not (left + 0.2 * width < eta < right - 0.2 * width):
                eta = _quad_min(lo, hi)
                if not (left + 0.1 * width < eta < right - 0.1 * width):
                    eta = (lo[0] + hi[0]) / 2
            trial = evaluate(eta)
            n += 1
            dec, curv = self.errors(*trial[:3])
            if dec <= tol and trial[1] < safe[1]:
                safe = trial
            if max(dec, curv) <= tol:
                return trial
            if dec > 0 or trial[1] >= lo[1]:
                ref, hi = hi, trial
            elif trial[2] * (hi[0] - lo[0]) >= 0:
                ref, hi, lo = hi, lo, trial
            else:
                ref, lo = lo, trial
            if n >= self.max_steps or (width <= self.precision and safe[0] > 0):
                return self.fallback(trial, dec, safe)

    @staticmethod
    def fallback(trial, dec, safe):
        return safe if safe[0] > 0 or math.isinf(dec) else trial

    def step(self, grads, params, t, value=None, objective=None):
        self.f0, self.g0 = float(value), objective(params)[1]
        self.s0 = dot(self.g0, grads)

        def evaluate(eta):
            with np.errstate(all="ignore"):
                f, g = objective(_along(params, eta, grads))
            return (eta, float(f), dot(g, grads), g)

        guess = 1.0 if self.strategy == "one" else self.eta
        self.eta = self.search(evaluate, guess)[0]
        return [self.eta * u for u in grads]


def _cubic_min(a, b, c) -> float:
    """Minimiser of the cubic with value ``a[1]`` and slope ``a[2]`` at ``a[0]`` through
    ``(b[0], b[1])`` and ``(c[0], c[1])``; NaN when there is none."""
    with np.errstate(all="ignore"):
        db, dc = b[0] - a[0], c[0] - a[0]
        rb, rc = b[1] - a[1] - a[2] * db, c[1] - a[1] - a[2] * dc
        denom = np.float64((db * dc) ** 2 * (db - dc))
        cubic = (dc**2 * rb - db**2 * rc) / denom
        square = (-(dc**3) * rb + db**3 * rc) / denom
        return float(a[0] + (-square + np.sqrt(square * square - 3 * cubic * a[2])) / (3 * cubic))


def _quad_min(a, b) -> float:
    """Minimiser of the parabola with value ``a[1]`` and slope ``a[2]`` at ``a[0]`` through
    ``(b[0], b[1])``."""
    with np.errstate(all="ignore"):
        db = np.float64(b[0] - a[0])
        curvature = (b[1] - a[1] - a[2] * db) / db**2
        return float(a[0] - a[2] / (2 * curvature))


@reference("scale_by_backtracking_linesearch")
def scale_by_backtracking_linesearch(
    max_backtracking_steps,
    slope_rtol=1e-4,
    decrease_factor=0.8,
    increase_factor=1.5,
    max_learning_rate=1.0,
    atol=0.0,
    rtol=0.0,
    store_grad=False,
    verbose=False,
):
    del store_grad, verbose  # where the next gradient comes from, printing: same numbers
    return Backtracking(
        max_backtracking_steps, slope_rtol, decrease_factor, increase_factor,
        max_learning_rate, atol, rtol,
    )  # fmt: skip


@reference("scale_by_zoom_linesearch")
def scale_by_zoom_linesearch(
    max_linesearch_steps,
    max_learning_rate=None,
    tol=0.0,
    increase_factor=2.0,
    slope_rtol=1e-4,
    curv_rtol=0.9,
    approx_dec_rtol=1e-6,
    stepsize_precision=1e-5,
    initial_guess_strategy="keep",
    verbose=False,
):
    del verbose
    return Zoom(
        max_linesearch_steps, max_learning_rate, tol, increase_factor, slope_rtol, curv_rtol,
        approx_dec_rtol, stepsize_precision, initial_guess_strategy,
    )  # fmt: skip
