"""Test-wide settings: float64 on, so reference comparisons can be tight (1e-10).

Tests that check float32/bfloat16 behaviour create arrays with an explicit dtype.
"""

import jax

jax.config.update("jax_enable_x64", True)
