"""Completing the ``Args:`` section of registered factories' docstrings.

A factory's docstring describes what is particular to it; arguments shared across the library
(``learning_rate``, ``b1``, ``eps``, ...) take their description from ``GLOSSARY``.  Every
argument's line ends with its default and, where annotated, its allowed interval, both read
from the signature, so ``help(gradtx.adam)`` always agrees with the code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

GLOSSARY = {
    "learning_rate": "the step size ``lr``: a number or a schedule ``step -> lr``.",
    "b1": "decay rate of the first-moment (momentum) average.",
    "b2": "decay rate of the second-moment average.",
    "eps": "added to the denominator, outside the square root, for numerical stability.",
    "eps_root": "added to the second moment inside the square root (keeps gradients through "
    "the update finite, e.g. for meta-learning).",
    "mu_dtype": "storage dtype of the first moment (``None``: the params' dtype); the update "
    "is computed from the moment as stored.",
    "nu_dtype": "storage dtype of the second moment (``None``: the params' dtype).",
    "nesterov": "use Nesterov's look-ahead form of the momentum.",
    "weight_decay": "coefficient ``wd`` of the decoupled weight decay ``wd * p``.",
    "mask": "which leaves get weight decay: a tree of bools shaped like the params (or a "
    "prefix of it), or a function ``params -> such a tree`` (e.g. ``gradtx.paths.exclude``).",
    "momentum": "momentum coefficient; ``None`` for no momentum.",
    "accumulator_dtype": "storage dtype of the accumulator (``None``: the params' dtype).",
    "decay": "decay rate of the moving average.",
    "initial_accumulator_value": "starting value of the accumulator.",
    "key": "PRNG key (or an int seed) of the noise; stored as raw ``uint32`` key data.",
    "seed": "an int seed, an alternative to ``key``.",
    "eta": "variance of the noise at the first step (``s_t^2 = eta / t^gamma``).",
    "gamma": "how fast the noise variance decays with the step ``t`` (``s_t^2 = eta / t^gamma``).",
    "flip_sign": "multiply by ``-lr`` (descent) rather than ``+lr``.",
    "step_size": "the factor: a number or a schedule.",
    "step_size_fn": "a schedule ``step -> factor``.",
    "hyper_lr": "step size of the learning rate's own update "
    "``alpha_t = alpha_{t-1} + hyper_lr * <g_t, d_{t-1}>`` (0: a fixed learning rate).",
    "betas": "``(b1, b2)``: the decay rates of the first and second moments (numbers).",
    "estim_lr0": "starting value ``d0`` of the distance estimate ``d`` (small: ``d`` only grows).",
    "weight_lr_power": "exponent of the averaging weights "
    "``w_t = max_{i<=t} lr_i ^ weight_lr_power``.",
    "state_dtype": "storage dtype of the base iterate ``z`` (``None``: the params' dtype).",
    "warmup_steps": "steps of a linear warmup of the learning rate from 0 (``None``: no warmup).",
}

_SECTION = re.compile(r"^(Args|Arguments):\s*$")
_ARG = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_]*): ?(.*)$")


def _parse(lines: list[str]) -> tuple[int, int, dict[str, str]]:
    """Where the Args section starts and ends, and its described arguments."""
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
    if start is None:
        return len(lines), len(lines), {}
    end, described, current = start + 1, {}, None
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        m = _ARG.match(lines[end])
        if m:
            current = m.group(1)
            described[current] = m.group(2).strip()
        elif current and lines[end].strip():
            described[current] += " " + lines[end].strip()
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return start, end, described


def _default(p: inspect.Parameter) -> str:
    if p.default is inspect.Parameter.empty:
        return "required"
    value = p.default
    text = getattr(value, "__name__", None) if callable(value) else None
    return f"default ``{text or repr(value)}``"


def missing(fn: Callable[..., Any]) -> list[str]:
    """The arguments of ``fn`` its completed docstring does not describe."""
    _, _, described = _parse(inspect.cleandoc(fn.__doc__ or "").splitlines())
    sig = inspect.signature(inspect.unwrap(fn))
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [n for n, p in sig.parameters.items() if p.kind not in kinds and not described.get(n)]


def complete(fn: Callable[..., Any], original: Callable[..., Any]) -> None:
    """Rewrites ``fn.__doc__``'s Args section: one line per argument, in signature order, each
    with its description (the docstring's own, else ``GLOSSARY``'s), default and range."""
    from gradtx.kit import ranges_of

    lines = inspect.cleandoc(original.__doc__ or "").splitlines()
    start, end, described = _parse(lines)
    ranges = ranges_of(original)
    out = ["Args:"]
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for name, p in inspect.signature(original).parameters.items():
        if p.kind in kinds:
            continue
        text = described.get(name) or GLOSSARY.get(name, "")
        facts = _default(p)
        if name in ranges and ranges[name].interval != "(-inf, inf)":
            facts += f", in ``{ranges[name].interval}``"
        elif name in ranges:
            facts += ", negative ascends"
        text = f"{text.rstrip('.')} ({facts})." if text else ""
        out.append(f"  {name}: {text}" if text else f"  {name}:")
    if len(out) == 1:
        return
    head, tail = lines[:start], lines[end:]
    if head and head[-1].strip():
        head = [*head, ""]
    if tail and tail[0].strip():
        tail = ["", *tail]
    fn.__doc__ = "\n".join([*head, *out, *tail])
    original.__doc__ = fn.__doc__  # tools that unwrap (the API reference) read the same text
