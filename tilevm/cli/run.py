"""``tilevm run FILE:KERNEL --shape m=…``: run a kernel on random inputs of its declared types
and check every tensor against the reference interpreter."""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import numpy as np

from tilevm.cli.common import UserError, load_kernel, parse_assignments, parse_constants
from tilevm.cli.info import table
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.types import TensorType
from tilevm.runtime.random_inputs import random_arguments
from tilevm.runtime.result_check import bounded_operations, difference

__all__ = ["add_arguments", "add_parser", "prepare", "to_device"]


def prepare(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], list[Any]]:
    """The kernel, its Tile IR, its constants and random arguments that a command line
    (``FILE:KERNEL``, ``--const``, ``--shape``, ``--scalar``, ``--seed``) names."""
    kernel = load_kernel(args.kernel)
    constants = parse_constants(kernel, args.const)
    sizes = parse_assignments(args.shape, "--shape")
    scalars = parse_assignments(args.scalar, "--scalar")
    ir = kernel.ir(**constants)
    try:
        arguments = random_arguments(ir, sizes, scalars, args.seed)
    except ValueError as e:
        hint = " (give them with --shape NAME=SIZE)" if "needs the sizes" in str(e) else ""
        raise UserError(f"{e}{hint}") from None
    return kernel, ir, constants, arguments


def to_device(value: Any) -> Any:
    """A host array or HostTensor copied to GPU 0 as a DeviceArray; anything else as it is."""
    from tilevm.runtime.device_array import DeviceArray

    if isinstance(value, np.ndarray):
        return DeviceArray.from_numpy(value)
    if isinstance(value, HostTensor):
        return DeviceArray.from_host_tensor(value)
    return value


def _to_host(value: Any) -> Any:
    if hasattr(value, "to_host_tensor"):
        return value.to_host_tensor()
    return value


def run(args: argparse.Namespace) -> int:
    """Run the kernel on random inputs where asked, then on the interpreter, and compare."""
    if args.sanitize and args.device != "cpu":
        raise UserError("--sanitize needs --device cpu (the sanitizer is part of the CPU "
                        "backend)")
    kernel, ir, constants, arguments = prepare(args)
    reference = copy.deepcopy(arguments)
    on_device = [to_device(a) for a in arguments] if args.device == "cuda" else arguments
    start = time.perf_counter()
    checked = {"sanitize": True} if args.sanitize else {}
    kernel(*on_device, device=args.device, **checked, **constants)
    seconds = time.perf_counter() - start
    results = [_to_host(a) for a in on_device]
    kernel(*reference, device="interp", **constants)
    bounded = bounded_operations(ir, on_gpu=args.device == "cuda")
    rows, failed = [], 0
    for p, want, got in zip(ir.params, reference, results):
        if not isinstance(p.type, TensorType):
            continue
        problem = difference(want, got, bool(bounded))
        failed += problem is not None
        shape = "x".join(str(n) for n in got.shape)
        rows.append([p.name, p.type.dtype.name, shape,
                     problem or ("within the bound" if bounded else "same bits")])
    print(table(["tensor", "dtype", "shape", f"{args.device} vs interpreter"], rows))
    how = (f"bounded ({', '.join(sorted(set(bounded)))}): within 2^-9 of the largest value"
           if bounded else "exact: bit for bit")
    print(f"\n{ir.name} on {args.device}: {seconds:.3f} s (first call: compile and JIT "
          f"included); check {how}")
    if failed:
        raise UserError(f"{failed} tensor{'s' if failed > 1 else ''} differ from the "
                        "interpreter")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name a kernel and its random inputs (shared with ``bench``)."""
    parser.add_argument("kernel", metavar="FILE:KERNEL", help="the file and the kernel in it")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=SIZE[,...]",
                        help="the size of each named dimension of the kernel's tensors "
                             "(repeatable; m=64,n=128 gives two)")
    parser.add_argument("--scalar", action="append", default=[], metavar="NAME=VALUE[,...]",
                        help="a run-time scalar argument (others are random: integers in "
                             "[1, 8], floats in [0.5, 2))")
    parser.add_argument("--const", action="append", default=[], metavar="NAME=VALUE",
                        help="a compile-time constant, or a dtype variable (T=f16) "
                             "(repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="the inputs' random seed "
                                                            "(default 0)")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``run`` to the command's subparsers."""
    p = commands.add_parser("run", help="run a kernel on random inputs and check it against the "
                                         "interpreter",
                            description="Run a kernel on random inputs of its declared types "
                                        "(floats standard normal, integers of 8 bits or fewer "
                                        "over their range, wider ones in [0, 64)) and check "
                                        "every tensor against the reference interpreter: bit "
                                        "for bit, or within the bound of docs/numeric-contract"
                                        ".md for programs with float sums or transcendental "
                                        "functions. Exit status 1 when a tensor differs.")
    add_arguments(p)
    p.add_argument("--device", choices=("cpu", "cuda", "interp"), default="cpu",
                   help="where the kernel runs: the CPU backend (default), the GPU, or the "
                        "interpreter itself")
    p.add_argument("--sanitize", action="store_true",
                   help="run under the CPU backend's sanitizer (docs/debugging.md)")
    p.set_defaults(run=run)
