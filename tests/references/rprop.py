"""References of ``gradtx/optimizers/rprop.py``: Rprop (Riedmiller & Braun 1993), in the iRprop-
form of Igel & Hüsken (2000) that optax and torch implement (no weight backtracking: after a sign
change the step is skipped and the remembered derivative set to 0).

Per weight, with ``dE_t`` the derivative at step ``t`` and ``dE_prev`` the remembered one:
``dE_prev * dE_t > 0``: ``Δ_t = min(Δ_{t-1} η+, Δmax)``, step ``-sign(dE_t) Δ_t``;
``< 0``: ``Δ_t = max(Δ_{t-1} η-, Δmin)``, no step, ``dE_t := 0``; ``= 0``: ``Δ_t = Δ_{t-1}``, step
``-sign(dE_t) Δ_t``.  torch also bounds ``Δ`` in the ``= 0`` case; optax emits every step one
update late (the step decided at ``t - 1``, or nothing if ``dE_t`` disagrees with it).
"""

from __future__ import annotations

import numpy as np

from . import reference
from .core import Chain, Ref, Scale, at


class Rprop(Ref):
    """The step ``+Δ sign(dE)`` (a direction; ``rprop`` negates it)."""

    def __init__(self, delta0, eta_minus, eta_plus, delta_min, delta_max, variant):
        if variant not in ("optax", "torch"):
            raise ValueError(variant)
        self.delta0, self.eta_minus, self.eta_plus = delta0, eta_minus, eta_plus
        self.delta_min, self.delta_max, self.late = delta_min, delta_max, variant == "optax"

    def init(self, params):
        self.delta = [np.full(np.shape(p), float(self.delta0)) for p in params]
        self.last = [np.zeros(np.shape(p)) for p in params]  # the remembered derivative
        self.pending = [np.zeros(np.shape(p)) for p in params]  # optax: the step not yet emitted

    def step(self, grads, params, t):
        up, down = at(self.eta_plus, t), at(self.eta_minus, t)
        lo, hi = at(self.delta_min, t), at(self.delta_max, t)
        out = []
        for i, g in enumerate(grads):
            agree = self.last[i] * g
            delta = self.delta[i].copy()
            for idx in np.ndindex(g.shape):
                if agree[idx] > 0:
                    delta[idx] = min(delta[idx] * up, hi)
                elif agree[idx] < 0:
                    delta[idx] = max(delta[idx] * down, lo)
                elif not self.late:  # torch bounds the step size on every step
                    delta[idx] = min(max(delta[idx], lo), hi)
            self.delta[i] = delta
            derivative = np.where(agree < 0, 0.0, g)
            taken = np.sign(derivative) * delta
            self.last[i] = derivative
            if self.late:
                out.append(np.where(agree < 0, 0.0, self.pending[i]))
                self.pending[i] = taken
            else:
                out.append(taken)
        return out


@reference("scale_by_rprop")
def scale_by_rprop(
    learning_rate,
    eta_minus=0.5,
    eta_plus=1.2,
    min_step_size=1e-6,
    max_step_size=50.0,
    variant="optax",
) -> Ref:
    return Rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size, variant)


@reference("rprop")
def rprop(
    learning_rate,
    eta_minus=0.5,
    eta_plus=1.2,
    min_step_size=1e-6,
    max_step_size=50.0,
    variant="optax",
) -> Ref:
    inner = Rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size, variant)
    return Chain(inner, Scale(-1.0))
