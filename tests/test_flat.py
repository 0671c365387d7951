"""The contiguous-layout fast path gives the plain path's numbers (guards benchmarks' fast path)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.flat import FlatTree, flatten

SHAPES = {"w": (3, 4), "b": (4,), "s": (), "big": (40,), "h": [(2, 2), (5,)]}


def _tree(seed, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(rng.normal(size=s), dtype),
        SHAPES,
        is_leaf=lambda x: isinstance(x, tuple),
    )


# every entry whose rule is element-wise (Entry.traits), in its plain configuration, and a chain
# whose clipping reads the whole tree
ELEMENTWISE = [e for e in gradtx.registry.entries() if "elementwise" in e.traits]
# a block's output is a direction: chained with a small learning rate it makes an optimizer
CASES = {
    e.name: (
        lambda e=e: (
            e.build(0)
            if e.kind != "block"
            else gradtx.chain(e.build(0), gradtx.scale_by_learning_rate(0.05))
        )
    )
    for e in ELEMENTWISE
}
CASES["clip_adamw"] = lambda: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(0.01))


def _run(tx, steps=20):
    params = _tree(0)

    def body(carry, i):
        p, s = carry
        g = jax.tree.map(lambda x: jnp.sin(x * (i + 1.0)) + 0.1 * x, p)
        u, s = tx.update(g, s, p, value=sum(jnp.sum(x**2) for x in jax.tree.leaves(p)))
        return (gradtx.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(steps))
    return p


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("max_leaf_size", [None, 16])
def test_flat_layout_matches_plain(name, max_leaf_size):
    plain = _run(CASES[name]())
    flat = _run(flatten(CASES[name](), max_leaf_size=max_leaf_size))
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(flat), strict=True):
        # element-wise rules are identical; the global norm sums in another order
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)


def test_state_lives_in_flat_layout_and_big_leaves_stay_alone():
    tx = flatten(gradtx.adam(0.1), max_leaf_size=16)
    state = tx.init(_tree(0))
    mu = gradtx.tree_get(state, "mu")
    assert isinstance(mu, FlatTree)
    assert [b.shape for b in mu.buffers] == [(3 * 4 + 4 + 1 + 4 + 5,)]
    assert [x.shape for x in mu.solo] == [(40,)]


def test_buffers_hold_at_most_32_leaves():
    params = {f"b{i:03d}": jnp.ones(3) for i in range(70)}
    state = flatten(gradtx.sgd(0.1, momentum=0.9)).init(params)
    assert [b.shape for b in gradtx.tree_get(state, "trace").buffers] == [(96,), (96,), (18,)]


def test_groups_by_dtype_and_keeps_dtypes():
    params = {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(2, jnp.bfloat16), "c": jnp.ones(4)}
    tx = flatten(gradtx.adam(0.1))
    state = tx.init(params)
    assert sorted(str(b.dtype) for b in gradtx.tree_get(state, "mu").buffers) == [
        "bfloat16",
        "float32",
        "float64",
    ]
    u, _ = tx.update(params, state, params)
    assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, params)
