"""Microbatching: evaluating a function over a large batch one slice at a time, to bound peak
memory, and combining the slices' results.

``microbatch(fun, argnums, microbatch_size)`` splits the batch arguments into ``n`` microbatches
of ``microbatch_size`` rows, evaluates ``fun`` on each in a ``lax.fori_loop`` (sequentially, so
only one microbatch's activations are alive at a time) and combines the results with an
``Accumulator``: their sum, mean, running mean or concatenation.  ``micro_vmap`` is ``jax.vmap``
evaluated that way and ``micro_grad`` per-example gradients (transformed, e.g. clipped for
DP-SGD, then accumulated) with per-example losses and metrics.

Microbatch ``i`` holds the rows ``i, i + n, i + 2n, ...`` (the batch axis is split in column-major
order), so a batch sharded along its batch axis stays sharded within each microbatch;
concatenation restores the original order.  Sums and means of float16/bfloat16 results are
accumulated in float32 and rounded once.  optax: ``optax.microbatching`` (same names and
arguments; ``optax.microbatch`` at top level).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Tree = Any
Function = Callable[..., Any]

IndividualOutputs = collections.namedtuple("Aux", ["values", "metrics", "aux"])
"""``micro_grad``'s second output: per-example ``values`` (the losses), ``metrics`` and the
function's ``aux``, each with the batch on axis 0."""


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How the results of the microbatches combine into one, as the program
    ``c = init(shapes); for i: c = update(c, result_i, i); return finalize(c)``.

    ``init(shapes)`` builds the carry from the ``jax.ShapeDtypeStruct`` tree of one result;
    ``aggregate(stacked)`` combines the results of one microbatch's rows stacked on axis 0 (what
    ``micro_vmap`` uses within a microbatch).  optax: ``optax.microbatching.Accumulator``.
    """

    init: Callable[[Tree], Tree]
    update: Callable[[Tree, Tree, Any], Tree]
    finalize: Callable[[Tree], Tree]
    aggregate: Callable[[Tree], Tree]


class AccumulationType(enum.Enum):
    """The built-in accumulators.  optax: ``optax.microbatching.AccumulationType`` (whose members
    are accepted too)."""

    MEAN = enum.auto()
    """The mean over the ``n`` microbatches (floats only)."""
    SUM = enum.auto()
    """The sum."""
    RUNNING_MEAN = enum.auto()
    """The mean over the microbatches evaluated (``num_real_microbatches`` of them)."""
    CONCAT = enum.auto()
    """The results concatenated along axis 0, in the batch's original order."""


# --- the built-in accumulators, leaf by leaf ---------------------------------------------------


class _Total(NamedTuple):
    """A running sum or mean of one leaf: ``value`` in at least float32 for low-precision
    floats, ``like`` an empty array of the result's dtype (what ``finalize`` rounds to)."""

    value: jax.Array
    like: jax.Array


def _wide(dtype: Any) -> jnp.dtype:
    """Low-precision floats are summed in float32."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype


def _is_total(x: Any) -> bool:
    return isinstance(x, _Total)


def _totals(kind: str, step: Callable, divisor: int | None, floats_only: bool) -> Accumulator:
    """``step(total, value, i) -> total`` on every leaf; ``finalize`` divides by ``divisor``
    (if any) and rounds to the result's dtype once."""

    def init(shapes):
        if floats_only and not all(
            jnp.issubdtype(s.dtype, jnp.inexact) for s in jax.tree.leaves(shapes)
        ):
            raise ValueError(f"microbatching: {kind} needs floating-point results")
        return jax.tree.map(
            # zeros_like keeps a ShapeDtypeStruct's sharding (explicit meshes)
            lambda s: _Total(jnp.zeros_like(s, _wide(s.dtype)), jnp.zeros((0,), s.dtype)),
            shapes,
        )

    def update(carry, values, i):
        return jax.tree.map(
            lambda v, t: _Total(step(t.value, v.astype(t.value.dtype), i), t.like), values, carry
        )

    def finalize(carry):
        def leaf(t):
            out = t.value if divisor is None else t.value / divisor
            return out.astype(t.like.dtype)

        return jax.tree.map(leaf, carry, is_leaf=_is_total)

    def aggregate(stacked):
        reduce = jnp.sum if kind == "SUM" else jnp.mean
        return jax.tree.map(
            lambda v: reduce(v.astype(_wide(v.dtype)), axis=0).astype(v.dtype), stacked
        )

    return Accumulator(init, update, finalize, aggregate)


def _running(total: jax.Array, value: jax.Array, i: Any) -> jax.Array:
    return total + (value - total) / jnp.asarray(i + 1).astype(total.dtype)


def _explicit_sharding(x: jax.Array) -> Any:
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or not mesh.are_all_axes_explicit:
        return None
    return sharding


def _unsplit(c: jax.Array) -> jax.Array:
    """``(n, m, ...) -> (n * m, ...)`` in column-major order of the first two axes: row
    ``i + j * n`` is ``c[i, j]``, the inverse of the split of the batch."""
    if c.ndim < 2:
        return c.reshape(-1)
    shape = (c.shape[0] * c.shape[1], *c.shape[2:])
    sharding = _explicit_sharding(c)
    if sharding is None:
        return c.reshape(shape, order="F")
    spec = jax.sharding.PartitionSpec(*tuple(sharding.spec)[1:])
    out = jax.sharding.NamedSharding(sharding.mesh, spec)
    return c.reshape(shape, order="F", out_sharding=out)


def _concat(n: int) -> Accumulator:
    return Accumulator(
        init=lambda shapes: jax.tree.map(
            lambda s: jnp.broadcast_to(jnp.zeros_like(s), (n, *s.shape)), shapes
        ),
        update=lambda c, v, i: jax.tree.map(lambda a, b: a.at[i].set(b.astype(a.dtype)), c, v),
        finalize=lambda c: jax.tree.map(_unsplit, c),
        aggregate=lambda v: v,
    )


def _positive(kind: str, n: int | None) -> int:
    if n is None or n <= 0:
        raise ValueError(f"microbatching: {kind} needs a positive number of microbatches, got {n}")
    return n


def _builtin(acc: Any, n: int | None) -> Accumulator | None:
    name = getattr(acc, "name", None) if isinstance(acc, enum.Enum) else None
    if name == "SUM":
        return _totals("SUM", lambda t, v, i: t + v, None, floats_only=False)
    if name == "MEAN":
        return _totals("MEAN", lambda t, v, i: t + v, _positive("MEAN", n), floats_only=True)
    if name == "RUNNING_MEAN":
        return _totals("RUNNING_MEAN", _running, None, floats_only=True)
    if name == "CONCAT":
        return _concat(_positive("CONCAT", n))
    return None


def _is_accumulator(x: Any) -> bool:
    return isinstance(x, Accumulator) or all(
        callable(getattr(x, f, None)) for f in ("init", "update", "finalize", "aggregate")
    )


def _canonical(spec: Any, n: int | None) -> Accumulator:
    """One accumulator from an ``Accumulator``, an ``AccumulationType`` or a tree of them that
    is a prefix of the results' tree."""

    def one(acc):
        built = _builtin(acc, n)
        if built is not None:
            return built
        if _is_accumulator(acc):
            return acc
        raise ValueError(f"microbatching: unknown accumulator {acc!r}")

    is_leaf = lambda x: isinstance(x, enum.Enum) or _is_accumulator(x)
    accs = jax.tree.map(one, spec, is_leaf=is_leaf)
    leaf = lambda x: isinstance(x, Accumulator) or _is_accumulator(x)

    def each(fn_name, *trees):
        return jax.tree.map(lambda a, *t: getattr(a, fn_name)(*t), accs, *trees, is_leaf=leaf)

    return Accumulator(
        init=lambda shapes: each("init", shapes),
        update=lambda c, v, i: jax.tree.map(
            lambda a, cc, vv: a.update(cc, vv, i), accs, c, v, is_leaf=leaf
        ),
        finalize=lambda c: each("finalize", c),
        aggregate=lambda v: each("aggregate", v),
    )


# --- splitting the batch ------------------------------------------------------------------------


def reshape_batch_axis(tree: Tree, microbatch_size: int, axis: int = 0) -> Tree:
    """Splits axis ``axis`` (size ``B``) of every leaf into ``(B // microbatch_size,
    microbatch_size)``, column-major: row ``k`` goes to ``[k % n, k // n]``, so microbatch ``i``
    holds rows ``i, i + n, ...`` and a sharding of the batch axis carries over to the
    ``microbatch_size`` axis.  optax: ``optax.microbatching.reshape_batch_axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> print(gradtx.microbatching.reshape_batch_axis(jnp.arange(6), 3))
        [[0 2 4]
         [1 3 5]]
    """

    def leaf(x):
        shape = (*x.shape[:axis], -1, microbatch_size, *x.shape[axis + 1 :])
        sharding = _explicit_sharding(x)
        if sharding is None:
            return x.reshape(shape, order="F")
        spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
        new_spec = (*spec[:axis], None, spec[axis], *spec[axis + 1 :])
        shards = x.shape[axis] // sharding.shard_shape(x.shape)[axis]
        if microbatch_size % shards:
            raise ValueError(
                f"reshape_batch_axis: the batch axis is split over {shards} shards, which must "
                f"divide microbatch_size={microbatch_size}"
            )
        out = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*new_spec))
        return x.reshape(shape, order="F", out_sharding=out)

    return jax.tree.map(leaf, tree)


def _as_tuple(x: Any) -> tuple:
    return (x,) if isinstance(x, int | str) else tuple(x)


def microbatch(
    fun: Function,
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: Any = AccumulationType.SUM,
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches: int | jax.Array | None = None,
) -> Function:
    """``fun`` evaluated one microbatch at a time, the results combined by ``accumulator``.

    The arguments at ``argnums`` (and the keywords in ``argnames``) have a batch axis
    (``in_axes``: one for all, or one per argument in the order ``argnums + argnames``), all of
    one size ``B``, a multiple of ``microbatch_size``.  ``fun`` sees ``microbatch_size`` rows of
    each in turn, ``n = B // microbatch_size`` times in a ``lax.fori_loop``.

    Args:
      fun: any function of the batch (e.g. a loss and its gradient).
      argnums: the positions of the batch arguments.
      microbatch_size: rows per microbatch (``None``: ``fun`` itself, unsplit).
      accumulator: an ``AccumulationType``, an ``Accumulator``, or a tree of them matching a
        prefix of ``fun``'s output (e.g. ``(CONCAT, SUM)`` for a pair).
      argnames: the names of keyword batch arguments.
      in_axes: the batch axis of each batch argument.
      num_real_microbatches: evaluate only the first this many microbatches (may be traced:
        a variable batch without recompiling); ``MEAN`` still divides by ``n``.

    optax: ``optax.microbatch`` / ``optax.microbatching.microbatch`` (same arguments).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> fun = lambda x: (x + 1, jnp.sum(3 * x))
        >>> types = gradtx.microbatching.AccumulationType
        >>> micro = gradtx.microbatch(fun, 0, 2, accumulator=(types.CONCAT, types.SUM))
        >>> print(*micro(jnp.array([1, 2, 3, 4])))  # what fun gives on the whole batch
        [2 3 4 5] 30
    """
    if microbatch_size is None:
        return fun
    if isinstance(microbatch_size, bool) or int(microbatch_size) != microbatch_size:
        raise ValueError(f"microbatch: microbatch_size={microbatch_size!r} must be an integer")
    if microbatch_size < 1:
        raise ValueError(f"microbatch: microbatch_size={microbatch_size} must be >= 1")
    argnums, argnames = _as_tuple(argnums), _as_tuple(argnames)
    n_batch = len(argnums) + len(argnames)
    axes = (in_axes,) * n_batch if isinstance(in_axes, int) else tuple(in_axes)
    if len(axes) != n_batch:
        raise ValueError(
            f"microbatch: in_axes has {len(axes)} entries for {n_batch} batch arguments "
            f"(argnums {argnums}, argnames {argnames})"
        )

    def split(args, kwargs):
        batch = [args[i] for i in argnums] + [kwargs[k] for k in argnames]
        sizes = {x.shape[ax] for ax, b in zip(axes, batch, strict=True) for x in jax.tree.leaves(b)}
        if len(sizes) > 1:
            raise ValueError(f"microbatch: the batch arguments' batch axes differ: {sorted(sizes)}")
        if not sizes:
            raise ValueError("microbatch: the batch arguments hold no arrays")
        (size,) = sizes
        if size % microbatch_size:
            raise ValueError(
                f"microbatch: the batch size {size} is not a multiple of "
                f"microbatch_size={microbatch_size}"
            )
        args, kwargs = list(args), dict(kwargs)
        for i, ax in zip(argnums, axes, strict=False):
            args[i] = reshape_batch_axis(args[i], microbatch_size, ax)
        for k, ax in zip(argnames, axes[len(argnums) :], strict=True):
            kwargs[k] = reshape_batch_axis(kwargs[k], microbatch_size, ax)
        return args, kwargs, size // microbatch_size

    def microbatched(*args, **kwargs):
        args, kwargs, n = split(args, kwargs)
        acc = _canonical(accumulator, n)
        take = lambda tree, i, ax: jax.tree.map(
            lambda x: jax.lax.dynamic_index_in_dim(x, i, ax, keepdims=False), tree
        )

        def evaluate(i):
            a, kw = list(args), dict(kwargs)
            for j, ax in zip(argnums, axes, strict=False):
                a[j] = take(a[j], i, ax)
            for k, ax in zip(argnames, axes[len(argnums) :], strict=True):
                kw[k] = take(kw[k], i, ax)
            return fun(*a, **kw)

        carry = acc.init(jax.eval_shape(evaluate, 0))
        stop = n if num_real_microbatches is None else num_real_microbatches
        body = lambda i, c: acc.update(c, evaluate(i), i)
        return acc.finalize(jax.lax.fori_loop(0, stop, body, carry))

    return microbatched


def micro_vmap(
    fun: Function,
    in_axes: int | Sequence[int | None] | None = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable[..., Function] = jax.vmap,
    accumulator: Any = AccumulationType.CONCAT,
    num_real_microbatches: int | jax.Array | None = None,
) -> Function:
    """``jax.vmap(fun, in_axes)`` evaluated ``microbatch_size`` rows at a time; with the default
    ``CONCAT`` it returns what ``jax.vmap`` returns, with ``SUM``/``MEAN`` the reduction over the
    batch without ever holding the full batch of outputs.

    Args:
      fun: the function of one example.
      in_axes: the mapped axis of each positional argument (``None``: not mapped); an int maps
        every positional argument, as in ``jax.vmap``; keyword arguments are mapped on axis 0.
      out_axes: must be 0.
      microbatch_size: rows per microbatch (``None``: the whole batch at once).
      vmap_fn: the vectorising map (``jax.vmap`` or one with options bound).
      accumulator: how the per-example outputs combine (see ``microbatch``).
      num_real_microbatches: see ``microbatch``.

    optax: ``optax.microbatching.micro_vmap`` (where an int ``in_axes`` maps only the first
    argument).

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> print(gradtx.microbatching.micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(6)))
        [ 0  1  4  9 16 25]
    """
    if out_axes != 0:
        raise NotImplementedError("micro_vmap: only out_axes=0 is supported")

    def wrapped(*args, **kwargs):
        axes = (in_axes,) * len(args) if in_axes is None or isinstance(in_axes, int) else in_axes
        axes = tuple(axes)
        if len(axes) != len(args):
            raise ValueError(f"micro_vmap: in_axes has {len(axes)} entries for {len(args)} args")
        mapped = tuple(i for i, ax in enumerate(axes) if ax is not None)

        def per_chunk(*a, kwargs):
            out = vmap_fn(fun, axes, 0)(*a, **kwargs)
            rows = jax.tree.leaves(out)[0].shape[0] if jax.tree.leaves(out) else None
            return _canonical(accumulator, rows).aggregate(out)

        run = microbatch(
            per_chunk,
            argnums=mapped,
            microbatch_size=microbatch_size,
            accumulator=accumulator,
            argnames="kwargs",
            in_axes=(*(axes[i] for i in mapped), 0),
            num_real_microbatches=num_real_microbatches,
        )
        return run(*args, kwargs=kwargs)

    return wrapped


def micro_grad(
    fun: Function,
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: Any = AccumulationType.SUM,
    transform_fn: Callable[[Tree], Tree] = lambda g: g,
    metrics_fn: Callable[[Tree], Tree] = lambda g: None,
    num_real_microbatches: int | jax.Array | None = None,
) -> Function:
    """Per-example gradients, transformed and accumulated: returns a function giving
    ``(accumulate_b transform_fn(grad_b), IndividualOutputs(values, metrics, aux))``, with
    ``grad_b`` the gradient of ``fun`` on example ``b`` alone.

    ``fun(params, batch, ...)`` is differentiated with respect to ``argnums``; the arguments at
    ``batch_argnums`` have the batch on axis 0.  With ``keep_batch_dim`` each example is passed
    as a batch of one (so ``fun`` may average over its batch as usual).  ``transform_fn`` acts on
    each example's gradient (clipping it, or returning ``(g, g**2)`` for a second moment);
    ``metrics_fn(grad_b)`` is returned per example (keep it small).

    Args:
      fun: the loss, returning ``value`` or, with ``has_aux``, ``(value, aux)``.
      has_aux: whether ``fun`` returns ``(value, aux)``.
      argnums: the arguments to differentiate.
      batch_argnums: the arguments with a batch axis.
      keep_batch_dim: hand ``fun`` each example with a batch axis of one.
      microbatch_size: examples per microbatch (``None``: the whole batch at once).
      accumulator: how the transformed gradients combine (default their sum).
      transform_fn: applied to each example's gradient before accumulating.
      metrics_fn: per-example metrics of the gradient.
      num_real_microbatches: see ``microbatch``.

    optax: ``optax.microbatching.micro_grad`` (same arguments and outputs).

    Example:
        DP-SGD's clipped sum of per-example gradients:

        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
        >>> clip = lambda g: g * jnp.minimum(1.0, 1.0 / jnp.linalg.norm(g))
        >>> grad_fn = gradtx.microbatching.micro_grad(
        ...     loss, batch_argnums=(1, 2), transform_fn=clip, metrics_fn=jnp.linalg.norm
        ... )
        >>> x, y = jnp.ones((4, 1)), jnp.array([0.0, 0.5, 2.0, 4.0])
        >>> summed, aux = grad_fn(jnp.zeros(1), x, y)  # per-example gradients -y
        >>> print(summed, aux.metrics)
        [-2.5] [0.  0.5 2.  4. ]
    """
    batch_argnums = _as_tuple(batch_argnums)
    with_aux = fun if has_aux else lambda *a, **k: (fun(*a, **k), None)
    value_and_grad = jax.value_and_grad(with_aux, argnums, has_aux=True)

    def per_example(*args, **kwargs):
        (value, aux), grad = value_and_grad(*args, **kwargs)
        return transform_fn(grad), IndividualOutputs(value, metrics_fn(grad), aux)

    def wrapped(*args, **kwargs):
        if max(batch_argnums) >= len(args):
            raise ValueError(
                f"micro_grad: batch_argnums={batch_argnums} but the function got {len(args)} "
                "positional arguments"
            )
        args = list(args)
        if keep_batch_dim:
            for i in batch_argnums:
                args[i] = jax.tree.map(lambda x: jnp.expand_dims(x, 1), args[i])
        axes = [0 if i in batch_argnums else None for i in range(len(args))]
        mapped = micro_vmap(
            per_example,
            in_axes=axes,
            microbatch_size=microbatch_size,
            accumulator=(accumulator, AccumulationType.CONCAT),
            num_real_microbatches=num_real_microbatches,
        )
        return mapped(*args, **kwargs)

    return wrapped


__all__ = [
    "AccumulationType",
    "Accumulator",
    "IndividualOutputs",
    "micro_grad",
    "micro_vmap",
    "microbatch",
    "reshape_batch_axis",
]
