"""Building blocks: moments, scalings, learning rates, weight decay and noise.

Each function returns a gradient transformation made of one ``Block``; chain them to build an
optimizer.  Notation: ``g`` is the incoming update (the gradient for the first block), ``t`` the
number of completed steps plus one (``t = 1`` on the first update), ``p`` the parameters.  Every
numeric hyperparameter may also be a schedule ``step -> value`` (evaluated at ``t - 1``).
Moments are computed leaf by leaf in one fused function per leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import _tree
from gradtx._tree import Debias, check_ranges, resolve
from gradtx.base import (
    Block,
    GradientTransformation,
    ScalarOrSchedule,
    identity,
    init_empty_state,
    transformation,
)

Tree = Any


def leafwise(
    where: str,
    fn: Callable[..., tuple],
    n_out: int,
    tree: Tree,
    *rest: Tree,
    names: tuple[str, ...] | None = None,
    widen: bool = False,
) -> tuple:
    """Applies ``fn`` to matching leaves of ``tree`` and ``rest`` and returns ``n_out`` trees.

    One call per leaf keeps a leaf's whole arithmetic in one expression, so XLA can fuse it and
    shares no temporaries across leaves.  Mismatched trees raise an error naming ``where`` and the
    first differing path.

    ``widen=True`` is for blocks whose outputs are ``(update, *new_state)`` for inputs
    ``(update, *state)``.  When a leaf's inputs do not all share one dtype of at least float32
    (a bfloat16 leaf, or bfloat16 moments of a float32 leaf), they are cast once to the widest of
    their dtypes and float32, so the leaf is rounded once instead of after every op (XLA:CPU also
    emulates bfloat16 op by op), and each output is cast back to its input's dtype.  ``fn`` takes a
    keyword ``keep``: ``keep(s1, s2, ...)`` rounds new state values through their stored dtypes
    (identity when nothing was widened), so the update is computed from the state as stored and
    XLA reads the new buffers back instead of keeping a param-sized copy of the old ones.
    """
    for i, r in enumerate(rest):
        _tree.check_match(where, "updates", tree, names[i] if names else f"state[{i}]", r)
    leaves, treedef = jax.tree.flatten(tree)
    others = [jax.tree.leaves(r) for r in rest]
    call = _widened(fn) if widen else fn
    outs = [call(*args) for args in zip(leaves, *others, strict=True)]
    return tuple(treedef.unflatten([o[k] for o in outs]) for k in range(n_out))


def _widened(fn: Callable[..., tuple]) -> Callable[..., tuple]:
    def call(*args: jax.Array) -> tuple:
        stored = [jnp.result_type(a) for a in args]
        k = jnp.promote_types(jnp.float32, jnp.result_type(*args))
        if all(dt == k for dt in stored) or jnp.issubdtype(k, jnp.complexfloating):
            return fn(*args, keep=lambda *xs: xs)

        def keep(*xs: jax.Array | None) -> tuple:
            dts = stored[1:] + [k] * len(xs)  # values beyond the state inputs stay as they are
            return tuple(
                x if x is None else x.astype(dt).astype(k) for x, dt in zip(xs, dts, strict=False)
            )

        outs = fn(*(a.astype(k) for a in args), keep=keep)
        return tuple(
            o if o is None or i >= len(stored) else o.astype(stored[i]) for i, o in enumerate(outs)
        )

    return call


def _block(init, update) -> GradientTransformation:
    return transformation(Block(init, update))


def _stateless(fn: Callable[..., Tree]) -> GradientTransformation:
    """A block without state from ``fn(updates, params, count)``."""

    def update(updates, state, params=None, count=None, **extra):
        return fn(updates, params, count), state

    return _block(init_empty_state, update)


# --- scaling by a number -------------------------------------------------------------------------


def scale(step_size: ScalarOrSchedule) -> GradientTransformation:
    """``u = step_size * g``.  optax: ``optax.scale``."""
    return _stateless(
        lambda g, p, count: jax.tree.map(
            lambda x: _tree.scalar(resolve(step_size, count), x) * x, g
        )
    )


def scale_by_schedule(step_size_fn: Callable[[jax.Array], Any]) -> GradientTransformation:
    """``u = step_size_fn(t - 1) * g``, the factor cast to each leaf's dtype.
    optax: ``optax.scale_by_schedule``."""

    def fn(g, p, count):
        s = resolve(step_size_fn, count)
        return jax.tree.map(lambda x: jnp.asarray(s, jnp.result_type(x)) * x, g)

    return _stateless(fn)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None = None, *, flip_sign: bool = True
) -> GradientTransformation:
    """``u = -lr(t - 1) * g`` (``+`` when ``flip_sign=False``); ``None`` means identity.

    A constant and a schedule give the same state structure (none: the step lives in the
    optimizer's one counter).  optax: ``optax.scale_by_learning_rate``.
    """
    if learning_rate is None:
        return identity()
    check_ranges("scale_by_learning_rate", learning_rate=(learning_rate, "[0, inf)"))
    sign = -1 if flip_sign else 1
    return scale_by_schedule(lambda count: sign * resolve(learning_rate, count))


def scale_by_sign() -> GradientTransformation:
    """``u = sign(g)`` (signSGD).  optax: ``optax.scale_by_sign``."""
    return _stateless(lambda g, p, count: jax.tree.map(jnp.sign, g))


# --- momentum and moving averages ----------------------------------------------------------------


class TraceState(NamedTuple):
    trace: Tree


def trace(
    decay: ScalarOrSchedule,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
    dampening: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    """Heavy-ball momentum: ``m_t = decay * m_{t-1} + (1 - dampening) * g`` with ``m_1 = g``;
    ``u = m_t``, or ``u = g + decay * m_t`` with ``nesterov``.

    With ``dampening = 0`` this is optax's ``optax.trace``; with dampening it is torch's SGD
    momentum buffer (the first step is not damped).  ``accumulator_dtype`` stores ``m`` in that
    dtype (e.g. bfloat16); the update then uses ``m`` as stored.
    """
    check_ranges("trace", decay=(decay, "[0, inf)"), dampening=(dampening, "[0, 1]"))
    acc_dtype = _tree.canonical_dtype(accumulator_dtype)

    def init(params):
        return TraceState(_tree.zeros_like(params, acc_dtype))

    def update(updates, state, params=None, count=None, **extra):
        d, damp = resolve(decay, count), resolve(dampening, count)

        def leaf(g, m, *, keep):
            (m_new,) = keep(
                d * m + g if _is_zero(damp) else jnp.where(count == 0, g, d * m + (1 - damp) * g)
            )
            u = g + d * m_new if nesterov else m_new
            return u.astype(g.dtype), m_new.astype(m.dtype)

        u, m = leafwise("trace", leaf, 2, updates, state.trace, widen=True)
        return u, TraceState(m)

    return _block(init, update)


class EmaState(NamedTuple):
    ema: Tree


def ema(
    decay: ScalarOrSchedule, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Exponential moving average ``m_t = decay * m_{t-1} + (1 - decay) * g``;
    ``u = m_t / (1 - decay^t)`` when ``debias`` else ``m_t``.  optax: ``optax.ema``."""
    check_ranges("ema", decay=(decay, "[0, 1]"))
    acc_dtype = _tree.canonical_dtype(accumulator_dtype)

    def init(params):
        return EmaState(_tree.zeros_like(params, acc_dtype))

    def update(updates, state, params=None, count=None, **extra):
        d = resolve(decay, count)
        db = Debias(d, count)

        def leaf(g, m, *, keep):
            (m_new,) = keep(_tree.ema(g, m, d).astype(jnp.promote_types(g.dtype, m.dtype)))
            u = db(m_new) if debias else m_new
            return u.astype(g.dtype), m_new.astype(m.dtype)

        u, m = leafwise("ema", leaf, 2, updates, state.ema, widen=True)
        return u, EmaState(m)

    return _block(init, update)


def bias_correction(decay: ScalarOrSchedule) -> GradientTransformation:
    """``u = g / (1 - decay^t)``: the debiasing of a zero-initialised moving average, as its own
    block (e.g. after ``ema(decay, debias=False)``)."""
    check_ranges("bias_correction", decay=(decay, "[0, 1)"))
    return _stateless(lambda g, p, count: jax.tree.map(Debias(resolve(decay, count), count), g))


def _is_zero(x: Any) -> bool:
    return isinstance(x, int | float) and x == 0


# --- adaptive scalings ---------------------------------------------------------------------------


class ScaleByRmsState(NamedTuple):
    nu: Tree


class ScaleByRStdDevState(NamedTuple):
    mu: Tree
    nu: Tree


def scale_by_rms(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    centered: bool = False,
) -> GradientTransformation:
    """RMSProp scaling: ``v_t = decay * v_{t-1} + (1 - decay) * g^2`` (``v_0 = initial_scale``);
    with ``centered`` also ``m_t = decay * m_{t-1} + (1 - decay) * g`` and ``var = v - m^2``
    (else ``var = v``); ``u = g / sqrt(var + eps)`` if ``eps_in_sqrt`` else
    ``u = g / (sqrt(var) + eps)`` (torch's placement).  ``bias_correction`` divides ``v`` (and
    ``m``) by ``1 - decay^t`` first.  optax: ``scale_by_rms`` / ``scale_by_stddev``.
    """
    where = "scale_by_stddev" if centered else "scale_by_rms"
    check_ranges(where, decay=(decay, "[0, 1]"), eps=(eps, "[0, inf)"))

    def init(params):
        nu = _tree.full_like(params, initial_scale)
        if centered:
            return ScaleByRStdDevState(_tree.zeros_like(params), nu)
        return ScaleByRmsState(nu)

    def update(updates, state, params=None, count=None, **extra):
        d, e = resolve(decay, count), resolve(eps, count)
        db = Debias(d, count)

        def leaf(g, v, m=None, *, keep):
            v_new, m_new = keep(_tree.ema_sq(g, v, d), None if m is None else _tree.ema(g, m, d))
            v_hat = db(v_new) if bias_correction else v_new
            if centered:
                m_hat = db(m_new) if bias_correction else m_new
                v_hat = v_hat - _tree.abs_sq(m_hat)
            scaling = jax.lax.rsqrt(v_hat + e) if eps_in_sqrt else 1 / (jnp.sqrt(v_hat) + e)
            return (scaling * g).astype(g.dtype), v_new.astype(v.dtype), m_new

        if centered:
            u, nu, mu = leafwise(where, leaf, 3, updates, state.nu, state.mu, widen=True)
            return u, ScaleByRStdDevState(_tree.cast_like(mu, state.mu), nu)
        u, nu, _ = leafwise(where, leaf, 3, updates, state.nu, widen=True)
        return u, ScaleByRmsState(nu)

    return _block(init, update)


def scale_by_stddev(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """Centered RMSProp scaling, ``scale_by_rms(..., centered=True)``.  optax: same name."""
    return scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=True)


class ScaleByRssState(NamedTuple):
    sum_of_squares: Tree


def scale_by_rss(
    initial_accumulator_value: float = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """Adagrad scaling: ``s_t = s_{t-1} + g^2`` (``s_0 = initial_accumulator_value``);
    ``u = g / sqrt(s_t + eps)`` (0 where ``s_t = 0``) if ``eps_in_sqrt`` else
    ``u = g / (sqrt(s_t) + eps)`` (torch's placement).  optax: ``optax.scale_by_rss``.
    Adagrad's learning-rate decay is a schedule on the learning rate
    (``lr / (1 + lr_decay * step)``)."""
    check_ranges(
        "scale_by_rss",
        initial_accumulator_value=(initial_accumulator_value, "[0, inf)"),
        eps=(eps, "[0, inf)"),
    )

    def init(params):
        return ScaleByRssState(_tree.full_like(params, initial_accumulator_value))

    def update(updates, state, params=None, count=None, **extra):
        e = resolve(eps, count)

        def leaf(g, s, *, keep):
            (s_new,) = keep(s + _tree.abs_sq(g))
            if eps_in_sqrt:
                u = jnp.where(s_new > 0, jax.lax.rsqrt(s_new + e), 0.0) * g
            else:
                u = g / (jnp.sqrt(s_new) + e)
            return u.astype(g.dtype), s_new.astype(s.dtype)

        u, s = leafwise("scale_by_rss", leaf, 2, updates, state.sum_of_squares, widen=True)
        return u, ScaleByRssState(s)

    return _block(init, update)


class ScaleByAdamState(NamedTuple):
    mu: Tree
    nu: Tree


class ScaleByAmsgradState(NamedTuple):
    mu: Tree
    nu: Tree
    nu_max: Tree


def _adam_ranges(where: str, b1: Any, b2: Any, eps: Any, eps_root: Any = 0.0) -> None:
    check_ranges(
        where,
        b1=(b1, "[0, 1)"),
        b2=(b2, "[0, 1)"),
        eps=(eps, "[0, inf)"),
        eps_root=(eps_root, "[0, inf)"),
    )


def _first_moment_hat(g, m_new, b1, db1: Debias, nesterov):
    """Bias-corrected first moment; Nesterov looks one step ahead (Dozat's NAdam):
    ``b1 * m_t / (1 - b1^{t+1}) + (1 - b1) * g / (1 - b1^t)``."""
    if not nesterov:
        return db1(m_new)
    return b1 * db1(m_new, ahead=1) + (1 - b1) * db1(g)


def _moments_init(
    mu_dtype: Any, with_max: bool = False, nu_dtype: Any = None
) -> Callable[[Tree], NamedTuple]:
    dt, nu_dt = _tree.canonical_dtype(mu_dtype), _tree.canonical_dtype(nu_dtype)

    def init(params):
        mu, nu = _tree.zeros_like(params, dt), _tree.zeros_like(params, nu_dt)
        if with_max:
            return ScaleByAmsgradState(mu, nu, _tree.zeros_like(params))
        return ScaleByAdamState(mu, nu)

    return init


def scale_by_adam(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam scaling (Kingma & Ba 2015): ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g^2``,
    ``u = m̂ / (sqrt(v̂ + eps_root) + eps)`` with ``m̂ = m_t / (1 - b1^t)``,
    ``v̂ = v_t / (1 - b2^t)``; ``nesterov`` uses the look-ahead ``m̂`` of NAdam (Dozat 2016).
    ``mu_dtype`` / ``nu_dtype`` store ``m`` / ``v`` in that dtype: the step computes in the widest
    of float32 and every input's dtype, rounds the new moments to their stored dtypes and takes the
    update from them as stored (optax takes it from the unrounded moments; the difference is one
    rounding of ``m``).  Both in bfloat16 halve the state of float32 params; note that
    bfloat16's 8-bit mantissa cannot resolve a per-step decay of ``1 - b2 = 1e-3``, so ``v`` then
    follows recent gradients more than ``b2`` says.  optax: ``optax.scale_by_adam`` (no nu_dtype).
    """
    _adam_ranges("scale_by_adam", b1, b2, eps, eps_root)

    def update(updates, state, params=None, count=None, **extra):
        c1, c2 = resolve(b1, count), resolve(b2, count)
        e, er = resolve(eps, count), resolve(eps_root, count)
        db1, db2 = Debias(c1, count), Debias(c2, count)

        def leaf(g, m, v, *, keep):
            m_new, v_new = keep(_tree.ema(g, m, c1), _tree.ema_sq(g, v, c2))
            m_hat = _first_moment_hat(g, m_new, c1, db1, nesterov)
            u = m_hat / (jnp.sqrt(db2(v_new) + er) + e)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = leafwise("scale_by_adam", leaf, 3, updates, state.mu, state.nu, widen=True)
        return u, ScaleByAdamState(mu, nu)

    return _block(_moments_init(mu_dtype, nu_dtype=nu_dtype), update)


def scale_by_amsgrad(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    raw_max: bool = False,
) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018): Adam's moments, but the denominator uses a running maximum.

    Default (optax's rule): ``v_max = max(v_max, v̂_t)``, ``u = m̂ / (sqrt(v_max + eps_root) + eps)``.
    ``raw_max=True`` (torch's rule): ``v_max = max(v_max, v_t)`` of the raw moment, divided by the
    current ``1 - b2^t``.  optax: ``optax.scale_by_amsgrad``.
    """
    _adam_ranges("scale_by_amsgrad", b1, b2, eps, eps_root)

    def update(updates, state, params=None, count=None, **extra):
        c1, c2 = resolve(b1, count), resolve(b2, count)
        e, er = resolve(eps, count), resolve(eps_root, count)

        db1, db2 = Debias(c1, count), Debias(c2, count)

        def nu_hat(v):
            return db2(v) if bias_correction_nu else v

        def leaf(g, m, v, vmax, *, keep):
            m_new, v_new = keep(_tree.ema(g, m, c1), _tree.ema_sq(g, v, c2))
            m_hat = db1(m_new) if bias_correction_mu else m_new
            if raw_max:
                vmax_new = jnp.maximum(vmax, v_new)
                denom = nu_hat(vmax_new)
            else:
                _, _, vmax_new = keep(None, None, jnp.maximum(vmax, nu_hat(v_new)))
                denom = vmax_new
            u = m_hat / (jnp.sqrt(denom + er) + e)
            return (
                u.astype(g.dtype),
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                vmax_new.astype(vmax.dtype),
            )

        u, mu, nu, nu_max = leafwise(
            "scale_by_amsgrad", leaf, 4, updates, state.mu, state.nu, state.nu_max, widen=True
        )
        return u, ScaleByAmsgradState(mu, nu, nu_max)

    return _block(_moments_init(mu_dtype, with_max=True), update)


def scale_by_adamax(
    b1: ScalarOrSchedule = 0.9, b2: ScalarOrSchedule = 0.999, eps: ScalarOrSchedule = 1e-8
) -> GradientTransformation:
    """AdaMax (Kingma & Ba 2015, sec. 7): ``m_t = b1 m + (1 - b1) g``,
    ``n_t = max(b2 n, |g| + eps)``, ``u = m_t / ((1 - b1^t) n_t)``.  optax: ``scale_by_adamax``;
    torch: ``Adamax`` (same rule)."""
    _adam_ranges("scale_by_adamax", b1, b2, eps)

    def update(updates, state, params=None, count=None, **extra):
        c1, c2, e = resolve(b1, count), resolve(b2, count), resolve(eps, count)
        db1 = Debias(c1, count)

        def leaf(g, m, n, *, keep):
            m_new, n_new = keep(_tree.ema(g, m, c1), jnp.maximum(c2 * n, jnp.abs(g) + e))
            u = db1(m_new) / n_new
            return u.astype(g.dtype), m_new.astype(m.dtype), n_new.astype(n.dtype)

        u, mu, nu = leafwise("scale_by_adamax", leaf, 3, updates, state.mu, state.nu, widen=True)
        return u, ScaleByAdamState(mu, nu)

    return _block(_moments_init(None), update)


class ScaleByAdaDeltaState(NamedTuple):
    e_g: Tree
    e_x: Tree


def scale_by_adadelta(
    rho: ScalarOrSchedule = 0.9, eps: ScalarOrSchedule = 1e-6
) -> GradientTransformation:
    """Adadelta (Zeiler 2012): ``E[g²]_t = rho E[g²] + (1 - rho) g²``,
    ``u = sqrt(E[Δx²]_{t-1} + eps) / sqrt(E[g²]_t + eps) * g``,
    ``E[Δx²]_t = rho E[Δx²] + (1 - rho) u²``.  optax: ``scale_by_adadelta``; torch: ``Adadelta``."""
    check_ranges("scale_by_adadelta", rho=(rho, "[0, 1]"), eps=(eps, "[0, inf)"))

    def init(params):
        return ScaleByAdaDeltaState(_tree.zeros_like(params), _tree.zeros_like(params))

    def update(updates, state, params=None, count=None, **extra):
        r, e = resolve(rho, count), resolve(eps, count)

        def leaf(g, eg, ex, *, keep):
            (eg_new,) = keep(_tree.ema_sq(g, eg, r))
            u = jnp.sqrt(ex + e) / jnp.sqrt(eg_new + e) * g
            ex_new = _tree.ema_sq(u, ex, r)
            return u.astype(g.dtype), eg_new.astype(eg.dtype), ex_new.astype(ex.dtype)

        u, e_g, e_x = leafwise(
            "scale_by_adadelta", leaf, 3, updates, state.e_g, state.e_x, widen=True
        )
        return u, ScaleByAdaDeltaState(e_g, e_x)

    return _block(init, update)


def scale_by_radam(
    b1: ScalarOrSchedule = 0.9,
    b2: float = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
    eps_before_bias_correction: bool = False,
) -> GradientTransformation:
    """Rectified Adam (Liu et al. 2020).  ``rho_inf = 2 / (1 - b2) - 1``,
    ``rho_t = rho_inf - 2 t b2^t / (1 - b2^t)``.  If ``rho_t >= threshold``:
    ``u = r_t m̂ / (sqrt(v̂ + eps_root) + eps)`` with
    ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``; else
    ``u = m̂``.  ``eps_before_bias_correction`` (torch's rule) uses
    ``sqrt(1 - b2^t) / (sqrt(v_t) + eps)`` for the adaptive term.  optax: ``scale_by_radam``."""
    _adam_ranges("scale_by_radam", b1, b2, eps, eps_root)
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def update(updates, state, params=None, count=None, **extra):
        c1, e, er = resolve(b1, count), resolve(eps, count), resolve(eps_root, count)
        db1, db2 = Debias(c1, count), Debias(b2, count)

        def leaf(g, m, v, *, keep):
            m_new, v_new = keep(_tree.ema(g, m, c1), _tree.ema_sq(g, v, b2))
            dt = _tree.compute_dtype(v)
            t = (count + 1).astype(dt)
            b2t = _tree.power(b2, count + 1, v)
            one_minus_b2t = _tree.one_minus_power(b2, count + 1, v)
            rho = rho_inf - 2 * t * b2t / one_minus_b2t
            r = jnp.sqrt(
                jnp.maximum((rho - 4) * (rho - 2) * rho_inf, 0)
                / ((rho_inf - 4) * (rho_inf - 2) * rho)
            )
            m_hat = _first_moment_hat(g, m_new, c1, db1, nesterov)
            if eps_before_bias_correction:
                adaptive = jnp.sqrt(one_minus_b2t) / (jnp.sqrt(v_new) + e)
            else:
                adaptive = 1 / (jnp.sqrt(db2(v_new) + er) + e)
            u = jnp.where(rho >= threshold, r.astype(m_hat.dtype) * m_hat * adaptive, m_hat)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = leafwise("scale_by_radam", leaf, 3, updates, state.mu, state.nu, widen=True)
        return u, ScaleByAdamState(mu, nu)

    return _block(_moments_init(None), update)


class ScaleByNadamState(NamedTuple):
    mu_product: jax.Array
    mu: Tree
    nu: Tree


def scale_by_nadam(
    b1: ScalarOrSchedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
) -> GradientTransformation:
    """NAdam with Dozat's momentum schedule, as torch implements it:
    ``mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay))``, ``P_t = prod_{i<=t} mu_i``,
    ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g²``, ``d = sqrt(v_t / (1 - b2^t)) + eps``,
    ``u = (1 - mu_t) / (1 - P_t) * g / d + mu_{t+1} / (1 - P_t mu_{t+1}) * m_t / d``.
    torch: ``NAdam``.  (optax's ``nadam`` is ``adam(nesterov=True)``, without the schedule.)"""
    _adam_ranges("scale_by_nadam", b1, b2, eps)
    check_ranges("scale_by_nadam", momentum_decay=(momentum_decay, "[0, inf)"))

    def init(params):
        mu, nu = _tree.zeros_like(params), _tree.zeros_like(params)
        return ScaleByNadamState(jnp.ones([], jnp.result_type(float)), mu, nu)

    def update(updates, state, params=None, count=None, **extra):
        dt = state.mu_product.dtype
        t = (count + 1).astype(dt)
        c1 = resolve(b1, count)  # torch uses the current beta1 for both mu_t and mu_{t+1}
        mu_t = c1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = c1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        prod = state.mu_product * mu_t
        c_g, c_m = (1 - mu_t) / (1 - prod), mu_next / (1 - prod * mu_next)
        db2 = Debias(b2, count)

        def leaf(g, m, v, *, keep):
            m_new, v_new = keep(_tree.ema(g, m, c1), _tree.ema_sq(g, v, b2))
            d = jnp.sqrt(db2(v_new)) + eps
            k = _tree.compute_dtype(g)
            u = c_g.astype(k) * g / d + c_m.astype(k) * m_new / d
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = leafwise("scale_by_nadam", leaf, 3, updates, state.mu, state.nu, widen=True)
        return u, ScaleByNadamState(prod, mu, nu)

    return _block(init, update)


def scale_by_belief(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-16,
    eps_root: ScalarOrSchedule = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020): ``m_t = b1 m + (1 - b1) g``,
    ``s_t = b2 s + (1 - b2) (g - m_t)² + eps_root``, ``u = m̂ / (sqrt(ŝ) + eps)``.
    optax: ``optax.scale_by_belief``."""
    _adam_ranges("scale_by_belief", b1, b2, eps, eps_root)

    def update(updates, state, params=None, count=None, **extra):
        c1, c2 = resolve(b1, count), resolve(b2, count)
        e, er = resolve(eps, count), resolve(eps_root, count)

        db1, db2 = Debias(c1, count), Debias(c2, count)

        def leaf(g, m, s, *, keep):
            (m_new,) = keep(_tree.ema(g, m, c1))
            _, s_new = keep(None, _tree.ema_sq(g - m_new, s, c2) + er)
            m_hat = _first_moment_hat(g, m_new, c1, db1, nesterov)
            u = m_hat / (jnp.sqrt(db2(s_new)) + e)
            return u.astype(g.dtype), m_new.astype(m.dtype), s_new.astype(s.dtype)

        u, mu, nu = leafwise("scale_by_belief", leaf, 3, updates, state.mu, state.nu, widen=True)
        return u, ScaleByAdamState(mu, nu)

    return _block(_moments_init(None), update)


def scale_by_yogi(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-3,
    eps_root: ScalarOrSchedule = 0.0,
    initial_accumulator_value: float = 1e-6,
) -> GradientTransformation:
    """Yogi (Zaheer et al. 2018): ``m_t = b1 m + (1 - b1) g``,
    ``v_t = v - (1 - b2) sign(v - g²) g²``, ``u = m̂ / (sqrt(v̂ + eps_root) + eps)``; both moments
    start at ``initial_accumulator_value``.  optax: ``optax.scale_by_yogi``."""
    _adam_ranges("scale_by_yogi", b1, b2, eps, eps_root)

    def init(params):
        full = _tree.full_like(params, initial_accumulator_value)
        return ScaleByAdamState(full, _tree.full_like(params, initial_accumulator_value))

    def update(updates, state, params=None, count=None, **extra):
        c1, c2 = resolve(b1, count), resolve(b2, count)
        e, er = resolve(eps, count), resolve(eps_root, count)

        db1, db2 = Debias(c1, count), Debias(c2, count)

        def leaf(g, m, v, *, keep):
            g2 = _tree.abs_sq(g)
            m_new, v_new = keep(_tree.ema(g, m, c1), v - (1 - c2) * jnp.sign(v - g2) * g2)
            u = db1(m_new) / (jnp.sqrt(db2(v_new) + er) + e)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = leafwise("scale_by_yogi", leaf, 3, updates, state.mu, state.nu, widen=True)
        return u, ScaleByAdamState(mu, nu)

    return _block(init, update)


class ScaleByLionState(NamedTuple):
    mu: Tree


def scale_by_lion(
    b1: ScalarOrSchedule = 0.9, b2: ScalarOrSchedule = 0.99, mu_dtype: Any = None
) -> GradientTransformation:
    """Lion (Chen et al. 2023): ``u = sign(b1 m + (1 - b1) g)``, then
    ``m_t = b2 m + (1 - b2) g``.  optax: ``optax.scale_by_lion``."""
    check_ranges("scale_by_lion", b1=(b1, "[0, 1]"), b2=(b2, "[0, 1]"))
    dt = _tree.canonical_dtype(mu_dtype)

    def init(params):
        return ScaleByLionState(_tree.zeros_like(params, dt))

    def update(updates, state, params=None, count=None, **extra):
        c1, c2 = resolve(b1, count), resolve(b2, count)

        def leaf(g, m, *, keep):
            u = jnp.sign(_tree.ema(g, m, c1))
            return u.astype(g.dtype), _tree.ema(g, m, c2).astype(m.dtype)

        u, mu = leafwise("scale_by_lion", leaf, 2, updates, state.mu, widen=True)
        return u, ScaleByLionState(mu)

    return _block(init, update)


# --- weight decay and noise ----------------------------------------------------------------------


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: Any = None
) -> GradientTransformation:
    """``u = g + weight_decay * p``.

    Placed before an adaptive scaling it is L2 regularisation (torch's ``weight_decay=`` of
    ``SGD``/``Adam``); placed after it, before the learning rate, it is decoupled weight decay
    (AdamW: ``p <- p - lr * (adam_direction + wd * p)``).  ``mask`` (a tree of bools or a function
    of params) limits it to some leaves.  optax: ``optax.add_decayed_weights``.
    """
    check_ranges("add_decayed_weights", weight_decay=(weight_decay, "[0, inf)"))

    def fn(g, params, count):
        if not jax.tree.leaves(g):
            return g
        if params is None:
            raise ValueError("add_decayed_weights: update needs params (pass params=...)")
        wd = resolve(weight_decay, count)
        if _is_zero(wd):
            return g
        return leafwise(
            "add_decayed_weights",
            lambda x, p: ((x + _tree.scalar(wd, x) * p).astype(x.dtype),),
            1,
            g,
            params,
            names=("params",),
        )[0]

    tx = _stateless(fn)
    if mask is not None:
        from gradtx.combinators import masked

        return masked(tx, mask, name="add_decayed_weights")
    return tx


class AddNoiseState(NamedTuple):
    rng_key: jax.Array


def add_noise(
    eta: float, gamma: float, key: jax.Array | int | None = None, *, seed: int | None = None
) -> GradientTransformation:
    """Annealed Gaussian gradient noise (Neelakantan et al. 2015): ``u = g + N(0, s_t^2)`` with
    ``s_t^2 = eta / t^gamma``; one fresh key per leaf per step.  The key is stored as raw key data
    (uint32), so the state serialises with flax and orbax.  optax: ``optax.add_noise``."""
    check_ranges("add_noise", eta=(eta, "[0, inf)"), gamma=(gamma, "[0, inf)"))
    if seed is not None:
        if key is not None:
            raise ValueError("add_noise: give either key or seed, not both")
        key = seed
    key = 0 if key is None else key

    def init(params):
        k = jax.random.PRNGKey(key) if isinstance(key, int) else key
        if jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
            k = jax.random.key_data(k)
        return AddNoiseState(k)

    def update(updates, state, params=None, count=None, **extra):
        new_key, sample = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample, len(leaves))
        t = (count + 1).astype(jnp.result_type(float))
        std = jnp.sqrt(eta / t**gamma)
        noisy = [
            x + std.astype(x.dtype) * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ]
        return treedef.unflatten(noisy), AddNoiseState(new_key)

    return _block(init, update)


__all__ = [
    "AddNoiseState",
    "EmaState",
    "ScaleByAdaDeltaState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByLionState",
    "ScaleByNadamState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "TraceState",
    "add_decayed_weights",
    "add_noise",
    "bias_correction",
    "ema",
    "leafwise",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_sign",
    "scale_by_stddev",
    "scale_by_yogi",
    "trace",
]
