"""PSGD-Kron (Xi-Lin Li, "Preconditioned stochastic gradient descent", 2015-2024): a
Kronecker-factored preconditioner ``P = Q^T Q`` whose factors are *fitted* by their own
gradient-descent rule rather than computed from statistics, with one factor per tensor axis.

Each axis ``i`` of a leaf gets a factor ``Q_i``: an upper-triangular ``d_i x d_i`` matrix, or a
diagonal kept as a vector (long axes, axes of length 1, skewed shapes, low-rank leaves).  A
scalar leaf is treated as a vector of length 1.  ``Q x`` below means ``Q_i`` applied along every
axis ``i`` (``x_(i) -> Q_i x_(i)``), ``X_(i) X_(i)^T`` the contraction of ``X`` with itself over
every axis but ``i`` (a vector of row sums of squares for a diagonal factor).

The factors fit ``P`` to the pair ``(v, G)`` of a random probe ``v ~ N(0, I)`` and the (damped)
gradient ``G``, minimising ``E[G^T P G + v^T P^{-1} v]``: the fixed point is ``P G G^T P ~ I``,
a whitening of the gradient.  Notation: ``g`` the incoming update, ``t = count + 1``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from numbers import Real
from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jax import lax

from gradtx import kit
from gradtx.base import GradientTransformation, chain
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.optimizers import kronecker as kr
from gradtx.registry import register

Tree = kit.Tree
Size = Annotated[int, kit.Range("[0, inf)", integer=True)]
"""A whole number >= 0 (static: it decides the factors' shapes)."""
SaveMode = Literal["one_diag", "smart_one_diag", "all_diag"] | None
SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")
HIGHEST = lax.Precision.HIGHEST
DAMPING = math.sqrt(float(np.finfo(np.float32).eps))
"""The probe's share in the fitted gradient: ``G + sqrt(eps_f32) mean|G| v`` (the reference's)."""


class PSGDKronState(NamedTuple):
    """``key``: raw PRNG key data, split once per step (the update draw and the probes);
    ``mu``: the momentum, like the params; ``Qs``: per leaf, a tuple with one factor per axis
    (a ``(d,)`` diagonal or a ``(d, d)`` upper-triangular matrix; a scalar leaf has one ``(1,)``
    factor)."""

    key: jax.Array
    mu: Tree
    Qs: Tree


def precond_update_prob_schedule(
    max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 0.001, flat_start: float = 500
) -> Any:
    """The default ``preconditioner_update_probability`` of PSGD-Kron: ``max_prob`` for the
    first ``flat_start`` steps, then an exponential anneal ``max_prob exp(-decay (n -
    flat_start))`` floored at ``min_prob`` (with the defaults, 1 until step 500 and 0.03 from
    about step 4000).  ``n`` is the number of completed steps.

    Example:
        >>> import gradtx
        >>> p = gradtx.precond_update_prob_schedule()
        >>> print([round(float(p(n)), 3) for n in (0, 500, 1500, 10_000)])
        [1.0, 1.0, 0.368, 0.03]
    """

    def schedule(n: Any) -> jax.Array:
        n = jnp.asarray(n, jnp.result_type(float))
        return jnp.clip(max_prob * jnp.exp(-decay * (n - flat_start)), min_prob, max_prob)

    return schedule


DEFAULT_PROBABILITY = precond_update_prob_schedule()


def triangular_axes(
    shape: Sequence[int],
    max_size_triangular: int = 8192,
    max_skew_triangular: float = math.inf,
    min_ndim_triangular: int = 2,
    memory_save_mode: SaveMode = None,
) -> tuple[bool, ...]:
    """Which axes of a leaf of ``shape`` get a triangular factor (the others a diagonal one).

    An axis is diagonal when its length is 1, above ``max_size_triangular`` or above
    ``max_skew_triangular`` times the second-longest axis (1 for a vector), when the leaf has
    fewer than ``min_ndim_triangular`` axes, or by ``memory_save_mode``: ``"one_diag"`` the
    longest axis (the last of equals), ``"smart_one_diag"`` the longest only when strictly longer
    than every other, ``"all_diag"`` every axis.  A scalar is one diagonal axis of length 1.
    """
    shape = tuple(int(d) for d in shape) or (1,)
    n = len(shape)
    forced = [False] * n
    longest = max(i for i in range(n) if shape[i] == max(shape))
    if memory_save_mode == "all_diag":
        forced = [True] * n
    elif memory_save_mode == "one_diag":
        forced[longest] = True
    elif memory_save_mode == "smart_one_diag":
        ordered = sorted(shape)
        if n > 1 and ordered[-1] > ordered[-2]:
            forced[longest] = True
    second = 1 if n == 1 else sorted(shape)[-2]
    return tuple(
        not (
            d == 1
            or d > max_size_triangular
            or d > max_skew_triangular * second
            or n < min_ndim_triangular
            or forced[i]
        )
        for i, d in enumerate(shape)
    )


# --- the per-axis products ----------------------------------------------------------------------


def _along(x: jax.Array, q: jax.Array, axis: int, *, transpose: bool = False) -> jax.Array:
    """``Q`` (or ``Q^T``) applied along ``axis`` of ``x``; a diagonal ``q`` scales it."""
    if q.ndim == 1:
        return x * jnp.reshape(q, [-1 if a == axis else 1 for a in range(x.ndim)])
    m = q.T if transpose else q
    return jnp.moveaxis(jnp.tensordot(m, x, axes=([1], [axis]), precision=HIGHEST), 0, axis)


def _solve_along(x: jax.Array, q: jax.Array, axis: int) -> jax.Array:
    """``Q^{-T}`` applied along ``axis`` of ``x`` (a triangular solve, or a division)."""
    if q.ndim == 1:
        return x / jnp.reshape(q, [-1 if a == axis else 1 for a in range(x.ndim)])
    moved = jnp.moveaxis(x, axis, 0)
    flat = jnp.reshape(moved, (moved.shape[0], -1))
    y = jsl.solve_triangular(q, flat, trans="T", lower=False)
    return jnp.moveaxis(jnp.reshape(y, moved.shape), 0, axis)


def _contract(x: jax.Array, axis: int, diagonal: bool) -> jax.Array:
    """``X_(axis) X_(axis)^T`` (its diagonal when ``diagonal``)."""
    flat = jnp.reshape(jnp.moveaxis(x, axis, 0), (x.shape[axis], -1))
    if diagonal:
        return jnp.sum(flat * flat, axis=1)
    return jnp.matmul(flat, flat.T, precision=HIGHEST)


def _max_abs(x: jax.Array) -> jax.Array:
    """``max|x|`` as the element that attains it: the same value as ``jnp.max``, whose
    derivative (an average over the maxima) came out NaN under ``vmap(grad(scan))`` with XLA's
    optimisations off."""
    flat = jnp.abs(jnp.ravel(x))
    return flat[jnp.argmax(flat)]


def norm_lower_bound(s: jax.Array) -> jax.Array:
    """Li's cheap lower bound of the spectral norm of a symmetric ``s``: with ``c = max|s|``,
    ``S = s / c`` and ``r`` its row of largest norm, ``x = S r`` and the bound is ``c ||S x|| /
    ||x||`` (0 for ``s = 0``); within a factor ``sqrt(2)`` of ``||s||_2`` in practice."""
    c = _max_abs(s)
    safe_c = jnp.where(c > 0, c, 1)
    m = s / safe_c
    row = jnp.take(m, jnp.argmax(jnp.sum(m * m, axis=1)), axis=0)
    x = jnp.matmul(m, row, precision=HIGHEST)
    nx = jnp.linalg.norm(x)
    y = jnp.matmul(m.T, x / jnp.where(nx > 0, nx, 1), precision=HIGHEST)
    return jnp.where(c > 0, c * jnp.linalg.norm(y), 0)


@jax.jit
def _refit(qs: tuple, g: jax.Array, v: jax.Array, lr: jax.Array) -> tuple:
    """One step of the factors' own update from the gradient ``g`` and the probe ``v`` (both in
    the factors' shape, already damped): the factors are first balanced (scaled to a common
    ``max|Q_i|``, which leaves ``P`` and the step unchanged), then with ``A = Q G`` and ``B =
    Q^{-T} v``, per axis ``E = A_(i) A_(i)^T - B_(i) B_(i)^T`` and ``F = A_(i) A_(i)^T + B_(i)
    B_(i)^T``: ``Q_i <- Q_i - lr triu(E) Q_i / (lb(F) + tiny)`` (triangular, ``lb`` the norm
    lower bound) or ``q_i <- q_i - lr E q_i / (max|F| + tiny)`` (diagonal)."""
    if len(qs) > 1:
        norms = jnp.stack([_max_abs(q) for q in qs])
        mean = jnp.exp(jnp.mean(jnp.log(norms)))
        qs = tuple(q * (mean / n) for q, n in zip(qs, norms, strict=True))
    a, b = g, v
    for axis, q in enumerate(qs):
        a, b = _along(a, q, axis), _solve_along(b, q, axis)
    tiny = jnp.finfo(g.dtype).tiny
    out = []
    for axis, q in enumerate(qs):
        diagonal = q.ndim == 1
        ta, tb = _contract(a, axis, diagonal), _contract(b, axis, diagonal)
        if diagonal:
            out.append(q - lr * (ta - tb) * q / (_max_abs(ta + tb) + tiny))
        else:
            step = jnp.matmul(jnp.triu(ta - tb), q, precision=HIGHEST)
            out.append(q - lr * step / (norm_lower_bound(ta + tb) + tiny))
    return tuple(out)


def _precondition(qs: Sequence[jax.Array], x: jax.Array) -> jax.Array:
    """``P x = Q^T Q x`` along every axis."""
    for axis, q in enumerate(qs):
        x = _along(_along(x, q, axis), q, axis, transpose=True)
    return x


@register(
    "block",
    optax=None,
    traits=("stochastic",),
    traced="b1",
    examples=[
        {"preconditioner_update_probability": 1.0, "key": 1},
        {
            "b1": 0.5,
            "preconditioner_update_probability": 0.5,
            "precond_lr": 0.2,
            "precond_init_scale": 2.0,
            "min_ndim_triangular": 1,
            "clip_update_rms": 0.0,
            "key": 2,
        },
        {
            "memory_save_mode": "one_diag",
            "momentum_into_precond_update": False,
            "max_skew_triangular": 1.0,
            "clip_update_rms": 0.5,
            "key": 3,
        },
    ],
)
def scale_by_psgd_kron(
    b1: kit.Decay = 0.9,
    preconditioner_update_probability: kit.Fraction = DEFAULT_PROBABILITY,
    max_size_triangular: Size = 8192,
    max_skew_triangular: Real = math.inf,
    min_ndim_triangular: Size = 2,
    memory_save_mode: SaveMode = None,
    momentum_into_precond_update: bool = True,
    precond_lr: kit.NonNegative = 0.1,
    precond_init_scale: kit.PositiveConstant = 1.0,
    clip_update_rms: kit.NonNegative = 1.1,
    key: jax.Array | int | None = None,
    *,
    seed: int | None = None,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
) -> GradientTransformation:
    """PSGD-Kron's direction (Li's Kronecker-factored PSGD as in the ``kron`` optimizers of
    ``psgd_jax``/``kron_torch``): per leaf, with ``Q`` the product of its per-axis factors,

    ``m = b1 m + (1 - b1) g``, ``m^ = m / (1 - b1^t)``;  with probability ``p_t``
    (``preconditioner_update_probability``) the factors take one step of their fitting rule on
    ``G = h + sqrt(eps_f32) mean|h| v`` (``h = m^``, or ``g`` without
    ``momentum_into_precond_update``; ``v ~ N(0, I)`` a fresh probe): with ``A = Q G``, ``B =
    Q^{-T} v`` and, per axis ``i``, ``E = A_(i) A_(i)^T - B_(i) B_(i)^T``, ``F = A_(i) A_(i)^T
    + B_(i) B_(i)^T``,

    ``Q_i <- Q_i - precond_lr triu(E) Q_i / (lb(F) + tiny)`` (triangular; ``lb`` a lower bound
    of the spectral norm, ``gradtx.optimizers.psgd.norm_lower_bound``) or ``q_i <- q_i -
    precond_lr E q_i / (max|F| + tiny)`` (diagonal);

    then ``u = P m^`` with ``P = Q^T Q``, scaled down to an RMS of at most ``clip_update_rms``:
    ``u / max(1, rms(u) / clip_update_rms)``.  Factors start at ``precond_init_scale^(1/n) I``
    (``n`` the leaf's rank), so ``P = precond_init_scale^2 I``.

    Randomness: each step splits the stored key into the next key and ``(k_p, k_v)``; the
    preconditioner is updated when ``uniform(k_p) < p_t`` (float32), and leaf ``j`` (in
    ``jax.tree.leaves`` order) gets the probe ``normal(split(k_v, n_leaves)[j], leaf.shape)`` in
    its computation dtype.  The same key replays the same run.

    Which axes get triangular factors: ``triangular_axes`` (``max_size_triangular``,
    ``max_skew_triangular``, ``min_ndim_triangular``, ``memory_save_mode``).  Leaves of any rank
    are handled without reshaping (``kron_torch``'s ``merge_dims`` is not offered: merge axes
    with a reshape of the params if wanted).

    Args:
      preconditioner_update_probability: ``p_t``, the probability of a factor update at each
        step (a number or a schedule of the completed steps); the default anneals from 1 to
        0.03 (``precond_update_prob_schedule()``).  1: every step.
      max_size_triangular: axes longer than this get a diagonal factor.
      max_skew_triangular: axes longer than this times the second-longest axis get a diagonal
        factor.
      min_ndim_triangular: leaves of fewer axes get only diagonal factors (biases, scales).
      memory_save_mode: ``None`` (the rules above), ``"one_diag"`` (also the longest axis
        diagonal), ``"smart_one_diag"`` (the longest axis when strictly longest) or
        ``"all_diag"``.
      momentum_into_precond_update: fit the factors to the debiased momentum (else to ``g``).
      precond_lr: the factors' step size (their update is normalised, so 0.1 is a safe value).
      precond_init_scale: the preconditioner starts at ``precond_init_scale^2 I``.
      clip_update_rms: the largest RMS of each leaf's direction (0: not clipped).
      key: PRNG key (or an int seed) of the update draws and the probes (``None``: seed 0);
        stored as raw ``uint32`` key data.
      seed: an int seed, an alternative to ``key``.
      precond_dtype: storage dtype of the factors (``None``: the params'; a half-precision
        model does better with ``jnp.float32``).

    The reference balances the factors about every 100th update at random; here they are
    balanced at every update, which changes neither ``P`` nor the step (the fitting rule is
    equivariant to rescaling the factors).  optax: none; torch: none.

    Example:
        A ``(3, 4)`` matrix gets two triangular factors, a vector one diagonal factor; the
        direction of a matrix leaf is ``P m^`` (here ``P = I`` on the first step before the
        fit, and RMS-clipped at 1.1):

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.scale_by_psgd_kron(preconditioner_update_probability=1.0, key=0)
        >>> params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
        >>> state = tx.init(params)
        >>> print([q.shape for q in gradtx.tree_get(state, "Qs")["w"]],
        ...       [q.shape for q in gradtx.tree_get(state, "Qs")["b"]])
        [(3, 3), (4, 4)] [(4,)]
        >>> u, state = tx.update(params, state)
        >>> print(u["w"].shape, bool(jnp.all(jnp.isfinite(u["w"]))))
        (3, 4) True
    """
    where = "scale_by_psgd_kron"
    if memory_save_mode not in SAVE_MODES:
        raise ValueError(f"{where}: memory_save_mode={memory_save_mode!r} is unknown; allowed: "
                         f"{list(SAVE_MODES)}")  # fmt: skip
    if isinstance(max_skew_triangular, bool) or not isinstance(max_skew_triangular, Real):
        raise TypeError(f"{where}: max_skew_triangular={max_skew_triangular!r} must be a number")
    kit.check_ranges(where, max_skew_triangular=(max_skew_triangular, "[0, inf]"))
    if seed is not None:
        if key is not None:
            raise ValueError(f"{where}: give either key or seed, not both")
        key = seed
    key = 0 if key is None else key
    mu_dt, q_dt = kit.canonical_dtype(mu_dtype), kit.canonical_dtype(precond_dtype)

    @functools.cache
    def kinds(shape: tuple[int, ...]) -> tuple[bool, ...]:
        return triangular_axes(shape, max_size_triangular, max_skew_triangular,
                               min_ndim_triangular, memory_save_mode)  # fmt: skip

    def factors(p: Any) -> tuple:
        shape = jnp.shape(p)
        dt = q_dt or jnp.result_type(p)
        tri = kinds(shape)
        scale = precond_init_scale ** (1 / len(tri)) if shape else precond_init_scale
        sizes = shape or (1,)
        return tuple(
            (scale * jnp.eye(d, dtype=dt) if t else jnp.full((d,), scale, dt)).astype(dt)
            for d, t in zip(sizes, tri, strict=True)
        )

    def init(params):
        k = jax.random.PRNGKey(key) if isinstance(key, int) else key
        if jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
            k = jax.random.key_data(k)
        mu = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), mu_dt or jnp.result_type(p)), params)
        return PSGDKronState(k, mu, jax.tree.map(factors, params))

    def step(updates, state, params, h):
        kit.check_match(where, "updates", updates, "mu", state.mu)
        leaves, treedef = jax.tree.flatten(updates)
        mus = treedef.flatten_up_to(state.mu)
        qss = [tuple(q) for q in treedef.flatten_up_to(state.Qs)]
        debias = kit.Debias(h.b1, h.count)
        wide = [kit.compute_dtype(g, m, *qs) for g, m, qs in zip(leaves, mus, qss, strict=True)]
        new_mus, hats = [], []
        for g, m, k in zip(leaves, mus, wide, strict=True):
            m = kit.ema(g.astype(k), m.astype(k), kit.scalar(h.b1, g.astype(k))).astype(m.dtype)
            new_mus.append(m)
            hats.append(debias(m.astype(k)))
        fitted = hats if momentum_into_precond_update else [g.astype(k) for g, k in zip(
            leaves, wide, strict=True)]  # fmt: skip

        next_key, draw = jax.random.split(state.key)
        k_update, k_probe = jax.random.split(draw)
        prob = h.preconditioner_update_probability
        do_update = jax.random.uniform(k_update, (), jnp.float32) < prob

        def refit():
            keys = jax.random.split(k_probe, len(leaves)) if leaves else []
            out = []
            for x, qs, k, pk in zip(fitted, qss, wide, keys, strict=True):
                v = jax.random.normal(pk, jnp.shape(x), k)
                damped = x + DAMPING * jnp.mean(jnp.abs(x)) * v
                shape = jnp.shape(x) or (1,)
                # a barrier: a constant step size would be folded into the fit's products in
                # another order than a traced one (inject_hyperparams), 1 ulp apart
                lr = lax.optimization_barrier(jnp.asarray(h.precond_lr).astype(k))
                new = _refit(tuple(q.astype(k) for q in qs), jnp.reshape(damped, shape),
                             jnp.reshape(v, shape), lr)  # fmt: skip
                out.append(tuple(n.astype(q.dtype) for n, q in zip(new, qs, strict=True)))
            return out

        new_qss = kr.when(do_update, refit, lambda: qss) if leaves else qss
        outs = []
        for g, x, qs, k in zip(leaves, hats, new_qss, wide, strict=True):
            shape = jnp.shape(x) or (1,)
            u = _precondition([q.astype(k) for q in qs], jnp.reshape(x, shape))
            if not kit.is_zero(h.clip_update_rms):
                c = kit.scalar(h.clip_update_rms, u)
                rms = jnp.sqrt(jnp.mean(u * u))
                u = u / jnp.where(c > 0, jnp.maximum(1, rms / jnp.where(c > 0, c, 1)), 1)
            outs.append(jnp.reshape(u, jnp.shape(g)).astype(g.dtype))
        new_state = PSGDKronState(
            next_key, treedef.unflatten(new_mus), treedef.unflatten([tuple(q) for q in new_qss])
        )
        return treedef.unflatten(outs), new_state

    hyper = {
        "b1": b1,
        "preconditioner_update_probability": preconditioner_update_probability,
        "precond_lr": precond_lr,
        "clip_update_rms": clip_update_rms,
    }
    return kit.block(where, step, init, hyper=hyper)


@register(
    optax=None,
    traits=("stochastic",),
    examples=[
        {"learning_rate": 0.1, "key": 5},
        {
            "learning_rate": 0.05,
            "b1": 0.8,
            "weight_decay": 0.01,
            "preconditioner_update_probability": 0.3,
            "max_size_triangular": 3,
            "key": 6,
        },
    ],
)
def psgd_kron(
    learning_rate: kit.Rate = 0.001,
    b1: kit.Decay = 0.9,
    weight_decay: kit.NonNegative = 0.0,
    mask: Any = None,
    preconditioner_update_probability: kit.Fraction = DEFAULT_PROBABILITY,
    max_size_triangular: Size = 8192,
    max_skew_triangular: Real = math.inf,
    min_ndim_triangular: Size = 2,
    memory_save_mode: SaveMode = None,
    momentum_into_precond_update: bool = True,
    precond_lr: kit.NonNegative = 0.1,
    precond_init_scale: kit.PositiveConstant = 1.0,
    clip_update_rms: kit.NonNegative = 1.1,
    key: jax.Array | int | None = None,
    *,
    seed: int | None = None,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
) -> GradientTransformation:
    """PSGD-Kron: ``u = -lr (d + wd p)`` with ``d`` the direction of ``scale_by_psgd_kron``
    (momentum preconditioned by ``P = Q^T Q``, its Kronecker factors fitted to whiten the
    gradient, RMS-clipped) and ``wd p`` the decoupled weight decay on the ``mask``-ed leaves.

    Args:
      preconditioner_update_probability: probability of a factor update per step (a number or
        a schedule; default: 1 for 500 steps, annealed to 0.03 by about step 4000).
      max_size_triangular: axes longer than this get a diagonal factor.
      max_skew_triangular: axes longer than this times the second-longest axis get a diagonal
        factor.
      min_ndim_triangular: leaves of fewer axes get only diagonal factors.
      memory_save_mode: ``None``, ``"one_diag"``, ``"smart_one_diag"`` or ``"all_diag"`` (see
        ``scale_by_psgd_kron``).
      momentum_into_precond_update: fit the factors to the debiased momentum (else to ``g``).
      precond_lr: the factors' (normalised) step size.
      precond_init_scale: the preconditioner starts at ``precond_init_scale^2 I``.
      clip_update_rms: the largest RMS of each leaf's direction (0: not clipped).
      key: PRNG key (or an int seed) of the update draws and the probes (``None``: seed 0).
      seed: an int seed, an alternative to ``key``.
      precond_dtype: storage dtype of the factors (``None``: the params').

    The ``kron(learning_rate, b1, weight_decay, weight_decay_mask, ...)`` of ``psgd_jax`` (and
    ``kron_torch.Kron``): same defaults; the factors' update as its current version (damped
    probe, RMS clip at 1.1, bias-corrected momentum), with random (not counter-based) update
    draws.  optax: none; torch: none.

    Example:
        An ill-conditioned quadratic in a ``(4, 3)`` matrix:

        >>> import jax, jax.numpy as jnp
        >>> import gradtx
        >>> a = jnp.diag(jnp.array([100.0, 1.0, 0.01]))
        >>> loss = lambda w: 0.5 * jnp.sum(w @ a * w)
        >>> opt = gradtx.psgd_kron(learning_rate=0.1, preconditioner_update_probability=1.0)
        >>> w = jnp.ones((4, 3))
        >>> state = opt.init(w)
        >>> for _ in range(50):
        ...     u, state = opt.update(jax.grad(loss)(w), state, w)
        ...     w = w + u
        >>> print(bool(loss(w) < 0.05 * loss(jnp.ones((4, 3)))))
        True
    """
    direction = scale_by_psgd_kron(**kit.arguments_for(scale_by_psgd_kron, locals()))
    return chain(
        direction,
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


__all__ = ["PSGDKronState", "precond_update_prob_schedule", "psgd_kron", "scale_by_psgd_kron"]
