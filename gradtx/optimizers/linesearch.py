"""Line searches: the step size along the incoming direction ``u`` is chosen by evaluating the
objective ``f`` at trial points ``w + eta u``.  Both blocks scale ``u`` by the accepted ``eta``.

Each ``update`` needs the objective and its first-order information at the current params:
``tx.update(u, state, params, value=f(w), grad=grad f(w), value_fn=f, **data)``, where ``data``
holds ``f``'s other keyword arguments (a batch).  Keywords that are not parameters of ``f`` are
ignored, as everywhere in gradtx (optax raises a TypeError for them).  The value and gradient at
the accepted point are kept in the state, and ``value_and_grad_from_state(f)`` hands them to the
next step instead of evaluating ``f`` again.

Notation: ``w`` the params, ``u`` the direction, ``g = grad f(w)``, the slope
``f'(eta) = <grad f(w + eta u), u>`` (real part for complex params), ``f'(0) = <g, u>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule
from gradtx.registry import register
from gradtx.state import tree_get

Tree = kit.Tree
Slope = Annotated[ScalarOrSchedule, kit.Range("[0, 1)")]
Shrink = Annotated[ScalarOrSchedule, kit.Range("(0, 1)")]
Growth = Annotated[ScalarOrSchedule, kit.Range("(0, inf]")]
Bound = Annotated[ScalarOrSchedule, kit.Range("(0, inf]")]
Curvature = Annotated[ScalarOrSchedule, kit.Range("[0, inf]")]
Count = Annotated[int, kit.Range("[0, inf)", integer=True)]

_RESERVED = ("value", "grad", "value_fn")


# --- what every line search reads from update's keywords -------------------------------------


class _Objective(NamedTuple):
    value: jax.Array  # f(w), in the scalar dtype
    grad: Tree  # grad f(w), in the params' dtypes
    value_fn: Callable[..., jax.Array]  # f(w') with the batch bound


def _objective(where: str, params: Tree, extra: dict[str, Any], *, need_grad: bool) -> _Objective:
    """The objective from ``update``'s keywords; a clear error naming what is missing."""
    kit.need_params(where, params)
    missing = [k for k in _RESERVED if extra.get(k) is None and (need_grad or k != "grad")]
    if missing:
        raise ValueError(
            f"{where}: update needs {', '.join(f'{k}=' for k in missing)} (the objective "
            "value_fn(params, **data) -> scalar, its value and gradient at params): "
            "tx.update(grads, state, params, value=value, grad=grad, value_fn=f), where "
            "value, grad = gradtx.value_and_grad_from_state(f)(params, state=state)"
        )
    fn = extra["value_fn"]
    names = set(inspect.signature(fn).parameters)
    data = {k: v for k, v in extra.items() if k in names and k not in _RESERVED}
    dt = kit.scalar_dtype(params)
    value = jnp.asarray(extra["value"]).real.astype(dt)
    grad = extra.get("grad")
    grad = None if grad is None else kit.cast_like(grad, params)
    return _Objective(value, grad, lambda w: fn(w, **data))


def _along(params: Tree, stepsize: jax.Array, updates: Tree) -> Tree:
    """``w + eta u``, each leaf computed in its own precision (at least float32)."""

    def leaf(p, u):
        dt = kit.compute_dtype(p, u)
        return (p.astype(dt) + stepsize.astype(dt) * u.astype(dt)).astype(p.dtype)

    return jax.tree.map(leaf, params, updates)


def _slope(grad: Tree, updates: Tree, dt: Any) -> jax.Array:
    """``Re <grad, u>`` with JAX's convention that ``grad`` of a real function of complex
    params is the conjugate direction: the derivative of ``eta -> f(w + eta u)``."""
    return kit.vdot(jax.tree.map(jnp.conj, grad), updates).astype(dt)


def _scaled(stepsize: jax.Array, updates: Tree) -> Tree:
    return jax.tree.map(
        lambda u: (stepsize.astype(kit.compute_dtype(u)) * u).astype(u.dtype), updates
    )


def _nan_to_inf(x: jax.Array) -> jax.Array:
    # a NaN objective (outside its domain) counts as an infinitely violated criterion
    return jnp.where(jnp.isnan(x), jnp.inf, x)


def _report(verbose: bool, show: jax.Array, message: str, **values: jax.Array) -> None:
    if verbose:
        jax.lax.cond(show, lambda: jax.debug.print(message, **values), lambda: None)


# --- backtracking (Armijo) ---------------------------------------------------------------------


class BacktrackingLinesearchInfo(NamedTuple):
    """``num_linesearch_steps``: evaluations made; ``decrease_error``: by how much the accepted
    step misses the decrease criterion (0: it meets it)."""

    num_linesearch_steps: jax.Array
    decrease_error: jax.Array


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """``learning_rate``: the accepted step size; ``value``: ``f`` there; ``grad``: ``grad f``
    there with ``store_grad=True`` (``None`` otherwise); ``info``: diagnostics."""

    learning_rate: jax.Array
    value: jax.Array
    grad: Tree | None
    info: BacktrackingLinesearchInfo


class _Backtrack(NamedTuple):
    stepsize: jax.Array
    value: jax.Array
    error: jax.Array
    steps: jax.Array


@register(
    "block",
    optax="scale_by_backtracking_linesearch",
    traced=None,
    traits=("needs_value",),
    examples=[
        {"max_backtracking_steps": 15},
        {
            "max_backtracking_steps": 6,
            "slope_rtol": 0.3,
            "decrease_factor": 0.5,
            "increase_factor": 2.0,
            "max_learning_rate": 0.8,
            "atol": 1e-3,
            "rtol": 1e-4,
            "store_grad": True,
        },
    ],
)
def scale_by_backtracking_linesearch(
    max_backtracking_steps: Count,
    slope_rtol: Slope = 1e-4,
    decrease_factor: Shrink = 0.8,
    increase_factor: Growth = 1.5,
    max_learning_rate: Bound = 1.0,
    atol: kit.NonNegative = 0.0,
    rtol: kit.NonNegative = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> GradientTransformation:
    """Backtracking line search (Armijo): ``u <- eta u`` for the first
    ``eta = min(increase_factor * eta_prev, max_learning_rate) * decrease_factor^k``,
    ``k = 0, 1, ...``, with ``f(w + eta u) <= (1 + rtol) f(w) + slope_rtol eta f'(0) + atol``.
    After ``max_backtracking_steps`` reductions the last ``eta`` is taken (``info`` tells by
    how much it misses); a non-finite ``f`` there takes ``eta = 0``.  ``u`` should be a descent
    direction (``f'(0) < 0``).  Needs ``value=``, ``grad=`` and ``value_fn=`` at every update.

    Args:
      max_backtracking_steps: the most reductions of the step size per update.
      slope_rtol: the fraction ``c`` of the linear decrease ``eta f'(0)`` required.
      decrease_factor: the factor each reduction multiplies ``eta`` by.
      increase_factor: the first trial is ``increase_factor`` times the previous ``eta``
        (``inf``: always ``max_learning_rate``).
      max_learning_rate: the largest step size tried.
      atol: absolute tolerance of the decrease criterion.
      rtol: relative tolerance of the decrease criterion (on ``f(w)``).
      store_grad: also evaluate and keep ``grad f`` at the accepted point (for
        ``value_and_grad_from_state``).
      verbose: print diagnostics when no step meets the criterion.

    optax: ``optax.scale_by_backtracking_linesearch``; torch: none.

    Example:
        Gradient descent with a backtracked step on ``f(w) = sum(w**2)``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> f = lambda w: jnp.sum(w**2)
        >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_backtracking_linesearch(15))
        >>> w = jnp.array([1.0, 2.0, 3.0])
        >>> state = tx.init(w)
        >>> for _ in range(3):
        ...     value, grad = f(w), 2 * w
        ...     u, state = tx.update(grad, state, w, value=value, grad=grad, value_fn=f)
        ...     w = gradtx.apply_updates(w, u)
        ...     print(f"{f(w):.4f}")
        5.0400
        1.8144
        0.6532
    """

    def init(params):
        dt = kit.scalar_dtype(params)
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones([], dt),
            value=jnp.full([], jnp.inf, dt),
            grad=kit.zeros_like(params) if store_grad else None,
            info=BacktrackingLinesearchInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, dt)),
        )

    def step(updates, state, params, h):
        where = "scale_by_backtracking_linesearch"
        obj = _objective(where, params, h.extra, need_grad=True)
        dt = obj.value.dtype
        slope = _slope(obj.grad, updates, dt)

        def error(stepsize, value):
            # Armijo with tolerances: f(w + eta u) - (1 + rtol) f(w) - c eta f'(0) <= atol
            gap = value - (1 + h.rtol) * obj.value - stepsize * h.slope_rtol * slope
            return jnp.maximum(_nan_to_inf(gap), 0).astype(dt)

        def body(s):
            stepsize = jnp.where(s.steps > 0, h.decrease_factor * s.stepsize, s.stepsize)
            value = jnp.asarray(obj.value_fn(_along(params, stepsize, updates))).real.astype(dt)
            return _Backtrack(stepsize.astype(dt), value, error(stepsize, value), s.steps + 1)

        first = jnp.minimum(h.increase_factor * state.learning_rate, h.max_learning_rate)
        start = _Backtrack(
            first.astype(dt), obj.value, jnp.full([], jnp.inf, dt), jnp.zeros([], jnp.int32)
        )
        keep_going = lambda s: ~(s.error <= h.atol) & (s.steps <= max_backtracking_steps)
        s = jax.lax.while_loop(keep_going, body, start)
        grad = None
        if store_grad:  # at the last point tried, as the next update's starting gradient
            grad = kit.cast_like(
                jax.grad(obj.value_fn)(_along(params, s.stepsize, updates)), params
            )
        _report(
            verbose,
            s.error > h.atol,
            "scale_by_backtracking_linesearch: no step size meets the decrease criterion "
            "(value {value}, slope {slope}, last step size {stepsize}, error {error})",
            value=obj.value,
            slope=slope,
            stepsize=s.stepsize,
            error=s.error,
        )
        # a non-finite objective at the last trial: no step at all rather than NaNs
        stepsize = jnp.where(jnp.isinf(s.error), 0, s.stepsize).astype(dt)
        new = ScaleByBacktrackingLinesearchState(
            stepsize, s.value, grad, BacktrackingLinesearchInfo(s.steps, s.error)
        )
        return _scaled(stepsize, updates), new

    hyper = {
        "slope_rtol": slope_rtol,
        "decrease_factor": decrease_factor,
        "increase_factor": increase_factor,
        "max_learning_rate": max_learning_rate,
        "atol": atol,
        "rtol": rtol,
    }
    return kit.block("scale_by_backtracking_linesearch", step, init, hyper=hyper)


# --- zoom (strong Wolfe) -----------------------------------------------------------------------


class ZoomLinesearchInfo(NamedTuple):
    """``num_linesearch_steps``: evaluations made; ``decrease_error`` / ``curvature_error``: by
    how much the last trial misses the decrease / curvature criterion (0: it meets it).  A
    positive curvature error is mild (e.g. ``max_learning_rate`` too small); a positive
    decrease error means the objective may not have decreased."""

    num_linesearch_steps: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array


class ScaleByZoomLinesearchState(NamedTuple):
    """``learning_rate``: the accepted step size; ``value`` and ``grad``: ``f`` and its gradient
    there (reused by ``value_and_grad_from_state``); ``info``: diagnostics."""

    learning_rate: jax.Array
    value: jax.Array
    grad: Tree
    info: ZoomLinesearchInfo


class _Point(NamedTuple):
    """A trial step size with ``f`` and ``f'`` there."""

    t: jax.Array
    f: jax.Array
    s: jax.Array


class _Zoom(NamedTuple):
    steps: jax.Array  # evaluations made
    trial: _Point  # the latest trial
    grad: Tree  # grad f at the latest trial
    decrease_error: jax.Array
    curvature_error: jax.Array
    bracketed: jax.Array  # phase 2: [low, high] contains an acceptable step
    done: jax.Array
    failed: jax.Array
    low: _Point  # the end with the lower value (not the smaller step)
    high: _Point
    ref: _Point  # a third point for the cubic fit (its slope is unused)
    safe: _Point  # the best trial meeting the decrease criterion (t = 0: none yet)
    safe_grad: Tree


def _cubic_min(a: _Point, b: _Point, c: _Point) -> jax.Array:
    """The minimiser of the cubic through ``(a.t, a.f)`` with slope ``a.s``, ``(b.t, b.f)`` and
    ``(c.t, c.f)``: ``p(x) = A d^3 + B d^2 + a.s d + a.f``, ``d = x - a.t``; NaN when it has no
    minimum (the caller rejects it)."""
    db, dc = b.t - a.t, c.t - a.t
    rb, rc = b.f - a.f - a.s * db, c.f - a.f - a.s * dc  # what the linear part leaves
    denom = (db * dc) ** 2 * (db - dc)
    cubic = (dc**2 * rb - db**2 * rc) / denom
    square = (-(dc**3) * rb + db**3 * rc) / denom
    return a.t + (-square + jnp.sqrt(square**2 - 3 * cubic * a.s)) / (3 * cubic)


def _quad_min(a: _Point, b: _Point) -> jax.Array:
    """The minimiser of the parabola through ``(a.t, a.f)`` with slope ``a.s`` and
    ``(b.t, b.f)``."""
    db = b.t - a.t
    curvature = (b.f - a.f - a.s * db) / db**2
    return a.t - a.s / (2 * curvature)


def _pick(cond: jax.Array, yes: Any, no: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), yes, no)


@register(
    "block",
    optax="scale_by_zoom_linesearch",
    traced=None,
    traits=("needs_value",),
    examples=[
        {"max_linesearch_steps": 15},
        {"max_linesearch_steps": 8, "initial_guess_strategy": "one", "approx_dec_rtol": None},
        {
            "max_linesearch_steps": 10,
            "max_learning_rate": 0.7,
            "tol": 1e-6,
            "increase_factor": 3.0,
            "slope_rtol": 0.2,
            "curv_rtol": 0.3,
            "approx_dec_rtol": 1e-4,
            "stepsize_precision": 1e-3,
        },
    ],
)
def scale_by_zoom_linesearch(
    max_linesearch_steps: Count,
    max_learning_rate: Bound | None = None,
    tol: kit.NonNegative = 0.0,
    increase_factor: Growth = 2.0,
    slope_rtol: Slope = 1e-4,
    curv_rtol: Curvature = 0.9,
    approx_dec_rtol: float | None = 1e-6,
    stepsize_precision: kit.NonNegative = 1e-5,
    initial_guess_strategy: Literal["one", "keep"] = "keep",
    verbose: bool = False,
) -> GradientTransformation:
    """Zoom line search for the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5 and
    3.6): ``u <- eta u`` with ``eta`` meeting, up to ``tol``,

    - sufficient decrease ``f(w + eta u) <= f(w) + slope_rtol eta f'(0)``, or, once
      ``f(w + eta u) <= f(w) + approx_dec_rtol |f(w)|``, Hager & Zhang's approximate form
      ``f'(eta) <= (2 slope_rtol - 1) f'(0)`` (exact where the first is lost in rounding);
    - small curvature ``|f'(eta)| <= curv_rtol |f'(0)|`` (``curv_rtol=inf`` drops it).

    Phase 1 tries ``eta_0`` (1, or the previous step size with ``initial_guess_strategy=
    "keep"``), then grows it by ``increase_factor`` until an interval holding an acceptable step
    is bracketed; phase 2 shrinks the interval, trying the minimiser of a cubic fit, else of a
    quadratic fit, else the midpoint.  Without success after ``max_linesearch_steps``
    evaluations, or once the interval is below ``stepsize_precision``, the best step meeting the
    decrease criterion is taken (if none, the last one).  ``f`` and ``grad f`` at the accepted
    point stay in the state.  Needs ``value=``, ``grad=`` and ``value_fn=`` at every update.

    Args:
      max_linesearch_steps: the most evaluations of ``f`` per update.
      max_learning_rate: the largest step size tried (``None``: no bound).
      tol: tolerance of both criteria.
      increase_factor: how fast phase 1 grows the step size.
      slope_rtol: the fraction ``c1`` of the linear decrease required.
      curv_rtol: the fraction ``c2`` of ``|f'(0)|`` the slope must fall below.
      approx_dec_rtol: relative tolerance on ``f(w)`` that enables the approximate decrease
        criterion (``None``: Armijo's alone, the textbook form).
      stepsize_precision: the interval length at which phase 2 settles for sufficient decrease.
      initial_guess_strategy: ``"one"`` (quasi-Newton directions) or ``"keep"`` (gradient
        directions: start from the previous step size).
      verbose: print diagnostics when the search fails.

    optax: ``optax.scale_by_zoom_linesearch`` (for complex params the slope at 0 is taken as
    ``Re <grad f, u>`` with JAX's conjugate gradient, like the slopes of the trials); torch:
    ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` uses a similar search
    (``from_torch("LBFGS", ...)`` has its exact rules).

    Example:
        The exact step of gradient descent on a quadratic is found in one update:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)
        >>> tx = gradtx.chain(gradtx.sgd(1.0), gradtx.scale_by_zoom_linesearch(10))
        >>> w = jnp.array([1.0, 1.0])
        >>> grad = jnp.array([1.0, 4.0]) * w
        >>> u, state = tx.update(grad, tx.init(w), w, value=f(w), grad=grad, value_fn=f)
        >>> eta = gradtx.tree_get(state, "learning_rate")
        >>> print(f"{float(eta):.4f}", f"{float(f(w + u)):.4f}")
        0.2615 0.2769
    """
    if approx_dec_rtol is not None:  # None is allowed here although the default is a number
        kit.check_ranges("scale_by_zoom_linesearch", approx_dec_rtol=(approx_dec_rtol, "[0, inf)"))
    if initial_guess_strategy not in ("one", "keep"):
        raise ValueError(
            f"scale_by_zoom_linesearch: initial_guess_strategy={initial_guess_strategy!r}; "
            "allowed: 'one' or 'keep'"
        )

    def init(params):
        dt = kit.scalar_dtype(params)
        inf = jnp.full([], jnp.inf, dt)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones([], dt),
            value=inf,
            grad=kit.zeros_like(params),
            info=ZoomLinesearchInfo(jnp.zeros([], jnp.int32), inf, inf),
        )

    def step(updates, state, params, h):
        obj = _objective("scale_by_zoom_linesearch", params, h.extra, need_grad=True)
        dt = obj.value.dtype
        start = _Point(jnp.zeros([], dt), obj.value, _slope(obj.grad, updates, dt))
        guess = jnp.ones([], dt) if initial_guess_strategy == "one" else state.learning_rate
        value_and_grad = jax.value_and_grad(obj.value_fn)
        cast = lambda x: jnp.asarray(x).astype(dt)

        def evaluate(t):
            value, grad = value_and_grad(_along(params, t, updates))
            grad = kit.cast_like(grad, params)
            return _Point(t, jnp.asarray(value).real.astype(dt), _slope(grad, updates, dt)), grad

        def errors(p):
            decrease = p.f - start.f - h.slope_rtol * p.t * start.s
            if approx_dec_rtol is not None:
                # Hager & Zhang's criterion, only near enough to a minimum (their (26)-(27))
                approx = p.s - (2 * h.slope_rtol - 1) * start.s
                near = p.f - start.f - h.approx_dec_rtol * jnp.abs(start.f)
                decrease = jnp.minimum(jnp.maximum(approx, near), decrease)
            curvature = jnp.abs(p.s) - h.curv_rtol * jnp.abs(start.s)
            clean = lambda x: _nan_to_inf(jnp.maximum(x, 0)).astype(dt)
            return clean(decrease), clean(curvature)

        def bracket(z):
            """Algorithm 3.5: grow the step until [low, high] holds an acceptable one."""
            t = jnp.where(z.steps == 0, guess, h.increase_factor * z.trial.t)
            capped = jnp.asarray(False)
            if max_learning_rate is not None:
                capped = t >= h.max_learning_rate
                t = jnp.minimum(t, h.max_learning_rate)
            p, grad = evaluate(cast(t))
            dec, curv = errors(p)
            accepted = jnp.maximum(dec, curv) <= h.tol
            safe, safe_grad = _pick(dec <= h.tol, (p, grad), (z.safe, z.safe_grad))
            overshot = (dec > 0) | ((p.f >= z.trial.f) & (z.steps > 0))
            uphill = (p.s >= 0) & ~overshot
            low, high = _pick(uphill, (p, z.trial), (z.trial, p))
            bracketed = overshot | uphill | accepted
            # at the cap without a bracket no larger step can meet the curvature condition
            done = accepted | (capped & ~bracketed)
            failed = (z.steps + 1 >= max_linesearch_steps) & ~done
            return _Zoom(z.steps + 1, p, grad, dec, curv, bracketed, done, failed, low, high,
                         low, safe, safe_grad)  # fmt: skip

        def zoom(z):
            """Algorithm 3.6: shrink [low, high] by interpolation."""
            lo, hi = z.low, z.high
            width = jnp.abs(hi.t - lo.t)
            left, right = jnp.minimum(lo.t, hi.t), jnp.maximum(lo.t, hi.t)
            inside = lambda x, margin: (x > left + margin) & (x < right - margin)
            cubic, quad = _cubic_min(lo, hi, z.ref), _quad_min(lo, hi)
            t = jnp.where(
                inside(cubic, 0.2 * width),
                cubic,
                jnp.where(inside(quad, 0.1 * width), quad, (lo.t + hi.t) / 2),
            )
            p, grad = evaluate(cast(t))
            dec, curv = errors(p)
            accepted = jnp.maximum(dec, curv) <= h.tol
            better = (dec <= h.tol) & (p.f < z.safe.f)
            safe, safe_grad = _pick(better, (p, grad), (z.safe, z.safe_grad))
            rejected = (dec > 0) | (p.f >= lo.f)  # p becomes the high end
            flip = (p.s * (hi.t - lo.t) >= 0) & ~rejected  # the old low becomes the high end
            high = _pick(rejected, p, _pick(flip, lo, hi))
            low = _pick(rejected, lo, p)
            ref = _pick(rejected | flip, hi, lo)  # the end just replaced
            # an interval below the precision ends the search once a safe step exists (a
            # very steep objective may need tiny steps, so without one it keeps going)
            small = (width <= h.stepsize_precision) & (safe.t > 0)
            failed = ((z.steps + 1 >= max_linesearch_steps) | small) & ~accepted
            return _Zoom(z.steps + 1, p, grad, dec, curv, z.bracketed, accepted, failed, low,
                         high, ref, safe, safe_grad)  # fmt: skip

        inf, no = jnp.full([], jnp.inf, dt), jnp.asarray(False)
        z = _Zoom(jnp.zeros([], jnp.int32), start, obj.grad, inf, inf, no, no, no, start, start,
                  start, start, obj.grad)  # fmt: skip
        z = jax.lax.while_loop(
            lambda z: ~(z.done | z.failed), lambda z: jax.lax.cond(z.bracketed, zoom, bracket, z), z
        )
        # failure: the best step with sufficient decrease, or (an objective that is not finite
        # at the last trial) no step
        fallback = z.failed & ((z.safe.t > 0) | jnp.isinf(z.decrease_error))
        final, grad = _pick(fallback, (z.safe, z.safe_grad), (z.trial, z.grad))
        _report(
            verbose,
            z.failed,
            "scale_by_zoom_linesearch: the search failed (value {value}, slope {slope}, last "
            "step size {last}, decrease error {dec}, curvature error {curv}); taking step size "
            "{taken}",
            value=start.f,
            slope=start.s,
            last=z.trial.t,
            dec=z.decrease_error,
            curv=z.curvature_error,
            taken=final.t,
        )
        info = ZoomLinesearchInfo(z.steps, z.decrease_error, z.curvature_error)
        new = ScaleByZoomLinesearchState(final.t, final.f, grad, info)
        return _scaled(final.t, updates), new

    hyper = {
        "max_learning_rate": max_learning_rate,
        "tol": tol,
        "increase_factor": increase_factor,
        "slope_rtol": slope_rtol,
        "curv_rtol": curv_rtol,
        "approx_dec_rtol": approx_dec_rtol,
        "stepsize_precision": stepsize_precision,
    }
    hyper = {k: v for k, v in hyper.items() if v is not None}
    return kit.block("scale_by_zoom_linesearch", step, init, hyper=hyper)


# --- reusing the last evaluation -------------------------------------------------------------


def value_and_grad_from_state(
    value_fn: Callable[..., jax.Array],
) -> Callable[..., tuple[jax.Array, Tree]]:
    """``jax.value_and_grad(value_fn)`` that first looks in the optimizer state: where a line
    search stored the value and gradient at the params it accepted (fields ``value`` and
    ``grad``), they are returned without evaluating ``value_fn``; where the stored value is not
    finite (the first step) they are computed.  Use it for deterministic objectives only: the
    stored pair belongs to the previous batch.

    Call it as ``value_and_grad(params, *args, state=state, **kwargs)``.  Raises ValueError when
    the state holds no ``value`` or no ``grad`` (e.g. ``store_grad=False``), KeyError when it
    holds several.  optax: ``optax.value_and_grad_from_state``.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> f = lambda w: jnp.sum(w**2)
        >>> opt = gradtx.lbfgs()
        >>> w = jnp.array([1.0, 2.0, 3.0])
        >>> state = opt.init(w)
        >>> value_and_grad = gradtx.value_and_grad_from_state(f)
        >>> for _ in range(2):
        ...     value, grad = value_and_grad(w, state=state)
        ...     u, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
        ...     w = gradtx.apply_updates(w, u)
        ...     print(f"{float(f(w)):.2e}")
        7.52e+00
        7.46e-14
    """

    def value_and_grad(params: Tree, *args: Any, state: Any, **kwargs: Any):
        value = tree_get(state, "value", default=None)
        grad = tree_get(state, "grad", default=None)
        if value is None or grad is None:
            raise ValueError(
                "value_and_grad_from_state: the state holds no value and gradient: use it with "
                "a line search that stores them (scale_by_zoom_linesearch, or "
                "scale_by_backtracking_linesearch(..., store_grad=True))"
            )

        def fresh(p, a, kw):
            v, g = jax.value_and_grad(value_fn)(p, *a, **kw)
            return jnp.asarray(v).astype(value.dtype), kit.cast_like(g, grad)

        return jax.lax.cond(
            jnp.isfinite(value), lambda *_: (value, grad), fresh, params, args, kwargs
        )

    return value_and_grad


__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByZoomLinesearchState",
    "ZoomLinesearchInfo",
    "scale_by_backtracking_linesearch",
    "scale_by_zoom_linesearch",
    "value_and_grad_from_state",
]
