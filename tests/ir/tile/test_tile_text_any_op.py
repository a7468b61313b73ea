"""The text form is generic: the printer and the parser handle any operation name with attributes
of every kind the printer writes, so a new Tile IR operation needs no printer or grammar change."""

from __future__ import annotations

import pytest

from tilevm.frontend.text import parse
from tilevm.ir.dtypes import dtype
from tilevm.ir.layout import SharedLayout, Swizzle, local, spatial
from tilevm.ir.tile import Const, Instr, Kernel, Loc, ScalarType, TensorType, Var, print_kernel
from tilevm.ir.tile.ops import OPS

I32, F16 = dtype("i32"), dtype("f16")
X = Var("x", TensorType(F16, ("n",), "global"))


def _kernel(*body: Instr) -> Kernel:
    return Kernel("k", (X,), (), (), (Const(1, I32),), 4, tuple(body), Loc("k.py", 1, 1))


ATTRIBUTES = {
    "count": 3, "negative": -2, "ratio": 0.25, "inf": float("inf"), "name": 'a "quoted" name',
    "yes": True, "no": False, "nothing": None, "dtype": F16, "shape": (4, "n", 2),
    "nested": ((1, 2), ()), "layout": local(2, 1) * spatial(4, 8),
    "smem": SharedLayout((8, 64), (64, 1), Swizzle(3, 3, 3)),
}  # fmt: skip


@pytest.mark.parametrize("with_result", [True, False])
def test_an_operation_unknown_to_tile_ir_prints_and_parses_back(with_result):
    assert "frobnicate" not in OPS
    result = Var("r", TensorType(F16, (8, 8), "reg", local(2, 1) * spatial(4, 8)))
    instr = Instr.make(result if with_result else None, "frobnicate",
                       [X, Const(7, I32), Const(1.5, F16)], Loc("k.py", 3, 5), **ATTRIBUTES)
    scalar = Instr.make(Var("s", ScalarType(I32)), "frobnicate.v2", [], None)
    k = _kernel(instr, scalar)
    text = print_kernel(k)
    assert "frobnicate(%x, 7:i32, 1.5:f16) {" in text
    back = parse(text)
    assert back == k
    assert back.body[0].loc == Loc("k.py", 3, 5)
