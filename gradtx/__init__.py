"""gradtx: composable, exact, fast optimizers for JAX.

An optimizer is a pair of pure functions ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``; see ``gradtx.base``.
"""

from gradtx.aliases import *  # noqa: F403
from gradtx.base import (
    Block,
    ChainState,
    EmptyState,
    GradientTransformation,
    Schedule,
    ScalarOrSchedule,
    apply_updates,
    as_block,
    blocks_of,
    chain,
    identity,
    named_chain,
    stateless,
    transformation,
    tree_get,
    tree_paths,
    tree_set,
    with_extra_args,
)
from gradtx.clipping import *  # noqa: F403
from gradtx.combinators import *  # noqa: F403
from gradtx.transforms import *  # noqa: F403

__version__ = "0.1.0"
