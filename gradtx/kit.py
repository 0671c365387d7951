"""The kit for writing a block: every block in gradtx is written with it, and so can yours be.

A block turns incoming updates into outgoing ones, leaf by leaf, with some state.  Writing one
takes four things, each a tool here:

1. **Validated hyperparameters.**  Annotate each argument with its allowed interval
   (``b1: kit.Decay = 0.9``) and decorate the factory with ``@kit.validated``: a bad value fails
   when the optimizer is built, naming the argument and the interval.
2. **Constants or schedules.**  Every numeric hyperparameter may be a number, an array (traced
   under ``jit``/``vmap``/``grad``) or a schedule ``step -> value``.  ``kit.block(..., hyper=...)``
   resolves them at the chain's step and hands the values to your step function as ``h.name``.
3. **A per-leaf function with the dtype rule.**  ``kit.map_state(name, leaf, updates, state)``
   calls ``leaf(g, s, keep=...)`` on every leaf, where ``s`` is your state NamedTuple holding that
   leaf's values.  Leaves whose inputs differ in dtype or are below float32 are computed once in
   float32 (or wider) and rounded once; ``keep(new_state)`` rounds the new state to its stored
   dtypes, so the update is computed from the state as it will be stored.  Outputs are cast back
   to their inputs' dtypes.  Mismatched trees raise an error naming the first differing path.
4. **A named state.**  A NamedTuple of parameter-shaped trees (``kit.init_state`` builds its
   ``init``), readable later with ``gradtx.tree_get(state, "field")``.

A complete optimizer (AdaBelief's second moment with a momentum on top) is about twenty lines::

    from typing import NamedTuple
    import jax.numpy as jnp
    import gradtx
    from gradtx import kit

    class BeliefState(NamedTuple):
        mu: kit.Tree
        s: kit.Tree

    @kit.validated
    def scale_by_my_belief(b1: kit.Decay = 0.9, b2: kit.Decay = 0.999, eps: kit.NonNegative = 1e-8):
        def step(updates, state, params, h):
            debias1, debias2 = kit.Debias(h.b1, h.count), kit.Debias(h.b2, h.count)

            def leaf(g, s, *, keep):
                mu = kit.ema(g, s.mu, h.b1)
                s = keep(BeliefState(mu, kit.ema_sq(g - mu, s.s, h.b2)))
                return debias1(s.mu) / (jnp.sqrt(debias2(s.s)) + h.eps), s

            return kit.map_state("scale_by_my_belief", leaf, updates, state)

        return kit.block("scale_by_my_belief", step, kit.init_state(BeliefState),
                         hyper=dict(b1=b1, b2=b2, eps=eps))

    my_optimizer = gradtx.chain(scale_by_my_belief(), gradtx.scale_by_learning_rate(1e-3))
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import re
import typing
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import (
    BLOCK_INITS,
    Block,
    Chain,
    ScalarOrSchedule,
    init_empty_state,
    transformation,
)

Tree = Any
"""A pytree of arrays (in a state NamedTuple: a tree with the params' structure)."""


# --- hyperparameters: allowed intervals, checked at construction ------------------------------

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,]+),\s*([^\])]+)\s*([\])])\s*$")


class Range:
    """An allowed interval such as ``"[0, 1)"`` (``inf`` for no bound); ``integer=True`` also
    requires a whole number.  Used in ``Annotated`` hints read by ``validated``."""

    def __init__(self, interval: str, *, integer: bool = False):
        m = _INTERVAL.match(interval)
        if m is None:
            raise ValueError(f"Range: {interval!r} is not an interval such as '[0, 1)'")
        lo_b, lo, hi, hi_b = m.groups()
        self.interval, self.integer = interval, integer
        self._lo, self._hi = float(lo), float(hi)
        self._closed = (lo_b == "[", hi_b == "]")

    def __repr__(self) -> str:
        return f"Range({self.interval!r}{', integer=True' if self.integer else ''})"

    def contains(self, value: Any) -> bool:
        v = np.asarray(value, dtype=float)
        ok = (v >= self._lo) if self._closed[0] else (v > self._lo)
        ok &= (v <= self._hi) if self._closed[1] else (v < self._hi)
        if self.integer:
            ok &= v == np.round(v)
        return bool(np.all(ok)) and not bool(np.any(np.isnan(v)))

    def check(self, where: str, name: str, value: Any) -> None:
        """Raises ValueError if a concrete ``value`` lies outside; schedules and traced values
        (under jit/vmap/grad) pass unchecked."""
        if not _is_static_number(value):
            return
        if not self.contains(value):
            kind = "an integer " if self.integer else ""
            raise ValueError(
                f"{where}: {name}={value!r} is out of range; allowed: {name} {kind}in "
                f"{self.interval}"
            )


def _is_static_number(x: Any) -> bool:
    if callable(x) or x is None or isinstance(x, jax.core.Tracer):
        return False
    try:
        np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def check_ranges(where: str, **checks: tuple[Any, str]) -> None:
    """``check_ranges("adam", b1=(b1, "[0, 1)"))``: ``Range(interval).check`` for each argument,
    for checks a signature cannot express (a tuple's members, a computed default)."""
    for name, (value, interval) in checks.items():
        Range(interval).check(where, name, value)


Rate = Annotated[ScalarOrSchedule, Range("(-inf, inf)")]
"""A learning rate or other step size: a number, an array or a schedule.  A negative rate
ascends, as in optax (``sgd(-lr)`` maximises); ``chain(scale(-1), tx)`` is torch's
``maximize=True`` for any optimizer."""
Decay = Annotated[ScalarOrSchedule, Range("[0, 1)")]
"""A decay rate in ``[0, 1)`` (Adam's ``b1``, ``b2``): a number, an array or a schedule."""
Fraction = Annotated[ScalarOrSchedule, Range("[0, 1]")]
"""A number in ``[0, 1]``, an array or a schedule."""
NonNegative = Annotated[ScalarOrSchedule, Range("[0, inf)")]
"""A number >= 0 (an epsilon, a weight decay), an array or a schedule."""
Positive = Annotated[ScalarOrSchedule, Range("(0, inf)")]
"""A number > 0, an array or a schedule."""
Steps = Annotated[int, Range("[1, inf)", integer=True)]
"""A whole number of steps >= 1."""
NonNegativeConstant = Annotated[float, Range("[0, inf)")]
"""A number >= 0 the rule builds constants from when the optimizer is built (not a schedule)."""
PositiveConstant = Annotated[float, Range("(0, inf)")]
"""A number > 0 the rule builds constants from (not a schedule)."""
ConstantDecay = Annotated[float, Range("[0, 1)")]
"""A decay rate in ``[0, 1)`` the rule builds constants from (not a schedule)."""


def _range_in(hint: Any) -> Range | None:
    """The ``Range`` inside an ``Annotated`` hint, also within ``X | None``."""
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Range):
            return meta
    for arg in typing.get_args(hint):
        found = _range_in(arg)
        if found is not None:
            return found
    return None


@functools.cache
def _ranges(fn: Callable[..., Any]) -> dict[str, Range]:
    hints = typing.get_type_hints(fn, include_extras=True)
    return {n: r for n, h in hints.items() if (r := _range_in(h)) is not None}


def ranges_of(fn: Callable[..., Any]) -> dict[str, Range]:
    """The ``Range`` of each annotated argument of ``fn`` (a ``validated`` factory or not)."""
    return _ranges(inspect.unwrap(fn))


def _check_kind(where: str, name: str, value: Any, default: Any) -> None:
    if value is None and default is None:
        return
    ok = callable(value) or isinstance(value, numbers.Number | np.ndarray | jax.Array)
    if isinstance(value, bool) or not ok:
        raise TypeError(
            f"{where}: {name}={value!r} must be a number, an array or a schedule "
            f"(a function of the step); got {type(value).__name__}"
        )


def validated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Checks every argument annotated with a ``Range`` when ``fn`` is called: the value must be
    a number, an array or a schedule (``None`` only where ``None`` is the default) and, when
    concrete, inside the interval.  Errors name ``fn``, the argument and the interval.  The
    annotations also tell ``inject_hyperparams`` which arguments are hyperparameters."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, rng in ranges_of(fn).items():
            if name in bound.arguments:
                value, default = bound.arguments[name], signature.parameters[name].default
                _check_kind(fn.__name__, name, value, default)
                if value is not None:
                    rng.check(fn.__name__, name, value)
        return fn(*args, **kwargs)

    checked.__gradtx_validated__ = True  # its annotations declare its hyperparameters
    return checked


# --- hyperparameters: constants or schedules --------------------------------------------------


def resolve(value: Any, count: jax.Array) -> Any:
    """The value of a number-or-schedule hyperparameter at step ``count``.

    A schedule gets the step as the default integer type (int64 under x64), so that ``step / 3``
    in a user's schedule is float64 there rather than the float32 that int32 / int gives."""
    if not callable(value):
        return value
    return value(jnp.asarray(count).astype(jnp.result_type(int)))


def scalar(value: Any, like: jax.Array) -> Any:
    """A hyperparameter as an operand for leaf ``like``: Python numbers stay weakly typed,
    arrays (traced or batched hyperparameters) are cast to the leaf's dtype."""
    if isinstance(value, int | float):
        return value
    return jnp.asarray(value).astype(jnp.result_type(like))


def is_zero(value: Any) -> bool:
    """True for a Python number equal to 0 (so a block can skip work it would multiply by 0)."""
    return isinstance(value, int | float) and value == 0


# --- the per-leaf map and the dtype rule ------------------------------------------------------


def _widened(fn: Callable[..., tuple]) -> Callable[..., tuple]:
    """``fn`` computed in the widest of float32 and its inputs' dtypes, outputs cast back to the
    matching inputs' dtypes; ``keep`` rounds new state through the stored dtypes."""

    def call(*args: jax.Array) -> tuple:
        stored = [jnp.result_type(a) for a in args]
        k = jnp.promote_types(jnp.float32, jnp.result_type(*args))
        same = all(dt == k for dt in stored) or jnp.issubdtype(k, jnp.complexfloating)
        if same:
            outs = fn(*args, keep=lambda *xs: xs)
        else:

            def keep(*xs: jax.Array | None) -> tuple:
                dts = stored[1:] + [k] * len(xs)  # values beyond the state inputs stay as they are
                return tuple(
                    x if x is None else x.astype(dt).astype(k)
                    for x, dt in zip(xs, dts, strict=False)
                )

            outs = fn(*(a.astype(k) for a in args), keep=keep)
        return tuple(
            o if o is None or i >= len(stored) else o.astype(stored[i]) for i, o in enumerate(outs)
        )

    return call


def leafwise(
    where: str,
    fn: Callable[..., tuple],
    n_out: int,
    tree: Tree,
    *rest: Tree,
    names: tuple[str, ...] | None = None,
    widen: bool = False,
) -> tuple:
    """``fn`` on matching leaves of ``tree`` and ``rest``; returns ``n_out`` trees.

    One call per leaf keeps a leaf's whole arithmetic in one expression, so XLA fuses it and
    shares no temporaries across leaves.  ``widen=True`` computes each leaf in the widest of
    float32 and its inputs' dtypes when they are not all one dtype of at least float32, casts
    output ``i`` back to input ``i``'s dtype, and passes ``fn`` a keyword ``keep(*new_state)``
    that rounds new state values through their stored dtypes (the inputs after the first).
    Mismatched trees raise an error naming ``where``, the tree (from ``names``, default
    ``state[i]``) and the first differing path.
    """
    for i, r in enumerate(rest):
        check_match(where, "updates", tree, names[i] if names else f"state[{i}]", r)
    leaves, treedef = jax.tree.flatten(tree)
    others = [jax.tree.leaves(r) for r in rest]
    call = _widened(fn) if widen else fn
    outs = [call(*args) for args in zip(leaves, *others, strict=True)]
    return tuple(treedef.unflatten([o[k] for o in outs]) for k in range(n_out))


def map_state(
    where: str,
    fn: Callable[..., tuple[jax.Array, NamedTuple]],
    updates: Tree,
    state: NamedTuple,
    *others: Tree,
    widen: bool = True,
) -> tuple[Tree, NamedTuple]:
    """``fn(g, s, *o, keep=...) -> (u, new_s)`` on every leaf; returns ``(updates, new_state)``.

    ``state`` is a NamedTuple of trees shaped like ``updates``; ``s`` and ``new_s`` are the same
    NamedTuple holding one leaf's values; ``others`` (e.g. the params) are read-only.
    ``keep(new_s)`` rounds the new state to its stored dtypes (see ``leafwise``): use the kept
    value to compute the update, so it matches what the next step will read.  Rounding one
    field at a time is ``s = keep(s._replace(mu=...))``.  ``u`` and
    ``new_s`` are cast back to the dtypes of ``g`` and ``s``.
    """
    cls, n = type(state), len(state)

    def leaf(g, *args, keep=None):
        old = cls(*args[:n])
        done = list(old)  # values already as stored: the inputs, and what keep returned

        def rounded(s):
            if keep is None:
                return s
            fresh = keep(*(None if any(x is d for d in done) else x for x in s))
            out = cls(*(x if f is None else f for x, f in zip(s, fresh, strict=True)))
            done.extend(out)
            return out

        u, new = fn(g, old, *args[n:], keep=rounded)
        return (u.astype(g.dtype), *(x.astype(o.dtype) for x, o in zip(new, old, strict=True)))

    names = (*state._fields, *(f"others[{i}]" for i in range(len(others))))
    if not widen:
        inner = leaf
        leaf = lambda *args: inner(*args, keep=None)
    out = leafwise(where, leaf, 1 + n, updates, *state, *others, names=names, widen=widen)
    return out[0], cls(*out[1:])


# --- numerics ----------------------------------------------------------------------------------


def canonical_dtype(dtype: Any) -> jnp.dtype | None:
    return None if dtype is None else jnp.dtype(dtype)


def compute_dtype(*xs: Any) -> jnp.dtype:
    """The precision scalars (bias corrections, schedules) are computed in for leaves ``xs``:
    their widest float precision, at least float32 (so float64 stays float64 under x64)."""
    return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def scalar_dtype(params: Tree) -> jnp.dtype:
    """dtype of an optimizer's own scalars (a learned step size): the lowest float precision
    among the leaves, but never below float32, so a bfloat16 model still adapts smoothly."""
    floats = [
        jnp.result_type(x)
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    if not floats:
        return jnp.dtype(jnp.float32)
    return jnp.promote_types(min(floats, key=lambda d: jnp.finfo(d).bits), jnp.float32)


def _log_base(base: Any, dt: Any) -> jax.Array:
    # A Python float's log is taken in double precision before rounding, so 1 - 0.999**t keeps
    # full float32 accuracy instead of inheriting the ~1e-5 error of 0.999 rounded to float32.
    if isinstance(base, int | float):
        return jnp.asarray(math.log(base) if base > 0 else -math.inf, dt)
    return jnp.log(jnp.asarray(base).astype(dt))


def power(base: Any, count: jax.Array, like: Any) -> jax.Array:
    """``base**count`` in the precision of ``like`` (at least float32)."""
    dt = compute_dtype(like)
    return jnp.exp(count.astype(dt) * _log_base(base, dt))


def one_minus_power(base: Any, count: jax.Array, like: Any) -> jax.Array:
    """``1 - base**count`` without cancellation: ``-expm1(count * log(base))``, count >= 1."""
    dt = compute_dtype(like)
    return -jnp.expm1(count.astype(dt) * _log_base(base, dt))


class Debias:
    """``Debias(decay, count)(x, ahead=0) = x / (1 - decay^(count + 1 + ahead))``: the bias
    correction of a zero-initialised moving average, computed once per dtype for a whole tree."""

    def __init__(self, decay: Any, count: jax.Array):
        self.decay, self.count = decay, count
        self._cache: dict[tuple[Any, int], jax.Array] = {}

    def __call__(self, x: jax.Array, ahead: int = 0) -> jax.Array:
        key = (compute_dtype(x), ahead)
        if key not in self._cache:
            self._cache[key] = one_minus_power(self.decay, self.count + 1 + ahead, x)
        return (x / self._cache[key]).astype(x.dtype)


def ema(g: jax.Array, m: jax.Array, decay: Any) -> jax.Array:
    """``decay * m + (1 - decay) * g``."""
    return (1 - decay) * g + decay * m


def ema_sq(g: jax.Array, v: jax.Array, decay: Any) -> jax.Array:
    """``decay * v + (1 - decay) * |g|**2``."""
    return (1 - decay) * abs_sq(g) + decay * v


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at 0 (where ``sqrt``'s is infinite):
    a distance that starts at exactly 0 can still be differentiated through."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2`` (real for complex ``x``)."""
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def global_norm(tree: Tree) -> jax.Array:
    """``sqrt(sum of |x|**2 over every leaf)``, accumulated in at least float32."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    return jnp.sqrt(sum(jnp.sum(abs_sq(x.astype(compute_dtype(x)))) for x in leaves))


def safe_norm(x: jax.Array, min_norm: Any) -> jax.Array:
    """``max(||x||_2, min_norm)`` over all of ``x``, with a finite gradient at ``x = 0`` (the
    norm's own gradient there is NaN)."""
    sq = jnp.sum(abs_sq(x))
    small = sq <= jnp.square(min_norm)
    return jnp.where(small, min_norm, jnp.sqrt(jnp.where(small, 1, sq))).astype(sq.dtype)


def vdot(a: Tree, b: Tree) -> jax.Array:
    """``<a, b>`` over all leaves, accumulated in at least float32 (real part for complex)."""
    terms = [
        jnp.sum((x.conj() * y).real.astype(compute_dtype(x)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum(terms) if terms else jnp.zeros([], jnp.float32)


def l1_norm(tree: Tree) -> jax.Array:
    """``sum |x|`` over all leaves, accumulated in at least float32."""
    terms = [jnp.sum(jnp.abs(x).astype(compute_dtype(x))) for x in jax.tree.leaves(tree)]
    return sum(terms) if terms else jnp.zeros([], jnp.float32)


def zeros_like(tree: Tree, dtype: Any = None) -> Tree:
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def full_like(tree: Tree, value: Any, dtype: Any = None) -> Tree:
    return jax.tree.map(lambda x: jnp.full_like(x, value, dtype=dtype), tree)


def cast(tree: Tree, dtype: Any) -> Tree:
    return tree if dtype is None else jax.tree.map(lambda x: x.astype(dtype), tree)


def cast_like(tree: Tree, like: Tree) -> Tree:
    return jax.tree.map(lambda x, y: x.astype(jnp.result_type(y)), tree, like)


def copy(tree: Tree) -> Tree:
    """Distinct buffers, so params and a state holding a snapshot can both be donated."""
    return jax.tree.map(lambda p: jnp.array(p, copy=True), tree)


# --- checks ------------------------------------------------------------------------------------


def _paths(tree: Tree) -> list[str]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in flat]


def check_match(where: str, a_name: str, a: Tree, b_name: str, b: Tree) -> None:
    """Raises a ValueError naming ``where`` and the first differing path when two trees that must
    line up (e.g. updates and a moment) do not: structure first, then leaf shapes.

    Runs at trace time only, so it costs nothing inside a compiled step.
    """
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    if ta != tb:
        pa, pb = _paths(a), _paths(b)
        first = next(
            (i for i, (x, y) in enumerate(zip(pa, pb, strict=False)) if x != y),
            min(len(pa), len(pb)),
        )
        at_a = pa[first] if first < len(pa) else "<nothing>"
        at_b = pb[first] if first < len(pb) else "<nothing>"
        raise ValueError(
            f"{where}: {a_name} and {b_name} have different tree structures "
            f"({len(pa)} vs {len(pb)} leaves); first difference at leaf {first}: "
            f"{a_name} has {at_a!r}, {b_name} has {at_b!r}. "
            f"Did you pass the state of another optimizer or params of another model?"
        )
    for i, (x, y) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)):
        if np.shape(x) != np.shape(y):
            raise ValueError(
                f"{where}: {a_name} and {b_name} differ in shape at {_paths(a)[i]!r}: "
                f"{np.shape(x)} vs {np.shape(y)}"
            )


def need_params(where: str, params: Tree | None) -> None:
    """Raises the error every block that reads the parameters gives when they are missing."""
    if params is None:
        raise ValueError(f"{where}: update needs params (pass params=...)")


# --- making a block --------------------------------------------------------------------------


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


__all__ = [
    "ConstantDecay",
    "Debias",
    "Decay",
    "Fraction",
    "NonNegative",
    "NonNegativeConstant",
    "Positive",
    "PositiveConstant",
    "Range",
    "Rate",
    "Steps",
    "Tree",
    "abs_sq",
    "block",
    "canonical_dtype",
    "cast",
    "cast_like",
    "check_float_params",
    "check_match",
    "check_ranges",
    "compute_dtype",
    "copy",
    "ema",
    "ema_sq",
    "full_like",
    "global_norm",
    "init_state",
    "is_zero",
    "l1_norm",
    "leafwise",
    "map_state",
    "need_params",
    "one_counter",
    "one_minus_power",
    "power",
    "ranges_of",
    "resolve",
    "safe_norm",
    "safe_sqrt",
    "scalar",
    "scalar_dtype",
    "validated",
    "vdot",
    "zeros_like",
]
