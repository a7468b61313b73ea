"""The tensor-core forms of the Thread IR: every ``mma.sync`` form tilevm takes, with its register
types, text, PTX spelling and target; the forms it refuses, with their messages; and the tf32 /
fp8 conversions.

Oracle: the PTX ISA's text. "Warp Level Matrix Multiply-Accumulate Instructions: mma":
syntax ``mma.sync.aligned.shape.row.col.dtype.atype.btype.ctype`` (integer forms
``.s32.atype.btype.s32`` with ``.atype``/``.btype`` = {.u8, .s8} each; ``.f8type`` = {.e4m3,
.e5m2} each; ``.m16n8k8``: ".atype must be the same as .btype"; ``.m16n8k16``/``.m16n8k32``:
".dtype must be the same as .ctype"), Target ISA Notes (".f16 ... .m16n8k16 ... requires sm_80",
".bf16 ... requires sm_80", ".tf32 ... .m16n8k8 ... requires sm_80", ".u8/.s8 ... .m16n8k32
... requires sm_80", ".e4m3 and .e5m2 ... requires sm_89 or higher") and PTX ISA Notes (sm_80
forms 7.0, e4m3/e5m2 8.4). "Data Movement and Conversion Instructions: cvt": ``cvt.rna{.satfinite}
.tf32.f32`` (sm_80, PTX 7.0; .satfinite 8.1), ``cvt.rn.satfinite{.relu}.f8x2type.f32`` (.satfinite
"mandatory"), ``cvt.rn{.relu}.f16x2.f8x2type`` ("requires sm89 or higher", PTX 8.1 for sm_89).
"""

from __future__ import annotations

import pytest

from tilevm.ir.thread import B32, F32, S32, U32, KernelBuilder, ThreadIRError, dump, vector
from tilevm.ir.thread.intrinsics.warp import MMA_FORMS
from tilevm.ir.thread.verify import verify

# (shape, atype, btype, ctype, min sm, PTX ISA), written from the ISA's notes
ISA_FORMS = (
    [("m16n8k16", "f16", "f16", c, 80, (7, 0)) for c in ("f32", "f16")]
    + [("m16n8k16", "bf16", "bf16", "f32", 80, (7, 0)), ("m16n8k8", "tf32", "tf32", "f32", 80,
                                                         (7, 0))]
    + [("m16n8k32", a, b, "s32", 80, (7, 0)) for a in ("s8", "u8") for b in ("s8", "u8")]
    + [("m16n8k32", a, b, "f32", 89, (8, 4)) for a in ("e4m3", "e5m2") for b in ("e4m3", "e5m2")]
)
ACC_REGS = {"f32": "f32v4", "s32": "s32v4", "f16": "f16x2v2"}


def fragments(kb: KernelBuilder, ctype: str):
    z = kb.mov(0, B32)
    c = {"f32": lambda: kb.pack([0.0] * 4, F32), "s32": lambda: kb.pack([0] * 4, S32),
         "f16": lambda: kb.pack([z] * 2)}[ctype]()
    return kb.pack([z] * 4), kb.pack([z] * 2), c


def test_the_table_is_the_isas() -> None:
    assert {f[:4]: (f[4], f[5]) for f in ISA_FORMS} == MMA_FORMS


@pytest.mark.parametrize("shape,atype,btype,ctype,sm,isa", ISA_FORMS,
                         ids=[".".join(f[:4]) for f in ISA_FORMS])
def test_every_form_builds_prints_and_names_its_target(shape, atype, btype, ctype, sm,
                                                        isa) -> None:
    kb = KernelBuilder("mma", block_threads=32)
    a, b, c = fragments(kb, ctype)
    d = kb.mma(shape, atype, a, b, c, btype=btype, ctype=ctype)
    assert str(d.type) == ACC_REGS[ctype]
    kernel = kb.finish()
    (instr,) = [s for s in kernel.body if s.op.name == "mma.sync"]
    ptx = f"mma.sync.aligned.{shape}.row.col.{ctype}.{atype}.{btype}.{ctype}"
    assert instr.mnemonic == ptx
    assert instr.op.requirements(instr) == (sm, isa)
    line = next(t for t in dump(kernel).splitlines() if "mma.sync" in t)
    mods = f"atype={atype}, " + (f"btype={btype}, " if btype != atype else "")
    assert line.endswith(f"{d}: {d.type} = {ptx} {a}, {b}, {c} {{{mods}shape={shape}}}"), line
    verify(kernel, arch=sm, ptx_isa=isa)
    if sm > 80:
        with pytest.raises(ThreadIRError, match=f"{ptx} needs sm_{sm} or later; the target is "
                                                f"sm_80"):
            verify(kernel, arch=80)
    older = (isa[0], isa[1] - 1) if isa[1] else (isa[0] - 1, 9)
    with pytest.raises(ThreadIRError, match=rf"needs PTX ISA {isa[0]}\.{isa[1]}"):
        verify(kernel, arch=sm, ptx_isa=older)


def test_todays_call_sites_keep_their_defaults() -> None:
    kb = KernelBuilder("mma", block_threads=32)
    a, b, cf = fragments(kb, "f32")
    ci = kb.pack([0] * 4, S32)
    assert kb.mma("m16n8k16", "f16", a, b, cf).type == vector(F32, 4)
    assert kb.mma("m16n8k32", "s8", a, b, ci).type == vector(S32, 4)
    assert kb.mma("m16n8k32", "u8", a, b, ci, btype="u8").type == vector(S32, 4)
    acc = kb.reg(vector(F32, 4), name="acc")
    assert kb.mma("m16n8k8", "tf32", a, b, acc, out=acc) is acc
    text = dump(kb.finish())
    assert "btype" not in text     # written only where B's type differs from A's


REFUSED = [
    ("m16n8k4", "f16", None, None, r"shape must be one of m16n8k8, m16n8k16, m16n8k32, got "
                                   r"'m16n8k4'"),
    ("m16n8k16", "s8", None, None, r"m16n8k16 takes atype f16 / bf16, got 's8'"),
    ("m16n8k8", "f16", None, None, r"m16n8k8 takes atype tf32, got 'f16'"),
    ("m16n8k16", "f16", "bf16", None, r"with atype f16 takes btype f16, got 'bf16'"),
    ("m16n8k32", "s8", "e4m3", "s32", r"with atype s8 takes btype s8 / u8, got 'e4m3'"),
    ("m16n8k32", "e4m3", "u8", None, r"with atype e4m3 takes btype e4m3 / e5m2, got 'u8'"),
    ("m16n8k16", "bf16", None, "f16", r"m16n8k16\.bf16 accumulates in f32, got f16"),
    ("m16n8k32", "e4m3", None, "f16", r"m16n8k32\.e4m3 accumulates in f32, got f16"),
    ("m16n8k32", "s8", None, "f32", r"m16n8k32\.s8 accumulates in s32, got f32"),
]


@pytest.mark.parametrize("shape,atype,btype,ctype,message", REFUSED)
def test_forms_outside_the_isa_are_refused(shape, atype, btype, ctype, message) -> None:
    kb = KernelBuilder("mma", block_threads=32)
    a, b, c = fragments(kb, ctype or ("s32" if atype in ("s8", "u8") else "f32"))
    with pytest.raises(ThreadIRError, match=message):
        kb.mma(shape, atype, a, b, c, btype=btype, ctype=ctype)


def test_register_types_are_checked() -> None:
    kb = KernelBuilder("mma", block_threads=32)
    a, b, cf = fragments(kb, "f32")
    with pytest.raises(ThreadIRError, match=r"operand 2 \(c\) must be f16x2v2, got f32v4"):
        kb.mma("m16n8k16", "f16", a, b, cf, ctype="f16")
    with pytest.raises(ThreadIRError, match=r"operand 0 \(a\) must be b32v4, got b32v2"):
        kb.mma("m16n8k8", "tf32", b, b, cf)
    with pytest.raises(ThreadIRError, match=r"destination must be f32v4, got s32v4"):
        kb.mma("m16n8k16", "bf16", a, b, cf, out=kb.reg(vector(S32, 4)))
    # any 32-bit-element pair stands for the f16 accumulator's two .f16x2 registers
    d = kb.mma("m16n8k16", "f16", a, b, kb.pack([kb.mov(0, U32)] * 2, B32), ctype="f16")
    assert str(d.type) == "f16x2v2"


def test_tf32_and_fp8_conversions() -> None:
    kb = KernelBuilder("cvt", block_threads=32)
    x = kb.mov(1.5, F32)
    t, ts = kb.cvt_tf32(x), kb.cvt_tf32(x, satfinite=True)
    p4, p5 = kb.cvt_fp8x2(x, x, "e4m3"), kb.cvt_fp8x2(x, x, "e5m2")
    h4, h5 = kb.cvt_f16x2_fp8x2(p4, "e4m3"), kb.cvt_f16x2_fp8x2(kb.mov(p5, "u16"), "e5m2")
    want = {t: ("tf32", "cvt.rna.tf32.f32", (80, (7, 0))),
            ts: ("tf32", "cvt.rna.satfinite.tf32.f32", (80, (8, 1))),
            p4: ("e4m3x2", "cvt.rn.satfinite.e4m3x2.f32", (89, (8, 1))),
            p5: ("e5m2x2", "cvt.rn.satfinite.e5m2x2.f32", (89, (8, 1))),
            h4: ("f16x2", "cvt.rn.f16x2.e4m3x2", (89, (8, 1))),
            h5: ("f16x2", "cvt.rn.f16x2.e5m2x2", (89, (8, 1)))}
    kernel = kb.finish()
    by_dst = {id(s.dst): s for s in kernel.body}
    for reg, (type_name, ptx, needs) in want.items():
        s = by_dst[id(reg)]
        assert (str(reg.type), s.mnemonic, s.op.requirements(s)) == (type_name, ptx, needs)
    assert "%r3: e4m3x2 = cvt.rn.satfinite.e4m3x2.f32 %r0, %r0" in dump(kernel)
    verify(kernel, arch=89)
    with pytest.raises(ThreadIRError, match=r"cvt\.rn\.satfinite\.e4m3x2\.f32 needs sm_89 or "
                                            r"later; the target is sm_80"):
        verify(kernel, arch=80)


CVT_REFUSED = [
    (lambda kb, x: kb.cvt(x, "tf32", rnd="rn"), r"tf32 is made from f32 with \.rna"),
    (lambda kb, x: kb.cvt(kb.mov(x, "f16"), "tf32", rnd="rna"), "not|tf32 is made from f32"),
    (lambda kb, x: kb.cvt(x, "b32", rnd="rna"), r"rna rounds only f32 to tf32"),
    (lambda kb, x: kb.cvt_pack(x, x, "e4m3x2"), r"\.satfinite is mandatory"),
    (lambda kb, x: kb.cvt(x, "e5m2x2", rnd="rn", sat="satfinite"), r"takes 2 operands"),
    (lambda kb, x: kb.cvt(kb.mov(0, "u16"), "f32", src="e4m3x2", rnd="rn"),
     r"e4m3x2 converts only to f16x2"),
    (lambda kb, x: kb.cvt(kb.mov(0, "u16"), "f16x2", src="e5m2x2", rnd="rz"),
     r"takes \.rn and no saturation"),
]


@pytest.mark.parametrize("build,message", CVT_REFUSED)
def test_conversion_forms_outside_the_isa_are_refused(build, message) -> None:
    kb = KernelBuilder("cvt", block_threads=32)
    x = kb.mov(1.0, F32)
    with pytest.raises(ThreadIRError, match=message):
        build(kb, x)
