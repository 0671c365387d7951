"""Loss-driven step sizes: Polyak's step ``(f(x) - f*) / ||g||²`` (SPS, ``polyak_sgd``) and MoMo,
its momentum (``momo``) and Adam (``momo_adam``) forms.

Each ``update`` needs the loss at the params the gradients were taken at:
``tx.update(grads, state, params, value=loss)`` (``jax.value_and_grad`` gives both).  The step
size is one scalar for the whole tree, computed in the params' lowest float precision (at least
float32).  Notation: ``<a, b>`` is the dot product over the whole tree, ``t = count + 1``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain
from gradtx.blocks import scale_by_learning_rate
from gradtx.registry import register

Real = Annotated[ScalarOrSchedule, kit.Range("(-inf, inf)")]
RealConstant = Annotated[float, kit.Range("(-inf, inf)")]

# optax's guard: a squared norm at most float64's epsilon takes no step (in every precision)
_TINY = float(np.finfo(np.float64).eps)


def _loss(where: str, h: Any) -> Any:
    value = h.extra.get("value")
    if value is None:
        raise ValueError(
            f"{where}: update needs the loss at these params, e.g. "
            "tx.update(grads, state, params, value=loss) (jax.value_and_grad gives both)"
        )
    return value


def _check_variant(where: str, variant: str) -> None:
    if variant not in ("sps", "sps+"):
        raise ValueError(f"{where}: variant={variant!r}; allowed: 'sps' or 'sps+'")


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den``, and 0 where ``den <= _TINY`` (with a finite gradient there too)."""
    small = den <= _TINY
    return jnp.where(small, 0, num / jnp.where(small, 1, den))


def _times(factor: jax.Array, tree: Any) -> Any:
    """``factor * tree`` leaf by leaf in the leaf's compute precision, cast back."""
    return jax.tree.map(lambda x: (factor.astype(kit.compute_dtype(x)) * x).astype(x.dtype), tree)


# --- Polyak's step size ----------------------------------------------------------------------


@register(
    "block",
    optax="scale_by_polyak",
    traced="f_min",
    traits=("needs_value",),
    examples=[
        {"f_min": 0.5},
        {"f_min": 11.0, "max_learning_rate": 0.3, "eps": 1e-3, "variant": "sps+"},
        {"f_min": 20.0, "max_learning_rate": 0.3},  # the loss goes below f_min: negative steps
    ],
)
def scale_by_polyak(
    f_min: Real = 0.0,
    max_learning_rate: kit.NonNegative = 1.0,
    eps: kit.NonNegative = 0.0,
    variant: Literal["sps", "sps+"] = "sps",
) -> GradientTransformation:
    """Polyak's step size for the whole tree, from the loss ``f = value``:
    ``u = min((f - f_min) / (||g||² + eps), max_learning_rate) * g``, and ``u = 0`` when
    ``||g||² + eps <= 2.2e-16`` (optax's guard).  ``variant="sps+"`` takes ``max(f - f_min, 0)``
    (Garrigos et al. 2023), so a loss below ``f_min`` stops rather than reverses the step.
    Needs ``value=`` (the loss) at every update.

    Args:
      f_min: a lower bound ``f*`` on the loss (0 for a model that can fit its data).
      max_learning_rate: the largest step size ``gamma_max``.
      eps: added to ``||g||²`` in the denominator.
      variant: ``"sps"`` or ``"sps+"``.

    optax: ``optax.scale_by_polyak``; torch: none.

    Example:
        On ``f(x) = x²`` with ``f* = 0`` the step is ``f / f'² = 1/4``: halfway to 0 each time.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.chain(gradtx.scale_by_polyak(), gradtx.scale(-1.0))
        >>> x = jnp.array([2.0], jnp.float32)
        >>> state = tx.init(x)
        >>> for _ in range(3):
        ...     u, state = tx.update(2 * x, state, x, value=jnp.sum(x**2))
        ...     x = x + u
        ...     print(jnp.array_str(x, precision=4))
        [1.]
        [0.5]
        [0.25]
    """
    _check_variant("scale_by_polyak", variant)

    def step(updates, state, params, h):
        value = _loss("scale_by_polyak", h)
        dt = kit.scalar_dtype(updates)
        norm = kit.vdot(updates, updates).astype(dt)
        norm = norm + kit.scalar(h.eps, norm)
        gap = jnp.asarray(value).astype(dt) - kit.scalar(h.f_min, norm)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        rate = jnp.minimum(_ratio(gap, norm), kit.scalar(h.max_learning_rate, norm))
        return _times(jnp.where(norm <= _TINY, 0, rate).astype(dt), updates), state

    hyper = {"f_min": f_min, "max_learning_rate": max_learning_rate, "eps": eps}
    return kit.block("scale_by_polyak", step, hyper=hyper)


@register(
    optax="polyak_sgd",
    traced="scaling",
    traits=("needs_value",),
    examples=[
        {},
        # the loss goes below f_min: no step (sps+)
        {"max_learning_rate": 0.05, "scaling": 0.5, "f_min": 10.5, "eps": 1e-4, "variant": "sps+"},
    ],
)
def polyak_sgd(
    max_learning_rate: kit.NonNegative = 1.0,
    scaling: kit.Rate = 1.0,
    f_min: Real = 0.0,
    eps: kit.NonNegative = 0.0,
    variant: Literal["sps", "sps+"] = "sps",
) -> GradientTransformation:
    """SGD with Polyak's step size, SPS_max (Loizou et al. 2021), optax's form: with
    ``d = -scaling * g`` (``scaling`` read at ``t - 1``),
    ``u = min((f - f_min) / (||d||² + eps), max_learning_rate) * d``.

    ``scaling`` is inside the squared norm (optax chains ``sgd(scaling)`` before
    ``scale_by_polyak``; optax's docstring's ``s * min(...)`` holds for ``scaling = 1`` only).
    With ``eps = 0`` the step is ``min((f - f*) / (scaling ||g||²), scaling * max_lr)``: the
    paper's ``SPS_max`` with ``c = scaling`` and ``gamma_b = scaling * max_learning_rate``.
    Needs ``value=`` (the loss) at every update.

    Args:
      max_learning_rate: the largest step size on ``d``.
      scaling: the factor ``s`` of the direction ``d = -s g``, a number or a schedule.
      f_min: a lower bound ``f*`` on the loss (0 for a model that can fit its data).
      eps: added to ``||d||²`` in the denominator.
      variant: ``"sps"``, or ``"sps+"`` for ``max(f - f_min, 0)`` (Garrigos et al. 2023).

    optax: ``optax.polyak_sgd``; torch: none.

    Example:
        A least-squares fit, zero at its minimum: the step size comes from the loss itself.

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> a = jnp.array([[1.0, 2.0], [3.0, 1.0], [0.0, 1.0]], jnp.float32)
        >>> b = a @ jnp.array([1.0, -1.0], jnp.float32)
        >>> loss = lambda x: 0.5 * jnp.sum((a @ x - b) ** 2)
        >>> opt, x = gradtx.polyak_sgd(), jnp.zeros(2, jnp.float32)
        >>> state, value_and_grad = opt.init(x), jax.jit(jax.value_and_grad(loss))
        >>> for t in range(1, 16):
        ...     value, grads = value_and_grad(x)
        ...     updates, state = opt.update(grads, state, x, value=value)
        ...     x = gradtx.apply_updates(x, updates)
        ...     if t % 5 == 0:
        ...         print(t, jnp.array_str(x, precision=3), f"{loss(x):.1e}")
        5 [ 0.917 -0.82 ] 5.7e-02
        10 [ 0.981 -0.98 ] 1.1e-03
        15 [ 0.998 -0.997] 2.1e-05
    """
    _check_variant("polyak_sgd", variant)
    return chain(
        scale_by_learning_rate(scaling),
        scale_by_polyak(f_min, max_learning_rate, eps, variant),
    )


# --- MoMo ------------------------------------------------------------------------------------


@kit.one_counter("count")
class MomoState(NamedTuple):
    """``exp_avg``: ``d``, the average gradient; ``barf``: the average loss; ``gamma``: the
    average ``<g, x>``; ``lb``: the loss's lower bound in use.  Field names follow optax
    (without its own ``count``)."""

    exp_avg: kit.Tree
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array


@kit.one_counter("count")
class MomoAdamState(NamedTuple):
    """MomoState with Adam's second moment ``exp_avg_sq``."""

    exp_avg: kit.Tree
    exp_avg_sq: kit.Tree
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array


def _widest(*xs: jax.Array) -> Any:
    return jnp.promote_types(jnp.float32, jnp.result_type(*xs))


def _momo(
    name: str, hyper: dict[str, Any], lower_bound: Any, adapt: bool, adam: bool
) -> GradientTransformation:
    """MoMo (``adam=False``) and MoMo-Adam: one step for the whole tree.  The averages, ``lb``
    and the step size are scalars in the params' lowest float precision (at least float32)."""
    cls = MomoAdamState if adam else MomoState

    def init(params):
        lb = jnp.asarray(lower_bound, kit.scalar_dtype(params))
        trees = [kit.zeros_like(params) for _ in range(len(cls._fields) - 3)]
        return cls(*trees, jnp.zeros_like(lb), jnp.zeros_like(lb), lb)

    def step(updates, state, params, h):
        value = _loss(name, h)
        dt, n = state.barf.dtype, len(state) - 3
        decay = h.b1 if adam else h.beta
        if adam:  # zero-started averages, bias-corrected
            bc1 = kit.one_minus_power(h.b1, h.count + 1, state.barf)
            bc2 = kit.one_minus_power(h.b2, h.count + 1, state.barf)
        else:  # averages that start at the first values
            bc1 = 1.0

        def average(x, m):
            new = kit.ema(x, m, kit.scalar(decay, m))
            return new if adam else jnp.where(h.count == 0, x, new)

        def scaled(d, v):
            """``d / D`` with Adam's ``D = eps + sqrt(v / (1 - b2^t))``; ``d`` for MoMo."""
            return d / (kit.scalar(h.eps, v) + jnp.sqrt(v / bc2.astype(v.dtype))) if adam else d

        def moments(g, *leaves):
            k = _widest(g, *leaves)
            g, p = g.astype(k), leaves[-1].astype(k)
            new = [average(g, leaves[0].astype(k))]
            if adam:
                new.append(kit.ema_sq(g, leaves[1].astype(k), kit.scalar(h.b2, g)))
            new = [x.astype(m.dtype) for x, m in zip(new, leaves, strict=False)]  # as stored
            d, v = new[0].astype(k), new[-1].astype(k)
            sums = [jnp.sum(d * scaled(d, v)), jnp.sum(g * p), jnp.sum(d * p)]
            return (*new, jnp.stack(sums))

        names = (*state._fields[:n], "params")
        *moms, sums = kit.leafwise(name, moments, n + 1, updates, *state[:n], params, names=names)
        norm, dot, iprod = sum((x.astype(dt) for x in jax.tree.leaves(sums)), jnp.zeros(3, dt))
        lr, wd = jnp.asarray(h.learning_rate, dt), jnp.asarray(h.weight_decay, dt)
        barf = average(jnp.asarray(value).astype(dt), state.barf)
        gamma = average(dot, state.gamma)
        rho = 1 + lr * wd  # the proximal weight decay's (1 + lr wd)
        lb, floor = state.lb, kit.scalar(lower_bound, state.lb)
        if adapt:  # restart the estimate where the model's value falls below it
            cap = rho * (barf - gamma) + iprod
            low = jnp.maximum(cap / (2 * bc1 * rho), floor)
            lb = jnp.where(cap < rho * bc1 * lb, low, lb)
        num = jnp.maximum(rho * (barf - bc1 * lb - gamma) + iprod, 0)
        tau = jnp.minimum(lr / bc1, _ratio(num, norm)).astype(dt)
        if adapt:
            lb = jnp.maximum((barf + iprod - gamma - tau * norm / 2) / bc1, floor)
        shrink = (lr * wd / rho).astype(dt)

        def move(g, p, *leaves):
            k = _widest(g, p, *leaves)
            d, v = leaves[0].astype(k), leaves[-1].astype(k)
            u = -shrink.astype(k) * p.astype(k) - tau.astype(k) * scaled(d, v)
            return (u.astype(g.dtype),)

        (u,) = kit.leafwise(name, move, 1, updates, params, *moms)
        scalars = (x.astype(dt) for x in (barf, gamma, lb))
        return u, cls(*moms, *scalars)

    return kit.block(name, step, init, hyper=hyper, needs_params=True)


@register(
    optax="contrib.momo",
    traits=("needs_value",),
    examples=[
        {"learning_rate": 0.5},
        # the model's value often falls below lower_bound: no step but the weight decay
        {"learning_rate": 0.5, "beta": 0.8, "lower_bound": 9.0, "weight_decay": 0.01},
        {"learning_rate": 1.0, "lower_bound": 0.5, "adapt_lower_bound": True},
    ],
)
def momo(
    learning_rate: kit.Rate = 1.0,
    beta: kit.Decay = 0.9,
    lower_bound: RealConstant = 0.0,
    weight_decay: kit.NonNegative = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo (Schaipp et al. 2023): SGD with momentum and a Polyak-type step size from a model of
    the loss.  Averages (``b = 0`` on the first step, so they start at the first values; ``beta``
    after): ``d = b d + (1 - b) g``, ``f̄ = b f̄ + (1 - b) f``, ``gamma = b gamma + (1 - b) <g, x>``;
    with ``lr = learning_rate(t - 1)``, ``rho = 1 + lr wd``::

        tau = min(lr, max(rho (f̄ - lb - gamma) + <d, x>, 0) / ||d||²)    (0 if ||d||² <= 2.2e-16)
        u   = -(lr wd / rho) x - tau d

    ``adapt_lower_bound=True`` estimates ``lb`` on the fly (the paper's MoMo*), never below
    ``lower_bound``.  Needs ``value=`` (the loss) at every update.

    With weight decay, optax (followed here) divides only ``x`` by ``rho``; the paper and the
    authors' code divide the whole step, ``x <- (x - tau d) / rho``, a step ``rho`` times smaller.

    Args:
      learning_rate: the largest step size (large: 1.0 is the default), a number or a schedule.
      beta: the momentum coefficient of the averages.
      lower_bound: a lower bound on the loss (0 for most losses): ``lb``'s start and floor.
      weight_decay: the coefficient ``wd`` of the (proximal) weight decay.
      adapt_lower_bound: estimate ``lb`` as training goes (MoMo*).

    optax: ``optax.contrib.momo``; torch: none (the authors' ``momo.Momo``).

    Example:
        The step size comes from the loss; ``learning_rate`` only caps it (never reached here):

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda x: jnp.sum((x - 1.0) ** 2)
        >>> for cap in (1.0, 100.0):
        ...     opt, x = gradtx.momo(learning_rate=cap), jnp.array([3.0, -1.0], jnp.float32)
        ...     state = opt.init(x)
        ...     for _ in range(40):
        ...         value, grads = jax.value_and_grad(loss)(x)
        ...         updates, state = opt.update(grads, state, x, value=value)
        ...         x = gradtx.apply_updates(x, updates)
        ...     print(cap, f"{loss(x):.3f}")
        1.0 0.159
        100.0 0.159
    """

    hyper = {"learning_rate": learning_rate, "beta": beta, "weight_decay": weight_decay}
    return _momo("momo", hyper, lower_bound, adapt_lower_bound, adam=False)


@register(
    optax="contrib.momo_adam",
    traits=("needs_value",),
    examples=[
        {"learning_rate": 0.1},
        {
            "learning_rate": 0.2,
            "b1": 0.8,
            "b2": 0.99,
            "eps": 1e-4,
            "lower_bound": 0.5,
            "weight_decay": 0.01,
            "adapt_lower_bound": True,
        },
        {"learning_rate": 0.1, "lower_bound": 10.0},
    ],
)
def momo_adam(
    learning_rate: kit.Rate = 1e-2,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-8,
    lower_bound: RealConstant = 0.0,
    weight_decay: kit.NonNegative = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo-Adam (Schaipp et al. 2023): Adam's direction with MoMo's step size.  Zero-started
    averages ``d = b1 d + (1 - b1) g``, ``v = b2 v + (1 - b2) g²``, ``f̄ = b1 f̄ + (1 - b1) f``,
    ``gamma = b1 gamma + (1 - b1) <g, x>``; ``D = eps + sqrt(v / (1 - b2^t))``,
    ``c = 1 - b1^t``, ``lr = learning_rate(t - 1)``, ``rho = 1 + lr wd``::

        tau = min(lr / c, max(rho (f̄ - c lb - gamma) + <d, x>, 0) / <d, d / D>)
        u   = -(lr wd / rho) x - tau d / D

    (``tau = 0`` if ``<d, d / D> <= 2.2e-16``.)  ``adapt_lower_bound=True`` estimates ``lb`` on
    the fly (MoMo-Adam*), never below ``lower_bound``.  Needs ``value=`` (the loss) at every
    update.  With weight decay, optax (followed here) divides only ``x`` by ``rho``; the paper
    and the authors' code divide the whole step, ``x <- (x - tau d / D) / rho``.

    Args:
      learning_rate: the largest step size (times ``1 / (1 - b1^t)``), a number or a schedule.
      lower_bound: a lower bound on the loss (0 for most losses): ``lb``'s start and floor.
      weight_decay: the coefficient ``wd`` of the (proximal, AdamW-like) weight decay.
      adapt_lower_bound: estimate ``lb`` as training goes (MoMo-Adam*).

    optax: ``optax.contrib.momo_adam``; torch: none (the authors' ``momo.MomoAdam``).

    Example:
        With a lower bound that is too low, MoMo-Adam* raises its estimate as it trains:

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda x: 2.0 + jnp.sum(x**2)  # its minimum is 2, not 0
        >>> opt = gradtx.momo_adam(learning_rate=0.5, adapt_lower_bound=True)
        >>> x = jnp.array([1.0, -2.0], jnp.float32)
        >>> state = opt.init(x)
        >>> for t in range(1, 41):
        ...     value, grads = jax.value_and_grad(loss)(x)
        ...     updates, state = opt.update(grads, state, x, value=value)
        ...     x = gradtx.apply_updates(x, updates)
        ...     if t % 10 == 0:
        ...         print(t, f"{gradtx.tree_get(state, 'lb'):.2f}")  # from 0 toward 2
        10 1.19
        20 1.74
        30 1.85
        40 1.93
    """
    hyper = {
        "learning_rate": learning_rate,
        "b1": b1,
        "b2": b2,
        "eps": eps,
        "weight_decay": weight_decay,
    }
    return _momo("momo_adam", hyper, lower_bound, adapt_lower_bound, adam=True)


__all__ = ["MomoAdamState", "MomoState", "momo", "momo_adam", "polyak_sgd", "scale_by_polyak"]
