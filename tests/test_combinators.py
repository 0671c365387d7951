"""masked, multi_transform/partition, freeze/set_to_zero/selective_transform and gradtx.paths.

References are independent: a NumPy Adam/SGD written out below, optax's own adamw/masked for the
Flax nnx run, and hand-computed expectations for pass-through and frozen leaves.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from flax import nnx

import gradtx
from gradtx import chain, paths, scale, tree_paths
from gradtx.combinators import (
    MaskedNode,
    PartitionState,
    freeze,
    masked,
    multi_transform,
    partition,
    selective_transform,
    set_to_zero,
)

# --- independent references --------------------------------------------------------------------


def np_adam(grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Updates of Adam for a sequence of gradients of one leaf (Kingma & Ba, Algorithm 1)."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        out.append(-lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    return out


def np_momentum(grads, lr, mu):
    buf = 0.0
    out = []
    for g in grads:
        buf = mu * buf + g
        out.append(-lr * buf)
    return out


def run(tx, grads_seq, params, jit=False):
    """The updates ``tx`` returns for each gradient tree, params held fixed; and the last state."""
    state = tx.init(params)
    step = jax.jit(tx.update) if jit else tx.update
    outs = []
    for g in grads_seq:
        u, state = step(g, state, params)
        outs.append(u)
    return outs, state


def leaf_seq(outs, *keys):
    def get(tree):
        for k in keys:
            tree = tree[k]
        return np.asarray(tree)

    return [get(o) for o in outs]


RNG = np.random.default_rng(0)
PARAMS = {
    "w": jnp.asarray(RNG.standard_normal((3, 2))),
    "b": jnp.asarray(RNG.standard_normal(2)),
    "e": [jnp.asarray(RNG.standard_normal(4)), None],
}
GRADS = [jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)) + 0.1 * i, PARAMS) for i in range(3)]


def state_arrays(state):
    return [x for x in jax.tree.leaves(state) if np.ndim(x) > 0]


# --- masked -------------------------------------------------------------------------------------


def test_masked_adam_matches_reference_on_selected_leaves_and_passes_others_through():
    tx = masked(gradtx.adam(0.1), {"w": True, "b": False, "e": True})
    outs, state = run(tx, GRADS, PARAMS, jit=True)
    for keys in (("w",), ("e", 0)):
        want = np_adam(leaf_seq(GRADS, *keys), 0.1)
        np.testing.assert_allclose(leaf_seq(outs, *keys), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(leaf_seq(outs, "b"), leaf_seq(GRADS, "b"))
    assert all(o["e"][1] is None for o in outs)
    mu = state.inner[0].inner_state[0].mu
    assert isinstance(mu["b"], MaskedNode) and mu["e"][1] is None
    assert int(state.count) == 3
    assert len(state_arrays(state)) == 4  # mu and nu of w and e[0] only


MASK_FORMS = {
    "full tree": {"w": True, "b": False, "e": [True, None]},
    "prefix": {"w": True, "b": False, "e": True},
    "function": lambda p: {"w": True, "b": False, "e": jax.tree.map(lambda _: True, p["e"])},
    "paths.match": paths.match("w", "e"),
    "paths.exclude": paths.exclude("/b"),
    "regex": paths.match(re.compile(r"^(w|e/\d+)$")),
    "predicate": paths.match(lambda path, leaf: leaf.ndim != 1 or path.startswith("e")),
    "numpy bools": {"w": np.bool_(True), "b": jnp.asarray(False), "e": True},
}


@pytest.mark.parametrize("form", list(MASK_FORMS))
def test_mask_forms_agree(form):
    (u,), _ = run(masked(scale(3.0), MASK_FORMS[form]), GRADS[:1], PARAMS)
    g = GRADS[0]
    np.testing.assert_array_equal(u["w"], 3 * g["w"])
    np.testing.assert_array_equal(u["e"][0], 3 * g["e"][0])
    np.testing.assert_array_equal(u["b"], g["b"])


@pytest.mark.parametrize("everything", [True, False])
def test_single_bool_mask(everything):
    (u,), state = run(masked(gradtx.sgd(1.0, momentum=0.5), everything), GRADS[:1], PARAMS)
    factor = -1.0 if everything else 1.0
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, factor * b), u, GRADS[0])
    assert len(state_arrays(state)) == (3 if everything else 0)


class Pair(NamedTuple):
    w: jax.Array
    b: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Layer:
    kernel: jax.Array
    bias: jax.Array | None


def test_masks_on_namedtuple_dataclass_list_tuple_and_none():
    params = {
        "pair": Pair(jnp.ones((2, 2)), jnp.ones(2)),
        "layers": [Layer(jnp.ones((2, 3)), jnp.ones(3)), Layer(jnp.ones((3, 1)), None)],
        "t": (jnp.ones(1), None),
    }
    assert paths.leaf_paths(params) == [
        "layers/0/kernel",
        "layers/0/bias",
        "layers/1/kernel",
        "pair/w",
        "pair/b",
        "t/0",
    ]
    grads = jax.tree.map(lambda p: 2 * p, params)
    tx = masked(gradtx.sgd(0.5), paths.exclude("bias", "pair/b"))
    u, _ = tx.update(grads, tx.init(params), params)
    assert jax.tree.structure(u) == jax.tree.structure(grads)
    assert isinstance(u["pair"], Pair) and isinstance(u["layers"][1], Layer)
    np.testing.assert_array_equal(u["layers"][0].kernel, -1.0)
    np.testing.assert_array_equal(u["layers"][0].bias, 2.0)
    np.testing.assert_array_equal(u["pair"].w, -1.0)
    np.testing.assert_array_equal(u["pair"].b, 2.0)
    np.testing.assert_array_equal(u["t"][0], -1.0)
    assert u["layers"][1].bias is None and u["t"][1] is None


def test_nested_masks_compose():
    inner = masked(scale(2.0), {"w": True, "b": True, "e": False})
    outer = masked(inner, paths.match("w", "e"))  # only w is selected by both
    (u,), _ = run(outer, GRADS[:1], PARAMS)
    g = GRADS[0]
    np.testing.assert_array_equal(u["w"], 2 * g["w"])
    np.testing.assert_array_equal(u["b"], g["b"])
    np.testing.assert_array_equal(u["e"][0], g["e"][0])

    # a masked transformation inside one group of multi_transform, and the other way round
    mt = multi_transform(
        {"x": masked(scale(2.0), paths.match("w")), "y": scale(-1.0)},
        {"w": "x", "b": "y", "e": "x"},
    )
    (u,), _ = run(masked(mt, {"w": True, "b": True, "e": False}), GRADS[:1], PARAMS)
    np.testing.assert_array_equal(u["w"], 2 * g["w"])
    np.testing.assert_array_equal(u["b"], -g["b"])
    np.testing.assert_array_equal(u["e"][0], g["e"][0])


# --- multi_transform ---------------------------------------------------------------------------


LABEL_FORMS = {
    "tree": {"w": "adam", "b": "sgd", "e": ["adam", None]},
    "prefix": {"w": "adam", "b": "sgd", "e": "adam"},
    "function": lambda p: {
        k: jax.tree.map(lambda _: "sgd" if k == "b" else "adam", v) for k, v in p.items()
    },
    "paths.labels": paths.labels({"sgd": "/b", "adam": "**"}),
}


@pytest.mark.parametrize("form", list(LABEL_FORMS))
def test_multi_transform_matches_reference_per_group(form):
    tx = multi_transform(
        {"adam": gradtx.adam(0.1), "sgd": gradtx.sgd(0.5, momentum=0.9)}, LABEL_FORMS[form]
    )
    outs, state = run(tx, GRADS, PARAMS, jit=form == "tree")
    for keys in (("w",), ("e", 0)):
        want = np_adam(leaf_seq(GRADS, *keys), 0.1)
        np.testing.assert_allclose(leaf_seq(outs, *keys), want, rtol=1e-12, atol=1e-14)
    want = np_momentum(leaf_seq(GRADS, "b"), 0.5, 0.9)
    np.testing.assert_allclose(leaf_seq(outs, "b"), want, rtol=1e-12)
    groups = state.inner[0].inner_states
    assert isinstance(state.inner[0], PartitionState)
    assert isinstance(groups["adam"][0].mu["b"], MaskedNode)
    assert isinstance(groups["sgd"][0].trace["w"], MaskedNode)
    assert np.shape(groups["sgd"][0].trace["b"]) == (2,)
    assert tree_paths(state, "count") == [("count",)]  # one counter for all groups


@pytest.mark.parametrize("combinator", [partition, multi_transform])
def test_each_group_follows_its_numpy_reference(combinator):
    """Every leaf is updated by its label's rule alone: the NumPy reference of that rule, run on
    the group's leaves only."""
    labels = LABEL_FORMS["tree"]
    configs = {"adam": {"learning_rate": 0.1}, "sgd": {"learning_rate": 0.5, "momentum": 0.9}}
    txs = {k: getattr(gradtx, k)(**kw) for k, kw in configs.items()}
    outs, _ = run(combinator(txs, labels), GRADS, PARAMS)
    leaf_labels = jax.tree.leaves(labels)  # None params and their labels hold no leaf
    params = [np.asarray(x, np.float64) for x in jax.tree.leaves(PARAMS)]
    for label, kwargs in configs.items():
        idx = [i for i, lab in enumerate(leaf_labels) if lab == label]
        ref = references.build(label, kwargs)
        ref.init([params[i] for i in idx])
        for t, (u, g) in enumerate(zip(outs, GRADS, strict=True), start=1):
            g = jax.tree.leaves(g)
            want = ref.step([np.asarray(g[i]) for i in idx], [params[i] for i in idx], t)
            for i, w in zip(idx, want, strict=True):
                np.testing.assert_allclose(jax.tree.leaves(u)[i], w, rtol=1e-12, atol=1e-15)


def test_groups_read_the_shared_step_counter():
    """Each group's schedule sees the enclosing optimizer's step, also inside a longer chain."""
    tx = chain(
        gradtx.clip_by_global_norm(1e6),
        multi_transform(
            {
                "up": gradtx.sgd(lambda c: 0.1 * (c + 1)),
                "down": gradtx.sgd(lambda c: 1.0 / (c + 1)),
            },
            {"w": "up", "b": "down", "e": "up"},
        ),
    )
    outs, state = run(tx, GRADS, PARAMS, jit=True)
    assert tree_paths(state, "count") == [("count",)] and int(state.count) == 3
    for t in range(3):
        np.testing.assert_allclose(outs[t]["w"], -0.1 * (t + 1) * GRADS[t]["w"], rtol=1e-12)
        np.testing.assert_allclose(outs[t]["b"], -1.0 / (t + 1) * GRADS[t]["b"], rtol=1e-12)


def test_unused_transformation_warns_and_stays_empty():
    tx = multi_transform({"a": gradtx.adam(0.1), "unused": gradtx.adam(0.1)}, "a")
    with pytest.warns(
        UserWarning, match=r"multi_transform: no parameter is labelled \['unused'\]"
    ) as record:
        state = tx.init(PARAMS)
    assert record[0].filename == __file__  # points at the caller, not at gradtx
    assert state_arrays(state.inner[0].inner_states["unused"]) == []


def test_foreign_optax_member():
    tx = multi_transform(
        {"o": optax.adam(0.1), "g": gradtx.sgd(0.5)}, {"w": "o", "b": "g", "e": "o"}
    )
    outs, _ = run(tx, GRADS, PARAMS)
    want = np_adam(leaf_seq(GRADS, "w"), 0.1)
    np.testing.assert_allclose(leaf_seq(outs, "w"), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(outs[2]["b"], -0.5 * GRADS[2]["b"], rtol=1e-12)


# --- freezing ----------------------------------------------------------------------------------


def test_set_to_zero_and_freeze():
    (u,), state = run(set_to_zero(), GRADS[:1], PARAMS)
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(u))
    assert state_arrays(state) == []
    tx = chain(freeze(paths.match("/b")), gradtx.sgd(1.0))
    (u,), state = run(tx, GRADS[:1], PARAMS)
    np.testing.assert_array_equal(u["b"], 0.0)
    np.testing.assert_array_equal(u["w"], -GRADS[0]["w"])
    assert state_arrays(state) == []


def test_selective_transform_gives_frozen_leaves_no_state():
    tx = selective_transform(gradtx.adam(0.1), freeze_mask={"w": False, "b": True, "e": False})
    outs, state = run(tx, GRADS, PARAMS)
    np.testing.assert_array_equal(leaf_seq(outs, "b"), 0.0)
    want = np_adam(leaf_seq(GRADS, "w"), 0.1)
    np.testing.assert_allclose(leaf_seq(outs, "w"), want, rtol=1e-12, atol=1e-14)
    mu = state.inner[0].inner_states["train"][0].mu
    assert isinstance(mu["b"], MaskedNode)


# --- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("l1/bias", "bias", True),
        ("layers/0/bias", "*/bias", True),
        ("bias", "*/bias", False),
        ("bias_proj/kernel", "bias", False),
        ("bias_proj/kernel", "bias*", True),
        ("norm/scale", "*norm*", True),
        ("block/layer_norm/bias", "*norm*", True),
        ("encoder/a/b/kernel", "encoder/**/kernel", True),
        ("encoder/kernel", "encoder/**/kernel", True),
        ("decoder/encoder/x/kernel", "encoder/**/kernel", True),
        ("decoder/encoder/x/kernel", "/encoder/**/kernel", False),
        ("encoder/x/kernel", "/encoder", True),
        ("encoder/x/kernel", "/encoder/kernel", False),
        ("layers/10/kernel", "layers/1?/kernel", True),
        ("layers/1/kernel", "layers/[02]/kernel", False),
        ("anything/at/all", "**", True),
        ("Bias", "bias", False),
    ],
)
def test_glob_semantics(path, pattern, expected):
    assert paths.matches(path, pattern) is expected


def test_regex_and_labels_first_match_wins():
    assert paths.matches("a/kernel_0", re.compile(r"kernel_\d$"))
    assert not paths.matches("a/kernel_0/x", re.compile(r"kernel_\d$"))
    params = {"emb": jnp.ones(2), "mlp": {"bias": jnp.ones(2), "kernel": jnp.ones((2, 2))}}
    got = paths.labels({"no_decay": ["bias", "emb"], "fast": "mlp", "default": "**"})(params)
    assert got == {"emb": "no_decay", "mlp": {"bias": "no_decay", "kernel": "fast"}}


def test_paths_of_nnx_state_drop_the_variable_value():
    st = nnx.state(_model(), nnx.Param)
    want = ["l1/bias", "l1/kernel", "l2/bias", "l2/kernel", "norm/bias", "norm/scale"]
    assert paths.leaf_paths(st) == want
    assert paths.leaf_paths(nnx.as_pure(st)) == want
    blocks = nnx.state(nnx.eval_shape(lambda: _Stack(nnx.Rngs(0))), nnx.Param)
    assert paths.leaf_paths(blocks) == ["blocks/0/bias", "blocks/0/kernel"]


# --- errors ------------------------------------------------------------------------------------


def _error(fn):
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    return str(info.value)


def test_error_mask_missing_entry_names_path():
    msg = _error(lambda: masked(gradtx.sgd(1.0), {"w": True}).init(PARAMS))
    assert msg.startswith("masked: the mask tree does not match the params")
    assert "expected an entry for parameter 'b', found none" in msg
    assert "the mask has entries for ['w']" in msg and "'e/0'" in msg


def test_error_mask_stray_entry():
    msg = _error(
        lambda: masked(gradtx.sgd(1.0), {"w": True, "b": True, "e": True, "x": 1}).init(PARAMS)
    )
    assert (
        "masked: the mask tree does not match the params: its entry 'x' matches no parameter" in msg
    )


def test_error_mask_value_not_bool_names_path_and_found():
    msg = _error(lambda: masked(gradtx.sgd(1.0), PARAMS).init(PARAMS))
    assert msg == (
        "masked: expected a bool in the mask for parameter 'b', found a float64 array of shape (2,)"
    )


def test_error_traced_mask():
    tx = masked(gradtx.sgd(1.0), lambda p: jax.tree.map(lambda x: jnp.all(x > -10), p))
    state = tx.init(PARAMS)  # concrete bool arrays are fine
    msg = _error(lambda: jax.jit(tx.update)(GRADS[0], state, PARAMS))
    assert "masked: expected a bool in the mask for parameter 'b'" in msg
    assert "a traced value" in msg


def test_error_names_the_wrapping_transformation():
    msg = _error(lambda: masked(scale(1.0), {"w": 1}, name="add_decayed_weights").init({"w": 1.0}))
    assert msg.startswith(
        "masked(add_decayed_weights): expected a bool in the mask for parameter 'w'"
    )
    msg = _error(lambda: freeze({"w": True}).init(PARAMS))
    assert msg.startswith("freeze: the mask tree does not match the params")


def test_error_label_without_transformation_lists_paths():
    tx = multi_transform({"adam": gradtx.adam(0.1)}, {"w": "adam", "b": "sgd", "e": "sgd"})
    msg = _error(lambda: tx.init(PARAMS))
    assert msg == (
        "multi_transform: expected every parameter's label to be one of ['adam'] (the keys of "
        "transforms); 2 parameter(s) have labels with no transformation: "
        "{'b': 'sgd', 'e/0': 'sgd'}"
    )


def test_error_labels_tree_mismatch():
    tx = partition({"a": gradtx.adam(0.1)}, {"w": "a", "e": "a"})
    msg = _error(lambda: tx.init(PARAMS))
    assert msg.startswith(
        "partition: the labels tree does not match the params: expected an entry for parameter 'b'"
    )


def test_error_paths_labels_no_match_names_path():
    fn = paths.labels({"no_decay": ["bias"], "decay": "kernel"})
    msg = _error(lambda: fn({"dense": {"kernel": 1.0, "scale": 2.0}}))
    assert msg.startswith("paths.labels: parameter 'dense/scale' matches no pattern")
    assert 'Add a catch-all label such as "default": "**"' in msg


def test_error_bad_patterns_and_state():
    assert "glob 'a//b' has an empty segment" in _error(lambda: paths.match("a//b"))
    assert "a pattern must be a glob string" in _error(lambda: paths.match(3))
    msg = _error(lambda: multi_transform({}, "a"))
    assert msg.startswith("multi_transform: transforms must be a non-empty mapping")
    msg = _error(lambda: multi_transform({0: gradtx.sgd(1.0), "a": gradtx.sgd(1.0)}, "a"))
    assert msg == (
        "multi_transform: the labels must be sortable together (e.g. all strings), found [0, 'a']"
    )
    tx = multi_transform({"a": gradtx.sgd(1.0)}, "a")
    other = multi_transform({"b": gradtx.sgd(1.0)}, "b").init(PARAMS)
    msg = _error(lambda: tx.update(GRADS[0], other, PARAMS))
    assert msg.startswith("multi_transform: expected a state with one entry per label ['a']")


# --- Flax nnx: no weight decay on biases and norm scales ----------------------------------------


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 4, rngs=rngs)
        self.norm = nnx.LayerNorm(4, rngs=rngs)
        self.l2 = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.relu(self.norm(self.l1(x))))


class _Stack(nnx.Module):
    def __init__(self, rngs):
        self.blocks = nnx.List([nnx.Linear(2, 2, rngs=rngs)])


@functools.cache
def _base_model():
    """A small net whose params (biases and norm scales included) are random and nonzero, so
    weight decay on them would be visible.  Built abstractly and filled from NumPy, which spares
    the compilations of nnx's random initialisers."""
    model = nnx.eval_shape(lambda: _Net(nnx.Rngs(0)))
    st = nnx.state(model, nnx.Param)
    rng = np.random.default_rng(1)
    nnx.update(
        model, jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape), x.dtype), st)
    )
    return model


def _model():
    return nnx.clone(_base_model())


def _flat(model):
    st = nnx.state(model, nnx.Param)
    return dict(zip(paths.leaf_paths(st), map(np.asarray, jax.tree.leaves(st)), strict=True))


NO_DECAY = ["l1/bias", "l2/bias", "norm/bias", "norm/scale"]
LR, WD = 0.05, 0.5


def test_nnx_adamw_no_decay_on_bias_and_norm_with_fixed_grads():
    rng = np.random.default_rng(2)
    grads = jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), nnx.state(_model(), nnx.Param)
    )

    @nnx.jit
    def step(models, opts):
        for model, opt in zip(models, opts, strict=True):
            opt.update(model, grads)

    txs = [
        gradtx.adamw(LR, weight_decay=WD, mask=paths.exclude("*/bias", "*norm*")),
        gradtx.adamw(LR, weight_decay=WD),
        gradtx.adamw(LR, weight_decay=0.0),
    ]
    models = [_model() for _ in txs]
    opts = [nnx.Optimizer(m, tx, wrt=nnx.Param) for m, tx in zip(models, txs, strict=True)]
    for _ in range(3):
        step(nnx.List(models), nnx.List(opts))
    got, with_wd, without = map(_flat, models)
    assert sorted(got) == sorted([*NO_DECAY, "l1/kernel", "l2/kernel"])
    for name, value in got.items():
        want, other = (without, with_wd) if name in NO_DECAY else (with_wd, without)
        np.testing.assert_allclose(value, want[name], rtol=1e-6, atol=1e-7, err_msg=name)
        assert np.abs(value - other[name]).max() > 1e-3, name  # the decay made a difference


def test_nnx_training_recipes_agree_with_optax():
    """A real loop (gradients from the current params) with four ways of writing the recipe,
    against optax's adamw with a mask, on identical models."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((32, 4)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((32, 4)), jnp.float32)

    def loss(m):
        return jnp.mean((m(x) - y) ** 2)

    @nnx.jit
    def step(models, opts):  # all recipes in one program: one compilation
        for model, opt in zip(models, opts, strict=True):
            opt.update(model, nnx.grad(loss)(model))

    def train(txs):
        models = [_model() for _ in txs]
        opts = [nnx.Optimizer(m, tx, wrt=nnx.Param) for m, tx in zip(models, txs, strict=True)]
        for _ in range(4):
            step(nnx.List(models), nnx.List(opts))
        return [_flat(m) for m in models]

    decay_mask = {
        "l1": {"kernel": True, "bias": False},
        "norm": False,
        "l2": {"kernel": True, "bias": False},
    }
    recipes = {
        "mask=paths.exclude": gradtx.adamw(
            LR, weight_decay=WD, mask=paths.exclude("bias", "*norm*")
        ),
        "dict mask on nnx.State": gradtx.adamw(LR, weight_decay=WD, mask=decay_mask),
        "mask function": gradtx.adamw(
            LR, weight_decay=WD, mask=lambda p: jax.tree.map(lambda v: v.ndim > 1, p)
        ),
        "partition by path": partition(
            {
                "decay": gradtx.adamw(LR, weight_decay=WD),
                "no_decay": gradtx.adamw(LR, weight_decay=0.0),
            },
            paths.labels({"no_decay": ["*/bias", "*norm*"], "decay": "**"}),
        ),
    }
    reference = optax.adamw(LR, weight_decay=WD, mask=paths.exclude("*/bias", "*norm*"))
    want, *got = train([reference, *recipes.values()])
    moved = max(np.abs(want[k] - _flat(_model())[k]).max() for k in want)
    assert moved > 0.1
    for name, flat in zip(recipes, got, strict=True):
        for k in want:
            np.testing.assert_allclose(
                flat[k], want[k], rtol=2e-5, atol=2e-6, err_msg=f"{name}: {k}"
            )


def test_nnx_partition_state_holds_only_group_leaves():
    model = _model()
    tx = multi_transform(
        {"adam": gradtx.adam(0.1), "sgd": gradtx.sgd(0.1)},
        paths.labels({"sgd": "*norm*", "adam": "**"}),
    )
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    mu = nnx.as_pure(opt.opt_state).inner[0].inner_states["adam"][0].mu
    assert sorted(paths.leaf_paths(mu)) == ["l1/bias", "l1/kernel", "l2/bias", "l2/kernel"]
    sgd_state = nnx.as_pure(opt.opt_state).inner[0].inner_states["sgd"]
    assert jax.tree.leaves(sgd_state) == []
    assert isinstance(opt.opt_state.inner[0], PartitionState)

    # a plain dict of labels does not match an nnx.State structurally: it is matched by path
    labels = {"l1": "adam", "l2": {"kernel": "adam", "bias": "sgd"}, "norm": "sgd"}
    state = multi_transform({"adam": gradtx.adam(0.1), "sgd": gradtx.sgd(0.1)}, labels).init(
        nnx.state(model, nnx.Param)
    )
    mu = nnx.as_pure(state).inner[0].inner_states["adam"][0].mu
    assert sorted(paths.leaf_paths(mu)) == ["l1/bias", "l1/kernel", "l2/kernel"]

    # a mask computed once from the nnx.State of Params, used on the raw arrays update sees
    params = nnx.state(model, nnx.Param)
    precomputed = jax.tree.map(lambda x: x.ndim > 1, params)
    tx = freeze(precomputed)
    u, _ = tx.update(nnx.as_pure(params), tx.init(params), nnx.as_pure(params))
    leaves = zip(paths.leaf_paths(u), jax.tree.leaves(u), strict=True)
    frozen = {k for k, x in leaves if not np.any(x)}
    assert frozen == {"l1/kernel", "l2/kernel"}


# --- selectors users need beyond names -----------------------------------------------------------


class _OddNames(nnx.Module):
    """Norm layers named ``ln`` (no "norm" in the name) and an embedding."""

    def __init__(self, rngs: nnx.Rngs):
        self.emb = nnx.Embed(5, 3, rngs=rngs)
        self.ln = nnx.LayerNorm(3, rngs=rngs)
        self.lin = nnx.Linear(3, 2, rngs=rngs)
        self.blocks = nnx.List([nnx.LayerNorm(3, rngs=rngs)])


def _selected(mask_tree) -> set[str]:
    pairs = zip(paths.leaf_paths(mask_tree), jax.tree.leaves(mask_tree), strict=True)
    return {p for p, v in pairs if v}


def test_ndim_and_module_type_selectors_on_an_nnx_model():
    model = _OddNames(nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    vectors = paths.match(paths.ndim_at_most(1))(state)
    norm_params = {"blocks/0/bias", "blocks/0/scale", "ln/bias", "ln/scale"}
    assert _selected(vectors) == norm_params | {"lin/bias"}
    norms = paths.match(paths.module_types(model, nnx.LayerNorm, nnx.Embed))(state)
    assert _selected(norms) == norm_params | {"emb/embedding"}


def test_no_decay_recipe_by_rank_under_nnx_optimizer():
    """The README recipe: decay only the matrices, whatever the layers are called."""
    model = _OddNames(nnx.Rngs(0))
    before = nnx.state(model, nnx.Param)
    before = jax.tree.map(lambda x: x, before)
    tx = gradtx.adamw(0.1, weight_decay=0.5, mask=paths.exclude(paths.ndim_at_most(1)))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    zeros = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
    opt.update(model, zeros)  # zero gradients: only the decay moves params
    after = nnx.state(model, nnx.Param)
    leaves = zip(jax.tree.leaves(after), jax.tree.leaves(before), strict=True)
    moved = {p for p, (a, b) in zip(paths.leaf_paths(after), leaves, strict=True) if (a != b).any()}
    assert moved == {"lin/kernel", "emb/embedding"}


def test_a_pattern_that_selects_nothing_warns():
    model = _OddNames(nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    with pytest.warns(UserWarning, match=r"paths.exclude: pattern '\*norm\*' selects no parameter"):
        paths.exclude("bias", "*norm*")(state)
    with pytest.warns(UserWarning, match=r"paths.match: pattern 'nothing' selects no parameter"):
        paths.match("kernel", "nothing")(state)
