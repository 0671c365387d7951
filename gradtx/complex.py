"""Complex parameters for real optimizers: ``split_real_and_imaginary`` hands its inner
transformation each complex leaf as two real leaves (real part, imaginary part) and puts the two
transformed halves back together.  optax: ``optax.contrib.split_real_and_imaginary``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.base import GradientTransformation, OptState, with_extra_args

Tree = Any


class SplitRealAndImaginaryArrays(NamedTuple):
    """The two real halves a complex leaf is split into, as the inner transformation sees them."""

    real: jax.Array
    imaginary: jax.Array


class SplitRealAndImaginaryState(NamedTuple):
    """``inner_state``: the inner transformation's state, built on the split (all real) params.
    optax: ``optax.contrib.SplitRealAndImaginaryState`` (same field)."""

    inner_state: OptState


def _split(x: Any) -> Any:
    if jnp.iscomplexobj(x):
        return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))
    return x


def _merge(x: Any) -> Any:
    if isinstance(x, SplitRealAndImaginaryArrays):
        return jax.lax.complex(x.real, x.imaginary)
    return x


def _is_pair(x: Any) -> bool:
    return isinstance(x, SplitRealAndImaginaryArrays)


def split(tree: Tree) -> Tree:
    """Every complex leaf ``z`` of ``tree`` as ``SplitRealAndImaginaryArrays(Re z, Im z)``; real
    leaves (and ``None``) unchanged."""
    return None if tree is None else jax.tree.map(_split, tree)


def merge(tree: Tree) -> Tree:
    """The inverse of ``split``: every pair back to ``real + i * imaginary``."""
    return jax.tree.map(_merge, tree, is_leaf=_is_pair)


def split_real_and_imaginary(inner: GradientTransformation) -> GradientTransformation:
    """Runs the real transformation ``inner`` on complex parameters, the real and imaginary parts
    of each complex leaf taken as two independent real leaves:

        z = x + i y  ->  inner sees (x, y) with gradients (Re g, Im g)
        u = u_x + i u_y  from inner's updates (u_x, u_y)

    So ``split_real_and_imaginary(adam(lr))`` keeps separate moments for the two parts (Adam's
    ``|g|^2`` of a complex ``g`` would mix them); a rule over the whole tree (a global norm)
    still sees both parts.  Real leaves pass to ``inner`` unchanged.  Extra keywords of
    ``update`` (``value=``, ...) are forwarded to ``inner``.

    Args:
      inner: the real transformation, e.g. ``gradtx.adam(1e-3)`` or an optax one.

    optax: ``optax.contrib.split_real_and_imaginary`` (same argument, state and numbers; complex
    leaves are rebuilt with ``lax.complex`` rather than ``x + 1j * y``, the same value).  torch:
    none (torch's optimizers view a complex tensor as real pairs themselves).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> tx = gradtx.contrib.split_real_and_imaginary(gradtx.sign_sgd(0.5))
        >>> z = jnp.array([1.0 + 2.0j, -3.0 + 0.5j])
        >>> g = jnp.array([0.1 - 4.0j, -2.0 + 1.0j])
        >>> u, _ = tx.update(g, tx.init(z), z)
        >>> print(u)  # -0.5 sign(Re g) - 0.5i sign(Im g)
        [-0.5+0.5j  0.5-0.5j]
    """
    inner = with_extra_args(inner)

    def init(params: Tree) -> SplitRealAndImaginaryState:
        return SplitRealAndImaginaryState(inner.init(split(params)))

    def update(updates, state, params=None, **extra):
        out, inner_state = inner.update(split(updates), state.inner_state, split(params), **extra)
        return merge(out), SplitRealAndImaginaryState(inner_state)

    return GradientTransformation(init, update)


__all__ = ["SplitRealAndImaginaryArrays", "SplitRealAndImaginaryState", "split_real_and_imaginary"]
