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
    # The shared example: a rolled block-uniform loop (#pragma unroll 1) with one 16-byte
    # cp.async.cg per thread and iteration, a wait, two barriers, one 16-byte copy back.
    ops = sass["tiled_copy"]
    assert _count(ops, "LDGSTS") == 1
    assert all(".128" in op for op in ops if op.startswith("LDGSTS"))
    assert _count(ops, "LDS.128") == 1 and _count(ops, "STG.E.128") == 1
    assert _count(ops, "BAR.SYNC") == 2
    assert _count(ops, "DEPBAR") >= 1  # cp.async.wait_group
    # The unrolled variant: 64 rows x 128 bytes = 512 chunks over 128 threads, 4 of each.
    ops = sass["tiled_copy_unrolled"]
    assert _count(ops, "LDGSTS") == 4
    assert _count(ops, "LDS.128") == 4 and _count(ops, "STG.E.128") == 4
    assert _count(ops, "BAR.SYNC") == 1


def test_warp_reduce_uses_butterfly_shuffles(compiled):
    _, _, sass = compiled
    ops = sass["warp_reduce"]
    assert _count(ops, "SHFL.BFLY") == 5  # distances 16, 8, 4, 2, 1
    assert _count(ops, "FADD") == 5 and _count(ops, "FFMA") == 0  # no contraction


@pytest.mark.parametrize("atype", ["f16", "bf16"])
def test_mma_tile_uses_tensor_cores(compiled, atype):
    _, _, sass = compiled
    hmma = "HMMA.16816.F32" + (".BF16" if atype == "bf16" else "")
    ops = sass[f"mma_tile_{atype}"]  # the shared example: ldmatrix x4 for A, x2.trans for B
    assert ops[hmma] == 1 and _count(ops, "HMMA") == 1
    assert ops["LDSM.16.M88.4"] == 1 and ops["LDSM.16.MT88.2"] == 1
    ops = sass[f"mma_tile_async_{atype}"]  # the variant: cp.async staging, B column-major
    assert ops[hmma] == 1 and _count(ops, "HMMA") == 1
    assert ops["LDSM.16.M88.4"] == 1 and ops["LDSM.16.M88.2"] == 1
    assert _count(ops, "LDGSTS") == 2


def test_source_shape(compiled):
    kernels, binary, _ = compiled
    source = binary.source
    assert "#include" not in source and "template" not in source
    for kernel in kernels:
        assert (f'extern "C" __global__ void __launch_bounds__({kernel.block_threads} '
                f"TILEVM_MIN_BLOCKS) {kernel.name}(") in source
    assert source.count('extern "C" __global__') == len(kernels)
    assert "#pragma unroll\n" in source and "#pragma unroll 1\n" in source
    assert "extern __shared__ __align__(128) unsigned char tilevm_smem[];" in source
