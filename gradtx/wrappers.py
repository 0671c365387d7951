"""Wrappers that change *when* or *whether* an inner optimizer steps, or keep extra copies of the
parameters: gradient accumulation, non-finite safety, lookahead, parameter averaging,
periodic and conditional updates.

Counting.  Each wrapper here is one block inside the usual ``ChainState(count, inner)``; that
``count`` counts calls to ``update`` (micro-steps).  A wrapper around an inner optimizer
(``MultiSteps``, ``apply_if_finite``, ``conditionally_transform``, ``lookahead``) holds the inner
*transformation* with its own ``ChainState``, because the inner must not advance on every call
(or, for ``lookahead(reset_state=True)``, must restart): the inner counter, and every schedule
and bias correction inside it, counts the inner's real steps only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import (
    Chain,
    GradientTransformation,
    ScalarOrSchedule,
    chain,
    increment,
)
from gradtx.state import tree_get

Tree = Any


# --- shared helpers ------------------------------------------------------------------------------


def _own_counter(inner: GradientTransformation) -> GradientTransformation:
    """``inner`` as a transformation with its own ``ChainState`` (a foreign one gets a counter
    too), so a wrapper can advance it independently of the enclosing step count."""
    return chain(inner)


def _pick(pred: jax.Array, new: Tree, old: Tree) -> Tree:
    """Leaf by leaf ``new if pred else old``; an untaken ``old`` comes back bit-identical."""
    return jax.tree.map(lambda n, o: jnp.where(pred, n, o).astype(jnp.result_type(o)), new, old)


def _zeros_shaped(tree_or_shapes: Tree) -> Tree:
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree_or_shapes)


def _all_finite(tree: Tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _whole(where: str, name: str, value: Any) -> int:
    """A concrete whole number >= 1 (a Python int, or an integer array as optax also takes)."""
    try:
        number = int(value) if float(value) == int(value) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < 1 or isinstance(value, bool):
        raise ValueError(f"{where}: {name}={value!r} must be a whole number >= 1")
    return number


# --- gradient accumulation -----------------------------------------------------------------------


class MultiStepsState(NamedTuple):
    """``mini_step``: micro-steps accumulated since the last real update (0 right after one);
    ``inner_opt_state``: the inner optimizer's ``ChainState`` (its ``count`` counts real updates);
    ``acc_grads``: the running *sum* of the micro-step gradients (the only param-sized buffer);
    ``skip_state``: whatever ``should_skip_update_fn`` reported at the last micro-step."""

    mini_step: jax.Array
    inner_opt_state: Any
    acc_grads: Tree
    skip_state: Any = ()

    @property
    def gradient_step(self) -> jax.Array:
        """Number of real (inner) updates done so far."""
        return self.inner_opt_state.count


ShouldSkipFn = Callable[[Tree, jax.Array, Tree], tuple[jax.Array, Any]]


def skip_not_finite(updates: Tree, gradient_step: jax.Array, params: Tree) -> tuple[jax.Array, Any]:
    """A ``should_skip_update_fn`` for ``MultiSteps``: skip a micro-step whose gradients hold a
    NaN or an Inf.  Reports ``{"should_skip", "num_not_finite"}``.  optax: same name."""
    del gradient_step, params
    bad = sum(
        (jnp.sum(~jnp.isfinite(x)).astype(jnp.int32) for x in jax.tree.leaves(updates)),
        jnp.zeros([], jnp.int32),
    )
    return bad > 0, {"should_skip": bad > 0, "num_not_finite": bad}


def skip_large_updates(
    updates: Tree, gradient_step: jax.Array, params: Tree, max_squared_norm: float
) -> tuple[jax.Array, Any]:
    """A ``should_skip_update_fn``: skip when ``sum_i ||g_i||^2 >= max_squared_norm`` (or is NaN).
    Bind the threshold with ``functools.partial``.  optax: same name."""
    del gradient_step, params
    sq = kit.global_norm(updates) ** 2
    skip = ~(sq < max_squared_norm)
    return skip, {"should_skip": skip, "norm_squared": sq}


def _never_skip(updates, gradient_step, params):
    return jnp.asarray(False), ()


def accumulate(
    inner: GradientTransformation,
    every_k_schedule: int | Callable[[jax.Array], Any],
    use_grad_mean: bool = True,
    should_skip_update_fn: ShouldSkipFn | None = None,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Gradient accumulation: ``k`` micro-steps make one real step of ``inner``.

    ``S = g_1 + ... + g_k``; micro-steps ``1..k-1`` return zero updates; micro-step ``k`` returns
    ``inner(S / k)`` (``inner(S)`` with ``use_grad_mean=False``) and clears ``S``.  So ``k``
    micro-steps give exactly one ``inner`` step on the mean gradient, and ``inner``'s own counter
    (schedules, bias corrections) advances once per real step.  ``k = every_k_schedule(n)`` with
    ``n`` the number of real steps done (an int means a constant ``k``).  One accumulator, stored
    in ``accumulator_dtype`` (default: the gradient's dtype, at least float32).
    ``should_skip_update_fn(updates, n, params) -> (skip, info)`` drops a micro-step entirely.

    optax: ``optax.MultiSteps(...).gradient_transformation()`` (which averages with Welford's
    update and accumulates in float32 by default).
    """
    if isinstance(every_k_schedule, int):
        kit.check_ranges("accumulate", every_k_schedule=(every_k_schedule, "[1, inf)"))
    tx = _own_counter(inner)
    skip_fn = _never_skip if should_skip_update_fn is None else should_skip_update_fn
    acc_dtype = kit.canonical_dtype(accumulator_dtype)

    def acc_init(p):
        return jnp.zeros_like(p, dtype=acc_dtype or kit.compute_dtype(p))

    def init(params):
        inner_state = tx.init(params)
        zeros = kit.zeros_like(params)
        _, skip_state = skip_fn(zeros, inner_state.count, params)
        return MultiStepsState(
            jnp.zeros([], jnp.int32), inner_state, jax.tree.map(acc_init, params), skip_state
        )

    def step(updates, state, params, h):
        n = state.inner_opt_state.count
        k = jnp.asarray(kit.resolve(every_k_schedule, n), jnp.int32)
        skip, skip_state = skip_fn(updates, n, params)
        summed = kit.leafwise(
            "MultiSteps",
            lambda g, a: ((a + g.astype(a.dtype)).astype(a.dtype),),
            1,
            updates,
            state.acc_grads,
        )[0]

        def inner_step():
            divisor = k if use_grad_mean else 1
            mean = jax.tree.map(
                lambda s, g: (s / jnp.asarray(divisor, s.dtype)).astype(g.dtype), summed, updates
            )
            return tx.update(mean, state.inner_opt_state, params, **h.extra)

        out_shapes = jax.eval_shape(inner_step)[0]

        def apply(_):
            u, inner_state = inner_step()
            return u, inner_state, kit.zeros_like(summed), jnp.zeros([], jnp.int32)

        def hold(_):
            mini = increment(state.mini_step)
            return _zeros_shaped(out_shapes), state.inner_opt_state, summed, mini

        def drop(_):
            return (
                _zeros_shaped(out_shapes),
                state.inner_opt_state,
                state.acc_grads,
                state.mini_step,
            )

        emit = state.mini_step + 1 >= k
        branch = jnp.where(skip, 2, jnp.where(emit, 0, 1))
        if isinstance(branch, jax.core.Tracer):
            u, inner_state, acc, mini = jax.lax.switch(branch, (apply, hold, drop), None)
        else:  # eager: run the chosen branch (a fresh switch would be compiled on every call)
            u, inner_state, acc, mini = (apply, hold, drop)[int(branch)](None)
        return u, MultiStepsState(mini, inner_state, acc, skip_state)

    return kit.block("accumulate", step, init)


class MultiSteps(Chain):
    """Gradient accumulation with optax's interface: ``MultiSteps(inner, every_k_schedule)``
    has ``init``, ``update``, ``has_updated(state)``, ``inner_opt`` and
    ``gradient_transformation()``.  The update rule and arguments are those of ``accumulate``.

    As in optax, the accumulator is float32 by default (``accumulate`` keeps the gradients'
    precision, at least float32; pass ``accumulator_dtype=None`` here for that).
    Its state is ``ChainState(count, (MultiStepsState,))``: ``count`` counts micro-steps,
    ``tree_get(state, "mini_step")`` the micro-steps since the last real update, and
    ``tree_get(state, "inner_opt_state").count`` the real updates.  optax: ``optax.MultiSteps``.
    """

    def __new__(
        cls,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[jax.Array], Any],
        use_grad_mean: bool = True,
        should_skip_update_fn: ShouldSkipFn | None = None,
        accumulator_dtype: Any = jnp.float32,
    ) -> MultiSteps:
        args = (opt, every_k_schedule, use_grad_mean, should_skip_update_fn, accumulator_dtype)
        tx = accumulate(*args)
        self = super().__new__(cls, tx.blocks, init=tx.init, update=tx.update)
        self._args = args
        return self

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:
        return self._args, {}

    @property
    def inner_opt(self) -> GradientTransformation:
        return self._args[0]

    def has_updated(self, state: Any) -> jax.Array:
        """True right after a micro-step that made a real update."""
        mini = tree_get(state, "mini_step")
        done = tree_get(state, "inner_opt_state").count
        return (mini == 0) & (done > 0)

    def gradient_transformation(self) -> Chain:
        return Chain(self.blocks, init=self.init, update=self.update)


# --- non-finite safety ---------------------------------------------------------------------------


class ApplyIfFiniteState(NamedTuple):
    """``notfinite_count``: consecutive non-finite steps so far (0 after a finite one);
    ``last_finite``: whether the last step was finite; ``total_notfinite``: all non-finite steps
    ever; ``inner_state``: the inner optimizer's ``ChainState`` (counts accepted steps)."""

    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformation:
    """Skips steps with NaN/Inf: a step is *finite* when both the incoming gradients and the
    updates ``inner`` makes from them are finite.  A non-finite step returns zero updates and
    leaves ``inner``'s state (its counter included) bit-identical, unless it is the
    ``max_consecutive_errors + 1``-th non-finite step in a row or later: then ``inner``'s update
    goes through (as in optax, until the next finite step resets the streak to 0).

    ``inner`` runs every step and the result is selected, so skipping costs no branch.
    optax: ``optax.apply_if_finite`` (which checks the incoming gradients only).
    """
    kit.check_ranges("apply_if_finite", max_consecutive_errors=(max_consecutive_errors, "[0, inf)"))
    tx = _own_counter(inner)

    def init(params):
        zero = jnp.zeros([], jnp.int32)
        return ApplyIfFiniteState(zero, jnp.asarray(True), zero, tx.init(params))

    def step(updates, state, params, h):
        new_u, new_inner = tx.update(updates, state.inner_state, params, **h.extra)
        finite = _all_finite(updates) & _all_finite(new_u)
        streak = jnp.where(finite, 0, increment(state.notfinite_count)).astype(jnp.int32)
        accept = finite | (streak > max_consecutive_errors)
        total = jnp.where(finite, state.total_notfinite, increment(state.total_notfinite))
        out = jax.tree.map(lambda u: jnp.where(accept, u, jnp.zeros_like(u)), new_u)
        kept = _pick(accept, new_inner, state.inner_state)
        return out, ApplyIfFiniteState(streak, finite, total.astype(jnp.int32), kept)

    return kit.block("apply_if_finite", step, init)


class ZeroNansState(NamedTuple):
    """``found_nan``: one bool per leaf, whether that leaf held a NaN at the last step."""

    found_nan: Tree


def zero_nans() -> GradientTransformation:
    """``u = where(isnan(g), 0, g)``; records per leaf whether a NaN was replaced (Infs are kept).
    optax: ``optax.zero_nans``."""

    def init(params):
        return ZeroNansState(jax.tree.map(lambda _: jnp.asarray(False), params))

    def step(updates, state, params, h):
        kit.check_match(
            "zero_nans",
            "updates",
            jax.tree.structure(updates),
            "state",
            jax.tree.structure(state.found_nan),
        )
        u = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)
        return u, ZeroNansState(jax.tree.map(lambda g: jnp.any(jnp.isnan(g)), updates))

    return kit.block("zero_nans", step, init)


# --- lookahead -----------------------------------------------------------------------------------


@kit.one_counter("steps_since_sync")
class LookaheadState(NamedTuple):
    """``fast_state``: the fast optimizer's ``ChainState``; ``slow``: the slow parameters
    (evaluate with these) when the params are plain, ``None`` when they are a
    ``LookaheadParams(fast, slow)`` pair that carries them.

    optax: ``optax.LookaheadState(fast_state, steps_since_sync)``; its spelling constructs the
    pair form here (``steps_since_sync`` is dropped: it is the chain's count modulo
    ``sync_period``)."""

    fast_state: Any
    slow: Tree = None


def _is_lookahead_pair(tree: Any) -> bool:
    """Whether ``tree`` is optax's ``LookaheadParams(fast, slow)`` (gradtx's or optax's class:
    any NamedTuple with exactly those fields)."""
    return isinstance(tree, tuple) and getattr(tree, "_fields", None) == ("fast", "slow")


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int,
    slow_step_size: ScalarOrSchedule,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead (Zhang et al. 2019): ``k = sync_period`` fast steps, then one slow step.

    With ``u`` the fast optimizer's update at the fast weights ``θ``: on steps ``t`` not
    divisible by ``k`` the fast weights move by ``u``; on every ``k``-th step the slow weights
    move, ``φ <- φ + α (θ + u - φ)``, and the fast weights land on them, ``θ <- φ`` (up to one
    rounding of ``θ + (φ_new - θ)``).  ``α = slow_step_size`` (may be a schedule of the step).
    ``reset_state`` re-initialises the fast optimizer (and its counter) at each sync.
    ``update`` needs ``params``; apply the updates unchanged.  Two ways to hold the weights:

    - plain params (gradtx's form): the params you train are the fast weights and the slow
      ones live in the state (``slow_params(state)``, initialised to a copy of the params);
    - optax's form: the params are ``LookaheadParams(fast, slow)`` (``LookaheadParams.
      init_synced(params)``, gradtx's or optax's class), the gradients are taken at
      ``params.fast`` and passed as a plain tree, and the update is a ``LookaheadParams`` of
      the fast and slow moves, so ``apply_updates`` advances both and ``params.slow`` is read
      for evaluation.  The state then holds no copy (``slow`` is ``None``).

    Both forms compute the same weights; ``init`` decides which one a state is for.
    optax: ``optax.lookahead`` (optax's form only; its fast update is written
    ``u - (1 - α)(θ + u - φ)``, the same move rounded differently).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.lookahead(gradtx.sgd(0.5), sync_period=2, slow_step_size=0.5)
        >>> params = gradtx.LookaheadParams.init_synced(jnp.array([1.0]))
        >>> state = opt.init(params)
        >>> for _ in range(2):
        ...     grads = 2 * params.fast  # the gradient of p^2, at the fast weights
        ...     updates, state = opt.update(grads, state, params)
        ...     params = gradtx.apply_updates(params, updates)
        ...     print(params.fast, params.slow)  # synced at the second step
        [0.] [1.]
        [0.5] [0.5]
    """
    sync_period = _whole("lookahead", "sync_period", sync_period)
    kit.check_ranges("lookahead", slow_step_size=(slow_step_size, "[0, 1]"))
    tx = _own_counter(fast_optimizer)

    def init(params):
        if _is_lookahead_pair(params):
            return LookaheadState(tx.init(params.fast))
        slow = jax.tree.map(jnp.array, params)  # a copy, not an alias of the caller's buffers
        return LookaheadState(tx.init(params), slow)

    def step(updates, state, params, h):
        pair = _is_lookahead_pair(params)
        if pair != (state.slow is None):
            made, given = ("LookaheadParams", "plain") if pair else ("plain", "LookaheadParams")
            raise ValueError(
                f"lookahead: update got {made} params but the state was initialised with "
                f"{given} params; pass the same kind of params to init and update"
            )
        fast_params, slow = (params.fast, params.slow) if pair else (params, state.slow)
        u, fast = tx.update(updates, state.fast_state, fast_params, **h.extra)
        sync = (h.count + 1) % sync_period == 0
        alpha = h.slow_step_size

        def leaf(u_, p, s):
            a = kit.scalar(alpha, s)
            s_new = jnp.where(sync, s + a * (p + u_ - s), s).astype(s.dtype)
            return jnp.where(sync, s_new - p, u_).astype(u_.dtype), s_new

        out, slow_new = kit.leafwise("lookahead", leaf, 2, u, fast_params, slow)
        if reset_state:
            fast = _pick(sync, tx.init(fast_params), fast)
        if not pair:
            return out, LookaheadState(fast, slow_new)
        moved = jax.tree.map(lambda n, o: (n - o).astype(o.dtype), slow_new, slow)
        return type(params)(fast=out, slow=moved), LookaheadState(fast)

    return kit.block(
        "lookahead", step, init, hyper={"slow_step_size": slow_step_size}, needs_params=True
    )


def slow_params(state: Any) -> Tree:
    """The slow weights of a ``lookahead`` optimizer's state (use them for evaluation); ``None``
    when the params are a ``LookaheadParams`` pair (read ``params.slow`` then)."""
    return tree_get(state, "slow")


# --- parameter averaging -------------------------------------------------------------------------


class EmaParamsState(NamedTuple):
    """``ema_params``: the (debiased) moving average of the parameters, ready to use."""

    ema_params: Tree


def ema_params(
    decay: ScalarOrSchedule, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Keeps an exponential moving average of the parameters *after* each step, for evaluation
    (Polyak averaging); updates pass through unchanged, so put it last in the chain.

    With ``x_t = p + u`` the new params, the raw average is ``m_t = d m_{t-1} + (1 - d) x_t``,
    ``m_0 = 0``, and the state holds ``z_t = m_t / (1 - d^t)`` directly, via
    ``z_t = z_{t-1} + w_t (x_t - z_{t-1})``, ``w_t = (1 - d) / (1 - d^t)`` (``w_1 = 1``).
    ``debias=False`` holds ``z_t = d z_{t-1} + (1 - d) x_t`` with ``z_0 = params`` (the usual
    "EMA weights" started from the initial params).  Read it with ``averaged_params(state)``.
    optax has no direct equivalent (``optax.ema`` averages updates, not params).
    """
    kit.check_ranges("ema_params", decay=(decay, "[0, 1)" if debias else "[0, 1]"))
    acc_dtype = kit.canonical_dtype(accumulator_dtype)

    def init(params):
        return EmaParamsState(jax.tree.map(lambda p: jnp.array(p, dtype=acc_dtype), params))

    def step(updates, state, params, h):
        d = h.decay

        def leaf(u, p, z):
            x = (p + u).astype(p.dtype)
            w = (1 - d) / (1 - kit.power(d, h.count + 1, z)) if debias else 1 - d
            w = jnp.asarray(w, kit.compute_dtype(z))
            return u, (z + w * (x - z)).astype(z.dtype)

        out, z = kit.leafwise("ema_params", leaf, 2, updates, params, state.ema_params)
        return out, EmaParamsState(z)

    return kit.block("ema_params", step, init, hyper={"decay": decay}, needs_params=True)


def averaged_params(state: Any) -> Tree:
    """The averaged parameters kept by ``ema_params`` in an optimizer's state."""
    return tree_get(state, "ema_params")


# --- periodic and conditional updates ------------------------------------------------------------


@kit.one_counter("count")
class ApplyEveryState(NamedTuple):
    """``grad_acc``: the sum of the updates since the last emitted one."""

    grad_acc: Tree


def apply_every(k: int = 1) -> GradientTransformation:
    """Sums updates and emits the sum every ``k``-th step, zeros otherwise:
    ``A_t = g_t`` if ``(t - 1) % k == 0`` else ``A_{t-1} + g_t``; ``u = A_t`` if ``t % k == 0``
    else ``0``.  Blocks before it still step every call (use ``MultiSteps`` to make ``k`` steps
    equal one big-batch step).  Uses the enclosing step count.  optax: ``optax.apply_every``."""
    k = _whole("apply_every", "k", k)

    def init(params):
        return ApplyEveryState(kit.zeros_like(params))

    def step(updates, state, params, h):
        phase = h.count % k

        def leaf(g, a):
            acc = jnp.where(phase == 0, g, a + g).astype(a.dtype)
            return jnp.where(phase == k - 1, acc, jnp.zeros_like(acc)).astype(g.dtype), acc

        u, acc = kit.leafwise("apply_every", leaf, 2, updates, state.grad_acc)
        return u, ApplyEveryState(acc)

    return kit.block("apply_every", step, init)


@kit.one_counter("step")
class ConditionallyTransformState(NamedTuple):
    """``inner_state``: the inner optimizer's ``ChainState`` (counts the steps it really took)."""

    inner_state: Any


def conditionally_transform(
    inner: GradientTransformation,
    should_transform_fn: Callable[..., Any],
    forward_extra_args: bool = False,
) -> GradientTransformation:
    """``u = inner(g)`` when ``should_transform_fn(n)`` is true, else ``u = g`` with ``inner``'s
    state untouched; ``n`` is the number of earlier calls (the enclosing step count).  With
    ``forward_extra_args`` the predicate also receives the ``**extra`` keywords.
    optax: ``optax.conditionally_transform``."""
    tx = _own_counter(inner)

    def init(params):
        return ConditionallyTransformState(tx.init(params))

    def step(updates, state, params, h):
        pred = should_transform_fn(h.count, **(h.extra if forward_extra_args else {}))

        def run(_):
            return tx.update(updates, state.inner_state, params, **h.extra)

        def keep(_):
            return updates, state.inner_state

        # eager (a concrete pred): only the chosen branch runs, no fresh cond to compile
        u, inner_state = kit.when(pred, run, keep, None)
        return u, ConditionallyTransformState(inner_state)

    return kit.block("conditionally_transform", step, init)


__all__ = [
    "ApplyEveryState",
    "ApplyIfFiniteState",
    "ConditionallyTransformState",
    "EmaParamsState",
    "LookaheadState",
    "MultiSteps",
    "MultiStepsState",
    "ZeroNansState",
    "accumulate",
    "apply_every",
    "apply_if_finite",
    "averaged_params",
    "conditionally_transform",
    "ema_params",
    "lookahead",
    "skip_large_updates",
    "skip_not_finite",
    "slow_params",
    "zero_nans",
]
