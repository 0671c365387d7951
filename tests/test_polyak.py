"""The loss-driven optimizers ask for the loss by name when it is missing, check ``variant`` when
built, and take no step (rather than a NaN) when the gradient vanishes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

NEED_VALUE = {
    "scale_by_polyak": gradtx.scale_by_polyak,
    "polyak_sgd": gradtx.polyak_sgd,
    "momo": gradtx.momo,
    "momo_adam": gradtx.momo_adam,
}


@pytest.mark.parametrize("name", sorted(NEED_VALUE))
def test_missing_value_is_named(name):
    tx, params = NEED_VALUE[name](), {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"update needs the loss.*value=loss"):
        tx.update(params, tx.init(params), params)


@pytest.mark.parametrize("name", sorted(NEED_VALUE))
def test_zero_gradient_takes_no_step(name):
    tx, params = NEED_VALUE[name](), {"w": jnp.ones(3)}
    zero = {"w": jnp.zeros(3)}
    u, _ = tx.update(zero, tx.init(params), params, value=jnp.asarray(2.0))
    assert np.all(np.asarray(u["w"]) == 0)


def test_variant_is_checked_when_built():
    with pytest.raises(ValueError, match=r"^polyak_sgd: variant='sps\+\+'"):
        gradtx.polyak_sgd(variant="sps++")


def test_sps_plus_stops_below_f_min():
    x = jnp.asarray([1.0, -2.0])
    for variant, want in (("sps", -0.5 * x), ("sps+", 0 * x)):
        tx = gradtx.scale_by_polyak(f_min=3.0, variant=variant)
        u, _ = tx.update(x, tx.init(x), x, value=jnp.asarray(0.5))  # gap -2.5, ||g||² = 5
        np.testing.assert_allclose(u, want, rtol=1e-15)
