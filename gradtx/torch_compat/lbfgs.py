"""``torch.optim.LBFGS`` as a gradtx transformation: ``torch_lbfgs(lr=1, max_iter=20, ...)``
takes torch's arguments and defaults, and one ``update`` is one ``optimizer.step(closure)``: up
to ``max_iter`` L-BFGS iterations, each with a fresh gradient of the objective.

The closure becomes ``value_fn``: ``update(grads, state, params, value_fn=f, value=f(params),
**data)`` with ``grads = grad f(params)`` (torch evaluates its closure once at the start of each
``step``; here that evaluation is the one handed in, ``value`` is computed when not given) and
``f(params, **data) -> scalar`` differentiated with ``jax.value_and_grad`` where torch calls
``closure()`` again.  The returned update is the whole step's displacement of the params.

torch's rules, per its source (torch 2.13, ``torch/optim/lbfgs.py``), on the parameters
flattened into one vector ``x`` (``g`` the gradient, ``k`` the iteration count over all steps):

- stop the step at once when ``max|g| <= tolerance_grad``;
- ``k = 1``: ``d = -g``, the memory emptied, ``H_diag = 1``; later:
  ``y = g - g_prev``, ``s = t_prev d_prev``, and if ``<y, s> > 1e-10`` the pair enters the memory
  (the oldest leaves beyond ``history_size``) and ``H_diag = <y, s> / <y, y>``; then ``d = -H g``
  by the two-loop recursion from ``H_0 = H_diag I`` over the pairs kept;
- ``t = min(1, 1 / ||g||_1) lr`` at ``k = 1``, else ``lr``; stop when
  ``<g, d> > -tolerance_change``;
- without a line search ``x += t d`` and the objective is evaluated again (except after the last
  iteration); with ``line_search_fn="strong_wolfe"`` torch's own search (cubic interpolation,
  ``c1 = 1e-4``, ``c2 = 0.9``, at most ``max_eval`` evaluations per step in all, its interval
  tolerance fixed at 1e-9) picks ``t``, and ``x += t d``;
- stop after ``max_iter`` iterations, ``max_eval`` evaluations, ``max|g| <= tolerance_grad``,
  ``max|t d| <= tolerance_change`` or a change of the loss below ``tolerance_change``.

Not yet behind ``from_torch("LBFGS", ...)``: torch's parity harness and the cross-cutting tests
drive every torch recipe with one gradient per step and no objective.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gradtx import kit
from gradtx.base import GradientTransformation

DEFAULTS: dict[str, Any] = {
    "lr": 1.0,
    "max_iter": 20,
    "max_eval": None,
    "tolerance_grad": 1e-7,
    "tolerance_change": 1e-9,
    "history_size": 100,
    "line_search_fn": None,
}
"""``torch.optim.LBFGS``'s defaults (``max_eval=None`` is ``max_iter * 5 // 4``)."""

_C1, _C2, _LS_TOLERANCE = 1e-4, 0.9, 1e-9  # torch's strong Wolfe constants (not arguments)


class TorchLBFGSState(NamedTuple):
    """torch's ``optimizer.state`` of LBFGS: ``n_iter`` and ``func_evals`` over all steps, the
    last direction ``d`` and step ``t``, the pairs (``old_dirs`` = ``y``, ``old_stps`` = ``s``,
    ``ro`` = ``1 / <y, s>``, the first ``num_pairs`` rows oldest first), ``H_diag``, and the
    previous gradient and loss, all on the flattened params."""

    n_iter: jax.Array
    func_evals: jax.Array
    d: jax.Array
    t: jax.Array
    old_dirs: jax.Array
    old_stps: jax.Array
    ro: jax.Array
    num_pairs: jax.Array
    H_diag: jax.Array
    prev_flat_grad: jax.Array
    prev_loss: jax.Array


def _cubic(x1, f1, g1, x2, f2, g2, lo=None, hi=None):
    """torch's ``_cubic_interpolate``: the minimiser of the cubic through two points with their
    slopes, clipped to ``[lo, hi]`` (default: between the points); the midpoint of the bounds
    when the cubic has no minimum."""
    if lo is None:
        lo, hi = jnp.minimum(x1, x2), jnp.maximum(x1, x2)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.where(d2_square >= 0, d2_square, 0))
    left = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    right = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    pos = jnp.minimum(jnp.maximum(jnp.where(x1 <= x2, left, right), lo), hi)
    return jnp.where(d2_square >= 0, pos, (lo + hi) / 2)


class _Trial(NamedTuple):
    t: jax.Array
    f: jax.Array
    g: jax.Array
    gtd: jax.Array


def _strong_wolfe(evaluate, t, d, f, g, gtd, max_ls):
    """torch's ``_strong_wolfe``: ``(f, g, t, evaluations)`` at the accepted step."""
    d_norm = jnp.max(jnp.abs(d))
    zero = jnp.zeros([], f.dtype)

    def at(step):
        f_new, g_new = evaluate(step)
        return _Trial(step, f_new, g_new, g_new @ d)

    first = at(t)

    # phase 1: status 0 searching, 1 bracketed [prev, cur], 2 done at cur
    def bracket_cond(c):
        return (c[3] == 0) & (c[0] < max_ls)

    def bracket_body(c):
        ls_iter, cur, prev, _, evals = c
        high = (cur.f > f + _C1 * cur.t * gtd) | ((ls_iter > 1) & (cur.f >= prev.f))
        done = ~high & (jnp.abs(cur.gtd) <= -_C2 * gtd)
        up = ~high & ~done & (cur.gtd >= 0)
        status = jnp.where(high | up, 1, jnp.where(done, 2, 0)).astype(jnp.int32)

        def grow(_):
            lo, hi = cur.t + 0.01 * (cur.t - prev.t), cur.t * 10
            nxt = _cubic(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd, lo, hi)
            return ls_iter + 1, at(nxt), cur, status, evals + 1

        return jax.lax.cond(status == 0, grow, lambda _: (ls_iter, cur, prev, status, evals), None)

    start = (jnp.zeros([], jnp.int32), first, _Trial(zero, f, g, gtd), jnp.zeros([], jnp.int32),
             jnp.ones([], jnp.int32))  # fmt: skip
    ls_iter, cur, prev, status, evals = jax.lax.while_loop(bracket_cond, bracket_body, start)
    exhausted = ls_iter == max_ls
    origin = _Trial(zero, f, g, gtd)
    a = jax.tree.map(
        lambda o, p, c: jnp.where(exhausted, o, jnp.where(status == 2, c, p)), origin, prev, cur
    )
    b = cur
    ts, fs, gtds = jnp.stack([a.t, b.t]), jnp.stack([a.f, b.f]), jnp.stack([a.gtd, b.gtd])
    gs = jnp.stack([a.g, b.g])
    done = (status == 2) & ~exhausted
    low = jnp.where(fs[0] <= fs[1], 0, 1).astype(jnp.int32)

    # phase 2: zoom
    def zoom_cond(c):
        ls_iter, _, _, _, _, _, done, _, _, stop = c
        return ~done & (ls_iter < max_ls) & ~stop

    def zoom_body(c):
        ls_iter, ts, fs, gs, gtds, low, done, insuf, evals, _ = c
        stop = jnp.abs(ts[1] - ts[0]) * d_norm < _LS_TOLERANCE

        def trial(_):
            high = 1 - low
            t = _cubic(ts[0], fs[0], gtds[0], ts[1], fs[1], gtds[1])
            tmax, tmin = jnp.max(ts), jnp.min(ts)
            eps = 0.1 * (tmax - tmin)
            near = jnp.minimum(tmax - t, t - tmin) < eps
            move = near & (insuf | (t >= tmax) | (t <= tmin))
            moved = jnp.where(jnp.abs(t - tmax) < jnp.abs(t - tmin), tmax - eps, tmin + eps)
            t = jnp.where(move, moved, t)
            new_insuf = near & ~move
            p = at(t)
            worse = (p.f > f + _C1 * t * gtd) | (p.f >= fs[low])
            accept = ~worse & (jnp.abs(p.gtd) <= -_C2 * gtd)
            flip = ~worse & ~accept & (p.gtd * (ts[high] - ts[low]) >= 0)

            def put(arrays, idx, values):
                return tuple(x.at[idx].set(v) for x, v in zip(arrays, values, strict=True))

            arrays = (ts, fs, gs, gtds)
            point = (p.t, p.f, p.g, p.gtd)
            # worse: p replaces the high end; else (flip: the high end takes the low end's
            # values first) p replaces the low end
            if_worse = put(arrays, high, point)
            flipped = put(arrays, high, tuple(x[low] for x in arrays))
            kept = jax.tree.map(lambda x, y: jnp.where(flip, x, y), flipped, arrays)
            if_better = put(kept, low, point)
            new = jax.tree.map(lambda x, y: jnp.where(worse, x, y), if_worse, if_better)
            new_low = jnp.where(worse, jnp.where(new[1][0] <= new[1][1], 0, 1), low).astype(
                jnp.int32
            )
            return (ls_iter + 1, *new, new_low, accept, new_insuf, evals + 1, stop)

        def halt(_):
            return ls_iter, ts, fs, gs, gtds, low, done, insuf, evals, stop

        return jax.lax.cond(stop, halt, trial, None)

    c = (ls_iter, ts, fs, gs, gtds, low, done, jnp.asarray(False), evals, jnp.asarray(False))
    _, ts, fs, gs, _, low, _, _, evals, _ = jax.lax.while_loop(zoom_cond, zoom_body, c)
    return fs[low], gs[low], ts[low], evals


def _two_loop(g, old_dirs, old_stps, ro, num, h_diag):
    """torch's direction ``-H g`` over the first ``num`` pairs (oldest first)."""
    size = ro.shape[0]

    def backward(j, carry):
        q, al = carry
        i = size - 1 - j
        a = (old_stps[i] @ q) * ro[i]
        use = i < num
        return jnp.where(use, q - a * old_dirs[i], q), al.at[i].set(jnp.where(use, a, 0))

    q, al = jax.lax.fori_loop(0, size, backward, (-g, jnp.zeros_like(ro)))
    r = q * h_diag

    def forward(i, r):
        be = (old_dirs[i] @ r) * ro[i]
        return jnp.where(i < num, r + (al[i] - be) * old_stps[i], r)

    return jax.lax.fori_loop(0, size, forward, r)


@kit.validated
def torch_lbfgs(
    lr: kit.NonNegativeConstant = 1.0,
    max_iter: kit.Steps = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: kit.Steps = 100,
    line_search_fn: str | None = None,
) -> GradientTransformation:
    """``torch.optim.LBFGS(params, lr, max_iter, max_eval, tolerance_grad, tolerance_change,
    history_size, line_search_fn)``: one ``update`` is one ``optimizer.step(closure)`` (see the
    module docstring for the rules); ``update(grads, state, params, value_fn=f, value=f(params))``
    where ``grads`` is ``grad f(params)`` and ``f(params, **data)`` replaces the closure.

    Args:
      lr: the step size (the first iteration's is ``min(1, 1 / ||g||_1) lr``).
      max_iter: the most iterations per step.
      max_eval: the most evaluations of ``f`` per step (``None``: ``max_iter * 5 // 4``).
      tolerance_grad: stop when ``max|g|`` falls to it.
      tolerance_change: stop when the step, the loss change or the slope falls below it.
      history_size: the most pairs kept.
      line_search_fn: ``None`` (fixed step ``lr``) or ``"strong_wolfe"``.

    optax: ``optax.lbfgs`` (one iteration per update, every pair kept, its own line search);
    torch: ``torch.optim.LBFGS``.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from gradtx.torch_compat.lbfgs import torch_lbfgs
        >>> f = lambda w: jnp.sum((w - jnp.array([1.0, -2.0])) ** 2 * jnp.array([1.0, 4.0]))
        >>> tx = torch_lbfgs(line_search_fn="strong_wolfe")
        >>> w = jnp.zeros(2)
        >>> u, state = tx.update(jax.grad(f)(w), tx.init(w), w, value_fn=f)
        >>> print(jnp.array_str(w + u, precision=4), int(state.n_iter) <= 20)
        [ 1. -2.] True
    """
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError("torch.optim.LBFGS: only 'strong_wolfe' is supported")
    if isinstance(lr, int | float) and lr < 0:  # a traced lr (from_torch keeps it live) passes
        raise ValueError(f"Invalid learning rate: {lr}")
    budget = max_iter * 5 // 4 if max_eval is None else max_eval

    def init(params):
        x, _ = ravel_pytree(params)
        n, dt = x.shape[0], kit.compute_dtype(x)
        zero = jnp.zeros([], dt)
        memory = jnp.zeros((history_size, n), dt)
        return TorchLBFGSState(
            jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), jnp.zeros(n, dt), zero,
            memory, memory, jnp.zeros(history_size, dt), jnp.zeros([], jnp.int32),
            jnp.ones([], dt), jnp.zeros(n, dt), zero,
        )  # fmt: skip

    def update(updates, state, params=None, **extra):
        kit.need_params("torch_lbfgs", params)
        fn = extra.get("value_fn")
        if fn is None:
            raise ValueError(
                "torch_lbfgs: update needs value_fn= (the objective f(params, **data), torch's "
                "closure): tx.update(grad, state, params, value_fn=f)"
            )
        names = set(inspect.signature(fn).parameters)
        data = {k: v for k, v in extra.items() if k in names and k not in ("value", "value_fn")}
        x0, unravel = ravel_pytree(params)
        dt = state.d.dtype
        x0 = x0.astype(dt)
        value_and_grad = jax.value_and_grad(lambda v: fn(unravel(v), **data))

        def evaluate(x):
            f, g = value_and_grad(x)
            return jnp.asarray(f).astype(dt), g.astype(dt)

        g0 = ravel_pytree(updates)[0].astype(dt)
        value = extra.get("value")
        f0 = evaluate(x0)[0] if value is None else jnp.asarray(value).astype(dt)
        state = state._replace(func_evals=state.func_evals + 1)  # the closure's first call
        x, state = jax.lax.cond(
            jnp.max(jnp.abs(g0)) <= tolerance_grad,
            lambda: (x0, state),
            lambda: _step(evaluate, state, x0, f0, g0),
        )
        return kit.cast_like(unravel(x - x0), updates), state

    def _step(evaluate, s, x, loss, g):
        def cond(c):
            return ~c[-1]

        def body(c):
            s, x, loss, g, n, evals, _ = c
            s = s._replace(n_iter=s.n_iter + 1)
            first = s.n_iter == 1
            y, step = g - s.prev_flat_grad, s.d * s.t
            ys = y @ step
            push = ~first & (ys > 1e-10)
            full = s.num_pairs == history_size
            slot = jnp.minimum(s.num_pairs, history_size - 1)

            def added(memory, row):
                shifted = jnp.where(full, jnp.roll(memory, -1, axis=0), memory)
                return jnp.where(push, shifted.at[slot].set(row), memory)

            old_dirs, old_stps = added(s.old_dirs, y), added(s.old_stps, step)
            ro = added(s.ro, 1.0 / ys)
            num = jnp.where(first, 0, jnp.where(push & ~full, s.num_pairs + 1, s.num_pairs))
            h_diag = jnp.where(first, 1.0, jnp.where(push, ys / (y @ y), s.H_diag))
            d = jnp.where(first, -g, _two_loop(g, old_dirs, old_stps, ro, num, h_diag))
            t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr, lr)
            prev_loss = loss
            s = s._replace(
                d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, num_pairs=num,
                H_diag=h_diag, prev_flat_grad=g, prev_loss=loss,
            )  # fmt: skip
            gtd = g @ d
            flat = gtd > -tolerance_change

            def move(_):
                if line_search_fn == "strong_wolfe":
                    f_new, g_new, t_new, ls = _strong_wolfe(
                        lambda t_: evaluate(x + t_ * d), t, d, loss, g, gtd, budget - evals
                    )
                    return x + t_new * d, f_new, g_new, t_new, ls.astype(jnp.int32)
                x_new = x + t * d
                last = n + 1 == max_iter
                f_new, g_new = jax.lax.cond(last, lambda: (loss, g), lambda: evaluate(x_new))
                return x_new, f_new, g_new, t, jnp.where(last, 0, 1).astype(jnp.int32)

            def still(_):
                return x, loss, g, t, jnp.zeros([], jnp.int32)

            x_new, f_new, g_new, t_new, ls = jax.lax.cond(flat, still, move, None)
            s = s._replace(t=jnp.asarray(t_new).astype(s.t.dtype), func_evals=s.func_evals + ls)
            evals = evals + ls
            stop = (
                flat
                | (n + 1 == max_iter)
                | (evals >= budget)
                | (jnp.max(jnp.abs(g_new)) <= tolerance_grad)
                | (jnp.max(jnp.abs(d * t_new)) <= tolerance_change)
                | (jnp.abs(f_new - prev_loss) < tolerance_change)
            )
            return s, x_new, f_new, g_new, n + 1, evals, stop

        start = (
            s,
            x,
            loss,
            g,
            jnp.zeros([], jnp.int32),
            jnp.ones([], jnp.int32),
            jnp.asarray(False),
        )
        s, x, *_ = jax.lax.while_loop(cond, body, start)
        return x, s

    return GradientTransformation(init, update)


__all__ = ["DEFAULTS", "TorchLBFGSState", "torch_lbfgs"]


def _recipe(h: dict[str, Any], lr: Any) -> GradientTransformation:
    """``from_torch("LBFGS", ...)``: ``torch_lbfgs`` with torch's merged arguments ``h``."""
    return torch_lbfgs(**{**h, "lr": lr})


# imported here, not at the top: torch_compat.optimizers imports this package's modules
from gradtx.torch_compat.optimizers import torch_recipe  # noqa: E402

torch_recipe(
    "LBFGS",
    defaults=DEFAULTS,
    examples=({"lr": 1.0},),
    ranges={"lr": "[0, inf)"},
    traits=frozenset({"needs_value"}),
    harness=False,
)(_recipe)
