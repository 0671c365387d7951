"""General-purpose blocks every family chains with: scaling by a number or a schedule, the
learning rate, momentum (``trace``), moving averages and their bias correction, weight decay
and gradient noise.

Notation: ``g`` is the incoming update (the gradient for the first block), ``t`` the number of
completed steps plus one (``t = 1`` on the first update), ``p`` the parameters.  Every numeric
hyperparameter may also be a schedule ``step -> value``, evaluated at ``t - 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, stateless
from gradtx.registry import register

Tree = kit.Tree


def _scaled(factor: Any, tree: Tree) -> Tree:
    return jax.tree.map(lambda x: kit.scalar(factor, x) * x, tree)


@register("block", optax="identity", traced=None)
def identity() -> GradientTransformation:
    """Leaves updates unchanged: ``u = g``.

    A placeholder where a chain's member is optional (``clip(c) if c else identity()``).

    optax: ``optax.identity``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> g = jnp.array([0.5, -3.0], jnp.float32)
        >>> tx = gradtx.chain(gradtx.identity(), gradtx.scale(-0.1))  # e.g. instead of a clip
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(updates)
        [-0.05  0.3 ]
    """
    return stateless(lambda updates, params: updates)


@register("block", optax="scale", examples=[{"step_size": -0.5}], traced="step_size")
def scale(step_size: ScalarOrSchedule) -> GradientTransformation:
    """Multiplies by a fixed factor: ``u = step_size * g`` (a schedule is read at ``t - 1``).

    Args:
      step_size: the factor: a number, an array or a schedule ``step -> factor``.

    optax: ``optax.scale``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale(-0.5)
        >>> g = jnp.array([1.0, -4.0], jnp.float32)
        >>> updates, _ = tx.update(g, tx.init(g))
        >>> print(updates)
        [-0.5  2. ]
    """
    return kit.block(
        "scale",
        lambda g, state, p, h: (_scaled(h.step_size, g), state),
        hyper={"step_size": step_size},
    )


@register(
    "block",
    optax="scale_by_schedule",
    examples=[{"step_size_fn": lambda c: 0.1 / (1 + c)}],
    traced=None,
)
def scale_by_schedule(step_size_fn: Callable[[jax.Array], Any]) -> GradientTransformation:
    """``u = step_size_fn(t - 1) * g``, the factor cast to each leaf's dtype.

    Args:
      step_size_fn: a schedule ``step -> factor``, called with the number of completed steps.

    optax: ``optax.scale_by_schedule``; torch: none (a ``torch.optim.lr_scheduler`` rescales
    ``lr``).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_schedule(lambda step: 0.5**step)
        >>> g = {"f32": jnp.ones(1, jnp.float32), "bf16": jnp.ones(1, jnp.bfloat16)}
        >>> _, state = tx.update(g, tx.init(g))  # step 0: factor 1
        >>> updates, state = tx.update(g, state)  # step 1: factor 0.5, in each leaf's dtype
        >>> print(updates["f32"], updates["bf16"], updates["bf16"].dtype)
        [0.5] [0.5] bfloat16
    """

    def step(g, state, params, h):
        return jax.tree.map(lambda x: jnp.asarray(h.fn, jnp.result_type(x)) * x, g), state

    return kit.block("scale_by_schedule", step, hyper={"fn": step_size_fn})


@register(
    "block",
    optax="scale_by_learning_rate",
    examples=[{"learning_rate": 0.1}, {"learning_rate": 0.3, "flip_sign": False}],
)
def scale_by_learning_rate(
    learning_rate: kit.Rate | None = None, *, flip_sign: bool = True
) -> GradientTransformation:
    """``u = -lr(t - 1) * g`` (``+`` when ``flip_sign=False``); ``None`` means identity.

    A constant and a schedule give the same state structure (none: the step lives in the
    optimizer's one counter).

    Args:
      learning_rate: the step size ``lr``: a number or a schedule; ``None`` for no scaling.

    optax: ``optax.scale_by_learning_rate``; torch: none (the ``lr`` of every ``torch.optim``
    optimizer).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_learning_rate(lambda step: 0.1 * 0.5**step)
        >>> g = jnp.array([1.0, -2.0], jnp.float32)
        >>> state = tx.init(g)
        >>> for _ in range(3):
        ...     updates, state = tx.update(g, state)
        ...     print(jnp.array_str(updates, precision=4))
        [-0.1  0.2]
        [-0.05  0.1 ]
        [-0.025  0.05 ]
    """
    if learning_rate is None:
        return identity()
    sign = -1 if flip_sign else 1
    return scale_by_schedule(lambda count: sign * kit.resolve(learning_rate, count))


# --- momentum and moving averages ----------------------------------------------------------------


class TraceState(NamedTuple):
    trace: Tree


@register(
    "block",
    optax="trace",
    examples=[
        {"decay": 0.9},
        {"decay": 0.8, "nesterov": True},
        {"decay": 0.8, "nesterov": True, "dampening": 0.5},
    ],
    traced="decay",
)
def trace(
    decay: kit.NonNegative,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
    dampening: kit.Fraction = 0.0,
) -> GradientTransformation:
    """Heavy-ball momentum: ``m_t = decay * m_{t-1} + (1 - dampening) * g`` with ``m_1 = g``;
    ``u = m_t``, or ``u = g + decay * m_t`` with ``nesterov``.

    ``accumulator_dtype`` stores ``m`` in that dtype (e.g. bfloat16); the update then uses ``m`` as
    stored.

    Args:
      decay: the momentum coefficient.
      dampening: scales the gradient's share of the buffer (torch's SGD ``dampening``; the
        first step is not damped).

    optax: ``optax.trace`` (no ``dampening``); torch: the momentum buffer of ``torch.optim.SGD``.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> g = jnp.array([1.0], jnp.float32)
        >>> for nesterov in (False, True):  # two steps of a constant gradient: m = g, then 1.9 g
        ...     tx = gradtx.trace(decay=0.9, nesterov=nesterov)
        ...     _, state = tx.update(g, tx.init(g))
        ...     updates, _ = tx.update(g, state)
        ...     print(nesterov, jnp.array_str(updates, precision=4))  # Nesterov: g + 0.9 m
        False [1.9]
        True [2.71]
    """

    def step(updates, state, params, h):
        d, damp = h.decay, h.dampening

        def leaf(g, s, *, keep):
            m = (
                d * s.trace + g
                if kit.is_zero(damp)
                else jnp.where(h.count == 0, g, d * s.trace + (1 - damp) * g)
            )
            s = keep(TraceState(m))
            return (g + d * s.trace if nesterov else s.trace), s

        return kit.map_state("trace", leaf, updates, state)

    init = kit.init_state(TraceState, trace=accumulator_dtype)
    return kit.block("trace", step, init, hyper={"decay": decay, "dampening": dampening})


@kit.one_counter("count")
class EmaState(NamedTuple):
    ema: Tree


@register(
    "block", optax="ema", examples=[{"decay": 0.9}, {"decay": 0.8, "debias": False}], traced="decay"
)
def ema(
    decay: kit.Fraction, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Exponential moving average ``m_t = decay * m_{t-1} + (1 - decay) * g``;
    ``u = m_t / (1 - decay^t)`` when ``debias`` else ``m_t``.

    Args:
      decay: weight of the past in the average (``0``: ``u = g``).
      debias: divide by ``1 - decay^t`` (the average starts at 0).

    optax: ``optax.ema``; torch: none.

    Example:
        The average starts at 0, so its first value is ``(1 - decay) g``; ``debias`` undoes that:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> g = jnp.array(2.0, jnp.float32)
        >>> debiased, raw = gradtx.ema(decay=0.9), gradtx.ema(decay=0.9, debias=False)
        >>> u, _ = debiased.update(g, debiased.init(g))
        >>> v, _ = raw.update(g, raw.init(g))
        >>> print(f"{u:.4f} {v:.4f}")
        2.0000 0.2000
    """

    def step(updates, state, params, h):
        db = kit.Debias(h.decay, h.count)

        def leaf(g, s, *, keep):
            m = kit.ema(g, s.ema, h.decay).astype(jnp.promote_types(g.dtype, s.ema.dtype))
            s = keep(EmaState(m))
            return (db(s.ema) if debias else s.ema), s

        return kit.map_state("ema", leaf, updates, state)

    init = kit.init_state(EmaState, ema=accumulator_dtype)
    return kit.block("ema", step, init, hyper={"decay": decay})


@register("block", optax=None, examples=[{"decay": 0.9}], traced="decay")
def scale_by_bias_correction(decay: kit.Decay) -> GradientTransformation:
    """``u = g / (1 - decay^t)``: the debiasing of a zero-initialised moving average, as its own
    block (e.g. after ``ema(decay, debias=False)``).

    Args:
      decay: the decay rate of the average being corrected.

    optax: none as a block (``gradtx.bias_correction(moment, decay, count)``, optax's tree
    function, divides a given moment); torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.chain(gradtx.ema(0.9, debias=False), gradtx.scale_by_bias_correction(0.9))
        >>> state = tx.init(jnp.zeros(1, jnp.float32))
        >>> for g in (1.0, 3.0):  # the same numbers as ema(0.9)
        ...     updates, state = tx.update(jnp.array([g], jnp.float32), state)
        ...     print(jnp.array_str(updates, precision=4))
        [1.]
        [2.0526]
    """

    def step(g, state, params, h):
        return jax.tree.map(kit.Debias(h.decay, h.count), g), state

    return kit.block("scale_by_bias_correction", step, hyper={"decay": decay})


# --- weight decay and noise ----------------------------------------------------------------------


@register(
    "block",
    optax="add_decayed_weights",
    traced="weight_decay",
    examples=[
        {"weight_decay": 0.1},
        {
            "weight_decay": lambda c: 0.05 * (1 + c) / (2 + c),
            "mask": lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
        },
    ],
)
def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: Any = None
) -> GradientTransformation:
    """``u = g + weight_decay * p``.

    Placed before an adaptive scaling it is L2 regularisation (torch's ``weight_decay=`` of
    ``SGD``/``Adam``); placed after it, before the learning rate, it is decoupled weight decay
    (AdamW: ``p <- p - lr * (adam_direction + wd * p)``).

    Args:
      weight_decay: the coefficient ``wd`` (any sign: ``fromage`` shrinks with a negative one).

    optax: ``optax.add_decayed_weights``; torch: the ``weight_decay=`` of ``torch.optim.SGD`` (L2)
    or ``torch.optim.AdamW`` (decoupled).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w": jnp.full((2, 2), 2.0, jnp.float32), "b": jnp.ones(2, jnp.float32)}
        >>> tx = gradtx.add_decayed_weights(0.1, mask=gradtx.registry.matrices)  # not the bias
        >>> grads = {"w": jnp.zeros((2, 2), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(updates["w"][0], updates["b"])  # 0.1 * w, and the bias's gradient as it was
        [0.2 0.2] [0. 0.]
    """

    def step(g, state, params, h):
        if kit.is_zero(h.wd) or not jax.tree.leaves(g):
            return g, state
        (u,) = kit.leafwise(
            "add_decayed_weights",
            lambda x, p: ((x + kit.scalar(h.wd, x) * p).astype(x.dtype),),
            1,
            g,
            params,
            names=("params",),
        )
        return u, state

    tx = kit.block("add_decayed_weights", step, hyper={"wd": weight_decay}, needs_params=True)
    if mask is not None:
        from gradtx.combinators import masked

        return masked(tx, mask, name="add_decayed_weights")
    return tx


@kit.one_counter("count")
class AddNoiseState(NamedTuple):
    rng_key: jax.Array


@register(
    "block",
    optax="add_noise",
    traits=("stochastic",),
    traced="eta",
    examples=[{"eta": 0.1, "gamma": 0.55, "key": 4}, {"eta": 0.0, "gamma": 0.55, "key": 4}],
)
def add_noise(
    eta: kit.NonNegative,
    gamma: kit.NonNegative,
    key: jax.Array | int | None = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """Annealed Gaussian gradient noise (Neelakantan et al. 2015): ``u = g + N(0, s_t^2)`` with
    ``s_t^2 = eta / t^gamma``; one fresh key per leaf per step.

    The key is stored as raw key data (uint32), so the state serialises with flax and orbax.

    Args:
      key: PRNG key (or an int seed) of the noise (``None``: seed 0).

    optax: ``optax.add_noise``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.add_noise(eta=0.01, gamma=0.55, seed=0)
        >>> g = jnp.zeros(3, jnp.float32)
        >>> u1, state = tx.update(g, tx.init(g))
        >>> u2, _ = tx.update(g, tx.init(g))  # the same seed replays the same noise
        >>> print(bool(jnp.all(u1 == u2)), gradtx.tree_get(state, "rng_key").dtype)
        True uint32
    """
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

    def step(updates, state, params, h):
        new_key, sample = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample, len(leaves))
        t = (h.count + 1).astype(jnp.result_type(float))
        std = jnp.sqrt(h.eta / t**h.gamma)
        noisy = [
            x + std.astype(x.dtype) * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ]
        return treedef.unflatten(noisy), AddNoiseState(new_key)

    return kit.block("add_noise", step, init, hyper={"eta": eta, "gamma": gamma})


__all__ = [
    "AddNoiseState",
    "EmaState",
    "TraceState",
    "add_decayed_weights",
    "add_noise",
    "ema",
    "identity",
    "scale",
    "scale_by_bias_correction",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "trace",
]
