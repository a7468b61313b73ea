"""DSL features, each run on the interpreter and compared with the same computation in numpy."""

import numpy as np
import pytest

import tilevm as tv
from tilevm import f32, i32
from tilevm.ir.tile import For, If, Instr, TensorType, walk


def scaled_gelu_like(x, scale):
    """A helper: inlined where it is called with run-time values."""
    if scale == 1:  # compile-time: only one branch becomes IR
        return x * 0.5
    return x * (0.5 * scale)


def tile_count(n, block):
    return (n + block - 1) // block  # called with compile-time values: runs as Python


@tv.kernel
def helpers(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], *, scale: tv.Const = 3):
    assert scale > 0, "scale must be positive"
    tv.launch(grid=tile_count(32, 16))
    i = tv.block_idx()
    t = tv.load(x, (i * 16,), (16,))
    tv.store(y, scaled_gelu_like(t, scale) + scaled_gelu_like(t, 1), (i * 16,))


def test_helper_functions_are_inlined_and_compile_time_code_runs():
    x = np.linspace(-1, 1, 32).astype(np.float32)
    y = np.zeros(32, np.float32)
    helpers(x, y, device="interp")
    assert np.array_equal(y, x * np.float32(1.5) + x * np.float32(0.5))
    tile_muls = [s for s in walk(helpers.ir().body) if isinstance(s, Instr) and s.op == "mul"
                 and isinstance(s.result.type, TensorType)]
    assert len(tile_muls) == 2  # one per call; the untaken branches left nothing


def test_compile_time_assert_is_a_diagnostic():
    with pytest.raises(tv.CompileError, match="assertion failed: scale must be positive"):
        helpers.ir(scale=-1)


@tv.kernel
def broadcasting(x: tv.Global[f32, "m", "n"], y: tv.Global[f32, "m", "n"]):
    tv.launch(grid=1)
    t = tv.load(x, (0, 0), (8, 8))
    col = tv.sum(t, 1)  # shape (8,)
    row = tv.max(t, 0)  # shape (8,)
    r = tv.arange(0, 8)
    upper = r[:, None] <= r[None, :]
    tv.store(y, tv.where(upper, t - col[:, None], row[None, :]) if True else t, (0, 0))


def test_none_indexing_reductions_and_where_broadcast():
    x = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    y = np.zeros_like(x)
    broadcasting(x, y, device="interp")
    col = x.astype(np.float64).sum(1).astype(np.float32)
    upper = np.arange(8)[:, None] <= np.arange(8)[None, :]
    expected = np.where(upper, x - col[:, None], x.max(0)[None, :])
    assert np.array_equal(y, expected)


@tv.kernel
def carried(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    acc = tv.zeros((4,), f32)
    k = 0
    while k < n:
        acc = acc + tv.load(x, (k,), (4,))
        k = k + 4
    best = acc
    for s in tv.range(0, 3):
        best = tv.maximum(best, acc * 0.5 if s < 2 else acc * 2.0)
    tv.store(out, best, (0,))


def test_loop_carried_tiles_and_run_time_conditional_expressions():
    x = np.arange(10, dtype=np.float32)  # the last load is masked: 8, 9, 0, 0
    out = np.zeros(10, np.float32)
    carried(x, out, device="interp")
    acc = np.zeros(4, np.float32)
    for k in range(0, 10, 4):
        chunk = np.zeros(4, np.float32)
        chunk[:min(4, 10 - k)] = x[k:k + 4]
        acc = acc + chunk
    assert np.array_equal(out[:4], np.maximum(acc, acc * 2))
    kinds = {type(s).__name__ for s in walk(carried.ir().body)}
    assert {"While", "For", "Assign"} <= kinds
    assert not any(isinstance(s, If) for s in walk(carried.ir().body))  # `a if c else b` is where


@tv.kernel
def shared_and_workspace(x: tv.Global[i32, "n"], out: tv.Global[i32, "n"]):
    tv.launch(grid=4)
    b = tv.block_idx()
    hist = tv.shared((8,), i32)
    tv.store(hist, tv.zeros((8,), i32), (0,))
    tv.sync()
    values = tv.load(x, (b * 8,), (8,))
    tv.atomic_add(hist, tv.where(values > 0, 1, 0), (0,))  # a tile of atomics on shared memory
    for j in range(8):  # unrolled at compile time: one scalar atomic per slot
        tv.atomic_add(hist, 1, (j,))
    tv.sync()
    total = tv.workspace((8,), i32)  # one buffer for the whole launch
    tv.atomic_add(total, tv.load(hist, (0,), (8,)), (0,))
    tv.store(out, tv.load(total, (0,), (8,)), (0,))


def test_shared_atomics_and_a_launch_wide_workspace():
    x = np.array([1, -1, 2, 0, 3, 4, -5, 6] * 4, np.int32)
    out = np.zeros(32, np.int32)
    shared_and_workspace(x, out, device="interp")
    # Each block's histogram is (value > 0) + 1 per slot; the workspace sums the four blocks and
    # the last block to run stores the full total.
    assert np.array_equal(out[:8], 4 * ((x[:8] > 0).astype(np.int32) + 1))


@tv.kernel
def printing(x: tv.Global[f32, "n"], *, tag: tv.Const = "v"):
    tv.launch(grid=2)
    i = tv.block_idx()
    tv.debug_print(f"{tag}=", tv.load(x, (i * 2,), (2,)))


def test_debug_print_names_the_block(capsys):
    # Block 0 prints (by default only it): a tile by name, then its values (the interpreter has
    # no layout to show).
    printing(np.array([1, 2, 3, 4], np.float32), device="interp")
    out = capsys.readouterr().out.splitlines()
    assert out == ["[block (0,)] v= tile1", "  tile1: f32[2] (the interpreter has no layout)",
                   "    values:", "          1       2"]


@tv.kernel
def transpose_copy(x: tv.Global[f32, "m", "n"], y: tv.Global[f32, "n", "m"]):
    tv.launch(grid=1)
    tv.store(y, tv.load(x, (0, 0), (4, 4)).T, (0, 0))


def test_non_contiguous_arguments_are_written_back():
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    big = np.zeros((4, 8), np.float32)
    y = big[:, ::2]  # a strided view: copied in, and the result copied back
    transpose_copy(x, y, device="interp")
    assert np.array_equal(big[:, ::2], x.T)
    assert np.array_equal(big[:, 1::2], np.zeros((4, 4)))


def test_unroll_hint_and_names_reach_the_ir():
    @tv.kernel
    def unrolled(x: tv.Global[f32, "n"]):
        tv.launch(grid=1)
        acc = tv.zeros((4,), f32)
        for k0 in tv.range(0, n, 4, unroll=2):
            acc = acc + tv.load(x, (k0,), (4,))
        tv.store(x, acc, (0,))

    loops = [s for s in walk(unrolled.ir().body) if isinstance(s, For)]
    assert len(loops) == 1 and loops[0].unroll == 2 and loops[0].var.name == "k0"


@tv.kernel
def counted(out: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    x = tv.cast(1, f32)  # a constant until the loop makes it a run-time variable
    for _ in tv.range(0, n):
        x = x + 1.0
    tv.store(out, tv.full((1,), x, f32), (0,))


def test_constants_assigned_in_a_loop_become_variables():
    out = np.zeros(5, np.float32)
    counted(out, device="interp")
    assert out[0] == 6.0


def padded(shape):
    return tuple(-(-n // 16) * 16 for n in shape)  # compile-time only: a generator is fine here


def fence():
    tv.sync()  # a helper without arguments that emits an instruction


@tv.kernel
def helper_kinds(x: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    t = tv.zeros(padded((5,)), f32)
    fence()
    tv.store(x, t, (0,))


def test_compile_time_helpers_run_as_python_and_instruction_helpers_are_inlined():
    ops = [s.op for s in walk(helper_kinds.ir().body) if isinstance(s, Instr)]
    assert ops == ["full", "sync", "store"]
    assert helper_kinds.ir().body[0].result.type.shape == (16,)


def test_devices_are_looked_up_by_name(monkeypatch):
    from tilevm.frontend import devices

    x = np.arange(4, dtype=np.float32)
    with pytest.raises(ValueError,
                       match=r"device='tpu' is not available \(available: cpu, cuda, interp"):
        transpose_copy(x.reshape(2, 2), x.reshape(2, 2), device="tpu")
    seen = []
    monkeypatch.setattr(devices, "_RUNNERS", {})
    devices.register_device("fake", lambda k, bound, consts: seen.append((k.name, bound.dims)))
    transpose_copy(x.reshape(2, 2), x.reshape(2, 2), device="fake")
    assert seen == [("transpose_copy", {"m": 2, "n": 2})]


@tv.kernel
def branches(x: tv.Global[f32, "n"], *, flip: tv.Const = False):
    tv.launch(grid=1)
    if n > 4:
        y = tv.load(x, (0,), (4,)) * 2.0
        label = n * 10
    else:
        y = tv.zeros((4,), f32)
        label = n
    tv.store(x, y + tv.cast(label, f32), (0,))


def test_a_name_defined_in_both_branches_lives_after_the_if():
    for size in (3, 6):
        x = np.arange(size, dtype=np.float32)
        expected = x.copy()
        expected[:4] = (x[:4] * 2 + size * 10) if size > 4 else size
        branches(x, device="interp")
        assert np.array_equal(x, expected)


@tv.kernel
def aliasing(a: tv.Global[f32, "n"], b: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    t = tv.load(a, (0,), (4,))  # a user variable named like the temporaries
    x = t  # a copy: changing x must leave t alone
    pair = (x * 3.0, 1.0)
    y = z = pair[0]
    for t0 in tv.range(0, 2):  # noqa: B007 - a name like a temporary's, on purpose
        x = x + 1.0
        z = z + pair[1]
    tv.store(b, x + t + y + z + pair[0], (0,))


def test_assignment_copies_values_and_never_aliases_variables():
    a = np.arange(4, dtype=np.float32)
    b = np.zeros(4, np.float32)
    aliasing(a, b, device="interp")
    x, t, y = a + 2, a, a * 3
    z = y + 2
    assert np.array_equal(b, x + t + y + z + y)


def test_a_read_only_output_is_refused_before_the_run_naming_the_argument():
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    x.flags.writeable = False  # read-only inputs are fine
    out = np.zeros((2, 2), np.float32)
    transpose_copy(x, out)
    assert np.array_equal(out, x.T)
    frozen = np.zeros((4, 4), np.float32)[::2, ::2]  # a strided view: the kernel gets a copy
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="argument 'y': the kernel writes it, but the array is "
                                         "read-only"):
        transpose_copy(x, frozen)
    assert not frozen.any()
    packed = tv.HostTensor.from_numpy(np.zeros((2, 2), np.float32), tv.f32)
    packed.data.flags.writeable = False
    with pytest.raises(ValueError, match="argument 'y': the kernel writes it"):
        transpose_copy(x, packed)
