"""LLVM emission of the instructions that stop or report: ``trap`` (the kernel stops with an
error naming the instruction) and ``vprintf`` (the C library's ``printf``, lane by lane)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir

from tilevm.backend.cpu.lanes import I8, I32, PTR
from tilevm.backend.cpu.memory_ops import for_each_lane
from tilevm.ir.thread.stmts import Instr

__all__ = ["DEBUG_OPS", "TRAP_ERROR"]

DEBUG_OPS: dict[str, Callable[[Any, Instr], None]] = {}

TRAP_ERROR = 9
"""The error code (``codegen.ERRORS``) of an executed ``trap``."""


def _op(name: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        DEBUG_OPS[name] = fn
        return fn
    return deco


def _function(cg: Any, name: str, ret: ir.Type, args: list[ir.Type], var_arg: bool = False
              ) -> ir.Function:
    fn = cg.m.globals.get(name)
    if fn is None:
        fn = ir.Function(cg.m, ir.FunctionType(ret, args, var_arg=var_arg), name=name)
    return fn


@_op("trap")
def _trap(cg: Any, s: Instr) -> None:
    # PTX trap aborts the kernel: it stops here if any lane executes it (guard and active mask);
    # the error's detail is the lanes that did
    trapping = cg.active()
    cg.check(cg.b.not_(cg.L.any(trapping)), TRAP_ERROR, s, cg.L.bits(trapping))


@_op("vprintf")
def _vprintf(cg: Any, s: Instr) -> None:
    """Each executing lane, in lane order, calls ``printf(format, values...)`` (C varargs: 32-bit
    integers as ``int``, 64-bit ones as ``long long``, ``f64`` as ``double``, which the verifier
    matched to the conversions); then ``fflush(NULL)``, so that the output reaches the file
    descriptor before the kernel returns (pytest's ``capfd`` reads it there)."""
    b = cg.b
    data = bytearray(s.mod("format").encode("utf-8") + b"\0")
    text_t = ir.ArrayType(I8, len(data))
    fmt = ir.GlobalVariable(cg.m, text_t, cg.m.get_unique_name("tv_format"))
    fmt.global_constant = True
    fmt.linkage = "private"
    fmt.unnamed_addr = True
    fmt.initializer = ir.Constant(text_t, data)
    printf = _function(cg, "printf", I32, [PTR], var_arg=True)
    fflush = _function(cg, "fflush", I32, [PTR])
    values = [cg.read(a) for a in s.args]

    def one(lane: ir.Value) -> None:
        b.call(printf, [fmt, *(b.extract_element(v, lane) for v in values)])

    for_each_lane(cg, cg.active(), one)
    b.call(fflush, [ir.Constant(PTR, None)])
