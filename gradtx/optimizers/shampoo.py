"""Shampoo (Gupta et al. 2018) as scaled up by Anil et al. 2020 ("Scalable Second Order
Optimization for Deep Learning"): full-matrix AdaGrad approximated by one factor per tensor
axis, ``G <- G x_i (L_i + r I)^(-1/p)`` with ``L_i`` the moving average of ``G_(i) G_(i)^T`` and
``p = 2 x (number of factors)``, on blocks of at most ``block_size``, grafted onto the
per-leaf step size of a diagonal method.

Notation: ``g`` the incoming update, ``t = count + 1`` the 1-based step.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.optimizers import kronecker as kr
from gradtx.registry import register

Tree = kit.Tree
Size = Annotated[int, kit.Range("[0, inf)", integer=True)]
"""A whole number >= 0 (static: it shapes the state or the computation)."""
Graft = Literal[
    "sgd", "adagrad", "rmsprop", "adam", "rmsprop_normalized", "adagrad_normalized", "sqrt_n"
]
GRAFTS = ("sgd", "adagrad", "rmsprop", "adam", "rmsprop_normalized", "adagrad_normalized", "sqrt_n")


class ShampooState(NamedTuple):
    """Laid out like the params; per leaf ``statistics`` and ``preconditioners`` hold, per block
    shape (part), per axis, a stack ``(N, d, d)`` of the ``N`` blocks' factors (``None`` for an
    axis without one, ``()`` for a leaf without any); ``diagonal_statistics`` is the graft's
    accumulator (``None`` for ``sgd``/``sqrt_n``); the two momenta are the graft's (used
    before ``start_preconditioning_step``) and Shampoo's."""

    statistics: Tree
    preconditioners: Tree
    diagonal_statistics: Tree
    diagonal_momentum: Tree
    momentum: Tree


def _graft(kind: str, g, d, h, count, clip):
    """The diagonal method whose per-leaf step size Shampoo takes: ``(step, new accumulator)``."""
    if kind == "sgd":
        return g, d
    if kind == "sqrt_n":
        return jnp.sign(g), d
    if kind.endswith("_normalized"):
        g = g / (jnp.linalg.norm(g) + 1e-16)
    if kind.startswith("adagrad"):
        d = d + g * g
        return g / (jnp.sqrt(d) + h.diagonal_epsilon), d
    keep = jnp.where(h.b2 == 1, 1, 1 - h.b2)
    d = h.b2 * d + keep * g * g
    if kind == "adam":  # bias-corrected RMSprop: Adam whose first moment is Shampoo's momentum
        return g / (jnp.sqrt(d / kit.one_minus_power(h.b2, count + 1, g)) + h.diagonal_epsilon), d
    step = g / (jnp.sqrt(d) + h.diagonal_epsilon)
    if clip is not None:
        rms = jnp.linalg.norm(step) / jnp.sqrt(float(step.size))
        step = step / jnp.maximum(1.0, rms / h.clip_by_scaled_gradient_norm)
    return step, d


@register(
    "block",
    optax=None,
    traits=(),
    traced="b1",
    examples=[
        {"block_size": 3, "root_method": "eigh", "graft_type": "adagrad"},
        {
            "block_size": 2,
            "b1": 0.5,
            "b2": 0.9,
            "graft_type": "adagrad",
            "start_preconditioning_step": 2,
            "best_effort_shape_interpretation": False,
            "nesterov": False,
            "weight_decay": 0.01,
            "exponent_override": 2,
        },
        {
            "block_size": 8,
            "graft_type": "rmsprop_normalized",
            "preconditioning_compute_steps": 3,
            "statistics_compute_steps": 2,
            "best_effort_shape_interpretation": False,
            "preconditioner_type": "input",
            "moving_average_for_momentum": True,
            "relative_matrix_epsilon": False,
            "matrix_epsilon": 1e-3,
            "skip_preconditioning_rank_lt": 0,
        },
        {
            "block_size": 0,
            "graft_type": "rmsprop",
            "clip_by_scaled_gradient_norm": 0.5,
            "root_method": "newton",
            "root_tolerance": 1e-12,
            "skip_preconditioning_dim_size_gt": 3,
        },
        {"block_size": 4, "graft_type": "adam", "b2": 0.95, "root_method": "newton"},
        {"block_size": 2, "graft_type": "sqrt_n", "merge_small_dims_block_size": 2, "b2": 1.0},
    ],
)
def scale_by_shampoo(
    block_size: Size = 128,
    b1: kit.Decay = 0.9,
    b2: kit.Fraction = 0.999,
    diagonal_epsilon: kit.NonNegative = 1e-10,
    matrix_epsilon: kit.NonNegative = 1e-6,
    weight_decay: kit.NonNegative = 0.0,
    start_preconditioning_step: Size = 5,
    preconditioning_compute_steps: kit.Steps = 1,
    statistics_compute_steps: kit.Steps = 1,
    merge_small_dims_block_size: Size = 4096,
    best_effort_shape_interpretation: bool = True,
    graft_type: Graft = "sgd",
    nesterov: bool = True,
    exponent_override: Size = 0,
    moving_average_for_momentum: bool = False,
    skip_preconditioning_dim_size_gt: Size = 4096,
    skip_preconditioning_rank_lt: Size = 1,
    clip_by_scaled_gradient_norm: kit.Positive | None = None,
    relative_matrix_epsilon: bool = True,
    preconditioner_type: Literal["all", "input"] = "all",
    inverse_failure_threshold: kit.NonNegative = 0.1,
    root_method: Literal["eigh", "newton"] = "newton",
    root_dtype: Any = None,
    root_tolerance: kit.NonNegative = 1e-6,
    root_iterations: kit.Steps = 100,
    statistics_dtype: Any = None,
) -> GradientTransformation:
    """Scalable Shampoo's direction (Anil et al. 2020, the authors' ``distributed_shampoo``).

    Each leaf is reshaped (with ``best_effort_shape_interpretation``, neighbouring axes merged
    while their product stays <= ``merge_small_dims_block_size``) and cut into blocks of at
    most ``block_size`` per axis.
    Every block keeps, per axis ``i``, ``L_i = b2 L_i + (1 - b2) G_(i) G_(i)^T`` (from ``L_i =
    matrix_epsilon I``; ``b2 = 1``: a sum), and every ``preconditioning_compute_steps`` steps
    ``P_i = (L_i + r I)^(-1/p)``, ``r = matrix_epsilon * max(lambda_max(L_i), 1e-6)``
    (``relative_matrix_epsilon``, else ``matrix_epsilon``), ``p = 2 x (number of factors)`` or
    ``exponent_override`` (a new ``P_i`` is kept unless its error is ``>=
    inverse_failure_threshold`` or NaN).  Then, per leaf, with ``a`` the graft's step,
    ``s = (G x_i P_i) ||a|| / (||G x_i P_i|| + 1e-16) + wd p`` and ``a' = a + wd p``;
    ``M = b1 M + w s``, ``M_a = b1 M_a + w a'`` (``w = 1 - b1`` with
    ``moving_average_for_momentum``, else 1), and the direction is ``M`` (``M_a`` while ``t - 1 <
    start_preconditioning_step``), or with ``nesterov`` ``w s + b1 M`` (``w a' + b1 M_a``).

    The inverse roots of all leaves are computed together, one batched call per matrix size,
    only on the steps that refresh them (under ``lax.cond``).

    Args:
      block_size: the largest block along any axis (0: the whole axis); the cost of a root is
        cubic in it.
      b2: decay of the factors ``L_i`` (and of the ``rmsprop``/``adam`` grafts); 1: sums.
      diagonal_epsilon: the graft's epsilon, added to ``sqrt`` of its accumulator.
      matrix_epsilon: the ridge of the roots (relative to ``lambda_max`` with
        ``relative_matrix_epsilon``), also the factors' starting value ``matrix_epsilon I``.
      weight_decay: coupled weight decay ``wd p`` added before the momentum (needs params).
      start_preconditioning_step: steps that use the graft's direction before Shampoo's.
      preconditioning_compute_steps: recompute the roots every this many steps (from the first).
      statistics_compute_steps: update the factors every this many steps.
      merge_small_dims_block_size: merge neighbouring axes while their product stays <= this.
      best_effort_shape_interpretation: merge as above (the reference's switch); off: the
        leaf's own axes.
      graft_type: the diagonal method whose per-leaf step size Shampoo's direction takes:
        ``"sgd"`` (``g``), ``"adagrad"`` (``g / (sqrt(sum g^2) + eps)``), ``"rmsprop"`` (the same
        with a ``b2`` moving average), ``"adam"`` (RMSprop bias-corrected by ``1 - b2^t``),
        ``"*_normalized"`` (on ``g / (||g|| + 1e-16)``), ``"sqrt_n"`` (``sign(g)``).
      exponent_override: ``p`` for every root (0: ``2 x`` the number of factors).
      moving_average_for_momentum: ``w = 1 - b1`` (an average) instead of 1 (a sum).
      skip_preconditioning_dim_size_gt: leaves with a larger axis take the graft's direction
        (the large-dimension fallback to a diagonal method).
      skip_preconditioning_rank_lt: leaves of a lower rank take the graft's direction.
      clip_by_scaled_gradient_norm: with an RMSprop graft, the largest RMS of its step.
      relative_matrix_epsilon: scale the ridge by ``lambda_max`` (see above).
      preconditioner_type: ``"all"`` axes, or ``"input"``: all but the last (one-sided).
      inverse_failure_threshold: roots with a larger error are discarded (the old one is kept).
      root_method: ``"newton"`` (default): the reference's coupled Newton iteration, with
        ``lambda_max`` from its power iteration (forward-mode differentiable only);
        ``"eigh"``: ``Q diag((lambda + r)^(-1/p)) Q^T`` with the exact ``lambda_max``
        (reverse-mode differentiable, for meta-gradients through a run).
      root_dtype: precision of the roots (``None``: the widest of float32 and the factors').
      root_tolerance: the Newton iteration stops below this error ``max|M - I|``.
      root_iterations: the most Newton iterations.
      statistics_dtype: storage dtype of the factors and roots (``None``: the params'; a
        half-precision model does better with ``jnp.float32``).

    The reference's exact numbers: the defaults with ``root_dtype=jnp.float64`` (its choice
    where float64 is enabled; float32 roots otherwise, as here).  Its
    ``decoupled_weight_decay`` (which multiplies the decay by the learning rate twice) is not
    offered; use ``shampoo(decoupled_weight_decay=True)``.
    The ``"adam"`` graft is gradtx's (as in later PyTorch Shampoo).  optax: none; torch: none.

    Example:
        A ``(4, 4)`` matrix in blocks of 2: four blocks, each with two ``2 x 2`` factors,
        stacked per axis; every leaf's direction keeps the graft's (here SGD's) norm:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_shampoo(block_size=2, best_effort_shape_interpretation=False,
        ...                              start_preconditioning_step=0, nesterov=False)
        >>> g = jnp.arange(16.0, dtype=jnp.float32).reshape(4, 4)
        >>> state = tx.init(g)
        >>> print([s.shape for s in gradtx.tree_get(state, "statistics")[0]])
        [(4, 2, 2), (4, 2, 2)]
        >>> u, state = tx.update(g, state)
        >>> print(round(float(jnp.linalg.norm(u)), 3), round(float(jnp.linalg.norm(g)), 3))
        35.214 35.214
    """
    where = "scale_by_shampoo"
    if graft_type not in GRAFTS:
        raise ValueError(f"{where}: graft_type={graft_type!r} is unknown; allowed: {list(GRAFTS)}")
    if root_method not in ("eigh", "newton"):
        raise ValueError(f"{where}: root_method={root_method!r} is unknown; allowed: eigh, newton")
    if preconditioner_type not in ("all", "input"):
        raise ValueError(f"{where}: preconditioner_type={preconditioner_type!r} is unknown")
    diagonal = graft_type not in ("sgd", "sqrt_n")

    def factored(size: tuple[int, ...]) -> tuple[bool, ...]:
        one_sided = preconditioner_type == "input" and len(size) > 1
        return tuple(not (one_sided and i == len(size) - 1) for i in range(len(size)))

    def skipped(shape: tuple[int, ...]) -> bool:
        return len(shape) < skip_preconditioning_rank_lt or any(
            d > skip_preconditioning_dim_size_gt for d in shape
        )

    @functools.cache
    def layout_of(shape: tuple[int, ...]) -> kr.Layout:
        merge = merge_small_dims_block_size if best_effort_shape_interpretation else None
        if skipped(shape):
            return kr.layout(shape, merge=merge, factored=lambda size: (False,) * len(size))
        return kr.layout(shape, merge=merge, block_size=block_size or None, factored=factored)

    def exponent(lay: kr.Layout) -> int:
        return exponent_override or 2 * sum(lay.factored[0])

    def stats_dtype(p: Any) -> Any:
        return jnp.dtype(statistics_dtype) if statistics_dtype is not None else jnp.result_type(p)

    def init(params):
        eps0 = kit.resolve(matrix_epsilon, jnp.zeros([], jnp.int32))

        def one(p):
            lay, dt = layout_of(jnp.shape(p)), stats_dtype(p)
            stats = kr.factor_tree(lay, lambda c, d: kr.stacked_eye(c, d, dt, eps0).astype(dt))
            roots = kr.factor_tree(lay, lambda c, d: kr.stacked_eye(c, d, dt))
            return stats, roots

        pairs = jax.tree.map(one, params)
        is_pair = lambda x: isinstance(x, tuple) and len(x) == 2 and not hasattr(x, "_fields")
        first = jax.tree.map(lambda x: x[0], pairs, is_leaf=is_pair)
        second = jax.tree.map(lambda x: x[1], pairs, is_leaf=is_pair)
        return ShampooState(
            first,
            second,
            jax.tree.map(lambda p: jnp.zeros_like(p) if diagonal else None, params),
            kit.zeros_like(params),
            kit.zeros_like(params),
        )

    def step(updates, state, params, h):
        leaves, treedef = jax.tree.flatten(updates)
        kit.check_match(where, "updates", updates, "momentum", state.momentum)
        stats = treedef.flatten_up_to(state.statistics)
        roots = treedef.flatten_up_to(state.preconditioners)
        diag = treedef.flatten_up_to(state.diagonal_statistics)
        mg, ms = jax.tree.leaves(state.diagonal_momentum), jax.tree.leaves(state.momentum)
        ps = jax.tree.leaves(params) if params is not None else [None] * len(leaves)
        lays = [layout_of(jnp.shape(g)) for g in leaves]
        c = h.count

        # 1. the factors, from this step's gradient blocks (in the leaf's wide precision)
        blocks, new_stats = [], []
        for g, lay, s in zip(leaves, lays, stats, strict=True):
            k = jnp.promote_types(jnp.float32, g.dtype)
            xb = kr.to_blocks(g.astype(k), lay) if lay.has_factors else None
            blocks.append(xb)
            new_stats.append(_updated(s, xb, h, k) if xb is not None else s)
        if statistics_compute_steps > 1:
            fresh = new_stats
            new_stats = kr.when(c % statistics_compute_steps == 0, lambda: fresh, lambda: stats)

        # 2. the roots of every factor of every leaf, batched, on the steps that refresh them
        flat_stats, flat_roots = kr.flat_factors(new_stats), kr.flat_factors(roots)
        powers = [exponent(lay) for lay, s in zip(lays, new_stats, strict=True)
                  for m in kr.flat_factors([s])]  # fmt: skip

        def refreshed():
            def one(a, p):
                return kr.inverse_roots(a, p, h.matrix_epsilon, h.root_tolerance,
                                        relative=relative_matrix_epsilon, method=root_method,
                                        dtype=root_dtype, num_iters=root_iterations)  # fmt: skip

            out = kr.grouped(one, flat_stats, powers)
            kept = []
            for (root, err), old in zip(out, flat_roots, strict=True):
                bad = jnp.isnan(err) | (err >= h.inverse_failure_threshold)
                kept.append(jnp.where(bad[:, None, None], old, root.astype(old.dtype)))
            return kept

        if not flat_stats:
            new_flat = flat_roots
        elif preconditioning_compute_steps == 1:
            new_flat = refreshed()
        else:
            perform = c % preconditioning_compute_steps == 0
            new_flat = kr.when(perform, refreshed, lambda: list(flat_roots))
        new_roots = kr.unflatten_factors(roots, new_flat)

        # 3. per leaf: precondition, graft, weight decay, momentum
        outs = []
        for i, g in enumerate(leaves):
            outs.append(
                _direction(g, blocks[i], lays[i], new_roots[i], diag[i], mg[i], ms[i], ps[i], h, c)
            )
        u, d_new, mg_new, ms_new = (treedef.unflatten([o[j] for o in outs]) for j in range(4))
        return u, ShampooState(
            treedef.unflatten(new_stats), treedef.unflatten(new_roots), d_new, mg_new, ms_new
        )

    def _updated(s, xb, h, k):
        keep = jnp.where(h.b2 == 1, 1, 1 - h.b2)
        return tuple(
            tuple(None if m is None else
                  (h.b2 * m.astype(k) + keep * kr.gram(x, a)).astype(m.dtype)
                  for a, m in enumerate(part))
            for x, part in zip(xb, s, strict=True)
        )  # fmt: skip

    def _direction(g, xb, lay, root, d, mg, ms, p, h, c):
        k = jnp.promote_types(jnp.float32, jnp.result_type(g, mg, ms, *([d] if diagonal else [])))
        gk = g.astype(k)
        graft, d_new = _graft(graft_type, gk, None if d is None else d.astype(k), h, c,
                              clip_by_scaled_gradient_norm)  # fmt: skip
        if skipped(jnp.shape(g)):
            pre = graft
        elif xb is None:
            pre = gk
        else:
            mats = [tuple(None if m is None else m.astype(k) for m in part) for part in root]
            pre = kr.from_blocks([kr.along(x, m) for x, m in zip(xb, mats, strict=True)], lay)
        s = pre * (jnp.linalg.norm(graft) / (jnp.linalg.norm(pre) + 1e-16))
        a = graft
        if p is not None:  # also for a zero decay: the same program whatever its value's type
            s, a = s + h.weight_decay * p.astype(k), a + h.weight_decay * p.astype(k)
        w = 1 - h.b1 if moving_average_for_momentum else 1.0
        ms_new = (h.b1 * ms.astype(k) + w * s).astype(ms.dtype)
        mg_new = (h.b1 * mg.astype(k) + w * a).astype(mg.dtype)
        run = c >= start_preconditioning_step
        mom = jnp.where(run, ms_new.astype(k), mg_new.astype(k))
        if nesterov:
            mom = w * jnp.where(run, s, a) + h.b1 * mom
        d_out = None if d is None else d_new.astype(d.dtype)
        return mom.astype(g.dtype), d_out, mg_new, ms_new

    hyper = {
        "b1": b1,
        "b2": b2,
        "diagonal_epsilon": diagonal_epsilon,
        "matrix_epsilon": matrix_epsilon,
        "weight_decay": weight_decay,
        "clip_by_scaled_gradient_norm": clip_by_scaled_gradient_norm,
        "inverse_failure_threshold": inverse_failure_threshold,
        "root_tolerance": root_tolerance,
    }
    return kit.block(where, step, init, hyper=hyper, needs_params=not kit.is_zero(weight_decay))


@register(
    optax=None,
    traits=(),
    examples=[
        {"learning_rate": 0.1, "block_size": 3, "root_method": "eigh"},
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "block_size": 2,
            "graft_type": "rmsprop",
            "weight_decay": 0.05,
            "decoupled_weight_decay": True,
            "start_preconditioning_step": 1,
        },
        {"learning_rate": 0.05, "graft_type": "adagrad", "weight_decay": 0.01, "b1": 0.8},
    ],
)
def shampoo(
    learning_rate: kit.Rate,
    block_size: Size = 128,
    b1: kit.Decay = 0.9,
    b2: kit.Fraction = 0.999,
    diagonal_epsilon: kit.NonNegative = 1e-10,
    matrix_epsilon: kit.NonNegative = 1e-6,
    weight_decay: kit.NonNegative = 0.0,
    start_preconditioning_step: Size = 5,
    preconditioning_compute_steps: kit.Steps = 1,
    statistics_compute_steps: kit.Steps = 1,
    best_effort_shape_interpretation: bool = True,
    graft_type: Graft = "sgd",
    nesterov: bool = True,
    exponent_override: Size = 0,
    inverse_failure_threshold: kit.NonNegative = 0.1,
    moving_average_for_momentum: bool = False,
    skip_preconditioning_dim_size_gt: Size = 4096,
    clip_by_scaled_gradient_norm: kit.Positive | None = None,
    relative_matrix_epsilon: bool = True,
    merge_small_dims_block_size: Size = 4096,
    preconditioner_type: Literal["all", "input"] = "all",
    skip_preconditioning_rank_lt: Size = 1,
    decoupled_weight_decay: bool = False,
    root_method: Literal["eigh", "newton"] = "newton",
    root_dtype: Any = None,
    root_tolerance: kit.NonNegative = 1e-6,
    root_iterations: kit.Steps = 100,
    statistics_dtype: Any = None,
) -> GradientTransformation:
    """Scalable Shampoo (Anil et al. 2020): ``u = -lr * d`` with ``d`` the direction of
    ``scale_by_shampoo`` (blocked Kronecker-factored preconditioning grafted onto a diagonal
    method's step size, with momentum); with ``decoupled_weight_decay`` the decay is
    ``u = -lr * (d + wd p)`` instead of being added before the momentum.

    Args:
      block_size: the largest block along any axis (0: none).
      b2: decay of the factors (and of an RMSprop/Adam graft); 1: sums (AdaGrad-like).
      diagonal_epsilon: the graft's epsilon.
      matrix_epsilon: the ridge of the inverse roots (relative to ``lambda_max`` by default).
      start_preconditioning_step: steps that use the graft's own direction first.
      preconditioning_compute_steps: recompute the inverse roots every this many steps.
      statistics_compute_steps: update the factors every this many steps.
      best_effort_shape_interpretation: merge small neighbouring axes (see
        ``merge_small_dims_block_size``) before blocking.
      graft_type: ``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"rmsprop_normalized"``,
        ``"adagrad_normalized"`` or ``"sqrt_n"`` (see ``scale_by_shampoo``).
      exponent_override: ``p`` of every root (0: twice the number of factors of the block).
      inverse_failure_threshold: a new root whose error is at least this is discarded.
      moving_average_for_momentum: momentum as an average (``1 - b1`` weight) not a sum.
      skip_preconditioning_dim_size_gt: leaves with a longer axis take the graft's direction.
      clip_by_scaled_gradient_norm: with an RMSprop graft, the largest RMS of its step.
      relative_matrix_epsilon: scale the ridge by the factor's largest eigenvalue.
      merge_small_dims_block_size: merge neighbouring axes while their product stays <= this.
      preconditioner_type: ``"all"`` axes or ``"input"`` (all but the last: one-sided).
      skip_preconditioning_rank_lt: leaves of a lower rank take the graft's direction.
      decoupled_weight_decay: decay outside the momentum, ``-lr * wd * p`` (the reference's
        option multiplies it by the learning rate a second time; this does not).
      root_method: ``"newton"`` (the reference's coupled Newton iteration) or ``"eigh"``.
      root_dtype: precision of the inverse roots (``None``: the widest of float32 and the
        factors'; ``jnp.float64`` is the reference's choice where x64 is on).
      root_tolerance: the Newton iteration stops below this error ``max|M - I|``.
      root_iterations: the most Newton iterations.
      statistics_dtype: storage dtype of the factors and roots (``None``: the params').

    The authors' ``distributed_shampoo(learning_rate, block_size, ...)`` with the same
    defaults and names (``beta1``/``beta2`` are ``b1``/``b2``); optax: none; torch: none.

    Example:
        An ill-conditioned quadratic, Shampoo grafted onto AdaGrad's step sizes:

        >>> import jax, jax.numpy as jnp
        >>> import gradtx
        >>> a = jnp.diag(jnp.array([100.0, 1.0, 0.01]))
        >>> loss = lambda w: 0.5 * jnp.sum(w @ a * w)
        >>> opt = gradtx.shampoo(learning_rate=0.1, graft_type="adagrad",
        ...                      start_preconditioning_step=1)
        >>> w0 = jnp.arange(1.0, 13.0).reshape(4, 3) / 12
        >>> w, state = w0, opt.init(w0)
        >>> for _ in range(50):
        ...     u, state = opt.update(jax.grad(loss)(w), state, w)
        ...     w = w + u
        >>> print(float(loss(w)) < 1e-3 * float(loss(w0)))
        True
    """
    wd = 0.0 if decoupled_weight_decay else weight_decay  # decoupled: a block of its own
    direction = scale_by_shampoo(**kit.arguments_for(scale_by_shampoo, locals(), weight_decay=wd))
    blocks = [direction]
    if decoupled_weight_decay:
        blocks.append(add_decayed_weights(weight_decay))
    blocks.append(scale_by_learning_rate(learning_rate))
    return chain(*blocks)


__all__ = ["ShampooState", "scale_by_shampoo", "shampoo"]
