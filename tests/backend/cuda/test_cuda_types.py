"""C++ spellings of Thread IR constants: exact bits, checked by parsing the literal back in Python
(an independent parser) and, end to end, by the PTX NVRTC makes of them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.backend.cuda.cuda_types import c_bitcast, c_literal, c_type
from tilevm.ir.thread import (
    B16,
    BF16,
    F16,
    F32,
    F64,
    PRED,
    S16,
    S32,
    S64,
    U8,
    U32,
    U64,
    Const,
    KernelBuilder,
)


def _parse_float(text: str, bits: int) -> int:
    """The bit pattern C++ gives the literal ``text`` of a float/double."""
    if m := re.fullmatch(r"__uint_as_float\(0x([0-9a-f]{8})u\)", text):
        return int(m.group(1), 16)
    if m := re.fullmatch(r"__longlong_as_double\(0x([0-9a-f]{16})ll\)", text):
        return int(m.group(1), 16)
    if bits == 32:
        assert text.endswith("f"), text
        text = text[:-1]
    value = float.fromhex(text) if "0x" in text else float(text)
    if bits == 32:
        # The literal must be exactly representable: C++ would round, Python rounds the same way
        # only for exact values, so check exactness first.
        assert float(np.float32(value)) == value, text
        return int(np.array(value, np.float32).view(np.uint32))
    return int(np.array(value, np.float64).view(np.uint64))


def _parse_int(text: str) -> int:
    text = re.sub(r"\((short|unsigned short)\)", "", text)
    text = re.sub(r"(?<=[0-9a-f])(ull|ll|u)\b", "", text)
    return int(eval(text, {"__builtins__": {}}))  # only digits, hex, +, -, parentheses remain


def test_float32_literals_are_exact():
    rng = np.random.default_rng(5)
    patterns = [*rng.integers(0, 1 << 32, 4000, dtype=np.uint64),
                0, 0x80000000, 1, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7FC00123,
                0xFFFFFFFF, 0x3F800000, 0x3DCCCCCD, 0x00800000]
    for bits in map(int, patterns):
        text = c_literal(Const(bits, F32))
        assert _parse_float(text, 32) == bits, (hex(bits), text)


def test_float64_literals_are_exact():
    rng = np.random.default_rng(6)
    patterns = [*(rng.integers(0, 1 << 63, 2000, dtype=np.uint64) * 2 + 1),
                0, 1 << 63, 0x7FF0000000000000, 0x7FF8000000000001, 0x3FB999999999999A]
    for bits in map(int, patterns):
        text = c_literal(Const(bits, F64))
        assert _parse_float(text, 64) == bits, (hex(bits), text)


def test_simple_values_read_as_decimals():
    assert c_literal(Const.of(1.5, F32)) == "1.5f"
    assert c_literal(Const.of(-0.0, F32)) == "-0.0f"
    assert c_literal(Const.of(0.25, F64)) == "0.25"


@pytest.mark.parametrize(("value", "t"), [
    (-(1 << 31), S32), ((1 << 31) - 1, S32), (-(1 << 63), S64), (-7, S16), (0xFFFFFFFF, U32),
    (5, U32), (1 << 40, U64), (200, U8), (0x8000, B16), (0x3C00, F16), (0xBF80, BF16)])
def test_integer_and_pattern_literals(value, t):
    const = Const(value, t) if t.kind in ("float", "bits") else Const.of(value, t)
    text = c_literal(const)
    assert _parse_int(text) % (1 << t.bits) == const.bits, text


def test_predicates_are_words():
    assert c_literal(Const.of(True, PRED)) == "1u" and c_literal(Const.of(False, PRED)) == "0u"
    assert c_type(PRED).name == "unsigned"


def test_c_types_follow_the_register_widths():
    # Inline asm constraints: h = 16-bit, r = 32-bit, l = 64-bit, f = f32, d = f64.
    assert [c_type(t).constraint for t in (U8, B16, F16, BF16, S32, U32, F32, U64, F64)] == [
        "h", "h", "h", "h", "r", "r", "f", "l", "d"]


def test_bitcasts():
    f, u, i = c_type(F32), c_type(U32), c_type(S32)
    assert c_bitcast("x", f, u) == "__float_as_uint(x)"
    assert c_bitcast("x", u, f) == "__uint_as_float(x)"
    assert c_bitcast("x", u, i) == "(int)x"
    assert c_bitcast("x", f, f) == "x"
    with pytest.raises(ValueError, match="widths differ"):
        c_bitcast("x", f, c_type(F64))


def test_nvrtc_reads_the_exact_bits(nvrtc_cache):
    """End to end: each f32/f64 constant appears in the PTX as its exact hex pattern."""
    f32_bits = [0x3DCCCCCD, 0x00000001, 0x80000000, 0x7F800000, 0x7FC00000, 0x7F7FFFFF,
                0x3FC00000, 0x4B7FFFFF]
    f64_bits = [0x3FB999999999999A, 0x0000000000000001, 0xFFF0000000000000, 0x400921FB54442D18]
    kb = KernelBuilder("constants", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    constants = [(b, F32) for b in f32_bits] + [(b, F64) for b in f64_bits]
    for slot, (bits, t) in enumerate(constants):
        kb.st("global", out, kb.mov(Const(bits, t)), offset=8 * slot)
    binary = compile_cuda(emit_cuda(kb.finish(), "sm_80"), "sm_80", cache_dir=nvrtc_cache)
    for bits in f32_bits:
        assert f"0f{bits:08X}" in binary.ptx, hex(bits)
    for bits in f64_bits:
        assert f"0d{bits:016X}" in binary.ptx, hex(bits)
