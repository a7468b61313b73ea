"""Pass helpers: a rewritten program is still well typed and computes what the pass says."""

from __future__ import annotations

import numpy as np

from tilevm.backend.interp import run
from tilevm.frontend.text import parse
from tilevm.ir.dtypes import dtype
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile import Const, For, Instr, Kernel, Var, verify, walk
from tilevm.ir.tile.rewrite import map_kernel, substitute

F32 = dtype("f32")

PROGRAM = """
kernel @k(%x: global<f32[n]>, %y: global<f32[n]>) {
  launch grid(%g) warps 4 {
    %g: i32 = cdiv(%n, 4:i32)
  }
  %i: i32 = block_idx() {axis = 0}
  %o: i32 = mul(%i, 4:i32)
  %t: tile<f32[4]> = load(%x, %o) {shape = [4]}
  for %r: i32 = 0:i32 to 3:i32 step 1:i32 {
    %u: tile<f32[4]> = mul(%t, 2.0:f32)
    assign %t = %u
  }
  store(%y, %t, %o)
}
"""


def _run(kernel: Kernel, x: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x)
    run(kernel, {"x": HostTensor(x.view(np.uint8), F32, x.shape),
                 "y": HostTensor(y.view(np.uint8), F32, y.shape)}, {}, {"n": x.size})
    return y


def test_renaming_every_variable_keeps_the_meaning():
    kernel = parse(PROGRAM)
    names = {s.result for s in walk(kernel.body + kernel.launch_body)
             if isinstance(s, Instr) and s.result is not None}
    names |= {s.var for s in walk(kernel.body) if isinstance(s, For)}
    renamed = substitute(kernel, {v: Var("p_" + v.name, v.type) for v in names})
    verify(renamed)
    assert all(s.result.name.startswith("p_") for s in walk(renamed.body)
               if isinstance(s, Instr) and s.result is not None)
    x = np.arange(8, dtype=np.float32)
    assert np.array_equal(_run(renamed, x), x * 8)


def test_a_pass_can_replace_and_delete_statements():
    kernel = parse(PROGRAM)

    def triple_instead(s):
        if isinstance(s, Instr) and s.op == "mul" and s.args[1] == Const(2.0, F32):
            return Instr.make(s.result, "mul", [s.args[0], Const(3.0, F32)], s.loc)
        return s

    tripled = map_kernel(kernel, triple_instead)
    verify(tripled)
    x = np.arange(8, dtype=np.float32)
    assert np.array_equal(_run(tripled, x), x * 27)
    without_loop = map_kernel(kernel, lambda s: None if isinstance(s, For) else s)
    verify(without_loop)
    assert np.array_equal(_run(without_loop, x), x)
