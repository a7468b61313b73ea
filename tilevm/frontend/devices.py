"""Where a kernel call runs: a table from device names to runners.

The runtime registers every backend — the reference interpreter (``"interp"``) when tilevm is
imported, later the CPU and CUDA backends (``"cpu"``, ``"cuda"``) — with :func:`register_device`, so
that the frontend never imports a backend (DESIGN §2: imports go one way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Runner", "fast_path_for", "register_device", "register_fast_path", "runner_for"]

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


# A fast-path factory gets the kernel's Tile IR, the positional arguments and bound arguments of a
# call that just ran on the device, and the launcher it made before for these constants (or
# None); it returns a launcher, ``launcher(args) -> bool``, that launches a later call with
# arguments of the same kinds and returns True, or returns False having done nothing (the call
# then takes the full path, which checks and reports).
_FAST_PATHS: dict[str, Callable[[Any, tuple, Any, Any], Any]] = {}


def register_fast_path(name: str, factory: Callable[[Any, tuple, Any, Any], Any]) -> None:
    """Give device ``name`` a fast path for repeated calls (see ``_FAST_PATHS`` above)."""
    _FAST_PATHS[name] = factory


def fast_path_for(device: str) -> Callable[[Any, tuple, Any, Any], Any] | None:
    """The fast-path factory of ``device``, or None."""
    return _FAST_PATHS.get(device)
