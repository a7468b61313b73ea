"""``trap`` and ``vprintf`` on the CPU backend. ``trap`` (PTX ISA 9.1 §9.7.19.4: "Abort execution")
stops the kernel with an error naming the instruction and the user's line, only where a lane
executes it; ``vprintf`` prints, for each executing lane in lane order (warps in their order, one
block after another with one host thread), what C's printf prints for that lane's values — the
oracle is Python's ``%`` formatting, which follows C's for these conversions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import F64, S32, S64, U32, U64, KernelBuilder


def test_trap_stops_the_kernel_naming_the_instruction_and_line() -> None:
    kb = KernelBuilder("checked", block_threads=64)
    out, limit = kb.param("out", U64, pointer=True), kb.param("limit", U32)
    tid = kb.sreg("tid.x")
    kb.loc = "kernels.py:42"
    kb.trap(guard=kb.setp("ge", tid, limit))
    kb.loc = None
    kb.st("global", kb.add(out, kb.mul(tid, 4, mode="wide")), tid)
    run = compile_kernel(kb.finish())
    got = np.zeros(64, np.uint32)
    run(1, got, 64)                                  # no thread traps: the kernel runs through
    assert got.tolist() == list(range(64))
    with pytest.raises(CpuKernelError, match=r"kernel checked: trap executed \(PTX trap: abort "
                       r"the kernel\): `@%r\d+ trap` \(kernels\.py:42\) — block 0, warp 1, "
                       r"active mask 0xffffffff, trapping lanes 0xfffffffe"):
        run(1, got, 33)                              # threads 33.. trap: warp 1, lanes 1..31


def test_trap_inside_divergent_code_traps_only_when_reached() -> None:
    kb = KernelBuilder("branchy", block_threads=32)
    flag = kb.param("flag", U32)
    lane = kb.sreg("laneid")
    with kb.if_(kb.setp("eq", lane, flag)):
        kb.trap()
    run = compile_kernel(kb.finish())
    run(1, 32)                                       # no lane equals 32
    with pytest.raises(CpuKernelError, match=r"active mask 0x00000080, trapping lanes 0x00000080"):
        run(1, 7)


def test_vprintf_prints_each_lane_in_order(capfd) -> None:
    fmt = "b%u t%d %x %lld %llu |%8.3f| %g %e %c 100%%\n"
    kb = KernelBuilder("printer", block_threads=64)
    x = kb.param("x", F64)
    tid, cta = kb.sreg("tid.x"), kb.sreg("ctaid.x")
    signed = kb.sub(kb.mov(tid, S32), 40)            # negative for most threads
    big = kb.mul(kb.cvt(signed, S64), 1 << 40)
    val = kb.fma(kb.cvt(tid, F64, rnd="rn"), x, -3.0)
    some = kb.setp("eq", kb.and_(tid, 21, type="b32"), 0, type="b32")   # lanes 0, 2, 8, 10, 32…
    kb.vprintf(fmt, cta, signed, kb.mul(tid, 0x1001), big, kb.mov(big, U64), val, val, val,
               kb.add(tid, 64), guard=some)
    kb.vprintf("done %u\n", cta, guard=kb.setp("eq", tid, 63))
    run = compile_kernel(kb.finish())
    capfd.readouterr()
    run(2, 0.1, threads=1)
    printed = capfd.readouterr().out
    want = []
    for block in range(2):
        for t in range(64):
            if t & 21 == 0:
                s = t - 40
                b = s * (1 << 40)
                v = float(Fraction(t) * Fraction(0.1) - 3)     # fma: one rounding
                # Python's % has no length modifiers; C reads the 32-bit %x as unsigned
                want.append(fmt.replace("ll", "") % (block, s, t * 0x1001, b, b % (1 << 64), v,
                                                     v, v, chr(t + 64)))
        want.append(f"done {block}\n")
    assert printed == "".join(want)


def test_vprintf_escapes_and_no_arguments(capfd) -> None:
    text = 'quote " backslash \\ tab\t%% é ??= end\n'
    kb = KernelBuilder("plain", block_threads=32)
    kb.vprintf(text, guard=kb.setp("eq", kb.sreg("laneid"), 3))
    run = compile_kernel(kb.finish())
    capfd.readouterr()
    run(1)
    assert capfd.readouterr().out == text.replace("%%", "%")
