"""Quasi-Newton: L-BFGS (Liu & Nocedal 1989) multiplies the gradient by an inverse-Hessian
estimate ``H`` built from the last ``m`` pairs ``s_i = w_{i+1} - w_i``, ``y_i = g_{i+1} - g_i``
(the secant condition ``H y_i = s_i``), with Nocedal & Wright's two-loop recursion (Algorithm
7.4), in ``O(m n)`` memory and time.  A line search (``gradtx.scale_by_zoom_linesearch``) picks
the step along the direction.

Notation: ``g`` the incoming update (a gradient), ``w`` the params, ``<a, b>`` the real dot
product over the whole tree, ``rho_i = 1 / <y_i, s_i>`` (0 where ``<y_i, s_i> = 0``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import scale, scale_by_learning_rate
from gradtx.optimizers.linesearch import scale_by_zoom_linesearch
from gradtx.registry import register

Tree = kit.Tree


def _inverse(x: jax.Array) -> jax.Array:
    """``1 / x``, and 0 where ``x = 0`` (an unused or degenerate pair weighs nothing), with a
    finite derivative there too."""
    zero = x == 0
    return jnp.where(zero, 0, 1 / jnp.where(zero, 1, x))


def _slot(memory: Tree, i: jax.Array, like: Tree) -> Tree:
    """Pair ``i`` of a stacked memory, in the compute dtype of ``like``."""
    return jax.tree.map(lambda m, x: m[i].astype(x.dtype), memory, like)


@jax.jit  # compiled once per tree layout: eager loops would compile the scans every step
def two_loop(
    updates: Tree,
    s_memory: Tree,
    y_memory: Tree,
    rhos: jax.Array,
    gamma: jax.Array,
    newest: jax.Array,
) -> Tree:
    """``H g`` by the two-loop recursion, ``H`` the L-BFGS estimate from ``H_0 = gamma I``.

    ``s_memory`` and ``y_memory`` stack ``m`` pairs along a leading axis of each leaf, used as a
    ring: ``newest`` is the latest pair's slot, the one before it the previous pair, and so on;
    ``rhos[i] = 1 / <y_i, s_i>`` (0 for an unused slot: a pair of zeros changes nothing, so a
    partly filled memory needs no mask).  Leaves are computed in their compute dtype (at least
    float32) and the result is cast back to ``updates``' dtypes::

        q = g;  for i newest..oldest: a_i = rho_i <s_i, q>;  q -= a_i y_i
        r = gamma q;  for i oldest..newest: b_i = rho_i <y_i, r>;  r += (a_i - b_i) s_i
    """
    m = rhos.shape[0]
    order = (newest - jnp.arange(m)) % m  # newest first
    q = jax.tree.map(lambda g: g.astype(kit.compute_dtype(g)), updates)

    def backward(q, i):
        s, y = _slot(s_memory, i, q), _slot(y_memory, i, q)
        alpha = rhos[i] * kit.vdot(s, q)
        return jax.tree.map(lambda a, b: a - alpha.astype(a.real.dtype) * b, q, y), alpha

    q, alphas = jax.lax.scan(backward, q, order)
    r = jax.tree.map(lambda x: gamma.astype(x.real.dtype) * x, q)

    def forward(r, xs):
        i, alpha = xs
        s, y = _slot(s_memory, i, r), _slot(y_memory, i, r)
        c = alpha - rhos[i] * kit.vdot(y, r)
        return jax.tree.map(lambda a, b: a + c.astype(a.real.dtype) * b, r, s), None

    r, _ = jax.lax.scan(forward, r, (order, alphas), reverse=True)  # oldest first
    return kit.cast_like(r, updates)


@jax.jit
def _weights(s_memory: Tree, y_memory: Tree) -> jax.Array:
    """``rho_i = 1 / <y_i, s_i>`` of every slot of a stacked memory (0 for an unused one)."""
    m = jax.tree.leaves(s_memory)[0].shape[0]
    return jax.vmap(lambda i: _inverse(kit.vdot(*(_slot(t, i, t) for t in (y_memory, s_memory)))))(
        jnp.arange(m)
    )


# optax's state also has `count` (gradtx keeps one counter, the chain's) and `weights_memory`:
# here it is computed from the pairs as stored when read (a stored (m,)-vector would be either
# too coarse in the params' low precision or the one state leaf not in it), so that H y_i = s_i
# holds for the stored pairs exactly
@kit.one_counter("count", "weights_memory")
class ScaleByLBFGSState(NamedTuple):
    """``params`` and ``updates``: the previous step's; ``diff_params_memory`` and
    ``diff_updates_memory``: the pairs ``s_i`` and ``y_i`` stacked along a leading axis of
    length ``memory_size`` (a ring, written at ``(count - 1) % memory_size``).
    ``weights_memory`` (``rho_i = 1 / <y_i, s_i>``, 0 for an unused slot) is computed from them
    when read; optax's spelling with ``count=`` and ``weights_memory=`` constructs."""

    params: Tree
    updates: Tree
    diff_params_memory: Tree
    diff_updates_memory: Tree


ScaleByLBFGSState.weights_memory = property(
    lambda self: _weights(self.diff_params_memory, self.diff_updates_memory)
)


def _stacked_zeros(params: Tree, size: int) -> Tree:
    return jax.tree.map(lambda p: jnp.zeros((size, *jnp.shape(p)), jnp.result_type(p)), params)


def _gamma(s: Tree, y: Tree, updates: Tree, first: jax.Array) -> jax.Array:
    """The scale of ``H_0``: ``<y, s> / <y, y>`` of the latest pair (1 if ``y = 0``); before any
    pair, ``min(1, 1 / ||g||)``, so the first step has length at most 1 (optax's choice)."""
    yy = kit.vdot(y, y)
    ratio = jnp.where(yy > 0, kit.vdot(y, s) * _inverse(yy), 1)
    capped = jnp.minimum(1, 1 / jnp.sqrt(kit.vdot(updates, updates)))
    return jnp.where(first, jax.lax.stop_gradient(capped).astype(ratio.dtype), ratio)


@register(
    "block",
    optax="scale_by_lbfgs",
    traced=None,
    traits=(),
    examples=[{}, {"memory_size": 3}, {"memory_size": 1, "scale_init_precond": False}],
)
def scale_by_lbfgs(
    memory_size: kit.Steps = 10, scale_init_precond: bool = True
) -> GradientTransformation:
    """L-BFGS direction ``u = H_t g_t`` (Nocedal & Wright, Algorithms 7.4 and 7.5): before the
    product the latest pair ``s = w_t - w_{t-1}``, ``y = g_t - g_{t-1}`` enters the memory (the
    oldest leaves it) and ``H_t`` is the L-BFGS inverse-Hessian estimate of the last
    ``memory_size`` pairs from ``H_0 = gamma I``, ``gamma = <y, s> / <y, y>`` (1 without
    ``scale_init_precond``; ``min(1, 1 / ||g||)`` at the first step).  Every pair enters, as in
    optax: a pair with ``<y, s> <= 0`` makes ``H`` indefinite, which a line search absorbs; on
    a stochastic objective prefer ``from_torch("LBFGS")``, which skips such pairs.  The sign is
    kept: chain a descent step (``lbfgs`` does).

    Args:
      memory_size: the number ``m`` of pairs kept.
      scale_init_precond: scale ``H_0`` by ``gamma``.

    optax: ``optax.scale_by_lbfgs``; torch: the direction of ``torch.optim.LBFGS``.

    Example:
        On ``f = 2 ||w||^2`` one secant pair recovers the curvature: the second step lands on
        the minimum.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> grad = lambda w: 4.0 * w
        >>> tx = gradtx.chain(gradtx.scale_by_lbfgs(), gradtx.scale(-1.0))
        >>> w = jnp.array([0.1, -0.2])
        >>> state = tx.init(w)
        >>> for _ in range(2):
        ...     u, state = tx.update(grad(w), state, w)
        ...     w = w + u
        ...     print(jnp.array_str(w, precision=4, suppress_small=True))
        [-0.3  0.6]
        [-0.  0.]
    """

    def init(params):
        memory = _stacked_zeros(params, memory_size)
        return ScaleByLBFGSState(kit.zeros_like(params), kit.zeros_like(params), memory, memory)

    def step(updates, state, params, h):
        kit.check_match("scale_by_lbfgs", "updates", updates, "params", params)
        first = h.count == 0
        slot = (h.count - 1) % memory_size

        def pair(new, old, memory):
            dt = kit.compute_dtype(new, old)
            diff = jnp.where(first, 0, new.astype(dt) - old.astype(dt))
            return memory.at[slot].set(diff.astype(memory.dtype))

        s_mem = jax.tree.map(pair, params, state.params, state.diff_params_memory)
        y_mem = jax.tree.map(pair, updates, state.updates, state.diff_updates_memory)
        # rho and gamma from the pairs as stored, so H y_i = s_i holds for them exactly
        like = jax.tree.map(lambda g: g.astype(kit.compute_dtype(g)), updates)
        s_new, y_new = _slot(s_mem, slot, like), _slot(y_mem, slot, like)
        rhos = _weights(s_mem, y_mem)
        if scale_init_precond:
            gamma = _gamma(s_new, y_new, updates, first)
        else:
            gamma = jnp.ones([], kit.scalar_dtype(updates))
        direction = two_loop(updates, s_mem, y_mem, rhos, gamma, slot)
        new = ScaleByLBFGSState(
            kit.cast_like(params, state.params),
            kit.cast_like(updates, state.updates),
            s_mem,
            y_mem,
        )
        return direction, new

    return kit.block("scale_by_lbfgs", step, init, needs_params=True)


_ZOOM = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


@register(
    optax="lbfgs",
    traits=("needs_value",),  # the line search needs value=, grad= and value_fn=
    examples=[
        {},
        {"learning_rate": 0.05, "linesearch": None},
        {
            "learning_rate": lambda c: 0.05 / (1 + c / 10),
            "memory_size": 4,
            "scale_init_precond": False,
            "linesearch": None,
        },
    ],
)
def lbfgs(
    learning_rate: kit.Rate | None = None,
    memory_size: kit.Steps = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = _ZOOM,
) -> GradientTransformation:
    """L-BFGS: ``u = -eta_t H_t g_t`` (``scale_by_lbfgs``), ``eta_t`` from a line search (by
    default the zoom search for the strong Wolfe conditions, trying ``eta = 1`` first), times
    ``learning_rate`` if given.  Each update needs ``value=``, ``grad=`` and ``value_fn=``
    (the objective) for the line search; ``value_and_grad_from_state`` reuses the evaluation
    the line search ends with::

        value_and_grad = gradtx.value_and_grad_from_state(f)
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)

    Args:
      learning_rate: a scale of the step (``None``: 1, the line search's step alone).
      memory_size: the number of past pairs ``(s, y)`` kept.
      scale_init_precond: scale ``H_0`` by ``<y, s> / <y, y>`` (see ``scale_by_lbfgs``).
      linesearch: the step-size rule after the direction (``None``: none, a fixed step).

    optax: ``optax.lbfgs``; torch: ``torch.optim.LBFGS`` takes several iterations per step with
    its own rules: ``gradtx.torch_compat.from_torch("LBFGS", ...)``.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> f = lambda w: jnp.sum((w - jnp.array([1.0, -2.0])) ** 2 * jnp.array([1.0, 50.0]))
        >>> opt = gradtx.lbfgs()
        >>> w = jnp.zeros(2)
        >>> state = opt.init(w)
        >>> value_and_grad = gradtx.value_and_grad_from_state(f)
        >>> for _ in range(5):
        ...     value, grad = value_and_grad(w, state=state)
        ...     u, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
        ...     w = gradtx.apply_updates(w, u)
        >>> print(jnp.array_str(w, precision=6), float(f(w)) < 1e-10)
        [ 1. -2.] True
    """
    step = scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate)
    rest = () if linesearch is None else (linesearch,)
    return chain(scale_by_lbfgs(memory_size, scale_init_precond), step, *rest)


__all__ = ["ScaleByLBFGSState", "lbfgs", "scale_by_lbfgs"]
