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


def load_digits(seed: int, images: bool) -> tuple[np.ndarray, ...]:
    """scikit-learn's 8x8 digits as float32 (``images``: NHWC images, else flat vectors),
    standardised per pixel with the training set's statistics; a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split

    data = sk_load()
    x = data.images[..., None] if images else data.data
    x, y = x.astype(np.float32), data.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)  # corner pixels are always 0
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def cross_entropy(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels."""
    logits = model(x)
    return jax.numpy.mean(
        jax.nn.logsumexp(logits, axis=-1)
        - jax.numpy.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    )


def classification_metrics(model: nnx.Module, data: tuple[np.ndarray, ...]) -> dict[str, jax.Array]:
    """The loss over the whole training set and the accuracy on the test set."""
    x_tr, y_tr, x_te, y_te = data
    test_acc = jax.numpy.mean(jax.numpy.argmax(model(x_te), axis=-1) == y_te)
    return {"train_loss": cross_entropy(model, x_tr, y_tr), "test_acc": test_acc}


def train_each(
    names: Sequence[str],
    make_tx: Callable[[str], gradtx.GradientTransformation],
    labels: Mapping[str, str],
    init: tuple[nnx.GraphDef, Any],
    data: tuple[np.ndarray, ...],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    progress: bool,
) -> dict[str, History]:
    """Trains a classifier with each of ``names`` (``make_tx(name)``) from ``init`` (the same
    weights and batches for all), one after another."""
    x_tr, y_tr = data[:2]
    return {
        n: train(
            *init, make_tx(n), cross_entropy, x_tr, y_tr, desc=f"{labels[n]:>9}",
            progress=progress, epochs=epochs, batch_size=batch_size, seed=seed,
            metrics=classification_metrics, metrics_data=data,
        )[1]
        for n in names
    }  # fmt: skip


def compare_on_digits(
    names: Sequence[str],
    make_model: Callable[[], nnx.Module],
    make_tx: Callable[[str], gradtx.GradientTransformation],
    labels: Mapping[str, str],
    learning_rates: Mapping[str, float],
    *,
    images: bool,
    epochs: int,
    batch_size: int,
    seed: int,
    progress: bool,
    timing: Sequence[tuple[str, Callable[[History], str]]],
) -> tuple[dict[str, History], str]:
    """Trains a classifier on the digits with each of ``names`` from the same initial weights
    and batches; prints and returns the results and a markdown table (label, lr, final train
    loss, test accuracy and the ``timing`` columns)."""
    data = load_digits(seed, images=images)
    results = train_each(
        names, make_tx, labels, init_model(make_model), data,
        epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
    )  # fmt: skip
    headers = ["optimizer", "lr", "final train loss", "test accuracy", *(t for t, _ in timing)]
    rows = [
        (labels[n], learning_rates[n], h.epochs[-1]["train_loss"],
         f"{100 * h.epochs[-1]['test_acc']:.1f}%", *(cell(h) for _, cell in timing))
        for n, h in results.items()
    ]  # fmt: skip
    text = markdown_table(headers, rows)
    n_train, n_test = len(data[0]), len(data[2])
    print(f"\n{n_train} train / {n_test} test digits, {epochs} epochs, batch {batch_size}")
    print(text)
    return results, text


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
