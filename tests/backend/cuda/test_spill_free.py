"""A kernel that ptxas spills under its own occupancy aim is compiled again with the register
budget lifted, and tilevm.compile hands back the build without spills (ptxas's report is the
oracle); a spill the lifted budget cannot remove keeps the first build."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm.backend.cuda import compile_cuda, compile_cuda_without_spills
from tilevm.backend.cuda.spill_free import LIFTED_REGISTER_BUDGET, spilled_bytes

# 96 floats live at once under a 1024-thread bound (at most 64 registers per thread): ptxas
# spills them whatever budget the option asks for, since the bound is the smaller.
PRESSURE_UNDER_A_LARGE_BLOCK = """
extern "C" __global__ void __launch_bounds__(1024) spills_anyway(float* out) {
  float v[96];
#pragma unroll
  for (int i = 0; i < 96; ++i) v[i] = out[i * 1024 + threadIdx.x];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int i = 0; i < 96; ++i) v[i] = v[i] * v[(i + r + 1) % 96] + 1.0f;
  }
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 96; ++i) s += v[i];
  out[threadIdx.x] = s;
}
"""
CLEAN = """
extern "C" __global__ void __launch_bounds__(256) twice(float* out) { out[threadIdx.x] *= 2.0f; }
"""


@tv.kernel
def _three_sums(x: tv.Global[tv.i8, 64, 128], by_column: tv.Global[tv.i32, 128],
                by_row: tv.Global[tv.i32, 64], wrapped: tv.Global[tv.i8, 64]):
    """A 64 × 128 i8 tile in 128 threads' registers and three sums of it: ptxas 13.0 gives it 64
    registers and 16 bytes of spill on sm_90 under the block size alone (its occupancy aim; the
    same with --maxrregcount=255, which launch bounds override), none at one block per SM."""
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (64, 128))
    tv.store(by_column, tv.sum(t, 0), (0,))
    tv.store(by_row, tv.sum(t, 1, dtype=tv.i32), (0,))
    tv.store(wrapped, tv.sum(t, 1, dtype=tv.i8), (0,))


def test_a_kernel_spilled_under_ptxas_occupancy_aim_comes_back_without_spills(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))  # a build, then a hit
    args = (np.zeros((64, 128), np.int8), np.zeros(128, np.int32), np.zeros(64, np.int32),
            np.zeros(64, np.int8))  # the facts of a call (element offsets in i32)
    built = tv.compile(_three_sums, "sm_90", spec=args)
    plain = compile_cuda(built.cuda_source, "sm_90")
    assert spilled_bytes(plain) > 0, "the case this test is about: ptxas spills this build"
    assert built.resources.spills == 0 and built.resources.stack == 0
    assert built.binary.options[-1] == LIFTED_REGISTER_BUDGET
    assert built.resources.registers > plain.resources["_three_sums"].registers

    loaded = tv.compile(_three_sums, "sm_90", spec=args)
    assert loaded.binary.options == built.binary.options
    assert loaded.cubin == built.cubin and loaded.resources == built.resources


def test_a_spill_the_lifted_budget_cannot_remove_keeps_the_first_build():
    first = compile_cuda(PRESSURE_UNDER_A_LARGE_BLOCK, "sm_80")
    assert spilled_bytes(first) > 0
    kept = compile_cuda_without_spills(PRESSURE_UNDER_A_LARGE_BLOCK, "sm_80")
    assert spilled_bytes(kept) == spilled_bytes(first)
    assert kept.options == first.options and kept.cubin == first.cubin


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_a_build_without_spills_is_compiled_once(arch, monkeypatch):
    from tilevm.backend.cuda import spill_free

    options: list[tuple[str, ...]] = []

    def counted(source: str, target: object, **kwargs: object) -> object:
        options.append(tuple(kwargs.get("options", ())))
        return compile_cuda(source, target, **kwargs)

    monkeypatch.setattr(spill_free, "compile_cuda", counted)
    binary = compile_cuda_without_spills(CLEAN, arch)
    assert options == [()] and spilled_bytes(binary) == 0
