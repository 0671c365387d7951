"""``optax.tree`` for gradtx: arithmetic, reductions, casts, random trees, moment updates and
lookup by name on pytrees, with optax 0.2.8's names, signatures, output dtypes and numbers.

``import gradtx as optax`` code calling ``optax.tree.add(...)`` runs unchanged.  Where gradtx is
deliberately more accurate, an output's dtype and shape still match optax's:

* ``bias_correction`` forms ``1 - decay^count`` as ``-expm1(count * log(decay))``, the log of a
  Python ``decay`` taken in double precision (``gradtx.kit.one_minus_power``): full float32
  accuracy, where optax's ``1 - decay**count`` in float32 is off by ~1.3e-5 relative (decay
  0.999, first step); bfloat16/float16 moments are divided in float32 and rounded once.
* ``sum``, ``vdot`` and ``norm`` accumulate bfloat16/float16 leaves in float32 over the whole
  tree and round once (optax rounds each leaf's result, then adds in the low precision).
* ``set`` replaces every value ``get_all_with_path`` finds; optax's misses matches nested inside
  a list or an unmatched dict below another match.
"""

from gradtx.tree.arithmetic import *  # noqa: F403
from gradtx.tree.constructors import *  # noqa: F403
from gradtx.tree.lookup import *  # noqa: F403
from gradtx.tree.moments import *  # noqa: F403
