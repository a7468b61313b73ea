"""``tv.debug_print`` lowered: each block prints one line with its index and the values, on the CPU
backend through the C library's ``printf`` (and ``vprintf`` on the GPU)."""

from __future__ import annotations

import numpy as np

import tilevm as tv
from tilevm import f16, f32, i8, u4
from tilevm.ir.host_tensor import HostTensor


@tv.kernel
def show(x: tv.Global[f32, "n"], c: tv.Global[u4, "k"], h: tv.Global[f16, "j"]):
    tv.launch(grid=2, warps=2)
    i = tv.block_idx()
    t = tv.load(x, (i * 4,), (4,))
    tv.debug_print("x=", t, tv.cast(tv.sum(t, 0), i8), tv.load(c, (i * 3,), (3,)),
                   tv.load(h, (i,), ()))


def test_every_block_prints_its_index_and_its_values(capfd):
    x = np.arange(8, dtype=np.float32) * 1.5
    codes = HostTensor.from_bits(np.arange(6) + 9, u4)
    h = np.array([0.25, -3.0], np.float16)
    show(x, codes, h, device="cpu")
    lines = sorted(capfd.readouterr().out.splitlines())
    assert lines == ["[block (0,)] x= [0 1.5 3 4.5] 9 [9 10 11] 0.25",
                     "[block (1,)] x= [6 7.5 9 10.5] 33 [12 13 14] -3"]
