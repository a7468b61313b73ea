"""What the ``tilevm`` commands share: the user-error exit, reading ``FILE:KERNEL``, constants,
sizes and scalars given on the command line."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import tilevm

__all__ = ["UserError", "load_kernel", "parse_assignments", "parse_constants"]


class UserError(Exception):
    """A mistake in a command line or in what it names: the command prints the message on one
    line and exits with status 1, without a traceback."""


def load_kernel(target: str) -> Any:
    """The ``@tilevm.kernel`` that ``FILE:KERNEL`` names (the file is imported as a module, with
    its folder on ``sys.path``)."""
    path, _, name = target.rpartition(":")
    if not path or not name:
        raise UserError(f"expected FILE:KERNEL, got {target!r}")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"tilevm_cli_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise UserError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except tilevm.CompileError:
        raise
    except Exception as e:  # the user's module failed to import: say where, not tilevm's stack
        raise UserError(f"importing {path} failed: {type(e).__name__}: {e}") from None
    kernel = getattr(module, name, None)
    if kernel is None or not hasattr(kernel, "ir"):
        found = [k for k, v in vars(module).items() if hasattr(v, "ir") and hasattr(v, "fn")]
        raise UserError(f"{path} has no kernel {name!r} (its kernels: "
                        f"{', '.join(found) or 'none'})")
    return kernel


def _value(text: str) -> Any:
    """A command-line value: a Python literal, else a dtype name, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return tilevm.dtype(text)
        except ValueError:
            return text


def parse_assignments(items: list[str], option: str, split: bool = True) -> dict[str, Any]:
    """``NAME=VALUE`` items as a dict, values read by :func:`_value`; with ``split`` an item may
    hold several, separated by commas (``m=64,n=128``)."""
    out: dict[str, Any] = {}
    for item in items:
        for part in item.split(",") if split else [item]:
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key.isidentifier():
                raise UserError(f"{option} takes NAME=VALUE, got {part!r}")
            out[key] = _value(value.strip())
    return out


def parse_constants(kernel: Any, items: list[str]) -> dict[str, Any]:
    """The ``--const NAME=VALUE`` items of a command, each the name of one of ``kernel``'s
    constants (keyword-only parameters) or dtype variables; every dtype variable must be
    given (nothing on a command line binds it)."""
    constants = parse_assignments(items, "--const", split=False)
    allowed = {p.name for p in inspect.signature(kernel.fn).parameters.values()
               if p.kind is p.KEYWORD_ONLY} | set(kernel._dtype_variables.values())
    unknown = sorted(set(constants) - allowed)
    if unknown:
        raise UserError(f"kernel {kernel.fn.__name__} has no constant {', '.join(unknown)} (its "
                        f"constants: {', '.join(sorted(allowed)) or 'none'})")
    unbound = sorted(set(kernel._dtype_variables.values()) - set(constants))
    if unbound:  # a call binds them from its tensors; a command line must name them
        raise UserError(f"kernel {kernel.fn.__name__} has the dtype variable"
                        f"{'s' if len(unbound) > 1 else ''} {', '.join(unbound)}: give "
                        f"{'each' if len(unbound) > 1 else 'it'} with --const "
                        f"{unbound[0]}=f16 (or another dtype)")
    return constants
