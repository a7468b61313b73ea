"""The instruction forms the Thread IR accepts, where ptxas once refused what the printer made of
them, compile through NVRTC: every ``atom``/``red`` operation with each of its types (PTX ISA,
"Parallel Synchronization and Communication Instructions: atom"/"red"), ``mov`` of 8-bit registers
(PTX has no ``mov.b8``), ``ld.global.nc`` with each cache operator it takes, and the ``cvt``
forms around bf16 and ``.satfinite`` ("Data Movement and Conversion Instructions: cvt"). The
rejected forms are in ``tests/ir/thread/test_thread_ir_ptx_forms.py``. Two compiles (sm_80,
sm_90). The tensor-core forms (every ``mma.sync`` of ``MMA_FORMS``, ``cvt`` to tf32 and the fp8
pairs; "Warp Level Matrix Multiply-Accumulate Instructions: mma") compile for sm_80 and, with
the fp8 ones, for sm_89 and sm_90; sm_80 refuses the fp8 ones naming sm_89 (three compiles)."""

from __future__ import annotations

import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.ir.thread import (
    B16,
    B32,
    F32,
    S32,
    U32,
    U64,
    KernelBuilder,
    Reg,
    ThreadIRError,
    scalar_type,
    vector,
)
from tilevm.ir.thread.intrinsics.memory import ATOM_TYPES
from tilevm.ir.thread.intrinsics.warp import MMA_FORMS


def _forms(sm: int):
    kb = KernelBuilder("forms", block_threads=32, shared_bytes=64)
    out = kb.param("out", U64, pointer=True)
    n = kb.param("n", U32)
    x = kb.param("x", F32)
    smem = kb.shared_base()

    def keep(v: Reg) -> None:
        kb.st("global", out, v)

    for op, types in ATOM_TYPES.items():
        for tname in types:
            t = scalar_type(tname)
            if t.is_float:
                v = kb.cvt(n, t, rnd="rn")
            else:
                v = kb.mov(kb.cvt(n, t.name.replace("b", "u")), t)
            for space, addr in (("global", out), ("shared", smem)):
                keep(kb.atom(space, op, addr, *((v, v) if op == "cas" else (v,)), type=t))
                if op not in ("cas", "exch"):
                    kb.red(space, op, addr, v, type=t)
    for cache in ("ca", "cg", "cs"):
        keep(kb.ld("global", out, U32, nc=True, cache=cache))
    u8 = kb.cvt(n, "u8")
    keep(kb.mov(u8, "s8"))
    for d in ("f16", "bf16"):
        for rnd in ("rn", "rz"):
            keep(kb.cvt(x, d, rnd=rnd, sat="satfinite"))
    if sm >= 90:
        h = kb.cvt(x, "f16", rnd="rn")
        b = kb.cvt(h, "bf16", rnd="rn")
        keep(kb.cvt(b, "f16", rnd="rz"))
        d = kb.cvt(b, "f64")
        keep(kb.cvt(d, "bf16", rnd="rn"))
        keep(kb.cvt(kb.cvt(n, "s16"), "bf16", rnd="rn"))
        keep(kb.cvt(b, "s32", rnd="rni"))
    return kb.finish()


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_accepted_forms_compile(arch: str, nvrtc_cache) -> None:
    kernel = _forms(int(arch[3:]))
    binary = compile_cuda(emit_cuda(kernel, arch), arch, cache_dir=nvrtc_cache)
    for text in ("atom.global.add.u64", "atom.shared.cas.b64", "red.global.max.s64",
                 "atom.global.exch.b32", "red.shared.add.f32", "atom.global.inc.u32",
                 "cvt.rz.satfinite.bf16.f32", "ld.global.nc.cs.u32"):
        assert text in binary.ptx, text
    if arch == "sm_90":
        assert "cvt.rn.bf16.f64" in binary.ptx and "cvt.rn.bf16.f16" in binary.ptx


def _tensor_core_forms(sm: int, with_fp8: bool):
    kb = KernelBuilder("tensor_core_forms", block_threads=32)
    src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    at = kb.add(src, kb.mul(lane, 16, mode="wide"))
    a, b = kb.ld("global", at, vector(B32, 4)), kb.ld("global", at, vector(B32, 2), offset=16)
    accs = {"f32": kb.ld("global", at, vector(F32, 4), offset=32),
            "s32": kb.ld("global", at, vector(S32, 4), offset=48),
            "f16": kb.ld("global", at, vector(B32, 2), offset=64)}
    x = kb.ld("global", at, F32, offset=72)
    slot = 0

    def keep(v: Reg) -> None:
        nonlocal slot
        kb.st("global", out, v, offset=16 * slot)
        slot += 1

    for (shape, atype, btype, ctype), (need, _) in MMA_FORMS.items():
        if need <= 80 or with_fp8:
            keep(kb.mma(shape, atype, a, b, accs[ctype], btype=btype, ctype=ctype))
    keep(kb.cvt_tf32(x))
    keep(kb.cvt_tf32(x, satfinite=True))
    if with_fp8:
        for fmt in ("e4m3", "e5m2"):
            keep(kb.mov(kb.cvt_fp8x2(x, kb.mul(x, 3.0), fmt), B16))
            keep(kb.cvt_f16x2_fp8x2(kb.ld("global", at, B16, offset=76), fmt))
    return kb.finish()


@pytest.mark.parametrize("arch", ["sm_80", "sm_89", "sm_90"])
def test_tensor_core_forms_compile(arch: str, nvrtc_cache) -> None:
    sm = int(arch[3:])
    kernel = _tensor_core_forms(sm, with_fp8=sm >= 89)
    binary = compile_cuda(emit_cuda(kernel, arch), arch, cache_dir=nvrtc_cache)
    for (shape, atype, btype, ctype), (need, _) in MMA_FORMS.items():
        ptx = f"mma.sync.aligned.{shape}.row.col.{ctype}.{atype}.{btype}.{ctype}"
        assert (ptx in binary.ptx) == (need <= sm), ptx
    assert "cvt.rna.tf32.f32" in binary.ptx and "cvt.rna.satfinite.tf32.f32" in binary.ptx
    fp8 = ("cvt.rn.satfinite.e4m3x2.f32", "cvt.rn.satfinite.e5m2x2.f32", "cvt.rn.f16x2.e4m3x2",
           "cvt.rn.f16x2.e5m2x2")
    assert all((text in binary.ptx) == (sm >= 89) for text in fp8)
    if sm == 80:
        with pytest.raises(ThreadIRError, match=r"needs sm_89 or later; the target is sm_80"):
            emit_cuda(_tensor_core_forms(sm, with_fp8=True), arch)
