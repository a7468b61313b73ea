"""The issue's hand-written Thread IR programs compile through NVRTC for sm_80 and sm_90 with no
spills and no stack frame, and ptxas turns their intrinsics into the expected SASS."""

from __future__ import annotations

import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.backend.cuda.sass import disassemble, sass_opcodes


@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def compiled(request, nvrtc_cache, programs):
    kernels = programs.issue_programs()
    source = emit_cuda(kernels, request.param)
    binary = compile_cuda(source, request.param, cache_dir=nvrtc_cache)
    sass = sass_opcodes(disassemble(binary.cubin), with_modifiers=True)
    return kernels, binary, sass


def _count(ops, prefix: str) -> int:
    return sum(n for op, n in ops.items() if op.startswith(prefix))


def test_every_kernel_compiles_clean(compiled):
    kernels, binary, _ = compiled
    assert set(binary.resources) == {k.name for k in kernels}
    for name, record in binary.resources.items():
        assert record.spill_store_bytes == 0 and record.spill_load_bytes == 0, (name, record)
        assert record.stack_frame_bytes == 0, (name, record)
        assert record.registers <= 255


def test_tiled_copy_uses_async_copies(compiled):
    _, _, sass = compiled
    ops = sass["tiled_copy"]
    # 64 rows x 128 bytes = 512 chunks of 16 bytes over 128 threads: 4 cp.async per thread
    # (the unrolled loop), each one LDGSTS of 128 bits, then 4 LDS.128 and 4 STG.E.128.
    assert _count(ops, "LDGSTS") == 4
    assert all(".128" in op for op in ops if op.startswith("LDGSTS"))
    assert _count(ops, "LDS.128") == 4 and _count(ops, "STG.E.128") == 4
    assert _count(ops, "BAR.SYNC") == 1
    assert _count(ops, "DEPBAR") >= 1  # cp.async.wait_group


def test_warp_reduce_uses_butterfly_shuffles(compiled):
    _, _, sass = compiled
    ops = sass["warp_reduce"]
    assert _count(ops, "SHFL.BFLY") == 5  # distances 16, 8, 4, 2, 1
    assert _count(ops, "FADD") == 5 and _count(ops, "FFMA") == 0  # no contraction


@pytest.mark.parametrize(("name", "hmma"), [("mma_tile_f16", "HMMA.16816.F32"),
                                            ("mma_tile_bf16", "HMMA.16816.F32.BF16")])
def test_mma_tile_uses_tensor_cores(compiled, name, hmma):
    _, _, sass = compiled
    ops = sass[name]
    assert ops[hmma] == 1
    assert _count(ops, "HMMA") == 1
    assert ops["LDSM.16.M88.4"] == 1 and ops["LDSM.16.M88.2"] == 1  # A x4, B x2
    assert _count(ops, "LDGSTS") == 2


def test_source_shape(compiled):
    kernels, binary, _ = compiled
    source = binary.source
    assert "#include" not in source and "template" not in source
    for kernel in kernels:
        assert (f'extern "C" __global__ void __launch_bounds__({kernel.block_threads}) '
                f"{kernel.name}(") in source
    assert source.count('extern "C" __global__') == len(kernels)
    assert "#pragma unroll\n" in source  # the unrolled loops of the tiled copy
    assert "extern __shared__ __align__(128) unsigned char tilevm_smem[];" in source
