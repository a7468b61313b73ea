"""The GPU architectures the CUDA backend compiles for, and what each one allows.

A target is named as NVRTC's ``--gpu-architecture`` names it: ``sm_80``, ``sm_86``, ``sm_89``,
``sm_90`` or ``sm_90a`` (the ``a`` suffix enables Hopper's architecture-specific instructions, such
as ``wgmma``, and the binary then runs on sm_90 GPUs only). Shared-memory limits are the opt-in
maxima per block from the CUDA C++ Programming Guide's table of compute capabilities; the PTX ISA
version is what the pinned NVRTC (13.0) emits for every target.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SUPPORTED_ARCHS", "CudaTarget", "UnsupportedArchError", "cuda_target"]

# The PTX ISA version NVRTC 13.0 writes in `.version` (PTX ISA 9.0).
NVRTC_PTX_ISA = (9, 0)


class UnsupportedArchError(ValueError):
    """An architecture the CUDA backend does not compile for."""


@dataclass(frozen=True)
class CudaTarget:
    """One compilation target.

    Attributes:
        name: NVRTC's name, e.g. ``"sm_90a"``.
        sm: the compute capability as one number (80, 86, 89, 90); ``sm_90a`` has 90.
        arch_specific: True for the ``a`` variants.
        max_shared_bytes: dynamic + static shared memory one block may opt into.
        ptx_isa: the PTX ISA version of the emitted PTX, as (major, minor).
    """

    name: str
    sm: int
    arch_specific: bool
    max_shared_bytes: int
    ptx_isa: tuple[int, int] = NVRTC_PTX_ISA

    @property
    def compute_capability(self) -> tuple[int, int]:
        return divmod(self.sm, 10)

    @property
    def nvrtc_option(self) -> str:
        """The ``--gpu-architecture=`` option that selects this target."""
        return f"--gpu-architecture={self.name}"

    def __str__(self) -> str:
        return self.name


_KIB = 1024
_TARGETS = {
    t.name: t
    for t in (
        CudaTarget("sm_80", 80, False, 163 * _KIB),
        CudaTarget("sm_86", 86, False, 99 * _KIB),
        CudaTarget("sm_89", 89, False, 99 * _KIB),
        CudaTarget("sm_90", 90, False, 227 * _KIB),
        CudaTarget("sm_90a", 90, True, 227 * _KIB),
    )
}

SUPPORTED_ARCHS: tuple[str, ...] = tuple(_TARGETS)


def cuda_target(arch: str | int | CudaTarget) -> CudaTarget:
    """The target named by ``arch``: a :class:`CudaTarget`, a name (``"sm_90a"``, ``"90"``) or
    a number (``80``).

    Raises :class:`UnsupportedArchError`, naming the supported architectures, for anything else.
    """
    if isinstance(arch, CudaTarget):
        return arch
    if isinstance(arch, bool) or not isinstance(arch, (str, int)):
        raise UnsupportedArchError(
            f"arch must be a target name such as 'sm_80', got {type(arch).__name__} {arch!r}")
    text = str(arch).strip().lower()
    name = text if text.startswith("sm_") else f"sm_{text}"
    target = _TARGETS.get(name)
    if target is None:
        raise UnsupportedArchError(
            f"arch {arch!r} is not supported by the CUDA backend; supported: "
            f"{', '.join(SUPPORTED_ARCHS)}")
    return target
