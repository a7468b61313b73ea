"""Hand-written Thread IR programs for the CUDA printer tests: the issue's three programs (a tiled
copy through shared memory with cp.async, a warp reduction with shfl.sync, one mma.sync m16n8k16
tile) as the CPU backend tests run them (``tilevm.ir.thread.examples``), variants of them that
exercise other forms (unrolled loops, cp.async into ldmatrix), and kernels that together use every
intrinsic in every printed form.
"""

from __future__ import annotations

from tilevm.ir.thread import (
    B8,
    B16,
    B32,
    B64,
    BF16,
    BF16X2,
    F16,
    F16X2,
    F32,
    F64,
    PRED,
    S8,
    S16,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    Kernel,
    KernelBuilder,
    Reg,
    examples,
    vector,
)
from tilevm.ir.thread.intrinsics.warp import MMA_FORMS

ALL_ONES = 0xFFFFFFFF


# -- the issue's three programs, and variants ---------------------------------------------------

def tiled_copy_unrolled(rows: int = 64, row_bytes: int = 128, threads: int = 128) -> Kernel:
    """Block b copies rows [b*rows, (b+1)*rows) of a row-major matrix (``row_bytes`` bytes per
    row, pitch ``pitch`` bytes) from ``src`` to ``dst``: each 16-byte chunk goes global → shared
    with ``cp.async.cg``, then, after the wait and a barrier, shared → global with ``ld.shared.v4``
    and ``st.global.v4``."""
    chunks = rows * row_bytes // 16
    assert chunks % threads == 0
    kb = KernelBuilder("tiled_copy_unrolled", block_threads=threads,
                       shared_bytes=rows * row_bytes)
    src = kb.param("src", U64, pointer=True)
    dst = kb.param("dst", U64, pointer=True)
    pitch = kb.param("pitch", U32)
    tid = kb.sreg("tid.x")
    block = kb.sreg("ctaid.x")
    smem = kb.shared_base()
    first_row = kb.mul(block, rows)
    per_row = row_bytes // 16

    def offsets(j: Reg) -> tuple[Reg, Reg]:
        chunk = kb.add(tid, kb.mul(j, threads, type=U32))
        row = kb.add(first_row, kb.div(chunk, per_row))
        column = kb.mul(kb.rem(chunk, per_row), 16)
        global_offset = kb.add(kb.mul(row, pitch, mode="wide"), kb.cvt(column, U64))
        shared_address = kb.mad(chunk, 16, smem)
        return global_offset, shared_address

    with kb.for_(0, chunks // threads, unroll=True, type=U32, name="j") as j:
        g, s = offsets(j)
        kb.cp_async(s, kb.add(src, g), 16, cache="cg")
    token = kb.commit_group()
    kb.wait_group(0, token)
    kb.bar_sync()
    with kb.for_(0, chunks // threads, unroll=True, type=U32, name="j") as j:
        g, s = offsets(j)
        kb.st("global", kb.add(dst, g), kb.ld("shared", s, vector(B32, 4)))
    return kb.finish()


def mma_tile_async(atype: str = "f16") -> Kernel:
    """One warp computes D = A·B for a 16x16 row-major ``a`` and a 16x8 ``b`` given column-major
    (8 rows of 16 k-values): both are copied to shared memory with ``cp.async``, loaded as
    fragments with ``ldmatrix`` (x4 for A, x2 for B), multiplied with one ``mma.sync m16n8k16``
    into f32, and the 16x8 f32 result is stored row-major to ``d`` (two ``st.v2`` per lane)."""
    kb = KernelBuilder(f"mma_tile_async_{atype}", block_threads=32, shared_bytes=512 + 256)
    a_ptr = kb.param("a", U64, pointer=True)
    b_ptr = kb.param("b", U64, pointer=True)
    d_ptr = kb.param("d", U64, pointer=True)
    lane = kb.sreg("laneid")
    smem = kb.shared_base()
    chunk = kb.mul(lane, 16, mode="wide")
    kb.cp_async(kb.mad(lane, 16, smem), kb.add(a_ptr, chunk), 16, cache="cg")
    with kb.if_(kb.setp("lt", lane, 16)):
        kb.cp_async(kb.mad(lane, 16, kb.add(smem, 512)), kb.add(b_ptr, chunk), 16, cache="cg")
    kb.wait_group(0, kb.commit_group())
    kb.bar_sync()
    # ldmatrix: lane l gives the address of row (l % 8) of matrix l // 8.
    row_a = kb.and_(lane, 15, type=B32)  # A: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15)
    half_a = kb.shr(lane, 4)
    a_addr = kb.add(kb.mad(row_a, 32, smem, type=U32), kb.mul(half_a, 16))
    a = kb.ldmatrix(a_addr, 4)
    row_b = kb.and_(lane, 7, type=B32)  # B^T rows n = 0..7, k blocks 0-7 | 8-15
    half_b = kb.and_(kb.shr(lane, 3), 1, type=B32)
    b_addr = kb.add(kb.mad(row_b, 32, kb.add(smem, 512), type=U32), kb.mul(half_b, 16, type=U32))
    b = kb.ldmatrix(b_addr, 2)
    zero = kb.const(0.0, F32)
    c = kb.pack([zero, zero, zero, zero], F32)
    d = kb.mma("m16n8k16", atype, a, b, c)
    g, t = kb.shr(lane, 2), kb.and_(lane, 3, type=B32)
    d0, d1, d2, d3 = kb.unpack(d)
    for row, (lo, hi) in ((g, (d0, d1)), (kb.add(g, 8), (d2, d3))):
        element = kb.add(kb.mul(row, 8), kb.mul(t, 2, type=U32))
        kb.st("global", kb.add(d_ptr, kb.mul(element, 4, mode="wide")), kb.pack([lo, hi], F32))
    return kb.finish()


def issue_programs() -> list[Kernel]:
    """The issue's programs as the CPU backend runs them, and the variants above (one list: one
    NVRTC compile for all)."""
    return [examples.tiled_copy(), examples.warp_reduce(), examples.mma_tile("f16"),
            examples.mma_tile("bf16"), tiled_copy_unrolled(), mma_tile_async("f16"),
            mma_tile_async("bf16")]


# -- every intrinsic -----------------------------------------------------------------------------

class _Sink:
    """Stores every value it is given to ``out`` (consecutive 16-byte slots), so that NVVM keeps
    the non-volatile asm that computed it and ptxas sees every instruction."""

    def __init__(self, kb: KernelBuilder, out: Reg) -> None:
        self.kb, self.out, self.slot = kb, out, 0

    def __call__(self, *values: Reg) -> None:
        for value in values:
            if value.type == PRED:
                value = self.kb.selp(1, 0, value, type=U32)
            self.kb.st("global", self.out, value, offset=16 * self.slot)
            self.slot += 1


def memory_kernel() -> Kernel:
    """ld/st of 1–16 bytes in every space with every cache hint and .nc; cp.async in every size
    and with zero-fill; commit/wait; atom/red in every operation; fences; shared/local bases."""
    kb = KernelBuilder("memory_forms", block_threads=64, shared_bytes=4096, local_bytes=64)
    src = kb.param("src", U64, pointer=True)
    out = kb.param("out", U64, pointer=True)
    n = kb.param("n", U32)
    keep = _Sink(kb, out)
    smem, local = kb.shared_base(), kb.local_base()
    for t in (B8, U8, S8, B16, U16, S16, F16, BF16, B32, U32, S32, F32, F16X2, B64, U64, S64, F64,
              vector(B32, 2), vector(B32, 4), vector(F32, 4), vector(F16, 2), vector(U16, 4),
              vector(B64, 2), vector(F64, 2)):
        value = kb.ld("global", src, t, offset=16)
        keep(value)
        kb.st("shared", smem, value)
    for cache in ("ca", "cg", "cs", "lu", "cv"):
        keep(kb.ld("global", src, B32, cache=cache))
    keep(kb.ld("global", src, vector(B32, 4), nc=True), kb.ld("global", src, U16, nc=True))
    for cache in ("wb", "cg", "cs", "wt"):
        kb.st("global", out, n, cache=cache, offset=-16)
    kb.st("local", local, kb.ld("shared", smem, vector(B32, 4), offset=32), offset=16)
    keep(kb.ld("local", local, vector(B32, 4), offset=16), kb.ld("local", local, U8, offset=3))
    for cache, size in (("ca", 4), ("ca", 8), ("ca", 16), ("cg", 16)):
        kb.cp_async(kb.add(smem, 1024), src, size, cache=cache)
        kb.cp_async(kb.add(smem, 2048), src, size, cache=cache, src_size=kb.and_(n, 3, type=B32))
    first = kb.commit_group()
    second = kb.commit_group()
    kb.wait_group(1, first)
    kb.wait_group(0, first, second)
    for op in ("add", "min", "max", "exch", "cas", "and", "or", "xor", "inc", "dec"):
        t = {"and": B32, "or": B32, "xor": B32, "exch": B32, "cas": B32, "min": S32}.get(op, U32)
        values = (n, 7) if op == "cas" else (n,)
        keep(kb.atom("global", op, out, *values, type=t))
        keep(kb.atom("shared", op, smem, *values, type=t))
        if op not in ("exch", "cas"):
            kb.red("global", op, out, n, type=t)
            kb.red("shared", op, smem, n, type=t)
    wide = kb.cvt(n, U64)
    keep(kb.atom("global", "add", out, wide, type=U64),
         kb.atom("global", "max", out, 5, type=S64))
    f = kb.cvt(n, F32, rnd="rn")
    keep(kb.atom("global", "add", out, f, type=F32),
         kb.atom("shared", "exch", smem, wide, type=B64),
         kb.atom("global", "add", out, kb.cvt(f, F64), type=F64))
    kb.red("global", "add", out, f, type=F32)
    for sem in ("sc", "acq_rel"):
        for scope in ("cta", "gpu", "sys"):
            kb.fence(sem, scope)
    for level in ("cta", "gl", "sys"):
        kb.membar(level)
    return kb.finish()


def warp_kernel(arch: int) -> Kernel:
    """Barriers, shuffles, votes, activemask, ldmatrix in every form, mma.sync on every shape and
    type the target has, every special register, and control flow (if/else, guards, for and while
    loops)."""
    kb = KernelBuilder(f"warp_forms_sm{arch}", block_threads=128, shared_bytes=2048)
    src = kb.param("src", U64, pointer=True)
    out = kb.param("out", U64, pointer=True)
    n = kb.param("n", U32)
    keep = _Sink(kb, out)
    smem = kb.shared_base()
    for name in ("tid.x", "tid.y", "tid.z", "ntid.x", "ntid.y", "ntid.z", "ctaid.x", "ctaid.y",
                 "ctaid.z", "nctaid.x", "nctaid.y", "nctaid.z", "laneid"):
        keep(kb.sreg(name))
    lane = kb.sreg("laneid")
    kb.bar_sync()
    kb.bar_warp_sync(ALL_ONES)
    kb.bar_warp_sync(kb.activemask())
    # A lane-dependent value: ptxas folds shuffles of a warp-uniform one away.
    x = kb.ld("global", kb.add(src, kb.mul(lane, 4, mode="wide")), B32)
    for mode in ("idx", "up", "down", "bfly"):
        keep(kb.shfl(mode, x, 1, 0x1F, ALL_ONES), kb.shfl(mode, x, lane, 0x1F00, n))
    p = kb.setp("lt", lane, n)
    for mode in ("all", "any", "uni", "ballot"):
        keep(kb.vote(mode, p, ALL_ONES))
    keep(kb.activemask())
    address = kb.mad(lane, 16, smem)
    for num in (1, 2, 4):
        keep(kb.ldmatrix(address, num), kb.ldmatrix(address, num, trans=True))
    a = kb.ld("global", src, vector(B32, 4))
    b = kb.ld("global", src, vector(B32, 2), offset=16)
    cf = kb.ld("global", src, vector(F32, 4), offset=32)
    ci = kb.ld("global", src, vector(S32, 4), offset=48)
    ch = kb.ld("global", src, vector(B32, 2), offset=64)
    # Every mma.sync form (MMA_FORMS) the target has: f16 -> f32/f16, bf16, tf32, and A/B in
    # every mix of s8/u8 and (sm_89+) of e4m3/e5m2.
    for shape, atype, btype, ctype in MMA_FORMS:
        if MMA_FORMS[shape, atype, btype, ctype][0] <= arch:
            c = {"f32": cf, "s32": ci, "f16": ch}[ctype]
            keep(kb.mma(shape, atype, a, b, c, btype=btype, ctype=ctype))
    # Fragments in registers of other types of the same widths, which the Thread IR accepts and
    # ptxas does not (the printer reinterprets them).
    bits_acc = kb.reg(vector(B32, 4), name="acc_bits")
    kb.mma("m16n8k16", "f16", kb.ld("global", src, vector(U32, 4)),
           kb.ld("global", src, vector(F32, 2), offset=16),
           kb.ld("global", src, vector(B32, 4), offset=32), out=bits_acc)
    keep(bits_acc)
    # Control flow: if/else, a negated guard, a rolled loop with a register bound, an unrolled
    # loop over a register array whose index needs floor division (negative intermediate).
    acc = kb.array(F32, 8, name="acc")
    total = kb.reg(U32, name="total")
    with kb.if_(p):
        kb.add(total, 1, out=total)
    with kb.else_():
        kb.sub(total, 1, out=total)
    kb.add(total, 5, out=total, guard=p, guard_negated=True)
    with kb.for_(kb.const(0, S32), kb.mov(n, S32), 1, name="k") as k:
        kb.add(total, kb.mov(k, U32), out=total)
    with kb.for_(0, 8, unroll=True, name="i") as i:
        kb.fma(acc[(i - 8) % 8], 2.0, acc[(i - 8) // 2 + 4], out=acc[i])
    with kb.for_(0, 8, 2, unroll=True, name="i") as i:
        kb.add(acc[i // 2], acc[i % 4], out=acc[i + 1])
    with kb.for_(0, 4, unroll=True, type=U32, name="u") as u:
        kb.add(total, kb.mov(u, U32), out=total)
    # While loops: a uniform one with a barrier, a divergent one with a lane-dependent count.
    rounds = kb.reg(U32, name="rounds")
    with kb.while_(uniform=True) as loop:
        loop.cond(kb.setp("lt", rounds, n))
        kb.bar_sync()
        kb.add(rounds, 1, out=rounds)
    with kb.while_() as loop:
        kb.add(total, 3, out=total)
        loop.cond(kb.setp("lt", total, lane))
    keep(total, kb.pack([acc[0], acc[1], acc[2], acc[3]], F32),
         kb.pack([acc[4], acc[5], acc[6], acc[7]], F32))
    return kb.finish()


def arith_kernel(arch: int) -> Kernel:
    """Every arithmetic, logic, comparison and conversion intrinsic on every type family it
    prints differently for (integers of 16/32/64 bits, f16/bf16 bit patterns, packed pairs, f32,
    f64, predicates), bf16 arithmetic only where the target has it (sm_90)."""
    kb = KernelBuilder(f"arith_forms_sm{arch}", block_threads=32)
    src = kb.param("src", U64, pointer=True)
    out = kb.param("out", U64, pointer=True)
    keep = _Sink(kb, out)

    def load(t, k: int) -> Reg:
        return kb.ld("global", src, t, offset=16 * k)

    u16, s16, u32, s32, b32 = load(U16, 0), load(S16, 1), load(U32, 2), load(S32, 3), load(B32, 4)
    u64, s64, b64, b16 = load(U64, 5), load(S64, 6), load(B64, 7), load(B16, 8)
    f16, bf16, f32, f64 = load(F16, 9), load(BF16, 10), load(F32, 11), load(F64, 12)
    h2, bh2 = load(F16X2, 13), load(BF16X2, 14)
    ints = [u16, s16, u32, s32, u64, s64]
    floats = [f16, f32, f64, h2] + ([bf16, bh2] if arch >= 90 else [])
    for v in [*ints, b16, b32, b64, *floats]:
        keep(kb.add(v, v), kb.sub(v, v))
    for v in ints:
        keep(kb.mul(v, v, mode="lo"), kb.mul(v, v, mode="hi"), kb.mad(v, v, v, mode="lo"),
             kb.mad(v, v, v, mode="hi"), kb.div(v, v), kb.rem(v, v), kb.min(v, v), kb.max(v, v))
        if v.type.bits < 64:
            keep(kb.mul(v, v, mode="wide"), kb.mad(v, v, kb.mul(v, v, mode="wide"), mode="wide"))
    for v in floats:
        keep(kb.mul(v, v), kb.fma(v, v, v), kb.min(v, v), kb.max(v, v), kb.unary("neg", v),
             kb.unary("abs", v))
    keep(kb.fma(bf16, bf16, bf16), kb.fma(bh2, bh2, bh2), kb.min(bf16, bf16), kb.max(bh2, bh2))
    for v in (s16, s32, s64):
        keep(kb.unary("neg", v), kb.unary("abs", v))
    keep(kb.unary("ex2", f32), kb.unary("ex2", f32, ftz=True), kb.unary("rcp", f32),
         kb.unary("rcp", f32, ftz=True))
    for op in ("lg2", "sin", "cos", "rsqrt"):
        keep(getattr(kb, op)(f32), getattr(kb, op)(f32, ftz=True))
    keep(kb.tanh(f32), kb.sqrt(f32), kb.sqrt(f64), kb.div(f32, f32), kb.div(f64, 3.0))
    for rnd in ("rni", "rzi", "rmi", "rpi"):
        keep(kb.cvt(f32, F32, rnd=rnd), kb.cvt(f64, F64, rnd=rnd), kb.cvt(f16, F16, rnd=rnd))
        if arch >= 90:
            keep(kb.cvt(bf16, BF16, rnd=rnd))
    p = kb.setp("ne", u32, 0)
    q = kb.setp("gt", s32, -3)
    for v in (b16, b32, b64, p):
        keep(kb.and_(v, v), kb.or_(v, v), kb.xor(v, v), kb.unary("not", v))
    keep(kb.and_(p, q), kb.xor(q, p))
    for v in (b16, b32, b64, u16, u32, u64, s16, s32, s64):
        keep(kb.shr(v, 3))
        if v.type.kind == "bits":
            keep(kb.shl(v, u32))
    for direction in ("l", "r"):
        for mode in ("clamp", "wrap"):
            keep(kb.shf(b32, b32, u32, dir=direction, mode=mode))
    for v in (u32, s32, u64, s64):
        keep(kb.bfe(v, 4, u32))
    keep(kb.bfi(b32, b32, 8, 4), kb.bfi(b64, b64, u32, 12, type=B64))
    keep(kb.popc(b32), kb.popc(b64, type=B64))
    keep(kb.lop3(b32, b32, b32, 0xF0 & 0xCC | 0xAA), kb.lop3(b32, 7, b32, 0x96))
    for mode in (None, "f4e", "b4e", "rc8", "ecl", "ecr", "rc16"):
        keep(kb.prmt(b32, b32, 0x3210 if mode is None else u32, mode=mode))
    for cmp in ("eq", "ne", "lt", "le", "gt", "ge"):
        for v in (u16, s16, u32, s32, u64, s64, b32, f16, f32, f64):
            keep(kb.setp(cmp, v, v))
    for cmp in ("equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"):
        keep(kb.setp(cmp, f32, f32), kb.setp(cmp, f64, 1.5))
    if arch >= 90:
        keep(kb.setp("lt", bf16, bf16), kb.add(bf16, 1.0))
    for v in (u16, s32, u64, b32, f16, bf16, f32, f64, h2, bh2):
        keep(kb.selp(v, v, p))
    # Conversions: float narrowing (every rounding, .satfinite), widening, float<->int, int<->int
    # (.sat), 8-bit integers, and the f16x2/bf16x2 packs.
    for rnd in ("rn", "rz", "rm", "rp"):
        keep(kb.cvt(f32, F16, rnd=rnd), kb.cvt(f64, F32, rnd=rnd), kb.cvt(s32, F32, rnd=rnd),
             kb.cvt(u64, F64, rnd=rnd), kb.cvt(f64, F16, rnd=rnd))
        keep(kb.cvt(f32, BF16, rnd=rnd))
    keep(kb.cvt(f32, F16, rnd="rn", sat="satfinite"), kb.cvt(f32, BF16, rnd="rn", sat="satfinite"))
    keep(kb.cvt(f16, F32), kb.cvt(bf16, F32), kb.cvt(f32, F64), kb.cvt(f16, F64))
    for rnd in ("rni", "rzi", "rmi", "rpi"):
        keep(kb.cvt(f32, S32, rnd=rnd), kb.cvt(f64, U64, rnd=rnd), kb.cvt(f32, U8, rnd=rnd),
             kb.cvt(f16, S16, rnd=rnd), kb.cvt(f32, S8, rnd=rnd))
    keep(kb.cvt(u32, U8), kb.cvt(s32, S8, sat="sat"), kb.cvt(u64, U32), kb.cvt(s32, S64),
         kb.cvt(u16, U64), kb.cvt(kb.cvt(u32, U8), S32), kb.cvt(kb.cvt(s32, S8), F32, rnd="rn"))
    keep(kb.cvt_pack(f32, f32, F16X2), kb.cvt_pack(f32, 0.5, BF16X2),
         kb.cvt_pack(f32, f32, F16X2, sat="satfinite"),
         kb.cvt_pack(f32, f32, BF16X2, sat="satfinite"))
    # tf32 (sm_80) and the fp8 pairs (sm_89+)
    keep(kb.cvt_tf32(f32), kb.cvt_tf32(f32, satfinite=True))
    if arch >= 89:
        for fmt in ("e4m3", "e5m2"):
            keep(kb.mov(kb.cvt_fp8x2(f32, kb.add(f32, 1.0), fmt), B16),
                 kb.cvt_f16x2_fp8x2(b16, fmt))
    # mov: same-type copies, reinterpretations, predicates; pack/extract with reinterpretation.
    keep(kb.mov(f32, B32), kb.mov(b32, F32), kb.mov(u32, S32), kb.mov(f64, B64),
         kb.mov(b64, F64), kb.mov(f16, B16), kb.mov(b16, BF16), kb.mov(p), kb.mov(h2, U32))
    vec = kb.pack([f32, b32, u32, s32], B32)
    keep(vec, kb.extract(vec, 2), kb.pack([h2, bh2], B32), kb.pack([f16, b16], F16))
    keep(kb.extract(kb.pack([b64, u64], U64), 0))
    keep(kb.extract(kb.ld("global", src, vector(F32, 4)), 3))
    # Constants of every C spelling (exact bits: NaN, inf, -0, subnormal, INT_MIN, masks).
    for value, t in ((float("nan"), F32), (float("-inf"), F32), (-0.0, F32), (1e-45, F32),
                     (0.1, F32), (float("inf"), F64), (0.1, F64), (65504.0, F16), (-2.0, BF16),
                     (-(1 << 31), S32), (-(1 << 63), S64), (ALL_ONES, U32), (-7, S16),
                     (1 << 40, U64), (0x8000, B16)):
        keep(kb.mov(kb.const(value, t)))
    keep(kb.add(h2, kb.const(1.0, F16X2)), kb.selp(s16, -5, q))
    return kb.finish()


def debug_kernel() -> Kernel:
    """``trap`` (guarded) and ``vprintf`` with every operand kind, a ``%%`` and characters the C
    string literal must escape. vprintf's argument buffer lives on the stack."""
    kb = KernelBuilder("debug_forms", block_threads=32)
    src = kb.param("src", U64, pointer=True)
    x = kb.ld("global", src, F32)
    lane = kb.sreg("laneid")
    kb.trap(guard=kb.setp("nan", x, x))
    kb.vprintf("lane %u: %d %x %lld %llu %f %g %e %a 100%%\n\t\"quoted\" \\ ??= é\n", lane,
               kb.mov(lane, S32), kb.mov(lane, B32), kb.cvt(lane, S64), kb.cvt(lane, U64),
               kb.cvt(x, F64), kb.cvt(x, F64), kb.cvt(x, F64), kb.cvt(x, F64),
               guard=kb.setp("lt", lane, 2))
    kb.vprintf("no arguments\n")
    return kb.finish()


def every_intrinsic_kernels(arch: int) -> list[Kernel]:
    """Kernels that together use every intrinsic of the Thread IR (each form ``arch`` has)."""
    return [memory_kernel(), warp_kernel(arch), arith_kernel(arch), debug_kernel()]
