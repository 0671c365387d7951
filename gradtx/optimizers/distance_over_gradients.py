"""Distance-over-gradients step sizes (DoG, Ivgi et al. 2023; DoWG, Khaled et al. 2023; and
optax's layer-wise DoG): the step is how far the params have moved from ``x_0`` divided by how
large the gradients have been, so no learning rate is tuned.  Each keeps ``x_0`` (``init`` must
see the real params) and needs ``params`` at every update; ``||.||`` is the norm over the whole
tree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain
from gradtx.blocks import add_decayed_weights, identity, scale_by_learning_rate
from gradtx.registry import matrices, register

Mask = Any
Real = Annotated[ScalarOrSchedule, kit.Range("(-inf, inf)")]
InitStep = tuple[Literal["distance", "learning_rate", "heuristic"], float]


def _moved_sq(params: Any, start: Any) -> jax.Array:
    """``||params - start||²`` over the whole tree, each leaf in at least float32."""
    terms = [
        jnp.sum(kit.abs_sq(p.astype(kit.compute_dtype(p, s)) - s.astype(kit.compute_dtype(p, s))))
        for p, s in zip(jax.tree.leaves(params), jax.tree.leaves(start), strict=True)
    ]
    return sum(terms) if terms else jnp.zeros([], jnp.float32)


def _times(factor: jax.Array, tree: Any) -> Any:
    """``factor * tree`` leaf by leaf in the leaf's compute precision, cast back."""
    return jax.tree.map(lambda x: (factor.astype(kit.compute_dtype(x)) * x).astype(x.dtype), tree)


def _decayed(weight_decay: Any, mask: Mask) -> GradientTransformation:
    return identity() if weight_decay is None else add_decayed_weights(weight_decay, mask)


# --- distance over gradients -----------------------------------------------------------------


@kit.one_counter("is_init_step")
class DoGState(NamedTuple):
    """``init_params``: ``x_0``; ``max_dist``: ``r̄ = max(r_eps, max ||x - x_0||)``;
    ``sum_sq_norm_grads``: ``G = sum ||g||²``.  Field names follow optax (without its first-step
    flag: the step counter says it)."""

    init_params: kit.Tree
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array


def _check_init_step(where: str, init_step: Any) -> tuple[str, float]:
    kinds = ("distance", "learning_rate", "heuristic")
    pair = isinstance(init_step, tuple | list) and len(init_step) == 2
    if not (pair and init_step[0] in kinds):
        raise ValueError(
            f"{where}: init_step={init_step!r}; allowed: (kind, value), kind in {kinds}"
        )
    kit.check_ranges(where, init_step=(init_step[1], "[0, inf)"))
    return init_step[0], init_step[1]


@register(
    "block",
    optax=None,
    traced=None,
    traits=(),
    examples=[
        {},
        {"init_step": ("distance", 0.1), "eps": 1e-6},
        {"init_step": ("learning_rate", 0.01)},
    ],
)
def scale_by_dog(
    init_step: InitStep = ("heuristic", 1e-6), eps: kit.NonNegative = 1e-8
) -> GradientTransformation:
    """DoG's step size (Ivgi et al. 2023), one for the whole tree::

        r̄_t = max(r̄_{t-1}, ||x_t - x_0||),  G_t = G_{t-1} + ||g_t||²,  u = r̄_t / sqrt(G_t + eps) g_t

    with ``r̄_0 = r_eps`` from ``init_step``.  The output is a direction (``dog`` follows it with
    the learning rate).  Needs the real params at ``init`` and at every update.

    Args:
      init_step: ``(kind, value)``: ``("distance", r)`` sets ``r_eps = r``; ``("heuristic", a)``
        sets ``r_eps = a (1 + ||x_0||)`` (the paper's, ``a = 1e-6``, or ``1e-4`` with batch norm);
        ``("learning_rate", lr)`` takes a first step ``lr g`` and ``r_eps = 0``.
      eps: added to ``G`` under the square root (not in the paper).

    optax: none (optax 0.2.8's ``dog`` uses a private ``scale_by_dog`` with these arguments);
    torch: none (the authors' ``dog.DoG``).

    Example:
        The step size is distance over gradients: it grows as the params move away from ``x_0``.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_dog(init_step=("distance", 0.1))
        >>> x = jnp.array([1.0, 1.0], jnp.float32)
        >>> state = tx.init(x)
        >>> for _ in range(3):
        ...     u, state = tx.update(x, state, x)  # the gradient of |x|² / 2
        ...     x = x - u
        ...     print(f"{gradtx.tree_get(state, 'max_dist'):.4f}")
        0.1000
        0.1000
        0.1681
    """
    kind, value = _check_init_step("scale_by_dog", init_step)

    def init(params):
        dt = kit.scalar_dtype(params)
        r_eps = {"distance": value, "learning_rate": 0.0}.get(kind)
        if kind == "heuristic":
            r_eps = value * (1 + kit.safe_sqrt(kit.vdot(params, params).astype(dt)))
        return DoGState(kit.copy(params), jnp.asarray(r_eps, dt), jnp.zeros([], dt))

    def step(updates, state, params, h):
        dt = state.max_dist.dtype
        dist = kit.safe_sqrt(_moved_sq(params, state.init_params).astype(dt))
        max_dist = jnp.maximum(state.max_dist, dist)
        total = state.sum_sq_norm_grads + kit.vdot(updates, updates).astype(dt)
        rate = max_dist / jnp.sqrt(total + kit.scalar(h.eps, total))
        if kind == "learning_rate":  # the first step is lr * g
            rate = jnp.where(h.count == 0, jnp.asarray(value, dt), rate)
        new = DoGState(state.init_params, max_dist, total.astype(dt))
        return _times(rate.astype(dt), updates), new

    return kit.block("scale_by_dog", step, init, hyper={"eps": eps}, needs_params=True)


@register(
    optax="contrib.dog",
    traits=(),
    examples=[
        # lr = 1 would put the second step's distance within 1e-9 of r_eps: a kink for the
        # finite-difference check of d(loss)/d(lr)
        {"learning_rate": 0.5},
        {},
        {
            "learning_rate": 0.5,
            "init_step": ("heuristic", 1e-4),
            "eps": 1e-6,
            "weight_decay": 0.01,
            "mask": matrices,
        },
        {"init_step": ("learning_rate", 0.01)},
    ],
)
def dog(
    learning_rate: kit.Rate = 1.0,
    init_step: InitStep = ("heuristic", 1e-6),
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative | None = None,
    mask: Mask = None,
) -> GradientTransformation:
    """DoG, distance over gradients (Ivgi et al. 2023): ``u = -lr r̄_t / sqrt(G_t + eps) (g + wd
    p)``, ``r̄_t`` the farthest the params have moved from ``x_0`` (at least ``r_eps``), ``G_t``
    the sum of squared gradient norms (``scale_by_dog``).  The paper recommends averaging the
    iterates (``gradtx.ema_params``).

    Args:
      learning_rate: a multiplier on the found step size (1.0, or a schedule).
      init_step: ``(kind, value)``: ``("heuristic", a)``: ``r_eps = a (1 + ||x_0||)``;
        ``("distance", r)``: ``r_eps = r``; ``("learning_rate", lr)``: a first step ``lr g``.
      eps: added to ``G`` under the square root.
      weight_decay: coefficient ``wd`` of the L2 term added to the gradient (``None``: none).

    optax: ``optax.contrib.dog``; torch: none (the authors' ``dog.DoG``).

    Example:
        From ``r_eps = 0.001``, the distance estimate grows until it finds the problem's scale,
        ``||x* - x_0|| = 4.24``, and then the loss drops:

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda x: jnp.sum((x - 3.0) ** 2)
        >>> opt, x = gradtx.dog(init_step=("distance", 1e-3)), jnp.zeros(2, jnp.float32)
        >>> state = opt.init(x)
        >>> for t in range(1, 71):
        ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
        ...     x = gradtx.apply_updates(x, updates)
        ...     if t % 20 == 10:
        ...         print(t, f"{gradtx.tree_get(state, 'max_dist'):.2g}", f"{loss(x):.1e}")
        10 0.02 1.8e+01
        30 1.1 8.7e+00
        50 4 3.9e-02
        70 4.2 1.3e-05
    """
    return chain(
        _decayed(weight_decay, mask),
        scale_by_dog(init_step, eps),
        scale_by_learning_rate(learning_rate),
    )


class DoWGState(NamedTuple):
    """``init_params``: ``x_0``; ``weighted_sq_norm_grads``: ``v = sum r̄² ||g||²``;
    ``estim_sq_dist``: ``r̄²``, the largest squared distance from ``x_0`` (at least the
    starting guess).  Field names follow optax."""

    init_params: kit.Tree
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array


@register(
    "block",
    optax=None,
    traced="eps",
    traits=(),
    examples=[{}, {"init_estim_sq_dist": 0.01, "eps": 1e-6}],
)
def scale_by_dowg(
    init_estim_sq_dist: kit.NonNegativeConstant | None = None,
    eps: kit.NonNegativeConstant = 1e-4,
) -> GradientTransformation:
    """DoWG's step size (Khaled et al. 2023), one for the whole tree::

        r̄²_t = max(r̄²_{t-1}, ||x_t - x_0||²),  v_t = v_{t-1} + r̄²_t ||g_t||²
        u = r̄²_t / (sqrt(v_t) + eps) g_t

    ``r̄²_0`` is ``init_estim_sq_dist`` (``None``: ``eps``), the paper's ``r_eps²``; ``eps`` in
    the denominator is optax's (the paper has none).  The output is a direction (``dowg`` follows
    it with the learning rate).  Needs the real params at ``init`` and at every update.

    Args:
      init_estim_sq_dist: the starting guess of the squared distance to the solution.
      eps: added to ``sqrt(v)``; also the starting guess when ``init_estim_sq_dist`` is None.

    optax: none (optax 0.2.8's ``dowg`` uses a private ``scale_by_dowg`` with these arguments);
    torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_dowg()
        >>> x = jnp.array([1.0, 1.0], jnp.float32)
        >>> state = tx.init(x)
        >>> for _ in range(3):
        ...     u, state = tx.update(x, state, x)  # the gradient of |x|² / 2
        ...     x = x - u
        ...     print(f"{gradtx.tree_get(state, 'estim_sq_dist'):.3g}")  # r̄², from eps
        0.0001
        0.0001
        0.000287
    """

    def init(params):
        dt = kit.scalar_dtype(params)
        start = eps if init_estim_sq_dist is None else init_estim_sq_dist
        return DoWGState(kit.copy(params), jnp.zeros([], dt), jnp.asarray(start, dt))

    def step(updates, state, params, h):
        dt = state.estim_sq_dist.dtype
        sq_dist = jnp.maximum(state.estim_sq_dist, _moved_sq(params, state.init_params).astype(dt))
        weighted = state.weighted_sq_norm_grads + sq_dist * kit.vdot(updates, updates).astype(dt)
        rate = sq_dist / (kit.safe_sqrt(weighted) + eps)
        new = DoWGState(state.init_params, weighted.astype(dt), sq_dist)
        return _times(rate.astype(dt), updates), new

    return kit.block("scale_by_dowg", step, init, needs_params=True)


@register(
    optax="contrib.dowg",
    traits=(),
    examples=[
        {},
        {
            "learning_rate": 0.5,
            "init_estim_sq_dist": 1e-3,
            "eps": 1e-6,
            "weight_decay": 0.01,
            "mask": matrices,
        },
    ],
)
def dowg(
    learning_rate: kit.Rate = 1.0,
    init_estim_sq_dist: kit.NonNegativeConstant | None = None,
    eps: kit.NonNegativeConstant = 1e-4,
    weight_decay: kit.NonNegative | None = None,
    mask: Mask = None,
) -> GradientTransformation:
    """DoWG, distance over weighted gradients (Khaled et al. 2023): ``u = -lr r̄²_t / (sqrt(v_t)
    + eps) (g + wd p)``, ``v_t = sum r̄²_k ||g_k||²`` (``scale_by_dowg``).

    Args:
      learning_rate: a multiplier on the found step size (1.0, or a schedule).
      init_estim_sq_dist: the starting guess of the squared distance to the solution.
      eps: added to ``sqrt(v)``; also the starting guess when ``init_estim_sq_dist`` is None.
      weight_decay: coefficient ``wd`` of the L2 term added to the gradient (``None``: none).

    optax: ``optax.contrib.dowg``; torch: none.

    Example:
        No step size given, and the loss falls from 18:

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda x: jnp.sum((x - 3.0) ** 2)
        >>> opt, x = gradtx.dowg(), jnp.zeros(2, jnp.float32)
        >>> state = opt.init(x)
        >>> for t in range(1, 31):
        ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
        ...     x = gradtx.apply_updates(x, updates)
        ...     if t % 10 == 0:
        ...         print(t, f"{loss(x):.1e}")
        10 5.2e+00
        20 1.2e-02
        30 4.5e-09
    """
    return chain(
        _decayed(weight_decay, mask),
        scale_by_dowg(init_estim_sq_dist, eps),
        scale_by_learning_rate(learning_rate),
    )


class ScaleByDistanceOverGradientsState(NamedTuple):
    """Per leaf: ``max_dist`` ``r̄`` and ``grad_sum_of_squares`` ``G`` (scalars, at least
    float32), ``init_params`` ``x_0`` (in ``param_dtype``)."""

    max_dist: kit.Tree
    grad_sum_of_squares: kit.Tree
    init_params: kit.Tree


@register(
    "block",
    optax="scale_by_distance_over_gradients",
    traced="global_scale",
    traits=(),
    examples=[
        {"param_dtype": None},
        {},  # optax's default: x_0 kept in float32
        {"reps_rel": 1e-4, "eps": 1e-6, "global_scale": -0.5, "param_dtype": None},
    ],
)
def scale_by_distance_over_gradients(
    reps_rel: kit.NonNegativeConstant = 1e-6,
    eps: kit.NonNegative = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: Real = 1.0,
) -> GradientTransformation:
    """Layer-wise DoG (LDoG, Ivgi et al. 2023): DoG's step size for each leaf on its own::

        r̄ = max(r̄, ||x - x_0||),  G = G + ||g||²,  u = global_scale r̄ / sqrt(G + eps) g

    norms over the leaf, ``r̄`` starting at ``reps_rel (1 + ||x_0||)``.  ``global_scale = -1``
    makes it a descent step.  Needs the real params at ``init`` and at every update.

    Args:
      reps_rel: ``r̄``'s start relative to the leaf's norm (1e-6; 1e-4 with batch norm).
      eps: added to ``G`` under the square root.
      param_dtype: storage dtype of ``x_0`` (optax's ``float32``; ``None``: the params').
      global_scale: multiplies every step (1.0 for a direction, -1.0 for descent).

    optax: ``optax.scale_by_distance_over_gradients`` (whose ``G`` has shape ``(1,)``, so a
    scalar leaf's update comes out with shape ``(1,)``; here each keeps its leaf's shape);
    torch: none (the authors' ``dog.LDoG``).

    Example:
        Each leaf finds its own step size; the first step's norm is ``reps_rel (1 + ||x_0||)``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_distance_over_gradients(reps_rel=0.01, global_scale=-1.0)
        >>> x = {"big": jnp.full(4, 10.0, jnp.float32), "small": jnp.ones(4, jnp.float32)}
        >>> g = {"big": jnp.ones(4, jnp.float32), "small": jnp.ones(4, jnp.float32)}
        >>> u, _ = tx.update(g, tx.init(x), x)
        >>> print(*(f"{jnp.linalg.norm(u[k]):.2f}" for k in ("big", "small")))  # ||x_0||: 20, 2
        0.21 0.03
    """

    def init(params):
        def start(x):
            k = kit.compute_dtype(x)
            return reps_rel * (1 + kit.safe_sqrt(jnp.sum(kit.abs_sq(x.astype(k)))))

        max_dist = jax.tree.map(start, params)
        zero = jax.tree.map(lambda x: jnp.zeros([], kit.compute_dtype(x)), params)
        return ScaleByDistanceOverGradientsState(
            max_dist, zero, kit.cast(kit.copy(params), param_dtype)
        )

    def step(updates, state, params, h):
        def leaf(g, r, total, p, x0):
            k = kit.compute_dtype(g, r, p, x0)
            r = jnp.maximum(r, kit.safe_sqrt(jnp.sum(kit.abs_sq(p.astype(k) - x0.astype(k)))))
            total = total + jnp.sum(kit.abs_sq(g.astype(k)))
            rate = kit.scalar(h.global_scale, r) * r / jnp.sqrt(total + kit.scalar(h.eps, total))
            return (rate * g.astype(k)).astype(g.dtype), r, total

        if not jax.tree.leaves(updates):
            return updates, state
        # not kit.leafwise: the per-leaf scalars do not have their leaf's shape
        for name, tree in (("params", params), ("init_params", state.init_params)):
            kit.check_match("scale_by_distance_over_gradients", "updates", updates, name, tree)
        u, r, total = jax.tree.transpose(
            jax.tree.structure(updates),
            jax.tree.structure((0, 0, 0)),
            jax.tree.map(leaf, updates, *state[:2], params, state.init_params),
        )
        r, total = kit.cast_like(r, state.max_dist), kit.cast_like(total, state[1])
        return u, ScaleByDistanceOverGradientsState(r, total, state.init_params)

    hyper = {"eps": eps, "global_scale": global_scale}
    return kit.block("scale_by_distance_over_gradients", step, init, hyper=hyper, needs_params=True)


__all__ = [
    "DoGState",
    "DoWGState",
    "ScaleByDistanceOverGradientsState",
    "dog",
    "dowg",
    "scale_by_distance_over_gradients",
    "scale_by_dog",
    "scale_by_dowg",
]
