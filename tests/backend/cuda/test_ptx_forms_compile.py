"""The instruction forms the Thread IR accepts, where ptxas once refused what the printer made of
them, compile through NVRTC: every ``atom``/``red`` operation with each of its types (PTX ISA,
"Parallel Synchronization and Communication Instructions: atom"/"red"), ``mov`` of 8-bit registers
(PTX has no ``mov.b8``), ``ld.global.nc`` with each cache operator it takes, and the ``cvt``
forms around bf16 and ``.satfinite`` ("Data Movement and Conversion Instructions: cvt"). The
rejected forms are in ``tests/ir/thread/test_thread_ir_ptx_forms.py``. Two compiles (sm_80,
sm_90)."""

from __future__ import annotations

import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.ir.thread import F32, U32, U64, KernelBuilder, Reg, scalar_type
from tilevm.ir.thread.intrinsics.memory import ATOM_TYPES


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
