"""``from_torch`` for torch.optim's optimizers that are not "decay, scaler, decay, lr":
``Rprop``, ``ASGD`` and ``Adafactor`` (torch's own rule, not optax's), each a ``torch_recipe``.

The rules, per parameter tensor ``p`` with gradient ``g`` (``-g`` when ``maximize``), at step
``t = 1, 2, ...`` with the lr ``lr`` torch's param group holds at that step:

- **Rprop** (torch/optim/rprop.py): ``scale_by_rprop(variant="torch")``: each coordinate's step
  size grows by ``etas[1]`` while its gradient keeps its sign and shrinks by ``etas[0]`` when it
  flips (that step is skipped), within ``step_sizes``; ``p <- p - Δ sign(g)``.  The step sizes
  start at the lr of the *first* step; torch reads the lr nowhere else, so a scheduler (or a
  changed lr) after the first step changes nothing, here as there.
- **ASGD** (torch/optim/asgd.py): ``g <- g + weight_decay p``; ``p <- p (1 - lambd η_t) - η_t
  g``; the average ``ax <- p`` while ``μ_t = 1``, else ``ax <- ax + μ_t (p - ax)``; then
  ``η_{t+1} = lr / (1 + lambd lr t)^alpha``, ``μ_{t+1} = 1 / max(1, t - t0)`` (``η_1`` = the
  lr of the first step, ``μ_1 = 1``).  The average is read with ``asgd_average(state)``
  (torch's ``optimizer.state[p]["ax"]``).
- **Adafactor** (torch/optim/_adafactor.py, Shazeer & Stern 2018 as torch states it):
  ``β_t = t^beta2_decay``, ``ρ_t = min(lr, 1/√t)``, ``α_t = max(eps2, RMS(p)) ρ_t``;
  ``p <- p (1 - lr weight_decay)``; a tensor of two or more dims keeps row and column means of
  ``g²`` over its last two axes, ``R <- lerp(R, mean_{-1} g², β_t)``, ``C <- lerp(C,
  mean_{-2} g², β_t)``, ``V = R C / max(mean(R), eps1)``; a vector or scalar keeps ``V <-
  lerp(V, g², β_t)``; ``U = g / √max(V, eps1²)``; ``p <- p - α_t U / max(1, RMS(U) / d)``.
  ``eps1=None`` is the params' machine epsilon.  optax's ``adafactor`` differs: a decay rate
  ``1 - t^-0.8`` capped at 0.8, no ``eps2`` floor in ``α`` unless ``multiply_by_parameter_scale``,
  clipping at 1 and momentum options, factoring the two largest axes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain
from gradtx.blocks import add_decayed_weights, scale
from gradtx.optimizers.rprop import scale_by_rprop
from gradtx.state import tree_get
from gradtx.torch_compat.optimizers import torch_recipe

# --- Rprop ---------------------------------------------------------------------------------------


@torch_recipe(
    "Rprop",
    defaults={"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50), "maximize": False},
    examples=(
        {"lr": 1e-2},
        {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2)},
        # a first step size above the maximum: clamped on the first step
        {"lr": 0.5, "step_sizes": (1e-6, 0.3), "maximize": True, "foreach": False},
    ),
    ranges={"lr": "[0, inf)"},
)
def _rprop(h: dict[str, Any], lr: ScalarOrSchedule) -> GradientTransformation:
    (minus, plus), (lo, hi) = h["etas"], h["step_sizes"]
    if not 0.0 < minus < 1.0 < plus:
        raise ValueError(f"torch.optim.Rprop: invalid eta values: {minus}, {plus}")
    first = kit.resolve(lr, jnp.zeros([], jnp.int32))  # torch reads the lr on the first step only
    rprop = scale_by_rprop(first, minus, plus, lo, hi, variant="torch")
    return chain(rprop, *([] if h["maximize"] else [scale(-1.0)]))


# --- ASGD ----------------------------------------------------------------------------------------


class TorchAsgdState(NamedTuple):
    """``eta``: the step size of the next step; ``mu``: the averaging weight of the next step;
    ``ax``: the averaged params (torch's ``state["ax"]``)."""

    eta: jax.Array
    mu: jax.Array
    ax: kit.Tree


def _scale_by_torch_asgd(
    lr: ScalarOrSchedule, lambd: float, alpha: float, t0: float
) -> GradientTransformation:
    """torch's ASGD step on the (decayed, sign-adjusted) gradient: the update ``p_new - p``."""

    def init(params):
        dt = kit.scalar_dtype(params)
        first = jnp.asarray(kit.resolve(lr, jnp.zeros([], jnp.int32)), dt)
        return TorchAsgdState(first, jnp.ones([], dt), kit.zeros_like(params))

    def step(updates, state, params, h):
        eta, mu = state.eta, state.mu

        def leaf(g, ax, p, keep=None):
            e = eta.astype(kit.compute_dtype(g))
            new = p * (1 - lambd * e) - e * g
            ax = jnp.where(mu != 1, ax + (new - ax) * mu.astype(ax.dtype), new)
            return new - p, ax

        out, ax = kit.leafwise("torch ASGD", leaf, 2, updates, state.ax, params, widen=True)
        t = (h.count + 1).astype(eta.dtype)
        rate = jnp.asarray(h.lr, eta.dtype)
        new_eta = rate / (1 + lambd * rate * t) ** alpha
        new_mu = 1 / jnp.maximum(1.0, t - t0)
        return out, TorchAsgdState(new_eta, new_mu.astype(mu.dtype), ax)

    return kit.block("torch ASGD", step, init, hyper={"lr": lr}, needs_params=True)


@torch_recipe(
    "ASGD",
    defaults={"lr": 1e-2, "lambd": 1e-4, "alpha": 0.75, "t0": 1e6, "weight_decay": 0.0,
              "maximize": False},
    examples=(
        {"lr": 1e-2},
        {"lr": 0.05, "lambd": 1e-2, "alpha": 0.6, "t0": 10.0, "weight_decay": 0.1},
        {"lr": 0.05, "t0": 3.0, "maximize": True, "capturable": False},
    ),
    ranges={"lr": "[0, inf)", "weight_decay": "[0, inf)"},
    traits=frozenset(),
)  # fmt: skip
def _asgd(h: dict[str, Any], lr: ScalarOrSchedule) -> GradientTransformation:
    wd = h["weight_decay"]
    return chain(
        *([scale(-1.0)] if h["maximize"] else []),
        *([add_decayed_weights(wd)] if wd != 0 else []),
        _scale_by_torch_asgd(lr, h["lambd"], h["alpha"], h["t0"]),
    )


def asgd_average(state: Any) -> kit.Tree:
    """The averaged params of a ``from_torch("ASGD", ...)`` state: torch's
    ``optimizer.state[p]["ax"]`` for every ``p`` (zeros before the first step; equal to the
    params while ``t <= t0 + 1``).  ``gradtx.tree_get(state, "ax")`` reads the same.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> from gradtx.torch_compat import asgd_average, from_torch
        >>> tx = from_torch("ASGD", lr=0.1, lambd=0.0, t0=0.0)
        >>> params = jnp.array([1.0])
        >>> state = tx.init(params)
        >>> for _ in range(3):  # p: 0.9, 0.8, 0.7; mu = 1, 1, 1/2
        ...     updates, state = tx.update(jnp.array([1.0]), state, params)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(jnp.round(params, 6), jnp.round(asgd_average(state), 6))
        [0.7] [0.75]
    """
    return tree_get(state, "ax")


# --- Adafactor -----------------------------------------------------------------------------------


class TorchAdafactorState(NamedTuple):
    """Per leaf: ``row_var`` (``g²`` averaged over the last axis, shape ``(..., n, 1)``) and
    ``col_var`` (over the second-to-last, ``(..., 1, m)``) for tensors of two or more dims,
    ``variance`` (``g²``) for vectors and scalars; the unused fields hold 0-d zeros."""

    row_var: kit.Tree
    col_var: kit.Tree
    variance: kit.Tree


def _lerp(a: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
    """torch's ``lerp``: ``a + w (b - a)`` for ``w < 0.5``, else ``b - (b - a)(1 - w)``."""
    return jnp.where(w < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


def _scale_by_torch_adafactor(
    lr: ScalarOrSchedule,
    beta2_decay: float,
    eps1: float | None,
    eps2: float,
    d: float,
    weight_decay: float,
) -> GradientTransformation:
    """torch's Adafactor on the (sign-adjusted) gradient: the update ``p_new - p``."""

    def init(params):
        def one(p, factored):
            z = jnp.zeros([], p.dtype)
            if not factored:
                return z, z, jnp.zeros_like(p)
            shape = jnp.shape(p)
            return (jnp.zeros((*shape[:-1], 1), p.dtype), jnp.zeros((*shape[:-2], 1, shape[-1]),
                    p.dtype), z)  # fmt: skip

        leaves, treedef = jax.tree.flatten(params)
        parts = [one(p, jnp.ndim(p) > 1) for p in leaves]
        return TorchAdafactorState(*(treedef.unflatten([x[i] for x in parts]) for i in range(3)))

    def step(updates, state, params, h):
        t = jnp.asarray(h.count + 1)

        def leaf(g, p, r, c, v):
            k = jnp.promote_types(jnp.float32, jnp.result_type(g, p))
            gk, pk = g.astype(k), p.astype(k)
            tf, rate = t.astype(k), jnp.asarray(h.lr).astype(k)
            e1 = jnp.finfo(p.dtype).eps if eps1 is None else eps1
            beta = tf**beta2_decay
            rho = jnp.minimum(rate, 1 / jnp.sqrt(tf))
            rms_p = jnp.sqrt(jnp.sum(pk * pk)) / jnp.sqrt(float(max(pk.size, 1)))
            step_size = jnp.maximum(eps2, rms_p) * rho
            decayed = pk * (1 - rate * weight_decay) if weight_decay != 0 else pk
            sq = gk * gk
            if jnp.ndim(g) > 1:
                r = _lerp(r.astype(k), jnp.mean(sq, axis=-1, keepdims=True), beta)
                c = _lerp(c.astype(k), jnp.mean(sq, axis=-2, keepdims=True), beta)
                r, c = r.astype(p.dtype).astype(k), c.astype(p.dtype).astype(k)
                var = r * c / jnp.maximum(jnp.mean(r, axis=-2, keepdims=True), e1)
            else:
                v = _lerp(v.astype(k), sq, beta).astype(p.dtype).astype(k)
                var = v
            u = jax.lax.rsqrt(jnp.maximum(var, e1 * e1)) * gk
            rms_u = jnp.sqrt(jnp.sum(u * u)) / jnp.sqrt(float(max(u.size, 1)))
            new = decayed - step_size / jnp.maximum(1.0, rms_u / d) * u
            out = (new - pk).astype(g.dtype)
            return out, r.astype(p.dtype), c.astype(p.dtype), v.astype(p.dtype)

        leaves, treedef = jax.tree.flatten(updates)
        kit.check_match("torch Adafactor", "updates", updates, "params", params)
        rest = [jax.tree.leaves(x) for x in (params, *state)]
        outs = [leaf(*args) for args in zip(leaves, *rest, strict=True)]
        u, r, c, v = (treedef.unflatten([o[i] for o in outs]) for i in range(4))
        return u, TorchAdafactorState(r, c, v)

    return kit.block("torch Adafactor", step, init, hyper={"lr": lr}, needs_params=True)


@torch_recipe(
    "Adafactor",
    defaults={"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0,
              "weight_decay": 0.0, "maximize": False},
    examples=(
        {"lr": 1e-2},
        {"lr": 0.05, "beta2_decay": -0.5, "d": 1.5, "weight_decay": 0.1, "eps": (1e-20, 1e-2)},
        {"lr": 0.05, "maximize": True, "foreach": False},
    ),
    ranges={"lr": "[0, inf)", "beta2_decay": "(-inf, 0]", "d": "[1, inf)",
            "weight_decay": "[0, inf)"},
    traits=frozenset(),
)  # fmt: skip
def _adafactor(h: dict[str, Any], lr: ScalarOrSchedule) -> GradientTransformation:
    eps1, eps2 = h["eps"]
    if eps1 is not None and not eps1 >= 0:
        raise ValueError(f"torch.optim.Adafactor: epsilon1 should be >= 0 but is: {eps1}")
    if not eps2 >= 0:
        raise ValueError(f"torch.optim.Adafactor: epsilon2 should be >= 0 but is: {eps2}")
    return chain(
        *([scale(-1.0)] if h["maximize"] else []),
        _scale_by_torch_adafactor(lr, h["beta2_decay"], eps1, eps2, h["d"], h["weight_decay"]),
    )


__all__ = ["TorchAdafactorState", "TorchAsgdState", "asgd_average"]
