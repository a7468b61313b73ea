"""``tilevm compile FILE:KERNEL``: lower one kernel and compile it for one GPU target (no GPU
needed); print the forms asked for, from the Tile IR to the SASS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tilevm
from tilevm.cli.common import UserError, load_kernel, parse_constants

__all__ = ["EMIT_FORMS", "add_parser"]

EMIT_FORMS = ("tile", "layouts", "thread", "cuda", "ptx", "sass", "resources", "report")


def _sass(cubin: bytes) -> str:
    from tilevm.backend.cuda.sass import disassemble

    try:
        return disassemble(cubin)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    """Lower and compile one kernel for one target; print the forms asked for."""
    kernel = load_kernel(args.kernel)
    constants = parse_constants(kernel, args.const)
    spec = "aligned" if args.aligned else None
    from tilevm.backend.cuda.targets import UnsupportedArchError

    try:
        compiled = tilevm.compile(kernel, args.arch, spec=spec, **constants)
    except UnsupportedArchError as e:
        raise UserError(str(e)) from None
    forms = {"tile": lambda: compiled.tile_ir, "layouts": lambda: compiled.layouts,
             "thread": lambda: compiled.thread_ir, "cuda": lambda: compiled.cuda_source,
             "ptx": lambda: compiled.ptx, "sass": lambda: _sass(compiled.cubin),
             "resources": lambda: f"{compiled.resources}\n", "report": lambda: compiled.report}
    for form in args.emit or ["report"]:
        sys.stdout.write(forms[form]())
    if args.output:
        Path(args.output).write_bytes(compiled.cubin)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``compile`` to the command's subparsers."""
    comp = commands.add_parser("compile", help="lower a kernel and compile it to a cubin for a GPU "
                                                "target (no GPU needed)",
                               description="Lower a kernel and compile it with NVRTC for one "
                                           "GPU target; print the forms asked for.")
    comp.add_argument("kernel", metavar="FILE:KERNEL", help="the file and the kernel in it")
    comp.add_argument("--arch", default="sm_90", help="the target: sm_80, sm_86, sm_89, sm_90, "
                                                      "sm_90a (default sm_90)")
    comp.add_argument("--const", action="append", default=[], metavar="NAME=VALUE",
                      help="a compile-time constant of the kernel, or a dtype variable "
                           "(T=f16) (repeatable)")
    comp.add_argument("--aligned", action="store_true",
                      help="specialize for contiguous, 16-byte aligned tensors whose sizes are "
                           "multiples of 16 elements and whose outer strides are multiples of "
                           "128 bits (the default is the general kernel)")
    comp.add_argument("--emit", action="append", choices=EMIT_FORMS,
                      help="what to print (repeatable; default: the report); sass needs the "
                           "nvidia-cuda-cuobjdump wheel")
    comp.add_argument("-o", "--output", help="also write the cubin to this file")
    comp.set_defaults(run=run)
