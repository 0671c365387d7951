"""Sign methods: the update keeps only the sign of a (momentum-smoothed) gradient, so every
coordinate moves by the same amount: signSGD and Lion.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, ema, scale_by_learning_rate
from gradtx.registry import matrices, register

Tree = kit.Tree


@register("block", optax="scale_by_sign", traced=None)
def scale_by_sign() -> GradientTransformation:
    """``u = sign(g)`` (signSGD): every coordinate moves by the same amount.

    optax: ``optax.scale_by_sign``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_sign()
        >>> g = jnp.array([0.01, -30.0, 0.0], jnp.float32)
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(updates)
        [ 1. -1.  0.]
    """
    return kit.block("scale_by_sign", lambda g, state, p, h: (jax.tree.map(jnp.sign, g), state))


@kit.one_counter("count")
class ScaleByLionState(NamedTuple):
    mu: Tree


# the function of x = b1 m + (1 - b1) g that Lion steps along, by mode
_LION_MODES = {
    "hard": lambda x, beta: jnp.sign(x),
    "smooth": lambda x, beta: jnp.tanh(beta * x),
    "refined": lambda x, beta: jnp.where(jnp.abs(x) < 1, x, jnp.sign(x)),
}


@register(
    "block",
    optax="scale_by_lion",
    traced="b1",
    examples=[
        {},
        {"b1": 0.8, "mu_dtype": jnp.float32},
        {"b1": 0.9, "b2": 0.95, "mode": "smooth", "smooth_beta": 3.0},
        {"mode": "refined"},
    ],
)
def scale_by_lion(
    b1: kit.Fraction = 0.9,
    b2: kit.Fraction = 0.99,
    mu_dtype: Any = None,
    *,
    mode: Literal["hard", "smooth", "refined"] = "hard",
    smooth_beta: kit.NonNegative = 1.0,
) -> GradientTransformation:
    """Lion (Chen et al. 2023): ``u = sign(b1 m + (1 - b1) g)``, then
    ``m_t = b2 m + (1 - b2) g``.  ``mode`` replaces the sign of ``x = b1 m + (1 - b1) g``:
    ``"hard"`` ``sign(x)``, ``"smooth"`` ``tanh(smooth_beta x)``, ``"refined"`` ``x`` where
    ``|x| < 1`` and ``sign(x)`` beyond.

    Args:
      b1: weight of the momentum in the interpolation the sign is taken of.
      b2: decay rate of the momentum.
      mode: ``"hard"`` (the paper's sign), ``"smooth"`` or ``"refined"`` (see above).
      smooth_beta: the slope of ``tanh`` in ``"smooth"`` mode.

    optax: ``optax.scale_by_lion``; torch: none.

    Example:
        A small gradient against the momentum does not flip Lion's sign:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_lion(b1=0.9, b2=0.99)
        >>> state = tx.init(jnp.zeros(2, jnp.float32))
        >>> for g in ([1.0, -1.0], [-0.05, 0.05]):
        ...     updates, state = tx.update(jnp.array(g, jnp.float32), state)
        ...     print(updates)
        [ 1. -1.]
        [ 1. -1.]
    """

    if mode not in _LION_MODES:
        raise ValueError(f"scale_by_lion: mode={mode!r} is unknown; allowed: {list(_LION_MODES)}")

    def step(updates, state, params, h):
        def leaf(g, s, *, keep):
            x = kit.ema(g, s.mu, h.b1)
            return _LION_MODES[mode](x, h.smooth_beta), ScaleByLionState(kit.ema(g, s.mu, h.b2))

        return kit.map_state("scale_by_lion", leaf, updates, state)

    init = kit.init_state(ScaleByLionState, mu=mu_dtype)
    hyper = {"b1": b1, "b2": b2, "smooth_beta": smooth_beta}
    return kit.block("scale_by_lion", step, init, hyper=hyper)


@register(optax="sign_sgd")
def sign_sgd(learning_rate: kit.Rate) -> GradientTransformation:
    """signSGD (Bernstein et al. 2018): ``u = -lr * sign(g)``.

    Args:

    optax: ``optax.sign_sgd``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([1.0, -2.0, 30.0], jnp.float32)
        >>> opt = gradtx.sign_sgd(learning_rate=0.1)
        >>> updates, _ = opt.update(2 * params, opt.init(params), params)
        >>> print(gradtx.apply_updates(params, updates))  # every coordinate moves by lr
        [ 0.9 -1.9 29.9]
    """
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


@register(
    optax="signum",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": lambda c: 0.1 / (1 + c), "beta": 0.5, "accumulator_dtype": jnp.float32},
    ],
)
def signum(
    learning_rate: kit.Rate, beta: kit.Fraction = 0.9, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Signum (Bernstein et al. 2018): signSGD on a momentum,
    ``m_t = beta m + (1 - beta) g``, ``u = -lr * sign(m_t)`` (no bias correction: the sign
    does not see it).

    Args:
      beta: decay rate of the momentum the sign is taken of.
      accumulator_dtype: storage dtype of ``m`` (``None``: the params' dtype).

    optax: ``optax.signum``; torch: none.

    Example:
        The sign is taken of the momentum: a small reversal of the gradient does not flip it, a
        large one does:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.signum(learning_rate=0.1, beta=0.5)
        >>> _, state = opt.update(jnp.ones(2, jnp.float32), opt.init(jnp.zeros(2, jnp.float32)))
        >>> updates, state = opt.update(jnp.array([-0.2, -3.0], jnp.float32), state)
        >>> print(updates)  # m = [0.15, -1.25]
        [-0.1  0.1]
    """
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


@register(
    optax="lion",
    examples=[
        {"learning_rate": 0.01},
        {"learning_rate": 0.01, "b1": 0.8, "b2": 0.95, "weight_decay": 0.5, "mask": matrices},
    ],
)
def lion(
    learning_rate: kit.Rate,
    b1: kit.Fraction = 0.9,
    b2: kit.Fraction = 0.99,
    mu_dtype: Any = None,
    weight_decay: kit.NonNegative = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al. 2023): ``u = -lr * (sign(b1 m + (1 - b1) g) + wd * p)``,
    ``m_t = b2 m + (1 - b2) g``.

    Args:
      b1: how much of the momentum (the rest: the gradient) enters the sign of the step.
      b2: how fast the momentum ``m`` forgets past gradients.
      weight_decay: coefficient ``wd`` of the decoupled decay, added after the sign.

    optax: ``optax.lion``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = jnp.array([2.0, -4.0], jnp.float32)
        >>> opt = gradtx.lion(learning_rate=0.1, weight_decay=0.5)
        >>> g = jnp.array([1e-3, 100.0], jnp.float32)  # only the signs count
        >>> updates, _ = opt.update(g, opt.init(params), params)
        >>> print(jnp.array_str(updates, precision=4))  # -lr * (sign(g) + wd * p)
        [-0.2  0.1]
    """
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["ScaleByLionState", "lion", "scale_by_lion", "scale_by_sign", "sign_sgd", "signum"]
