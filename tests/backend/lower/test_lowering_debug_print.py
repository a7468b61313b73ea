"""``tv.debug_print`` lowered: the chosen block prints its index, its scalars and its tiles with
their layouts, on the CPU backend through the C library's ``printf`` (and ``vprintf`` on the
GPU)."""

from __future__ import annotations

import numpy as np

import tilevm as tv
from tilevm import f16, f32, i8, u4
from tilevm.ir.host_tensor import HostTensor


@tv.kernel
def show(x: tv.Global[f32, "n"], c: tv.Global[u4, "k"], h: tv.Global[f16, "j"]):
    tv.launch(grid=2, warps=2)
    i = tv.block_idx()
    t = tv.load(x, (i * 4,), (4,), layout=tv.replicated(16) * tv.spatial(4))
    tv.debug_print("x=", t, tv.cast(tv.sum(t, 0), i8),
                   tv.load(c, (i * 3,), (3,), layout=tv.replicated(64) * tv.local(3)),
                   tv.load(h, (i,), ()), block=1)


def test_the_chosen_block_prints_its_values_and_layouts(capfd):
    x = np.arange(8, dtype=np.float32) * 1.5
    codes = HostTensor.from_bits(np.arange(6) + 9, u4)
    h = np.array([0.25, -3.0], np.float16)
    show(x, codes, h, device="cpu")
    # Block 1's values: x[4:8], their sum 33 as i8, codes 12..14 and h[1]; the owners are the
    # layouts' first holders (replicated(16) * spatial(4): thread t holds element t % 4).
    assert capfd.readouterr().out.splitlines() == [
        "[block (1,)] x= tile1 33 tile2 -3",
        "  tile1: f32[4] in layout replicated(16) * spatial(4)",
        "    values:",
        "          6     7.5       9    10.5",
        "    thread:local (each element held by 16 threads; the first shown):",
        "        0:0     1:0     2:0     3:0",
        "  tile2: u4[3] in layout replicated(64) * local(3)",
        "    values:",
        "      12   13   14",
        "    thread:local (each element held by 64 threads; the first shown):",
        "     0:0  0:1  0:2",
    ]
