"""``tilevm tune FILE:KERNEL --shape m=…``: tune a kernel's constants for one set of sizes — a
progress bar over the candidates, the table of candidates with the best marked, the tuning
database entry written, and with ``--export`` a file to ship."""

from __future__ import annotations

import argparse
import ast
from typing import Any

from tilevm.cli.common import UserError, load_kernel, parse_assignments, parse_constants

__all__ = ["add_parser"]


def _space(items: list[str]) -> dict[str, list[Any]]:
    """``--space NAME=V1,V2,...`` items: each value a Python literal (else a string)."""
    space: dict[str, list[Any]] = {}
    for item in items:
        name, eq, values = item.partition("=")
        if not eq or not name.strip().isidentifier() or not values.strip():
            raise UserError(f"--space takes NAME=V1,V2,..., got {item!r}")
        out = []
        for text in values.split(","):
            try:
                out.append(ast.literal_eval(text.strip()))
            except (ValueError, SyntaxError):
                out.append(text.strip())
        space[name.strip()] = out
    return space


def run(args: argparse.Namespace) -> int:
    """Tune, print the table, report where the result went."""
    from tilevm.runtime.autotune import AutotunedKernel, autotune
    from tilevm.runtime.tuner import ProgressBar, TuningError, tune

    kernel = load_kernel(args.kernel)
    space = _space(args.space)
    if isinstance(kernel, AutotunedKernel):
        if space:
            raise UserError(f"{args.kernel} declares its space with @tilevm.autotune; --space "
                            "is for a plain @tilevm.kernel")
    elif not space:
        raise UserError(f"{args.kernel} is not an @tilevm.autotune kernel: give the constants "
                        "to try with --space NAME=V1,V2 (repeatable)")
    else:
        try:
            kernel = autotune(space=space)(kernel)
        except ValueError as e:  # a name that is not one of the kernel's constants
            raise UserError(str(e)) from None
    constants = parse_constants(kernel.kernel, args.const)
    sizes = parse_assignments(args.shape, "--shape")
    scalars = parse_assignments(args.scalar, "--scalar")
    try:
        result = tune(kernel, sizes, scalars=scalars, constants=constants, arch=args.arch,
                      progress=ProgressBar(f"{kernel.kernel.fn.__name__}: "),
                      workers=args.workers)
    except (TuningError, ValueError) as e:
        raise UserError(str(e)) from None
    print(result.table())
    if result.db_path is not None:
        print(f"\ntuning database entry written to {result.db_path}")
    else:
        print(f"\nno GPU: the static heuristic chose for {result.arch} (docs/tuning.md); "
              "nothing was measured, so nothing was written to the tuning database")
    if args.export:
        try:
            count = result.export(args.export)
        except ValueError as e:
            raise UserError(str(e)) from None
        print(f"exported to {args.export} ({count} entr{'y' if count == 1 else 'ies'}); load it "
              "with tilevm.load_tuning(path)")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``tune`` to the command's subparsers."""
    p = commands.add_parser("tune", help="tune a kernel's constants for one set of sizes",
                            description="Compile every candidate configuration (in parallel "
                                        "processes), prune those whose registers, shared memory "
                                        "or spills do not fit the target, check the rest "
                                        "against a reference and time them on the GPU; write "
                                        "the best to the tuning database. Without a GPU the "
                                        "static heuristic of docs/tuning.md chooses.")
    p.add_argument("kernel", metavar="FILE:KERNEL", help="the file and the kernel in it (an "
                                                         "@tilevm.autotune kernel, or a plain "
                                                         "kernel with --space)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=SIZE[,...]",
                   help="the size of each named dimension (repeatable; m=4096,n=4096)")
    p.add_argument("--scalar", action="append", default=[], metavar="NAME=VALUE[,...]",
                   help="a run-time scalar argument (others are 1)")
    p.add_argument("--const", action="append", default=[], metavar="NAME=VALUE",
                   help="a constant not tuned, or a dtype variable (T=f16) (repeatable)")
    p.add_argument("--space", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="the values to try for one constant of a plain kernel (repeatable)")
    p.add_argument("--arch", help="the target (default: the GPU's; without a GPU, the one the "
                                  "CPU backend stands in for)")
    p.add_argument("--workers", type=int, help="compile processes (default: one per core; 0 "
                                               "compiles in this process)")
    p.add_argument("--export", metavar="FILE",
                   help="also add the measured result to this tuning file (JSON) to ship with "
                        "a program")
    p.set_defaults(run=run)
