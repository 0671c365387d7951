"""Delayed (stale) gradients: an inner optimizer fed the gradient of ``tau`` steps ago, as an
asynchronous parameter server applies what its workers computed on an older copy of the model.

One wrapper, ``delayed_gradients``: a ring buffer of the last ``delay`` gradient trees in the
state, a fixed or a random staleness per step, and the staleness-aware step size of Zhang et al.
(2016).  Use it to measure how an optimizer copes with asynchrony on one device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import Block, GradientTransformation, as_block
from gradtx.registry import Use, register

Tree = kit.Tree
Delay = Annotated[int, kit.Range("[0, inf)", integer=True)]


class DelayedGradientsState(NamedTuple):
    """``gradients``: the ring buffer, per leaf an array ``(delay, *leaf.shape)`` whose slot
    ``s mod delay`` holds the gradient of step ``s`` (the last ``delay`` steps); ``staleness``:
    the staleness of the gradient applied at the latest step (int32; -1 when none was applied);
    ``rng_key``: raw ``uint32`` key data of the random staleness (unused for a fixed delay);
    ``inner_state``: the wrapped optimizer's state."""

    gradients: Tree
    staleness: jax.Array
    rng_key: jax.Array
    inner_state: Any


def _key_data(key: jax.Array | int) -> jax.Array:
    """``key`` (an int seed, a typed key or raw key data) as raw ``uint32`` key data."""
    k = jax.random.PRNGKey(key) if isinstance(key, int) else jnp.asarray(key)
    if jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        k = jax.random.key_data(k)
    return k


def _step_factor(staleness_aware: bool | Callable[[jax.Array], Any]) -> Callable | None:
    """The factor the inner update is multiplied by, as a function of the staleness ``tau``."""
    if callable(staleness_aware):
        return staleness_aware
    if staleness_aware:
        # Zhang et al. 2016, eq. (6): lr / tau for a stale gradient, lr itself for a fresh one
        return lambda tau: 1.0 / jnp.maximum(tau, 1)
    return None


@register(
    optax=None,
    traced=None,
    traits=(),
    examples=[
        {"inner": Use("sgd", {"learning_rate": 0.1}), "delay": 2},
        {
            "inner": Use("adam", {"learning_rate": 0.05}),
            "delay": 3,
            "staleness_aware": True,
            "buffer_dtype": jnp.float32,
        },
        {"inner": Use("sgd", {"learning_rate": 0.1, "momentum": 0.9}), "delay": 0},
    ],
)
def delayed_gradients(
    inner: GradientTransformation | Block,
    delay: Delay,
    *,
    random_delay: bool = False,
    staleness_aware: bool | Callable[[jax.Array], Any] = False,
    key: jax.Array | int = 0,
    buffer_dtype: Any = None,
) -> GradientTransformation:
    """Bounded staleness: ``inner`` receives at step ``t`` the gradient computed at step
    ``t - tau_t`` (at the params of that step), as an asynchronous parameter server does::

        tau_t = delay                                  (fixed, the default)
        tau_t ~ Uniform{0, ..., min(t, delay)}          (random_delay=True, drawn each step)
        u_t   = c(tau_t) * inner(g_{t - tau_t}, params_t)
        c(tau) = 1 / max(tau, 1)     with staleness_aware=True (Zhang et al. 2016), else 1

    The first ``delay`` steps of a fixed delay apply nothing: ``u_t = 0`` and ``inner``'s state
    is left unchanged, because no gradient has arrived yet; ``inner`` then counts only the
    gradients it received (its schedules and bias corrections see ``t - delay``).  A random
    staleness never waits (``tau_t <= t`` always has a gradient, ``tau = 0`` is the current one);
    each step draws independently, so a gradient may be applied twice or never, the bounded
    delay model of Lian et al. (2015).  The staleness-aware factor multiplies ``inner``'s update,
    which for every gradtx optimizer (the learning rate is applied last) is dividing the learning
    rate by ``tau``, eq. (6) of Zhang et al. 2016, "Staleness-aware Async-SGD for Distributed
    Deep Learning".  The params ``inner`` sees and ``update``'s extra keywords (``value=``) are
    the current ones.

    The state holds ``delay`` gradient trees (``delay`` times the params' memory) in one array
    per leaf, so its shape never depends on the staleness drawn; the key is raw ``uint32`` key
    data (serialises with flax and orbax) and the latest staleness is
    ``gradtx.tree_get(state, "staleness")``.

    Args:
      inner: the optimizer the delayed gradients are fed to (``sgd(lr)``, ``adam(lr)``, ...).
      delay: the staleness ``tau`` in steps (the largest one with ``random_delay``); 0 is
        ``inner`` itself.
      random_delay: draw ``tau_t`` uniformly from ``{0, ..., min(t, delay)}`` every step.
      staleness_aware: ``True`` multiplies the update by ``1 / max(tau, 1)``; a function
        ``tau -> factor`` (``tau`` an int32 array) gives another modulation.
      key: PRNG key (or an int seed) of the random staleness; stored as raw ``uint32`` key data.
      buffer_dtype: storage dtype of the buffered gradients (``None``: the params' dtype).

    optax: none; torch: none.

    Example:
        SGD on ``f(x) = x²/2`` fed the gradient of two steps ago: nothing moves for two steps,
        then each step applies a gradient taken two steps earlier, which overshoots the minimum:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.delayed_gradients(gradtx.sgd(0.5), delay=2)
        >>> x = jnp.array(4.0)
        >>> state = opt.init(x)
        >>> for _ in range(5):
        ...     updates, state = opt.update(x, state, x)  # the gradient of x²/2 is x
        ...     x = gradtx.apply_updates(x, updates)
        ...     print(float(x), int(gradtx.tree_get(state, "staleness")))
        4.0 -1
        4.0 -1
        2.0 2
        0.0 2
        -2.0 2
    """
    wrapped = as_block(inner)
    factor = _step_factor(staleness_aware)
    store = kit.canonical_dtype(buffer_dtype)
    key_data = _key_data(key)

    def init(params):
        gradients = jax.tree.map(
            lambda p: jnp.zeros((delay, *jnp.shape(p)), store or jnp.result_type(p)), params
        )
        none = jnp.asarray(-1, jnp.int32)
        return DelayedGradientsState(gradients, none, key_data, wrapped.init(params))

    def staleness_at(count, rng_key):
        """``(tau, next key)`` for step ``count`` (int32 ``tau``, a Python int when fixed)."""
        if not random_delay:
            return delay, rng_key
        rng_key, draw = jax.random.split(rng_key)
        most = jnp.minimum(count, delay).astype(jnp.int32)
        return jax.random.randint(draw, (), 0, most + 1, jnp.int32), rng_key

    def step(updates, state, params, h):
        if delay == 0:
            u, inner_state = wrapped.update(
                updates, state.inner_state, params, count=h.count, **h.extra
            )
            tau = jnp.asarray(0, jnp.int32)
            return _scaled(u, factor, tau), state._replace(staleness=tau, inner_state=inner_state)
        kit.check_match(
            "delayed_gradients", "updates", updates, "gradients", _slots(state.gradients)
        )
        tau, rng_key = staleness_at(h.count, state.rng_key)
        slot, source = h.count % delay, (h.count - tau) % delay

        def read_and_write(g, buf):
            # read before writing: a staleness of `delay` reads the slot g_t is written to
            old = jax.lax.dynamic_index_in_dim(buf, source, keepdims=False)
            stale = old.astype(g.dtype) if not random_delay else jnp.where(tau == 0, g, old)
            new = jax.lax.dynamic_update_index_in_dim(buf, g.astype(buf.dtype), slot, 0)
            return stale.astype(g.dtype), new

        leaves, treedef = jax.tree.flatten(updates)
        pairs = [
            read_and_write(g, b)
            for g, b in zip(leaves, treedef.flatten_up_to(state.gradients), strict=True)
        ]
        stale = treedef.unflatten([p[0] for p in pairs])
        gradients = treedef.unflatten([p[1] for p in pairs])
        inner_count = h.count if random_delay else jnp.maximum(h.count - delay, 0)

        def apply():
            u, inner_state = wrapped.update(
                stale, state.inner_state, params, count=inner_count, **h.extra
            )
            return _scaled(u, factor, tau), inner_state

        def wait():
            return jax.tree.map(jnp.zeros_like, updates), state.inner_state

        if random_delay:  # a gradient (perhaps the current one) always arrives
            u, inner_state = apply()
            applied = jnp.asarray(tau, jnp.int32)
        else:
            arrived = h.count >= delay
            u, inner_state = kit.when(arrived, apply, wait)
            applied = jnp.where(arrived, tau, -1).astype(jnp.int32)
        return u, DelayedGradientsState(gradients, applied, rng_key, inner_state)

    return kit.block("delayed_gradients", step, init)


def _slots(gradients: Tree) -> Tree:
    """The shape of one slot of the buffer per leaf (for error messages; no arrays made)."""
    return jax.tree.map(lambda b: jax.ShapeDtypeStruct(b.shape[1:], b.dtype), gradients)


def _scaled(updates: Tree, factor: Callable | None, tau: Any) -> Tree:
    """``factor(tau) * updates`` in each leaf's dtype (unchanged without a factor)."""
    if factor is None:
        return updates
    c = factor(jnp.asarray(tau, jnp.int32))
    return jax.tree.map(
        lambda u: (u * jnp.asarray(c, kit.compute_dtype(u))).astype(u.dtype), updates
    )


__all__ = ["DelayedGradientsState", "delayed_gradients"]
