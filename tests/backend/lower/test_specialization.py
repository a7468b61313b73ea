"""Specialization (issue 8, item 2): the facts computed at launch (base alignment, unit and
128-bit strides, sizes that are multiples of 16) are part of a compiled kernel's identity, so one
kernel called on aligned and on misaligned data runs two binaries, each right; a sub-byte view
may start mid-byte."""

from __future__ import annotations

import numpy as np

import tilevm as tv
from tilevm import f32, u4
from tilevm.backend.lower import Specialization
from tilevm.frontend.arguments import bind_arguments
from tilevm.ir.thread.printer import dump
from tilevm.runtime.cpu_device import compiled_for_cpu


@tv.kernel
def scale(x: tv.Global[f32, "m", "n"], y: tv.Global[f32, "m", "n"], *, rows: tv.Const = 4,
          cols: tv.Const = 64):
    tv.launch(grid=(tv.cdiv(m, rows), tv.cdiv(n, cols)), warps=1)
    r0, c0 = tv.block_idx(0) * rows, tv.block_idx(1) * cols
    tv.store(y, tv.load(x, (r0, c0), (rows, cols)) * 3.0, (r0, c0))


def _spec(kernel, *args) -> Specialization:
    ir = kernel.ir()
    bound = bind_arguments(ir, args)
    return Specialization.of_arguments(ir, bound.tensors, bound.dims)


def test_the_facts_of_a_call():
    # A numpy argument reaches the kernel as a contiguous copy (written back after the call):
    # the facts are those of the copy. A HostTensor view reaches it as it is.
    base = tv.HostTensor.from_numpy(np.zeros((64, 128), np.float32))
    facts = _spec(scale, base, base)
    assert facts.tensor("x").aligned and facts.tensor("x").strides == ("16", "1")
    assert facts.dims16 == {"m", "n"}
    shifted = base[:, 1:101]  # starts 4 bytes in; 100 columns
    facts = _spec(scale, shifted, shifted)
    assert not facts.tensor("x").aligned and facts.tensor("x").strides == ("16", "1")
    assert facts.dims16 == {"m"}
    odd_pitch = tv.HostTensor.from_numpy(np.zeros((64, 129), np.float32))[:, :128]
    assert _spec(scale, odd_pitch, odd_pitch).tensor("x").strides == ("any", "1")
    numpy_view = np.zeros((64, 129), np.float32)[:, 1:129]
    assert _spec(scale, numpy_view, numpy_view).tensor("x").aligned
    nibbles = tv.HostTensor.from_bits(np.zeros((4, 64), np.uint8), "u4")
    assert not _spec(_copy4, nibbles[:, 1:33], nibbles[:, 1:33]).tensor("x").aligned
    assert _spec(_copy4, nibbles[:, 32:64], nibbles[:, 32:64]).tensor("x").aligned


def test_aligned_and_misaligned_calls_run_different_binaries_each_right():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((64, 129)).astype(np.float32)
    whole = tv.HostTensor.from_numpy(big)
    calls = {"aligned": tv.HostTensor.from_numpy(big[:, :128].copy()),
             "shifted": whole[:, 1:101]}
    lowered = {}
    for name, x in calls.items():
        y = tv.HostTensor.empty(x.shape, f32)
        scale(x, y, device="cpu")
        want = x.to_numpy().astype(np.float32) * np.float32(3.0)
        np.testing.assert_array_equal(y.to_numpy(), want)
        lowered[name], _ = compiled_for_cpu(scale.ir(), _spec(scale, x, y))
    widths = {name: {a.bits for a in k.report.accesses if a.space == "global"}
              for name, k in lowered.items()}
    # The misaligned x is read element by element; y (a fresh tensor) is still written in 128 bits.
    assert widths == {"aligned": {128}, "shifted": {32, 128}}, widths


@tv.kernel
def _copy4(x: tv.Global[u4, "m", "n"], y: tv.Global[u4, "m", "n"]):
    tv.launch(grid=tv.cdiv(n, 32), warps=1)
    c0 = tv.block_idx() * 32
    tv.store(y, tv.load(x, (0, c0), (4, 32)), (0, c0))


def test_a_sub_byte_view_may_start_mid_byte():
    rng = np.random.default_rng(2)
    src_bits = rng.integers(0, 16, size=(4, 70))
    dst_bits = rng.integers(0, 16, size=(4, 70))
    src, dst = tv.HostTensor.from_bits(src_bits, u4), tv.HostTensor.from_bits(dst_bits, u4)
    _copy4(src[:, 3:40], dst[:, 1:38], device="cpu")  # both start in the middle of a byte
    want = dst_bits.copy()
    want[:, 1:38] = src_bits[:, 3:40]
    np.testing.assert_array_equal(dst.bits(), want)  # the neighbouring nibbles kept


def test_offsets_fit_in_i32_exactly_when_every_element_reached_does():
    # The fact against a brute-force enumeration of the view's element offsets.
    from tilevm.backend.lower.specialization import offsets_fit_i32

    cases = [(0, (2, 3), (3, 1)), (2**31 - 4, (2, 3), (1, 1)), (2**31 - 3, (2, 3), (1, 1)),
             (5, (1, 2), (0, 2**31 - 6)), (5, (1, 2), (0, 2**31 - 5)), (2**31, (0, 4), (1, 1)),
             (2**31 - 1, (3,), (-2**31,)), (2**31 - 1, (3,), (-2**30,)), (0, (4, 0), (2**40, 1))]
    for offset, shape, strides in cases:
        reached = [offset + sum(i * s for i, s in zip(index, strides))
                   for index in np.ndindex(*shape)]
        want = all(-2**31 <= e < 2**31 for e in reached)
        assert offsets_fit_i32(offset, shape, strides) == want, (offset, shape, strides)


@tv.kernel
def _copy_rows(x: tv.Global[tv.u8, "m", "n"], y: tv.Global[tv.u8, "m", "n"]):
    tv.launch(grid=1, warps=1)
    tv.store(y, tv.load(x, (0, 0), (2, 32)), (0, 0))


@tv.kernel
def _copy_rows4(x: tv.Global[u4, "m", "n"], y: tv.Global[u4, "m", "n"]):
    tv.launch(grid=1, warps=1)
    tv.store(y, tv.load(x, (0, 0), (2, 32)), (0, 0))


def test_a_view_reaching_past_2_to_the_31_elements_is_addressed_in_64_bits():
    # Row 1 of x lies 2^31 + 64 elements after row 0: a kernel that summed offsets in 32 bits
    # would read row 1 from near the start of the buffer. The buffer is mostly untouched zero
    # pages (np.zeros), so this costs little memory. Small tensors get the 32-bit offsets.
    rng = np.random.default_rng(3)
    for kernel, dt in ((_copy_rows, tv.u8), (_copy_rows4, u4)):
        pitch = 2**31 + 64
        nbits = dt.nbits
        storage = tv.HostTensor(np.zeros((pitch + 32) * nbits // 8, np.uint8), dt, (pitch + 32,))
        x = tv.HostTensor(storage.data, dt, (2, 32), (pitch, 1))
        bits = rng.integers(1, 2**nbits, size=(2, 32))
        x.set_bits(bits)
        y = tv.HostTensor.empty((2, 32), dt)
        assert not _spec(kernel, x, y).tensor("x").offsets32
        assert _spec(kernel, x, y).tensor("y").offsets32
        kernel(x, y, device="cpu")
        np.testing.assert_array_equal(y.bits(), bits)
        wide = dump(compiled_for_cpu(kernel.ir(), _spec(kernel, x, y))[0].thread)
        narrow = dump(compiled_for_cpu(kernel.ir(), _spec(kernel, y, y))[0].thread)
        assert "add.s64" in wide and "add.s64" not in narrow
