"""The optimizer families, one module each, every module holding a family's blocks and the
optimizers chained from them:

=================  ===========================================================================
``sgd``            SGD, momentum, gradient noise
``rms``            Adagrad, RMSProp, Adadelta: second-moment scaling without momentum
``adam``           Adam, AdamW, NAdam(W), AMSGrad: bias-corrected first and second moments
``adam_variants``  AdaMax, RAdam, torch's NAdam, AdaBelief, Yogi: Adam with another moment rule
``sign``           signSGD, Signum, Lion: the sign of a (smoothed) gradient
``trust_ratio``    LARS, LAMB, Fromage: per-leaf steps from the parameter/update norm ratio
``self_tuning``    hypergradient descent, SWATS, D-Adaptation, Prodigy: learned step sizes
``schedule_free``  Schedule-Free SGD and AdamW: averaging in place of a schedule
``adan``           Adan: Nesterov momentum estimated from gradient differences
``novograd``       NovoGrad: one second moment per leaf (layer)
``adopt``          ADOPT, ACProp: the second moment of past gradients only
``ademamix``       AdEMAMix (and simplified): a fast and a slow momentum mixed
``madgrad``        MADGRAD: dual averaging with a cube-root denominator
``optimistic``     optimistic gradient descent / Adam (min-max games)
``factored``       Adafactor, SM3: second moments in m + n numbers per (m, n) matrix
``coin_betting``   COCOB, Mechanic: steps won by betting on the gradient's sign
``distance_over_gradients``  DoG, DoWG, layer-wise DoG: distance travelled over gradient size
``polyak``         Polyak step sizes, MoMo: steps from the loss value (``value=``)
``rprop``          Rprop: per-coordinate steps grown and shrunk by sign agreement
``plateau``        optax's reduce-on-plateau: a scale driven by the monitored loss
``constraints``    keep_params_nonnegative, centralize, normalize_by_update_norm
``sam``            SAM: ascent steps, then the descent step from where they began
``sophia``         Sophia: clipped steps from a Hessian-diagonal estimate (Hutchinson)
``galore``         GaLore: the optimizer run in a low-rank projection of each matrix
``differential_privacy``  DP-SGD: per-example clipping and Gaussian noise
``delayed``        delayed_gradients: bounded staleness, as an async parameter server
``orthogonalize``  Newton-Schulz orthogonalisation and Muon's matrix layouts
``muon``           Muon: orthogonalised momentum on matrices, AdamW elsewhere
``kronecker``      the shared Kronecker-factor machinery (blocks, stacking, inverse roots)
``shampoo``        Shampoo: Kronecker-factored preconditioners with grafting
``soap``           SOAP: Adam in the eigenbasis of Shampoo's factors
``psgd``           PSGD-Kron: a Kronecker preconditioner fitted by its own update rule
``linesearch``     zoom (strong Wolfe) and backtracking (Armijo) line searches
``quasi_newton``   L-BFGS: curvature pairs and the two-loop recursion
=================  ===========================================================================

Every module of this package is a family: it is imported here and its ``__all__`` re-exported,
so a new family needs no other file changed.  The general-purpose blocks they share (learning
rate, momentum, weight decay, noise) live in ``gradtx.blocks``; the kit they are written with in
``gradtx.kit``.
"""

import importlib
import pkgutil

FAMILIES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))
"""The family modules (every module of this package)."""

__all__: list[str] = []
for _family in FAMILIES:
    _module = importlib.import_module(f"{__name__}.{_family}")
    globals().update({name: getattr(_module, name) for name in _module.__all__})
    __all__ += _module.__all__
