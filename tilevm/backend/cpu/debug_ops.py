"""LLVM emission of the instructions that stop or report: ``trap`` (the kernel stops with an
error naming the instruction) and ``vprintf`` (the C library's ``snprintf``, lane by lane, to file
descriptor 1 or to a sink that collects each block's text), and :func:`prints_in_block_order`,
which a launch wraps around the blocks' run to emit their text after it, in block order."""

from __future__ import annotations

import ctypes
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from llvmlite import ir

from tilevm.backend.cpu.lanes import I8, I32, I64, PTR
from tilevm.backend.cpu.memory_ops import for_each_lane
from tilevm.ir.thread.stmts import Instr

__all__ = ["DEBUG_OPS", "PRINT_SINK", "SINK_SYMBOL", "TRAP_ERROR", "prints_in_block_order"]

DEBUG_OPS: dict[str, Callable[[Any, Instr], None]] = {}

TRAP_ERROR = 10
"""The error code (``codegen.ERRORS``) of an executed ``trap`` (9 is the sanitizer's report,
``sanitizer_ir.SANITIZER_ERROR``)."""


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


SINK_SYMBOL = "tv_print_sink"
"""The module global (a function pointer, null by default) through which a kernel's ``vprintf``
output can be collected: ``void sink(int32 block, const char *text, int64 length)``, called with
the linear block number (x fastest) and each piece of text. While it is null, the text goes
straight to file descriptor 1."""

PRINT_SINK = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64)
"""The ctypes type of a sink (:data:`SINK_SYMBOL`)."""

# Launches that collect prints take turns: the sink is one global per loaded kernel.
_SINK_LOCK = threading.RLock()


def _text_bound(fmt: str) -> int:
    """An upper bound on the bytes ``printf(fmt, ...)`` writes (without the NUL): the format's
    literal text, and per conversion its width and precision plus what a 64-bit integer (20
    digits and a sign) or a double (``%f`` of 1e308: 309 digits) can need."""
    total = len(fmt.encode("utf-8"))
    for m in re.finditer(r"%([-+ #0]*)(\d*)(?:\.(\d*))?(hh|h|ll|l|)([diuxXocfFeEgGaA%])", fmt):
        width, precision, conv = int(m.group(2) or 0), int(m.group(3) or 0), m.group(5)
        body = 330 if conv in "fF" else 40
        total += width + precision + body
    return total


_SINK_T = ir.FunctionType(ir.VoidType(), [I32, PTR, I64])


def _sink(cg: Any) -> ir.GlobalVariable:
    sink = cg.m.globals.get(SINK_SYMBOL)
    if sink is None:
        sink = ir.GlobalVariable(cg.m, _SINK_T.as_pointer(), SINK_SYMBOL)
        sink.initializer = ir.Constant(_SINK_T.as_pointer(), None)
    return sink


@_op("vprintf")
def _vprintf(cg: Any, s: Instr) -> None:
    """Each executing lane, in lane order, formats ``printf(format, values...)`` with the C
    library's ``snprintf`` (C varargs: 32-bit integers as ``int``, 64-bit ones as ``long long``,
    ``f64`` as ``double``, which the verifier matched to the conversions) into a stack buffer, and
    hands the text to the sink (:data:`SINK_SYMBOL`) with the block's number or, without a sink,
    writes it to file descriptor 1 at once with ``write`` (pytest's ``capfd`` reads it there)."""
    b = cg.b
    fmt_text = s.mod("format")
    data = bytearray(fmt_text.encode("utf-8") + b"\0")
    text_t = ir.ArrayType(I8, len(data))
    fmt = ir.GlobalVariable(cg.m, text_t, cg.m.get_unique_name("tv_format"))
    fmt.global_constant = True
    fmt.linkage = "private"
    fmt.unnamed_addr = True
    fmt.initializer = ir.Constant(text_t, data)
    snprintf = _function(cg, "snprintf", I32, [PTR, I64, PTR], var_arg=True)
    write = _function(cg, "write", I64, [I32, PTR, I64])
    sink = _sink(cg)
    capacity = _text_bound(fmt_text) + 1
    buffer = cg.scratch(ir.ArrayType(I8, capacity))
    values = [cg.read(a) for a in s.args]

    def one(lane: ir.Value) -> None:
        n = b.call(snprintf, [buffer, I64(capacity), fmt,
                              *(b.extract_element(v, lane) for v in values)])
        # snprintf returns the length it wanted; the bound makes it fit (clamped all the same)
        n = b.sext(b.select(b.icmp_signed("<", n, I32(capacity)), n, I32(capacity - 1)), I64)
        target = b.load(sink)
        with b.if_else(b.icmp_unsigned("==", target, ir.Constant(target.type, None))) as (
                direct, sunk):
            with direct:
                b.call(write, [I32(1), buffer, n])
            with sunk:
                b.call(target, [cg.ctaid, buffer, n])

    for_each_lane(cg, cg.active(), one)


@contextmanager
def prints_in_block_order(compiled: Any, grid: tuple[int, int, int]
                          ) -> Iterator[dict[int, bytes]]:
    """While the body runs the blocks of ``compiled`` (a ``jit.JitResult``) on a grid of
    ``grid`` = (x, y, z) extents, collect each block's ``vprintf`` text; afterwards (also when the
    run fails) write it to ``sys.stdout`` block by block, in row-major order of the block index
    (x slowest, as the interpreter runs blocks), each block's text in the order it printed it.

    A kernel without ``vprintf`` is left alone. Launches of kernels that print take turns (the sink
    is a global of the loaded code, shared by every launch of it). The context's value is a dict
    that holds, once the body is over, each block's text by linear block number (the launch
    quotes a trapping block's last line in its error)."""
    printed: dict[int, bytes] = {}
    address = compiled.engine[0].get_global_value_address(SINK_SYMBOL)
    if not address:
        yield printed
        return
    nx, ny, _ = grid
    pieces: dict[int, list[bytes]] = {}
    lock = threading.Lock()

    def collect(block: int, text: int, length: int) -> None:
        data = ctypes.string_at(text, length)
        with lock:
            pieces.setdefault(block, []).append(data)

    callback = PRINT_SINK(collect)
    slot = ctypes.c_void_p.from_address(address)
    with _SINK_LOCK:
        slot.value = ctypes.cast(callback, ctypes.c_void_p).value
        try:
            yield printed
        finally:
            slot.value = None
            printed.update((b, b"".join(p)) for b, p in pieces.items())

            def index(b: int) -> tuple[int, int, int]:
                return (b % nx, b // nx % ny, b // (nx * ny))

            text = b"".join(b"".join(pieces[b]) for b in sorted(pieces, key=index))
            if text:
                sys.stdout.write(text.decode("utf-8", errors="replace"))
                sys.stdout.flush()
