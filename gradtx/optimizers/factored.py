"""Factored second moments: statistics in memory sublinear in each matrix's size (``m + n``
numbers for an ``m x n`` matrix, not ``m * n``).  Adafactor (Shazeer & Stern 2018) keeps row and
column averages of ``g^2`` and rebuilds ``v`` as their outer product; SM3 (Anil et al. 2019) keeps
one accumulator per row, column (and further axis slice) and gives each element the smallest
that covers it.  Also the parameter-scale blocks Adafactor steps with.

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``p`` the parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain
from gradtx.blocks import add_decayed_weights, ema, scale, scale_by_learning_rate
from gradtx.clipping import clip_by_block_rms
from gradtx.registry import matrices, register

Tree = kit.Tree
Mask = Any
Size = Annotated[int, kit.Range("[0, inf)", integer=True)]
"""A dimension size or a step offset: a whole number >= 0 (static: it shapes the state)."""


@kit.one_counter("count")
class FactoredState(NamedTuple):
    """Three trees laid out like the params: a factored leaf has ``v_row`` (its shape less the
    column axis), ``v_col`` (less the row axis) and ``None`` in ``v``; others the reverse."""

    v_row: Tree
    v_col: Tree
    v: Tree


class ScaleBySM3State(NamedTuple):
    """``mu``: per leaf, a list of one accumulator per axis (a vector or scalar: one, of its own
    shape); ``nu``: the momentum, shaped like the params."""

    mu: Tree
    nu: Tree


# --- helpers ---------------------------------------------------------------------------------


def _factored_dims(shape: tuple[int, ...], factored: bool, min_dim: int) -> tuple[int, int] | None:
    """``(row axis, column axis)``: the second-largest and the largest axis (ties: the earlier
    axis counts as smaller), or ``None`` when the leaf is kept whole (rank < 2, or the
    second-largest dimension is under ``min_dim``)."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape, kind="stable")
    if shape[order[-2]] < min_dim:
        return None
    return int(order[-2]), int(order[-1])


def _real(dtype: Any) -> jnp.dtype:
    """The real dtype of ``dtype`` (``float32`` for ``complex64``)."""
    return jnp.finfo(dtype).dtype


def _wide(*xs: jax.Array) -> jnp.dtype:
    """The dtype a leaf is computed in: the widest of float32 and its inputs' (real) dtypes."""
    return _real(jnp.promote_types(jnp.float32, jnp.result_type(*xs)))


def _zeros_reduced(p: jax.Array, axis: int | tuple[int, ...], dtype: Any) -> jax.Array:
    # eval_shape keeps a sharded param's layout on the reduced zeros, and computes nothing
    target = jax.eval_shape(lambda x: jnp.sum(x, axis=axis), p)
    return jnp.zeros_like(target, dtype=dtype)


def _parts(where: str, name: str, updates: Tree, expected: Tree, got: Tree) -> list:
    """``got`` split per leaf of ``updates``, after checking it against ``expected`` (what
    ``init`` builds for these updates): a mismatch names the field and the first wrong path."""
    kit.check_match(where, "updates", expected, name, got)
    return jax.tree.structure(updates).flatten_up_to(got)


# --- factored second moment ------------------------------------------------------------------


def _capped_decay(step: jax.Array, decay_rate: Any) -> jax.Array:
    """An example ``decay_rate_fn``: the paper's schedule capped at 0.6 (Zhai et al. 2021 cap
    ``b_t`` so that the second moment keeps adapting)."""
    return jnp.minimum(1 - (step + 1.0) ** -decay_rate, 0.6)


@register(
    "block",
    optax="scale_by_factored_rms",
    traits=(),
    traced="decay_rate",
    examples=[
        {"min_dim_size_to_factor": 2},
        {"min_dim_size_to_factor": 3, "decay_rate": 0.5, "epsilon": 1e-3},
        {"factored": False, "decay_rate": 1.0},
        {"min_dim_size_to_factor": 3, "decay_rate_fn": _capped_decay},
    ],
)
def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: kit.NonNegative = 0.8,
    step_offset: Size = 0,
    min_dim_size_to_factor: Size = 128,
    epsilon: kit.NonNegative = 1e-30,
    decay_rate_fn: Callable[[jax.Array, Any], Any] | None = None,
) -> GradientTransformation:
    """Adafactor's scaling (Shazeer & Stern 2018): ``u = g / sqrt(v̂)``, ``G = |g|^2 + epsilon``,
    ``b_t = 1 - s^(-decay_rate)``, ``s = max(t - step_offset, 1)``.  A matrix (a tensor's two
    largest axes: rows ``i`` on the second-largest, columns ``j`` on the largest) keeps
    ``r = b_t r + (1 - b_t) mean_j G``, ``c = b_t c + (1 - b_t) mean_i G`` and uses
    ``v̂ = r c / mean(r)``: ``m + n`` numbers.  Vectors, scalars and tensors whose second-largest
    dimension is under ``min_dim_size_to_factor`` keep ``v = b_t v + (1 - b_t) G`` whole.

    Args:
      factored: factor matrices and tensors (``False``: every leaf whole).
      decay_rate: the exponent ``c`` of ``b_t = 1 - s^(-c)`` (1: the plain average so far).
      step_offset: where the schedule (re)starts, e.g. fine-tuning: ``b_t = 0`` until then.
        optax uses ``s = t - step_offset``, NaN while it is not positive.
      min_dim_size_to_factor: factor a leaf only if its second-largest dimension is at least
        this.
      epsilon: added to ``|g|^2`` (the paper's ``eps1``).
      decay_rate_fn: ``(step, decay_rate) -> b_t`` replacing the schedule (e.g. one capping
        ``b_t``, Zhai et al. 2021), ``step = max(t - 1 - step_offset, 0)``.  ``None``: the
        schedule above in the leaf's precision (optax's default computes it in float32).

    optax: ``optax.scale_by_factored_rms`` (no step counter in the state: the chain's is used);
    torch: none (the scaling inside ``torch.optim.Adafactor``).

    Example:
        A rank-one ``g^2`` is estimated exactly, so the first step is ``sign(g)``, from a state
        of 2 + 3 numbers instead of 6:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)
        >>> g = jnp.outer(jnp.array([1.0, -3.0]), jnp.array([0.5, 2.0, -1.0])).astype(jnp.float32)
        >>> updates, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(updates, precision=4))
        [[ 1.  1. -1.]
         [-1. -1.  1.]]
        >>> print(gradtx.tree_get(state, "v_row").shape, gradtx.tree_get(state, "v_col").shape)
        (2,) (3,)
    """
    where = "scale_by_factored_rms"

    def dims(x: Any) -> tuple[int, int] | None:
        return _factored_dims(jnp.shape(x), factored, min_dim_size_to_factor)

    def layout(x: Any) -> FactoredState:
        """This leaf's state: arrays where it has them, ``None`` elsewhere."""
        dt, d = _real(jnp.result_type(x)), dims(x)
        if d is None:
            return FactoredState(None, None, jnp.zeros_like(x, dtype=dt))
        return FactoredState(_zeros_reduced(x, d[1], dt), _zeros_reduced(x, d[0], dt), None)

    def init(params):
        leaves, treedef = jax.tree.flatten(params)
        per_leaf = [layout(x) for x in leaves]
        return FactoredState(*(treedef.unflatten([s[f] for s in per_leaf]) for f in range(3)))

    def step(updates, state, params, h):
        leaves, treedef = jax.tree.flatten(updates)
        expected = jax.eval_shape(init, updates)
        rows, cols, vs = (
            _parts(where, f, updates, getattr(expected, f), getattr(state, f))
            for f in FactoredState._fields
        )
        step_ = jnp.maximum(h.count - step_offset, 0)

        @functools.cache
        def weights(dt: Any) -> tuple[jax.Array, jax.Array]:
            """``(b_t, 1 - b_t)`` in precision ``dt``; ``1 - b_t = s^-c`` formed directly keeps
            its relative precision when ``b_t`` nears 1."""
            if decay_rate_fn is not None:
                b = jnp.asarray(decay_rate_fn(step_, h.decay_rate)).astype(dt)
                return b, 1 - b
            s = (step_ + 1).astype(dt)
            w = s ** -jnp.asarray(h.decay_rate).astype(dt)
            return 1 - w, w

        def leaf(g, r, c, v):
            k = _wide(g, *(x for x in (r, c, v) if x is not None))
            b, w = weights(k)
            gk = g.astype(jnp.promote_types(g.dtype, k))
            sq = kit.abs_sq(gk).astype(k) + jnp.asarray(h.epsilon).astype(k)
            d = dims(g)
            if d is None:
                v = (b * v.astype(k) + w * sq).astype(v.dtype)  # rounded once, used as stored
                return (gk * jax.lax.rsqrt(v.astype(k))).astype(g.dtype), None, None, v
            row, col = d
            r = (b * r.astype(k) + w * jnp.mean(sq, axis=col)).astype(r.dtype)
            c = (b * c.astype(k) + w * jnp.mean(sq, axis=row)).astype(c.dtype)
            rk, ck = r.astype(k), c.astype(k)
            # v̂ = r c / mean(r): the mean over the rows of r (whose column axis is gone)
            r_rows = row - 1 if row > col else row
            row_factor = jax.lax.rsqrt(rk / jnp.mean(rk, axis=r_rows, keepdims=True))
            col_factor = jax.lax.rsqrt(ck)
            u = gk * jnp.expand_dims(row_factor, col) * jnp.expand_dims(col_factor, row)
            return u.astype(g.dtype), r, c, None

        outs = [leaf(*args) for args in zip(leaves, rows, cols, vs, strict=True)]
        u, r, c, v = (treedef.unflatten([o[i] for o in outs]) for i in range(4))
        return u, FactoredState(r, c, v)

    hyper = {"decay_rate": decay_rate, "epsilon": epsilon}
    return kit.block(where, step, init, hyper=hyper)


# --- parameter scale -------------------------------------------------------------------------


def _scale_by_param_size(where: str, min_scale: Any, size: Callable[..., jax.Array]) -> Any:
    """``u = g * size(p, min_scale)`` leaf by leaf, computed in the leaf's wide precision."""

    def step(updates, state, params, h):
        def leaf(g, p):
            k = _wide(g, p)
            factor = size(p.astype(jnp.promote_types(p.dtype, k)), jnp.asarray(h.min_scale, k))
            return ((g.astype(jnp.promote_types(g.dtype, k)) * factor).astype(g.dtype),)

        (u,) = kit.leafwise(where, leaf, 1, updates, params, names=("params",))
        return u, state

    return kit.block(where, step, hyper={"min_scale": min_scale}, needs_params=True)


def _safe_rms(p: jax.Array, floor: jax.Array) -> jax.Array:
    """``max(sqrt(mean |p|^2), floor)``, with a finite gradient where ``p = 0``."""
    ms = jnp.mean(kit.abs_sq(p))
    small = ms <= floor * floor
    return jnp.where(small, floor, jnp.sqrt(jnp.where(small, 1, ms))).astype(floor.dtype)


@register(
    "block",
    optax="scale_by_param_block_rms",
    traits=(),
    traced="min_scale",
    examples=[{"min_scale": 1.0}, {}],
)
def scale_by_param_block_rms(min_scale: kit.NonNegative = 1e-3) -> GradientTransformation:
    """Leaf by leaf: ``u = g * max(rms(p), min_scale)``, ``rms(p) = sqrt(mean |p|^2)``: a step
    relative to each leaf's typical entry (Adafactor's parameter scale).  Needs params.

    Args:
      min_scale: the smallest scale (the paper's ``eps2``), so leaves at 0 still move.

    optax: ``optax.scale_by_param_block_rms``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_param_block_rms()
        >>> params = {"big": jnp.array([30.0, -40.0], jnp.float32), "zero": jnp.zeros(2, "f4")}
        >>> g = {"big": jnp.ones(2, jnp.float32), "zero": jnp.ones(2, jnp.float32)}
        >>> updates, _ = tx.update(g, tx.init(params), params)
        >>> print(updates["big"], updates["zero"])  # rms 35.36; the floor 1e-3
        [35.35534 35.35534] [0.001 0.001]
    """
    return _scale_by_param_size("scale_by_param_block_rms", min_scale, _safe_rms)


@register(
    "block",
    optax="scale_by_param_block_norm",
    traits=(),
    traced="min_scale",
    examples=[{"min_scale": 2.0}, {}],
)
def scale_by_param_block_norm(min_scale: kit.NonNegative = 1e-3) -> GradientTransformation:
    """Leaf by leaf: ``u = g * max(||p||, min_scale)`` (the Frobenius norm of the whole leaf).
    Needs params.

    Args:
      min_scale: the smallest scale, so leaves at 0 still move.

    optax: ``optax.scale_by_param_block_norm``; torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_param_block_norm()
        >>> params = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]], jnp.float32)}
        >>> g = {"w": jnp.full((2, 2), 0.1, jnp.float32)}
        >>> updates, _ = tx.update(g, tx.init(params), params)
        >>> print(jnp.array_str(updates["w"], precision=4))  # ||w|| = 5
        [[0.5 0.5]
         [0.5 0.5]]
    """
    return _scale_by_param_size("scale_by_param_block_norm", min_scale, kit.safe_norm)


# --- Adafactor ---------------------------------------------------------------------------------


@register(
    optax="adafactor",
    traits=(),
    examples=[
        {"learning_rate": 0.1, "min_dim_size_to_factor": 2},
        {
            "learning_rate": 0.05,
            "min_dim_size_to_factor": 3,
            "decay_rate": 0.7,
            "clipping_threshold": None,
            "multiply_by_parameter_scale": False,
            "momentum": 0.8,
            "dtype_momentum": None,
            "weight_decay_rate": 0.01,
            "weight_decay_mask": matrices,
            "eps": 1e-6,
        },
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "factored": False,
            "clipping_threshold": 0.5,
            "momentum": 0.9,
            "dtype_momentum": None,
            "weight_decay_rate": lambda c: 0.05 * (1 + c) / (2 + c),
        },
        {"min_dim_size_to_factor": 2, "clipping_threshold": 2.0},
    ],
)
def adafactor(
    learning_rate: kit.Rate | None = None,
    min_dim_size_to_factor: Size = 128,
    decay_rate: kit.NonNegative = 0.8,
    decay_offset: Size = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: ScalarOrSchedule | None = 1.0,
    momentum: kit.Decay | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: kit.NonNegative | None = None,
    eps: kit.NonNegative = 1e-30,
    factored: bool = True,
    weight_decay_mask: Mask = None,
) -> GradientTransformation:
    """Adafactor (Shazeer & Stern 2018): ``ĝ = g / sqrt(v̂)`` with the factored second moment of
    ``scale_by_factored_rms``; ``ĝ <- ĝ / max(1, rms(ĝ) / clipping_threshold)`` per leaf;
    ``ĝ <- lr * ĝ * max(rms(p), 1e-3)`` (the step relative to each leaf's scale); optionally
    ``m = momentum m + (1 - momentum) ĝ`` (no bias correction; else ``m = ĝ``);
    ``u = -(m + wd * p)``.

    A chain of ``scale_by_factored_rms``, ``clip_by_block_rms``, ``scale_by_learning_rate``,
    ``scale_by_param_block_rms``, ``ema``, ``add_decayed_weights`` and ``scale(-1)``, each only
    when its option is on.  Without a learning rate the step is the parameter scale alone (the
    paper's ``min(1e-2, 1/sqrt(t))`` can be passed as a schedule); the weight decay is not
    multiplied by it.

    Args:
      min_dim_size_to_factor: factor a leaf only if its second-largest dimension is at least
        this.
      decay_rate: the exponent ``c`` of the second moment's decay ``b_t = 1 - s^(-c)``.
      decay_offset: where that schedule restarts (fine-tuning): ``s = max(t - decay_offset, 1)``.
      multiply_by_parameter_scale: scale the step by ``max(rms(p), 1e-3)`` per leaf.
      clipping_threshold: the largest RMS of ``ĝ`` per leaf, > 0 (the paper's ``d``; ``None``:
        no clipping).
      momentum: decay of a moving average of the steps (``None``: none, and no memory for it).
      dtype_momentum: storage dtype of the momentum (``None``: the params'); the update is the
        momentum as stored.
      weight_decay_rate: coefficient ``wd`` of ``wd * p`` (``None``: none).
      eps: added to ``|g|^2`` (the paper's ``eps1``).
      factored: factor the second moments (``False``: every leaf keeps a full one).
      weight_decay_mask: which leaves get weight decay (bools, a prefix, or a function of the
        params); ``None``: all.

    optax: ``optax.adafactor`` (where a positive ``decay_offset`` gives NaN); torch:
    ``torch.optim.Adafactor`` (another variant: the last two dimensions, other step sizes).

    Example:
        The second moment of a 1024 x 1024 matrix in 2048 numbers (Adam keeps two million):

        >>> import jax
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w": jnp.zeros((1024, 1024), jnp.float32)}
        >>> def size(tx):  # numbers in the state, the step counter included
        ...     return sum(x.size for x in jax.tree.leaves(tx.init(params)))
        >>> print(size(gradtx.adafactor(learning_rate=1e-2)), size(gradtx.adam(1e-3)))
        2049 2097153
    """
    if clipping_threshold is not None:  # None switches clipping off: no annotation can say so
        kit.check_ranges("adafactor", clipping_threshold=(clipping_threshold, "(0, inf)"))
    blocks = [
        scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)
    ]
    if clipping_threshold is not None:
        blocks.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        blocks.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        blocks.append(scale_by_param_block_rms())
    if momentum is not None:
        blocks.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        blocks.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    blocks.append(scale(-1))
    return chain(*blocks)


# --- SM3 ---------------------------------------------------------------------------------------


def _other_axes(axis: int, ndim: int) -> tuple[int, ...]:
    return tuple(a for a in range(ndim) if a != axis)


def _expanded(x: jax.Array, axis: int, ndim: int) -> jax.Array:
    """A per-axis accumulator shaped to broadcast along ``axis`` of a rank-``ndim`` leaf."""
    return jnp.reshape(x, [1] * axis + [-1] + [1] * (ndim - axis - 1))


@register(
    "block",
    optax="scale_by_sm3",
    traits=(),
    traced="b1",
    examples=[{}, {"b1": 0.5, "b2": 0.99, "eps": 1e-4}, {"b1": 0.0, "b2": 0.0}],
)
def scale_by_sm3(
    b1: kit.Decay = 0.9, b2: kit.Fraction = 1.0, eps: kit.NonNegative = 1e-8
) -> GradientTransformation:
    """SM3-II scaling (Anil et al. 2019), covering a tensor by its slices along each axis:
    ``a = g^2 + min_k mu_k`` over the accumulators covering an element, ``u' = g / sqrt(a + eps)``
    (0 where ``a = 0``), each ``mu_k`` the largest ``a`` of its slice, and ``u = m = b1 m +
    (1 - b1) u'`` (no bias correction).  Vectors and scalars: one accumulator per element
    (Adagrad).  ``b2 < 1`` (optax's variant): ``a = (1 - b2) g^2 + b2 min_k mu_k``.  State:
    ``sum(shape)`` numbers per tensor, plus the momentum.

    Args:
      b1: the momentum of the scaled updates (0: none; its buffer is still kept).
      b2: 1 for SM3's sums (Adagrad-like); below 1, a moving average with this decay.
      eps: added to the accumulator inside the square root.

    optax: ``optax.scale_by_sm3`` (which fails on scalar leaves); torch: none.

    Example:
        One accumulator per row and per column, each the largest ``g^2`` of its slice:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_sm3()
        >>> g = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, -6.0]], jnp.float32)
        >>> _, state = tx.update(g, tx.init(g))
        >>> rows, cols = gradtx.tree_get(state, "mu")
        >>> print(rows, cols)
        [ 9. 36.] [16. 25. 36.]
    """

    def init(params):
        def one(p):
            dt = _real(jnp.result_type(p))
            if jnp.ndim(p) < 2:  # every element its own set
                return [jnp.zeros_like(p, dtype=dt)]
            return [_zeros_reduced(p, _other_axes(i, p.ndim), dt) for i in range(p.ndim)]

        return ScaleBySM3State(jax.tree.map(one, params), kit.zeros_like(params))

    def step(updates, state, params, h):
        leaves, treedef = jax.tree.flatten(updates)
        expected = jax.eval_shape(init, updates)
        mus = _parts("scale_by_sm3", "mu", updates, expected.mu, state.mu)
        nus = _parts("scale_by_sm3", "nu", updates, expected.nu, state.nu)

        def leaf(g, mu, nu):
            k = _wide(g, nu, *mu)
            b1, b2, eps = (jnp.asarray(x).astype(k) for x in (h.b1, h.b2, h.eps))
            gk = g.astype(jnp.promote_types(g.dtype, k))
            n = g.ndim
            if n < 2:
                smallest = mu[0].astype(k)
            else:
                smallest = functools.reduce(
                    jnp.minimum, [_expanded(m.astype(k), i, n) for i, m in enumerate(mu)]
                )
            acc = jnp.where(b2 == 1, 1, 1 - b2) * kit.abs_sq(gk).astype(k) + b2 * smallest
            scaled = gk * jnp.where(acc > 0, jax.lax.rsqrt(acc + eps), 0)
            # as m + (1 - b1) (u' - m): from b1 m + (1 - b1) u', XLA refactors a constant b1 = 1/2
            # and rounds differently from an injected (array) b1
            old = nu.astype(k)
            nu = (old + (1 - b1) * (scaled - old)).astype(nu.dtype)  # used as stored
            if n < 2:
                mu = [acc.astype(mu[0].dtype)]
            else:
                mu = [jnp.max(acc, _other_axes(i, n)).astype(m.dtype) for i, m in enumerate(mu)]
            return nu.astype(g.dtype), mu, nu

        outs = [leaf(*args) for args in zip(leaves, mus, nus, strict=True)]
        u, mu, nu = (treedef.unflatten([o[i] for o in outs]) for i in range(3))
        return u, ScaleBySM3State(mu, nu)

    return kit.block("scale_by_sm3", step, init, hyper={"b1": b1, "b2": b2, "eps": eps})


@register(
    optax="sm3",
    traits=(),
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.05, "momentum": 0.0},
        {"learning_rate": 0.2, "momentum": 0.5},
    ],
)
def sm3(learning_rate: kit.Rate, momentum: kit.Decay = 0.9) -> GradientTransformation:
    """SM3 (Anil et al. 2019), memory-efficient Adagrad: ``u = -lr * m`` with ``m`` the
    momentum of ``scale_by_sm3``'s SM3-II scaling (``m + n`` numbers per ``m x n`` matrix).

    Args:
      momentum: the momentum ``b1`` of the scaled updates (0: none).

    optax: ``optax.sm3`` (which fails on scalar leaves; its ``learning_rate`` takes no
    schedule); torch: none.

    Example:
        Without momentum, a constant gradient of 2 gives ``-lr * 2 / sqrt(4 t)``:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.sm3(learning_rate=0.1, momentum=0.0)
        >>> g = jnp.full((2, 2), 2.0, jnp.float32)
        >>> state = opt.init(g)
        >>> for _ in range(3):
        ...     updates, state = opt.update(g, state)
        ...     print(f"{updates[0, 0]:.4f}")
        -0.1000
        -0.0707
        -0.0577
    """
    return chain(scale_by_sm3(momentum), scale_by_learning_rate(learning_rate))


__all__ = [
    "FactoredState",
    "ScaleBySM3State",
    "adafactor",
    "scale_by_factored_rms",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_sm3",
    "sm3",
]
