"""The intrinsics emit_cuda prints as plain C++ (``tilevm.backend.cuda.cpp_intrinsics``): which
ones, how they read, that every such form compiles for sm_80 and sm_90, and that ptxas makes of
the C++ the same machine instructions as of the inline PTX it replaces (both spellings of one
kernel compiled, SASS opcode counts compared: ``emit_cuda(..., plain_cpp=False)`` is the inline
PTX spelling)."""

from __future__ import annotations

import re

import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.backend.cuda.cpp_intrinsics import prints_as_cpp
from tilevm.backend.cuda.sass import disassemble, sass_opcodes
from tilevm.ir.thread import (
    B16,
    B32,
    F16,
    F32,
    F64,
    S8,
    S16,
    S32,
    S64,
    U16,
    U32,
    U64,
    Instr,
    KernelBuilder,
    scalar_type,
    walk,
)

FLOAT_CMPS = ("eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num",
              "nan")


def _last_instr(kb: KernelBuilder) -> Instr:
    return kb._stack[-1][-1]


# -- which forms -------------------------------------------------------------------------------

def _form(build) -> Instr:
    kb = KernelBuilder("one", block_threads=32)
    args = {"a": kb.param("a", S32), "u": kb.param("u", U32), "x": kb.param("x", F32),
            "d": kb.param("d", F64)}
    args["h"] = kb.cvt(args["u"], U16)
    args["f16"] = kb.mov(args["h"], F16)
    build(kb, **args)
    return _last_instr(kb)


CPP = {
    "add.s32": lambda kb, a, **_: kb.add(a, a),
    "sub.u16": lambda kb, h, **_: kb.sub(h, h),
    "mul.lo.s32": lambda kb, a, **_: kb.mul(a, a),
    "mad.lo.u32": lambda kb, u, **_: kb.mad(u, u, u),
    "add.rn.f32": lambda kb, x, **_: kb.add(x, x),
    "mul.rn.f64": lambda kb, d, **_: kb.mul(d, d),
    "and.b32": lambda kb, u, **_: kb.and_(kb.mov(u, B32), 1),
    "not.b16": lambda kb, h, **_: kb.unary("not", kb.mov(h, B16)),
    "setp.lo.u32": lambda kb, a, **_: kb.setp("lt", a, a, type=U32),
    "setp.ne.f32": lambda kb, x, **_: kb.setp("ne", x, x),
    "setp.nan.f64": lambda kb, d, **_: kb.setp("nan", d, d),
    "selp.f16": lambda kb, f16, u, **_: kb.selp(f16, f16, kb.setp("eq", u, 0)),
    "mov.b32": lambda kb, x, **_: kb.mov(x, U32),
    "cvt.s64.s32": lambda kb, a, **_: kb.cvt(a, S64),
    "cvt.s8.u32": lambda kb, u, **_: kb.cvt(u, S8),
}
PTX = {
    "mul.hi.s32": lambda kb, a, **_: kb.mul(a, a, mode="hi"),
    "mul.wide.s32": lambda kb, a, **_: kb.mul(a, a, mode="wide"),
    "div.s32": lambda kb, a, **_: kb.div(a, a),
    "rem.u32": lambda kb, u, **_: kb.rem(u, u),
    "div.rn.f32": lambda kb, x, **_: kb.div(x, x),
    "min.f32": lambda kb, x, **_: kb.min(x, x),
    "fma.rn.f32": lambda kb, x, **_: kb.fma(x, x, x),
    "add.rn.f16": lambda kb, f16, **_: kb.add(f16, f16),
    "setp.lt.f16": lambda kb, f16, **_: kb.setp("lt", f16, f16),
    "shl.b32": lambda kb, u, **_: kb.shl(kb.mov(u, B32), u),
    "shr.s32": lambda kb, a, u, **_: kb.shr(a, u),
    "bfe.u32": lambda kb, u, **_: kb.bfe(u, u, u),
    "cvt.sat.u8.s32": lambda kb, a, **_: kb.cvt(a, "u8", sat="sat"),
    "cvt.rn.f32.s32": lambda kb, a, **_: kb.cvt(a, F32, rnd="rn"),
    "cvt.f64.f32": lambda kb, x, **_: kb.cvt(x, F64),
    "ex2.approx.f32": lambda kb, x, **_: kb.ex2(x),
}


@pytest.mark.parametrize("opcode", CPP)
def test_exact_forms_print_as_cpp(opcode):
    instr = _form(CPP[opcode])
    assert instr.mnemonic == opcode and prints_as_cpp(instr)


@pytest.mark.parametrize("opcode", PTX)
def test_other_forms_stay_inline_ptx(opcode):
    instr = _form(PTX[opcode])
    assert instr.mnemonic == opcode and not prints_as_cpp(instr)


# -- how they read -----------------------------------------------------------------------------

def test_spelling():
    kb = KernelBuilder("spelling", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    a, b, u = kb.param("a", S32), kb.param("b", S32), kb.param("u", U32)
    x, y = kb.param("x", F32), kb.param("y", F32)
    h = kb.cvt(u, U16, out=kb.reg(U16, name="h"))
    kb.loc = "user.py:7:3"
    results = [
        kb.add(a, b, out=kb.reg(S32, name="sum")),
        kb.mul(h, h, out=kb.reg(U16, name="square")),
        kb.sub(h, 1, out=kb.reg(U16, name="less")),
        kb.setp("lt", a, b, type=U32, out=kb.reg("pred", name="below")),
        kb.setp("ne", x, y, out=kb.reg("pred", name="ordered_ne")),
        kb.setp("neu", x, y, out=kb.reg("pred", name="unordered_ne")),
        kb.setp("geu", x, y, out=kb.reg("pred", name="not_below")),
        kb.setp("num", x, y, out=kb.reg("pred", name="numbers")),
        kb.cvt(u, "u8", out=kb.reg("u8", name="low_byte")),
        kb.mov(x, U32, out=kb.reg(U32, name="bits")),
    ]
    kb.selp(a, b, results[3], out=kb.reg(S32, name="chosen"))
    kb.add(kb.mul(x, y, out=kb.reg(F32, name="product")), 1.0, out=kb.reg(F32, name="total"))
    kb.loc = "user.py:8:3"
    for r in results:
        kb.st("global", out, r if r.type.kind != "pred" else kb.selp(1, 0, r, type=U32))
    lines = [line.strip() for line in emit_cuda(kb.finish(), "sm_80").splitlines()]
    want = [
        "h = (unsigned short)u;",
        "// user.py:7:3",                                # the source line heads its statements
        "sum = (int)((unsigned)a + (unsigned)b);",       # signed overflow wraps through unsigned
        "square = (unsigned short)((unsigned)h * (unsigned)h);",  # no int overflow either
        "less = (unsigned short)(h - 1);",               # a 16-bit difference fits in int
        "below = (unsigned)a < (unsigned)b;",            # the instruction's signedness
        "ordered_ne = x < y || x > y;",                  # false on NaN, as setp.ne
        "unordered_ne = x != y;",                        # true on NaN, as setp.neu
        "not_below = !(x < y);",
        "numbers = x == x && y == y;",
        "low_byte = (unsigned short)(unsigned char)u;",  # zero-extended, as PTX writes a u8
        "bits = __float_as_uint(x);",
        "chosen = below ? a : b;",
        "product = x * y;",
        "total = product + 1.0f;",
        "// user.py:8:3",
    ]
    found = [line for line in lines if line in want]
    assert found == want


# -- every C++ form compiles ---------------------------------------------------------------------

TYPES = ("b8", "u8", "s8", "b16", "u16", "s16", "f16", "bf16", "b32", "u32", "s32", "f32",
         "f16x2", "bf16x2", "b64", "u64", "s64", "f64")
INT_CVT = ("u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64")


def _every_cpp_form(name: str):
    """One kernel with every form printed as C++, each of every type it takes; returns it and
    the number of C++ forms in it."""
    kb = KernelBuilder(name, block_threads=32)
    out = kb.param("out", U64, pointer=True)
    bits = kb.param("bits", U64)

    def val(t: str):
        st = scalar_type(t)
        return kb.mov(bits if st.bits == 64 else kb.cvt(bits, f"u{st.bits}"), st)

    def keep(v) -> None:
        kb.st("global", out, kb.selp(1, 0, v, type=U32) if v.type.kind == "pred" else v)

    for t in TYPES:
        st = scalar_type(t)
        if st.is_int and st.bits >= 16:
            for op in ("add", "sub"):
                keep(getattr(kb, op)(val(t), val(t)))
        if st.kind in ("uint", "int") and st.bits >= 16:
            keep(kb.mul(val(t), val(t)))
            keep(kb.mad(val(t), val(t), val(t)))
        if t in ("f32", "f64"):
            for op in ("add", "sub", "mul"):
                keep(getattr(kb, op)(val(t), val(t)))
        if st.kind == "bits" and st.bits >= 16:
            for op in ("and_", "or_", "xor"):
                keep(getattr(kb, op)(val(t), val(t)))
            keep(kb.unary("not", val(t)))
        if st.is_int and st.bits >= 16:
            for cmp in ("eq", "ne", "lt", "le", "gt", "ge"):
                keep(kb.setp(cmp, val(t), val(t)))
        if t in ("f32", "f64"):
            for cmp in FLOAT_CMPS:
                keep(kb.setp(cmp, val(t), val(t)))
        if st.bits >= 16:
            keep(kb.selp(val(t), val(t), kb.setp("ne", val("u32"), 0)))
        for d in TYPES:
            if scalar_type(d).bits == st.bits:
                keep(kb.mov(val(t), d))
    for s in INT_CVT:
        for d in INT_CVT:
            keep(kb.cvt(val(s), d))
    kernel = kb.finish()
    count = sum(1 for s in walk(kernel.body) if isinstance(s, Instr) and prints_as_cpp(s))
    return kernel, count


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_cpp_form_compiles(arch, nvrtc_cache):
    kernel, count = _every_cpp_form("cpp_forms")
    assert count > 700, count
    source = emit_cuda(kernel, arch)
    binary = compile_cuda(source, arch, cache_dir=nvrtc_cache)
    assert binary.resources["cpp_forms"].clean
    # NVVM rounded every float operation on its own: .rn on each, nothing contracted.
    assert "mul.rn.f32" in binary.ptx and "add.rn.f64" in binary.ptx and "fma" not in binary.ptx
    ops = sass_opcodes(disassemble(binary.cubin))["cpp_forms"]
    assert not {"FFMA", "DFMA"} & set(ops), ops


# -- the same machine instructions as the inline PTX -------------------------------------------

def _int_arith():
    kb = KernelBuilder("int_arith", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    a, b = kb.param("a", S32), kb.param("b", S32)
    p, q = kb.param("p", U64), kb.param("q", S64)
    kb.st("global", out, kb.add(a, b))
    kb.st("global", out, kb.sub(a, b), offset=4)
    kb.st("global", out, kb.mul(a, b), offset=8)
    kb.st("global", out, kb.add(p, kb.mov(q, U64)), offset=16)
    return kb.finish()


def _float_mul_add():
    # x * y + z without fma: ptxas must keep FMUL and FADD (contracting would round once).
    kb = KernelBuilder("float_mul_add", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    x, y, z = kb.param("x", F32), kb.param("y", F32), kb.param("z", F32)
    d, e = kb.param("d", F64), kb.param("e", F64)
    kb.st("global", out, kb.add(kb.mul(x, y), z))
    kb.st("global", out, kb.sub(z, kb.mul(x, y)), offset=4)
    kb.st("global", out, kb.add(kb.mul(d, e), d), offset=8)
    return kb.finish()


def _float_compare(cmp: str):
    kb = KernelBuilder(f"compare_{cmp}", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    x, y = kb.param("x", F32), kb.param("y", F32)
    kb.st("global", out, kb.selp(1, 0, kb.setp(cmp, x, y), type=U32))
    return kb.finish()


def _select():
    # The predicate does not compare the selected values (NVVM would rightly see a min there).
    kb = KernelBuilder("select", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    a, b = kb.param("a", U32), kb.param("b", U32)
    c, d = kb.param("c", S32), kb.param("d", S32)
    x = kb.param("x", F32)
    p = kb.setp("lt", c, d)
    kb.st("global", out, kb.selp(a, b, p))
    kb.st("global", out, kb.selp(x, 2.0, p), offset=4)
    return kb.finish()


def _int_cvt():
    kb = KernelBuilder("int_cvt", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    a, u = kb.param("a", S32), kb.param("u", U32)
    kb.st("global", out, kb.cvt(a, S64))
    kb.st("global", out, kb.cvt(u, U16), offset=8)
    kb.st("global", out, kb.cvt(kb.cvt(u, S8), S32), offset=12)
    kb.st("global", out, kb.cvt(kb.cvt(a, S16), U64), offset=16)
    return kb.finish()


def _kernels():
    return [_int_arith(), _float_mul_add(), _select(), _int_cvt(),
            *(_float_compare(cmp) for cmp in FLOAT_CMPS)]


def _entry_ptx(ptx: str, name: str) -> str:
    start = ptx.index(f".entry {name}(")
    end = ptx.find(".entry", start + 1)
    return ptx[start:end if end >= 0 else len(ptx)]


@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def both_spellings(request, nvrtc_cache):
    arch = request.param
    kernels = _kernels()
    compiled = {}
    for plain in (True, False):
        binary = compile_cuda(emit_cuda(kernels, arch, plain_cpp=plain), arch,
                              cache_dir=nvrtc_cache)
        listing = disassemble(binary.cubin)
        compiled[plain] = (binary, sass_opcodes(listing),
                           sass_opcodes(listing, with_modifiers=True))
    return kernels, compiled


def test_cpp_and_inline_ptx_give_the_same_sass(both_spellings):
    kernels, compiled = both_spellings
    cpp_ops, ptx_ops = compiled[True][1], compiled[False][1]  # opcodes, without modifiers
    for kernel in kernels:
        cpp_statements = [s for s in walk(kernel.body) if isinstance(s, Instr)
                          and prints_as_cpp(s)]
        assert cpp_statements, kernel.name  # the comparison is about C++ against PTX
        assert cpp_ops[kernel.name] == ptx_ops[kernel.name], kernel.name
    ops = cpp_ops
    assert ops["int_arith"]["IMAD"] >= 1 and "IADD3" in ops["int_arith"]
    # x * y (once: both products are one value), then two FADDs; DMUL and DADD; never fused.
    mul_add = ops["float_mul_add"]
    assert mul_add["FMUL"] == 1 and mul_add["FADD"] == 2 and mul_add["DMUL"] == 1
    assert mul_add["DADD"] == 1 and not {"FFMA", "DFMA"} & set(mul_add)
    # (sm_90 selects the integer by predicating the loads of a and b: no SEL, in both spellings)
    assert ops["select"]["ISETP"] == 1 and ops["select"]["FSEL"] == 1


def test_float_compares_are_the_instruction_they_replace(both_spellings):
    # NVVM folds each C++ comparison (x < y || x > y, !(x >= y)...) into the one setp the
    # instruction names, and ptxas gives both spellings the same FSETP (NE vs NEU and so on).
    _, compiled = both_spellings
    cpp_binary, _, cpp_ops = compiled[True]
    ptx_ops = compiled[False][2]
    for cmp in FLOAT_CMPS:
        name = f"compare_{cmp}"
        setps = re.findall(r"setp\.(\w+)\.f32", _entry_ptx(cpp_binary.ptx, name))
        assert setps == [cmp], (cmp, setps)
        assert any(k.startswith("FSETP") for k in cpp_ops[name]), cpp_ops[name]
        assert cpp_ops[name] == ptx_ops[name], name  # modifiers included: FSETP.NE.AND…
    assert "FSETP.NE.AND" in cpp_ops["compare_ne"] and "FSETP.NEU.AND" in cpp_ops["compare_neu"]
