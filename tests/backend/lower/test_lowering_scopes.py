"""Values the lowering caches (lane and warp digits of the thread index, index parts) are reused
only where they are defined: a value a rule computed inside a Thread IR block it opened (one
warp's share of a copy) is no value for the code after that block. Run on the interpreter and,
through the suite's autouse check, on the CPU backend, which must agree bit for bit; the result
is also held to numpy."""

from __future__ import annotations

import numpy as np

import tilevm as tv
from tilevm import f32
from tilevm.backend.lower import lower

N = 128


@tv.kernel
def copy_then_load(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    buf = tv.shared((N,), f32)
    tv.copy_async(buf, x, (o,))  # 128 elements: warp 0 copies them all
    tv.commit()
    tv.wait(0)
    tv.sync()
    tv.store(y, tv.load(buf, (0,), (N,)), (o,))  # every warp reads its part


def test_a_lane_index_computed_in_one_warps_branch_is_not_reused_by_the_other_warps():
    x = np.arange(2 * N + 40, dtype=np.float32) + 1
    y = np.zeros_like(x)
    copy_then_load(x, y)
    assert np.array_equal(y, x)
    y[:] = 0
    copy_then_load(x, y, device="cpu")
    assert np.array_equal(y, x)


def test_every_register_is_written_on_every_path_before_it_is_read():
    """Structurally: no register is read where some path has not written it (the CUDA printer
    declares registers at function scope, so a GPU would read garbage)."""
    from tilevm.ir.thread.definedness import undefined_reads

    assert undefined_reads(lower(copy_then_load.ir(), 80).thread) == []
