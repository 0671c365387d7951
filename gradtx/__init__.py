"""gradtx: composable, exact, fast optimizers for JAX.

An optimizer is a pair of pure functions ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``; see ``gradtx.base``.
Every public name of the submodules below is re-exported here.
"""

from gradtx import aliases, base, clipping, combinators, flat, transforms  # noqa: F401
from gradtx.aliases import *  # noqa: F403
from gradtx.base import *  # noqa: F403
from gradtx.clipping import *  # noqa: F403
from gradtx.combinators import *  # noqa: F403
from gradtx.flat import *  # noqa: F403
from gradtx.transforms import *  # noqa: F403

__version__ = "0.1.0"
