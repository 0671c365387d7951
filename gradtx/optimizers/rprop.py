"""Rprop (resilient backpropagation): every coordinate moves by its own step size, in the
direction opposite its gradient's sign; the step size grows while the sign holds and shrinks
when it flips.  The gradient's magnitude is never used.

``variant`` chooses between optax's rule (the default, for the optax names) and torch's; they
differ in when a step is taken (see ``scale_by_rprop``).
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import jax.numpy as jnp

from gradtx import kit
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain
from gradtx.blocks import scale
from gradtx.registry import register

Variant = Literal["optax", "torch"]
AtLeastOne = Annotated[ScalarOrSchedule, kit.Range("[1, inf)")]


class ScaleByRpropState(NamedTuple):
    """``step_sizes``: each coordinate's step size ``Δ``; ``prev_updates``: the latest step
    ``Δ sign(g)`` (0 after a sign flip), whose sign the next gradient is compared with."""

    step_sizes: kit.Tree
    prev_updates: kit.Tree


def _check(where: str, min_step_size: object, max_step_size: object, variant: str) -> None:
    if variant not in ("optax", "torch"):
        raise ValueError(f"{where}: variant={variant!r}; allowed: 'optax' or 'torch'")
    numbers = isinstance(min_step_size, int | float) and isinstance(max_step_size, int | float)
    if numbers and min_step_size > max_step_size:
        raise ValueError(
            f"{where}: min_step_size={min_step_size!r} exceeds max_step_size={max_step_size!r}"
        )


_EXAMPLES = [
    {"learning_rate": 0.1},
    {
        "learning_rate": 0.05,
        "eta_minus": 0.3,
        "eta_plus": 1.5,
        "min_step_size": 0.01,
        "max_step_size": 0.2,
    },
    {"learning_rate": 0.1, "variant": "torch"},
    # a first step size above the maximum: torch clamps it on the first step, optax does not
    {"learning_rate": 0.5, "max_step_size": 0.3, "eta_minus": 0.4, "variant": "torch"},
]


@register("block", optax="scale_by_rprop", traced="learning_rate", examples=_EXAMPLES)
def scale_by_rprop(
    learning_rate: kit.NonNegativeConstant,
    eta_minus: kit.Fraction = 0.5,
    eta_plus: AtLeastOne = 1.2,
    min_step_size: kit.NonNegative = 1e-6,
    max_step_size: kit.Positive = 50.0,
    variant: Variant = "optax",
) -> GradientTransformation:
    """Rprop's step, coordinate by coordinate (iRprop-: no weight backtracking).  With
    ``s = g_t * prev`` (``prev``: the latest step, 0 after a flip)::

        Δ_t = clip(Δ_{t-1} * eta_plus,  min_step_size, max_step_size)   if s > 0
        Δ_t = clip(Δ_{t-1} * eta_minus, min_step_size, max_step_size)   if s < 0
        Δ_t = Δ_{t-1}                                                   if s = 0
        prev <- 0 if s < 0 else Δ_t sign(g_t)

    ``Δ_0 = learning_rate``.  The output is a direction (``rprop`` negates it).

    ``variant="optax"`` (optax 0.2.8's numbers): the output of step ``t`` is the step computed
    at step ``t - 1``, ``0 if s < 0 else prev_{t-1}``: every step arrives one update late and
    the first output is 0 (an optax bug, google-deepmind/optax#1725).

    ``variant="torch"`` is ``torch.optim.Rprop``'s rule: the output of step ``t`` is the step of
    step ``t``, ``0 if s < 0 else Δ_t sign(g_t)`` (the new ``prev``), and the clip applies on every
    step, ``s = 0`` included: ``Δ_1 = clip(learning_rate, min, max)`` where optax keeps an
    out-of-range ``learning_rate`` until the first ``s != 0``.  (torch remembers the gradient,
    zeroed after a flip, where this block remembers the step: the same signs, as ``Δ > 0``.)
    ``torch.optim.Rprop(lr, etas=(a, b), step_sizes=(lo, hi))`` is
    ``chain(scale_by_rprop(lr, a, b, lo, hi, variant="torch"), scale(-1))``; ``maximize=True``
    drops the ``scale(-1)``; torch splits complex parameters into real and imaginary
    coordinates, this block does not.

    Args:
      learning_rate: the initial step size ``Δ_0`` of every coordinate (a number).
      eta_minus: factor on ``Δ`` when the gradient's sign flips.
      eta_plus: factor on ``Δ`` while the gradient keeps its sign.
      min_step_size: the smallest step size.
      max_step_size: the largest step size.
      variant: ``"optax"`` (each step applied one update late) or ``"torch"`` (applied at once).

    optax: ``optax.scale_by_rprop``; torch: ``torch.optim.Rprop`` with ``variant="torch"``.

    Example:
        optax's steps arrive one update late; torch's at once:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> g = jnp.array([1.0, -1.0], jnp.float32)
        >>> for variant in ("optax", "torch"):
        ...     tx = gradtx.scale_by_rprop(0.1, variant=variant)
        ...     state, steps = tx.init(g), []
        ...     for _ in range(3):
        ...         u, state = tx.update(g, state)
        ...         steps.append(jnp.array_str(u, precision=4))
        ...     print(variant, *steps)
        optax [0. 0.] [ 0.1 -0.1] [ 0.12 -0.12]
        torch [ 0.1 -0.1] [ 0.12 -0.12] [ 0.144 -0.144]
    """
    _check("scale_by_rprop", min_step_size, max_step_size, variant)
    late = variant == "optax"

    def step(updates, state, params, h):
        def leaf(g, s, *, keep):
            sign = g * s.prev_updates
            up, down = kit.scalar(h.eta_plus, g), kit.scalar(h.eta_minus, g)
            factor = jnp.where(sign > 0, up, jnp.where(sign < 0, down, 1))
            lo, hi = kit.scalar(h.min_step_size, g), kit.scalar(h.max_step_size, g)
            clipped = jnp.clip(s.step_sizes * factor, lo, hi)
            # optax leaves the step size alone (unclipped) when the product is 0; torch clips
            new = keep(
                s._replace(
                    step_sizes=jnp.where(sign == 0, s.step_sizes, clipped) if late else clipped
                )
            )
            taken = jnp.where(sign < 0, 0, new.step_sizes * jnp.sign(g))
            new = keep(new._replace(prev_updates=taken))
            return jnp.where(sign < 0, 0, s.prev_updates) if late else new.prev_updates, new

        return kit.map_state("scale_by_rprop", leaf, updates, state)

    def init(params):
        return ScaleByRpropState(kit.full_like(params, learning_rate), kit.zeros_like(params))

    hyper = {
        "eta_minus": eta_minus,
        "eta_plus": eta_plus,
        "min_step_size": min_step_size,
        "max_step_size": max_step_size,
    }
    return kit.block("scale_by_rprop", step, init, hyper=hyper)


@register(
    optax="rprop",
    examples=[
        {"learning_rate": 0.1},
        {"learning_rate": 0.02, "eta_minus": 0.2, "eta_plus": 2.0, "max_step_size": 0.5},
        {"learning_rate": 0.1, "min_step_size": 0.05, "variant": "torch"},
    ],
)
def rprop(
    learning_rate: kit.NonNegativeConstant,
    eta_minus: kit.Fraction = 0.5,
    eta_plus: AtLeastOne = 1.2,
    min_step_size: kit.NonNegative = 1e-6,
    max_step_size: kit.Positive = 50.0,
    variant: Variant = "optax",
) -> GradientTransformation:
    """Rprop (Riedmiller & Braun 1993) in its iRprop- form (Igel & Hüsken 2000):
    ``u = -Δ_t sign(g_t)``, each coordinate's step size ``Δ`` multiplied by ``eta_plus`` while
    its gradient keeps its sign and by ``eta_minus`` when it flips (that step is skipped), within
    ``[min_step_size, max_step_size]``; see ``scale_by_rprop``.

    ``variant="optax"`` reproduces optax 0.2.8, whose every step arrives one update late (the
    first update is 0: google-deepmind/optax#1725); ``variant="torch"`` takes each step at once,
    as the paper and ``torch.optim.Rprop`` do.

    Args:
      learning_rate: the initial step size ``Δ_0`` of every coordinate (a number).
      eta_minus: factor on ``Δ`` when the gradient's sign flips.
      eta_plus: factor on ``Δ`` while the gradient keeps its sign.
      min_step_size: the smallest step size.
      max_step_size: the largest step size.
      variant: ``"optax"`` (each step applied one update late) or ``"torch"`` (applied at once).

    optax: ``optax.rprop``; torch: ``torch.optim.Rprop`` with ``variant="torch"``.

    Example:
        Only signs matter: gradients a million times apart take the same steps.

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.rprop(learning_rate=0.01, variant="torch")
        >>> params = jnp.array([1.0, 1.0], jnp.float32)
        >>> state = opt.init(params)
        >>> for _ in range(4):
        ...     grads = params * jnp.array([1e-6, 1.0], jnp.float32)
        ...     updates, state = opt.update(grads, state)
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(jnp.array_str(params, precision=4))  # 1 - 0.01 (1 + 1.2 + 1.44 + 1.728)
        [0.9463 0.9463]
    """
    _check("rprop", min_step_size, max_step_size, variant)
    return chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size, variant),
        scale(-1.0),
    )


__all__ = ["ScaleByRpropState", "rprop", "scale_by_rprop"]
