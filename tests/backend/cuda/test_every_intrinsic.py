"""Every Thread IR intrinsic prints and compiles: kernels that together use all of them, in every
form the printer spells differently, go through NVRTC and ptxas for every supported target."""

from __future__ import annotations

import pytest

from tilevm.backend.cuda import SUPPORTED_ARCHS, compile_cuda, cuda_target, emit_cuda
from tilevm.backend.cuda.cpp_intrinsics import prints_as_cpp
from tilevm.backend.cuda.ptx_intrinsics import PRINTERS, ptx_opcode
from tilevm.backend.cuda.sass import disassemble, sass_opcodes
from tilevm.ir.thread import INTRINSICS, Instr, walk
from tilevm.ir.thread.intrinsics.warp import MMA_FORMS

# Intrinsics that are register plumbing or addresses, not PTX instructions of their own.
NOT_PTX = {"pack", "extract", "shared_base", "local_base", "sreg"}


@pytest.fixture(scope="module", params=SUPPORTED_ARCHS)
def compiled(request, nvrtc_cache, programs):
    target = cuda_target(request.param)
    kernels = programs.every_intrinsic_kernels(target.sm)
    binary = compile_cuda(emit_cuda(kernels, target), target, cache_dir=nvrtc_cache)
    return target, kernels, binary


def _instructions(kernels):
    return [s for k in kernels for s in walk(k.body) if isinstance(s, Instr)]


def test_printer_has_a_rule_for_every_intrinsic():
    assert set(PRINTERS) == set(INTRINSICS)


def test_kernels_use_every_intrinsic(compiled):
    _, kernels, _ = compiled
    assert {s.op.name for s in _instructions(kernels)} == set(INTRINSICS)


def test_every_instruction_reaches_ptx(compiled):
    # NVVM deletes unused non-volatile asm; the kernels store every result so that each
    # instruction reaches ptxas, which then checked its syntax and types. Forms printed as C++
    # are NVVM's to spell (add.s32 for add.u32, or folded away): test_cpp_forms.py checks them.
    _, kernels, binary = compiled
    missing = {ptx_opcode(s) for s in _instructions(kernels)
               if s.op.name not in NOT_PTX and (s.type is None or s.type.kind != "pred")
               and not prints_as_cpp(s) and ptx_opcode(s) not in binary.ptx}
    assert not missing


def test_resources(compiled):
    _, kernels, binary = compiled
    for kernel in kernels:
        record = binary.resources[kernel.name]
        assert not record.spills, record
        if kernel.name == "debug_forms":
            # vprintf's argument buffer: 2 x 4 + 2 x 8 + 4 x 8 bytes, the 64-bit ones aligned
            assert 0 < record.stack_frame_bytes <= 64, record
            continue
        # Only the local buffer (local_bytes) may live on the stack.
        assert record.stack_frame_bytes == kernel.local_bytes, record


def test_fp8_mma_only_from_sm89(compiled):
    target, kernels, _ = compiled
    fp8 = [s for s in _instructions(kernels)
           if s.op.name == "mma.sync" and s.mod("atype") in ("e4m3", "e5m2")]
    assert len(fp8) == (4 if target.sm >= 89 else 0)   # e4m3/e5m2 for A and for B


def test_every_mma_form_reaches_ptx(compiled):
    target, _, binary = compiled
    for (shape, a, b, c), (sm, _) in MMA_FORMS.items():
        ptx = f"mma.sync.aligned.{shape}.row.col.{c}.{a}.{b}.{c}"
        assert (ptx in binary.ptx) == (sm <= target.sm), ptx


def test_sass_has_the_expected_instructions(compiled):
    target, kernels, binary = compiled
    ops = {name: set(counts) for name, counts in
           sass_opcodes(disassemble(binary.cubin)).items()}
    memory, warp, arith, debug = (ops[k.name] for k in kernels)
    assert {"LDGSTS", "LDGDEPBAR", "ATOMG", "ATOMS", "MEMBAR", "LDL", "STL", "STS"} <= memory
    assert {"RED", "REDG"} & memory
    assert {"BAR", "SHFL", "VOTE", "LDSM", "HMMA", "IMMA"} <= warp
    if target.sm == 89:
        assert "QMMA" in warp  # fp8 tensor cores of Ada
    if target.sm == 90:
        # no fp8 mma.sync instruction on Hopper: ptxas converts the operands to f16 (F2FP) and
        # runs HMMA (the Mma docstring)
        assert "QMMA" not in warp and "F2FP" in warp
    assert {"MUFU", "POPC", "PRMT", "LOP3", "SHF", "HFMA2", "DFMA", "F2F", "I2F"} <= arith
    assert {"FRND"} <= arith                             # cvt.rni.f32.f32 and its kin
    assert {"BPT", "CALL"} <= debug, debug               # trap; the vprintf system call
