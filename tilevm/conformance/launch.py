"""One conformance launch: a Thread IR kernel, its grid, its buffers' initial contents, and how
each output is checked; :func:`run_on_cpu_backend` computes the outputs a GPU must reproduce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tilevm.ir.thread import Kernel, ScalarType
from tilevm.ir.thread.values import Const

__all__ = ["Check", "Launch", "ScalarArg", "run_on_cpu_backend"]

CHECK_KINDS = ("exact", "bound", "accuracy")


@dataclass(frozen=True)
class Check:
    """How an output buffer is compared (``tilevm.conformance.compare``): ``kind`` ``"exact"``,
    ``"bound"`` (needs the launch's ``bounds``) or ``"accuracy"`` (needs ``references``), over
    elements of type ``element`` (``"u32"``, ``"s32"``, ``"u16"``, ``"f32"``, ``"f16"``,
    ``"bf16"``…); ``unit_roundoff`` is the accuracy rule's ``u``."""

    kind: str
    element: str
    unit_roundoff: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in CHECK_KINDS:
            raise ValueError(f"check kind must be one of {CHECK_KINDS}, got {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "element": self.element}
        if self.kind == "accuracy":
            out["unit_roundoff"] = self.unit_roundoff
        return out


@dataclass(frozen=True)
class ScalarArg:
    """A by-value kernel argument: ``value`` as a Thread IR constant of ``type`` (the CPU
    backend takes the value; a GPU launch takes :attr:`bits` in :attr:`nbytes` bytes)."""

    value: int | float
    type: ScalarType

    @property
    def bits(self) -> int:
        """The bit pattern the kernel receives (floats rounded, integers wrapped)."""
        return Const.of(self.value, self.type).bits

    @property
    def nbytes(self) -> int:
        """The parameter's size in the CUDA kernel's signature (its C++ type's, from
        ``tilevm.backend.cuda.cuda_types``: 8- and 16-bit values are ``unsigned short``)."""
        from tilevm.backend.cuda.cuda_types import c_type

        return c_type(self.type).bits // 8


Arg = str | ScalarArg


@dataclass
class Launch:
    """One kernel launch whose GPU outputs are checked against the CPU backend's.

    ``args`` has one entry per kernel parameter: a buffer's name (its address) or a
    :class:`ScalarArg`. ``buffers`` are the initial contents of every buffer (contiguous numpy
    arrays; a GPU copies their bytes). ``checks`` names the output buffers compared and how.
    ``bounds(outputs)`` gives the per-element bound arrays of the ``"bound"`` checks from the CPU
    outputs (and the inputs it closes over); ``references`` holds, per checked buffer, the
    ``"ref"`` and ``"base"`` arrays of an ``"accuracy"`` check. ``golden``: the GPU outputs are
    recorded under ``tests/golden/`` (per-instruction kernels; not the examples).
    ``block_threads`` and ``shared_bytes`` (dynamic) come from the kernel.
    """

    name: str
    family: str
    description: str
    kernel: Kernel
    grid: tuple[int, int, int]
    args: tuple[Arg, ...]
    buffers: dict[str, np.ndarray]
    checks: dict[str, Check]
    golden: bool = True
    bounds: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    references: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    target_rules: int | None = None  # the SM whose lowering rules the kernel was built with

    def __post_init__(self) -> None:
        if len(self.args) != len(self.kernel.params):
            raise ValueError(f"{self.name}: {len(self.args)} arguments for "
                             f"{len(self.kernel.params)} parameters")
        for arg, param in zip(self.args, self.kernel.params, strict=True):
            if isinstance(arg, str) and arg not in self.buffers:
                raise ValueError(f"{self.name}: argument {param.reg.name} names no buffer {arg!r}")
            if isinstance(arg, str) != param.pointer:
                raise ValueError(f"{self.name}: parameter {param.reg.name} is "
                                 f"{'a pointer' if param.pointer else 'a scalar'}")
        for name, check in self.checks.items():
            if name not in self.buffers:
                raise ValueError(f"{self.name}: check of unknown buffer {name!r}")
            if check.kind == "bound" and self.bounds is None:
                raise ValueError(f"{self.name}: a bound check needs bounds()")
            if check.kind == "accuracy" and set(self.references.get(name, ())) != {"ref", "base"}:
                raise ValueError(f"{self.name}: an accuracy check needs ref and base of {name}")
        if len(self.grid) != 3:
            raise ValueError(f"{self.name}: grid must be (x, y, z), got {self.grid}")

    @property
    def block_threads(self) -> int:
        return self.kernel.block_threads

    @property
    def shared_bytes(self) -> int:
        return self.kernel.shared_bytes


_compiled: dict[int, tuple[Kernel, Any]] = {}


def run_on_cpu_backend(launch: Launch) -> dict[str, np.ndarray]:
    """Run ``launch`` on the CPU backend (JIT-compiled once per kernel object in this process)
    from fresh copies of its buffers; returns every buffer's final contents."""
    from tilevm.backend.cpu import compile_kernel

    hit = _compiled.get(id(launch.kernel))
    if hit is None or hit[0] is not launch.kernel:
        hit = (launch.kernel, compile_kernel(launch.kernel))
        _compiled[id(launch.kernel)] = hit
    executable = hit[1]
    memory = {name: np.array(a, copy=True) for name, a in launch.buffers.items()}
    args = [memory[a] if isinstance(a, str) else a.value for a in launch.args]
    executable(launch.grid, *args)
    return memory
