"""``tilevm info``: the environment (Python, driver, GPUs, NVRTC, cache) and the dtype table."""

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

__all__ = ["add_parser", "dtype_rows", "table"]


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


def table(header: list[str], rows: list[list[str]]) -> str:
    """Rows of cells as a text table: columns left-aligned to their widest cell, a rule under
    the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def _interesting(dt: DType) -> bool:
    # The 64 integer widths would drown the table: list the ones kernels use and summarise the rest.
    return dt.is_float or dt.nbits in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)


def run(_args: argparse.Namespace) -> int:
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
    print(table(header, dtype_rows([dt for dt in all_dtypes() if _interesting(dt)])))
    print("(also every integer width u9..u31, i9..i31; floats round to nearest even, "
          "saturating by default at 8 bits and below)")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``info`` to the command's subparsers."""
    info = commands.add_parser("info", help="print the environment and the supported dtypes",
                               description="Print tilevm's environment (Python, CUDA driver, "
                                           "GPUs, NVRTC, cache directory) and every dtype.")
    info.set_defaults(run=run)
