"""torch.optim.swa_utils in gradtx: ``averaged_model`` against ``AveragedModel.update_parameters``
(equal weights and EMA, from a start step, every k-th step) and ``SWALR`` through
``torch_schedule`` against torch's lr, float64.  SWALR inside ``from_torch`` / SequentialLR /
ChainedScheduler is covered by test_torch_schedulers.py.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch_helpers import VECTORS, noise, run_gradtx, sequence_error, torch_float64

import gradtx
from gradtx.torch_compat import averaged_model, from_torch, torch_schedule
from gradtx.wrappers import averaged_params

STEPS = 30
AVERAGING = [("swa", 0.999, 0, 1), ("swa", 0.999, 5, 3), ("ema", 0.9, 0, 1), ("ema", 0.8, 4, 2)]


def torch_averages(strategy: str, decay: float, start: int, every: int) -> np.ndarray:
    """``swa_model.update_parameters(model)`` after steps ``start, start + every, ...`` of
    torch's SGD with momentum; the averaged params after every step."""
    p0, w, c = VECTORS.p0, VECTORS.w, VECTORS.c
    with torch_float64():
        model = torch.nn.Module()
        for k in VECTORS.keys:
            setattr(model, k, torch.nn.Parameter(torch.tensor(p0[k])))
        avg_fn = torch.optim.swa_utils.get_ema_multi_avg_fn(decay) if strategy == "ema" else None
        swa_model = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=avg_fn)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        nz, out = noise(STEPS), []
        for t in range(STEPS):
            with torch.no_grad():
                for k in VECTORS.keys:
                    p = getattr(model, k)
                    p.grad = torch.tensor(w[k]) * (p - torch.tensor(c[k])) - 0.3 * torch.sin(3 * p)
                    p.grad += torch.tensor(nz[k][t])
            opt.step()
            if t >= start and (t - start) % every == 0:
                swa_model.update_parameters(model)
            out.append(np.concatenate([getattr(swa_model.module, k).detach().numpy().copy()
                                       for k in VECTORS.keys]))  # fmt: skip
    return np.asarray(out)


@functools.cache
def averaging_errors() -> list[float]:
    txs = [
        gradtx.chain(
            from_torch("SGD", lr=0.05, momentum=0.9),
            averaged_model(strategy, decay, start=start, every=every),
        )
        for strategy, decay, start, every in AVERAGING
    ]
    ours = run_gradtx(txs, STEPS, record=averaged_params)
    errors = []
    for cfg, (_, avg) in zip(AVERAGING, ours, strict=True):
        got = np.concatenate([np.asarray(avg[k]) for k in VECTORS.keys], axis=1)
        errors.append(float(np.max(np.abs(got - torch_averages(*cfg)))))
    return errors


@pytest.mark.parametrize("index", range(len(AVERAGING)), ids=[str(c) for c in AVERAGING])
def test_averaged_model_matches_torch(index):
    assert averaging_errors()[index] < 1e-12


def test_the_average_differs_from_the_params():
    # teeth: an average that merely copied the params would fail the comparison above
    ref = torch_averages("swa", 0.999, 5, 3)
    assert np.max(np.abs(ref[-1] - torch_averages("swa", 0.999, STEPS - 1, 1)[-1])) > 1e-3


SWALR = [
    {"swa_lr": 0.01},
    {"swa_lr": 0.2, "anneal_epochs": 7, "anneal_strategy": "linear"},
    {"swa_lr": 0.01, "anneal_epochs": 0},
    {"swa_lr": 0.03, "anneal_epochs": 1, "anneal_strategy": "cos"},
]


@pytest.mark.parametrize("kwargs", SWALR, ids=str)
def test_swalr_matches_torch(kwargs):
    rows = []
    with torch_float64(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no optimizer.step() here
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched = torch.optim.swa_utils.SWALR(opt, **kwargs)
        for _ in range(20):
            rows.append(opt.param_groups[0]["lr"])
            sched.step()
    ours = jax.vmap(torch_schedule("SWALR", 0.1, **kwargs))(jnp.arange(20))
    assert sequence_error(ours, rows) < 1e-12
    assert rows[-1] == pytest.approx(kwargs["swa_lr"])


@pytest.mark.parametrize(
    "kwargs", [{"anneal_strategy": "exp"}, {"anneal_epochs": -1}, {"anneal_epochs": 2.5}], ids=str
)
def test_swalr_rejects_what_torch_rejects(kwargs):
    with torch_float64(), pytest.raises(ValueError):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        torch.optim.swa_utils.SWALR(opt, swa_lr=0.01, **kwargs)
    with pytest.raises(ValueError):
        torch_schedule("SWALR", 0.1, swa_lr=0.01, **kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"strategy": "mean"}, {"decay": 1.5}, {"start": -1}, {"every": 0}], ids=str
)
def test_averaged_model_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        averaged_model(**kwargs)
