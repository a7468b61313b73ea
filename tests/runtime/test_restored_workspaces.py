"""Workspaces a kernel restores (``tv.workspace(..., restored=True)``): the kernel promises to
leave them zeroed as it found them, the interpreter and the CPU backend hold it to that after
every launch, and the GPU runtime zeroes them once, in a region kept per (GPU, stream, kernel),
instead of before every launch (checked on a fake GPU that records allocations and memsets)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tilevm as tv
from tilevm import f32, i32
from tilevm.ir.errors import WorkspaceNotRestored
from tilevm.runtime.gpu_workspaces import place_workspaces, workspace_layout

sys.path.insert(0, str(Path(__file__).parent))
from fake_gpu import install_fake_gpu


def _tile_sums(restore: bool):
    """Each block adds its row of x into the sums (a workspace), counts itself in; the last
    block of the launch writes the sums to y and, with ``restore``, clears what it used."""

    @tv.kernel
    def tile_sums(x: tv.Global[f32, "rows", "n"], y: tv.Global[f32, "n"], *,
                  width: tv.Const = 32):
        tv.launch(grid=rows, warps=1)
        r = tv.block_idx()
        sums = tv.workspace((n,), f32, restored=True)
        count = tv.workspace((1,), i32, restored=True)
        tv.atomic_add(sums, tv.reshape(tv.load(x, (r, 0), (1, width)), (width,)), (0,))
        tv.fence()
        tv.sync()
        if tv.atomic_add(count, 1, (0,)) == rows - 1:
            tv.fence()
            tv.store(y, tv.load(sums, (0,), (width,)), (0,))
            if restore:
                tv.sync()  # every thread has read the sums before any is cleared
                tv.store(sums, tv.zeros((width,), f32), (0,))
                tv.store(count, 0, (0,))

    return tile_sums


@pytest.mark.parametrize("device", ["cpu", "interp"])
def test_a_kernel_that_restores_its_workspaces_runs(device):
    x = np.arange(5 * 32, dtype=np.float32).reshape(5, 32)
    y = np.zeros(32, np.float32)
    _tile_sums(restore=True)(x, y, device=device)
    np.testing.assert_array_equal(y, x.astype(np.float64).sum(0))


@pytest.mark.parametrize("device", ["cpu", "interp"])
def test_a_kernel_that_does_not_restore_them_is_stopped_naming_the_workspace(device):
    x = np.ones((3, 32), np.float32)
    left = r"workspace 'sums'.* left 32 of its 32 elements nonzero \(the first at \(0,\)\)"
    with pytest.raises(WorkspaceNotRestored, match=left):
        _tile_sums(restore=False)(x, np.zeros(32, np.float32), device=device)


def test_restored_needs_zeroed():
    with pytest.raises(tv.CompileError, match=r"restored=True .* needs zeroed=True") as caught:
        @tv.kernel
        def bad(y: tv.Global[f32, "n"]):
            tv.launch(grid=1, warps=1)
            tv.workspace((n,), f32, zeroed=False, restored=True)
        bad.ir()
    assert "tv.workspace((n,), f32, zeroed=False, restored=True)" in str(caught.value)


SPECS = [{"name": "sums", "shape": ["n"], "dtype": "f32", "zeroed": True, "restored": True},
         {"name": "scratch", "shape": [64], "dtype": "u8", "zeroed": False},
         {"name": "count", "shape": [1], "dtype": "i32", "zeroed": True, "restored": True},
         {"name": "flags", "shape": ["n"], "dtype": "u8", "zeroed": True}]


def test_the_restored_workspaces_lie_in_the_kept_region():
    layout = workspace_layout(SPECS, {"n": 100})
    # Per launch: the zeroed flags first (100 bytes, cleared), then the scratch.
    assert layout.offsets == {"flags": 0, "scratch": 256} and layout.zeroed_bytes == 100
    assert layout.total == 512
    # Kept: the sums (400 bytes) and the counter, each at a multiple of 256 bytes.
    assert layout.kept == {"sums": 0, "count": 512} and layout.kept_total == 768


def test_the_kept_region_is_cleared_once_per_stream_and_when_outgrown(monkeypatch):
    gpu = install_fake_gpu(monkeypatch)
    small, large = (workspace_layout(SPECS, {"n": n}) for n in (100, 300))
    first = place_workspaces(small, gpu, "k", None, 0)
    kept = first["sums"]
    per_launch = first["flags"]
    # The first launch: the kept region (allocated, cleared) and the per-launch one (cleared).
    assert gpu.memsets == [(kept, 768, 0), (per_launch, 100, 0)]
    again = place_workspaces(small, gpu, "k", None, 0)
    assert again == first and gpu.memsets[2:] == [(per_launch, 100, 0)]  # the kept one: never
    other_kernel = place_workspaces(small, gpu, "other", None, 0)
    assert other_kernel["sums"] != kept  # a region per kernel
    grown = place_workspaces(large, gpu, "k", None, 0)
    # 300 sums need 1280 bytes of the region: a new one, twice the old size, cleared once.
    assert grown["sums"] != kept and (grown["sums"], 1536, 0) in gpu.memsets
    assert grown["count"] == grown["sums"] + 1280


def test_a_launch_with_only_restored_workspaces_clears_nothing_after_the_first(monkeypatch):
    gpu = install_fake_gpu(monkeypatch)
    only_kept = workspace_layout([SPECS[0], SPECS[2]], {"n": 100})
    place_workspaces(only_kept, gpu, "k", None, 0)
    assert len(gpu.memsets) == 1 and len(gpu.allocations) == 1
    for _ in range(3):
        place_workspaces(only_kept, gpu, "k", None, 0)
    assert len(gpu.memsets) == 1 and len(gpu.allocations) == 1
