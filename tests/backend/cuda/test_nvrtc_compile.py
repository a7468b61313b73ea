"""compile_cuda on hand-written CUDA C++: options, targets, outputs, resources, errors, cache."""

from __future__ import annotations

import pytest

from tilevm.backend.cuda.nvrtc_compile import BASE_OPTIONS, CudaCompileError, compile_cuda
from tilevm.backend.cuda.sass import disassemble, sass_opcodes
from tilevm.backend.cuda.targets import SUPPORTED_ARCHS, UnsupportedArchError

# Two kernels in one compile: NVRTC time is per compile, not per kernel.
SOURCE = r"""
float scale(float a, float b, float c) { return a * b + c; }  // device code by -default-device

extern "C" __global__ void __launch_bounds__(256) staged(const float* x, float* y) {
  __shared__ float tile[256];
  tile[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  y[threadIdx.x] = scale(tile[threadIdx.x ^ 1], x[256], x[257]);
}

extern "C" __global__ void __launch_bounds__(32) copy_words(const unsigned* x, unsigned* y) {
  unsigned v;
  asm volatile("ld.global.nc.b32 %0, [%1];" : "=r"(v) : "l"(x + threadIdx.x) : "memory");
  y[threadIdx.x] = v;
}
"""


@pytest.fixture(scope="module", params=SUPPORTED_ARCHS)
def binary(request, nvrtc_cache):
    return compile_cuda(SOURCE, request.param, cache_dir=nvrtc_cache)


def test_options_are_the_design_s(binary):
    # DESIGN §7: exactly these options, the architecture last.
    assert binary.options == (
        "--fmad=false", "-default-device", "--std=c++17", "--ptxas-options=-v", "-lineinfo",
        f"--gpu-architecture={binary.target.name}")
    assert binary.options[: len(BASE_OPTIONS)] == BASE_OPTIONS


def test_outputs_are_for_the_target(binary):
    assert f".target {binary.target.name}" in binary.ptx
    assert binary.cubin[:4] == b"\x7fELF"
    assert set(binary.kernel_names) == {"staged", "copy_words"}
    listing = disassemble(binary.cubin)
    assert f"code for {binary.target.name}" in listing


def test_resource_record(binary):
    staged = binary.resources["staged"]
    assert staged.arch == binary.target.name
    assert staged.shared_bytes == 256 * 4  # the static tile: 256 floats
    assert staged.barriers == 1  # __syncthreads is barrier 0
    assert 0 < staged.registers <= 255
    assert staged.clean
    assert binary.resources["copy_words"].shared_bytes == 0


def test_no_contraction_in_sass(binary):
    # --fmad=false: a * b + c stays a multiply and an add.
    ops = sass_opcodes(disassemble(binary.cubin))["staged"]
    assert ops["FMUL"] == 1 and ops["FADD"] == 1 and ops["FFMA"] == 0


def test_inline_ptx_reaches_sass(binary):
    # ld.global.nc is the non-coherent (read-only) path: LDG with the .CONSTANT modifier.
    ops = sass_opcodes(disassemble(binary.cubin), with_modifiers=True)["copy_words"]
    assert any(op.startswith("LDG") and ".CONSTANT" in op for op in ops), ops


@pytest.mark.parametrize("arch", ["sm_75", "sm_100", "sm_90b", "compute_80", "", 8.0, None])
def test_unsupported_arch(arch):
    with pytest.raises(UnsupportedArchError) as info:
        compile_cuda(SOURCE, arch)
    message = str(info.value)
    assert repr(arch) in message or type(arch).__name__ in message
    if isinstance(arch, str):
        assert "sm_80" in message and "sm_90a" in message


def test_targets_are_nvrtc_s():
    from tilevm.backend.cuda.nvrtc_info import nvrtc_supported_archs, nvrtc_version
    from tilevm.backend.cuda.targets import cuda_target

    assert nvrtc_version() == "13.0.88"  # the pinned wheel
    supported = nvrtc_supported_archs()
    assert all(cuda_target(name).sm in supported for name in SUPPORTED_ARCHS)


def test_arch_spellings():
    from tilevm.backend.cuda.targets import cuda_target

    assert cuda_target(90).name == "sm_90"
    assert cuda_target("90a").name == "sm_90a"
    assert cuda_target("SM_86").compute_capability == (8, 6)
    assert cuda_target("sm_90a").arch_specific and not cuda_target("sm_90").arch_specific


def test_options_may_not_choose_arch_or_includes():
    with pytest.raises(ValueError, match="architecture"):
        compile_cuda(SOURCE, "sm_80", options=["--gpu-architecture=sm_75"])
    with pytest.raises(ValueError, match="include"):
        compile_cuda(SOURCE, "sm_80", options=["-I/usr/local/cuda/include"])
    with pytest.raises(TypeError, match="sequence"):
        compile_cuda(SOURCE, "sm_80", options="--use_fast_math")


@pytest.mark.parametrize("option", ["--use_fast_math", "-use_fast_math", "--ftz=true",
                                    "-ftz=true", "--fmad=true", "-fmad=true"])
def test_options_may_not_change_float_arithmetic(option):
    # The C++ statements emit_cuda prints for f32/f64 add, sub and mul are exact only under
    # IEEE rounding without contraction or flush to zero.
    with pytest.raises(ValueError, match="float arithmetic"):
        compile_cuda(SOURCE, "sm_80", options=[option])


FRONT_END_ERROR = """extern "C" __global__ void k(int* x) {
  int a = x[0];
  int b = a + undefined_name;
  x[1] = b;
  x[2] = a;
  x[3] = a;
  x[4] = a;
  x[5] = a;
}
"""


def test_front_end_error_shows_numbered_source():
    with pytest.raises(CudaCompileError) as info:
        compile_cuda(FRONT_END_ERROR, "sm_80")
    error = info.value
    assert error.lines == [3]
    message = str(error)
    assert "undefined_name" in message and "sm_80" in message
    shown = message.split("Generated source:")[1]
    assert "> 3 |   int b = a + undefined_name;" in shown
    assert "  2 |   int a = x[0];" in shown  # context above …
    assert "  6 |   x[3] = a;" in shown  # … and below (3 lines each side)
    assert "x[4]" not in shown  # but not the whole file


PTXAS_ERROR = """extern "C" __global__ void k(unsigned* x) {
  unsigned v = x[0];
  unsigned w;
  asm volatile("not.a.ptx.instruction.b32 %0, %1;" : "=r"(w) : "r"(v));
  x[1] = w;
}
"""


def test_ptxas_error_maps_to_the_source_line():
    with pytest.raises(CudaCompileError) as info:
        compile_cuda(PTXAS_ERROR, "sm_90")
    error = info.value
    assert error.lines == [4]
    message = str(error)
    assert "ptxas" in message
    assert '> 4 |   asm volatile("not.a.ptx.instruction.b32' in message
    # The PTX the inline asm became is shown too, with its registers substituted.
    assert "not.a.ptx.instruction.b32 %r" in message


def test_cache_returns_the_same_binary_without_compiling(nvrtc_cache, monkeypatch):
    from tilevm.backend.cuda import nvrtc_compile

    source = SOURCE + "\n// cache test\n"
    first = compile_cuda(source, "sm_86", cache_dir=nvrtc_cache)

    def fail(*args, **kwargs):
        raise AssertionError("NVRTC ran although the result was cached")

    monkeypatch.setattr(nvrtc_compile, "_run_nvrtc", fail)
    second = compile_cuda(source, "sm_86", cache_dir=nvrtc_cache)
    assert (second.cubin, second.ptx, second.log, second.resources, second.options) == (
        first.cubin, first.ptx, first.log, first.resources, first.options)


def test_cache_key_separates_options_and_archs(nvrtc_cache):
    source = SOURCE + "\n// key test\n"
    a = compile_cuda(source, "sm_80", cache_dir=nvrtc_cache)
    b = compile_cuda(source, "sm_89", cache_dir=nvrtc_cache)
    c = compile_cuda(source, "sm_80", options=["--maxrregcount=32"], cache_dir=nvrtc_cache)
    assert ".target sm_80" in a.ptx and ".target sm_89" in b.ptx
    assert c.options[-1] == "--maxrregcount=32"


def test_corrupt_cache_entry_is_rebuilt_with_a_warning(tmp_path):
    source = SOURCE + "\n// corrupt test\n"
    first = compile_cuda(source, "sm_80", cache_dir=tmp_path)
    (cubin_file,) = (tmp_path / "nvrtc").glob("*.cubin")
    cubin_file.write_bytes(b"\x7fELF garbage")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = compile_cuda(source, "sm_80", cache_dir=tmp_path)
    assert again.cubin == first.cubin
    assert compile_cuda(source, "sm_80", cache_dir=tmp_path).cubin == first.cubin  # repaired


def test_context_of_distant_errors_is_cut_with_gaps():
    from tilevm.backend.cuda.compile_errors import source_context

    text = "\n".join(f"line {k}" for k in range(1, 31))
    shown = source_context(text, [5, 25], context=1).splitlines()
    assert shown == ["   4 | line 4", ">  5 | line 5", "   6 | line 6", "     ...",
                     "  24 | line 24", "> 25 | line 25", "  26 | line 26"]


def test_a_failed_compile_leaves_python_s_shared_bytes_alone():
    # NVRTC writes into the buffers it is given; an empty PTX once overwrote Python's shared
    # one-byte b" " with a NUL for the whole process.
    with pytest.raises(CudaCompileError):
        compile_cuda("this is not C++", "sm_80")
    space = bytes([32])
    assert bytes(" ", "ascii") == space
    assert space == b" " * 1
