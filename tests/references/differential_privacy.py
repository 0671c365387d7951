"""References of ``gradtx/optimizers/differential_privacy.py``: DP-SGD (Abadi et al. 2016,
Algorithm 1) on per-example gradients, given the Gaussian noise draws.

The noise is an input (``noise[i]``: a standard normal array for leaf ``i``), so the rule is
checked exactly against the same draws.  ``DPSGD`` follows the paper's clip / noise / average,
then SGD with optional (Nesterov) momentum: ``m = mu m + u``, step ``-lr m`` (``-lr (u + mu m)``
with Nesterov).  Not in ``REFERENCES``: these take per-example gradients, not the harness's.
"""

from __future__ import annotations

import numpy as np

from .core import Arrays, Hyper, at


def aggregate(per_example: Arrays, noise: Arrays, clip: float, multiplier: float) -> Arrays:
    """``(sum_b g_b min(1, C / ||g_b||) + sigma C z) / B`` per leaf (norms over all leaves)."""
    batch = per_example[0].shape[0]
    sq = sum(np.sum(g.reshape(batch, -1) ** 2, axis=1) for g in per_example)
    norms = np.sqrt(sq)
    factors = np.array([min(1.0, clip / n) if n > 0 else 1.0 for n in norms])
    summed = [np.tensordot(factors, g, axes=1) for g in per_example]
    return [(s + multiplier * clip * z) / batch for s, z in zip(summed, noise, strict=True)]


class DPSGD:
    """DP-SGD with the noise given at each step."""

    def __init__(
        self,
        learning_rate: Hyper,
        clip: float,
        multiplier: float,
        momentum: float | None = None,
        nesterov: bool = False,
    ):
        self.lr, self.clip, self.multiplier = learning_rate, clip, multiplier
        self.momentum, self.nesterov = momentum, nesterov
        self.m: Arrays | None = None

    def step(self, per_example: Arrays, noise: Arrays, t: int) -> Arrays:
        u = aggregate(per_example, noise, self.clip, self.multiplier)
        if self.momentum is not None:
            mu = self.momentum
            self.m = u if self.m is None else [mu * m + g for m, g in zip(self.m, u, strict=True)]
            u = [g + mu * m for g, m in zip(u, self.m, strict=True)] if self.nesterov else self.m
        return [-at(self.lr, t) * g for g in u]
