"""Newton–Schulz orthogonalisation (the core of Muon) and the layout that turns a leaf into a
stack of matrices.

``NS(X)`` maps ``X = U S V^T`` to about ``U V^T`` (singular values pushed towards 1) by a few
iterations of the odd quintic ``X <- a X + b (X X^H) X + c (X X^H)^2 X`` after a scaling that
puts every singular value in ``(0, 1]``.  A leaf becomes a stack of matrices by its
``MuonDimensionNumbers``: ``reduction_axis`` (fan-in, the rows) and ``output_axis`` (fan-out, the
columns); every other axis is a batch axis whose matrices are orthogonalised independently.  All
matrices of one shape, across leaves, are orthogonalised in one batched computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import kit, paths

Tree = kit.Tree
Coefficients = Sequence[float] | Sequence[Sequence[float]] | str
Preconditioning = Literal["frobenius", "spectral", "aol", "schatten"]

NS_COEFFS_PRESETS: dict[str, tuple] = {
    "standard": (3.4445, -4.7750, 2.0315),
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
}
"""Newton–Schulz coefficients by name: the authors' quintic ``(a, b, c)`` repeated every step,
and the per-step table of Dion (Ahn et al. 2025)."""

_DEFAULT_NS_COEFFS = NS_COEFFS_PRESETS["standard"]
_PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
_EPS_MODES = ("add", "max")


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a leaf form the matrix Muon orthogonalises: ``reduction_axis`` the input
    (fan-in, rows) and ``output_axis`` the output (fan-out, columns), each an int or a tuple of
    ints (merged in order); the other axes are batch axes.  The default reads a 2-D leaf as a
    flax/JAX kernel ``(in, out)``; a torch weight ``(out, in)`` is ``MuonDimensionNumbers(1, 0)``,
    a flax Conv kernel HWIO ``MuonDimensionNumbers((0, 1, 2), 3)``, layers stacked on axis 0
    ``MuonDimensionNumbers(1, 2)``.  gradtx also takes empty tuples: a vector as one row is
    ``MuonDimensionNumbers((), 0)``.  optax: ``optax.contrib.MuonDimensionNumbers``."""

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


# --- configuration: coefficients and which axes form the matrices ------------------------------


def _coefficient_rows(where: str, ns_coeffs: Coefficients, ns_steps: int) -> tuple[tuple, ...]:
    """One ``(a, b, c)`` per iteration: a triple repeated ``ns_steps`` times, or a table's rows
    (a table runs all its rows; it may not have more than ``ns_steps``)."""
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS_PRESETS:
            raise ValueError(
                f"{where}: ns_coeffs={ns_coeffs!r} is unknown; presets: {list(NS_COEFFS_PRESETS)}"
            )
        ns_coeffs = NS_COEFFS_PRESETS[ns_coeffs]
    c = np.asarray(ns_coeffs, np.float64)
    if c.shape == (3,):
        return (tuple(float(v) for v in c),) * ns_steps
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"{where}: ns_coeffs must have shape (3,) or (n, 3), got {c.shape}")
    if c.shape[0] > ns_steps:
        raise ValueError(
            f"{where}: ns_coeffs has {c.shape[0]} rows but ns_steps={ns_steps}; a table runs "
            f"all its rows, so pass ns_steps >= {c.shape[0]}"
        )
    return tuple(tuple(float(v) for v in row) for row in c)


class _Layout(NamedTuple):
    """How a leaf becomes a stack of matrices: its axes permuted to (batch, reduction, output)
    and merged into ``(batch, fan_in, fan_out)``."""

    perm: tuple[int, ...]
    moved: tuple[int, ...]  # the leaf's shape in ``perm`` order
    batch: int
    fan_in: int
    fan_out: int

    def to_stack(self, x: jax.Array) -> jax.Array:
        """``(batch, rows, cols)`` with ``rows <= cols``: NS is cheaper on the wide side and
        ``NS(X^T) = NS(X)^T``, so a tall matrix is orthogonalised transposed."""
        s = x.transpose(self.perm).reshape(self.batch, self.fan_in, self.fan_out)
        return s if self.fan_in <= self.fan_out else jnp.swapaxes(s, -1, -2)

    def from_stack(self, s: jax.Array) -> jax.Array:
        s = s if self.fan_in <= self.fan_out else jnp.swapaxes(s, -1, -2)
        return s.reshape(self.moved).transpose(tuple(np.argsort(self.perm)))


def _is_dims(x: Any) -> bool:
    # duck-typed, so optax's MuonDimensionNumbers work too
    return x is None or (hasattr(x, "reduction_axis") and hasattr(x, "output_axis"))


def _resolve(where: str, spec: Any, tree: Tree) -> list[Any]:
    """The dimension numbers (or ``None``) of each leaf of ``tree`` from ``spec``: ``None``, one
    ``MuonDimensionNumbers`` for every leaf, a tree of them (or a prefix of the params' tree) with
    ``None`` entries, or a function ``params -> such a tree``."""
    n = len(jax.tree.leaves(tree))
    given = spec(tree) if callable(spec) else spec
    if given is None:
        return [None] * n
    out: list[Any] = []
    try:
        jax.tree.map(lambda d, sub: out.extend([d] * len(jax.tree.leaves(sub))), given, tree,
                     is_leaf=_is_dims)  # fmt: skip
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{where}: the weight dimension numbers do not line up with the params ({err}); give "
            f"MuonDimensionNumbers or None per parameter, or a function of the params"
        ) from None
    for i, d in enumerate(out):
        if not _is_dims(d):
            raise TypeError(
                f"{where}: expected MuonDimensionNumbers or None for parameter "
                f"{paths.leaf_paths(tree)[i]!r}, found {type(d).__name__}"
            )
    return out


def _axes(value: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    axes = (value,) if isinstance(value, int | np.integer) else tuple(value)
    if any(not -ndim <= a < ndim for a in axes):
        raise IndexError(f"axes {axes} are out of range")
    return tuple(int(a) % ndim for a in axes)


def _layout(where: str, path: str, shape: tuple[int, ...], dims: Any) -> _Layout:
    ndim = len(shape)
    if dims is None:
        if ndim != 2:
            raise ValueError(
                f"{where}: parameter {path!r} has shape {shape}, not a matrix, and no dimension "
                f"numbers say which axes form one. Pass MuonDimensionNumbers for it, e.g. "
                f"MuonDimensionNumbers((0, 1, 2), 3) for a flax Conv kernel (HWIO) or "
                f"MuonDimensionNumbers(1, 2) for layers stacked on axis 0 (gradtx."
                f"muon_dimension_numbers builds them by rank), or use gradtx.contrib.muon, which "
                f"trains the parameters without dimension numbers with AdamW"
            )
        dims = MuonDimensionNumbers()
    try:
        red, out = _axes(dims.reduction_axis, ndim), _axes(dims.output_axis, ndim)
    except IndexError as err:
        raise ValueError(f"{where}: parameter {path!r} of shape {shape}: {err} ({dims})") from None
    if len(set(red + out)) != len(red) + len(out):
        raise ValueError(
            f"{where}: parameter {path!r}: reduction and output axes must be distinct, got {dims}"
        )
    batch = tuple(a for a in range(ndim) if a not in red + out)
    perm = batch + red + out
    size = lambda axes: math.prod(shape[a] for a in axes)
    return _Layout(perm, tuple(shape[a] for a in perm), size(batch), size(red), size(out))


def _layouts(where: str, spec: Any, tree: Tree) -> list[_Layout]:
    dims = _resolve(where, spec, tree)
    name = lambda i: paths.leaf_paths(tree)[i]  # only needed for an error
    shapes = [tuple(jnp.shape(x)) for x in jax.tree.leaves(tree)]
    return [
        _layout(where, name(i), s, d) for i, (s, d) in enumerate(zip(shapes, dims, strict=True))
    ]


def muon_dimension_numbers(
    rules: Mapping[int, MuonDimensionNumbers | None],
) -> Callable[[Tree], Tree]:
    """A ``weight_dimension_numbers`` function choosing by rank: ``rules[ndim]`` for each leaf;
    without a rule, rank 2 is ``MuonDimensionNumbers()`` (optax's reading), ranks 0 and 1 are
    ``None`` (AdamW in ``muon``), and any other rank is an error naming the parameter, since its
    shape alone does not say which axes are the matrix (a conv kernel? stacked layers?).

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import MuonDimensionNumbers, muon_dimension_numbers
        >>> rule = muon_dimension_numbers({4: MuonDimensionNumbers((0, 1, 2), 3)})
        >>> params = {"conv": jnp.zeros((3, 3, 8, 16)), "bias": jnp.zeros(16)}
        >>> rule(params)["conv"], rule(params)["bias"]
        (MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3), None)
        >>> rule({"stacked": jnp.zeros((4, 8, 8))})
        Traceback (most recent call last):
        ValueError: muon_dimension_numbers: parameter 'stacked' has shape (4, 8, 8) ...
    """
    rules = {2: MuonDimensionNumbers(), **rules}

    def choose(path: str, x: Any) -> Any:
        rank = jnp.ndim(x)
        if rank in rules or rank < 2:
            return rules.get(rank)
        raise ValueError(
            f"muon_dimension_numbers: parameter {path!r} has shape {tuple(jnp.shape(x))} and no "
            f"rule for rank {rank}; add one, e.g. {{{rank}: MuonDimensionNumbers(reduction_axis="
            f"..., output_axis=...)}}, or {{{rank}: None}} to train such parameters with AdamW"
        )

    def resolve(params: Tree) -> Tree:
        leaves, treedef = jax.tree.flatten(params)
        names = paths.leaf_paths(params)
        return treedef.unflatten([choose(n, x) for n, x in zip(names, leaves, strict=True)])

    return resolve


# --- Newton–Schulz ---------------------------------------------------------------------------


def _newton_schulz(x, rows, preconditioning, eps, eps_mode, ns_dtype) -> jax.Array:
    """``NS`` of every matrix of the stack ``x`` (``(..., m, n)``, ``m <= n``), batched.

    Each iteration is ``X <- a X + (b A + c A^2) X`` with ``A = X X^H``.  With ``ns_dtype`` below
    float32 every intermediate is rounded to it and products accumulate in float32, as torch's
    bfloat16 matmuls (and ``addmm``) on the CPU do."""
    store = x.dtype if ns_dtype is None else jnp.dtype(ns_dtype)
    work = jnp.promote_types(store, jnp.float32)
    keep, up = (lambda v: v.astype(store)), (lambda v: v.astype(work))
    dot = lambda a, b: jnp.matmul(a, b, preferred_element_type=work)
    eps = kit.scalar(eps, jnp.zeros((), work))
    x = keep(x)
    if preconditioning in ("frobenius", "spectral"):
        if preconditioning == "frobenius":
            norm = jnp.sqrt(jnp.sum(kit.abs_sq(up(x)), axis=(-2, -1), keepdims=True))
        else:
            norm = jnp.linalg.norm(up(x), ord=2, axis=(-2, -1), keepdims=True)
        norm = up(keep(norm))
        floor = norm + eps if eps_mode == "add" else jnp.maximum(norm, eps)
        x = keep(up(x) / up(keep(floor)))
    for i, (a, b, c) in enumerate(rows):
        gram = keep(dot(x, jnp.swapaxes(x, -1, -2).conj()))
        if i == 0 and preconditioning == "aol":
            # Turbo-Muon: rescale rows by their absolute row sums of A, so A's spectrum is <= 1
            s = jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.abs(up(gram)), -1, keepdims=True), eps))
            x, gram = keep(up(x) * s), keep(up(gram) * s * jnp.swapaxes(s, -1, -2))
        elif i == 0 and preconditioning == "schatten":
            # ||A||_F = ||X||_S4^2 bounds the spectral norm more tightly than the Frobenius norm
            fro = jnp.sqrt(jnp.sum(kit.abs_sq(up(gram)), axis=(-2, -1), keepdims=True))
            s = jax.lax.rsqrt(jnp.maximum(fro, eps))
            x, gram = keep(up(x) * s), keep(up(gram) * s * s)
        poly = keep(b * up(gram) + c * dot(gram, gram))
        x = keep(a * up(x) + dot(poly, x))
    return x


def _orthogonalize(hats, layouts, rows, preconditioning, eps, eps_mode, ns_dtype) -> list:
    """``NS`` of every leaf: matrices of one shape and dtype, from all leaves, are concatenated
    into one stack and orthogonalised together (one batched computation, no host sync)."""
    groups: dict[tuple, list[int]] = {}
    stacks = [lay.to_stack(x) for x, lay in zip(hats, layouts, strict=True)]
    for i, s in enumerate(stacks):
        groups.setdefault((s.shape[1:], s.dtype), []).append(i)
    out: list[Any] = [None] * len(hats)
    for members in groups.values():
        joined = (
            jnp.concatenate([stacks[i] for i in members])
            if len(members) > 1
            else stacks[members[0]]
        )
        done = _newton_schulz(joined, rows, preconditioning, eps, eps_mode, ns_dtype)
        cuts = np.cumsum([stacks[i].shape[0] for i in members])[:-1]
        for i, part in zip(members, jnp.split(done, cuts), strict=True):
            out[i] = layouts[i].from_stack(part).astype(hats[i].dtype)
    return out


def _check_choice(where: str, name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{where}: {name}={value!r} is unknown; allowed: {list(allowed)}")


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: Coefficients = _DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    preconditioning: Preconditioning = "frobenius",
    eps: float = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
    *,
    eps_mode: Literal["add", "max"] = "add",
    ns_dtype: Any = None,
) -> jax.Array:
    """``NS(X)``: an approximately semi-orthogonal ``U S' V^T`` (``S'`` near 1, within about
    0.7-1.2 with the default coefficients) for ``X = U S V^T``, by ``ns_steps`` iterations
    ``X <- a X + b (X X^H) X + c (X X^H)^2 X`` after scaling ``X`` so its spectral norm is at most
    one: ``X / (||X||_F + eps)`` (``"frobenius"``), ``X / (||X||_2 + eps)`` (``"spectral"``), or
    in the first iteration by ``A = X X^H``'s row sums (``"aol"``) or ``||A||_F`` (``"schatten"``).

    ``x`` is a matrix, or any array with ``dimension_numbers`` saying which axes form the
    matrices (the others are batch axes).  ``eps_mode="max"`` divides by ``max(||X||, eps)``
    (torch) instead of ``||X|| + eps``; ``ns_dtype`` runs the iteration in that dtype (bfloat16:
    the authors' and torch's choice; every intermediate rounded, products in float32).
    ``ns_coeffs``: ``(a, b, c)``, a table of one row per iteration, or a preset name
    (``NS_COEFFS_PRESETS``).  optax: ``optax.contrib._muon.orthogonalize_via_newton_schulz``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gradtx import orthogonalize_via_newton_schulz
        >>> x = jnp.array([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0]])  # singular values 3 and 0.5
        >>> s = jnp.linalg.svd(orthogonalize_via_newton_schulz(x), compute_uv=False)
        >>> print(jnp.array_str(s, precision=2))  # both pushed towards 1
        [1.04 0.71]
    """
    where = "orthogonalize_via_newton_schulz"
    _check_choice(where, "preconditioning", preconditioning, _PRECONDITIONINGS)
    _check_choice(where, "eps_mode", eps_mode, _EPS_MODES)
    rows = _coefficient_rows(where, ns_coeffs, ns_steps)
    lay = _layout(where, "x", tuple(jnp.shape(x)), dimension_numbers)
    k = kit.compute_dtype(x)
    (out,) = _orthogonalize([x.astype(k)], [lay], rows, preconditioning, eps, eps_mode, ns_dtype)
    return out.astype(x.dtype)


__all__ = [
    "NS_COEFFS_PRESETS",
    "MuonDimensionNumbers",
    "muon_dimension_numbers",
    "orthogonalize_via_newton_schulz",
]
