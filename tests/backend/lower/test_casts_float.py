"""The packed-float casts (``tilevm.backend.lower.casts.float_words``): every code of every float
type of at most 8 bits, in every position of the group, to f16 and bf16, against the exact value
rounded once (numpy / ml_dtypes in float64; where that is NaN, any NaN of the destination type,
as the numeric contract has it); run on the CPU backend in a
rolled loop over groups, one JIT module and one launch per (type, target, order); and every
sequence through NVRTC for sm_80, sm_89 and sm_90 without spills."""

from __future__ import annotations

import numpy as np
import pytest
from float_cast_harness import (
    NAN_BITS,
    conversion_kernel,
    expected_halves,
    float_types,
    is_nan_bits,
    mismatches,
    run_conversion,
)

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.backend.interp.numeric import encode
from tilevm.backend.lower.casts.float_words import (
    float_group_size,
    float_words_to_half,
    float_words_to_half_free,
)
from tilevm.ir.dtypes import dtype
from tilevm.ir.thread import B32, Instr, KernelBuilder, walk

TYPES = [d.name for d in float_types()]
# sm_80 and sm_90 take different sequences (bf16 fma or mul, e4m3 bits or the hardware cvt);
# sm_89 mixes them: one type that differs there.
TARGET_CASES = [(name, t) for name in TYPES for t in (80, 90)] + [("f8e4m3fn", 89)]


def test_every_float_of_at_most_8_bits_is_covered() -> None:
    assert len(TYPES) == 20
    for name in ("f3e1m1", "f4e2m1fn", "f6e3m2fn", "f7e5m1", "f8e4m3fn", "f8e5m2", "f8e4m3fnuz",
                 "f8e5m2fnuz", "f8e8m0fnu"):
        assert name in TYPES


@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("dst", ["f16", "bf16"])
def test_oracle_is_the_interpreters_cast(name: str, dst: str) -> None:
    """The expected patterns are the interpreter's cast of the decoded value, bit for bit for
    every code that is not NaN; NaN codes (and only they) expect a NaN, which the interpreter
    also gives."""
    src = dtype(name)
    codes = np.arange(1 << src.nbits)
    values = src.decode(codes)
    want = expected_halves(src, dst)
    interp = encode(values, dtype(dst)).astype(np.uint16)
    nan = np.isnan(values)
    assert np.array_equal(interp[~nan], want[~nan])
    assert np.array_equal(is_nan_bits(want, dst), nan) and is_nan_bits(interp[nan], dst).all()
    assert (want[nan] == NAN_BITS[dst]).all()
    # the comparison accepts any NaN for a NaN and nothing else
    other_nan = np.full_like(want, 0xFFFF if dst == "f16" else 0xFFC1)
    assert not mismatches(np.where(nan, other_nan, want), want, dst).any()
    assert mismatches(np.where(nan, 0x7C00 if dst == "f16" else 0x7F80, want), want,
                      dst).sum() == nan.sum()


@pytest.mark.parametrize("name,target", TARGET_CASES)
@pytest.mark.parametrize("natural", [True, False], ids=["natural", "free"])
def test_every_code_in_every_position(name: str, target: int, natural: bool) -> None:
    src = dtype(name)
    rng = np.random.default_rng(sum(map(ord, name)) + target)
    results = run_conversion(src, ["f16", "bf16"], target, natural, rng)
    size = float_group_size(src)
    for dst, (codes, got) in zip(["f16", "bf16"], results, strict=True):
        # every code reached every output slot
        assert all(len(np.unique(codes[:, s])) == 1 << src.nbits for s in range(size))
        want = expected_halves(src, dst)[codes]
        bad = np.argwhere(mismatches(got, want, dst))
        if len(bad):
            g, s = bad[0]
            pytest.fail(f"{name} -> {dst} sm_{target}: {len(bad)} wrong halves, e.g. code "
                        f"{codes[g, s]:#x} in slot {s}: {got[g, s]:#06x}, want {want[g, s]:#06x}")


def _is_bit_permutation(perm: tuple[int, ...]) -> bool:
    """Whether slot ``s`` holds the element whose index is ``s`` with its bits permuted."""
    size = len(perm)
    bits = size.bit_length() - 1
    images = [perm[1 << i] for i in range(bits)]
    if size != 1 << bits or perm[0] != 0 or sorted(images) != [1 << i for i in range(bits)]:
        return False
    return all(perm[s] == sum(images[i] for i in range(bits) if s >> i & 1) for s in range(size))


@pytest.mark.parametrize("name", TYPES)
def test_free_order_is_one_bit_permutation_on_every_target(name: str) -> None:
    """The free order: a permutation of the index bits, the same on sm_80, sm_89 and sm_90 (so
    that weights laid out for it suit every target); natural order is the identity."""
    src = dtype(name)
    size = float_group_size(src)
    for dst in ("f16", "bf16"):
        perms = set()
        for target in (80, 89, 90):
            kb = KernelBuilder("k", block_threads=32)
            words = [kb.reg(B32, "w") for _ in range(src.nbits * size // 32)]
            pairs, perm = float_words_to_half_free(kb, words, src, dtype(dst), target)
            assert len(pairs) == size // 2 and _is_bit_permutation(perm), (dst, target, perm)
            assert len(float_words_to_half(kb, words, src, dtype(dst), target)) == size // 2
            perms.add(perm)
        assert len(perms) == 1, (dst, perms)


def _is_plumbing(instr: Instr) -> bool:
    """A register move or an integer truncation (``cvt.u16.u32``): no instruction in SASS."""
    if instr.op.name == "mov":
        return True
    return instr.op.name == "cvt" and instr.type.is_int and instr.mod("src").is_int


@pytest.mark.parametrize("name", TYPES)
def test_no_per_element_code(name: str) -> None:
    """Word-wide sequences: a handful of Thread IR instructions per element, whatever the type
    (a per-element fallback takes 10 or more); moves and truncations are not counted."""
    src = dtype(name)
    size = float_group_size(src)
    for target in (80, 90):
        for dst in ("f16", "bf16"):
            kb = KernelBuilder("k", block_threads=32)
            words = [kb.reg(B32, "w") for _ in range(src.nbits * size // 32)]
            float_words_to_half_free(kb, words, src, dtype(dst), target)
            count = sum(1 for s in walk(kb.finish().body)
                        if isinstance(s, Instr) and not _is_plumbing(s))
            assert count / size <= 4.5, (name, dst, target, count / size)


def test_group_sizes() -> None:
    sizes = {name: float_group_size(dtype(name)) for name in TYPES}
    assert sizes["f8e4m3fn"] == 4 and sizes["f4e2m1fn"] == 8 and sizes["f6e3m2fn"] == 16
    assert sizes["f3e1m1"] == sizes["f5e2m2"] == sizes["f7e3m3"] == 32


def test_refuses_other_types() -> None:
    kb = KernelBuilder("k", block_threads=32)
    w = kb.reg(B32, "w")
    with pytest.raises(ValueError, match="not a float of at most 8 bits"):
        float_words_to_half(kb, [w], dtype("u8"), dtype("f16"), 80)
    with pytest.raises(ValueError, match="f16 or bf16"):
        float_words_to_half(kb, [w], dtype("f8e4m3fn"), dtype("f32"), 80)
    with pytest.raises(ValueError, match="words"):
        float_words_to_half(kb, [w, w], dtype("f8e4m3fn"), dtype("f16"), 80)


@pytest.mark.parametrize("target", [80, 89, 90])
def test_nvrtc_compiles_every_sequence_without_spills(target: int) -> None:
    """Every (type, destination, order) in one translation unit: ptxas accepts each and keeps it
    in registers (no stack frame, no spills)."""
    kernels = []
    for name in TYPES:
        for natural in (True, False):
            kernel, _ = conversion_kernel(dtype(name), ["f16", "bf16"], target, natural, 4,
                                          unroll=True)
            kernels.append(kernel)
    binary = compile_cuda(emit_cuda(kernels, f"sm_{target}"), f"sm_{target}")
    assert set(binary.resources) == {k.name for k in kernels}
    for kernel_name, res in binary.resources.items():
        assert not res.spills and res.stack_frame_bytes == 0, (kernel_name, res)
