"""Thread IR construction and its text dump: the builder makes typed, checked instructions; the
dump shows every type, modifier and nesting level, is deterministic, and differs whenever the
program does (it keys the CPU JIT cache)."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.ir.thread import (
    B32,
    F16,
    F32,
    S32,
    U32,
    U64,
    Const,
    KernelBuilder,
    ThreadIRError,
    dump,
    examples,
    vector,
)


def small_kernel(step: int = 1) -> str:
    kb = KernelBuilder("k", block_threads=64, shared_bytes=128)
    x = kb.param("x", U64, pointer=True)
    n = kb.param("n", U32)
    tid = kb.sreg("tid.x")
    acc = kb.array(F32, 2, "acc")
    with kb.for_(0, 2, unroll=True) as i:
        kb.mov(0.5, F32, out=acc[i])
    with kb.if_(kb.setp("lt", tid, n)):
        v = kb.ld("global", kb.add(x, kb.mul(tid, 4, mode="wide")), F32, nc=True)
        kb.add(acc[1], v, out=acc[1])
    with kb.else_():
        kb.bar_warp_sync()
    with kb.for_(0, kb.mov(n, S32), step=step, uniform=True, name="j") as j:
        kb.bar_sync()
        kb.add(j, 1)
    return dump(kb.finish())


def test_dump_shows_types_modifiers_and_structure() -> None:
    text = small_kernel()
    lines = text.splitlines()
    assert lines[0] == "kernel k(%x: u64 ptr, %n: u32) threads=64 shared=128 local=0 {"
    assert "  array %acc: f32[2]" in lines
    assert "  for %i: s32 = 0 to 2 step 1 unroll {" in lines
    assert "    %acc[%i]: f32 = mov.b32 0x3f000000:f32" in lines
    assert any(line.startswith("    %r") and "= ld.global.nc.f32 %r" in line and "nc=true"
               in line for line in lines)
    assert "    %acc[1]: f32 = add.rn.f32 %acc[1], %r" in "\n".join(lines)
    assert "  } else {" in lines
    assert any("setp.lo.u32" in line and "cmp=lt" in line for line in lines)
    assert any(line.startswith("  for %j: s32 = 0 to %r") and line.endswith("uniform {")
               for line in lines)
    assert "    bar.sync" in lines
    assert lines[-1] == "}"


def test_dump_is_deterministic_and_distinguishes_programs() -> None:
    assert small_kernel() == small_kernel()
    assert small_kernel(step=1) != small_kernel(step=2)
    assert dump(examples.mma_tile("f16")) != dump(examples.mma_tile("bf16"))


def test_constants_are_exact_bit_patterns() -> None:
    assert Const.of(1.0, F16).bits == 0x3C00
    assert Const.of(0.1, F32).bits == int(np.array(0.1, np.float32).view(np.uint32))
    assert Const.of(-1, S32).bits == 0xFFFFFFFF and Const.of(-1, S32).value == -1
    assert str(Const.of(-3, S32)) == "-3:s32"
    assert str(Const.of(1.0, F16)) == "0x3c00:f16"


def test_builder_checks_each_instruction() -> None:
    kb = KernelBuilder("bad", block_threads=32)
    x = kb.param("x", U64, pointer=True)
    with pytest.raises(ThreadIRError, match=r"cp\.async.*cannot copy 8 bytes"):
        kb.cp_async(kb.mov(0, U32), x, 8, cache="cg")
    with pytest.raises(ThreadIRError, match=r"ld: .*address"):
        kb.ld("shared", x, U32)                      # shared addresses are u32
    with pytest.raises(ThreadIRError, match=r"lut must be 0\.\.255"):
        kb.lop3(1, 2, 3, 256)
    with pytest.raises(ThreadIRError, match=r"mma\.sync: operand 1"):
        kb.mma("m16n8k16", "f16", kb.pack([kb.mov(0, B32)] * 4), kb.pack([kb.mov(0, B32)] * 4),
               kb.pack([0.0] * 4, F32))
    with pytest.raises(ValueError, match="exceeds 128 bits"):
        vector(U64, 4)


def test_kernel_registers_lists_each_register_once() -> None:
    k = examples.warp_reduce()
    regs = k.registers()
    assert len({id(r) for r in regs}) == len(regs)
    assert [r.name for r in regs[:2]] == ["x", "out"]


def test_origin_is_stamped_into_every_statement_and_kept_out_of_the_dump() -> None:
    def build(origin: int | None) -> tuple[str, list]:
        kb = KernelBuilder("origins", block_threads=32)
        n = kb.param("n", S32)
        kb.origin = origin
        kb.loc = "prog.py:3"
        p = kb.setp("lt", kb.sreg("laneid"), 4)
        with kb.if_(p):
            kb.add(n, 1)
        with kb.for_(0, n) as i:
            kb.add(i, 2)
        kernel = kb.finish()
        from tilevm.ir.thread import walk

        return dump(kernel), list(walk(kernel.body))

    text7, stmts = build(7)
    assert [s.origin for s in stmts] == [7] * len(stmts) and len(stmts) == 6
    assert all(s.loc == "prog.py:3" for s in stmts)
    text_none, stmts_none = build(None)
    assert all(s.origin is None for s in stmts_none)
    assert text7 == text_none                    # the dump (the JIT cache key) ignores origin


def test_while_dump_shows_both_bodies_the_test_and_uniformity() -> None:
    def build(uniform: bool, cond_first: bool) -> str:
        kb = KernelBuilder("w", block_threads=32)
        n = kb.param("n", S32)
        i = kb.reg(S32, "i")
        with kb.while_(uniform=uniform) as loop:
            if cond_first:
                loop.cond(kb.setp("lt", i, n))
                kb.add(i, 1, out=i)
            else:
                kb.add(i, 1, out=i)
                loop.cond(kb.setp("lt", i, n))
        return dump(kb.finish())

    text = build(True, True)
    assert ("  while uniform {\n    %r0: pred = setp.lt.s32 %i, %n {cmp=lt}\n    if !%r0 break\n"
            "    %i: s32 = add.s32 %i, 1:s32\n  }\n") in text
    assert "  while {\n" in build(False, True)
    # the test's place and the loop's uniformity change the program, so the dump
    assert len({build(u, c) for u in (True, False) for c in (True, False)}) == 4
