"""References of ``gradtx/optimizers/sophia.py``: Sophia (Liu et al. 2023, Algorithm 3) given
the Hessian-diagonal estimates.

The estimator is itself a reference (``hessian_diagonal_fn``: any ``Ref``, called with its own
step count, one per refresh), so a deterministic one (a registered block's reference) checks the
rule exactly; ``tests/test_sophia.py`` feeds Hutchinson's estimates computed in NumPy from the
same sign draws.
"""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Hyper, Ref, at, mask_leaves, zeros


class Sophia(Ref):
    """m = b1 m + (1 - b1) g;  u = clip(m / (1 - b1^t) / max(gamma h, eps), +-c);
    every ``interval`` steps (t = 1, 1 + interval, ...), after the direction:
    h = b2 h + (1 - b2) d with d the estimate;  step = -lr (u + wd p)."""

    def __init__(self, learning_rate: Hyper, b1, b2, eps, weight_decay, mask, gamma, clip,
                 interval: int, estimator: Ref):  # fmt: skip
        self.lr, self.b1, self.b2, self.eps = learning_rate, b1, b2, eps
        self.wd, self.mask, self.gamma, self.clip = weight_decay, mask, gamma, clip
        self.interval, self.estimator = interval, estimator

    def init(self, params):
        self.m, self.h = zeros(params), zeros(params)
        self.estimator.init(params)
        self.refreshes = 0
        self.decayed = mask_leaves(self.mask, params)

    def step(self, grads, params, t, **extra):
        b1, b2, gamma, eps = (at(x, t) for x in (self.b1, self.b2, self.gamma, self.eps))
        out = []
        for i, g in enumerate(grads):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            u = self.m[i] / (1 - b1**t) / np.maximum(gamma * self.h[i], eps)
            if self.clip is not None:
                u = np.clip(u, -at(self.clip, t), at(self.clip, t))
            out.append(u)
        if (t - 1) % self.interval == 0:
            self.refreshes += 1
            d = self.estimator.step(grads, params, self.refreshes, **extra)
            self.h = [b2 * h + (1 - b2) * np.asarray(e) for h, e in zip(self.h, d, strict=True)]
        wd, lr = at(self.wd, t), at(self.lr, t)
        return [
            -lr * (u + (wd * p if on else 0.0))
            for u, p, on in zip(out, params, self.decayed, strict=True)
        ]


@reference("sophia")
def sophia(
    learning_rate,
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    weight_decay=1e-4,
    weight_decay_mask=None,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval=10,
    hessian_diagonal_fn=None,
    mu_dtype=None,
    verbose=False,
    print_win_rate_every_n_steps=0,
) -> Ref | None:
    del verbose, print_win_rate_every_n_steps
    if hessian_diagonal_fn is None or mu_dtype is not None:
        return None  # Hutchinson needs the objective: tests/test_sophia.py gives the estimates
    return Sophia(learning_rate, b1, b2, eps, weight_decay, weight_decay_mask, gamma,
                  clip_threshold, update_interval, hessian_diagonal_fn)  # fmt: skip
