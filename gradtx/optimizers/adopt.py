"""Second moments from *past* gradients only: the step divides the current gradient by a second
moment that has not seen it yet, which removes Adam's correlation between numerator and
denominator.  ADOPT (Taniguchi et al. 2024) normalizes before the momentum; ACProp (Zhuang et
al. 2021) centers the second moment on the mean, as AdaBelief does.

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``v_{t-1}`` / ``s_{t-1}`` the second
moment before this step's gradient enters it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.optimizers.adam import ScaleByAdamState
from gradtx.registry import matrices, register

Mask = Any


def _fourth_root(step: jax.Array) -> jax.Array:
    """ADOPT's clipping value ``c_t = t^(1/4)`` (the official default)."""
    return step**0.25


@register(
    "block",
    optax="contrib.scale_by_adopt",
    traced="b1",
    examples=[
        {},
        {"b1": 0.8, "b2": 0.99, "eps": 1e-4, "nesterov": True},
        {"b2": 0.95, "use_clipping": False},
        {"clip_value_fn": lambda count: 0.5 + 0.1 * count},
    ],
)
def scale_by_adopt(
    b1: kit.Decay = 0.9,
    b2: kit.Fraction = 0.9999,
    eps: kit.NonNegative = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _fourth_root,
) -> GradientTransformation:
    """ADOPT's direction: the first update is 0 and only sets ``v_0 = g_0^2``; then
    ``ĝ = clip(g / max(sqrt(v_{t-1}), eps), c_t)``, ``m_t = b1 m + (1 - b1) ĝ``, ``u = m_t``
    (``nesterov``: ``u = b1 m_t + (1 - b1) ĝ``), ``v_t = b2 v + (1 - b2) g^2``.

    ``clip(x, c)`` clips every element to ``[-c, c]`` with ``c = clip_value_fn(t)``, ``t^(1/4)``
    by default: the official code's (and optax's) default since November 2024, which keeps the
    convergence guarantee (the paper's updated version); ``use_clipping=False`` is the
    NeurIPS paper's Algorithm 1.  No bias correction: ``v`` starts from ``g_0^2`` and ``m`` from 0.

    Args:
      b2: decay rate of the second moment (ADOPT converges whatever its value).
      use_clipping: clip the normalized gradient to ``[-c_t, c_t]``.
      clip_value_fn: the clipping value ``c_t`` as a function of the step count (1 at the
        first real update).

    optax: ``optax.contrib.scale_by_adopt``; torch: none (the direction inside the official
    ``ADOPT`` optimizer).

    Example:
        The first gradient only initializes ``v``; the second, twice as large, is normalized by
        the first and clipped to ``c_1 = 1`` before it enters the momentum:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_adopt()
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in (1.0, 2.0):
        ...     updates, state = tx.update(jnp.array([g], jnp.float32), state)
        ...     print(jnp.array_str(updates, precision=4))
        [0.]
        [0.1]
    """

    def step(updates, state, params, h):
        first = h.count == 0
        clip = clip_value_fn(h.count) if use_clipping else None

        def leaf(g, s, *, keep):
            normalized = g / jnp.maximum(jnp.sqrt(s.nu), h.eps)  # v_{t-1}: this g is not in it
            if clip is not None:
                c = kit.scalar(clip, normalized)
                normalized = jnp.clip(normalized, -c, c)
            s = keep(
                ScaleByAdamState(
                    mu=jnp.where(first, s.mu, kit.ema(normalized, s.mu, h.b1)),
                    nu=jnp.where(first, kit.abs_sq(g), kit.ema_sq(g, s.nu, h.b2)),
                )
            )
            if not nesterov:
                return s.mu, s
            return jnp.where(first, s.mu, kit.ema(normalized, s.mu, h.b1)), s

        return kit.map_state("scale_by_adopt", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState, mu=mu_dtype)
    return kit.block("scale_by_adopt", step, init, hyper={"b1": b1, "b2": b2, "eps": eps})


@register(
    optax="contrib.adopt",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": lambda c: 0.1 / (1 + c / 3.0), "b1": 0.8, "b2": 0.6, "nesterov": True},
        {"learning_rate": 0.1, "eps": 1e-3, "use_clipping": False},
    ],
)
def adopt(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Fraction = 0.9999,
    eps: kit.NonNegative = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _fourth_root,
) -> GradientTransformation:
    """ADOPT (Taniguchi et al. 2024): ``ĝ = clip(g / max(sqrt(v_{t-1}), eps), t^(1/4))``,
    ``m_t = b1 m + (1 - b1) ĝ``, ``u = -lr * m_t``, ``v_t = b2 v + (1 - b2) g^2``; the first
    step only sets ``v_0 = g_0^2`` (its update is 0).

    ``use_clipping=False`` is the NeurIPS paper's Algorithm 1; the clipped form (the default,
    as in optax and the official code) is the paper's updated version.  ``nesterov`` is
    optax's addition.

    Args:
      b2: decay rate of the second moment (ADOPT converges whatever its value).
      use_clipping: clip the normalized gradient to ``[-c_t, c_t]``.
      clip_value_fn: the clipping value ``c_t`` as a function of the step count (1 at the
        first real update).

    optax: ``optax.contrib.adopt``; torch: none (the official ``ADOPT(lr)`` optimizer, whose
    ``clip_lambda`` is ``clip_value_fn``).

    Example:
        Clipping keeps the step bounded when a first gradient is near 0 (a zero-initialized
        layer): without it, the next gradient is divided by ``sqrt(v_0) = 1e-6``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> grads = [jnp.array([1e-6], jnp.float32), jnp.array([1.0], jnp.float32)]
        >>> for clip in (True, False):
        ...     opt = gradtx.adopt(learning_rate=0.1, use_clipping=clip)
        ...     state = opt.init(grads[0])
        ...     for g in grads:
        ...         updates, state = opt.update(g, state)
        ...     print(clip, jnp.array_str(updates, precision=4))
        True [-0.01]
        False [-10000.]
    """
    return chain(
        scale_by_adopt(
            b1,
            b2,
            eps,
            mu_dtype,
            nesterov=nesterov,
            use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
        ),
        scale_by_learning_rate(learning_rate),
    )


@register(
    "block",
    optax="contrib.scale_by_acprop",
    traced="b1",
    examples=[
        {},
        {"b1": 0.8, "b2": 0.99, "eps": 1e-8, "eps_root": 1e-10},
        {"b1": 0.8, "paper_centering": True},
    ],
)
def scale_by_acprop(
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-16,
    eps_root: kit.NonNegative = 1e-16,
    *,
    paper_centering: bool = False,
) -> GradientTransformation:
    """ACProp's direction: ``u = g / (sqrt(ŝ_{t-1}) + eps)`` with the second moment of the
    *previous* step, ``ŝ_{t-1} = s_{t-1} / (1 - b2^{t-1})`` (``u = g / (1 + eps)`` at the first
    step); then ``m_t = b1 m + (1 - b1) g``, ``s_t = b2 s + (1 - b2) (g - m)^2 + eps_root``.

    The residual is ``g - m_{t-1}`` in optax; the paper and its official code center on the
    updated mean, ``g - m_t = b1 (g - m_{t-1})`` (``paper_centering=True``), so optax's ``s`` is
    ``1 / b1^2`` times theirs and its steps after the first are ``b1`` times theirs (when
    ``eps_root`` is negligible).

    Args:
      b1: decay rate of the mean ``m`` the second moment is centered on.
      b2: decay rate of ``s``, the average of ``(g - m)^2``.
      eps: added to ``sqrt(ŝ)``.
      eps_root: added to ``s`` at every step.
      paper_centering: center on the updated mean ``m_t`` (the paper and the official code)
        instead of optax's ``m_{t-1}``.

    optax: ``optax.contrib.scale_by_acprop`` (no ``paper_centering``); torch: none.

    Example:
        The gradient of a step never enters its own denominator: the first step is the
        gradient itself, the second is divided by the spread of the first around its mean:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_acprop()
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in (2.0, 2.0):
        ...     updates, state = tx.update(jnp.array([g], jnp.float32), state)
        ...     print(jnp.array_str(updates, precision=4))
        [2.]
        [1.]
    """

    def step(updates, state, params, h):
        first = h.count == 0
        # 1 - b2^(t-1), taken at t >= 2 only (the first step does not divide)
        debias = kit.Debias(h.b2, jnp.maximum(h.count, 1) - 1)

        def leaf(g, s, *, keep):
            s_prev = jnp.where(first, jnp.ones_like(s.nu), debias(s.nu))
            u = g / (jnp.sqrt(s_prev) + h.eps)
            mean = s.mu
            s = keep(s._replace(mu=kit.ema(g, s.mu, h.b1)))
            if paper_centering:
                mean = s.mu
            s = keep(s._replace(nu=kit.ema_sq(g - mean, s.nu, h.b2) + h.eps_root))
            return u, s

        return kit.map_state("scale_by_acprop", leaf, updates, state)

    init = kit.init_state(ScaleByAdamState)
    hyper = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}
    return kit.block("scale_by_acprop", step, init, hyper=hyper)


@register(
    optax="contrib.acprop",
    examples=[
        {"learning_rate": 0.01},  # no momentum in the numerator: ~10x Adam's step at one lr
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "b1": 0.8,
            "eps": 1e-8,
            "weight_decay": 0.05,
            "mask": matrices,
        },
        {"learning_rate": 0.1, "weight_decay": 0.01, "paper_centering": True},
    ],
)
def acprop(
    learning_rate: kit.Rate,
    b1: kit.Decay = 0.9,
    b2: kit.Decay = 0.999,
    eps: kit.NonNegative = 1e-16,
    eps_root: kit.NonNegative = 1e-16,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
    *,
    paper_centering: bool = False,
) -> GradientTransformation:
    """ACProp (Zhuang et al. 2021), asynchronous centered RMSProp:
    ``u = -lr * (g / (sqrt(ŝ_{t-1}) + eps) + wd p)``, ``s_t = b2 s + (1 - b2) (g - m)^2 +
    eps_root`` centered on ``m = b1 m + (1 - b1) g`` (the first step: ``u = -lr (g + wd p)``).

    optax centers on the previous mean ``m_{t-1}``; the paper and its official code on the
    updated ``m_t`` (``paper_centering=True``), which makes the steps after the first ``1 / b1``
    times larger.  The weight decay is decoupled, ``wd p`` added after the scaling (as in the
    official code's default).

    Args:
      b1: decay rate of the mean ``m`` the second moment is centered on.
      b2: decay rate of ``s``, the average of ``(g - m)^2``.
      eps: added to ``sqrt(ŝ)``.
      eps_root: added to ``s`` at every step.
      paper_centering: center on the updated mean ``m_t`` (the paper and the official code)
        instead of optax's ``m_{t-1}``.

    optax: ``optax.contrib.acprop`` (no ``paper_centering``); torch: none (the official
    ``ACProp`` optimizer rectifies its steps as RAdam does by default).

    Example:
        The denominator lags one step: after a run of small gradients, a sudden large one is
        divided by the old, small spread, and the step after it by the new, large one:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.acprop(learning_rate=0.1)
        >>> params = jnp.zeros(1, jnp.float32)
        >>> state = opt.init(params)
        >>> for g in (1.0, -1.0, 1.0, -1.0, 10.0, 10.0):
        ...     updates, state = opt.update(jnp.array([g], jnp.float32), state, params)
        ...     print(jnp.array_str(updates, precision=3))
        [-0.1]
        [0.1]
        [-0.095]
        [0.096]
        [-0.951]
        [-0.218]
    """
    return chain(
        scale_by_acprop(b1, b2, eps, eps_root, paper_centering=paper_centering),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["acprop", "adopt", "scale_by_acprop", "scale_by_adopt"]
