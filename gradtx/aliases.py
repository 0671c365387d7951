"""The classic optimizers, each a short chain of public blocks.

Names, arguments and defaults follow optax, so porting is changing the import.  Every
optimizer's update is ``p <- p + u`` with ``u = -learning_rate * direction``; each docstring
gives the direction.
"""

from __future__ import annotations

from typing import Any

from gradtx._tree import check_ranges
from gradtx.base import GradientTransformation, ScalarOrSchedule, chain, identity
from gradtx.transforms import (
    add_decayed_weights,
    add_noise,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_belief,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_radam,
    scale_by_rms,
    scale_by_rss,
    scale_by_sign,
    scale_by_yogi,
    trace,
)

Mask = Any


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent: ``u = -lr * g``; with ``momentum``
    ``m_t = momentum * m_{t-1} + g``, ``u = -lr * m_t`` (Nesterov: ``-lr * (g + momentum * m_t)``).
    optax: ``optax.sgd``; torch: ``SGD(lr, momentum, nesterov=)``."""
    check_ranges("sgd", momentum=(momentum, "[0, inf)"))
    return chain(
        identity() if momentum is None else trace(momentum, nesterov, accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011): ``s_t = s_{t-1} + g^2``, ``u = -lr * g / sqrt(s_t + eps)``.
    optax: ``optax.adagrad``; torch's rule (eps outside the root): ``from_torch("Adagrad")``."""
    return chain(
        scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate)
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp (Hinton 2012): ``v_t = decay v + (1 - decay) g^2``,
    ``u = -lr * g / sqrt(v_t + eps)`` (centered: ``v_t - m_t^2``), then optional momentum on ``u``.
    optax: ``optax.rmsprop``; torch: ``from_torch("RMSprop")``."""
    check_ranges("rmsprop", momentum=(momentum, "[0, inf)"))
    return chain(
        scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered),
        scale_by_learning_rate(learning_rate),
        identity() if momentum is None else trace(momentum, nesterov),
    )


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Mask = None,
) -> GradientTransformation:
    """Adadelta (Zeiler 2012) with L2 weight decay: ``g' = g + wd * p``, then
    ``scale_by_adadelta``, then ``-lr`` (``None``: no learning rate, as in the paper).
    optax: ``optax.adadelta``; torch: ``Adadelta``."""
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015): ``u = -lr * m̂ / (sqrt(v̂ + eps_root) + eps)``.
    ``mu_dtype``/``nu_dtype`` set the moments' storage dtypes.
    optax: ``optax.adam``; torch: ``Adam``."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019), decoupled decay:
    ``u = -lr * (m̂ / (sqrt(v̂ + eps_root) + eps) + wd * p)``.  optax: ``optax.adamw``; torch:
    ``AdamW`` (whose default weight_decay is 1e-2)."""
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NAdam (Dozat 2016) as optax defines it: ``adam(..., nesterov=True)``, i.e.
    ``m̂ = b1 m_t / (1 - b1^{t+1}) + (1 - b1) g / (1 - b1^t)``.  optax: ``optax.nadam``; torch's
    NAdam (with its momentum schedule) is ``from_torch("NAdam")``."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True)


def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
) -> GradientTransformation:
    """NAdamW: ``adamw(..., nesterov=True)``.  optax: ``optax.nadamw``."""
    return adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=True)


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018): ``u = -lr * m̂ / (sqrt(max_{i<=t} v̂_i + eps_root) + eps)``.
    optax: ``optax.amsgrad``; torch: ``from_torch("Adam", amsgrad=True)``."""
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu),
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """AdaMax: ``u = -lr * m_t / ((1 - b1^t) max(b2 n, |g| + eps))``.  optax: ``optax.adamax``;
    torch: ``Adamax``."""
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Mask = None,
) -> GradientTransformation:
    """AdaMax with decoupled weight decay: ``u = -lr * (adamax_direction + wd * p)``.
    optax: ``optax.adamaxw``."""
    return chain(
        scale_by_adamax(b1, b2, eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def radam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """RAdam (Liu et al. 2020): Adam with the variance rectification ``r_t`` of
    ``scale_by_radam``.  optax: ``optax.radam``; torch: ``from_torch("RAdam")``."""
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Mask = None,
) -> GradientTransformation:
    """Lion (Chen et al. 2023): ``u = -lr * (sign(b1 m + (1 - b1) g) + wd * p)``,
    ``m_t = b2 m + (1 - b2) g``.  optax: ``optax.lion``."""
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020): ``u = -lr * m̂ / (sqrt(ŝ) + eps)``, ``s`` the EMA of
    ``(g - m)^2``.  optax: ``optax.adabelief``."""
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def yogi(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-3
) -> GradientTransformation:
    """Yogi (Zaheer et al. 2018): ``v_t = v - (1 - b2) sign(v - g^2) g^2``,
    ``u = -lr * m̂ / (sqrt(v̂) + eps)``.  optax: ``optax.yogi``."""
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: float = 0.01,
    gamma: float = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """SGD with annealed Gaussian noise: ``u = -lr * (g + N(0, eta / t^gamma))``.
    optax: ``optax.noisy_sgd``."""
    return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate))


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """signSGD (Bernstein et al. 2018): ``u = -lr * sign(g)``.  optax: ``optax.sign_sgd``."""
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


__all__ = [
    "adabelief",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "amsgrad",
    "lion",
    "nadam",
    "nadamw",
    "noisy_sgd",
    "radam",
    "rmsprop",
    "sgd",
    "sign_sgd",
    "yogi",
]
