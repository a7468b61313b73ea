"""Where a kernel call runs: a table from device names to runners.

The runtime registers every backend — the reference interpreter (``"interp"``) when tilevm is
imported, later the CPU and CUDA backends (``"cpu"``, ``"cuda"``) — with :func:`register_device`, so
that the frontend never imports a backend (DESIGN §2: imports go one way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Runner", "register_device", "runner_for"]

# A runner gets the kernel's Tile IR, its bound arguments and the constants it was built with.
Runner = Callable[[Any, Any, dict[str, Any]], None]
_RUNNERS: dict[str, Runner] = {}


def register_device(name: str, runner: Runner) -> None:
    """Make ``kernel(..., device=name)`` call ``runner(kernel_ir, bound_arguments, constants)``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_device: name must be a non-empty string, got {name!r}")
    _RUNNERS[name] = runner


def runner_for(device: str) -> Runner:
    """The runner of ``device``; ``ValueError`` listing the available ones if there is none."""
    if device not in _RUNNERS:
        known = ", ".join(sorted(_RUNNERS))
        raise ValueError(f"device={device!r} is not available (available: {known})")
    return _RUNNERS[device]
