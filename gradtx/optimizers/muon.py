"""Muon (Jordan et al. 2024): SGD momentum whose step, for each weight matrix, is replaced by the
nearest semi-orthogonal matrix ``U V^T`` (``U S V^T`` the SVD of the momentum), computed by a few
Newton–Schulz iterations (``gradtx.optimizers.orthogonalize``); parameters that are not matrices
are trained with AdamW.

Notation: ``g`` the incoming update, ``t`` the 1-based step, ``p`` the parameters, ``m`` the
momentum, ``NS(X)`` the Newton–Schulz orthogonalisation of each matrix of a leaf (which axes
form the matrices: ``MuonDimensionNumbers``), ``fan_in``/``fan_out`` the sizes of its reduction
and output axes.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, chain, init_empty_state
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.combinators import masked
from gradtx.optimizers.adam import adamw, first_moment_hat
from gradtx.optimizers.orthogonalize import (
    _DEFAULT_NS_COEFFS,
    _EPS_MODES,
    _PRECONDITIONINGS,
    Coefficients,
    MuonDimensionNumbers,
    Preconditioning,
    _check_choice,
    _coefficient_rows,
    _layouts,
    _orthogonalize,
    _resolve,
    muon_dimension_numbers,
)
from gradtx.registry import register

Tree = kit.Tree


@kit.one_counter("count", "ns_coeffs")
class MuonState(NamedTuple):
    """``mu``: the momentum, shaped like the params.  optax's ``MuonState`` also holds ``count``
    (gradtx keeps one per optimizer, in the chain) and ``ns_coeffs`` (configuration here: kept in
    the transformation); ``MuonState(count=..., mu=..., ns_coeffs=...)`` still constructs."""

    mu: Tree


def _coefficients_are_configuration(self: Any) -> Any:
    raise AttributeError(
        "MuonState has no 'ns_coeffs': gradtx keeps the Newton–Schulz coefficients in the "
        "transformation (they are configuration, not state)"
    )


MuonState.ns_coeffs = property(_coefficients_are_configuration)  # not the counter's message


# --- the blocks and the optimizer ------------------------------------------------------------

# the registry's examples on the shared tree (a 3 x 4 matrix, a vector, a scalar): every leaf
# orthogonalised (a vector as one row, a scalar as a 1 x 1 matrix), as flax's (in, out) or torch's
# (out, in) layout; or the scalar left to AdamW
_EVERY_LEAF = muon_dimension_numbers(
    {0: MuonDimensionNumbers((), ()), 1: MuonDimensionNumbers((), 0)}
)
_TORCH_LAYOUT = muon_dimension_numbers(
    {0: None, 1: MuonDimensionNumbers((), 0), 2: MuonDimensionNumbers(1, 0)}
)
_TORCH_EVERY_LEAF = muon_dimension_numbers(
    {0: MuonDimensionNumbers((), ()), 1: MuonDimensionNumbers((), 0), 2: MuonDimensionNumbers(1, 0)}
)
_TABLE = ((4.0, -6.0, 2.5), (3.4445, -4.7750, 2.0315), (2.0, -1.5, 0.5))


@kit.validated  # not registered: optax's refuses the shared harness's vectors (tests/test_muon.py)
def scale_by_muon(
    ns_coeffs: Coefficients = _DEFAULT_NS_COEFFS,
    ns_steps: kit.Steps = 5,
    beta: kit.Decay = 0.95,
    eps: kit.NonNegative = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: Preconditioning = "frobenius",
    weight_dimension_numbers: Any = None,
    bias_correction: bool = True,
    eps_mode: Literal["add", "max"] = "add",
    ns_dtype: Any = None,
) -> GradientTransformation:
    """Muon's direction: ``m_t = beta m + (1 - beta) g``, ``u = NS(m̂)`` per matrix, where
    ``m̂ = m_t / (1 - beta^t)``, or with ``nesterov``
    ``m̂ = beta m_t / (1 - beta^(t+1)) + (1 - beta) g / (1 - beta^t)`` (optax's bias-corrected
    look-ahead); ``bias_correction=False`` drops the corrections: ``m̂ = m_t``, Nesterov
    ``m̂ = beta m_t + (1 - beta) g`` (the authors' and torch's).  ``adaptive`` scales the result
    by the dual norm ``<m̂, NS(m̂)>`` (Bernstein & Newhouse 2024).

    Args:
      ns_coeffs: Newton–Schulz coefficients ``(a, b, c)``, a table of one row per iteration (all
        rows run), or a preset name from ``NS_COEFFS_PRESETS`` (``"standard"``, ``"dion"``).
      ns_steps: Newton–Schulz iterations for a triple ``(a, b, c)``.
      beta: decay rate of the momentum ``m``.
      eps: keeps the normalisation ``X / (||X|| + eps)`` finite at ``X = 0``.
      mu_dtype: storage dtype of ``m`` (``None``: the params'); the update uses ``m`` as stored.
      nesterov: the look-ahead ``m̂`` above instead of ``m_t``.
      adaptive: multiply ``NS(m̂)`` by ``<m̂, NS(m̂)>`` (per leaf).
      preconditioning: how ``X`` is scaled before the iteration: ``"frobenius"`` (by
        ``||X||_F``), ``"spectral"`` (by ``||X||_2``, an SVD), ``"aol"`` (rows rescaled by
        ``|X X^H|``'s row sums, Boissin et al. 2025) or ``"schatten"`` (by ``||X X^H||_F^(1/2)``,
        Grishina et al. 2025).  For the last two ``eps`` floors the scale (optax uses 1e-8 there
        whatever ``eps`` is).
      weight_dimension_numbers: which axes form each leaf's matrices: ``MuonDimensionNumbers``
        (one for every leaf), a tree of them shaped like the params (or a prefix), or a function
        ``params -> such a tree`` (e.g. ``muon_dimension_numbers``).  ``None`` (for a leaf or
        all): a 2-D leaf read as ``(in, out)``; any other shape is an error naming the parameter.
      bias_correction: divide by ``1 - beta^t`` as optax (``False``: the authors' and torch's).
      eps_mode: ``"add"`` divides by ``||X|| + eps`` (optax, the authors), ``"max"`` by
        ``max(||X||, eps)`` (torch).
      ns_dtype: dtype the iteration runs in (``None``: the update's, at least float32);
        ``jnp.bfloat16`` rounds every intermediate to bfloat16, as the authors' and torch's do.

    optax: ``optax.contrib.scale_by_muon`` (which fails on vectors and scalars: it has no
    ``bias_correction``, ``eps_mode``, ``ns_dtype``, nor empty axes in the dimension numbers);
    torch: the direction inside ``torch.optim.Muon``.

    Example:
        The update's singular values are near 1 whatever the gradient's (here 10 and 0.1):

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.contrib.scale_by_muon()
        >>> g = jnp.array([[10.0, 0.0], [0.0, 0.1]])
        >>> u, state = tx.update(g, tx.init(g))
        >>> print(jnp.array_str(jnp.linalg.svd(u, compute_uv=False), precision=2))
        [0.7 0.7]
    """
    where = "scale_by_muon"
    _check_choice(where, "preconditioning", preconditioning, _PRECONDITIONINGS)
    _check_choice(where, "eps_mode", eps_mode, _EPS_MODES)
    rows = _coefficient_rows(where, ns_coeffs, ns_steps)
    make_state = kit.init_state(MuonState, mu=mu_dtype)

    def init(params):
        _layouts(where, weight_dimension_numbers, params)  # a shape error shows at init
        return make_state(params)

    def step(updates, state, params, h):
        kit.check_match(where, "updates", updates, "mu", state.mu)
        leaves, treedef = jax.tree.flatten(updates)
        layouts = _layouts(where, weight_dimension_numbers, updates)
        debias = kit.Debias(h.beta, h.count)
        mus, hats = [], []
        for g, m in zip(leaves, treedef.flatten_up_to(state.mu), strict=True):
            k = kit.compute_dtype(g, m)
            g_k, beta = g.astype(k), kit.scalar(h.beta, g.astype(k))
            mus.append(kit.ema(g_k, m.astype(k), beta).astype(m.dtype))  # used as stored
            m_k = mus[-1].astype(k)
            if bias_correction:
                hats.append(first_moment_hat(g_k, m_k, beta, debias, nesterov))
            else:
                hats.append(kit.ema(g_k, m_k, beta) if nesterov else m_k)
        out = _orthogonalize(hats, layouts, rows, preconditioning, h.eps, eps_mode, ns_dtype)
        if adaptive:
            out = [jnp.sum(m_hat.conj() * o) * o for m_hat, o in zip(hats, out, strict=True)]
        out = [o.astype(g.dtype) for o, g in zip(out, leaves, strict=True)]
        return treedef.unflatten(out), MuonState(treedef.unflatten(mus))

    return kit.block(where, step, init, hyper={"beta": beta, "eps": eps})


@register(
    "block",
    optax=None,
    traits=(),
    traced="consistent_rms",
    examples=[
        {"weight_dimension_numbers": _EVERY_LEAF, "consistent_rms": 0.2},
        {"weight_dimension_numbers": _EVERY_LEAF},
        {"weight_dimension_numbers": _TORCH_EVERY_LEAF, "consistent_rms": lambda c: 0.1 + 0.01 * c},
    ],
)
def scale_by_shape(
    weight_dimension_numbers: Any = None, consistent_rms: kit.NonNegative | None = None
) -> GradientTransformation:
    """Muon's per-matrix step size from the shape: ``u = sqrt(max(1, fan_out / fan_in)) g``
    (the authors' width scaling: every matrix's update then has about the same RMS per input
    unit), or ``u = consistent_rms * sqrt(max(fan_in, fan_out)) g`` (Liu et al. 2025: an update
    RMS of ``consistent_rms``, AdamW's typical 0.2, so AdamW's learning rate and decay carry
    over; torch's ``adjust_lr_fn="match_rms_adamw"``).

    Args:
      weight_dimension_numbers: which axes are ``fan_in`` and ``fan_out``, as in
        ``scale_by_muon``.
      consistent_rms: the target RMS (``None``: the width scaling).

    optax: none (optax.contrib.muon uses the same rule, ``optax.contrib._muon.scale_by_shape``,
    without exporting it); torch: the ``adjust_lr_fn`` of ``torch.optim.Muon``.

    Example:
        A 2 x 8 kernel (fan-in 2, fan-out 8) steps twice as far; a torch weight ``(out, in)``
        reads its axes the other way:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> from gradtx.contrib import MuonDimensionNumbers
        >>> g = jnp.ones((2, 8))
        >>> for dims in (None, MuonDimensionNumbers(1, 0)):
        ...     tx = gradtx.scale_by_shape(dims)
        ...     print(tx.update(g, tx.init(g))[0][0, 0])
        2.0
        1.0
    """
    where = "scale_by_shape"

    def init(params):
        _layouts(where, weight_dimension_numbers, params)
        return init_empty_state(params)

    def step(updates, state, params, h):
        leaves, treedef = jax.tree.flatten(updates)
        out = []
        for g, lay in zip(leaves, _layouts(where, weight_dimension_numbers, updates), strict=True):
            g_k = g.astype(kit.compute_dtype(g))
            if h.consistent_rms is None:
                factor = math.sqrt(max(1.0, lay.fan_out / lay.fan_in))
            else:
                rms = kit.scalar(h.consistent_rms, g_k)
                factor = math.sqrt(max(lay.fan_in, lay.fan_out)) * rms
            out.append((factor * g_k).astype(g.dtype))
        return treedef.unflatten(out), state

    return kit.block(where, step, init, hyper={"consistent_rms": consistent_rms})


@register(
    optax="contrib.muon",
    traits=(),
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": lambda c: 0.1 / (1 + c / 3.0), "beta": 0.9, "weight_decay": 0.1,
         "weight_decay_mask": lambda p: jax.tree.map(lambda x: x.shape[0] > 2, p),
         "nesterov": False, "adam_b1": 0.8, "adam_b2": 0.99, "adam_eps_root": 1e-6,
         "adam_weight_decay": 0.05, "adam_learning_rate": 0.02, "consistent_rms": 0.2},
        {"learning_rate": 0.05, "ns_coeffs": "dion", "preconditioning": "aol", "adaptive": True,
         "eps": 1e-6},
        {"learning_rate": 0.05, "ns_coeffs": _TABLE, "ns_steps": 4, "preconditioning": "spectral"},
        {"learning_rate": 0.05, "preconditioning": "schatten", "mu_dtype": jnp.float32,
         "bias_correction": False, "eps": 1e-7, "adam_eps": 1e-10, "adam_nesterov": False,
         "adam_b2": 0.95, "adam_learning_rate": 3e-3},
        {"learning_rate": 0.02, "bias_correction": False, "eps": 1e-7, "eps_mode": "max",
         "weight_decay": 0.1, "consistent_rms": 0.2,
         "muon_weight_dimension_numbers": _TORCH_LAYOUT},
    ],
)  # fmt: skip
def muon(
    learning_rate: kit.Rate,
    ns_coeffs: Coefficients = _DEFAULT_NS_COEFFS,
    ns_steps: kit.Steps = 5,
    beta: kit.Decay = 0.95,
    eps: kit.NonNegative = 1e-8,
    weight_decay: kit.NonNegative = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: Preconditioning = "frobenius",
    adam_b1: kit.Decay = 0.9,
    adam_b2: kit.Decay = 0.999,
    adam_eps_root: kit.NonNegative = 0.0,
    adam_weight_decay: kit.NonNegative = 0.0,
    adam_learning_rate: kit.Rate | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: kit.NonNegative | None = None,
    bias_correction: bool = True,
    eps_mode: Literal["add", "max"] = "add",
    ns_dtype: Any = None,
    adam_eps: kit.NonNegative | None = None,
    adam_nesterov: bool | None = None,
) -> GradientTransformation:
    """Muon (Jordan et al. 2024) on the matrices, AdamW on the other parameters:
    ``u = -lr (s NS(m̂) + wd p)`` with ``m̂`` and ``NS`` of ``scale_by_muon`` and the shape factor
    ``s`` of ``scale_by_shape``; ``u = adamw(adam_learning_rate, adam_b1, adam_b2, eps, ...)``
    (Nesterov's when ``nesterov``) elsewhere.  A chain of ``scale_by_muon``, ``scale_by_shape``,
    ``add_decayed_weights`` and ``scale_by_learning_rate``, and ``adamw``, each ``masked``.

    Which leaves are matrices: ``muon_weight_dimension_numbers`` (``None``: the 2-D leaves, read
    ``(in, out)``; the rest, conv kernels and stacked layers included, go to AdamW, as optax;
    ``muon_dimension_numbers`` chooses by rank and refuses ranks it has no rule for).

    The three published versions differ; each is reproduced by these arguments (for a matrix
    stored ``(in, out)``, as flax's; torch stores ``(out, in)``: add
    ``muon_weight_dimension_numbers=MuonDimensionNumbers(1, 0)`` for a torch layout):

    ================  =====================  =======================  =======================
    difference        optax (the defaults)   the authors' muon.py     torch.optim.Muon
    ================  =====================  =======================  =======================
    bias correction   ``1 - beta^t``         none:                    none:
                                             ``bias_correction=F``    ``bias_correction=F``
    Nesterov          bias-corrected         ``beta m + (1-beta) g``  same as the authors'
                      look-ahead             (default on)             (default on)
    NS normalisation  ``||X|| + 1e-8``       ``||X|| + 1e-7``:        ``max(||X||, 1e-7)``:
                                             ``eps=1e-7``             ``eps_mode="max"``
    NS precision      the update's dtype     bfloat16:                bfloat16:
                                             ``ns_dtype``             ``ns_dtype``
    fan-in axis       axis 0 of ``(in,out)``  axis 1 of ``(out,in)``  axis 1 of ``(out,in)``
    shape scale       ``sqrt(max(1,           same (4-D: from the      same;
                      fan_out/fan_in))``      last two axes)           ``match_rms_adamw``:
                                                                      ``consistent_rms=0.2``
    weight decay      decoupled, ``lr wd p``  same, default 0          same, default 0.1
    other params      AdamW(0.9, 0.999,       AdamW(0.9, 0.95,         refused (pair with
                      eps=Muon's, Nesterov)   eps 1e-10, lr 3e-4):     ``torch.optim.AdamW``)
                                              ``adam_b2=0.95``,
                                              ``adam_eps=1e-10``,
                                              ``adam_nesterov=F``
    ================  =====================  =======================  =======================

    Args:
      ns_coeffs: as in ``scale_by_muon``.
      ns_steps: Newton–Schulz iterations.
      beta: decay rate of Muon's momentum.
      eps: Muon's normalisation floor, and AdamW's ``eps`` unless ``adam_eps`` is given.
      weight_decay: coefficient of the decoupled decay of the matrices.
      weight_decay_mask: which matrices decay (bools or a function, over the matrices only).
      mu_dtype: storage dtype of both momenta (``None``: the params').
      nesterov: Nesterov momentum for Muon, and for AdamW unless ``adam_nesterov`` is given.
      adaptive: as in ``scale_by_muon``.
      preconditioning: as in ``scale_by_muon``.
      adam_b1: AdamW's ``b1``.
      adam_b2: AdamW's ``b2``.
      adam_eps_root: AdamW's ``eps_root``.
      adam_weight_decay: AdamW's weight decay.
      adam_learning_rate: AdamW's learning rate (``None``: ``learning_rate``).
      muon_weight_dimension_numbers: per parameter ``MuonDimensionNumbers`` (Muon) or ``None``
        (AdamW): a tree (or prefix), or a function of the params.
      consistent_rms: as in ``scale_by_shape``.
      bias_correction: as in ``scale_by_muon``.
      eps_mode: as in ``scale_by_muon``.
      ns_dtype: as in ``scale_by_muon``.
      adam_eps: AdamW's ``eps`` (``None``: ``eps``).
      adam_nesterov: AdamW's Nesterov (``None``: ``nesterov``).

    optax: ``optax.contrib.muon`` (the arguments after ``consistent_rms`` are gradtx's); torch:
    ``torch.optim.Muon`` for the matrices (``gradtx.torch_compat.muon.torch_muon(...)``, with
    torch's arguments, reproduces it, bfloat16 included).

    Example:
        The matrix gets Muon's orthogonal step (scaled by ``sqrt(3 / 2)``: fan-out 3, fan-in 2),
        the bias AdamW's first Nesterov step, ``-lr (1 + b1 (1 - b1) / (1 - b1^2))`` per
        coordinate:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
        >>> grads = {"w": jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "b": jnp.ones(3)}
        >>> opt = gradtx.contrib.muon(learning_rate=0.1)
        >>> u, _ = opt.update(grads, opt.init(params), params)
        >>> print(jnp.array_str(u["w"], precision=3), jnp.array_str(u["b"], precision=3))
        [[-0.136 -0.    -0.   ]
         [-0.    -0.136 -0.   ]] [-0.147 -0.147 -0.147]
    """
    spec = muon_weight_dimension_numbers

    def is_matrix(tree: Tree, want: bool) -> Tree:
        leaves, treedef = jax.tree.flatten(tree)
        pairs = zip(leaves, _resolve("muon", spec, tree), strict=True)
        chosen = [jnp.ndim(x) == 2 if spec is None else d is not None for x, d in pairs]
        return treedef.unflatten([c == want for c in chosen])

    matrix_part = chain(
        scale_by_muon(
            ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov=nesterov, adaptive=adaptive,
            preconditioning=preconditioning, weight_dimension_numbers=spec,
            bias_correction=bias_correction, eps_mode=eps_mode, ns_dtype=ns_dtype,
        ),
        scale_by_shape(spec, consistent_rms),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )  # fmt: skip
    other_part = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        adam_b1, adam_b2, eps if adam_eps is None else adam_eps, adam_eps_root, mu_dtype,
        adam_weight_decay, nesterov=nesterov if adam_nesterov is None else adam_nesterov,
    )  # fmt: skip
    return chain(
        masked(matrix_part, lambda t: is_matrix(t, True), name="muon"),
        masked(other_part, lambda t: is_matrix(t, False), name="muon (adamw)"),
    )


__all__ = ["MuonState", "muon", "scale_by_shape"]
