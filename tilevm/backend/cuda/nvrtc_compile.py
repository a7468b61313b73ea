"""CUDA C++ → PTX and cubin through NVRTC from the pinned ``nvidia-cuda-nvrtc`` wheel.

No CUDA toolkit is needed and none is used: the source must be self-contained (no ``#include``),
which is what :func:`tilevm.backend.cuda.emit_cuda` prints. The options are those of DESIGN §7:
no floating-point contraction, functions default to device code, C++17, the ptxas resource report
(parsed into :class:`KernelResources`), line info (so that PTX maps back to source lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tilevm.backend.cuda.compile_errors import CudaCompileError
from tilevm.backend.cuda.resources import KernelResources, parse_ptxas_report
from tilevm.backend.cuda.targets import CudaTarget, cuda_target

__all__ = ["BASE_OPTIONS", "CudaBinary", "CudaCompileError", "compile_cuda"]

BASE_OPTIONS: tuple[str, ...] = (
    "--fmad=false",
    "-default-device",
    "--std=c++17",
    "--ptxas-options=-v",
    "-lineinfo",
)


@dataclass(frozen=True)
class CudaBinary:
    """The result of one NVRTC compile.

    Attributes:
        source: the CUDA C++ compiled.
        target: the architecture.
        options: every NVRTC option used, in order.
        ptx: the PTX text.
        cubin: the ELF binary the runtime loads.
        log: NVRTC's log (the ptxas report included).
        resources: the parsed ptxas report, per kernel name.
    """

    source: str
    target: CudaTarget
    options: tuple[str, ...]
    ptx: str
    cubin: bytes = field(repr=False)
    log: str
    resources: dict[str, KernelResources]

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """The entry functions in the binary, in the order ptxas reported them."""
        return tuple(self.resources)


def _changes_float_semantics(option: str) -> bool:
    """Whether ``option`` would make NVRTC compile C++ float arithmetic other than IEEE
    round-to-nearest without contraction or flush to zero, which the C++ statements of
    :mod:`tilevm.backend.cuda.cpp_intrinsics` rely on (the inline PTX would not change)."""
    key, _, value = option.lstrip("-").partition("=")
    return key == "use_fast_math" or (key in ("ftz", "fmad") and value not in ("false", "0"))


def _check_options(options: Sequence[str]) -> tuple[str, ...]:
    if isinstance(options, str):
        raise TypeError("options must be a sequence of strings, not one string")
    for option in options:
        if not isinstance(option, str):
            raise TypeError(f"options must be strings, got {option!r}")
        if option.startswith(("--gpu-architecture", "-arch")):
            raise ValueError(f"options must not choose the architecture ({option!r}): pass arch")
        if option.startswith(("-I", "--include-path")):
            raise ValueError(f"options must not add include paths ({option!r}): tilevm sources "
                             "are self-contained")
        if _changes_float_semantics(option):
            raise ValueError(f"options must not change float arithmetic ({option!r}): the "
                             "printed C++ relies on --fmad=false and IEEE rounding without "
                             "flush to zero")
    return tuple(options)


def _nvrtc_call(result: tuple, what: str) -> tuple:
    from cuda.bindings import nvrtc

    status, *values = result
    if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, message = nvrtc.nvrtcGetErrorString(status)
        raise RuntimeError(f"NVRTC {what} failed: {message.decode(errors='replace')}")
    return tuple(values)


def _nvrtc_bytes(prog: object, size_fn: object, get_fn: object, what: str) -> bytes:
    (size,) = _nvrtc_call(size_fn(prog), f"{what} size")
    # A buffer of its own: `b" " * 1` is Python's one shared b" ", which NVRTC would overwrite
    # (with the NUL of an empty string) for the whole process.
    buffer = bytearray(size)
    _nvrtc_call(get_fn(prog, buffer), what)
    return bytes(buffer)


def _text(raw: bytes) -> str:
    # NVRTC's strings are NUL-terminated; the sizes it reports include the terminator.
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _run_nvrtc(source: str, target: CudaTarget, options: tuple[str, ...],
               name: str) -> CudaBinary:
    from cuda.bindings import nvrtc

    (prog,) = _nvrtc_call(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []),
                          "nvrtcCreateProgram")
    try:
        encoded = [o.encode() for o in options]
        (status,) = nvrtc.nvrtcCompileProgram(prog, len(encoded), encoded)
        log = _text(_nvrtc_bytes(prog, nvrtc.nvrtcGetProgramLogSize, nvrtc.nvrtcGetProgramLog,
                                 "log"))
        if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            # ptxas errors leave the PTX in place; it maps them back to source lines.
            try:
                ptx = _text(_nvrtc_bytes(prog, nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX, "PTX"))
            except RuntimeError:
                ptx = ""
            raise CudaCompileError("NVRTC could not compile the CUDA source", arch=target.name,
                                   log=log, source=source, ptx=ptx)
        ptx = _text(_nvrtc_bytes(prog, nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX, "PTX"))
        cubin = _nvrtc_bytes(prog, nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN, "cubin")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return CudaBinary(source=source, target=target, options=options, ptx=ptx, cubin=cubin,
                      log=log, resources=parse_ptxas_report(log))


def compile_cuda(source: str, arch: str | int | CudaTarget, *, options: Sequence[str] = (),
                 name: str = "tilevm_kernel.cu",
                 cache_dir: str | Path | None = None) -> CudaBinary:
    """Compile self-contained CUDA C++ for ``arch`` (``"sm_80"``, ``"sm_86"``, ``"sm_89"``,
    ``"sm_90"``, ``"sm_90a"``) into PTX and a cubin.

    ``options`` are appended to :data:`BASE_OPTIONS` and the architecture option (they may not
    choose the architecture, add include paths, or change float arithmetic: no
    ``--use_fast_math``, ``--ftz=true``, ``--fmad=true``). ``name`` is the file name NVRTC
    reports in errors and line info. With ``cache_dir``, results are kept there, keyed by
    everything that can change them (source, target, options, NVRTC version), and a cached
    result is returned without compiling.

    Raises :class:`UnsupportedArchError` (a ``ValueError``) for an unknown architecture, and
    :class:`CudaCompileError` when NVRTC or ptxas rejects the source; its message holds the log
    and the source lines around each error, numbered.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str of CUDA C++, got {type(source).__name__}")
    target = cuda_target(arch)
    all_options = (*BASE_OPTIONS, target.nvrtc_option, *_check_options(options))
    if cache_dir is None:
        return _run_nvrtc(source, target, all_options, name)

    from tilevm.backend.cuda import nvrtc_cache

    key = nvrtc_cache.cache_key(source, target, all_options, name)
    cached = nvrtc_cache.load(Path(cache_dir), key, source, target)
    if cached is not None:
        return cached
    binary = _run_nvrtc(source, target, all_options, name)
    nvrtc_cache.store(Path(cache_dir), key, binary)
    return binary
