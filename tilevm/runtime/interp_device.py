"""The reference interpreter as a device: ``kernel(..., device="interp")``."""

from __future__ import annotations

from typing import Any

from tilevm.frontend.devices import register_device

__all__ = ["run_on_interpreter"]


def run_on_interpreter(kernel: Any, bound: Any, constants: dict[str, Any]) -> None:
    """Run a Tile IR kernel on bound host arguments with the numpy reference interpreter."""
    from tilevm.backend.interp import run  # numpy only, but kept off `import tilevm`'s path

    run(kernel, bound.tensors, bound.scalars, bound.dims)


register_device("interp", run_on_interpreter)
