"""The verifier's minimum architectures are the ISA's and ptxas's, in both directions: the forms
it accepts for sm_80 compile for sm_80 (``test_every_accepted_form_compiles``), and here, one form
of each family it holds back to sm_90 is refused by ptxas for sm_80 (the source is printed for
sm_90, where the verifier lets it through, and compiled for sm_80).

The PTX ISA 9.1 says (Target ISA Notes): ``add``/``sub``/``mul{.rnd}.bf16`` and ``.bf16x2`` and
``setp.{bf16/bf16x2}`` "require sm_90"; ``cvt.bf16.{u8/s8/u16/s16/u32/s32/u64/s64/f16/f64/bf16}``
and ``cvt.{u8/.../f16/f64}.bf16`` "require sm_90"; while ``fma{.relu}.{bf16, bf16x2}``,
``min``/``max``/``neg``/``abs`` on ``.bf16`` (and ``min``/``max`` on ``.f16``) require sm_80, and
so does ``cvt`` to ``.bf16`` from ``.f32`` in every rounding (ptxas 13.0 takes
``cvt.rm.bf16.f32`` for sm_80; the verifier once held it back to sm_90).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tilevm.backend.cuda import CudaCompileError, compile_cuda, emit_cuda
from tilevm.ir.thread import U16, U32, U64, KernelBuilder, Reg, ThreadIRError, verify


def _kernel(form: Callable[[KernelBuilder, Reg, Reg], Reg]):
    kb = KernelBuilder("one_form", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    x = kb.param("x", U32)
    h = kb.mov(kb.cvt(x, U16), "bf16")
    kb.st("global", out, form(kb, x, h))
    return kb.finish()


SM90_ONLY = {
    "add.rn.bf16": lambda kb, x, h: kb.add(h, h),
    "sub.rn.bf16x2": lambda kb, x, h: kb.sub(kb.mov(x, "bf16x2"), kb.mov(x, "bf16x2")),
    "mul.rn.bf16": lambda kb, x, h: kb.mul(h, h),
    "setp.lt.bf16": lambda kb, x, h: kb.selp(1, 0, kb.setp("lt", h, h), type=U32),
    "cvt.rn.bf16.f16": lambda kb, x, h: kb.cvt(kb.mov(h, "f16"), "bf16", rnd="rn"),
    "cvt.rn.bf16.s32": lambda kb, x, h: kb.cvt(kb.mov(x, "s32"), "bf16", rnd="rn"),
    "cvt.rni.s32.bf16": lambda kb, x, h: kb.cvt(h, "s32", rnd="rni"),
    "cvt.f64.bf16": lambda kb, x, h: kb.cvt(h, "f64"),
    "cvt.rni.bf16.bf16": lambda kb, x, h: kb.cvt(h, "bf16", rnd="rni"),
}

SM80 = {
    "fma.rn.bf16": lambda kb, x, h: kb.fma(h, h, h),
    "min.bf16": lambda kb, x, h: kb.min(h, h),
    "max.f16": lambda kb, x, h: kb.max(kb.mov(h, "f16"), kb.mov(h, "f16")),
    "neg.bf16": lambda kb, x, h: kb.unary("neg", h),
    "abs.bf16x2": lambda kb, x, h: kb.unary("abs", kb.mov(x, "bf16x2")),
    "cvt.rm.bf16.f32": lambda kb, x, h: kb.cvt(kb.mov(x, "f32"), "bf16", rnd="rm"),
    "cvt.rp.bf16.f32": lambda kb, x, h: kb.cvt(kb.mov(x, "f32"), "bf16", rnd="rp"),
    "cvt.f32.bf16": lambda kb, x, h: kb.cvt(h, "f32"),
}


@pytest.mark.parametrize("mnemonic", sorted(SM90_ONLY))
def test_forms_held_back_to_sm90_are_refused_for_sm80(mnemonic: str, nvrtc_cache) -> None:
    kernel = _kernel(SM90_ONLY[mnemonic])
    with pytest.raises(ThreadIRError, match="needs sm_90"):
        verify(kernel, arch=80)
    source = emit_cuda(kernel, "sm_90")
    assert mnemonic in source
    with pytest.raises(CudaCompileError, match=r"requires \.target sm_90 or higher"):
        compile_cuda(source, "sm_80", cache_dir=nvrtc_cache)


def test_bf16_and_f16_forms_of_sm80_compile_for_sm80(nvrtc_cache) -> None:
    for mnemonic, form in SM80.items():
        kernel = _kernel(form)
        verify(kernel, arch=80)
        source = emit_cuda(kernel, "sm_80")
        assert mnemonic in source, mnemonic
        compile_cuda(source, "sm_80", cache_dir=nvrtc_cache)
