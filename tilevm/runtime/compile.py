"""``tilevm.compile``: a kernel lowered and compiled to a cubin for one GPU target, with every form
on the way (Tile IR with layouts, Thread IR, CUDA C++, PTX, cubin), its resources and the
compile report. No GPU is needed: NVRTC runs on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tilevm.ir.tile.printer import print_kernel

__all__ = ["CompiledKernel", "Resources", "compile_kernel", "compile_uncached", "specialization_of"]


@dataclass(frozen=True)
class Resources:
    """What one block of the kernel takes on the GPU: ``registers`` per thread (ptxas),
    ``spills`` (bytes of spill stores and loads per thread), ``stack`` (bytes of stack frame per
    thread) and ``shared`` (bytes of shared memory per block: the kernel's buffers and
    scratch)."""

    registers: int
    spills: int
    stack: int
    shared: int

    def __str__(self) -> str:
        return (f"registers {self.registers}, spills {self.spills} bytes, stack {self.stack} "
                f"bytes, shared {self.shared} bytes")


@dataclass
class CompiledKernel:
    """A kernel compiled for one target and specialization (see :func:`compile_kernel`)."""

    name: str
    target: str
    lowered: Any  # tilevm.backend.lower.LoweredKernel
    binary: Any  # tilevm.backend.cuda.CudaBinary

    @property
    def tile_ir(self) -> str:
        """The Tile IR as written (before layout inference)."""
        return print_kernel(self.source_ir)

    @property
    def layouts(self) -> str:
        """The Tile IR with every register tile's layout and the inserted conversions."""
        return print_kernel(self.lowered.tile)

    @property
    def thread_ir(self) -> str:
        """The Thread IR both backends run."""
        return str(self.lowered.thread)

    @property
    def cuda_source(self) -> str:
        return self.binary.source

    @property
    def ptx(self) -> str:
        return self.binary.ptx

    @property
    def cubin(self) -> bytes:
        return self.binary.cubin

    @property
    def resources(self) -> Resources:
        r = self.binary.resources[self.lowered.thread.name]
        return Resources(r.registers, r.spill_store_bytes + r.spill_load_bytes,
                         r.stack_frame_bytes, self.lowered.thread.shared_bytes + r.shared_bytes)

    @property
    def report(self) -> str:
        """The compile report: layouts, conversions, memory accesses and why, shared memory,
        registers, and the ptxas resources."""
        return f"{self.lowered.report}\nptxas: {self.resources}\n"

    source_ir: Any = None


def specialization_of(kernel: Any, spec: Any) -> Any:
    """The :class:`~tilevm.backend.lower.Specialization` that ``spec`` stands for: ``None`` (the
    general kernel), a Specialization, ``"aligned"`` (contiguous, 16-byte aligned tensors whose
    sizes are multiples of 16 elements and whose outer strides are multiples of 128 bits),
    ``"contiguous"`` (last strides 1, nothing else known), or example arguments (a tuple or
    list, as the kernel would be called with)."""
    from tilevm.backend.lower import Specialization
    from tilevm.frontend.arguments import bind_arguments, call_device

    if spec is None:
        return Specialization.generic()
    if isinstance(spec, Specialization):
        return spec
    if spec in ("aligned", "contiguous"):
        return Specialization.contiguous(kernel, aligned=spec == "aligned")
    if isinstance(spec, (tuple, list)):
        args = tuple(spec)  # GPU tensors are bound as a GPU call binds them
        device = "cuda" if call_device(kernel, args, "host") == "cuda" else "host"
        bound = bind_arguments(kernel, args, device)
        return Specialization.of_arguments(kernel, bound.tensors, bound.dims)
    raise TypeError(f"spec must be None, a Specialization, 'aligned', 'contiguous' or example "
                    f"arguments (a tuple), got {type(spec).__name__}")


def compile_kernel(kernel: Any, target: str = "sm_90", spec: Any = None,
                   **constants: Any) -> CompiledKernel:
    """Lower ``kernel`` (a ``@tilevm.kernel`` function, with ``constants``) and compile it for
    ``target`` (``"sm_80"``, ``"sm_90"``…) under the specialization ``spec`` (see
    :func:`specialization_of`; the general kernel by default).

    The binary comes from the kernel cache when it holds it (:mod:`tilevm.runtime.kernel_cache`):
    NVRTC then does not run, the kernel is lowered again (the layouts, Thread IR, report and CUDA
    source show its current source lines) and the PTX, cubin, log and resources are the cached
    ones.

    When ``spec`` is the arguments (a tuple or list), the kernel's dtype variables
    (``tv.Dtype``) not given in ``constants`` are bound from them, as a call binds them.

    A build in which ptxas spills registers is compiled again with the register limit set to the
    ISA's, and the one that spills less is kept (:mod:`tilevm.backend.cuda.spill_free`).

    Raises :class:`~tilevm.CompileError` for a mistake in the kernel or a kernel that cannot
    fit the target, :class:`~tilevm.backend.cuda.UnsupportedArchError` for an unknown target.
    """
    from tilevm.backend.cuda import cuda_target
    from tilevm.runtime.kernel_cache import compile_cached

    tgt = cuda_target(target)
    if isinstance(spec, (tuple, list)) and hasattr(kernel, "_bind_dtype_variables"):
        constants = kernel._bind_dtype_variables(spec, constants)
    tile = kernel.ir(**constants) if hasattr(kernel, "ir") else kernel
    return compile_cached(tile, specialization_of(tile, spec), tgt.name)


def compile_uncached(tile: Any, target: Any, spec: Any) -> CompiledKernel:
    """Lower ``tile`` (Tile IR) under ``spec`` (as :func:`specialization_of` takes it) and compile
    it with NVRTC for ``target`` (a name or :class:`~tilevm.backend.cuda.CudaTarget`), without
    the cache; a build that spills is compiled again with the register budget lifted
    (:func:`~tilevm.backend.cuda.compile_cuda_without_spills`)."""
    from tilevm.backend.cuda import compile_cuda_without_spills, cuda_target, emit_cuda
    from tilevm.backend.lower import lower

    tgt = cuda_target(target)
    lowered = lower(tile, tgt.sm, specialization_of(tile, spec))
    binary = compile_cuda_without_spills(emit_cuda(lowered.thread, tgt), tgt)
    return CompiledKernel(tile.name, tgt.name, lowered, binary, tile)
