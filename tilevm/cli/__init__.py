"""The ``tilevm`` command (also ``python -m tilevm``): one module per subcommand, each adding its
parser; a user's mistake (:class:`~tilevm.cli.common.UserError`, a kernel's
:class:`~tilevm.CompileError` or :class:`~tilevm.KernelExecutionError`) is one line on stderr and
exit status 1, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import tilevm
from tilevm.cli import bench, cache, compile, info, run, tune
from tilevm.cli.common import UserError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    """Run, check and compile the low-bit GEMM examples (tilevm/demo.py)."""
    from tilevm.demo import run_demo

    return run_demo(device=args.device, sass=not args.no_sass)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run low-bit weight GEMMs (W4A16, W3A16, MXFP4), "
                                            "check them against float64 and compile them for "
                                            "sm_90",
                               description="The main job: low-bit GEMMs compiled, run and "
                                           "checked against float64.")
    demo.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                      help="where the kernels run: the GPU when there is one (auto, the "
                           "default), the CPU backend, or the GPU")
    demo.add_argument("--no-sass", action="store_true",
                      help="do not disassemble the sm_90 cubins (SASS counts)")
    demo.set_defaults(run=_demo)


def parser() -> argparse.ArgumentParser:
    """The command's argument parser, every subcommand added."""
    top = argparse.ArgumentParser(prog="tilevm", description=tilevm.__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"tilevm {tilevm.__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for module in (info, compile, run, bench, tune, cache):
        module.add_parser(commands)
    _add_demo(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tilevm`` console script; returns the exit status."""
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 2
    try:
        return args.run(args)
    except (UserError, tilevm.KernelExecutionError) as e:
        print(f"tilevm {args.command}: {e}", file=sys.stderr)
        return 1
    except tilevm.CompileError as e:  # a diagnostic: its own lines (file:line:col, the source)
        print(e, file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tilevm info | head`: the reader left, which is not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
