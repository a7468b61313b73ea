"""The ``tilevm`` command (also ``python -m tilevm``)."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence

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
        print("gpu           none (kernels run on the host)")
    print(f"nvrtc         {nvrtc_version()}")
    print(f"cache         {cache_dir()}")
    print()
    header = ["dtype", "bits", "kind", "range (finite)", "specials", "ml_dtypes/numpy", "PTX",
              "torch"]
    print(_table(header, dtype_rows([dt for dt in all_dtypes() if _interesting(dt)])))
    print("(also every integer width u9..u31, i9..i31; floats round to nearest even, "
          "saturating by default at 8 bits and below)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tilevm`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tilevm", description=tilevm.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tilevm {tilevm.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="print the environment and the supported dtypes")
    info.set_defaults(run=cmd_info)
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
