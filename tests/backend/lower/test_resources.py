"""Resources (issue 8, item 2): a kernel that cannot fit is a diagnostic at the user's line, not
a kernel; shared buffers get aligned offsets and reuse the bytes of dead buffers."""

from __future__ import annotations

import pytest

import tilevm as tv
from tilevm import f16, f32
from tilevm.backend.lower import lower
from tilevm.backend.lower.shared_plan import plan_shared


def test_a_register_tile_of_4096_by_4096_is_refused_at_its_line():
    @tv.kernel
    def huge(x: tv.Global[f32, 4096, 4096], y: tv.Global[f32, 4096, 4096]):
        tv.launch(grid=1, warps=4)
        t = tv.load(x, (0, 0), (4096, 4096))
        tv.store(y, t + 1.0, (0, 0))

    with pytest.raises(tv.CompileError, match=r"registers per thread .*%t, f32\[4096, 4096\].*"
                                              r"a thread has at most 255") as info:
        tv.compile(huge, "sm_90")
    assert info.value.source_line.strip().startswith("t = tv.load(")


def test_a_1024_by_1024_f32_shared_tile_is_refused_at_its_line():
    @tv.kernel
    def staged(x: tv.Global[f32, 1024, 1024]):
        tv.launch(grid=1, warps=4)
        buf = tv.shared((1024, 1024), f32)
        tv.store(buf, tv.load(x, (0, 0), (16, 1024)), (0, 0))

    for arch, limit in (("sm_80", 166912), ("sm_90", 232448)):
        with pytest.raises(tv.CompileError, match=rf"4194304 bytes of shared memory; {arch} "
                                                  rf"allows at most {limit}") as info:
            tv.compile(staged, arch)
        assert info.value.source_line.strip().startswith("buf = tv.shared(")


def test_shared_buffers_are_aligned_and_a_dead_buffers_bytes_are_reused():
    @tv.kernel
    def two_phases(x: tv.Global[f16, 64, 64], y: tv.Global[f16, 64, 64]):
        tv.launch(grid=1, warps=4)
        a = tv.shared((64, 64), f16)
        tv.store(a, tv.load(x, (0, 0), (64, 64)), (0, 0))
        tv.sync()
        t = tv.load(a, (0, 0), (64, 64))
        b = tv.shared((8, 8), f32)  # a is dead: b takes its bytes
        c = tv.shared((3,), f16)  # b is live: c goes after it, aligned, also over a's bytes
        tv.store(b, tv.zeros((8, 8), f32), (0, 0))
        tv.store(c, tv.zeros((3,), f16), (0,))
        tv.sync()
        tv.store(y, t + tv.load(c, (0,), ()), (0, 0))
        tv.store(y, tv.cast(tv.load(b, (0, 0), (8, 8)), f16), (0, 0))

    plan = plan_shared(two_phases.ir())
    a, b, c = (plan.buffers[n] for n in ("a", "b", "c"))
    assert (a.offset, a.size, a.reuses) == (0, 64 * 64 * 2, False)
    assert b.offset == 0 and b.reuses
    assert c.offset >= b.offset + b.size and c.offset % 128 == 0 and c.reuses
    assert c.offset + c.size <= a.size
    assert plan.scratch_offset >= c.offset + c.size
    lowered = lower(two_phases.ir(), "sm_90")
    assert lowered.report.shared_bytes == lowered.thread.shared_bytes >= plan.scratch_offset
    assert tv.compile(two_phases, "sm_90").resources.shared == lowered.thread.shared_bytes
