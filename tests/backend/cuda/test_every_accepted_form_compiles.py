"""Every arithmetic (``.approx`` and ``.ftz`` forms included), comparison, conversion, ``mov``,
``trap``, load and store form that the Thread IR verifier accepts for a target, ptxas accepts
too (the PTX ISA is what both follow; ptxas is its reference implementation). The candidate
forms are every operation crossed with every register type (and, for ``cvt``, every source,
destination, rounding and saturation); those the verifier accepts at sm_80 go into one kernel
compiled for sm_80, those it accepts only at sm_90 into one for sm_90. A form the printer spells
in a way ptxas refuses fails the compile, whose log names the line. (This sweep found ``cvt.sat``
between integers where nothing can saturate, and ``cvt.bf16.bf16`` below sm_90.) The other
direction, forms held back to sm_90 that ptxas refuses for sm_80: ``test_arch_requirements.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.ir.thread import (
    U32,
    U64,
    KernelBuilder,
    Reg,
    ThreadIRError,
    scalar_type,
    vector,
    verify,
)

TYPES = ("b8", "u8", "s8", "b16", "u16", "s16", "f16", "bf16", "b32", "u32", "s32", "f32",
         "f16x2", "bf16x2", "b64", "u64", "s64", "f64")
CVT_TYPES = ("u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "f16", "bf16", "f32", "f64")


class _Kernel:
    """One kernel collecting forms: values come from a parameter, results go to global memory."""

    def __init__(self, name: str) -> None:
        self.kb = KernelBuilder(name, block_threads=32, shared_bytes=64, local_bytes=64)
        self.out = self.kb.param("out", U64, pointer=True)
        self.x = self.kb.param("x", U64)

    def val(self, t: str) -> Reg:
        kb, st = self.kb, scalar_type(t)
        if st.bits == 64:
            return kb.mov(self.x, st)
        return kb.mov(kb.cvt(self.x, f"u{st.bits}"), st)

    def keep(self, v: Reg) -> None:
        self.kb.st("global", self.out, v)

    def add(self, form: Form) -> bool:
        """Append the form; False (and nothing appended) if the builder rejects it."""
        body = self.kb._stack[-1]  # roll back the instructions of a rejected form
        mark = len(body)
        try:
            form(self)
            return True
        except (ThreadIRError, ValueError):   # ValueError: a type that does not exist (b128)
            del body[mark:]
            return False


Form = Callable[[_Kernel], None]


def _forms() -> Iterator[Form]:
    def binary(op: str, t: str) -> Form:
        return lambda k: k.keep(getattr(k.kb, op)(k.val(t), k.val(t)))

    def unary(op: str, t: str, **mods: object) -> Form:
        return lambda k: k.keep(k.kb.unary(op, k.val(t), **mods))

    def mul(op: str, mode: str, t: str) -> Form:
        def form(k: _Kernel) -> None:
            args = [k.val(t), k.val(t)]
            if op == "mad":
                args.append(k.val(f"{t[0]}{2 * scalar_type(t).bits}" if mode == "wide" else t))
            k.keep(getattr(k.kb, op)(*args, mode=mode))
        return form

    def setp(cmp: str, t: str) -> Form:
        return lambda k: k.keep(k.kb.selp(1, 0, k.kb.setp(cmp, k.val(t), k.val(t)), type=U32))

    def bits(op: str, t: str) -> Form:
        def form(k: _Kernel) -> None:
            kb, v, n = k.kb, k.val(t), k.val("u32")
            k.keep({"shl": lambda: kb.shl(v, n), "shr": lambda: kb.shr(v, n),
                    "popc": lambda: kb.popc(v, type=t), "bfe": lambda: kb.bfe(v, n, n),
                    "bfi": lambda: kb.bfi(v, v, n, n, type=t),
                    "selp": lambda: kb.selp(v, v, kb.setp("ne", n, 0))}[op]())
        return form

    def ld_st(t: str, n: int, space: str) -> Form:
        def form(k: _Kernel) -> None:
            vt = scalar_type(t) if n == 1 else vector(scalar_type(t), n)
            kb = k.kb
            addr = {"global": lambda: k.out, "shared": kb.shared_base,
                    "local": kb.local_base}[space]()
            kb.st(space, addr, kb.ld(space, addr, vt))
        return form

    def cvt(s: str, d: str, rnd: str | None, sat: str | None) -> Form:
        return lambda k: k.keep(k.kb.cvt(k.val(s), d, rnd=rnd, sat=sat))

    for t in TYPES:
        for op in ("add", "sub", "min", "max", "div", "rem", "and_", "or_", "xor"):
            yield binary(op, t)
        for op in ("neg", "abs", "not", "sqrt", "ex2", "rcp", "lg2", "sin", "cos", "rsqrt",
                   "tanh"):
            yield unary(op, t)
            yield unary(op, t, ftz=True)
        yield lambda k, t=t: k.keep(k.kb.fma(k.val(t), k.val(t), k.val(t)))
        for op in ("mul", "mad"):
            for mode in ("lo", "hi", "wide"):
                yield mul(op, mode, t)
        for cmp in ("eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu",
                    "num", "nan"):
            yield setp(cmp, t)
        for op in ("shl", "shr", "popc", "bfe", "bfi", "selp"):
            yield bits(op, t)
        for n in (1, 2, 4):
            for space in ("global", "shared", "local"):
                yield ld_st(t, n, space)
    yield lambda k: k.kb.trap()
    yield lambda k: k.kb.trap(guard=k.kb.setp("ne", k.val("u32"), 0))
    for s in TYPES:
        for d in TYPES:
            yield lambda k, s=s, d=d: k.keep(k.kb.mov(k.val(s), d))
    for s in CVT_TYPES:
        for d in CVT_TYPES:
            for rnd in (None, "rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi"):
                for sat in (None, "sat", "satfinite"):
                    yield cvt(s, d, rnd, sat)


def _arch_of(form: Form) -> int | None:
    """80 or 90: the lowest of the two targets at which the verifier accepts the form alone."""
    k = _Kernel("one")
    if not k.add(form):
        return None
    kernel = k.kb.finish()
    for arch, isa in ((80, (8, 8)), (90, (8, 8))):
        try:
            verify(kernel, arch=arch, ptx_isa=isa)
            return arch
        except ThreadIRError:
            continue
    return None


@pytest.fixture(scope="module")
def kernels():
    by_arch = {80: _Kernel("forms_sm80"), 90: _Kernel("forms_sm90")}
    counts = {80: 0, 90: 0}
    for form in _forms():
        arch = _arch_of(form)
        if arch is not None:
            assert by_arch[arch].add(form)
            counts[arch] += 1
    return {arch: k.kb.finish() for arch, k in by_arch.items()}, counts


@pytest.mark.parametrize("arch", [80, 90])
def test_every_accepted_form_compiles(arch: int, kernels, nvrtc_cache) -> None:
    by_arch, counts = kernels
    assert counts[80] > 500 and counts[90] > 10, counts   # the sweep covers many forms
    compile_cuda(emit_cuda(by_arch[arch], f"sm_{arch}"), f"sm_{arch}", cache_dir=nvrtc_cache)
