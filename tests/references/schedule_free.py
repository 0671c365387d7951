"""Reference of gradtx/optimizers/schedule_free.py: Schedule-Free SGD and AdamW (Defazio et al.
2024), transcribed from the paper's iterates ``y``, ``z`` and ``x``."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reference
from .blocks import WeightDecay
from .core import Chain, Hyper, Identity, Ref, at, stored
from .core import learning_rate as descent
from .rms import RMSProp


class ScheduleFree(Ref):
    """The base rule moves ``z`` from gradients at ``y`` (the params); ``x`` averages the
    ``z``'s: ``z_{t+1} = z_t + base(g(y_t))``, ``c_{t+1} = w_t / sum_{i<=t} w_i`` with
    ``w_t = (max_{i<=t} lr_i)^power`` (``lr`` read at ``t``, 1-based; 0 when the sum is 0),
    ``x_{t+1} = (1 - c) x_t + c z_{t+1}``, ``y_{t+1} = b1 x_{t+1} + (1 - b1) z_{t+1}``,
    ``u_t = y_{t+1} - y_t``; ``x_1 = z_1 = y_1``.  ``dtype`` stores ``z``."""

    def __init__(self, base: Ref, lr: Hyper, b1: float, power: float, dtype: Any = None):
        self.base, self.lr, self.b1, self.power, self.dtype = base, lr, b1, power, dtype

    def init(self, params):
        self.base.init(params)
        self.z = [stored(np.array(p, np.float64), self.dtype) for p in params]
        self.x = [np.array(p, np.float64) for p in params]
        self.max_lr, self.total = 0.0, 0.0

    def step(self, grads, params, t):
        b1 = self.b1
        self.max_lr = max(self.max_lr, at(self.lr, t + 1))
        w = self.max_lr**self.power
        self.total += w
        c = w / self.total if self.total > 0 else 0.0
        base_u = self.base.step(grads, params, t)
        out = []
        for i, (y, b) in enumerate(zip(params, base_u, strict=True)):
            self.z[i] = stored(self.z[i] + b, self.dtype)
            self.x[i] = (1 - c) * self.x[i] + c * self.z[i]
            out.append(b1 * self.x[i] + (1 - b1) * self.z[i] - y)
        return out


def warmup_constant(peak: float, warmup_steps: int | None) -> Hyper:
    """``peak * min(step / warmup_steps, 1)`` (``peak`` itself without warmup)."""
    if warmup_steps is None:
        return peak
    return lambda c: peak * min(max(float(c) / warmup_steps, 0.0), 1.0)


@reference("schedule_free")
def schedule_free(base_optimizer, learning_rate, b1=0.9, weight_lr_power=2.0, state_dtype=None):
    return ScheduleFree(base_optimizer, learning_rate, b1, weight_lr_power, state_dtype)


@reference("schedule_free_sgd")
def schedule_free_sgd(
    learning_rate=1.0,
    warmup_steps=None,
    b1=0.9,
    weight_decay=None,
    weight_lr_power=2.0,
    state_dtype=None,
) -> Ref:
    """Base: ``z <- z - lr (g + wd y)`` (no decay when ``weight_decay`` is None)."""
    lr = warmup_constant(learning_rate, warmup_steps)
    decay = Identity() if weight_decay is None else WeightDecay(weight_decay)
    return ScheduleFree(Chain(decay, descent(lr)), lr, b1, weight_lr_power, state_dtype)


@reference("schedule_free_adamw")
def schedule_free_adamw(
    learning_rate=0.0025,
    warmup_steps=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    weight_lr_power=2.0,
    state_dtype=None,
) -> Ref:
    """Base: ``z <- z - lr (g / (sqrt(v_t / (1 - b2^t)) + eps) + wd y)``, no momentum."""
    lr = warmup_constant(learning_rate, warmup_steps)
    rms = RMSProp(b2, eps, eps_in_sqrt=False, bias_correction=True)
    base = Chain(rms, WeightDecay(weight_decay), descent(lr))
    return ScheduleFree(base, lr, b1, weight_lr_power, state_dtype)
