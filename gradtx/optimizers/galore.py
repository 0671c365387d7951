"""GaLore (Zhao et al. 2024): gradient low-rank projection.  The gradient ``G`` of each matrix
is projected onto its top-``r`` singular subspace, refreshed by an SVD every ``update_proj_gap``
steps; a base optimizer (Adam by default) keeps its state in that small space, and its update is
projected back.  Other leaves get the base optimizer in full."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.optimizers.adam import scale_by_adam
from gradtx.registry import Use, matrices, register

Tree = kit.Tree
Mask = Any
Scale = Annotated[float, kit.Range("(-inf, inf)")]


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a leaf form the rows (``reduction_axis``, the input) and the columns
    (``output_axis``) of the matrix GaLore projects, e.g. ``(0, (1, 2))`` for attention weights
    stored as ``(embed, heads, head_dim)``.  optax: ``optax.contrib.GaLoreDimensionNumbers``."""

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


@kit.one_counter("count")
class GaLoreState(NamedTuple):
    """``base_optimizer_state``: the base optimizer's state on the projected gradients (full
    shape for leaves not projected); ``projector``: each matrix's ``P`` (a scalar 0 for leaves
    not projected: optax's ``(0, 0)`` array is refused by orbax, which saves no empty arrays).
    optax: ``optax.contrib.GaLoreState`` (its ``count`` is the chain's here)."""

    base_optimizer_state: Any
    projector: Tree


def _is_dims_leaf(x: Any) -> bool:
    return x is None or isinstance(x, GaLoreDimensionNumbers)


def _axes(spec: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    return (spec % ndim,) if isinstance(spec, int) else tuple(a % ndim for a in spec)


class _Matrix(NamedTuple):
    """How a leaf is seen as an ``(m, n)`` matrix and back."""

    perm: tuple[int, ...]
    shape: tuple[int, ...]  # the permuted shape
    m: int
    n: int

    @classmethod
    def of(cls, x: jax.Array, dims: GaLoreDimensionNumbers) -> _Matrix:
        if x.ndim < 2:
            raise ValueError(f"galore: needs a leaf of rank >= 2 to project, got shape {x.shape}")
        rows, cols = _axes(dims.reduction_axis, x.ndim), _axes(dims.output_axis, x.ndim)
        if set(rows) & set(cols) or len(set(rows) | set(cols)) != x.ndim:
            raise ValueError(
                f"galore: {dims} must split the axes of shape {x.shape} into two disjoint sets "
                "covering them all"
            )
        perm = rows + cols
        shape = tuple(x.shape[a] for a in perm)
        return cls(perm, shape, math.prod(shape[: len(rows)]), math.prod(shape[len(rows) :]))

    def flat(self, x: jax.Array) -> jax.Array:
        return jnp.transpose(x, self.perm).reshape(self.m, self.n)

    def unflat(self, y: jax.Array) -> jax.Array:
        inverse = sorted(range(len(self.perm)), key=self.perm.__getitem__)
        return jnp.transpose(y.reshape(self.shape), tuple(inverse))

    def left(self) -> bool:
        """Project the rows' side (``P^T G``, ``P`` of shape ``(m, r)``) when ``m >= n``."""
        return self.m >= self.n


@register(
    "block",
    optax="contrib.scale_by_galore",
    traced="scale",
    traits=(),
    examples=[
        {"rank": 2},
        {"rank": 1, "update_proj_gap": 5, "scale": 0.5},
        {"rank": 2, "update_proj_gap": 3, "base_optimizer": Use("scale_by_adam", {"b1": 0.8})},
    ],
)
def scale_by_galore(
    rank: kit.Steps = 128,
    update_proj_gap: kit.Steps = 200,
    scale: Scale = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    """GaLore's direction (Zhao et al. 2024, Algorithm 2).  For each matrix leaf ``G`` (``m x n``,
    ``r = min(rank, m, n)``), at steps ``t = 0, gap, 2 gap, ...`` (counted from 0):

        m >= n:  P = U[:, :r]  of  G = U S V^T,    R = P^T G,   u = scale * P  base(R)
        m <  n:  P = V[:, :r],                     R = G P,     u = scale * base(R) P^T

    ``P`` is kept between refreshes and the base optimizer's state lives on ``R`` (it carries
    over a refresh, as in the paper).  The SVD is taken in float32 (as the authors' code and
    optax), so ``P`` has float32 accuracy even for float64 parameters.  Leaves not projected go
    through ``base_optimizer`` in full.

    Args:
      rank: the projection's rank ``r`` (capped at ``min(m, n)``).
      update_proj_gap: the SVD is recomputed every this many steps (``T`` in the paper).
      scale: multiplies the projected-back update (the paper's ``alpha``).
      base_optimizer: a transformation that needs no params (``scale_by_adam()`` when
        ``None``); it sees the projected gradients.
      weight_dimension_numbers: which leaves are projected and how they are matrices: ``None``
        (the 2-D leaves, axis 0 as rows), one ``GaLoreDimensionNumbers`` (for every leaf of rank
        >= 2), a tree of them (``None`` for leaves left out) or a function of the params
        returning such a tree.

    optax: ``optax.contrib.scale_by_galore`` (same arguments, state and numbers; the projections
    of a bfloat16/float16 leaf are computed in float32 and rounded once).  torch: none.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_galore(rank=1, base_optimizer=gradtx.identity())
        >>> g = jnp.array([[3.0, 0.0], [0.0, 1.0]])  # rank 1 keeps the top singular direction
        >>> u, state = tx.update(g, tx.init(g))
        >>> print(jnp.abs(u))
        [[3. 0.]
         [0. 0.]]
    """
    base = chain(scale_by_adam() if base_optimizer is None else base_optimizer)
    r_max, gap = int(rank), int(update_proj_gap)

    def dims_of(tree: Tree) -> list[GaLoreDimensionNumbers | None]:
        spec = weight_dimension_numbers
        treedef = jax.tree.structure(tree)
        if spec is None:
            return [GaLoreDimensionNumbers() if jnp.ndim(x) == 2 else None
                    for x in jax.tree.leaves(tree)]  # fmt: skip
        if isinstance(spec, GaLoreDimensionNumbers):
            return [spec if jnp.ndim(x) >= 2 else None for x in jax.tree.leaves(tree)]
        if callable(spec):
            spec = spec(tree)
        return treedef.flatten_up_to(spec)

    def init(params):
        leaves, treedef = jax.tree.flatten(params)
        if not leaves:
            return GaLoreState(base.init(params), params)
        projectors, proxies = [], []
        for p, d in zip(leaves, dims_of(params), strict=True):
            if d is None:
                projectors.append(jnp.zeros((), p.dtype))
                proxies.append(jnp.zeros_like(p))
                continue
            mat = _Matrix.of(p, d)
            r = min(r_max, mat.m, mat.n)
            outer = mat.m if mat.left() else mat.n
            projectors.append(jnp.zeros((outer, r), p.dtype))
            proxies.append(jnp.zeros((r, mat.n) if mat.left() else (mat.m, r), p.dtype))
        return GaLoreState(base.init(treedef.unflatten(proxies)), treedef.unflatten(projectors))

    def step(updates, state, params, h):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        if not leaves:
            return updates, state
        refresh = h.count % gap == 0
        dims = dims_of(updates)
        old = treedef.flatten_up_to(state.projector)
        mats, projectors, low = [], [], []
        for g, p_old, d in zip(leaves, old, dims, strict=True):
            if d is None:
                mats.append(None)
                projectors.append(p_old)
                low.append(g)
                continue
            mat = _Matrix.of(g, d)
            g2 = mat.flat(g)
            r, left = min(r_max, mat.m, mat.n), mat.left()

            def fresh(g2=g2, r=r, left=left, dtype=p_old.dtype):
                u, _, vh = jnp.linalg.svd(g2.astype(jnp.float32), full_matrices=False)
                return (u[:, :r] if left else vh[:r, :].T).astype(dtype)

            p = kit.when(refresh, fresh, lambda p_old=p_old: p_old)
            wide = kit.compute_dtype(g)
            pw, gw = p.astype(wide), g2.astype(wide)
            low.append((pw.T @ gw if left else gw @ pw).astype(g.dtype))
            mats.append(mat)
            projectors.append(p)
        out, base_state = base.update(treedef.unflatten(low), state.base_optimizer_state, None,
                                      **h.extra)  # fmt: skip
        full = []
        for g, o, p, mat in zip(leaves, treedef.flatten_up_to(out), projectors, mats, strict=True):
            if mat is None:
                full.append(o)
                continue
            wide = kit.compute_dtype(g)
            pw, ow = p.astype(wide), o.astype(wide)
            back = pw @ ow if mat.left() else ow @ pw.T
            full.append((kit.scalar(h.scale, back) * mat.unflat(back)).astype(g.dtype))
        return treedef.unflatten(full), GaLoreState(base_state, treedef.unflatten(projectors))

    return kit.block("scale_by_galore", step, init, hyper={"scale": scale})


@register(
    optax="contrib.galore",
    traits=(),
    examples=[
        {"learning_rate": 0.1, "rank": 2},
        {
            "learning_rate": 0.05,
            "rank": 1,
            "update_proj_gap": 4,
            "scale": 0.25,
            "base_optimizer": Use("scale_by_rms", {"decay": 0.9}),
            "weight_decay": 0.01,
            "mask": matrices,
        },
    ],
)
def galore(
    learning_rate: kit.Rate,
    rank: kit.Steps = 128,
    update_proj_gap: kit.Steps = 200,
    scale: Scale = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_decay: kit.NonNegative = 0.0,
    mask: Mask = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    """GaLore (Zhao et al. 2024): ``scale_by_galore`` (Adam in each matrix's top-``rank``
    singular subspace, refreshed every ``update_proj_gap`` steps), then decoupled weight decay in
    the full space and the learning rate:

        w <- w - lr (scale * P base(P^T G) + weight_decay w)   (m >= n; G P, P^T on the right else)

    Args:
      rank: the projection's rank (capped at each matrix's smaller side).
      update_proj_gap: steps between the SVD refreshes of the projections.
      scale: multiplies the projected-back update (the paper's ``alpha``).
      base_optimizer: the optimizer run in the projected space (``scale_by_adam()`` when
        ``None``); it must not need params: give weight decay here, not to it.
      weight_decay: decoupled weight decay, applied in the full space.
      mask: which leaves get weight decay (a tree of bools or a function of the params).
      weight_dimension_numbers: which leaves are projected, as in ``scale_by_galore``.

    optax: ``optax.contrib.galore`` (same arguments and numbers).  torch: none (``galore-torch``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import gradtx
        >>> f = lambda p: jnp.sum(jnp.square(p["w"])) + jnp.sum(jnp.square(p["b"]))
        >>> params = {"w": jnp.ones((8, 6)), "b": jnp.ones(6)}
        >>> opt = gradtx.contrib.galore(learning_rate=0.1, rank=2)
        >>> state = opt.init(params)
        >>> print(gradtx.tree_get(state, "projector")["w"].shape)  # P of the 8 x 6 matrix
        (8, 2)
        >>> for _ in range(3):
        ...     updates, state = opt.update(jax.grad(f)(params), state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(round(float(f(params)), 2))  # from 54
        41.34
    """
    return chain(
        scale_by_galore(rank, update_proj_gap, scale, base_optimizer, weight_dimension_numbers),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["GaLoreDimensionNumbers", "GaLoreState", "galore", "scale_by_galore"]
