"""Lowering of ``device_assert`` (``tv.device_assert``): where an element of the condition is
false, print why and ``trap``.

Each thread finds its first false element (in its own local order) in a rolled loop over its
registers; where there is one, the first holder of that element prints one line with ``vprintf``
and executes ``trap``, which aborts the kernel (as CUDA's ``assert`` does)::

    kernel.py:12:5: device_assert failed: ids in range (block (3,), element (17,))

The interpreter's error has the same text, naming the first false element in row-major order.
On the CPU backend the launch's error quotes the line the trapping block printed. A block-uniform
scalar condition is printed by thread 0 only.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.ir.thread.types import PRED, S32, U32
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.program import Instr

_AXES = "xyz"


def _tuple_format(n: int) -> str:
    """The printf text of an ``n``-tuple of ints as Python writes it: ``(%d,)``, ``(%d, %d)``."""
    return "(" + ", ".join(["%d"] * n) + ("," if n == 1 else "") + ")"


@rule("device_assert")
def lower_device_assert(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    cond = ctx.value(s.args[0])
    grid = len(ctx.kernel.grid)
    message = f"{s.loc}: device_assert failed: {s.attr('msg')}".replace("%", "%%")
    block = [kb.mov(kb.sreg(f"ctaid.{_AXES[d]}"), S32) for d in range(grid)]
    if isinstance(cond, vals.ScalarValue):
        false = kb.setp("eq", vals.read(kb, cond), 0, type=U32)
        with kb.if_(false, uniform=True):
            with kb.if_(kb.setp("eq", ctx.tid, 0, type=U32)):
                kb.vprintf(f"{message} (block {_tuple_format(grid)})\n", *block)
            kb.trap()
        return
    assert isinstance(cond, vals.TileValue)
    layout = cond.layout
    shape = tuple(layout.shape)
    first = kb.mov(Const(-1, S32), S32)  # the row-major index of this thread's first false one
    with vals.locals_loop(kb, cond.count, layout=layout) as i:
        index = ctx.element_index(layout, i)
        flat: Operand = index[0]
        for d in range(1, len(shape)):
            flat = kb.mad(flat, shape[d], index[d], type=S32)
        false = kb.setp("eq", vals.read(kb, cond, i), 0, type=U32)
        take = kb.and_(false, kb.setp("lt", first, 0, type=S32), type=PRED)
        kb.selp(flat, first, take, type=S32, out=first)
    failing = kb.setp("ge", first, 0, type=S32)
    first_holder = ctx.replica_zero(layout)
    if first_holder is not None:
        failing = kb.and_(failing, first_holder, type=PRED)
    with kb.if_(failing):
        element = []
        stride = 1
        for n in reversed(shape):
            element.append(kb.rem(kb.div(first, stride, type=S32), n, type=S32))
            stride *= n
        kb.vprintf(f"{message} (block {_tuple_format(grid)}, element "
                   f"{_tuple_format(len(shape))})\n", *block, *reversed(element))
        kb.trap()
