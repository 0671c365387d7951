"""``torch.optim.Muon`` (torch >= 2.9) as a chain of gradtx blocks: ``torch_muon(lr=..., ...)``
takes torch's arguments, defaults and checks and the same steps.

torch's step for a 2-D parameter ``p`` stored ``(out, in)``, per its source (torch 2.13):
``B <- momentum B + (1 - momentum) g`` (``lerp``; its documentation writes ``momentum B + g``),
``X = g + momentum (B - g)`` with Nesterov else ``B``, ``O = NS(X)`` after
``X / max(||X||_F, eps)``, ``p <- p (1 - lr wd) - lr s O`` with ``s = sqrt(max(1, out / in))``
(``adjust_lr_fn="original"``, the default) or ``0.2 sqrt(max(out, in))``
(``"match_rms_adamw"``).  So: ``scale_by_muon`` without bias correction, ``eps_mode="max"``,
reading axis 1 as fan-in; ``scale_by_shape``; the decoupled decay; the learning rate.

torch casts the matrix to bfloat16 before the iteration whatever the parameter's dtype, and runs
every product in bfloat16 (float32 accumulation, one rounding per ``matmul``/``addmm``):
``ns_dtype=jnp.bfloat16`` (the default here) does the same.  ``ns_dtype=None`` runs the iteration
in the parameters' precision: torch's numbers without its cast, to 1e-10 in float64.

Like torch, it refuses parameters that are not matrices (train those with
``from_torch("AdamW", ...)`` through ``gradtx.partition``, or use ``gradtx.contrib.muon``).
Unlike torch it also refuses ``momentum >= 1`` (torch accepts it).

``from_torch("Muon", ...)`` is this recipe (with torch's bfloat16 iteration); it stays out of
the generic torch harness, which runs every recipe on vectors and scalars, and is checked
against torch in ``tests/test_muon.py``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx import kit, paths
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain, init_empty_state
from gradtx.blocks import add_decayed_weights, scale_by_learning_rate
from gradtx.optimizers.muon import MuonDimensionNumbers, scale_by_muon, scale_by_shape
from gradtx.torch_compat.optimizers import torch_recipe

DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 0.1,
    "momentum": 0.95,
    "nesterov": True,
    "ns_coefficients": (3.4445, -4.7750, 2.0315),
    "eps": 1e-7,
    "ns_steps": 5,
    "adjust_lr_fn": None,
}
"""``torch.optim.Muon``'s defaults (torch 2.13, ``torch/optim/_muon.py``)."""

RANGES = {"lr": "[0, inf)", "momentum": "[0, 1)", "weight_decay": "[0, inf)"}
"""torch's own checks (``momentum``: torch allows >= 1, gradtx's momentum is a decay rate)."""

EXAMPLES: tuple[dict[str, Any], ...] = (
    {"lr": 1e-3},
    {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.05},
    {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw", "eps": 1e-5, "ns_steps": 3},
    {"lr": 0.02, "adjust_lr_fn": "original", "ns_coefficients": (2.0, -1.5, 0.5)},
)
"""The configurations the torch parity tests run: torch's defaults, then every option."""

_ADJUST_LR = {None: None, "original": None, "match_rms_adamw": 0.2}  # -> consistent_rms
_TORCH_LAYOUT = MuonDimensionNumbers(reduction_axis=1, output_axis=0)  # (out, in)


def _only_matrices() -> GradientTransformation:
    """A block that checks, at ``init``, that every parameter is a matrix (torch's check)."""

    def init(params):
        for path, x in zip(paths.leaf_paths(params), jax.tree.leaves(params), strict=True):
            if jnp.ndim(x) != 2:
                raise ValueError(
                    f"torch.optim.Muon only supports 2-D parameters; {path!r} has shape "
                    f"{tuple(jnp.shape(x))}. Train the others with from_torch('AdamW', ...) "
                    f"through gradtx.partition, or use gradtx.contrib.muon"
                )
        return init_empty_state(params)

    return kit.block("torch.optim.Muon", lambda g, state, params, h: (g, state), init)


def recipe(h: dict[str, Any], lr: ScalarOrSchedule, ns_dtype: Any = jnp.bfloat16):
    """The chain for torch's merged arguments ``h`` (the ``torch_recipe`` build function)."""
    if h["adjust_lr_fn"] not in _ADJUST_LR:
        raise ValueError(
            f"torch.optim.Muon: adjust_lr_fn={h['adjust_lr_fn']!r} is not supported; allowed: "
            f"{list(_ADJUST_LR)}"
        )
    if h["ns_steps"] >= 100:
        raise ValueError("torch.optim.Muon: ns_steps must be less than 100")
    if len(h["ns_coefficients"]) != 3:
        raise ValueError("torch.optim.Muon: ns_coefficients must be exactly three values")
    return chain(
        _only_matrices(),
        scale_by_muon(
            tuple(h["ns_coefficients"]), h["ns_steps"], h["momentum"], h["eps"],
            nesterov=h["nesterov"], weight_dimension_numbers=_TORCH_LAYOUT,
            bias_correction=False, eps_mode="max", ns_dtype=ns_dtype,
        ),
        scale_by_shape(_TORCH_LAYOUT, _ADJUST_LR[h["adjust_lr_fn"]]),
        add_decayed_weights(h["weight_decay"]),
        scale_by_learning_rate(lr),
    )  # fmt: skip


def torch_muon(*, ns_dtype: Any = jnp.bfloat16, **torch_kwargs: Any) -> GradientTransformation:
    """``torch.optim.Muon(params, **torch_kwargs)`` for a tree of ``(out, in)`` matrices.

    Arguments, defaults and checks are torch's (``DEFAULTS``); ``lr`` may also be a schedule.
    ``ns_dtype`` (gradtx's): the Newton–Schulz precision, bfloat16 as torch, ``None`` for the
    parameters' own.  Unknown names raise TypeError, out-of-range values ValueError.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx.torch_compat.muon import torch_muon
        >>> tx = torch_muon(lr=0.02, weight_decay=0.0)
        >>> p = {"w": jnp.zeros((4, 2))}  # torch layout (out, in): s = sqrt(4 / 2)
        >>> u, _ = tx.update({"w": jnp.eye(4, 2)}, tx.init(p), p)
        >>> print(jnp.array_str(u["w"][:2], precision=3))  # NS(eye) ~ 1.13 eye, bfloat16
        [[-0.032 -0.   ]
         [-0.    -0.032]]
    """
    unknown = sorted(set(torch_kwargs) - set(DEFAULTS) - {"foreach", "differentiable"})
    if unknown:
        raise TypeError(
            f"torch.optim.Muon: unexpected argument(s) {unknown}; accepted: {sorted(DEFAULTS)}"
        )
    h = {**DEFAULTS, **torch_kwargs}
    kit.check_ranges("torch.optim.Muon", **{k: (h[k], r) for k, r in RANGES.items()})
    return recipe(h, h["lr"], ns_dtype)


torch_recipe(
    "Muon", defaults=DEFAULTS, examples=EXAMPLES, ranges=RANGES, traits=frozenset(), harness=False
)(recipe)

__all__ = ["DEFAULTS", "EXAMPLES", "RANGES", "recipe", "torch_muon"]
