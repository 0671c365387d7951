"""``gradtx.tree`` and ``gradtx.tree_utils`` against optax 0.2.8 and NumPy float64 references.

Every name of ``optax.tree`` and ``optax.tree_utils`` exists here with optax's parameters; the
values and dtypes match optax's (float64 to 1e-12), except where gradtx is deliberately more
accurate, which is tested against float64 NumPy: ``bias_correction`` in float32 (optax is off by
~1.3e-5 relative), sums/norms/dot products of bfloat16 trees (rounded once), and ``set``, which
replaces every match that ``get_all_with_path`` reports.
"""

from __future__ import annotations

import doctest
import inspect
import types
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
import gradtx.tree as gt
import gradtx.tree_utils as gtu

RNG = np.random.default_rng(0)


def _tree(dtype, complex_=False):
    def draw(*shape):
        x = RNG.normal(size=shape)
        return x + 1j * RNG.normal(size=shape) if complex_ else x

    return {"a": jnp.asarray(draw(3, 4), dtype), "b": [jnp.asarray(draw(5), dtype)], "c": ()}


F64 = _tree(jnp.float64)
F64_B = _tree(jnp.float64)
C128 = _tree(jnp.complex128, True)
NP = lambda t: [np.asarray(x, np.complex128) for x in jax.tree.leaves(t)]


def same_signature(ours, theirs):
    a = list(inspect.signature(ours).parameters.values())
    b = list(inspect.signature(theirs).parameters.values())
    assert [(p.name, p.kind) for p in a] == [(p.name, p.kind) for p in b]
    for p, q in zip(a, b, strict=True):
        assert p.default is q.default or p.default == q.default, (p, q)


def close(got, want, rtol=1e-12, dtype=True):
    """Values to ``rtol`` and, with ``dtype``, the same dtype and tree structure."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        if dtype:
            assert jnp.result_type(g) == jnp.result_type(w)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=1e-300)


# --- completeness -------------------------------------------------------------------------------


def _public(module):
    names = [n for n in dir(module) if not n.startswith("_")]
    return [n for n in names if not isinstance(getattr(module, n), types.ModuleType)]


@pytest.mark.parametrize(
    ("ours", "theirs"), [(gt, optax.tree), (gtu, optax.tree_utils)], ids=["tree", "tree_utils"]
)
def test_every_optax_name_exists_with_its_signature(ours, theirs):
    names = _public(theirs)
    assert len(names) >= 35
    for name in names:
        assert hasattr(ours, name), name
        if callable(getattr(theirs, name)) and not isinstance(getattr(theirs, name), type):
            same_signature(getattr(ours, name), getattr(theirs, name))
    assert (
        gtu.tree_add is gt.add and gtu.tree_set is gt.set and gtu.NamedTupleKey is gt.NamedTupleKey
    )


def test_deprecated_tree_utils_names_warn_and_agree():
    for name in ["tree_scalar_mul", "tree_add_scalar_mul", "tree_l1_norm", "tree_l2_norm"]:
        with pytest.warns(DeprecationWarning):
            ours = getattr(gtu, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = getattr(optax.tree_utils, name)
        args = (2.0, F64) if "scalar_mul" in name else (F64,)
        args = (F64, 2.0, F64_B) if name == "tree_add_scalar_mul" else args
        close(ours(*args), theirs(*args))
    with pytest.warns(DeprecationWarning):
        assert float(gtu.tree_linf_norm(F64)) == float(optax.tree.norm(F64, ord="inf"))
    with pytest.raises(AttributeError):
        gtu.tree_nothing  # noqa: B018


def test_examples_in_docstrings_run():
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    total = 0
    for module in (gt.arithmetic, gt.constructors, gt.moments, gt.lookup, gtu):
        failures, tries = doctest.testmod(module, optionflags=flags)
        assert failures == 0
        total += tries
    assert total > 30


# --- arithmetic ---------------------------------------------------------------------------------


def test_arithmetic_matches_numpy_and_optax():
    x, y, z = NP(F64), NP(F64_B), NP(C128)
    cases = [
        ("add", (F64, F64_B, F64), [a + b + a for a, b in zip(x, y, strict=True)]),
        ("sub", (F64, F64_B), [a - b for a, b in zip(x, y, strict=True)]),
        ("mul", (F64, F64_B), [a * b for a, b in zip(x, y, strict=True)]),
        ("div", (F64, F64_B), [a / b for a, b in zip(x, y, strict=True)]),
        ("scale", (0.3, F64), [0.3 * a for a in x]),
        ("add_scale", (F64, 0.3, F64_B), [a + 0.3 * b for a, b in zip(x, y, strict=True)]),
        ("conj", (C128,), [np.conj(a) for a in z]),
        ("real", (C128,), [a.real for a in z]),
        ("clip", (F64, -0.5, 0.5), [np.clip(a, -0.5, 0.5) for a in x]),
        ("clip", (F64, None, 0.5), [np.minimum(a, 0.5) for a in x]),
        ("where", (True, F64, F64_B), x),
    ]
    for name, args, want in cases:
        got = getattr(gt, name)(*args)
        close(got, getattr(optax.tree, name)(*args), rtol=0)
        for g, w in zip(jax.tree.leaves(got), want, strict=True):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-15)


def test_add_scale_keeps_none_and_low_precision():
    x = {"a": None, "b": jnp.ones(2, jnp.bfloat16)}
    got = gt.add_scale(x, 0.5, {"a": jnp.ones(2), "b": jnp.ones(2, jnp.bfloat16)})
    assert got["a"] is None and got["b"].dtype == jnp.bfloat16
    close(got, optax.tree.add_scale(x, 0.5, {"a": jnp.ones(2), "b": jnp.ones(2, jnp.bfloat16)}))


# --- reductions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32, jnp.int32, jnp.complex128])
def test_reductions_match_numpy_and_optax(dtype):
    t = _tree(dtype, complex_=dtype == jnp.complex128)
    if dtype == jnp.int32:
        t = jax.tree.map(lambda x: x * 0 + jnp.arange(x.size).reshape(x.shape) - 4, t)
    flat = np.concatenate([v.ravel() for v in NP(t)])
    o = optax.tree
    rtol = 1e-12 if dtype in (jnp.float64, jnp.complex128) else 1e-6
    refs = [
        ("sum", (), flat.sum()),
        ("vdot", (t,), np.vdot(flat, flat)),
        ("norm", (), np.linalg.norm(flat)),
        ("norm", (2, True), np.vdot(flat, flat).real),
        ("norm", (1,), np.abs(flat).sum()),
        ("norm", (1, True), np.abs(flat).sum() ** 2),
        ("norm", (np.inf,), np.abs(flat).max()),
        ("norm", ("infinity", True), np.abs(flat).max() ** 2),
        ("size", (), flat.size),
    ]
    if dtype != jnp.complex128:
        refs += [("max", (), flat.real.max()), ("min", (), flat.real.min())]
    for name, args, want in refs:
        got = getattr(gt, name)(t, *args)
        close(got, getattr(o, name)(t, *args), rtol=rtol)
        np.testing.assert_allclose(np.asarray(got), want, rtol=rtol)
    assert gt.sum(t, associative_reduction=True) == pytest.approx(complex(flat.sum()), rel=rtol)
    with pytest.raises(ValueError, match="ord"):
        gt.norm(t, ord=3)


def test_empty_trees_and_leaves_reduce_as_optax():
    for name in ["sum", "max", "min", "size", "norm"]:
        got, want = getattr(gt, name)({}), getattr(optax.tree, name)({})
        assert type(got) is type(want) and float(got) == float(want)
        got = getattr(gt, name)([jnp.zeros(0), jnp.array([2.0])])
        assert float(got) == float(getattr(optax.tree, name)([jnp.zeros(0), jnp.array([2.0])]))
    assert gt.vdot({}, {}) == 0 and gt.allclose({}, {}) is True
    ints = [jnp.array([1, 5], jnp.int32)]  # as optax: the -inf start makes the result a float
    assert jnp.result_type(gt.max(ints)) == jnp.result_type(optax.tree.max(ints))


def test_allclose():
    a = {"x": jnp.array([1.0, np.nan])}
    b = {"x": jnp.array([1.0 + 1e-9, np.nan])}
    for kw in [{}, {"equal_nan": True}, {"rtol": 0.0, "atol": 0.0, "equal_nan": True}]:
        assert bool(gt.allclose(a, b, **kw)) == bool(optax.tree.allclose(a, b, **kw))
    assert bool(gt.allclose(a, b, equal_nan=True)) and not bool(gt.allclose(a, b))


def _bf16_tree():
    leaves = [jnp.asarray(RNG.uniform(0.5, 1.5, size=2), jnp.bfloat16) for _ in range(100)]
    return leaves, np.concatenate([np.asarray(x, np.float64) for x in leaves])


def test_low_precision_trees_accumulate_in_float32():
    """bfloat16: gradtx rounds once (within half an ulp, 2^-8 relative, of the exact value);
    optax adds the leaves' rounded results in bfloat16 and drifts further."""
    t, flat = _bf16_tree()
    refs = {
        "sum": (lambda f: f(t), flat.sum()),
        "vdot": (lambda f: f(t, t), flat @ flat),
        "norm": (lambda f: f(t), np.sqrt(flat @ flat)),
    }
    worse = 0
    for name, (call, want) in refs.items():
        got, theirs = call(getattr(gt, name)), call(getattr(optax.tree, name))
        assert got.dtype == theirs.dtype == jnp.bfloat16
        err = abs(float(got) - want) / want
        assert err <= 2.0**-8 * 1.01, (name, err)
        worse += abs(float(theirs) - want) / want > 2 * err
    assert worse == 3  # optax's errors are larger here


# --- new trees, dtypes, randomness --------------------------------------------------------------


def test_constructors_and_casts_match_optax():
    f16 = {"a": jnp.zeros(2, jnp.float16), "b": 1.0}
    cases = [
        ("zeros_like", (F64,)),
        ("zeros_like", (F64, jnp.int32)),
        ("ones_like", (F64, jnp.float32)),
        ("full_like", (F64, 3.5)),
        ("full_like", (F64, 3, jnp.int32)),
        ("batch_shape", (F64, (2, 3))),
        ("cast", (F64, jnp.bfloat16)),
        ("cast", (F64, None)),
        ("cast_like", ({"a": jnp.ones(2), "b": jnp.ones(2)}, f16)),
    ]
    for name, args in cases:
        close(getattr(gt, name)(*args), getattr(optax.tree, name)(*args), rtol=0)
    assert gt.batch_shape(F64, (2, 3))["a"].shape == (2, 3, 3, 4)
    assert gt.cast_like({"a": jnp.ones(2), "b": jnp.ones(2)}, f16)["b"].dtype == jnp.float64


def test_dtype_handlers_match_optax():
    mixed = {"a": jnp.zeros(1, jnp.float16), "b": jnp.zeros(1, jnp.float32)}
    for tree in [F64, mixed, {}, {"a": jnp.zeros(1, jnp.int32), "b": jnp.zeros(1, jnp.uint32)}]:
        for handler in [None, "promote", "highest", "lowest"]:
            try:
                want = optax.tree.dtype(tree, handler)
            except ValueError:
                with pytest.raises(ValueError):
                    gt.dtype(tree, handler)
                continue
            assert gt.dtype(tree, handler) == want
    with pytest.raises(ValueError, match="mixed_dtype_handler"):
        gt.dtype(F64, "widest")


def test_random_trees_match_optax_draws():
    key = jax.random.key(3)
    target = {"a": jnp.zeros((2, 3)), "b": [jnp.zeros(4, jnp.float32)]}
    keys = gt.split_key_like(key, target)
    close(gt.unwrap_random_key_data(keys), optax.tree.unwrap_random_key_data(keys), rtol=0)
    close(
        gt.unwrap_random_key_data(keys),
        optax.tree.unwrap_random_key_data(optax.tree.split_key_like(key, target)),
        rtol=0,
    )
    for kw in [{}, {"dtype": jnp.float32}, {"sampler": jax.random.uniform}]:
        close(gt.random_like(key, target, **kw), optax.tree.random_like(key, target, **kw), rtol=0)
    raw = jax.random.PRNGKey(0)  # raw uint32 keys work too
    close(gt.random_like(raw, target), optax.tree.random_like(raw, target), rtol=0)


# --- moments and bias correction ----------------------------------------------------------------


def test_moment_updates_match_numpy_and_optax():
    g, m = F64, jax.tree.map(jnp.abs, F64_B)
    x, y = NP(g), NP(m)
    for name, args, want in [
        ("update_moment", (0.9, 2), [0.1 * a**2 + 0.9 * b for a, b in zip(x, y, strict=True)]),
        ("update_moment", (0.9, 3), [0.1 * a**3 + 0.9 * b for a, b in zip(x, y, strict=True)]),
        (
            "update_infinity_moment",
            (0.9, 1e-3),
            [np.maximum(np.abs(a) + 1e-3, 0.9 * b) for a, b in zip(x, y, strict=True)],
        ),
    ]:
        got = getattr(gt, name)(g, m, *args)
        close(got, getattr(optax.tree, name)(g, m, *args), rtol=1e-15)
        for a, w in zip(jax.tree.leaves(got), want, strict=True):
            np.testing.assert_allclose(np.asarray(a), w, rtol=1e-14, atol=1e-16)
    for order in (2, 3):
        z = NP(C128)
        got = gt.update_moment_per_elem_norm(C128, m, 0.9, order)
        close(got, optax.tree.update_moment_per_elem_norm(C128, m, 0.9, order))
        for a, b, w in zip(jax.tree.leaves(got), z, y, strict=True):
            np.testing.assert_allclose(
                np.asarray(a), 0.1 * np.abs(b) ** order + 0.9 * w, rtol=1e-13
            )
    masked = {"a": None, "b": jnp.ones(2)}
    for name in ["update_moment", "update_moment_per_elem_norm", "update_infinity_moment"]:
        got = getattr(gt, name)(masked, {"a": jnp.ones(2), "b": jnp.ones(2)}, 0.5, 2)
        assert got["a"] is None and got["b"].shape == (2,)


def _debias_reference(decay, count):
    return 1.0 / -np.expm1(count * np.log(np.float64(decay)))


def test_bias_correction_float64_matches_optax_and_numpy():
    m = jnp.asarray(RNG.normal(size=5))
    for decay in (0.5, 0.9, 0.999, 0.9999):
        for count in (1, 2, 10, 1000, 100000):
            got = gt.bias_correction({"m": m}, decay, jnp.asarray(count, jnp.int32))["m"]
            want = optax.tree.bias_correction({"m": m}, decay, jnp.asarray(count, jnp.int32))["m"]
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, want, rtol=1e-12)
            np.testing.assert_allclose(
                got, np.asarray(m) * _debias_reference(decay, count), rtol=1e-14
            )


def test_bias_correction_float32_is_exact_where_optax_is_not():
    """Without x64, optax's ``1 - 0.999**1`` is formed from 0.999 rounded to float32 (off by
    1.3e-5 relative); gradtx's denominator is accurate to float32 rounding."""
    with jax.enable_x64(False):
        m = jnp.ones(3, jnp.float32)
        worst_gradtx = worst_optax = 0.0
        for decay in (0.9, 0.99, 0.999, 0.9999):
            for count in (1, 3, 100, 5000):
                want = _debias_reference(decay, count)
                got = gt.bias_correction(m, decay, jnp.asarray(count))
                theirs = optax.tree.bias_correction(m, decay, jnp.asarray(count))
                assert got.dtype == theirs.dtype == jnp.float32
                worst_gradtx = max(worst_gradtx, abs(float(got[0]) / want - 1))
                worst_optax = max(worst_optax, abs(float(theirs[0]) / want - 1))
    assert worst_gradtx < 2.5e-7
    assert worst_optax > 1e-5


def test_bias_correction_low_precision_and_transforms():
    m = jnp.asarray(RNG.uniform(1, 2, size=64), jnp.bfloat16)
    got = gt.bias_correction(m, 0.999, jnp.asarray(7))
    want = np.asarray(m, np.float64) * _debias_reference(0.999, 7)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2.0**-8 * 1.01)
    counts = jnp.arange(1, 6)
    batched = jax.vmap(lambda c: gt.bias_correction(jnp.ones(2), 0.9, c))(counts)
    np.testing.assert_allclose(batched[:, 0], _debias_reference(0.9, np.arange(1, 6)), rtol=1e-14)
    jitted = jax.jit(gt.bias_correction)(jnp.ones(2), jnp.asarray(0.9), jnp.asarray(3))
    np.testing.assert_allclose(jitted, _debias_reference(0.9, 3), rtol=1e-14)


# --- transforms ---------------------------------------------------------------------------------


def test_jit_vmap_grad():
    flat = np.concatenate([v.ravel() for v in NP(F64)]).real
    assert float(jax.jit(gt.norm)(F64)) == pytest.approx(np.linalg.norm(flat), rel=1e-14)
    grads = jax.grad(gt.norm)(F64)
    close(grads, jax.tree.map(lambda x: x / np.linalg.norm(flat), F64), rtol=1e-14)
    close(jax.grad(gt.sum)(F64), gt.ones_like(F64))
    xs = jnp.asarray(RNG.normal(size=(4, 3)))
    got = jax.vmap(lambda a, b: gt.vdot({"v": a}, {"v": b}))(xs, 2 * xs)
    np.testing.assert_allclose(got, 2 * np.sum(np.asarray(xs) ** 2, axis=1), rtol=1e-14)
    got = jax.vmap(gt.norm, in_axes=(0, None, None))(xs, 1, False)
    np.testing.assert_allclose(got, np.abs(np.asarray(xs)).sum(axis=1), rtol=1e-14)


# --- lookup by name -----------------------------------------------------------------------------


def _plain(path):
    """A path as plain tuples, so optax's and gradtx's NamedTupleKeys compare equal."""
    out = []
    for k in path:
        if hasattr(k, "tuple_name"):
            out.append(("nt", k.tuple_name, k.name))
        else:
            out.append((type(k).__name__, getattr(k, "key", getattr(k, "idx", None))))
    return tuple(out)


def _same_value(a, b):
    a, b = gt.unwrap_random_key_data(a), gt.unwrap_random_key_data(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class Inner(NamedTuple):
    count: jax.Array
    mu: dict


def _states():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    sched = lambda c: 1.0 / (c + 1)
    return [
        optax.adam(1e-3).init(params),
        optax.inject_hyperparams(optax.sgd)(learning_rate=sched).init(params),
        optax.chain(optax.add_noise(1.0, 0.9, key=0), optax.scale_by_adam()).init(params),
        gradtx.adam(1e-3).init(params),
        gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=1e-3).init(params),
        {"count": 1, "sub": {"x": {"count": 2}}, "lst": [Inner(jnp.array(3), {"count": 4})]},
    ]


KEYS = ["count", "mu", "learning_rate", "ScaleByAdamState", "Inner", "hyperparams", "missing"]


def test_get_all_with_path_and_get_match_optax():
    otu = optax.tree_utils
    for state in _states():
        for key in KEYS:
            ours, theirs = gt.get_all_with_path(state, key), otu.tree_get_all_with_path(state, key)
            assert [_plain(p) for p, _ in ours] == [_plain(p) for p, _ in theirs]
            for (_, a), (_, b) in zip(ours, theirs, strict=True):
                _same_value(a, b)
            if len(theirs) > 1:
                with pytest.raises(KeyError, match="ambiguous"):
                    gt.get(state, key)
            else:
                _same_value(gt.get(state, key, default=-1), otu.tree_get(state, key, default=-1))
    state = _states()[1]
    is_array = lambda path, v: isinstance(v, jax.Array)
    assert float(gt.get(state, "learning_rate", filtering=is_array)) == 1.0
    (path, _), *_ = gt.get_all_with_path(_states()[3], "mu")
    assert path[-1] == gt.NamedTupleKey("ScaleByAdamState", "mu")
    assert str(path[-1]) == "ScaleByAdamState.mu"


def test_set_matches_optax_and_replaces_every_match():
    otu = optax.tree_utils
    new = jnp.asarray(7, jnp.int32)
    complete = 0
    for state in _states()[:5]:
        for kw in [{"count": new}, {"mu": {"w": jnp.ones(3), "b": jnp.ones(2)}}]:
            (key, value), *_ = kw.items()
            if not gt.get_all_with_path(state, key):
                with pytest.raises(KeyError):
                    gt.set(state, **kw)
                continue
            ours, theirs = gt.set(state, **kw), otu.tree_set(state, **kw)
            for _, v in gt.get_all_with_path(ours, key):
                _same_value(v, value)
            if all(v is value for _, v in otu.tree_get_all_with_path(theirs, key)):
                _same_value(ours, theirs)
                complete += 1
            else:  # optax missed WrappedScheduleState.count below hyperparams_states
                assert type(state).__name__ == "InjectStatefulHyperparamsState"
    assert complete >= 6
    state = _states()[1]
    is_array = lambda path, v: isinstance(v, jax.Array)
    lr = jnp.asarray(0.1)
    _same_value(
        gt.set(state, is_array, learning_rate=lr), otu.tree_set(state, is_array, learning_rate=lr)
    )
    _same_value(gt.set(state, InjectStatefulHyperparamsState=5), 5)
    with pytest.raises(KeyError, match="filtering"):
        gt.set(state, lambda p, v: False, learning_rate=lr)
    # optax's set leaves the counts below a list or an unmatched dict as they were (3 and 2);
    # gradtx replaces all four values get_all_with_path reports, and nothing else changes
    nested = _states()[5]
    done = gt.set(nested, count=0)
    assert [int(v) for _, v in gt.get_all_with_path(done, "count")] == [0, 0, 0, 0]
    assert int(otu.tree_get(otu.tree_set(nested, count=0)["sub"], "count")) == 2
    assert isinstance(done["lst"][0], Inner) and list(done) == list(nested)
    _same_value(done["lst"][0].mu, {"count": 0})


def test_map_params_matches_optax():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    specs = {"w": "W", "b": "B"}
    for opt in [
        gradtx.adam(1e-3),
        gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=1e-3),
        optax.adam(1e-3),
        optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9)),
    ]:
        state = opt.init(params)
        for kw in [{}, {"transform_non_params": lambda _: None}]:
            want = optax.tree_utils.tree_map_params(opt, lambda _, s: s, state, specs, **kw)
            got = gt.map_params(opt, lambda _, s: s, state, specs, **kw)
            assert jax.tree.structure(got) == jax.tree.structure(want)
            assert jax.tree.leaves(got) == jax.tree.leaves(want)
        doubled = gt.map_params(opt.init, lambda p: 2 * p + 1, state)  # a bare init function
        for _, v in gt.get_all_with_path(doubled, "mu") or gt.get_all_with_path(doubled, "trace"):
            close(v, {"w": 2 * jnp.zeros(3) + 1, "b": jnp.ones(2)})
    is_leaf = lambda x: isinstance(x, list)
    opt = gradtx.sgd(0.1, momentum=0.9)
    state = opt.init({"w": [jnp.ones(2), jnp.ones(2)]})
    got = gt.map_params(opt, lambda x: len(x), state, is_leaf=is_leaf)
    assert gt.get(got, "trace") == {"w": 2}


# --- gradtx.state: tree_get / tree_set by field name ---------------------------------------------


def test_state_tree_get_prefers_the_one_field_over_param_keys():
    """A parameter named like a state field (a bias called ``b1`` beside Schedule-Free's field
    ``b1``) is a dict key in the moment trees: ``tree_get`` picks the one NamedTuple field;
    two fields of one name stay ambiguous."""
    params = {"w1": jnp.ones(2), "b1": jnp.full(2, 3.0)}
    state = gradtx.chain(gradtx.contrib.schedule_free_adamw(1e-2, b1=0.8)).init(params)
    assert len(gradtx.tree_paths(state, "b1")) == 3  # the field, and the key in z and nu
    assert float(gradtx.tree_get(state, "b1")) == 0.8
    close(gradtx.contrib.schedule_free_eval_params(state, params), params)
    two = gradtx.chain(gradtx.adam(0.1), gradtx.scale_by_adam()).init(params)
    with pytest.raises(KeyError, match="ambiguous"):
        gradtx.tree_get(two, "mu")
    hyper = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.5).init(params)
    assert float(gradtx.tree_get(hyper, "learning_rate")) == 0.5  # a dict key, found alone


def test_state_tree_set_keeps_dtype_shape_and_flax_variables():
    from flax import nnx

    class S(NamedTuple):
        lr: object
        scale: object
        flag: object

    state = S(np.float32(0.1), nnx.Variable(jnp.ones(3, jnp.float32), note="kept"), "static")
    new = gradtx.tree_set(state, lr=0.25, scale=2.0)
    assert isinstance(new.lr, jax.Array) and new.lr.dtype == jnp.float32
    assert float(new.lr) == 0.25
    assert type(new.scale) is nnx.Variable and new.scale.get_metadata()["note"] == "kept"
    assert new.scale[...].dtype == jnp.float32 and new.scale[...].shape == (3,)
    np.testing.assert_array_equal(new.scale[...], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(state.scale[...], [1.0, 1.0, 1.0])  # a copy: old unchanged
    assert gradtx.tree_set(state, flag="other").flag == "other"
