"""Reference of ``gradtx/optimizers/delayed.py``: an optimizer fed stale gradients, as in the
asynchronous SGD analyses of Lian et al. (2015) and Zhang et al. (2016, "Staleness-aware
Async-SGD"): ``x_{t+1} = x_t + c(tau_t) * inner(g_{t - tau_t})``, with ``c(tau) = 1 / max(tau, 1)``
when the step size is staleness-aware.  The whole gradient history is kept in a list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import reference
from .core import Ref, stored


class Delayed(Ref):
    """``tau_t = delay``, or ``staleness[t - 1]`` when a sequence is given (the draws of a random
    staleness, read back from gradtx's state).  A step whose source ``t - tau_t`` lies before the
    first gradient applies nothing and does not step ``inner``; ``inner`` counts the gradients it
    received.  Buffered gradients are rounded to ``dtype``; a staleness of 0 uses the incoming
    gradient as it is."""

    def __init__(
        self,
        inner: Ref,
        delay: int,
        staleness: Sequence[int] | None = None,
        aware: bool | Callable[[int], float] = False,
        dtype: Any = None,
    ):
        self.inner, self.delay, self.staleness = inner, delay, staleness
        self.aware, self.dtype = aware, dtype

    def init(self, params):
        self.inner.init(params)
        self.history: list[list[np.ndarray]] = []
        self.received = 0

    def factor(self, tau: int) -> float:
        if callable(self.aware):
            return float(self.aware(tau))
        return 1.0 / max(tau, 1) if self.aware else 1.0

    def step(self, grads, params, t):
        tau = self.delay if self.staleness is None else int(self.staleness[t - 1])
        assert 0 <= tau <= self.delay
        current = [np.array(g) for g in grads]
        self.history.append([stored(g, self.dtype) for g in grads])
        source = t - 1 - tau  # 0-based step whose gradient arrives now
        if source < 0:
            return [np.zeros_like(g) for g in grads]
        arrived = current if tau == 0 else self.history[source]
        self.received += 1
        out = self.inner.step([np.array(g) for g in arrived], params, self.received)
        return [self.factor(tau) * u for u in out]


@reference("delayed_gradients")
def delayed_gradients(
    inner,
    delay,
    *,
    random_delay=False,
    staleness_aware=False,
    key=0,
    buffer_dtype=None,
) -> Ref | None:
    """A fixed delay; a random one is followed by ``Delayed(..., staleness=draws)`` in
    ``tests/test_delayed.py`` (its draws come from gradtx's PRNG)."""
    if random_delay:
        return None
    return Delayed(inner, delay, None, staleness_aware, buffer_dtype)
