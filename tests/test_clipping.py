"""Clipping: NumPy references written from the papers' formulas, and optax's same-named
transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx import tree_get
from gradtx.clipping import (
    adaptive_grad_clip,
    clip,
    clip_by_block_rms,
    clip_by_global_norm,
    unitwise_norm,
)

RNG = np.random.default_rng(3)
# one leaf of every rank AGC knows: scalar, vector, dense, multi-head dense, conv, conv3d,
# plus a (1, n) row that counts as a vector
SHAPES = {
    "s": (),
    "v": (5,),
    "row": (1, 4),
    "dense": (4, 3),
    "heads": (3, 2, 4),
    "conv": (2, 2, 3, 4),
    "conv3d": (2, 2, 2, 2, 3),
}
PARAMS = {k: jnp.asarray(RNG.normal(size=s)) for k, s in SHAPES.items()}
# gradient scales chosen so that some units are clipped and some are not
GRADS = {
    k: jnp.asarray(RNG.normal(size=s) * RNG.choice([0.01, 3.0], size=s)) for k, s in SHAPES.items()
}


def run(tx, grads, params=None):
    # jitted: one compilation instead of dozens of op-by-op dispatches
    return jax.jit(tx.update)(grads, tx.init(grads if params is None else params), params)


def close(a, b, tol=1e-10):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


# --- NumPy references ----------------------------------------------------------------------------


def np_unit_norm(x):
    """Norm of what one output unit owns: every axis but the last (all axes for vectors)."""
    x = np.asarray(x)
    if np.squeeze(x).ndim <= 1:
        axes = tuple(range(x.ndim))
    elif x.ndim in (2, 3):
        axes = (0,)
    else:
        axes = tuple(range(x.ndim - 1))
    return np.broadcast_to(np.sqrt((x**2).sum(axis=axes, keepdims=True)), x.shape)


def np_agc(g, p, clipping, eps):
    g = np.asarray(g)
    gn, pn = np_unit_norm(g), np_unit_norm(p)
    limit = clipping * np.maximum(pn, eps)
    return np.where(gn < limit, g, g * limit / np.maximum(gn, 1e-6))


# --- tests ---------------------------------------------------------------------------------------


def test_clip_elementwise():
    u, _ = run(clip(0.5), GRADS)
    close(u, jax.tree.map(lambda g: np.clip(np.asarray(g), -0.5, 0.5), GRADS), 0)


@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clipped", "unclipped"])
def test_clip_by_global_norm_and_its_logged_norm(max_norm):
    u, s = run(clip_by_global_norm(max_norm), GRADS)
    norm = np.sqrt(sum((np.asarray(g) ** 2).sum() for g in jax.tree.leaves(GRADS)))
    np.testing.assert_allclose(float(tree_get(s, "global_norm")), norm, rtol=1e-13)
    factor = min(1.0, max_norm / norm)
    close(u, jax.tree.map(lambda g: np.asarray(g) * factor, GRADS))
    ref, _ = run(optax.clip_by_global_norm(max_norm), GRADS)
    close(u, ref)


@pytest.mark.parametrize("threshold", [0.05, 1.0])
def test_clip_by_block_rms(threshold):
    u, _ = run(clip_by_block_rms(threshold), GRADS)

    def np_rms_clip(g):
        g = np.asarray(g)
        return g / max(1.0, np.sqrt((g**2).mean()) / threshold)

    close(u, jax.tree.map(np_rms_clip, GRADS))
    close(u, run(optax.clip_by_block_rms(threshold), GRADS)[0])
    # the small threshold clips every leaf whose rms exceeds it; the large one only the big ones
    changed = [
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(GRADS), strict=True)
    ]
    assert any(changed) and (all(changed) or threshold == 1.0)


@pytest.mark.parametrize("clipping", [0.05, 0.5])
def test_adaptive_grad_clip(clipping):
    params = {**PARAMS, "v": jnp.zeros(5)}  # zero params: the eps floor sets the limit
    u, _ = run(adaptive_grad_clip(clipping), GRADS, params)
    want = jax.tree.map(lambda g, p: np_agc(g, p, clipping, 1e-3), GRADS, params)
    close(u, want)
    close(u, run(optax.adaptive_grad_clip(clipping), GRADS, params)[0])
    # some units were clipped and some were not, so both branches were exercised
    kept = [
        np.isclose(np.asarray(a), np.asarray(b)).mean()
        for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(GRADS), strict=True)
    ]
    assert 0 < np.mean(kept) < 1


def test_unitwise_norm_units_and_axis():
    x = jnp.asarray(RNG.normal(size=(2, 3, 4, 5, 6, 7)))
    with pytest.raises(ValueError, match="axis"):
        unitwise_norm(x)
    got = unitwise_norm(x, axis=(0, 1))
    np.testing.assert_allclose(
        np.asarray(got)[0, 0], np.sqrt((np.asarray(x) ** 2).sum(axis=(0, 1))), rtol=1e-13
    )
    close(unitwise_norm(PARAMS["conv"]), optax.transforms.unitwise_norm(PARAMS["conv"]))


def test_float32_stays_float32():
    g = {"w": jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)}
    for tx in (clip_by_block_rms(0.1), adaptive_grad_clip(0.1), clip_by_global_norm(0.1)):
        u, _ = run(tx, g, g)
        assert u["w"].dtype == jnp.float32
        np.testing.assert_allclose(
            np.asarray(u["w"]),
            np.asarray(run(tx, jax.tree.map(np.float64, g), g)[0]["w"]),
            rtol=1e-6,
        )


def test_agc_needs_params_and_ranges():
    with pytest.raises(ValueError, match="needs params"):
        run(adaptive_grad_clip(0.1), GRADS)
    with pytest.raises(ValueError, match="threshold"):
        clip_by_block_rms(0.0)
    with pytest.raises(ValueError, match="clipping"):
        adaptive_grad_clip(-1.0)
