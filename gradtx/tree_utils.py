"""``optax.tree_utils`` for gradtx: the ``tree_*`` names of optax 0.2.8, each the very function of
``gradtx.tree`` without the prefix (``tree_add is gradtx.tree.add``), plus ``NamedTupleKey``.

optax's deprecated names still work here and warn the same way: ``tree_scalar_mul`` and
``tree_add_scalar_mul`` (now ``tree_scale``/``tree_add_scale``), ``tree_l1_norm``,
``tree_l2_norm`` and ``tree_linf_norm`` (now ``tree_norm(..., ord=...)``).

Example:
    >>> import jax.numpy as jnp
    >>> from gradtx import tree_utils as gtu
    >>> print(gtu.tree_norm({"a": jnp.array([3.0, 4.0])}))
    5.0
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from gradtx import tree
from gradtx.tree import NamedTupleKey

tree_add = tree.add
tree_add_scale = tree.add_scale
tree_allclose = tree.allclose
tree_batch_shape = tree.batch_shape
tree_bias_correction = tree.bias_correction
tree_cast = tree.cast
tree_cast_like = tree.cast_like
tree_clip = tree.clip
tree_conj = tree.conj
tree_div = tree.div
tree_dtype = tree.dtype
tree_full_like = tree.full_like
tree_get = tree.get
tree_get_all_with_path = tree.get_all_with_path
tree_map_params = tree.map_params
tree_max = tree.max
tree_min = tree.min
tree_mul = tree.mul
tree_norm = tree.norm
tree_ones_like = tree.ones_like
tree_random_like = tree.random_like
tree_real = tree.real
tree_scale = tree.scale
tree_set = tree.set
tree_size = tree.size
tree_split_key_like = tree.split_key_like
tree_sub = tree.sub
tree_sum = tree.sum
tree_unwrap_random_key_data = tree.unwrap_random_key_data
tree_update_infinity_moment = tree.update_infinity_moment
tree_update_moment = tree.update_moment
tree_update_moment_per_elem_norm = tree.update_moment_per_elem_norm
tree_vdot = tree.vdot
tree_where = tree.where
tree_zeros_like = tree.zeros_like

_DEPRECATED: dict[str, tuple[str, Callable[..., Any]]] = {
    "tree_scalar_mul": ("tree_scale", tree.scale),
    "tree_add_scalar_mul": ("tree_add_scale", tree.add_scale),
    "tree_l1_norm": ("tree_norm(..., ord=1)", functools.partial(tree.norm, ord=1)),
    "tree_l2_norm": ("tree_norm", functools.partial(tree.norm, ord=2)),
    "tree_linf_norm": ("tree_norm(..., ord='inf')", functools.partial(tree.norm, ord="inf")),
}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new, fn = _DEPRECATED[name]
        warnings.warn(
            f"gradtx.tree_utils.{name} is deprecated (as in optax): use {new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NamedTupleKey", *sorted(n for n in globals() if n.startswith("tree_"))]
