"""Making a block: ``kit.block`` (hyperparameters resolved at the chain's step, params checked),
``init_state`` for a named state of parameter-shaped trees, ``one_counter`` for optax's
counter fields."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.base import BLOCK_INITS, Block, Chain, init_empty_state, transformation
from gradtx.kit.hyperparameters import resolve
from gradtx.kit.leaves import need_params
from gradtx.kit.numerics import Tree, canonical_dtype, full_like


def init_state(cls: type[NamedTuple], fill: float = 0.0, **dtypes: Any) -> Callable[[Tree], Any]:
    """``init`` for a state NamedTuple of parameter-shaped trees: every field ``fill`` in the
    params' dtypes, or in ``dtypes[field]`` where given (e.g. ``mu=jnp.bfloat16``)."""
    fields = cls._fields
    unknown = set(dtypes) - set(fields)
    if unknown:
        raise ValueError(f"init_state: {cls.__name__} has no fields {sorted(unknown)}")
    kinds = {f: canonical_dtype(dtypes.get(f)) for f in fields}

    def init(params: Tree) -> Any:
        return cls(**{f: full_like(params, fill, kinds[f]) for f in fields})

    return init


def one_counter(*fields: str) -> Callable[[type], type]:
    """Class decorator for a state whose optax counterpart also stores a step counter (optax's
    ``count``, ``step``, ...): gradtx keeps one counter per optimizer, in the chain.  The optax
    spelling still works: ``ScaleByAdamState(count=c, mu=m, nu=v)`` is accepted (the counter is
    dropped), and reading ``state.count`` says where the count is instead of returning
    ``tuple.count``."""

    def decorate(cls: type) -> type:
        make = cls.__new__

        def __new__(klass, *args, **kwargs):
            for name in fields:
                kwargs.pop(name, None)
            return make(klass, *args, **kwargs)

        def absent(self: Any, name: str = fields[0]) -> Any:
            raise AttributeError(
                f"{type(self).__name__} has no {name!r}: gradtx keeps one step counter per "
                f"optimizer; read it with gradtx.tree_get(state, 'count')"
            )

        cls.__new__ = __new__
        for name in fields:
            setattr(cls, name, property(functools.partial(absent, name=name)))
        return cls

    return decorate


def when(pred: Any, on_true: Callable[..., Any], on_false: Callable[..., Any], *args: Any) -> Any:
    """``lax.cond(pred, on_true, on_false, *args)`` under a trace; with a concrete ``pred``
    (eager execution) only the chosen branch runs and no ``cond`` is traced, whose fresh
    closures would otherwise be compiled again on every eager call.  For work a block does on
    some steps only (a preconditioner refresh every ``k`` steps)."""
    if jnp.ndim(pred) != 0:  # as lax.cond, eagerly too (bool() would take a one-element array)
        raise TypeError(f"when: the predicate must be a scalar, got shape {jnp.shape(pred)}")
    if isinstance(pred, jax.core.Tracer):
        return jax.lax.cond(pred, on_true, on_false, *args)
    return on_true(*args) if bool(pred) else on_false(*args)


StepFn = Callable[[Tree, Any, Tree | None, SimpleNamespace], tuple[Tree, Any]]
"""``step(updates, state, params, h) -> (updates, state)``; ``h`` holds the hyperparameters'
values at this step as attributes, ``h.count`` (steps completed, 0 on the first update) and
``h.extra`` (the keyword arguments of ``update`` beyond ``params``, e.g. ``value=``, for a
block that forwards them to an inner one)."""


def block(
    name: str,
    step: StepFn,
    init: Callable[[Tree], Any] | None = None,
    *,
    hyper: Mapping[str, Any] | None = None,
    needs_params: bool = False,
) -> Chain:
    """The public transformation of one block.

    Each update resolves ``hyper`` (numbers, arrays or schedules) at the chain's step and calls
    ``step(updates, state, params, h)``.  ``init`` builds the state (default: ``EmptyState()``).
    ``needs_params``: an update with leaves but without ``params`` fails with a clear error.
    """
    hyper = dict(hyper or {})
    reserved = {"count", "extra"} & set(hyper)
    if reserved:
        raise ValueError(f"block {name}: hyperparameters may not be named {sorted(reserved)}")

    def update(updates, state, params=None, count=None, **extra):
        if needs_params and jax.tree.leaves(updates):
            need_params(name, params)
        values = {k: resolve(v, count) for k, v in hyper.items()}
        return step(updates, state, params, SimpleNamespace(count=count, extra=extra, **values))

    make_state = init or init_empty_state

    def checked_init(params):
        before = BLOCK_INITS[0]
        state = make_state(params)
        if BLOCK_INITS[0] == before:  # no inner block: this one transforms the params itself
            check_float_params(name, params)
        BLOCK_INITS[0] += 1
        return state

    return transformation(Block(checked_init, update))


def check_float_params(name: str, params: Tree) -> None:
    """Integer and boolean parameter leaves would get float updates rounded away in
    ``apply_updates`` (silently zero): a block that transforms them refuses them at ``init``,
    naming the path.  Masked-out leaves (``MaskedNode``) are not leaves, so they pass."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in flat:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or jnp.issubdtype(dtype, jnp.inexact):
            continue
        where = jax.tree_util.keystr(path, simple=True, separator="/") or "<root>"
        raise TypeError(
            f"{name}: params leaf {where!r} has dtype {dtype}; float updates would be rounded "
            f"to zero when applied. Leave it out of what the optimizer sees (nnx: "
            f"nnx.Optimizer(model, tx, wrt=nnx.Param)), or give it no optimizer: "
            f"gradtx.multi_transform({{'train': tx, 'keep': gradtx.set_to_zero()}}, labels) or "
            f"gradtx.masked(tx, mask)"
        )
