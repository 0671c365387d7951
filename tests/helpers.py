"""The shared harness of the tests: a small parameter tree, a gradient sequence, an eager
trajectory runner and the relative error between trajectories.

The harness runs an optimizer eagerly (no jit: the small ops are cached per shape, which is far
cheaper than one compilation per configuration on a 2-core machine) over a fixed pseudo-random
gradient sequence on a small tree with leaves of different shapes, including a scalar.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = {"dense": {"b": (4,), "w": (3, 4)}, "scale": ()}
STEPS = 50


def SCHED(c):
    """A learning-rate schedule shared by the reference and parity tests."""
    return 0.1 / (1 + c / 3.0)


def WD_SCHED(c):
    """A weight-decay schedule shared by the reference and parity tests."""
    return 0.05 * (1 + c) / (2 + c)


@contextlib.contextmanager
def jax_config(name: str, value: Any) -> Iterator[None]:
    """``jax.config`` option ``name`` set to ``value`` while inside (restored on exit)."""
    old = jax.config.read(name)
    jax.config.update(name, value)
    try:
        yield
    finally:
        jax.config.update(name, old)


def fast_compile() -> contextlib.AbstractContextManager[None]:
    """Compiles with most XLA optimisations off while inside.

    These tests compile many tiny programs (eager ops included); optimising them costs more
    than running them.  The tolerances (1e-10 and looser) do not depend on fusion decisions.
    """
    return jax_config("jax_disable_most_optimizations", True)


def float32_mode() -> contextlib.AbstractContextManager[None]:
    """``jax_enable_x64`` off while inside: float32 programs whose Python-number constants
    and counters are 32-bit, as users run them."""
    return jax_config("jax_enable_x64", False)


def tree_of(shapes: Any, fill: Callable[[tuple], np.ndarray], dtype: Any) -> Any:
    return jax.tree.map(lambda s: jnp.asarray(fill(s), dtype), shapes, is_leaf=_is_shape)


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(d, int) for d in x)


def make_params(dtype: Any = jnp.float64, seed: int = 0) -> Any:
    rng = np.random.RandomState(seed)
    return tree_of(SHAPES, lambda s: rng.randn(*s), dtype)


def make_grads(n: int = STEPS, dtype: Any = jnp.float64, seed: int = 1) -> list[Any]:
    """``n`` gradient trees; magnitudes vary over steps and leaves so that moments, maxima and
    clipping all see changing inputs."""
    rng = np.random.RandomState(seed)
    return [
        tree_of(SHAPES, lambda s, t=t: (1 + 0.5 * np.sin(t)) * rng.randn(*s) + 0.1, dtype)
        for t in range(n)
    ]


def leaves64(tree: Any) -> list[np.ndarray]:
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def loss_value(params: Any) -> Any:
    """The ``value=`` (a loss) the harness hands optimizers that need one (Polyak step sizes,
    reduce-on-plateau): ``1 + sum(p**2) / 2`` at the params the gradients belong to."""
    return 1.0 + 0.5 * sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params))


def objective(params: Any) -> dict[str, Any]:
    """The keywords the harness passes an optimizer that needs the loss (``with_value``):
    ``value=loss_value(params)``, and for a line search ``value_fn=loss_value`` and its gradient
    ``grad=params`` (other optimizers ignore these two)."""
    return {"value": loss_value(params), "grad": params, "value_fn": loss_value}


def run_tx(
    tx: Any,
    params: Any,
    grads: Sequence[Any],
    start_state: Any = None,
    with_value: bool = False,
    **extra: Any,
) -> tuple[list, Any, Any]:
    """Eager trajectory: ``(updates per step as leaf lists, final params, final state)``, from
    ``start_state`` (default ``tx.init(params)``); ``extra`` goes to every ``update``, and with
    ``with_value`` also ``objective(params)``."""
    state = tx.init(params) if start_state is None else start_state
    history = []
    # a line search runs a while_loop per update, which eager mode would compile every time
    update = jax.jit(tx.update, static_argnames="value_fn") if with_value else tx.update
    for g in grads:
        values = objective(params) if with_value else {}
        u, state = update(g, state, params, **{**values, **extra})
        params = jax.tree.map(lambda p, d: (p + d).astype(p.dtype), params, u)
        history.append(leaves64(u))
    return history, params, state


def run_jit(tx: Any, params: Any, grads: Sequence[Any]) -> list:
    """The updates of ``tx`` along ``grads`` (params moved by them), one compiled step."""
    update, state, history = jax.jit(tx.update), tx.init(params), []
    for g in grads:
        u, state = update(g, state, params)
        params = jax.tree.map(jnp.add, params, u)
        history.append(leaves64(u))
    return history


def shaped_problem(shapes: dict, steps: int, seed: int = 0) -> tuple[dict, list]:
    """Params of ``shapes`` and ``steps`` gradients like ``make_grads``' (the Kronecker tests'
    problem: leaves of the ranks they need)."""
    rng = np.random.RandomState(seed)
    params = {k: jnp.asarray(rng.randn(*s)) for k, s in shapes.items()}
    grads = [
        {k: jnp.asarray((1 + 0.5 * np.sin(t)) * rng.randn(*s) + 0.1) for k, s in shapes.items()}
        for t in range(steps)
    ]
    return params, grads


def needs_value(entry: Any) -> bool:
    """Whether a registry entry's ``update`` needs ``value=``."""
    return "needs_value" in entry.traits


def rel_err(got: Sequence[Sequence[np.ndarray]], want: Sequence[Sequence[np.ndarray]]) -> float:
    """Worst over steps and leaves of ``max|got - want| / max|want|`` (absolute error where the
    reference leaf is exactly zero)."""
    worst = 0.0
    assert len(got) == len(want)
    for a_step, b_step in zip(got, want, strict=True):
        for a, b in zip(a_step, b_step, strict=True):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            assert a.shape == b.shape, (a.shape, b.shape)
            scale = np.max(np.abs(b)) if b.size else 0.0
            err = np.max(np.abs(a - b)) if b.size else 0.0
            worst = max(worst, float(err / scale) if scale > 0 else float(err))
    return worst
