"""The Thread IR accepts only instruction forms that the PTX ISA defines and ptxas assembles.

Each rejected form below was found printed by the CUDA backend and refused by ptxas (its message
quoted beside it); the accepted forms compile in ``tests/backend/cuda/test_ptx_forms_compile.py``.
Sources: PTX ISA, "Parallel Synchronization and Communication Instructions: atom" (bit-size
operations .and/.or/.xor/.cas/.exch, integer operations .add/.inc/.dec/.min/.max) and "Data
Movement and Conversion Instructions: cvt" (``cvt.frnd2{.satfinite}.f16.f32``, ``.frnd2 = {.rn,
.rz}``).
"""

from __future__ import annotations

import pytest

from tilevm.ir.thread import (
    B32,
    F16,
    F32,
    F64,
    U32,
    U64,
    KernelBuilder,
    ThreadIRError,
    scalar_type,
)
from tilevm.ir.thread.intrinsics.memory import ATOM_TYPES
from tilevm.ir.thread.verify import verify

ALL_ATOM_TYPES = ("b32", "b64", "u32", "u64", "s32", "s64", "f32", "f64")

# (op, type) pairs ptxas refuses, each with the start of its message.
PTXAS_REFUSES = [
    ("add", "s64", "Operation .add requires .u32 or .s32 or .u64 or .f64"),
    ("add", "b32", "Operation .add requires"),
    ("exch", "u32", "Operation .exch requires .b32 or .b64"),
    ("exch", "f32", "Operation .exch requires .b32 or .b64"),
    ("cas", "u32", "Unexpected instruction types specified for 'atom'"),
    ("cas", "f32", "Unexpected instruction types specified for 'atom'"),
    ("min", "b32", "Operation .min requires .u32 or .s32 or .u64 or .s64"),
    ("and", "u32", "Operation .and requires .b32 or .b64"),
    ("inc", "b32", "Operation .inc requires .u32"),
]


def _atom(op: str, tname: str, *, red: bool = False, space: str = "global") -> None:
    kb = KernelBuilder("atomics", block_threads=32, shared_bytes=64)
    t = scalar_type(tname)
    addr = kb.param("p", U64, pointer=True) if space == "global" else kb.mov(0, U32)
    value = kb.mov(1, t) if t.kind != "float" else kb.mov(1.0, t)
    if red:
        kb.red(space, op, addr, value, type=t)
    else:
        kb.atom(space, op, addr, *((value, value) if op == "cas" else (value,)), type=t)


@pytest.mark.parametrize(("op", "tname", "ptxas_says"), PTXAS_REFUSES)
def test_atom_forms_ptxas_refuses_are_rejected(op: str, tname: str, ptxas_says: str) -> None:
    assert tname not in ATOM_TYPES[op], ptxas_says
    with pytest.raises(ThreadIRError, match=f"type must be one of {', '.join(ATOM_TYPES[op])}"):
        _atom(op, tname)


def test_every_atom_op_accepts_exactly_its_types() -> None:
    # The ISA's classes: bit-size ops take .b types, integer ops integer types, add also floats.
    for op, types in ATOM_TYPES.items():
        want = {"and": ("b32", "b64"), "or": ("b32", "b64"), "xor": ("b32", "b64"),
                "cas": ("b32", "b64"), "exch": ("b32", "b64"), "inc": ("u32",),
                "dec": ("u32",)}.get(op)
        if want is not None:
            assert set(types) == set(want), op
        for tname in ALL_ATOM_TYPES:
            for space in ("global", "shared"):
                if tname in types:
                    _atom(op, tname, space=space)
                    if op not in ("cas", "exch"):
                        _atom(op, tname, red=True, space=space)
                else:
                    with pytest.raises(ThreadIRError):
                        _atom(op, tname, space=space)


@pytest.mark.parametrize(("rnd", "src", "ok"), [
    ("rn", F32, True), ("rz", F32, True),
    ("rm", F32, False),   # ptxas: "Modifier '.satfinite' cannot be combined with modifier '.rm'"
    ("rp", F32, False),
    ("rn", F64, False),   # ptxas: "Unexpected instruction types specified for 'cvt'"
])
def test_cvt_satfinite_only_from_f32_with_rn_or_rz(rnd: str, src, ok: bool) -> None:
    for dst in ("f16", "bf16"):
        kb = KernelBuilder("sat", block_threads=32)
        x = kb.param("x", src)
        if ok:
            kb.cvt(x, dst, rnd=rnd, sat="satfinite")
        else:
            with pytest.raises(ThreadIRError, match="satfinite"):
                kb.cvt(x, dst, rnd=rnd, sat="satfinite")


def test_cvt_between_f16_and_bf16_needs_a_rounding() -> None:
    # Neither type holds all the other's values (bf16 has 8 significant bits, f16 5 exponent
    # bits), so the ISA's rule "rounding modifier is mandatory for float-to-float conversions
    # that may lose precision" applies in both directions.
    for src, dst in (("f16", "bf16"), ("bf16", "f16")):
        kb = KernelBuilder("h", block_threads=32)
        x = kb.param("x", src)
        with pytest.raises(ThreadIRError, match="needs rn/rz/rm/rp"):
            kb.cvt(x, dst)
        kb.cvt(x, dst, rnd="rn")
    kb = KernelBuilder("h", block_threads=32)
    kb.cvt(kb.param("x", F16), F32)     # widening stays exact and takes none


def test_cvt_bf16_with_8_bit_integers_is_rejected() -> None:
    # ptxas: "Arguments mismatch for instruction 'cvt'" (cvt.rn.bf16.s8, cvt.rni.u8.bf16)
    kb = KernelBuilder("b", block_threads=32)
    x8 = kb.cvt(kb.param("x", U32), "s8")
    with pytest.raises(ThreadIRError, match="bf16"):
        kb.cvt(x8, "bf16", rnd="rn")
    with pytest.raises(ThreadIRError, match="bf16"):
        kb.cvt(kb.param("h", "bf16"), "u8", rnd="rni")
    kb.cvt(kb.cvt(x8, "s16"), "bf16", rnd="rn")


@pytest.mark.parametrize("src", ["f64", "f16", "s32", "u16"])
def test_cvt_bf16_with_partners_other_than_f32_needs_sm90(src: str) -> None:
    # ptxas for sm_80: "Feature 'cvt with .bf16.f64' requires .target sm_90 or higher" (and the
    # same for .bf16.f16, .bf16.s32, .f64.bf16, .s32.bf16); bf16 <-> f32 is sm_80.
    def build(s: str, d: str) -> object:
        kb = KernelBuilder("b", block_threads=32)
        x = kb.param("x", s)
        st, dt = scalar_type(s), scalar_type(d)
        if dt.is_int:
            rnd = "rni"
        elif st.is_float and dt.bits > st.bits:
            rnd = None   # widening: exact
        else:
            rnd = "rn"
        kb.cvt(x, d, rnd=rnd)
        return kb.finish()

    for kernel in (build(src, "bf16"), build("bf16", src)):
        verify(kernel, arch=90, ptx_isa=(7, 8))
        with pytest.raises(ThreadIRError, match="needs sm_90"):
            verify(kernel, arch=80, ptx_isa=(8, 8))
    verify(build("f32", "bf16"), arch=80, ptx_isa=(7, 0))
    # PTX ISA cvt: "cvt.f32.bf16 introduced in PTX ISA version 7.1" (cvt.bf16.f32: 7.0)
    verify(build("bf16", "f32"), arch=80, ptx_isa=(7, 1))
    with pytest.raises(ThreadIRError, match=r"cvt\.f32\.bf16 needs PTX ISA 7\.1"):
        verify(build("bf16", "f32"), arch=80, ptx_isa=(7, 0))


def test_mov_of_8_bit_registers_is_mov_b16() -> None:
    # PTX's mov has no .b8 type (ptxas: "Unexpected instruction types specified for 'mov'");
    # 8-bit values live in 16-bit registers.
    kb = KernelBuilder("m", block_threads=32)
    x = kb.cvt(kb.param("x", U32), "u8")
    y = kb.mov(x, "s8")
    kernel = kb.finish()
    assert next(s for s in kernel.body if getattr(s, "dst", None) is y).mnemonic == "mov.b16"
    kb = KernelBuilder("m", block_threads=32)
    w = kb.mov(kb.param("x", U32), B32)
    assert next(s for s in kb.finish().body if getattr(s, "dst", None) is w).mnemonic == "mov.b32"


def test_ld_nc_takes_only_ca_cg_cs() -> None:
    # PTX ISA "ld.global.nc": .cop = {.ca, .cg, .cs}; ptxas: "Illegal cache operation for
    # instruction 'ld.nc'" for .lu and .cv.
    for cache in ("lu", "cv"):
        kb = KernelBuilder("nc", block_threads=32)
        with pytest.raises(ThreadIRError, match="nc takes the cache operators"):
            kb.ld("global", kb.param("p", U64, pointer=True), U32, nc=True, cache=cache)
    for cache in (None, "ca", "cg", "cs"):
        kb = KernelBuilder("nc", block_threads=32)
        kb.ld("global", kb.param("p", U64, pointer=True), U32, nc=True, cache=cache)


@pytest.mark.parametrize(("src", "dst", "ok"), [
    ("s32", "s8", True), ("s32", "u8", True), ("u16", "s16", True), ("s8", "u16", True),
    ("u64", "s64", True), ("s64", "u32", True),
    # every source value fits: ptxas says "Illegal modifier '.sat' for instruction 'cvt'"
    ("u8", "u16", False), ("u8", "s16", False), ("s8", "s32", False), ("u32", "s64", False),
    ("s32", "s32", False), ("u64", "u64", False),
])
def test_cvt_sat_between_integers_only_where_a_value_can_saturate(src: str, dst: str,
                                                                   ok: bool) -> None:
    kb = KernelBuilder("sat", block_threads=32)
    x = kb.param("x", "u64")
    v = kb.cvt(x, src) if src != "u64" else x
    if ok:
        kb.cvt(v, dst, sat="sat")
    else:
        with pytest.raises(ThreadIRError, match="nothing to saturate"):
            kb.cvt(v, dst, sat="sat")


def test_cvt_bf16_to_bf16_needs_sm90() -> None:
    # ptxas for sm_80: "Feature 'cvt with .bf16.bf16' requires .target sm_90 or higher"
    kb = KernelBuilder("b", block_threads=32)
    kb.cvt(kb.param("x", "bf16"), "bf16")
    kernel = kb.finish()
    verify(kernel, arch=90, ptx_isa=(7, 8))
    with pytest.raises(ThreadIRError, match="needs sm_90"):
        verify(kernel, arch=80, ptx_isa=(8, 8))
