"""References of ``gradtx/optimizers/sgd.py``: SGD with optional heavy-ball or Nesterov
momentum, and SGD with annealed gradient noise (followed only without noise)."""

from __future__ import annotations

from . import reference
from .blocks import Momentum, add_noise
from .core import Chain, Identity, Ref
from .core import learning_rate as descent


@reference("sgd")
def sgd(learning_rate, momentum=None, nesterov=False, accumulator_dtype=None) -> Ref:
    """``u = -lr g``; with momentum ``m_t = momentum m_{t-1} + g``, ``u = -lr m_t`` (Nesterov:
    ``-lr (g + momentum m_t)``)."""
    inner = Identity() if momentum is None else Momentum(momentum, nesterov, 0.0, accumulator_dtype)
    return Chain(inner, descent(learning_rate))


@reference("noisy_sgd")
def noisy_sgd(learning_rate, eta=0.01, gamma=0.55, key=None, *, seed=None) -> Ref | None:
    """``u = -lr (g + N(0, eta / t^gamma))``: plain SGD when ``eta = 0``, else declined."""
    noise = add_noise(eta, gamma, key, seed=seed)
    return None if noise is None else Chain(noise, descent(learning_rate))
