"""Operands in registers of another type of the same width, as the Thread IR allows (a ``b32``
register where an ``f32`` is expected and back, ``b64``/``f64``): every instruction of the
every-intrinsic kernels, rewritten to take and give such registers, still prints as CUDA C++ that
NVRTC and ptxas accept. (Inline asm binds a float register as a PTX ``.f32`` register, which
some instructions refuse; the printer must reinterpret where they do.)"""

from __future__ import annotations

import pytest

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.ir.thread import (
    B32,
    B64,
    F32,
    F64,
    INTRINSICS,
    For,
    If,
    Instr,
    Kernel,
    Reg,
    ThreadIRError,
    VectorType,
    While,
    vector,
    verify,
)

SWAP = {F32: B32, B32: F32, F64: B64, B64: F64}


def _alternative(t):
    if isinstance(t, VectorType):
        return vector(SWAP[t.elem], t.count) if t.elem in SWAP else None
    return SWAP.get(t)


class _Rewriter:
    """Puts each swappable operand through a register of the other type: ``mov`` for scalars,
    ``extract``/``pack`` for vectors, before (inputs) or after (destinations) the instruction."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = 0

    def _reg(self, t) -> Reg:
        self.count += 1
        return Reg(f"swap{self.count}", t)

    def _copy(self, source, dest: Reg) -> list[Instr]:
        if not isinstance(dest.type, VectorType):
            return [Instr(INTRINSICS["mov"], dest, (source,), dest.type)]
        parts = [self._reg(source.type.elem) for _ in range(dest.type.count)]
        code = [Instr(INTRINSICS["extract"], p, (source,), None, {"index": k})
                for k, p in enumerate(parts)]
        return [*code, Instr(INTRINSICS["pack"], dest, tuple(parts))]

    def instr(self, s: Instr, loop_vars: set[int]) -> list[Instr]:
        if s.op.name in ("pack", "extract", "mov"):
            return [s]
        before, after, args = [], [], list(s.args)
        for k, arg in enumerate(args):
            alt = _alternative(arg.type) if isinstance(arg, Reg) else None
            if alt is not None and id(arg) not in loop_vars:
                swapped = self._reg(alt)
                before += self._copy(arg, swapped)
                args[k] = swapped
        dst = s.dst
        alt = _alternative(dst.type) if isinstance(dst, Reg) else None
        if alt is not None:
            swapped = self._reg(alt)
            after = self._copy(swapped, dst)
            dst = swapped
        candidate = Instr(s.op, dst, tuple(args), s.type, dict(s.mods), s.guard, s.guard_negated)
        try:
            candidate.op.check(candidate)
        except ThreadIRError:
            return [s]  # the Thread IR does not accept these registers here: keep the original
        self.changed += 1
        return [*before, candidate, *after]

    def body(self, body: list, loop_vars: set[int]) -> list:
        out = []
        for s in body:
            if isinstance(s, Instr):
                out += self.instr(s, loop_vars)
            elif isinstance(s, If):
                out.append(If(s.cond, self.body(s.then_body, loop_vars),
                              self.body(s.else_body, loop_vars), s.uniform))
            elif isinstance(s, While):
                out.append(While(self.body(s.cond_body, loop_vars), s.cond,
                                 self.body(s.body, loop_vars), s.uniform))
            else:
                out.append(For(s.var, s.start, s.stop, s.step,
                               self.body(s.body, loop_vars | {id(s.var)}), s.unroll, s.uniform))
        return out


def _rewritten(kernel: Kernel) -> tuple[Kernel, int]:
    rewriter = _Rewriter()
    body = rewriter.body(kernel.body, set())
    result = Kernel(kernel.name, kernel.params, body, kernel.block_threads, kernel.shared_bytes,
                    kernel.local_bytes, kernel.arrays)
    return result, rewriter.changed


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_swapped_register_classes_compile(arch, programs, nvrtc_cache):
    sm = int(arch[3:])
    kernels, changed = [], 0
    for kernel in [*programs.issue_programs(), *programs.every_intrinsic_kernels(sm)]:
        rewritten, n = _rewritten(kernel)
        verify(rewritten, arch)
        kernels.append(rewritten)
        changed += n
    assert changed > 100  # the rewrite reached many instructions
    binary = compile_cuda(emit_cuda(kernels, arch), arch, cache_dir=nvrtc_cache)
    assert set(binary.resources) == {k.name for k in kernels}
