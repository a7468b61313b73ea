"""``tv.debug_print(..., block=...)``: only the chosen block prints; a tile prints its values and,
on the CPU backend (and the GPU), which thread and register slot hold each element.

Oracles: the values against numpy (float64, exact for these small integers); the ownership
against the layout's own mapping (``RegisterLayout.coords`` and ``holders``) of a layout the test
chose itself (``layout=``, ``tv.convert_layout``) or against the PTX ISA's formula for the
``mma.sync`` m16n8k16 accumulator fragment; the interpreter's values against the CPU backend's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pytest

import tilevm as tv
from tilevm import f16, f32, i8, i32, u4
from tilevm.ir.errors import CompileError
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.layout.register import RegisterLayout

LOADED = tv.spatial(8, 8) * tv.local(1, 2)  # (8, 16) over 64 threads, two columns each
SOURCE = tv.spatial(16, 4) * tv.local(1, 2)  # (16, 8): element (i, j) in warp i // 8
CONVERTED = tv.column_spatial(8, 8) * tv.local(2, 1)  # element (i, j) in warp j // 4


@tv.kernel
def loaded(x: tv.Global[f32, "m", "n"], *, bx: tv.Const = 1, by: tv.Const = 1):
    tv.launch(grid=(2, 2), warps=2)
    i, j = tv.block_idx()
    t = tv.load(x, (i * 8, j * 16), (8, 16), layout=LOADED)
    s = tv.sum(tv.sum(t, 1), 0)
    tv.debug_print("x=", t, s, block=(bx, by))


@tv.kernel
def accumulator(a: tv.Global[f16, "m", "k"], b: tv.Global[f16, "k", "n"]):
    tv.launch(grid=2, warps=1)
    acc = tv.dot(tv.load(a, (0, 0), (16, 16)), tv.load(b, (0, 0), (16, 8)),
                 tv.zeros((16, 8), f32))
    tv.debug_print("acc=", acc)


@tv.kernel
def converted(x: tv.Global[i8, "m", "n"]):
    tv.launch(grid=1, warps=2)
    t = tv.load(x, (0, 0), (16, 8), layout=SOURCE)
    tv.debug_print("c=", tv.convert_layout(t, CONVERTED))


@tv.kernel
def cube(x: tv.Global[u4, "m", "n"]):
    tv.launch(grid=(1, 1, 2), warps=1)
    tv.debug_print("q=", tv.reshape(tv.load(x, (0, 0), (6, 4)), (2, 3, 4)), block=(0, 0, 1))


@tv.kernel
def several(x: tv.Global[i32, "n"]):
    tv.launch(grid=(2, 3), warps=1)
    i, j = tv.block_idx()
    t = tv.load(x, (i * 3 + j,), (1,))
    tv.debug_print("c", t, block=(1, 0))
    tv.debug_print("b", t, block=(0, 1))
    tv.debug_print("a", t, block=(0, 0))


# -- reading the printed text --------------------------------------------------------------------


@dataclass
class PrintedTile:
    title: str  # "f32[8, 16]"
    layout: str | None  # the layout expression; None from the interpreter
    values: list[str] = field(default_factory=list)  # the cells, row-major
    owners: list[tuple[int, int]] = field(default_factory=list)  # (thread, local), row-major


@dataclass
class Printed:
    header: str
    tiles: dict[str, PrintedTile]


_TITLE = re.compile(r"^  (tile\d+): (\S+\[[\d, ]*\]) (?:in layout (.*)|\(the interpreter has no "
                    r"layout\))$")


def parse_prints(text: str) -> list[Printed]:
    """Every print in ``text``, with its tiles' grids read cell by cell."""
    out: list[Printed] = []
    tile: PrintedTile | None = None
    grid = ""
    for line in text.splitlines():
        if line.startswith("[block "):
            out.append(Printed(line, {}))
        elif m := _TITLE.match(line):
            tile = PrintedTile(m.group(2), m.group(3))
            out[-1].tiles[m.group(1)] = tile
        elif line.strip() == "values:":
            grid = "values"
        elif line.strip().startswith("thread:local"):
            grid = "owners"
        elif re.fullmatch(r" +\[[\d, ]+, :, :\]", line):
            continue  # a plane's heading: the cells follow in row-major order
        else:
            assert tile is not None and line.startswith("    "), line
            cells = line.split()
            if grid == "values":
                tile.values += cells
            else:
                tile.owners += [(int(t), int(k)) for t, k in (c.split(":") for c in cells)]
    return out


def run_interpreter(kernel, *args, **constants) -> None:
    """The kernel on the interpreter alone (the tests' fixture would run the CPU backend after
    it, printing a second time)."""
    from tilevm.frontend.arguments import bind_arguments
    from tilevm.frontend.devices import runner_for

    ir = kernel.ir(**constants)
    bound = bind_arguments(ir, args, "host")
    runner_for("interp")(ir, bound, constants)
    bound.finish()


def check_ownership(tile: PrintedTile, layout: RegisterLayout) -> None:
    """Each printed owner holds its element under ``layout`` and is its first holder."""
    index = list(np.ndindex(*layout.shape))
    assert len(tile.owners) == len(index)
    for at, (thread, local) in zip(index, tile.owners, strict=True):
        assert layout.coords(thread, local) == at, (at, thread, local)
        assert (thread, local) == layout.holders(at)[0], at


def floats(cells: list[str]) -> np.ndarray:
    return np.array([float(c) for c in cells])


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x_loaded() -> np.ndarray:
    return (np.arange(16 * 32).reshape(16, 32) % 37 - 18).astype(np.float32) / 4


def test_a_chosen_block_prints_its_tile_with_the_layout(capfd, x_loaded):
    loaded(x_loaded, device="cpu")
    prints = parse_prints(capfd.readouterr().out)
    assert len(prints) == 1  # the other three blocks print nothing
    block = x_loaded[8:16, 16:32]
    assert prints[0].header == f"[block (1, 1)] x= tile1 {block.astype(np.float64).sum():g}"
    tile = prints[0].tiles["tile1"]
    assert tile.title == "f32[8, 16]"
    assert np.array_equal(floats(tile.values), block.reshape(-1))
    check_ownership(tile, LOADED)


def test_the_interpreter_prints_the_same_values_without_a_layout(capfd, x_loaded):
    loaded(x_loaded, device="cpu", bx=0, by=1)
    cpu = parse_prints(capfd.readouterr().out)
    run_interpreter(loaded, x_loaded, bx=0, by=1)
    interp = parse_prints(capfd.readouterr().out)
    assert [p.header for p in interp] == [p.header for p in cpu]
    assert cpu[0].header.startswith("[block (0, 1)] x= tile1 ")
    assert interp[0].tiles["tile1"].layout is None and interp[0].tiles["tile1"].owners == []
    assert interp[0].tiles["tile1"].values == cpu[0].tiles["tile1"].values
    assert np.array_equal(floats(interp[0].tiles["tile1"].values),
                          x_loaded[0:8, 16:32].reshape(-1))


def test_the_dot_accumulator_shows_the_mma_fragment(capfd):
    a = (np.arange(256).reshape(16, 16) % 7 - 3).astype(np.float16)
    b = (np.arange(128).reshape(16, 8) % 5 - 2).astype(np.float16)
    accumulator(a, b, device="cpu")
    prints = parse_prints(capfd.readouterr().out)
    assert [p.header for p in prints] == ["[block (0,)] acc= tile1"]  # block 0 by default
    tile = prints[0].tiles["tile1"]
    assert tile.title == "f32[16, 8]"
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.array_equal(floats(tile.values), want.reshape(-1))
    # PTX ISA, "Matrix Fragments for mma.m16n8k16", C/D: row = groupID + 8 * (i >= 2),
    # col = threadID_in_group * 2 + (i & 1), with groupID = lane >> 2, threadID_in_group = lane % 4
    rows, cols = np.indices((16, 8)).reshape(2, -1)
    lanes = (rows % 8) * 4 + cols // 2
    slots = (rows // 8) * 2 + cols % 2
    assert tile.owners == list(zip(lanes.tolist(), slots.tolist(), strict=True))
    run_interpreter(accumulator, a, b)
    assert parse_prints(capfd.readouterr().out)[0].tiles["tile1"].values == tile.values


def test_a_tile_converted_through_shared_memory_shows_its_new_owners(capfd):
    x = (np.arange(128).reshape(16, 8) * 3 % 255 - 127).astype(np.int8)
    converted(x, device="cpu")
    prints = parse_prints(capfd.readouterr().out)
    tile = prints[0].tiles["tile1"]
    assert tile.title == "i8[16, 8]"
    assert [int(v) for v in tile.values] == x.reshape(-1).tolist()
    check_ownership(tile, CONVERTED)
    run_interpreter(converted, x)
    assert parse_prints(capfd.readouterr().out)[0].tiles["tile1"].values == tile.values


def test_a_rank_3_tile_of_a_3d_grid_prints_plane_by_plane(capfd):
    codes = np.arange(6 * 4).reshape(6, 4) * 7 % 16
    x = HostTensor.from_bits(codes, u4)
    cube(x, device="cpu")
    out = capfd.readouterr().out
    assert "    [1, :, :]" in out
    prints = parse_prints(out)
    assert prints[0].header == "[block (0, 0, 1)] q= tile1"
    tile = prints[0].tiles["tile1"]
    assert [int(v) for v in tile.values] == codes.reshape(-1).tolist()
    check_ownership(tile, layout_named(tile))
    run_interpreter(cube, x)
    assert parse_prints(capfd.readouterr().out)[0].tiles["tile1"].values == tile.values


def layout_named(tile: PrintedTile) -> RegisterLayout:
    """The layout the tile's title line names (the grid must agree with it)."""
    from tilevm.ir.layout.text import parse_layout

    assert tile.layout is not None
    return parse_layout(tile.layout)


def test_a_block_outside_the_grid_prints_nothing(capfd, x_loaded):
    loaded(x_loaded, device="cpu", bx=2, by=0)
    assert capfd.readouterr().out == ""


def test_block_must_match_the_grid():
    @tv.kernel
    def wrong_rank(x: tv.Global[f32, "n"]):
        tv.launch(grid=(2, 2))
        tv.debug_print("x=", tv.load(x, (0,), (4,)), block=3)

    with pytest.raises(CompileError, match=r"block \(3,\) has 1 index for a 2-D grid"):
        wrong_rank.ir()

    @tv.kernel
    def negative(x: tv.Global[f32, "n"]):
        tv.launch(grid=2)
        tv.debug_print("x=", tv.load(x, (0,), (4,)), block=-1)

    with pytest.raises(CompileError, match="non-negative"):
        negative.ir()


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_cuda_source_prints_through_vprintf(arch):
    compiled = tv.compile(converted, arch)  # NVRTC compiles it (ptxas reports its resources)
    assert compiled.resources.spills == 0 and compiled.resources.registers > 0
    assert ("through shared memory: spatial(16, 4) * local(1, 2) -> column_spatial(8, 8) * "
            "local(2, 1)") in compiled.report
    source = compiled.cuda_source
    formats = re.findall(r'vprintf\("((?:[^"\\]|\\.)*)"', source)
    # The same text as the CPU backend prints: i8 cells 4 wide ("-128"), owners "tt:l" of 64
    # threads and 2 slots, each cell after one space.
    assert formats == ["[block (0,)] c=", " tile1", "\\n",
                       "  tile1: i8[16, 8] in layout column_spatial(8, 8) * local(2, 1)\\n",
                       "    values:\\n", "   ", " %4lld", "\\n", "    thread:local:\\n", "   ",
                       " %2d:%-1d", "\\n"]



@pytest.fixture
def launches_collect_prints(monkeypatch):
    """The CPU backend's launches on two host threads, so that blocks run out of order."""
    from tilevm.backend.cpu import launch

    run = launch.CpuKernel.__call__

    def two_threads(self, grid, *args, **kwargs):
        return run(self, grid, *args, threads=2)

    monkeypatch.setattr(launch.CpuKernel, "__call__", two_threads)


def test_collected_prints_come_after_the_launch_in_block_order(capsys, launches_collect_prints):
    x = np.arange(6, dtype=np.int32) * 10
    several(x, device="cpu")
    # Through sys.stdout (capsys sees no file descriptor), in the interpreter's block order
    # (axis 0 slowest) whatever the order of the statements and of the parallel blocks.
    out = capsys.readouterr().out
    headers = [p.header for p in parse_prints(out)]
    assert headers == ["[block (0, 0)] a tile1", "[block (0, 1)] b tile1",
                       "[block (1, 0)] c tile1"]
    values = [p.tiles["tile1"].values for p in parse_prints(out)]
    assert values == [[str(x[0])], [str(x[1])], [str(x[3])]]
    run_interpreter(several, x)
    assert [p.header for p in parse_prints(capsys.readouterr().out)] == headers


def test_a_text_form_block_of_the_wrong_rank_is_a_lowering_error():
    from tilevm.backend.lower import lower
    from tilevm.frontend.text import parse
    from tilevm.ir.tile import print_kernel

    text = print_kernel(accumulator.ir())
    assert "block = [0]" in text  # the frontend writes the full index
    wrong = parse(text.replace("block = [0]", "block = [0, 0]"))
    with pytest.raises(CompileError, match=r"block \(0, 0\) has 2 indices for a 1-D grid"):
        lower(wrong, "sm_90")
