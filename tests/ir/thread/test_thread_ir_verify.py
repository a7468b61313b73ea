"""The Thread IR verifier: register-array indices must be constants once ``unroll`` loops are
unrolled (and in bounds), barriers need block-uniform control flow, and an intrinsic used on a
lower target is a diagnostic naming the instruction and the architecture."""

from __future__ import annotations

import pytest

from tilevm.ir.thread import (
    B32,
    F32,
    INTRINSICS,
    S32,
    U32,
    U64,
    KernelBuilder,
    ThreadIRError,
    examples,
    vector,
    verify,
)


def test_register_array_index_from_a_rolled_loop_is_rejected() -> None:
    kb = KernelBuilder("idx", block_threads=32)
    acc = kb.array(F32, 4)
    with kb.for_(0, 4) as i:                 # not unrolled: i is not a constant
        kb.mov(0.0, F32, out=acc[i])
    with pytest.raises(ThreadIRError, match="not the variable of an enclosing unroll loop"):
        kb.finish()


def test_register_array_index_out_of_bounds_once_unrolled() -> None:
    kb = KernelBuilder("idx", block_threads=32)
    acc = kb.array(F32, 4)
    with kb.for_(0, 3, unroll=True) as i, kb.for_(0, 2, unroll=True) as j:
        kb.mov(0.0, F32, out=acc[i * 2 + j])     # reaches 5 at i = 2, j = 1
    with pytest.raises(ThreadIRError, match=r"is 4, outside \[0, 4\)"):
        kb.finish()


def test_nested_unroll_indices_in_bounds_pass() -> None:
    kb = KernelBuilder("idx", block_threads=32)
    acc = kb.array(vector(F32, 4), 6)
    with kb.for_(0, 3, unroll=True) as i, kb.for_(0, 2, unroll=True) as j:
        kb.mov(0.0, F32, out=kb.reg(F32))
        kb.pack([0.0] * 4, F32, out=acc[i * 2 + j])
    kb.finish()


def test_barrier_inside_a_uniform_loop_is_accepted_and_under_a_guard_rejected() -> None:
    kb = KernelBuilder("bar", block_threads=64)
    n = kb.param("n", S32)
    with kb.for_(0, n, uniform=True):
        kb.bar_sync()
    kb.finish()
    kb = KernelBuilder("bar", block_threads=64)
    p = kb.setp("lt", kb.sreg("tid.x"), 3)
    with pytest.raises(ThreadIRError, match="block-uniform"):
        kb.bar_sync(guard=p)
        kb.finish()


@pytest.mark.parametrize("arch,ok", [("sm_80", False), ("sm_86", False), ("sm_89", True),
                                     ("sm_90a", True)])
def test_fp8_mma_needs_sm_89(arch, ok) -> None:
    kb = KernelBuilder("fp8", block_threads=32)
    z = kb.mov(0, B32)
    kb.mma("m16n8k32", "e4m3", kb.pack([z] * 4), kb.pack([z] * 2), kb.pack([0.0] * 4, F32))
    k = kb.finish()
    if ok:
        verify(k, arch=arch)
    else:
        with pytest.raises(ThreadIRError, match=r"mma\.sync\.aligned\.m16n8k32\.row\.col\.f32"
                           r"\.e4m3\.e4m3\.f32 needs sm_89 or later; the target is sm_8"):
            verify(k, arch=arch)


def test_cp_async_and_ldmatrix_on_older_targets() -> None:
    k = examples.tiled_copy()
    with pytest.raises(ThreadIRError, match=r"cp\.async\.cg\.shared\.global needs sm_80.*sm_75"):
        verify(k, arch=75)
    verify(k, arch="sm_80")
    with pytest.raises(ThreadIRError, match=r"ldmatrix.* needs sm_75 .*sm_70"):
        verify(examples.mma_tile(), arch=70)
    with pytest.raises(ThreadIRError, match=r"needs PTX ISA 7\.0; the target has 6\.5"):
        verify(k, ptx_isa=(6, 5))


def test_bf16_add_needs_sm_90_but_fma_sm_80() -> None:
    kb = KernelBuilder("bf", block_threads=32)
    a = kb.mov(0, "bf16")
    kb.fma(a, a, a)
    verify(kb.finish(), arch=80)
    kb = KernelBuilder("bf", block_threads=32)
    a = kb.mov(0, "bf16")
    kb.add(a, a)
    with pytest.raises(ThreadIRError, match=r"add\.rn\.bf16 needs sm_90"):
        verify(kb.finish(), arch=80)


def test_every_intrinsic_documents_semantics_scope_arch_and_isa() -> None:
    for name, intr in INTRINSICS.items():
        doc = type(intr).__doc__ or ""
        assert "Scope" in doc or name in ("pack", "extract"), name
        assert intr.scope in ("thread", "warp", "warpgroup", "block")
        assert isinstance(intr.min_arch, int) and isinstance(intr.ptx_isa, tuple)
        if name not in ("pack", "extract"):
            assert "sm_" in doc and "PTX" in doc, name


def test_block_size_is_checked() -> None:
    kb = KernelBuilder("odd", block_threads=48)
    with pytest.raises(ThreadIRError, match="multiple of 32"):
        kb.finish()


_ = (U32, U64)


def _while_kernel(outer_uniform: bool | None, inner_uniform: bool, barrier: bool):
    kb = KernelBuilder("loops", block_threads=64)
    n = kb.param("n", S32)
    i = kb.reg(S32, "i")
    kb.mov(0, S32, out=i)

    def loop() -> None:
        with kb.while_(uniform=inner_uniform) as w:
            w.cond(kb.setp("lt", i, n))
            if barrier:
                kb.bar_sync()
            kb.add(i, 1, out=i)

    if outer_uniform is None:
        loop()
    else:
        with kb.if_(kb.setp("lt", kb.sreg("tid.x"), 3), uniform=outer_uniform):
            loop()
    return kb


def test_while_barrier_needs_uniform_loops_all_the_way_out() -> None:
    _while_kernel(None, True, True).finish()
    _while_kernel(True, True, True).finish()
    _while_kernel(False, False, False).finish()     # divergent loops without barriers are fine
    with pytest.raises(ThreadIRError, match=r"bar\.sync must be reached under block-uniform"):
        _while_kernel(None, False, True).finish()
    with pytest.raises(ThreadIRError, match=r"while %r\d+: uniform loop inside non-uniform"):
        _while_kernel(False, True, True).finish()


def test_while_condition_must_be_a_pred_given_once_at_the_top_level() -> None:
    kb = KernelBuilder("w", block_threads=32)
    n = kb.param("n", U32)
    with pytest.raises(ThreadIRError, match="must be a pred operand"), kb.while_() as loop:
        loop.cond(n)
    kb = KernelBuilder("w", block_threads=32)
    with pytest.raises(ThreadIRError, match=r"ended without loop\.cond"), kb.while_():
        kb.sreg("laneid")
    kb = KernelBuilder("w", block_threads=32)
    p = kb.setp("eq", kb.sreg("laneid"), 0)
    with (pytest.raises(ThreadIRError, match="directly in the while_ block"),
          kb.while_() as loop, kb.if_(p)):
        loop.cond(p)
    kb = KernelBuilder("w", block_threads=32)
    with kb.while_() as loop:
        loop.cond(p)
        with pytest.raises(ThreadIRError, match="called twice"):
            loop.cond(p)


def test_approx_error_bounds_quote_the_isa() -> None:
    from tilevm.ir.thread.intrinsics.arith import APPROX_ERROR_BOUNDS as bounds

    def get(key: str) -> list[tuple[str, float]]:
        return [(b.kind, b.bound) for b in bounds[key]]

    assert get("ex2.approx.f32") == [("ulp", 2.0)]
    assert get("rcp.approx.ftz.f32") == [("ulp", 1.0)]
    assert get("lg2.approx.ftz.f32") == [("absolute", 2**-22), ("relative", 2**-22)]
    assert get("sin.approx.f32") == get("cos.approx.ftz.f32") == [("absolute", 2**-20.5),
                                                                  ("absolute", 2**-14.7)]
    assert get("rsqrt.approx.f32") == [("relative", 2**-22.9)]
    assert get("tanh.approx.f32") == [("relative", 2**-11)] and "tanh.approx.ftz.f32" not in bounds
    for key, entries in bounds.items():
        for b in entries:
            assert b.source.startswith("PTX ISA 9.1 §9.7.3.") and key.split(".")[0] in b.source
        # the docstring of the intrinsic states the same numbers
        doc = type(INTRINSICS[key.split(".")[0]]).__doc__ or ""
        assert all(f"{b.bound:g}" in doc or _power(b.bound) in doc for b in entries), key


def _power(x: float) -> str:
    import math

    e = math.log2(x)
    return f"2^{e:g}" if x < 1 else f"{x:g} ulp"
