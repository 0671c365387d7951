"""The command line every example shares, written with the standard library only.

Each example parses its arguments before it imports JAX, Flax or matplotlib (seconds of imports),
so ``python examples/<name>.py --help`` and a mistyped option answer at once.

Every example takes the same five options, ``--epochs``, ``--optimizers``, ``--seed``, ``--out``
and ``--quick`` (plus ``--no-progress``).  Where one cannot change what an example computes, the
example still accepts it, its ``--help`` says why it is ignored, and a run that passes it prints
that reason.  Figures go to ``out/<example>/`` by default and ``--quick`` runs to
``out/quick/<example>/``, so a smoke test never overwrites a full run's figures; ``--out`` chooses
any other folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

OUT_ROOT = Path("out")
"""Default output folders: ``OUT_ROOT / name`` for a full run, ``OUT_ROOT / "quick" / name`` for
``--quick``."""


def default_out(name: str, quick: bool) -> Path:
    """Where an example writes when ``--out`` is not given."""
    return OUT_ROOT / "quick" / name if quick else OUT_ROOT / name


def parser(
    name: str,
    description: str,
    optimizers: Sequence[str],
    *,
    default_optimizers: Sequence[str] | None = None,
    quick_optimizers: Sequence[str] | None = None,
    epochs: str = "training epochs",
    quick: str = "a few seconds' run (smoke test)",
    ignored: Mapping[str, str] | None = None,
) -> argparse.ArgumentParser:
    """The options every example shares; an example may add its own.

    ``name`` names the default output folders; ``optimizers`` are the names ``--optimizers``
    accepts (``default_optimizers`` the ones run when it is not given, all of them by default,
    and ``quick_optimizers`` those of a ``--quick`` run, the same by default);
    ``epochs`` and ``quick`` describe what those options mean here; ``ignored`` maps an option
    (``"--seed"``) to the reason it changes nothing in this example.
    """
    ignored = dict(ignored or {})
    unknown = set(ignored) - {"--epochs", "--optimizers", "--seed"}
    if unknown:
        raise ValueError(f"only --epochs, --optimizers and --seed may be ignored, not {unknown}")

    def text(flag: str, help_: str) -> str:
        return f"accepted but ignored: {ignored[flag]}" if flag in ignored else help_

    chosen = list(default_optimizers if default_optimizers is not None else optimizers)
    quick_chosen = list(quick_optimizers if quick_optimizers is not None else chosen)
    p = argparse.ArgumentParser(description=description)
    p.set_defaults(
        example=name,
        chosen=chosen,
        ignored=ignored,
        known_optimizers=list(optimizers),
        quick_optimizers=quick_chosen,
    )
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--epochs", type=int, default=None, help=text("--epochs", epochs))
    p.add_argument(
        "--optimizers",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=None,
        help=text(
            "--optimizers",
            f"comma-separated subset of: {','.join(optimizers)} (default: "
            + ("all" if chosen == list(optimizers) else ",".join(chosen))
            + (f"; with --quick: {','.join(quick_chosen)})" if quick_chosen != chosen else ")"),
        ),
    )
    p.add_argument(
        "--seed", type=int, default=0, help=text("--seed", "seed for init, data and shuffling")
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: {default_out(name, False)}, "
        f"or {default_out(name, True)} with --quick)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def parse(
    p: argparse.ArgumentParser, argv: Sequence[str] | argparse.Namespace | None = None
) -> argparse.Namespace:
    """``p.parse_args(argv)``: refuses optimizer names the example does not know, resolves and
    creates the output folder, and says which of the given options this example ignores.  A
    ``Namespace`` (already parsed, as a script's ``__main__`` block does before its heavy
    imports) is returned as it is."""
    if isinstance(argv, argparse.Namespace):
        return argv
    args = p.parse_args(argv)
    if args.optimizers is None:
        args.optimizers = list(args.quick_optimizers if args.quick else args.chosen)
    unknown = [o for o in args.optimizers if o not in args.known_optimizers]
    if unknown and "--optimizers" not in args.ignored:
        p.error(f"unknown optimizer(s) {unknown}; choose from {args.known_optimizers}")
    if not args.optimizers and "--optimizers" not in args.ignored:
        p.error("--optimizers is empty")
    given = {a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv)}
    for flag, reason in args.ignored.items():
        if flag in given:
            print(f"note: {flag} is ignored by {args.example}: {reason}")
    if args.out is None:
        args.out = default_out(args.example, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    return args
