"""Second-moment scaling without momentum: Adagrad's running sum, RMSProp's moving average
(plain or centered) and Adadelta's unit correction.

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``v`` the second-moment state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, identity, scale_by_learning_rate, trace
from gradtx.registry import matrices, register

Tree = kit.Tree


class ScaleByRmsState(NamedTuple):
    nu: Tree


class ScaleByRStdDevState(NamedTuple):
    mu: Tree
    nu: Tree


class ScaleByRssState(NamedTuple):
    sum_of_squares: Tree


class ScaleByAdaDeltaState(NamedTuple):
    e_g: Tree
    e_x: Tree


@register(
    "block",
    optax="scale_by_rss",
    examples=[{}, {"initial_accumulator_value": 0.0, "eps": 1e-10, "eps_in_sqrt": False}],
    traced="eps",
)
def scale_by_rss(
    initial_accumulator_value: kit.NonNegative = 0.1,
    eps: kit.NonNegative = 1e-7,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """Adagrad scaling: ``s_t = s_{t-1} + g^2`` (``s_0 = initial_accumulator_value``);
    ``u = g / sqrt(s_t + eps)`` (0 where ``s_t = 0``) if ``eps_in_sqrt`` else
    ``u = g / (sqrt(s_t) + eps)`` (torch's placement).

    Adagrad's learning-rate decay is a schedule on the learning rate
    (``lr / (1 + lr_decay * step)``).

    Args:
      initial_accumulator_value: starting value ``s_0`` of the sum of squares.
      eps: added to ``s_t`` inside the square root (to ``sqrt(s_t)`` without ``eps_in_sqrt``).
      eps_in_sqrt: put ``eps`` inside the square root (optax) or outside (torch).

    optax: ``optax.scale_by_rss``; torch: none (the scaling inside ``torch.optim.Adagrad``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_rss(initial_accumulator_value=0.0)
        >>> g = jnp.array([1.0, -2.0], jnp.float32)
        >>> state = tx.init(g)
        >>> for _ in range(2):  # under a constant gradient the step shrinks as 1 / sqrt(t)
        ...     updates, state = tx.update(g, state)
        ...     print(jnp.array_str(updates, precision=4))
        [ 1. -1.]
        [ 0.7071 -0.7071]
    """

    def step(updates, state, params, h):
        def leaf(g, s, *, keep):
            s = keep(ScaleByRssState(s.sum_of_squares + kit.abs_sq(g)))
            ss = s.sum_of_squares
            if eps_in_sqrt:
                return jnp.where(ss > 0, jax.lax.rsqrt(ss + h.eps), 0.0) * g, s
            return g / (jnp.sqrt(ss) + h.eps), s

        return kit.map_state("scale_by_rss", leaf, updates, state)

    init = kit.init_state(ScaleByRssState, initial_accumulator_value)
    return kit.block("scale_by_rss", step, init, hyper={"eps": eps})


def _rms(
    where: str,
    decay: Any,
    eps: Any,
    initial_scale: float,
    eps_in_sqrt: bool,
    bias_correction: bool,
    centered: bool,
) -> GradientTransformation:
    state_cls = ScaleByRStdDevState if centered else ScaleByRmsState

    def init(params):
        nu = kit.full_like(params, initial_scale)
        return ScaleByRStdDevState(kit.zeros_like(params), nu) if centered else ScaleByRmsState(nu)

    def step(updates, state, params, h):
        d = h.decay
        db = kit.Debias(d, h.count)

        def leaf(g, s, *, keep):
            if centered:
                s = keep(state_cls(kit.ema(g, s.mu, d), kit.ema_sq(g, s.nu, d)))
            else:
                s = keep(state_cls(kit.ema_sq(g, s.nu, d)))
            v_hat = db(s.nu) if bias_correction else s.nu
            if centered:
                m_hat = db(s.mu) if bias_correction else s.mu
                v_hat = v_hat - kit.abs_sq(m_hat)
            scaling = jax.lax.rsqrt(v_hat + h.eps) if eps_in_sqrt else 1 / (jnp.sqrt(v_hat) + h.eps)
            return scaling * g, s

        return kit.map_state(where, leaf, updates, state)

    return kit.block(where, step, init, hyper={"decay": decay, "eps": eps})


@register(
    "block",
    optax="scale_by_rms",
    traced="decay",
    examples=[
        {},
        {"decay": 0.99, "eps": 1e-3, "eps_in_sqrt": False, "bias_correction": True},
        {"decay": 0.9, "eps": 1e-6, "initial_scale": 1.0},
        {"centered": True},
    ],
)
def scale_by_rms(
    decay: kit.Fraction = 0.9,
    eps: kit.NonNegative = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    centered: bool = False,
) -> GradientTransformation:
    """RMSProp scaling: ``v_t = decay * v_{t-1} + (1 - decay) * g^2`` (``v_0 = initial_scale``);
    with ``centered`` also ``m_t = decay * m_{t-1} + (1 - decay) * g`` and ``var = v - m^2``
    (else ``var = v``); ``u = g / sqrt(var + eps)`` if ``eps_in_sqrt`` else
    ``u = g / (sqrt(var) + eps)`` (torch's placement).

    Args:
      decay: decay rate of the averages of ``g^2`` (and ``g``); torch's ``alpha``.
      eps: added to ``var`` inside the square root (to ``sqrt(var)`` without ``eps_in_sqrt``).
      initial_scale: starting value ``v_0`` of the second moment.
      eps_in_sqrt: put ``eps`` inside the square root (optax) or outside (torch).
      bias_correction: divide ``v`` (and ``m``) by ``1 - decay^t`` first.
      centered: subtract the squared mean (``scale_by_stddev``).

    optax: ``optax.scale_by_rms`` / ``optax.scale_by_stddev``; torch: none (the scaling inside
    ``torch.optim.RMSprop``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> g = jnp.array([1.0, -2.0], jnp.float32)
        >>> for bias_correction in (False, True):
        ...     tx = gradtx.scale_by_rms(decay=0.9, bias_correction=bias_correction)
        ...     updates, _ = tx.update(g, tx.init(g))
        ...     print(jnp.array_str(updates, precision=4))
        [ 3.1623 -3.1623]
        [ 1. -1.]
    """
    where = "scale_by_stddev" if centered else "scale_by_rms"
    return _rms(where, decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered)


@register(
    "block",
    optax="scale_by_stddev",
    traced="decay",
    examples=[
        {"decay": 0.95, "eps": 1e-4, "initial_scale": 0.2},
        {"decay": 0.95, "eps": 1e-4, "initial_scale": 0.5, "eps_in_sqrt": False},
    ],
)
def scale_by_stddev(
    decay: kit.Fraction = 0.9,
    eps: kit.NonNegative = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """Centered RMSProp scaling: ``scale_by_rms(..., centered=True)``, i.e.
    ``u = g / sqrt(v_t - m_t^2 + eps)`` with ``m``, ``v`` the moving averages of ``g`` and ``g^2``.

    Args:
      decay: decay rate of the averages of ``g`` and ``g^2``; torch's ``alpha``.
      eps: added to ``v - m^2`` inside the square root (outside without ``eps_in_sqrt``).
      initial_scale: starting value ``v_0`` of the second moment.
      eps_in_sqrt: put ``eps`` inside the square root (optax) or outside (torch).
      bias_correction: divide ``v`` and ``m`` by ``1 - decay^t`` first.

    optax: ``optax.scale_by_stddev``; torch: none (the scaling inside
    ``torch.optim.RMSprop(centered=True)``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_stddev(decay=0.9)
        >>> g = jnp.array([1.0, -2.0], jnp.float32)
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates, precision=4), gradtx.tree_get(state, "mu"))
        [ 3.3333 -3.3333] [ 0.1 -0.2]
    """
    return _rms("scale_by_stddev", decay, eps, initial_scale, eps_in_sqrt, bias_correction, True)


@register("block", optax="scale_by_adadelta", examples=[{}, {"rho": 0.95}], traced="rho")
def scale_by_adadelta(
    rho: kit.Fraction = 0.9, eps: kit.NonNegative = 1e-6
) -> GradientTransformation:
    """Adadelta (Zeiler 2012): ``E[g²]_t = rho E[g²] + (1 - rho) g²``,
    ``u = sqrt(E[Δx²]_{t-1} + eps) / sqrt(E[g²]_t + eps) * g``,
    ``E[Δx²]_t = rho E[Δx²] + (1 - rho) u²``.

    Args:
      rho: decay rate of both averages.
      eps: added to both averages inside their square roots; it sets the size of the first
        steps (about ``sqrt(eps)``).

    optax: ``optax.scale_by_adadelta``; torch: none (the rule inside ``torch.optim.Adadelta``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_adadelta(rho=0.9, eps=1e-6)
        >>> g = jnp.array([1.0, -2.0], jnp.float32)
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates, precision=5))  # first steps: about sqrt(eps) in size
        [ 0.00316 -0.00316]
    """

    def step(updates, state, params, h):
        def leaf(g, s, *, keep):
            s = keep(s._replace(e_g=kit.ema_sq(g, s.e_g, h.rho)))
            u = jnp.sqrt(s.e_x + h.eps) / jnp.sqrt(s.e_g + h.eps) * g
            return u, s._replace(e_x=kit.ema_sq(u, s.e_x, h.rho))

        return kit.map_state("scale_by_adadelta", leaf, updates, state)

    init = kit.init_state(ScaleByAdaDeltaState)
    return kit.block("scale_by_adadelta", step, init, hyper={"rho": rho, "eps": eps})


# --- optimizers ----------------------------------------------------------------------------------


@register(
    optax="adagrad",
    examples=[
        {"learning_rate": 0.3},
        {"learning_rate": 0.3, "initial_accumulator_value": 0.5, "eps": 1e-3},
    ],
)
def adagrad(
    learning_rate: kit.Rate,
    initial_accumulator_value: kit.NonNegative = 0.1,
    eps: kit.NonNegative = 1e-7,
) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011): ``s_t = s_{t-1} + g^2``, ``u = -lr * g / sqrt(s_t + eps)``.

    Args:
      initial_accumulator_value: starting value ``s_0`` of the sum of squares.
      eps: added to ``s_t`` inside the square root.

    optax: ``optax.adagrad``; torch: ``torch.optim.Adagrad`` (eps outside the root:
    ``from_torch("Adagrad")``).

    Example:
        The sum of squares only grows, so a zero gradient leaves it as it was:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.adagrad(learning_rate=0.5, initial_accumulator_value=0.0)
        >>> state = opt.init({"w": jnp.ones(2, jnp.float32)})
        >>> for g in (3.0, 0.0, 4.0):
        ...     updates, state = opt.update({"w": jnp.full(2, g, jnp.float32)}, state)
        >>> print(gradtx.tree_get(state, "sum_of_squares")["w"], updates["w"])  # -0.5 * 4 / 5
        [25. 25.] [-0.4 -0.4]
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate)
    )


@register(
    optax="rmsprop",
    examples=[
        {"learning_rate": 0.01},
        {
            "learning_rate": 0.01,
            "decay": 0.95,
            "eps": 1e-4,
            "centered": True,
            "momentum": 0.9,
            "nesterov": True,
        },
        {
            "learning_rate": 0.01,
            "decay": 0.99,
            "eps": 1e-3,
            "initial_scale": 0.5,
            "eps_in_sqrt": False,
        },
        {
            "learning_rate": 0.01,
            "decay": 0.9,
            "eps": 1e-2,
            "centered": True,
            "bias_correction": True,
            "momentum": 0.5,
        },
    ],
)
def rmsprop(
    learning_rate: kit.Rate,
    decay: kit.Fraction = 0.9,
    eps: kit.NonNegative = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: kit.NonNegative | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp (Hinton 2012): ``v_t = decay v + (1 - decay) g^2``,
    ``u = -lr * g / sqrt(v_t + eps)`` (centered: ``v_t - m_t^2``), then optional momentum on
    ``u`` (``trace``).

    Args:
      decay: decay rate of the average of ``g^2`` (torch's ``alpha``).
      eps: added to ``v_t`` inside the square root (to ``sqrt(v_t)`` without ``eps_in_sqrt``).
      initial_scale: starting value ``v_0`` of the second moment.
      eps_in_sqrt: put ``eps`` inside the square root (optax) or outside (torch).
      centered: subtract the squared mean of the gradients.
      momentum: coefficient of a heavy-ball momentum on the scaled step ``-lr * g / sqrt(...)``;
        ``None`` for none.
      bias_correction: divide ``v`` (and ``m``) by ``1 - decay^t`` first.

    optax: ``optax.rmsprop``; torch: ``torch.optim.RMSprop`` via ``from_torch("RMSprop")`` (eps
    outside the root, lr after the momentum buffer).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> grads = [jnp.array([g], jnp.float32) for g in (2.0, 4.0, 2.0, 4.0)]  # mean 3, spread 1
        >>> for centered in (False, True):
        ...     opt = gradtx.rmsprop(learning_rate=0.1, decay=0.5, centered=centered)
        ...     state = opt.init(grads[0])
        ...     for g in grads:
        ...         updates, state = opt.update(g, state)
        ...     print(centered, jnp.array_str(updates, precision=4))  # centered: -lr * g / spread
        False [-0.1193]
        True [-0.3283]
    """
    return chain(
        scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered),
        scale_by_learning_rate(learning_rate),
        identity() if momentum is None else trace(momentum, nesterov),
    )


@register(
    optax="adadelta",
    examples=[
        {},
        {
            "learning_rate": 0.5,
            "rho": 0.95,
            "eps": 1e-4,
            "weight_decay": 0.1,
            "weight_decay_mask": matrices,
        },
    ],
)
def adadelta(
    learning_rate: kit.Rate | None = None,
    rho: kit.Fraction = 0.9,
    eps: kit.NonNegative = 1e-6,
    weight_decay: kit.NonNegative = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    """Adadelta (Zeiler 2012) with L2 weight decay: ``g' = g + wd * p``, then
    ``scale_by_adadelta``, then ``-lr``:
    ``u = -lr * sqrt(E[Δx²]_{t-1} + eps) / sqrt(E[g²]_t + eps) * g'``.

    Args:
      learning_rate: the step size ``lr``.  ``None`` (the default, as in optax) applies no
        scaling and no sign flip, so the update is ``+`` the Adadelta direction, uphill; pass
        ``1.0`` for the paper's descent step (torch's default).
      rho: decay rate of both averages.
      eps: added to both averages inside their square roots (about ``sqrt(eps)`` is the size of
        the first steps).
      weight_decay: coefficient of the L2 term ``wd * p`` added to the gradient.
      weight_decay_mask: which leaves get weight decay (a tree of bools or a function of the
        params).

    optax: ``optax.adadelta``; torch: ``torch.optim.Adadelta``.

    Example:
        ``learning_rate=None`` (optax's default) keeps the direction's sign, so the update goes
        uphill; ``1.0`` descends.  The first steps are about ``sqrt(eps)`` in size:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([1.0, -2.0], jnp.float32)
        >>> for lr in (None, 1.0):
        ...     opt = gradtx.adadelta(learning_rate=lr)
        ...     updates, _ = opt.update(2 * params, opt.init(params), params)  # grad of sum(p**2)
        ...     print(lr, jnp.array_str(updates, precision=5))
        None [ 0.00316 -0.00316]
        1.0 [-0.00316  0.00316]
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


__all__ = [
    "ScaleByAdaDeltaState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "adadelta",
    "adagrad",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
]
