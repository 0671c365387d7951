"""``torch.optim.swa_utils``: stochastic weight averaging (Izmailov et al. 2018) the torch way.

- ``SWALR``, the scheduler that anneals the lr to a constant ``swa_lr``: ``from_torch(...,
  scheduler=("SWALR", {"swa_lr": 0.05, "anneal_epochs": 10}))`` or ``torch_schedule("SWALR",
  ...)``; it also serves as a ``SequentialLR`` member (annealing from the lr the previous member
  left) and in ``ChainedScheduler``.
- ``AveragedModel``, the running average of the params: ``averaged_model(...)``, a block to put
  last in the chain, whose average ``gradtx.wrappers.averaged_params(state)`` reads.

A torch SWA loop::

    swa_model = AveragedModel(model)
    sched = SequentialLR(opt, [CosineAnnealingLR(opt, T_max=100), SWALR(opt, swa_lr=0.05)],
                         milestones=[100])
    for t in range(steps):
        loss(model).backward(); opt.step(); opt.zero_grad()
        if t >= 100:
            swa_model.update_parameters(model)
        sched.step()

and its gradtx counterpart (one ``update`` per ``optimizer.step()``)::

    tx = gradtx.chain(
        from_torch("SGD", lr=0.1, scheduler=("SequentialLR", {
            "schedulers": [("CosineAnnealingLR", {"T_max": 100}), ("SWALR", {"swa_lr": 0.05})],
            "milestones": [100]})),
        averaged_model("swa", start=100),
    )
    state = tx.init(params)
    for t in range(steps):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = gradtx.apply_updates(params, updates)
    swa_params = gradtx.wrappers.averaged_params(state)   # swa_model.module's parameters
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

from gradtx.base import GradientTransformation
from gradtx.kit import check_ranges
from gradtx.torch_compat.schedulers import Scheduler, register_scheduler
from gradtx.wrappers import ema_params


def _anneal(strategy: str):
    """torch's annealing curves on ``[0, 1]``: ``(1 - cos(pi u)) / 2`` or ``u``."""
    if strategy == "cos":
        return lambda u: (1 - jnp.cos(jnp.pi * u)) / 2
    return lambda u: u


@register_scheduler("SWALR")
def _swalr(
    lr: Any,
    /,
    swa_lr: float,
    anneal_epochs: int = 10,
    anneal_strategy: Literal["cos", "linear"] = "cos",
) -> Scheduler:
    """``torch.optim.swa_utils.SWALR``: from the lr ``L`` it starts on to ``swa_lr`` over
    ``anneal_epochs`` steps, ``lr_t = swa_lr a_t + L (1 - a_t)``, ``a_t = f(min(t /
    anneal_epochs, 1))`` with ``f(u) = (1 - cos(pi u)) / 2`` (``"cos"``) or ``u``
    (``"linear"``); ``anneal_epochs=0`` sets ``swa_lr`` at once.  Step (what torch computes):
    recover ``L`` from the lr ``x`` it finds, ``L = (x - a_{t-1} swa_lr) / (1 - a_{t-1})``
    (``swa_lr`` once ``a_{t-1} = 1``), then ``swa_lr a_t + L (1 - a_t)``; so after a
    ``tree_set(state, learning_rate=...)`` it anneals from the new value, and once annealed it
    puts ``swa_lr`` back."""
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(
            f"SWALR: anneal_strategy must be one of 'cos' or 'linear', got {anneal_strategy!r}"
        )
    if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
        raise ValueError(f"SWALR: anneal_epochs must be an integer >= 0, got {anneal_epochs!r}")
    check_ranges("SWALR", swa_lr=(swa_lr, "[0, inf)"))
    f, span = _anneal(anneal_strategy), max(1, anneal_epochs)

    def alpha(s):
        u = jnp.clip(jnp.asarray(s).astype(jnp.result_type(float)) / span, 0.0, 1.0)
        return f(u)

    def closed(count):
        a = alpha(count) if anneal_epochs > 0 else 1.0
        return swa_lr * a + lr * (1 - jnp.asarray(a, jnp.result_type(float)))

    def step(x, t):
        s = t if anneal_epochs > 0 else jnp.maximum(t, 1)
        before = alpha(s - 1)
        done = before == 1
        start = jnp.where(done, swa_lr, (x - before * swa_lr) / jnp.where(done, 1.0, 1 - before))
        a = alpha(s)
        return swa_lr * a + start * (1 - a)

    return Scheduler(closed, step, restart=lambda x: step(x, jnp.zeros([], jnp.int32)))


Strategy = Literal["swa", "ema"]


def averaged_model(
    strategy: Strategy = "swa",
    decay: float = 0.999,
    *,
    start: int = 0,
    every: int = 1,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """``torch.optim.swa_utils.AveragedModel``: the running average of the params after the
    steps ``start, start + every, start + 2 every, ...`` (counted from 0), the calls of
    ``swa_model.update_parameters(model)`` after ``optimizer.step()``.  Put it last in the
    chain; updates pass through.  With ``x_k`` the params after the ``k``-th averaged step
    (``k = 0, 1, ...``)::

        z = x_0                                          (torch copies when n_averaged == 0)
        z <- z + (x_k - z) / (k + 1)                     "swa": the equal-weight mean
        z <- decay z + (1 - decay) x_k                   "ema": get_ema_multi_avg_fn(decay)

    and before ``start`` ``z`` is the params ``init`` saw (torch's deepcopy of the model).  Read
    it with ``gradtx.wrappers.averaged_params(state)``; ``n_averaged`` is ``max(0, (count -
    start) // every + 1)``.  Built on ``ema_params(decay_t, debias=False)`` with ``decay_t = 1``
    on steps that are not averaged, ``0`` on the first that is (the copy) and ``k / (k + 1)`` or
    ``decay`` after: ``ema_params(decay)`` alone is not torch's average (its ``debias=True``
    weights ``(1 - d) / (1 - d^k)`` differ after the first step, its ``debias=False`` mixes in
    the initial params at the first).  torch's ``use_buffers=True`` also averages buffers
    (BatchNorm statistics); in JAX those are not optimizer params: average them with a second
    ``averaged_model`` over them, or recompute them after training as ``update_bn`` does.

    Args:
      strategy: ``"swa"`` (equal weights, torch's default) or ``"ema"``.
      decay: the EMA decay, in ``[0, 1]`` (``"ema"`` only).
      start: the first step averaged (an integer >= 0).
      every: average every ``every``-th step from ``start`` on (an integer >= 1).
      accumulator_dtype: the dtype the average is kept in (default: the params').

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> from gradtx.torch_compat import averaged_model, from_torch
        >>> tx = gradtx.chain(from_torch("SGD", lr=0.5), averaged_model("swa", start=1))
        >>> params = jnp.array([4.0])
        >>> state = tx.init(params)
        >>> for _ in range(3):  # p: 2, 1, 0.5; averaged after steps 1 and 2
        ...     updates, state = tx.update(params, state, params)  # the gradient of p^2 / 2
        ...     params = gradtx.apply_updates(params, updates)
        >>> print(gradtx.wrappers.averaged_params(state))
        [0.75]
    """
    if strategy not in ("swa", "ema"):
        raise ValueError(f"averaged_model: strategy={strategy!r}; allowed: 'swa' or 'ema'")
    check_ranges(
        "averaged_model",
        decay=(decay, "[0, 1]"),
        start=(start, "[0, inf)"),
        every=(every, "[1, inf)"),
    )
    if not isinstance(start, int) or not isinstance(every, int):
        raise ValueError(f"averaged_model: start={start!r}, every={every!r} must be integers")

    def decay_at(count: jax.Array) -> jax.Array:
        since = jnp.asarray(count) - start
        k = since // every  # the number of averages taken before this one
        averaged = (since >= 0) & (since % every == 0)
        later = decay if strategy == "ema" else k / (k + 1.0)
        weight = jnp.where(k == 0, 0.0, later)
        return jnp.where(averaged, weight, 1.0).astype(jnp.result_type(float))

    return ema_params(decay_at, debias=False, accumulator_dtype=accumulator_dtype)


__all__ = ["averaged_model"]
