"""The ``tilevm`` command (also ``python -m tilevm``)."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import tilevm
from tilevm.backend.cache_dir import cache_dir
from tilevm.backend.cuda.nvrtc_info import nvrtc_version
from tilevm.ir.dtypes import DType, all_dtypes
from tilevm.runtime.device import probe_driver

__all__ = ["main"]


def _format_number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value) if abs(value) < 10**6 else f"{value:.3g}"
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:g}"
    return f"{value:.3g}"


def dtype_rows(dtypes: Sequence[DType]) -> list[list[str]]:
    """One row per type: name, bits, kind, range, specials, ml_dtypes/numpy, PTX, torch."""
    rows = []
    for dt in dtypes:
        ml = dt.ml_dtype
        rows.append([
            dt.name + (f" ({', '.join(dt.aliases)})" if dt.aliases else ""),
            str(dt.nbits),
            dt.kind,
            f"{_format_number(dt.min)} .. {_format_number(dt.max)}",
            dt.specials or "-",
            "-" if ml is None else str(ml),
            dt.ptx or "-",
            dt.torch_name or "-",
        ])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def _interesting(dt: DType) -> bool:
    # The 64 integer widths would drown the table: list the ones kernels use and summarise the rest.
    return dt.is_float or dt.nbits in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)


def cmd_info(_args: argparse.Namespace) -> int:
    """Print the environment and the table of supported types."""
    driver = probe_driver()
    print(f"tilevm {tilevm.__version__}")
    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"numpy         {np.__version__}")
    if driver.error:
        print(f"driver        none: {driver.error}")
    else:
        print(f"driver        CUDA {driver.version}")
    if driver.gpus:
        for gpu in driver.gpus:
            print(f"gpu {gpu.index}         {gpu.name} ({gpu.arch}, "
                  f"{gpu.memory_bytes / 2**30:.0f} GiB)")
    else:
        print("gpu           none (kernels run on the host: device='interp' or 'cpu')")
    print(f"nvrtc         {nvrtc_version()}")
    print(f"cache         {cache_dir()}")
    print()
    header = ["dtype", "bits", "kind", "range (finite)", "specials", "ml_dtypes/numpy", "PTX",
              "torch"]
    print(_table(header, dtype_rows([dt for dt in all_dtypes() if _interesting(dt)])))
    print("(also every integer width u9..u31, i9..i31; floats round to nearest even, "
          "saturating by default at 8 bits and below)")
    return 0


EMIT_FORMS = ("tile", "layouts", "thread", "cuda", "ptx", "resources", "report")


def _load_kernel(target: str) -> Any:
    """The kernel ``FILE:KERNEL`` names (the file is imported as a module)."""
    import importlib.util
    from pathlib import Path

    path, _, name = target.rpartition(":")
    if not path:
        raise SystemExit(f"tilevm compile: expected FILE:KERNEL, got {target!r}")
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"tilevm compile: no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"tilevm_cli_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    spec.loader.exec_module(module)
    kernel = getattr(module, name, None)
    if kernel is None or not hasattr(kernel, "ir"):
        found = [k for k, v in vars(module).items() if hasattr(v, "ir") and hasattr(v, "fn")]
        raise SystemExit(f"tilevm compile: {path} has no kernel {name!r} (its kernels: "
                         f"{', '.join(found) or 'none'})")
    return kernel


def _constant(text: str) -> tuple[str, Any]:
    """``k=v``: v read as a Python literal, else as a dtype name, else as a string."""
    import ast

    key, eq, value = text.partition("=")
    if not eq or not key.isidentifier():
        raise SystemExit(f"tilevm compile: --const takes NAME=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        try:
            return key, tilevm.dtype(value)
        except ValueError:
            return key, value


def cmd_compile(args: argparse.Namespace) -> int:
    """Lower and compile one kernel for one target; print the forms asked for."""
    kernel = _load_kernel(args.kernel)
    constants = dict(_constant(c) for c in args.const)
    spec = "aligned" if args.aligned else None
    from tilevm.backend.cuda.targets import UnsupportedArchError

    try:
        compiled = tilevm.compile(kernel, args.arch, spec=spec, **constants)
    except (tilevm.CompileError, UnsupportedArchError) as e:
        print(f"tilevm compile: {e}", file=sys.stderr)
        return 1
    forms = {"tile": lambda: compiled.tile_ir, "layouts": lambda: compiled.layouts,
             "thread": lambda: compiled.thread_ir, "cuda": lambda: compiled.cuda_source,
             "ptx": lambda: compiled.ptx, "resources": lambda: f"{compiled.resources}\n",
             "report": lambda: compiled.report}
    for form in args.emit or ["report"]:
        sys.stdout.write(forms[form]())
    if args.output:
        from pathlib import Path

        Path(args.output).write_bytes(compiled.cubin)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run, check and compile the low-bit GEMM examples (tilevm/demo.py)."""
    from tilevm.demo import run_demo

    return run_demo(device=args.device, sass=not args.no_sass)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tilevm`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tilevm", description=tilevm.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tilevm {tilevm.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="print the environment and the supported dtypes")
    info.set_defaults(run=cmd_info)
    comp = commands.add_parser("compile", help="lower a kernel and compile it to a cubin for a GPU "
                                                "target (no GPU needed)")
    comp.add_argument("kernel", metavar="FILE:KERNEL", help="the file and the kernel in it")
    comp.add_argument("--arch", default="sm_90", help="the target: sm_80, sm_86, sm_89, sm_90, "
                                                      "sm_90a (default sm_90)")
    comp.add_argument("--const", action="append", default=[], metavar="NAME=VALUE",
                      help="a compile-time constant of the kernel (repeatable)")
    comp.add_argument("--aligned", action="store_true",
                      help="specialize for contiguous, 16-byte aligned tensors whose sizes are "
                           "multiples of 16 elements and whose outer strides are multiples of "
                           "128 bits (the default is the general kernel)")
    comp.add_argument("--emit", action="append", choices=EMIT_FORMS,
                      help="what to print (repeatable; default: the report)")
    comp.add_argument("-o", "--output", help="also write the cubin to this file")
    comp.set_defaults(run=cmd_compile)
    demo = commands.add_parser("demo", help="run the W4A16 and any-weight-type GEMM examples, "
                                            "check them against float64 and compile them for "
                                            "sm_90")
    demo.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                      help="where the kernels run: the GPU when there is one (auto, the "
                           "default), the CPU backend, or the GPU")
    demo.add_argument("--no-sass", action="store_true",
                      help="do not disassemble the sm_90 cubins (SASS counts)")
    demo.set_defaults(run=cmd_demo)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:  # `tilevm info | head`: the reader left, which is not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
