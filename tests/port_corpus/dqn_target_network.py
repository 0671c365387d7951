"""A DQN-style loop (as in rlax/purejaxrl/dopamine JAX ports): an online Q-network trained with
``optax.chain(optax.clip_by_global_norm(10.0), optax.adam(lr))`` on a Huber TD loss
(``optax.huber_loss``), a target network refreshed with ``optax.periodic_update`` (hard copy
every ``target_period`` steps) and, in a second agent, ``optax.incremental_update`` (Polyak
averaging with ``tau``).  The environment is a small deterministic chain MDP.  float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)

NUM_STATES, NUM_ACTIONS, GAMMA = 6, 2, 0.9


def env_step(s, a):
    """Action 1 moves right, action 0 left; reward 1 on reaching the right end."""
    s_next = np.clip(s + (2 * a - 1), 0, NUM_STATES - 1)
    reward = (s_next == NUM_STATES - 1).astype(np.float64)
    return s_next, reward, s_next == NUM_STATES - 1


def init_q_network(key):
    k1, k2 = jax.random.split(key)
    return {
        "hidden": {"w": 0.5 * jax.random.normal(k1, (NUM_STATES, 16)), "b": jnp.zeros(16)},
        "out": {"w": 0.5 * jax.random.normal(k2, (16, NUM_ACTIONS)), "b": jnp.zeros(NUM_ACTIONS)},
    }


def q_values(params, states):
    h = jax.nn.one_hot(states, NUM_STATES) @ params["hidden"]["w"] + params["hidden"]["b"]
    return jax.nn.relu(h) @ params["out"]["w"] + params["out"]["b"]


def td_loss(online, target, batch):
    s, a, r, s_next, done = batch
    q = q_values(online, s)[jnp.arange(len(a)), a]
    q_next = jnp.max(q_values(target, s_next), axis=-1)
    td_target = jax.lax.stop_gradient(r + GAMMA * (1.0 - done) * q_next)
    return jnp.mean(optax.huber_loss(q, td_target, delta=1.0))


def collect(rng, n):
    s = rng.integers(0, NUM_STATES - 1, size=n)
    a = rng.integers(0, NUM_ACTIONS, size=n)
    s_next, r, done = env_step(s, a)
    return tuple(jnp.asarray(v) for v in (s, a, r, s_next, done.astype(np.float64)))


def train(target_update, steps=60):
    rng = np.random.default_rng(0)
    online = init_q_network(jax.random.key(0))
    target = jax.tree.map(jnp.copy, online)
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(5e-3))
    opt_state = optimizer.init(online)

    @jax.jit
    def update(online, target, opt_state, batch, step):
        loss, grads = jax.value_and_grad(td_loss)(online, target, batch)
        updates, opt_state = optimizer.update(grads, opt_state, online)
        online = optax.apply_updates(online, updates)
        target = target_update(online, target, step)
        return online, target, opt_state, loss

    losses = []
    for step in range(steps):
        online, target, opt_state, loss = update(online, target, opt_state, collect(rng, 32), step)
        losses.append(loss)
    greedy = jnp.argmax(q_values(online, jnp.arange(NUM_STATES)), -1)
    return {"losses": jnp.stack(losses), "online": online, "target": target, "greedy": greedy}


def main():
    hard = train(lambda new, old, step: optax.periodic_update(new, old, step, update_period=10))
    soft = train(lambda new, old, step: optax.incremental_update(new, old, step_size=0.05))
    return {"losses": hard["losses"], "periodic": hard, "incremental": soft}
