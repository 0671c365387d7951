"""gradtx: composable, exact, fast optimizers for JAX.

An optimizer is a pair of pure functions ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``; see ``gradtx.base``.
The public names of the submodules are re-exported here, except ``gradtx.paths`` (parameter
selection by path) and ``gradtx.parallel`` (sharded and data-parallel layouts), which are used as
namespaces.
"""

from gradtx import (  # noqa: F401
    adaptive,
    aliases,
    base,
    clipping,
    combinators,
    flat,
    hyperparams,
    parallel,
    paths,
    plateau,
    schedules,
    torch_compat,
    transforms,
    wrappers,
)
from gradtx.adaptive import *  # noqa: F403
from gradtx.aliases import *  # noqa: F403
from gradtx.base import *  # noqa: F403
from gradtx.clipping import *  # noqa: F403
from gradtx.combinators import *  # noqa: F403
from gradtx.flat import *  # noqa: F403
from gradtx.hyperparams import *  # noqa: F403
from gradtx.plateau import *  # noqa: F403
from gradtx.schedules import *  # noqa: F403
from gradtx.torch_compat import from_torch, torch_schedule  # noqa: F401
from gradtx.transforms import *  # noqa: F403
from gradtx.wrappers import *  # noqa: F403

__version__ = "0.1.0"
