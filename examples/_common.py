"""Plumbing shared by the examples: optimizer builders by name, a jitted training step over a
Flax NNX model, the epoch loop, and figure/table output.  The command line is in ``_cli``
(standard library only, so that it is parsed before this module's heavy imports).

Only the public ``gradtx`` API is used, so each example reads as user code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import matplotlib
import numpy as np
from flax import nnx

import gradtx

matplotlib.use("Agg")  # examples only write files; never open a window

import matplotlib.pyplot as plt

DPI = 100
"""Figures are saved at this resolution without tight cropping, so an image is exactly
``figsize * DPI`` pixels (the tests check this)."""

# One builder per optimizer name: the learning rate is the only argument, everything else is the
# library default (torch's weight decay for AdamW, so that it differs visibly from Adam).
BUILDERS: dict[str, Callable[[float], gradtx.GradientTransformation]] = {
    "sgd": lambda lr: gradtx.sgd(lr),
    "momentum": lambda lr: gradtx.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: gradtx.sgd(lr, momentum=0.9, nesterov=True),
    "adagrad": lambda lr: gradtx.adagrad(lr),
    "rmsprop": lambda lr: gradtx.rmsprop(lr),
    "adadelta": lambda lr: gradtx.adadelta(lr),
    "adam": lambda lr: gradtx.adam(lr),
    "adamw": lambda lr: gradtx.adamw(lr, weight_decay=1e-2),
    "nadam": lambda lr: gradtx.nadam(lr),
    "adamax": lambda lr: gradtx.adamax(lr),
    "amsgrad": lambda lr: gradtx.amsgrad(lr),
    "lion": lambda lr: gradtx.lion(lr),
}

LABELS = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "Adagrad",
    "rmsprop": "RMSProp",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "nadam": "NAdam",
    "adamax": "AdaMax",
    "amsgrad": "AMSGrad",
    "lion": "Lion",
}


def build(name: str, learning_rate: float) -> gradtx.GradientTransformation:
    return BUILDERS[name](learning_rate)


# --- training -----------------------------------------------------------------------------------

LossFn = Callable[[nnx.Module, jax.Array, jax.Array], jax.Array]
Metrics = Callable[[nnx.Module, Any], dict[str, jax.Array]]
"""``metrics(model, data) -> {name: scalar}``, traceable; evaluated before training and after
every epoch.  Pass a module-level function: it is a static argument of the compiled evaluation,
so the same function is compiled once for every optimizer that uses it."""


def init_model(make: Callable[[], nnx.Module]) -> tuple[nnx.GraphDef, Any]:
    """``nnx.split`` of a freshly built model, built under one jit: eager initialisation would
    compile every small random op separately, which is slow on a busy CPU."""
    return nnx.split(nnx.jit(make)())


def make_train_step(graphdef: nnx.GraphDef, tx: gradtx.GradientTransformation, loss_fn: LossFn):
    """``step(params, opt_state, x, y) -> (params, opt_state, loss)``, jitted with params and
    state donated so XLA updates them in place instead of allocating new buffers every step."""

    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(nnx.merge(graphdef, p), x, y))(params)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return gradtx.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


@partial(jax.jit, static_argnums=(0, 1))
def _evaluate(graphdef: nnx.GraphDef, metrics: Metrics, params: Any, data: Any) -> dict:
    return metrics(nnx.merge(graphdef, params), data)


def _floats(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(dict(values)).items()}


def epoch_batches(rng: np.random.Generator, n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Index arrays of one shuffled epoch; the ragged tail is dropped so the step compiles once."""
    order = rng.permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


@dataclass
class History:
    """What one optimizer's run produced: per-step losses, per-epoch metrics and timings."""

    step_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    compile_s: float = 0.0
    train_s: float = 0.0
    steps: int = 0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_s if self.train_s > 0 else float("nan")

    def series(self, key: str) -> np.ndarray:
        return np.array([e[key] for e in self.epochs])


def train(
    graphdef: nnx.GraphDef,
    params: Any,
    tx: gradtx.GradientTransformation,
    loss_fn: LossFn,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    metrics: Metrics,
    metrics_data: Any,
    desc: str = "",
    progress: bool = True,
) -> tuple[Any, History]:
    """Minibatch training of the model ``nnx.merge(graphdef, params)`` with ``tx``; returns the
    final params and a History.  ``params`` is copied first (the step donates its buffers), so
    one initialisation can start several runs.

    ``metrics(model, metrics_data)`` runs before training (epoch 0) and after every epoch.  The
    step is compiled ahead of time so ``train_s`` measures training, not compilation.
    """
    from tqdm.auto import tqdm  # imported late: only the training loop needs it

    params = jax.device_put(jax.device_get(params))
    opt_state = tx.init(params)
    rng = np.random.default_rng(seed)
    hist = History()
    hist.epochs.append({"epoch": 0, **_floats(_evaluate(graphdef, metrics, params, metrics_data))})

    t0 = time.perf_counter()
    idx = np.arange(batch_size)
    step = make_train_step(graphdef, tx, loss_fn).lower(params, opt_state, x[idx], y[idx]).compile()
    hist.compile_s = time.perf_counter() - t0

    per_epoch = len(x) // batch_size
    bar = tqdm(total=epochs * per_epoch, desc=desc, disable=not progress, leave=True)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        losses = []
        for idx in epoch_batches(rng, len(x), batch_size):
            params, opt_state, loss = step(params, opt_state, x[idx], y[idx])
            losses.append(loss)
        jax.block_until_ready(params)
        hist.train_s += time.perf_counter() - t0
        hist.steps += len(losses)
        hist.step_loss.extend(np.asarray(jax.device_get(losses), dtype=float).tolist())
        values = _floats(_evaluate(graphdef, metrics, params, metrics_data))
        hist.epochs.append({"epoch": epoch, **values})
        bar.update(len(losses))
        bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
    bar.close()
    return params, hist


# --- output -------------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def colors(n: int) -> list[Any]:
    """``n`` distinguishable colours (tab10, then tab20's lighter shades)."""
    base = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20").colors[1::2])
    return [base[i % len(base)] for i in range(n)]
