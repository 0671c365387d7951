"""optax's documented L-BFGS loop (the ``optax.lbfgs`` docstring and the "L-BFGS" section of
optax's optimizer guide): ``value_and_grad = optax.value_and_grad_from_state(fun)``, then each
step ``updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)``
inside a ``jax.lax.while_loop`` that stops on the gradient norm, as the guide's
``run_opt`` does; the line search's diagnostics read with ``optax.tree_utils.tree_get``.  A
small L2-regularised logistic regression in float64, run with the default zoom line search and
with a backtracking one that stores its gradient.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)


def loss_fn(params, x, y):
    logits = x @ params["w"] + params["b"]
    nll = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))
    return nll + 1e-2 * jnp.sum(params["w"] ** 2)


def run_opt(init_params, fun, opt, max_iter, tol):
    value_and_grad_fun = optax.value_and_grad_from_state(fun)

    def step(carry):
        params, state = carry
        value, grad = value_and_grad_fun(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = optax.apply_updates(params, updates)
        return params, state

    def continuing_criterion(carry):
        _, state = carry
        iter_num = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        err = optax.tree_utils.tree_l2_norm(grad)
        return (iter_num == 0) | ((iter_num < max_iter) & (err >= tol))

    init_carry = (init_params, opt.init(init_params))
    return jax.lax.while_loop(continuing_criterion, step, init_carry)


def main():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, 5)))
    w_true = jnp.asarray([1.0, -2.0, 0.5, 0.0, 1.5])
    y = (x @ w_true + 0.5 * jnp.asarray(rng.normal(size=128)) > 0).astype(jnp.float64)
    fun = functools.partial(loss_fn, x=x, y=y)
    params = {"w": jnp.zeros(5), "b": jnp.zeros(())}

    results = {}
    solvers = {
        "zoom": optax.lbfgs(),
        "backtracking": optax.lbfgs(
            memory_size=5,
            linesearch=optax.scale_by_backtracking_linesearch(
                max_backtracking_steps=20, store_grad=True
            ),
        ),
    }
    for name, opt in solvers.items():
        final_params, state = jax.jit(
            functools.partial(run_opt, fun=fun, opt=opt, max_iter=15, tol=1e-6)
        )(params)
        results[name] = {
            "params": final_params,
            "value": fun(final_params),
            "steps": optax.tree_utils.tree_get(state, "count"),
            "learning_rate": optax.tree_utils.tree_get(state, "learning_rate"),
        }
    return results
