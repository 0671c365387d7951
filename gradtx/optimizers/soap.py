"""SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam run in the
eigenbasis of Shampoo's Kronecker factors, the basis refreshed every few steps by one step of
power iteration and a QR decomposition, as the authors' PyTorch code (``soap.py`` of
github.com/nikhilvyas/SOAP) does it.

Notation: ``g`` the incoming update, ``c`` the number of completed steps (``c = 0`` on the first
update, which only builds the factors and the first basis), ``s = c`` the number of Adam steps
taken including this one.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import scale_by_learning_rate
from gradtx.optimizers import kronecker as kr
from gradtx.registry import register

Tree = kit.Tree
Size = Annotated[int, kit.Range("[0, inf)", integer=True)]
"""A whole number >= 0 (static: it shapes the state or the computation)."""


class SoapState(NamedTuple):
    """Laid out like the params.  Per leaf, ``factors`` (Shampoo's ``GG``: per block shape, per
    axis, a stack ``(N, d, d)`` for the ``N`` blocks, ``None`` for an unrotated axis) and
    ``bases`` (their eigenbases ``Q``, same layout); ``mu`` and ``nu``, Adam's moments, are kept
    in the rotated coordinates, laid back into the leaf's shape (so they shard like it)."""

    factors: Tree
    bases: Tree
    mu: Tree
    nu: Tree


def _take(x: jax.Array, order: jax.Array, axis: int) -> jax.Array:
    """Block ``n`` of the stack ``x`` ``(N, *size)`` permuted along ``axis`` by ``order[n]``."""
    shape = [1] * x.ndim
    shape[0], shape[axis + 1] = order.shape
    return jnp.take_along_axis(x, jnp.broadcast_to(jnp.reshape(order, shape), x.shape), axis + 1)


@register(
    "block",
    optax=None,
    traits=(),
    traced="b1",
    examples=[
        {"precondition_frequency": 4, "eps": 1e-3},
        {
            "b1": 0.9,
            "b2": 0.99,
            "shampoo_beta": 0.9,
            "precondition_frequency": 3,
            "precondition_1d": True,
            "complete_basis": True,
            "normalize_grads": True,
            "correct_bias": False,
        },
        {"precondition_frequency": 12, "merge_dims": True, "complete_basis": True},
        {"precondition_frequency": 5, "max_precond_dim": 3, "eps": 1e-3},
        {"precondition_frequency": 2, "block_size": 2, "one_sided": True},
    ],
)
def scale_by_soap(
    b1: kit.Decay = 0.95,
    b2: kit.Decay = 0.95,
    shampoo_beta: kit.Decay | None = None,
    eps: kit.NonNegative = 1e-8,
    precondition_frequency: kit.Steps = 10,
    max_precond_dim: kit.Steps = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    data_format: Literal["channels_first", "channels_last"] = "channels_first",
    correct_bias: bool = True,
    one_sided: bool = False,
    block_size: Size = 0,
    complete_basis: bool = False,
    basis_dtype: Any = None,
    statistics_dtype: Any = None,
) -> GradientTransformation:
    """SOAP's direction: Adam in the eigenbasis of Shampoo's factors (Vyas et al. 2024).

    Each leaf (permuted NHWC -> NCHW with ``data_format="channels_last"`` and ``merge_dims``,
    neighbouring axes merged while their product stays <= ``max_precond_dim`` with
    ``merge_dims``, cut into blocks of at most ``block_size``) keeps per rotated axis ``i`` a
    factor ``GG_i = sb GG_i + (1 - sb) G_(i) G_(i)^T`` (``sb = shampoo_beta``, default ``b2``) and
    its eigenbasis ``Q_i``.  On the first update (``c = 0``) ``GG_i = (1 - sb) G_(i) G_(i)^T``,
    ``Q_i`` its eigenvectors by descending eigenvalue, and the direction is 0.  Then, with
    ``G' = G x_i Q_i`` (``Q_i^T`` applied along axis ``i``):

    ``m = b1 m + (1 - b1) G'``, ``v = b2 v + (1 - b2) G'^2``,
    ``d = (m / (sqrt(v) + eps)) x_i Q_i^T``, ``d <- d / (1e-30 + rms(d))`` (``normalize_grads``),
    ``u = d sqrt(1 - b2^s) / (1 - b1^s)`` (``correct_bias``, else ``u = d``).

    After the direction the factors take ``G``; every ``precondition_frequency`` Adam steps
    (``s % precondition_frequency == 0``) each ``Q_i`` is refreshed: its columns sorted by
    ``diag(Q_i^T GG_i Q_i)`` (descending; ``v`` is permuted with them), then ``Q_i <- qr(GG_i
    Q_i)``, and ``m`` is carried into the new basis.  Axes longer than ``max_precond_dim``, and
    vectors unless ``precondition_1d``, stay unrotated (plain Adam there).

    Args:
      shampoo_beta: decay of the factors ``GG_i`` (``None``: ``b2``; the authors' ``-1``).
      precondition_frequency: refresh the eigenbases every this many Adam steps.
      max_precond_dim: the longest axis that is rotated (and the cap of merged axes).
      merge_dims: merge neighbouring small axes before rotating (a conv kernel's spatial axes).
      precondition_1d: rotate vectors too (a ``d x d`` factor each).
      normalize_grads: divide each leaf's direction by its RMS.
      data_format: ``"channels_last"`` reads a 4-D leaf as NHWC when merging (as the authors).
      correct_bias: Adam's bias correction ``sqrt(1 - b2^s) / (1 - b1^s)``.
      one_sided: rotate only the shortest axis of each block of rank >= 2 (the paper's
        one-sided SOAP: one factor, less memory).
      block_size: cut axes longer than this into blocks with their own factors (0: none;
        gradtx's option, the authors' code has none).
      complete_basis: where the first factor is rank-deficient, fill its null space with a
        deterministic basis instead of whatever ``eigh`` returns (see
        ``kronecker.eigenbasis``); the authors' code has the arbitrary one.
      basis_dtype: precision of ``eigh``/QR (``None``: the widest of float32 and the factors';
        the authors' code uses float32 whatever the params).
      statistics_dtype: storage dtype of the factors and bases (``None``: the params').

    optax: none; torch: none (the authors' ``SOAP(params, lr, betas=(b1, b2), ...)``, whose
    ``weight_decay`` is ``soap``'s).

    Example:
        A ``(4, 6)`` matrix: two factors, ``4 x 4`` and ``6 x 6``, and their bases; the first
        update only builds them:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_soap()
        >>> g = jnp.arange(24.0).reshape(4, 6) / 24
        >>> state = tx.init(g)
        >>> print([q.shape for q in gradtx.tree_get(state, "bases")[0]])
        [(1, 4, 4), (1, 6, 6)]
        >>> u, state = tx.update(g, state)
        >>> print(float(jnp.abs(u).max()))
        0.0
        >>> u, state = tx.update(g, state)
        >>> print(round(float(jnp.abs(u).max()), 3))
        0.503
    """
    where = "scale_by_soap"
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"{where}: data_format={data_format!r} is unknown")
    frequency = precondition_frequency

    @functools.cache
    def layout_of(shape: tuple[int, ...]) -> kr.Layout:
        rank = len(shape)
        last = data_format == "channels_last" and merge_dims and rank == 4
        merge = max_precond_dim if merge_dims and rank > 1 else None

        def factored(size: tuple[int, ...]) -> tuple[bool, ...]:
            if rank == 1:
                return (precondition_1d and size[0] <= max_precond_dim,)
            flags = [d <= max_precond_dim for d in size]
            if one_sided and len(size) > 1:
                shortest = min(range(len(size)), key=lambda i: size[i])
                flags = [f and i == shortest for i, f in enumerate(flags)]
            return tuple(flags)

        perm = (0, 3, 1, 2) if last else None
        return kr.layout(shape, merge=merge, block_size=block_size or None, perm=perm,
                         factored=factored)  # fmt: skip

    def stats_dtype(p: Any) -> Any:
        return jnp.dtype(statistics_dtype) if statistics_dtype is not None else jnp.result_type(p)

    def init(params):
        def factors(p, fill):
            lay, dt = layout_of(jnp.shape(p)), stats_dtype(p)
            return kr.factor_tree(lay, lambda c, d: fill(c, d, dt))

        def zeros(c, d, dt):
            return jnp.zeros((math.prod(c), d, d), dt)

        eyes = kr.stacked_eye
        return SoapState(
            jax.tree.map(lambda p: factors(p, zeros), params),
            jax.tree.map(lambda p: factors(p, eyes), params),
            kit.zeros_like(params),
            kit.zeros_like(params),
        )

    eigen = jax.vmap(functools.partial(kr.eigenbasis, complete=complete_basis, dtype=basis_dtype))
    refresh = jax.vmap(functools.partial(kr.refresh_basis, dtype=basis_dtype))

    def step(updates, state, params, h):
        leaves, treedef = jax.tree.flatten(updates)
        kit.check_match(where, "updates", updates, "mu", state.mu)
        ggs, qs = treedef.flatten_up_to(state.factors), treedef.flatten_up_to(state.bases)
        mus, nus = treedef.flatten_up_to(state.mu), treedef.flatten_up_to(state.nu)
        lays = [layout_of(jnp.shape(g)) for g in leaves]
        wide = [jnp.promote_types(jnp.float32, jnp.result_type(g, m, v))
                for g, m, v in zip(leaves, mus, nus, strict=True)]  # fmt: skip
        xs = [kr.to_blocks(g.astype(k), lay) for g, k, lay in zip(leaves, wide, lays, strict=True)]
        sb = h.b2 if shampoo_beta is None else h.shampoo_beta
        c = h.count

        def grams(old, x, weight_old, k):
            return tuple(
                tuple(None if m is None else
                      (weight_old * m.astype(k) + (1 - sb) * kr.gram(xb, a)).astype(m.dtype)
                      for a, m in enumerate(part))
                for xb, part in zip(x, old, strict=True)
            )  # fmt: skip

        def first():
            new_gg = [grams(gg, x, 0.0, k) for gg, x, k in zip(ggs, xs, wide, strict=True)]
            flat = kr.flat_factors(new_gg)
            bases = [
                q.astype(m.dtype) for (q,), m in zip(kr.grouped(eigen, flat), flat, strict=True)
            ]
            u = [jnp.zeros_like(g) for g in leaves]
            return u, new_gg, kr.unflatten_factors(qs, bases), mus, nus

        def later():
            u, new_mu, new_nu, new_gg = [], [], [], []
            for i, g in enumerate(leaves):
                k, lay, x, q = wide[i], lays[i], xs[i], qs[i]
                mats = [tuple(None if m is None else m.astype(k) for m in part) for part in q]
                m0 = kr.to_blocks(mus[i].astype(k), lay)
                v0 = kr.to_blocks(nus[i].astype(k), lay)
                m, v, d = [], [], []
                for xb, mb, vb, qb in zip(x, m0, v0, mats, strict=True):
                    rotated = kr.along(xb, qb)
                    mb = (h.b1 * mb + (1 - h.b1) * rotated).astype(mus[i].dtype).astype(k)
                    vb = (h.b2 * vb + (1 - h.b2) * rotated**2).astype(nus[i].dtype).astype(k)
                    m.append(mb), v.append(vb)
                    d.append(kr.along(mb / (jnp.sqrt(vb) + h.eps), qb, transpose=True))
                d = kr.from_blocks(d, lay)
                if normalize_grads:
                    d = d / (1e-30 + jnp.sqrt(jnp.mean(d * d)))
                if correct_bias:
                    d = d * (jnp.sqrt(kit.one_minus_power(h.b2, c, d))
                             / kit.one_minus_power(h.b1, c, d))  # fmt: skip
                u.append(d.astype(g.dtype))
                new_mu.append(m), new_nu.append(v)
                new_gg.append(grams(ggs[i], x, sb, k))
            bases = qs

            def refreshed():
                flat_gg, flat_q = kr.flat_factors(new_gg), kr.flat_factors(qs)
                out = kr.grouped(refresh, flat_gg, flat_q)
                flat_new = [nq.astype(q.dtype) for (nq, _), q in zip(out, flat_q, strict=True)]
                orders = iter([o for _, o in out])
                new_q = kr.unflatten_factors(qs, flat_new)
                mu_out, nu_out = [], []
                for i in range(len(lays)):
                    k = wide[i]
                    old = [tuple(None if m is None else m.astype(k) for m in p) for p in qs[i]]
                    fresh = [tuple(None if m is None else m.astype(k) for m in p)
                             for p in new_q[i]]  # fmt: skip
                    mb_out, vb_out = [], []
                    for mb, vb, qo, qn in zip(new_mu[i], new_nu[i], old, fresh, strict=True):
                        for a, m in enumerate(qn):
                            if m is not None:
                                vb = _take(vb, next(orders), a)
                        mb_out.append(kr.along(kr.along(mb, qo, transpose=True), qn))
                        vb_out.append(vb)
                    mu_out.append(mb_out), nu_out.append(vb_out)
                return new_q, mu_out, nu_out

            def kept():
                return qs, new_mu, new_nu

            if kr.flat_factors(new_gg):
                bases, m_blocks, v_blocks = kr.when(c % frequency == 0, refreshed, kept)
            else:
                m_blocks, v_blocks = new_mu, new_nu
            mu_leaves = [kr.from_blocks(mb, lay).astype(m.dtype)
                         for mb, lay, m in zip(m_blocks, lays, mus, strict=True)]  # fmt: skip
            nu_leaves = [kr.from_blocks(vb, lay).astype(v.dtype)
                         for vb, lay, v in zip(v_blocks, lays, nus, strict=True)]  # fmt: skip
            return u, new_gg, bases, mu_leaves, nu_leaves

        u, gg, q, mu, nu = kr.when(c == 0, first, later)
        return treedef.unflatten(u), SoapState(
            treedef.unflatten(gg), treedef.unflatten(q), treedef.unflatten(mu),
            treedef.unflatten(nu),
        )  # fmt: skip

    hyper = {"b1": b1, "b2": b2, "shampoo_beta": shampoo_beta, "eps": eps}
    return kit.block(where, step, init, hyper=hyper)


def _decay_after_step(learning_rate: Any, weight_decay: Any) -> GradientTransformation:
    """The authors' weight decay, applied to the parameters after the step: ``p <- (p + u)(1 -
    lr wd)``, i.e. ``u <- u - lr wd (p + u)``; none on the first update (which moves nothing)."""

    def step(updates, state, params, h):
        if params is None:  # only allowed with a zero decay (needs_params)
            return updates, state
        on = (h.count > 0) * h.learning_rate * h.weight_decay

        def leaf(u, p):
            k = jnp.promote_types(jnp.float32, jnp.result_type(u, p))
            uk = u.astype(k)
            return (uk - on * (p.astype(k) + uk)).astype(u.dtype)

        return jax.tree.map(leaf, updates, params), state

    hyper = {"learning_rate": learning_rate, "weight_decay": weight_decay}
    return kit.block("soap", step, hyper=hyper, needs_params=not kit.is_zero(weight_decay))


@register(
    optax=None,
    traits=(),
    examples=[
        {"learning_rate": 0.1, "precondition_frequency": 4},
        {
            "learning_rate": lambda c: 0.1 / (1 + c / 3.0),
            "weight_decay": lambda c: 0.05 * (1 + c) / (2 + c),
            "precondition_frequency": 3,
            "b1": 0.9,
        },
        {"learning_rate": 0.05, "weight_decay": 0.0, "precondition_frequency": 7, "eps": 1e-3},
    ],
)
def soap(
    learning_rate: kit.Rate = 3e-3,
    b1: kit.Decay = 0.95,
    b2: kit.Decay = 0.95,
    shampoo_beta: kit.Decay | None = None,
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 0.01,
    precondition_frequency: kit.Steps = 10,
    max_precond_dim: kit.Steps = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    data_format: Literal["channels_first", "channels_last"] = "channels_first",
    correct_bias: bool = True,
    one_sided: bool = False,
    block_size: Size = 0,
    complete_basis: bool = False,
    basis_dtype: Any = None,
    statistics_dtype: Any = None,
) -> GradientTransformation:
    """SOAP (Vyas et al. 2024): ``u = -lr d`` with ``d`` the direction of ``scale_by_soap``, then
    the authors' decoupled weight decay on the moved parameters: ``p <- (p - lr d)(1 - lr wd)``
    (no decay on the first update, which moves nothing).

    Args:
      shampoo_beta: decay of the factors (``None``: ``b2``).
      precondition_frequency: refresh the eigenbases every this many Adam steps.
      max_precond_dim: the longest axis that is rotated (and the cap of merged axes).
      merge_dims: merge neighbouring small axes before rotating.
      precondition_1d: rotate vectors too.
      normalize_grads: divide each leaf's direction by its RMS.
      data_format: ``"channels_last"`` reads a 4-D leaf as NHWC when merging.
      correct_bias: Adam's bias correction.
      one_sided: rotate only the shortest axis of each block of rank >= 2.
      block_size: cut axes longer than this into blocks (0: none).
      complete_basis: a deterministic basis for the null space of a rank-deficient first factor.
      basis_dtype: precision of ``eigh``/QR (``None``: the widest of float32 and the factors').
      statistics_dtype: storage dtype of the factors and bases (``None``: the params').

    The authors' ``SOAP(params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1, eps=1e-8,
    weight_decay=0.01, precondition_frequency=10, max_precond_dim=10000, ...)`` with the same
    defaults; optax: none; torch: none.

    Example:
        An ill-conditioned least-squares problem: SOAP's rotation aligns Adam with its axes:

        >>> import jax, jax.numpy as jnp
        >>> import gradtx
        >>> a = jnp.diag(jnp.array([10.0, 1.0, 0.1]))
        >>> loss = lambda w: 0.5 * jnp.sum((w @ a - 1.0) ** 2)
        >>> opt = gradtx.soap(learning_rate=0.3, b1=0.9, b2=0.99, precondition_frequency=5,
        ...                   weight_decay=0.0)
        >>> w = jnp.zeros((4, 3))
        >>> state = opt.init(w)
        >>> for _ in range(100):
        ...     u, state = opt.update(jax.grad(loss)(w), state, w)
        ...     w = w + u
        >>> print(float(loss(w)) < 1e-3 * float(loss(jnp.zeros((4, 3)))))
        True
    """
    blocks = [
        scale_by_soap(**kit.arguments_for(scale_by_soap, locals())),
        scale_by_learning_rate(learning_rate),
    ]
    # always present (a no-op without params and zero decay), so that a zero given as a number
    # or as an array (inject_hyperparams) compiles to the same program
    blocks.append(_decay_after_step(learning_rate, weight_decay))
    return chain(*blocks)


__all__ = ["SoapState", "scale_by_soap", "soap"]
