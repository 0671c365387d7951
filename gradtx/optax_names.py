"""optax's names for state classes and callable types that gradtx spells differently, so code
written against optax (``isinstance`` checks, type annotations, ``optax.LookaheadParams``) runs
with ``import gradtx as optax``.

gradtx keeps one step counter per optimizer (``ChainState.count``), never one per block, so the
classes optax gives a ``count`` field are here the gradtx state without it:

- ``AdaptiveGradClipState``, ``ClipState``, ``ScaleState``, ``ScaleByTrustRatioState``,
  ``AddDecayedWeightsState``: ``EmptyState``, as in optax (those blocks keep no state;
  ``add_decayed_weights`` with a ``mask`` keeps a ``MaskedState``).
- ``ScaleByScheduleState``: ``EmptyState``.  optax's is ``(count,)``; here the schedule reads the
  chain's ``count``.
- ``ScaleByBeliefState``: ``ScaleByAdamState(mu, nu)``, what ``scale_by_belief`` keeps: optax's
  ``(count, mu, nu)`` without ``count`` (``nu`` holds the average of ``(g - m)^2``).
- ``ApplyEvery``: ``ApplyEveryState(grad_acc)``, the state of ``apply_every``: optax's
  ``(count, grad_acc)`` without ``count``.
- ``LookaheadParams``: optax's ``(fast, slow)`` pair (below), which ``lookahead`` trains as
  optax's does; with plain params it keeps the slow ones in its state instead, and
  ``LookaheadParams.from_state(params, state)`` pairs them.
- ``MaskOrFn``: the type of a ``mask=`` argument: a tree of bools, a function of the params
  returning one, or ``None``.
- ``ShouldSkipUpdateFunction``: the type of ``MultiSteps``' ``should_skip_update_fn``.
- ``TransformInitFn``: ``gradtx.base.InitFn``, ``init(params) -> state``.
- ``TransformUpdateFn``: ``update(updates, state, params=None) -> (updates, state)``.
- ``TransformUpdateExtraArgsFn``: ``gradtx.base.UpdateFn``, the same with ``**extra`` (every
  gradtx ``update`` takes extra keywords).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax

from gradtx.base import EmptyState, InitFn, Params, UpdateFn, Updates
from gradtx.optimizers.adam import ScaleByAdamState
from gradtx.state import tree_get
from gradtx.wrappers import ApplyEveryState

AdaptiveGradClipState = EmptyState
AddDecayedWeightsState = EmptyState
ClipState = EmptyState
ScaleState = EmptyState
ScaleByTrustRatioState = EmptyState
ScaleByScheduleState = EmptyState
ScaleByBeliefState = ScaleByAdamState
ApplyEvery = ApplyEveryState

MaskOrFn = Any | Callable[[Params], Any] | None
"""A mask: a tree of bools shaped like the params (or a prefix of it), a function
``params -> such a tree``, or ``None`` for no mask.  optax: ``optax.MaskOrFn``."""

TransformInitFn = InitFn
TransformUpdateExtraArgsFn = UpdateFn


class TransformUpdateFn(Protocol):
    """``update(updates, state, params=None) -> (updates, state)``, without extra keywords.
    optax: ``optax.TransformUpdateFn``."""

    def __call__(
        self, updates: Updates, state: Any, params: Params | None = None
    ) -> tuple[Updates, Any]: ...


class ShouldSkipUpdateFunction(Protocol):
    """``fn(updates, gradient_step, params) -> (skip, info)``: whether ``MultiSteps`` drops a
    micro-step (``skip``, a bool array) and what to record in its ``skip_state`` (``info``).
    ``gradtx.skip_not_finite`` and ``gradtx.skip_large_updates`` are two.
    optax: ``optax.ShouldSkipUpdateFunction``."""

    def __call__(
        self, updates: Updates, gradient_step: jax.Array, params: Params | None
    ) -> tuple[jax.Array, Any]: ...


class LookaheadParams(NamedTuple):
    """A pair of parameter trees: ``fast`` (take gradients at these) and ``slow`` (evaluate
    these).  optax: ``optax.LookaheadParams``.

    ``lookahead`` trains a ``LookaheadParams`` exactly as optax's does (``init_synced(params)``,
    gradients at ``params.fast``, evaluate ``params.slow``).  It also trains plain params (the
    fast ones), keeping the slow ones in its state: then ``gradtx.slow_params(state)`` is
    ``params.slow``, and ``LookaheadParams.from_state(params, state)`` gives the pair.

    Example:
        >>> import jax.numpy as jnp
        >>> import gradtx
        >>> opt = gradtx.lookahead(gradtx.sgd(0.5), sync_period=2, slow_step_size=0.5)
        >>> params = jnp.array([1.0])
        >>> state = opt.init(params)
        >>> for _ in range(2):
        ...     updates, state = opt.update(2 * params, state, params)  # gradient of p^2
        ...     params = gradtx.apply_updates(params, updates)
        ...     pair = gradtx.LookaheadParams.from_state(params, state)
        ...     print(pair.fast, pair.slow)  # synced at the second step
        [0.] [1.]
        [0.5] [0.5]
    """

    fast: Any
    slow: Any

    @classmethod
    def init_synced(cls, params: Any) -> LookaheadParams:
        """``LookaheadParams(fast=params, slow=params)``."""
        return cls(fast=params, slow=params)

    @classmethod
    def from_state(cls, params: Any, state: Any) -> LookaheadParams:
        """The fast ``params`` paired with the slow weights a gradtx ``lookahead`` state holds."""
        return cls(fast=params, slow=tree_get(state, "slow"))


__all__ = [
    "AdaptiveGradClipState",
    "AddDecayedWeightsState",
    "ApplyEvery",
    "ClipState",
    "LookaheadParams",
    "MaskOrFn",
    "ScaleByBeliefState",
    "ScaleByScheduleState",
    "ScaleByTrustRatioState",
    "ScaleState",
    "ShouldSkipUpdateFunction",
    "TransformInitFn",
    "TransformUpdateExtraArgsFn",
    "TransformUpdateFn",
]
