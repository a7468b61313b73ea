"""Register tiles of every type of 1 to 8 bits are packed: a thread's elements are dense,
LSB-first b32 words (DESIGN §3) — four bytes or 32 bits to a word — so byte tiles are the
register fragments ``mma.sync`` takes and loads, stores and ``view`` move whole words.

Values are checked against the interpreter (the test session runs every interpreter kernel on
the CPU backend too, bit for bit) and against numpy; the storage against the lowered Thread IR
and the SASS ptxas makes of it."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tilevm as tv
from tilevm.backend.cuda.sass import disassemble
from tilevm.backend.lower import lower
from tilevm.backend.lower.dtype_map import is_packed
from tilevm.ir.dtypes import all_dtypes
from tilevm.ir.thread.types import B32
from tilevm.runtime.compile import specialization_of

SMALL = [dt for dt in all_dtypes() if dt.nbits <= 8]


def test_every_type_of_at_most_16_bits_is_packed():
    assert len(SMALL) == 36
    assert all(is_packed(dt) for dt in SMALL)
    assert all(is_packed(tv.dtype(n)) for n in ("u16", "i16", "f16", "bf16"))
    assert not any(is_packed(tv.dtype(n)) for n in ("i17", "u32", "f32", "f64"))


def _copy_kernel(dt):
    @tv.kernel
    def copy(x: tv.Global[dt, "n"], y: tv.Global[dt, "n"], *, block: tv.Const = 512):
        tv.launch(grid=tv.cdiv(n, block), warps=1)
        o = tv.block_idx() * block
        tile = tv.load(x, (o,), (block,), mask=False, layout=tv.spatial(32) * tv.local(16))
        tv.store(y, tile, (o,), mask=False)

    return copy


@pytest.mark.parametrize("name,words", [("u8", 4), ("f8e4m3fn", 4), ("i1", 1), ("u1", 1),
                                        ("f16", 8), ("bf16", 8), ("i16", 8)])
def test_a_thread_holds_its_elements_in_whole_words(name, words):
    dt = tv.dtype(name)
    kernel = _copy_kernel(dt).ir()
    lowered = lower(kernel, 80, specialization_of(kernel, "aligned"))
    tiles = [a for a in lowered.thread.arrays if a.type == B32 and a.length == words]
    assert tiles, [(a.name, a.type, a.length) for a in lowered.thread.arrays]


@pytest.mark.parametrize("name", ["u8", "i8", "f8e5m2"])
def test_a_byte_tile_moves_as_whole_words(name):
    """An aligned byte copy (unmasked: no edge path) is 128-bit loads and stores with no bit
    moves in between."""
    compiled = tv.compile(_copy_kernel(tv.dtype(name)), "sm_80", spec="aligned")
    ops = re.findall(r"\*/\s+(?:@!?P\w+\s+)?([A-Z][A-Z0-9]*)((?:\.[A-Z0-9_]+)*)",
                     disassemble(compiled.cubin))
    loads = [m for op, m in ops if op == "LDG"]
    stores = [m for op, m in ops if op == "STG"]
    assert loads and all(m.endswith(".128") for m in loads), loads
    assert stores and all(m.endswith(".128") for m in stores), stores
    moved = [op for op, _ in ops if op in ("PRMT", "BFE", "BFI")]
    assert not moved, moved
    assert all(a.bits == 128 for a in compiled.lowered.report.accesses)


def _elementwise_kernel(dt, cast_to):
    @tv.kernel
    def mixed(x: tv.Global[dt, "n"], y: tv.Global[dt, "n"], low: tv.Global[dt, "n"],
              less: tv.Global[tv.u1, "n"], wide: tv.Global[cast_to, "n"],
              back: tv.Global[dt, "n"]):
        tv.launch(grid=tv.cdiv(n, 96), warps=1)
        o = tv.block_idx() * 96
        a = tv.load(x, (o,), (96,))
        b = tv.load(y, (o,), (96,))
        lt = a < b
        tv.store(less, lt, (o,))
        tv.store(low, tv.where(lt, a, b), (o,))
        w = tv.cast(a, cast_to)
        tv.store(wide, w, (o,))
        tv.store(back, tv.cast(w + tv.cast(b, cast_to), dt), (o,))

    return mixed


@pytest.mark.parametrize("name", ["u8", "i8", "f8e4m3fn", "f8e5m2", "f8e8m0fnu", "u1", "i1"])
def test_byte_and_bit_tiles_compute_like_numpy(name):
    """Loads, compares, ``where``, casts and stores of packed tiles (a length that is not a
    multiple of the block: partial words at the edge)."""
    dt = tv.dtype(name)
    n = 250
    rng = np.random.default_rng(3)
    codes = [rng.integers(0, 1 << dt.nbits, n) for _ in range(2)]
    if dt.is_float:  # NaN codes compare and convert fine, but keep the numpy oracle simple
        codes = [np.where(np.isnan(dt.decode(c)), 0, c) for c in codes]
    x, y = (tv.HostTensor.from_bits(c, dt) for c in codes)
    low, back = tv.HostTensor.empty([n], dt), tv.HostTensor.empty([n], dt)
    less = tv.HostTensor.empty([n], tv.u1)
    wide = np.zeros(n, np.float32)
    _elementwise_kernel(dt, tv.f32)(x, y, low, less, wide, back, device="interp")
    a, b = (dt.decode(c) for c in codes)
    assert np.array_equal(less.bits(), (a < b).astype(np.int64))
    assert np.array_equal(low.bits(), np.where(a < b, codes[0], codes[1]))
    assert np.array_equal(wide, a.astype(np.float32))
    total = a.astype(np.float32).astype(np.float64) + b.astype(np.float32)
    if dt.is_integer and dt.nbits == 1:  # into a 1-bit integer: x != 0
        want = total != 0
    elif dt.is_integer:  # float into integer: toward zero, saturating
        want = dt.encode(np.trunc(total), saturate=True)
    else:
        want = dt.encode(total)
    assert np.array_equal(back.bits(), np.asarray(want, np.int64))


def test_viewing_bytes_as_words_moves_no_bits():
    """``view`` of a thread's 16 bytes as 4 u32 words is the same registers."""

    @tv.kernel
    def as_words(x: tv.Global[tv.u8, "n"], y: tv.Global[tv.u32, "m"]):
        tv.launch(grid=1, warps=1)
        b = tv.load(x, (0,), (512,), mask=False, layout=tv.spatial(32) * tv.local(16))
        w = tv.view(b, tv.u32, tv.spatial(32) * tv.local(4))
        tv.store(y, w, (0,), mask=False)

    x = (np.arange(512) * 7 % 256).astype(np.uint8)
    y = np.zeros(128, np.uint32)
    as_words(x, y, device="interp")
    # Thread t holds bytes 16t … 16t + 15 and words 4t … 4t + 3: the same bits.
    assert np.array_equal(y, x.view("<u4"))
    compiled = tv.compile(as_words, "sm_80", spec="aligned")
    ops = re.findall(r"\*/\s+(?:@!?P\w+\s+)?([A-Z][A-Z0-9]*)", disassemble(compiled.cubin))
    assert not [op for op in ops if op in ("PRMT", "BFE", "BFI")], ops
