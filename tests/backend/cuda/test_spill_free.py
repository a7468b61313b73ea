"""A kernel that ptxas spills under its own occupancy aim is compiled again with the register
budget lifted, and tilevm.compile hands back the build without spills (ptxas's report is the
oracle); a spill the lifted budget cannot remove keeps the first build."""

from __future__ import annotations

import pytest

import tilevm as tv
from tilevm.backend.cuda import compile_cuda, compile_cuda_without_spills
from tilevm.backend.cuda.spill_free import LIFTED_REGISTER_BUDGET, spilled_bytes
from tilevm.kernels import quant_linear as dense

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


def _dense_u3_tile() -> tuple[object, dict]:
    """The dense u3 prefill kernel with a 64 × 64 tile over 8 warps and 3 stages, for 256 rows
    of 4096 × 4096 (a tile of its tuning space that ptxas 13.0 spills on sm_80 with the base
    options: bench/results/quant_linear_resources.json lists the tiles that need the lifted
    budget)."""
    x = tv.HostTensor.empty((256, 4096), tv.f16)
    w = tv.HostTensor.empty((4096, 4096), tv.u3)
    scales = tv.HostTensor.empty((4096, 4096 // 128), tv.f16)
    y = tv.HostTensor.empty((256, 4096), tv.f16)
    args, constants = dense.quant_linear_call(x, w, scales, y, group_size=128, bm=64, bn=64,
                                              bk=32, warps=8)
    return args, dict(constants, A=tv.f16, W=tv.u3, S=tv.f16, stages=3)


def test_a_kernel_spilled_under_ptxas_occupancy_aim_comes_back_without_spills(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))  # a build, then a hit
    args, constants = _dense_u3_tile()
    built = tv.compile(dense.quant_linear_prefill, "sm_80", spec=args, **constants)
    plain = compile_cuda(built.cuda_source, "sm_80")
    assert spilled_bytes(plain) > 0, "the case this test is about: ptxas spills this build"
    assert built.resources.spills == 0 and built.resources.stack == 0
    assert LIFTED_REGISTER_BUDGET in built.binary.options

    loaded = tv.compile(dense.quant_linear_prefill, "sm_80", spec=args, **constants)
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
