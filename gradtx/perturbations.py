"""Differentiable smoothing of any function by random perturbations, ``optax.perturbations``.

``make_perturbed_fun(f)`` turns ``f`` (pytree -> pytree, possibly piecewise constant such as an
argmax) into ``(key, x) -> estimate of E_z f(x + sigma z)`` whose derivatives of every order, by
JAX autodiff, are unbiased estimates of the derivatives of the smoothed function, using only
values of ``f``.  Names, signatures and, for the same key, numbers are optax 0.2.8's (the same
noise draws and the same operations; the tests check agreement to 1e-12).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradtx import tree as gt

Tree = Any

__all__ = ["Gumbel", "Normal", "make_perturbed_fun"]


@dataclasses.dataclass(frozen=True)
class Normal:
    """Standard normal noise ``z ~ N(0, 1)`` elementwise; ``log_prob(z) = -z^2 / 2`` (up to the
    constant ``-log(2 pi) / 2``, which no derivative sees).  Instances compare equal, so they
    are safe as static (hashable) arguments.  optax: ``optax.perturbations.Normal``.

    Example:
        >>> import jax, jax.numpy as jnp, gradtx.perturbations as gpert
        >>> gpert.Normal().sample(jax.random.key(0), (2, 3), jnp.float32).shape
        (2, 3)
        >>> print(gpert.Normal().log_prob(jnp.array([1.0, 2.0], dtype=jnp.float32)))
        [-0.5 -2. ]
    """

    def sample(
        self, key: jax.typing.ArrayLike, sample_shape: Sequence[int] = (), dtype: Any = float
    ) -> jax.Array:
        """``jax.random.normal(key, sample_shape, dtype)``."""
        return jax.random.normal(key, sample_shape, dtype)

    def log_prob(self, inputs: jax.Array) -> jax.Array:
        """Unnormalized log-density ``-inputs^2 / 2``, elementwise."""
        return -0.5 * inputs**2


@dataclasses.dataclass(frozen=True)
class Gumbel:
    """Standard Gumbel noise (location 0, scale 1) elementwise;
    ``log_prob(z) = -z - exp(-z)``.  With it, ``E onehot(argmax(x + sigma z)) =
    softmax(x / sigma)`` (the Gumbel-max trick).  optax: ``optax.perturbations.Gumbel``.

    Example:
        >>> import jax, jax.numpy as jnp, gradtx.perturbations as gpert
        >>> gpert.Gumbel().sample(jax.random.key(0), (4,), jnp.float32).dtype
        dtype('float32')
        >>> print(gpert.Gumbel().log_prob(jnp.array([0.0], dtype=jnp.float32)))
        [-1.]
    """

    def sample(
        self, key: jax.typing.ArrayLike, sample_shape: Sequence[int] = (), dtype: Any = float
    ) -> jax.Array:
        """``jax.random.gumbel(key, sample_shape, dtype)``."""
        return jax.random.gumbel(key, sample_shape, dtype)

    def log_prob(self, inputs: jax.Array) -> jax.Array:
        """Log-density ``-inputs - exp(-inputs)``, elementwise."""
        return -inputs - jnp.exp(-inputs)


def make_perturbed_fun(
    fun: Callable[[Tree], Tree],
    num_samples: int = 1000,
    sigma: jax.typing.ArrayLike = 0.1,
    noise: Any = Gumbel(),  # frozen: a shared default is safe (optax's default too)
    use_baseline: bool = True,
) -> Callable[[jax.Array, Tree], Tree]:
    """A stochastic, differentiable approximation of ``fun``: the returned ``g(key, x)`` is the
    Monte-Carlo estimate, over ``num_samples`` draws ``z_i`` of ``noise``, of the smoothed

        ``f_sigma(x) = E_z fun(x + sigma z)``,

    and its derivatives (of any order, through ``jax.grad``/``jacobian``/``hessian``) are
    unbiased estimates of ``f_sigma``'s, computed from values of ``fun`` only (``fun`` need not
    be differentiable; its derivative is never called).

    Algorithm: the score-function (REINFORCE) estimator written with the DiCE "magic box"
    ``box = exp(l - stop_gradient(l))``, where ``l = sum log_prob((y_i - x) / sigma)`` and
    ``y_i = stop_gradient(x + sigma z_i)``: ``box`` is 1 in value, and differentiating it
    ``k`` times gives the ``k``-th order score terms.  With ``use_baseline``, each sample is
    ``box * fun(y_i) + (1 - box) * fun(x)``: same value, derivative terms
    ``(fun(y_i) - fun(x)) * d box`` (variance reduction).  Noise ``z_i`` for draw ``i`` is
    ``gradtx.tree.random_like(k_i, x, noise.sample)`` with ``k_i = split(key, num_samples)[i]``
    (optax's draws).  Berthet et al. 2020; Foerster et al. 2018.
    optax: ``optax.perturbations.make_perturbed_fun``.

    Args:
        fun: the function, pytree of arrays -> pytree of arrays.
        num_samples: number of perturbed evaluations averaged.
        sigma: scale of the perturbation.
        noise: the noise, any object with ``sample(key, shape, dtype)`` and
            ``log_prob(z)`` (``Gumbel()``, ``Normal()``, or optax's).
        use_baseline: subtract ``fun(x)`` in the derivative terms (variance reduction).

    Returns:
        ``g(key, x)``, with ``fun``'s output structure.

    Example:
        >>> import jax, jax.numpy as jnp, gradtx.perturbations as gpert
        >>> f = lambda x: jnp.sum(jnp.maximum(x, 0.0))  # relu: kink at 0
        >>> g = gpert.make_perturbed_fun(f, num_samples=100_000, sigma=0.5, noise=gpert.Normal())
        >>> d = jax.jit(jax.grad(g, argnums=1))(jax.random.key(0), jnp.zeros(2, dtype=jnp.float32))
        >>> print(jnp.round(d, 1))  # E[1{sigma z > 0}] = 0.5
        [0.5 0.5]
    """

    def one_draw(key: jax.Array, x: Tree, baseline: Tree) -> Tree:
        z = gt.random_like(key, x, sampler=noise.sample)
        y = jax.lax.stop_gradient(jax.tree.map(lambda xi, zi: xi + sigma * zi, x, z))
        # z recomputed from the constant y depends on x again: its log-density gives the score
        z = jax.tree.map(lambda xi, yi: (yi - xi) / sigma, x, y)
        log_p = gt.sum(jax.tree.map(noise.log_prob, z))
        box = jnp.exp(log_p - jax.lax.stop_gradient(log_p))
        out = gt.scale(box, fun(y))
        return gt.add_scale(out, 1 - box, baseline) if use_baseline else out

    def perturbed_fun(key: jax.Array, x: Tree) -> Tree:
        baseline = fun(jax.lax.stop_gradient(x)) if use_baseline else None
        keys = jax.random.split(key, num_samples)
        draws = jax.vmap(one_draw, in_axes=(0, None, None))(keys, x, baseline)
        return jax.tree.map(lambda d: jnp.mean(d, axis=0), draws)

    return perturbed_fun
