"""LLVM emission of the thread-scope intrinsics (arithmetic, logic, comparison, conversion).

Each emitter takes the code generator (for ``L``, the :class:`Lanes` builder, and ``read``) and
the instruction, and returns the result's lane vectors. Lanes outside the active mask compute
too (their results are discarded by the caller), so every operation is made total: divisions
by zero and over-wide shifts are guarded rather than left to LLVM's poison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir

from tilevm.backend.cpu import numerics as nm
from tilevm.backend.cpu.approx_tables import exception_table
from tilevm.backend.cpu.lanes import F32, F64, I1, I16, I32, I64, PTR, Lanes, elem_llvm_type
from tilevm.ir.thread.stmts import Instr
from tilevm.ir.thread.types import PRED, U32, ScalarType, scalar_type
from tilevm.ir.thread.values import Const

__all__ = ["THREAD_OPS"]

Emitter = Callable[[Any, Instr], list[ir.Value]]
THREAD_OPS: dict[str, Emitter] = {}


def _op(*names: str) -> Callable[[Emitter], Emitter]:
    def deco(fn: Emitter) -> Emitter:
        for n in names:
            THREAD_OPS[n] = fn
        return fn
    return deco


def _args(cg: Any, instr: Instr, types: list[ScalarType] | None = None) -> list[ir.Value]:
    t = instr.type
    return [cg.read(a, types[i] if types else t) for i, a in enumerate(instr.args)]


def _canon(L: Lanes, r: ir.Value, t: ScalarType) -> ir.Value:
    """Replace any NaN of an f32/f64 result by PTX's canonical NaN."""
    if t.name == "f32":
        nan = L.b.bitcast(L.cint(nm.F32_NAN, I32), L.vec(F32))
    elif t.name == "f64":
        nan = L.b.bitcast(L.cint(0x7FFFFFFFFFFFFFFF, I64), L.vec(F64))
    else:
        return r
    return L.b.select(L.b.fcmp_unordered("uno", r, r), nan, r)


def _halves(L: Lanes, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    b = L.b
    return b.trunc(x, L.vec(I16)), b.trunc(b.lshr(x, L.cint(16, I32)), L.vec(I16))


def _join(L: Lanes, lo: ir.Value, hi: ir.Value) -> ir.Value:
    b = L.b
    return b.or_(b.zext(lo, L.vec(I32)), b.shl(b.zext(hi, L.vec(I32)), L.cint(16, I32)))


def _float_map(L: Lanes, t: ScalarType, args: list[ir.Value],
               f32_op: Callable[[list[ir.Value]], ir.Value],
               half_op: Callable[[list[ir.Value], str], ir.Value] | None = None) -> ir.Value:
    """Apply an f32/f64 operation; for f16/bf16 compute in f32 and round once to the half type
    (or use ``half_op`` on the patterns); for packed pairs do each half."""
    if t.kind == "packed":
        los, his = zip(*(_halves(L, a) for a in args), strict=True)
        return _join(L, _float_map(L, t.half_type, list(los), f32_op, half_op),
                     _float_map(L, t.half_type, list(his), f32_op, half_op))
    if t.name in ("f16", "bf16"):
        if half_op is not None:
            return half_op(args, t.name)
        r = f32_op([nm.half_to_f32(L, a, t.name, quiet_nan=True) for a in args])
        return nm.f32_to_half(L, r, t.name)
    return _canon(L, f32_op(args), t)


@_op("add", "sub")
def _add_sub(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    a, c = _args(cg, instr)
    sub = instr.op.name == "sub"
    if t.is_int:
        return [L.b.sub(a, c) if sub else L.b.add(a, c)]
    return [_float_map(L, t, [a, c], lambda v: L.b.fsub(*v) if sub else L.b.fadd(*v))]


def _widen(L: Lanes, x: ir.Value, t: ScalarType, bits: int) -> ir.Value:
    wt = L.vec(ir.IntType(bits))
    return L.b.sext(x, wt) if t.is_signed else L.b.zext(x, wt)


def _int_mul(L: Lanes, a: ir.Value, c: ir.Value, t: ScalarType, mode: str) -> ir.Value:
    if mode == "lo":
        return L.b.mul(a, c)
    w = 2 * t.bits
    p = L.b.mul(_widen(L, a, t, w), _widen(L, c, t, w))
    if mode == "wide":
        return p
    return L.b.trunc(L.b.lshr(p, L.cint(t.bits, ir.IntType(w))), L.vec(ir.IntType(t.bits)))


@_op("mul")
def _mul(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    a, c = _args(cg, instr)
    if t.is_int:
        return [_int_mul(L, a, c, t, instr.mod("mode"))]
    return [_float_map(L, t, [a, c], lambda v: L.b.fmul(*v))]


@_op("mad")
def _mad(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    mode = instr.mod("mode")
    wide_t = scalar_type(f"{t.name[0]}{2 * t.bits}") if mode == "wide" else t
    a, c = (cg.read(x, t) for x in instr.args[:2])
    d = cg.read(instr.args[2], wide_t)
    return [L.b.add(_int_mul(L, a, c, t, mode), d)]


@_op("div", "rem")
def _div_rem(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    a, c = _args(cg, instr)
    if t.is_float:  # div.rn.f32/f64: the host's IEEE division rounds once to nearest even
        return [_canon(L, b.fdiv(a, c), t)]
    lt = elem_llvm_type(t)
    zero = b.icmp_unsigned("==", c, L.cint(0, lt))
    bad = zero
    if t.is_signed:  # INT_MIN / -1 overflows
        bad = b.or_(bad, b.and_(b.icmp_unsigned("==", a, L.cint(1 << (t.bits - 1), lt)),
                                b.icmp_unsigned("==", c, L.cint(-1, lt))))
    safe = b.select(bad, L.cint(1, lt), c)
    if instr.op.name == "div":
        q = b.sdiv(a, safe) if t.is_signed else b.udiv(a, safe)
        fallback = b.select(zero, L.cint(-1, lt), a)  # INT_MIN / -1 wraps to INT_MIN
        return [b.select(bad, fallback, q)]
    r = b.srem(a, safe) if t.is_signed else b.urem(a, safe)
    return [b.select(bad, b.select(zero, a, L.cint(0, lt)), r)]


@_op("min", "max")
def _min_max(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    a, c = _args(cg, instr)
    is_max = instr.op.name == "max"
    if t.is_int:
        cmp = b.icmp_signed if t.is_signed else b.icmp_unsigned
        return [b.select(cmp(">" if is_max else "<", a, c), a, c)]
    if t.name in ("f32", "f64"):
        ft = F32 if t.name == "f32" else F64
        return [nm.minmax(L, a, c, is_max, ft, nm.F32_NAN if ft == F32 else 0x7FFFFFFFFFFFFFFF)]

    def half(v: list[ir.Value], fmt: str) -> ir.Value:
        fa, fc = (nm.half_to_f32(L, x, fmt) for x in v)
        r = nm.minmax(L, fa, fc, is_max, F32, nm.F32_NAN)
        # the result is one of the operands (or NaN): its half pattern, no rounding
        rb = b.bitcast(r, L.vec(I32))
        pick_a = b.icmp_unsigned("==", rb, b.bitcast(fa, L.vec(I32)))
        isnan = b.fcmp_unordered("uno", r, r)
        return b.select(isnan, L.cint(nm.F16_NAN, I16), b.select(pick_a, v[0], v[1]))

    return [_float_map(L, t, [a, c], lambda v: v[0], half)]


@_op("fma")
def _fma(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    args = _args(cg, instr)
    return [_float_map(L, t, args, lambda v: L.call("fma", v),
                       lambda v, fmt: nm.fma_half(L, v[0], v[1], v[2], fmt))]


@_op("neg", "abs")
def _neg_abs(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    (a,) = _args(cg, instr)
    neg = instr.op.name == "neg"
    if t.is_int:
        lt = elem_llvm_type(t)
        n = b.sub(L.cint(0, lt), a)
        return [n if neg else b.select(b.icmp_signed("<", a, L.cint(0, lt)), n, a)]
    # floats: flip or clear the sign bit(s), on the bit pattern
    bits = t.bits if t.kind != "packed" else 32
    it = ir.IntType(bits)
    sign = {"f16": 0x8000, "bf16": 0x8000, "f16x2": 0x80008000, "bf16x2": 0x80008000,
            "f32": 0x80000000, "f64": 1 << 63}[t.name]
    x = b.bitcast(a, L.vec(it)) if t.name in ("f32", "f64") else a
    r = b.xor(x, L.cint(sign, it)) if neg else b.and_(x, L.cint(~sign & ((1 << bits) - 1), it))
    return [b.bitcast(r, L.vec(elem_llvm_type(t))) if t.name in ("f32", "f64") else r]


@_op("sqrt")
def _sqrt(cg: Any, instr: Instr) -> list[ir.Value]:
    # sqrt.rn: the host's IEEE square root rounds once to nearest even, in f32 or f64
    (a,) = _args(cg, instr)
    return [_canon(cg.L, cg.L.call("sqrt", [a]), instr.type)]


_LIBM = {"ex2": "exp2", "lg2": "log2", "sin": "sin", "cos": "cos", "tanh": "tanh"}


def _libm_lanes(cg: Any, name: str, x: ir.Value) -> ir.Value:
    """The C library's ``double name(double)`` of each lane of ``x`` (``<32 x double>``), except
    at the inputs of :func:`~tilevm.backend.cpu.approx_tables.exception_table`, whose exactly
    rounded f32 results it gives instead; through the helper ``tv_map_f64`` (one call; the helper
    loops over the lanes)."""
    b, m = cg.b, cg.m
    fn = m.globals.get(name) or ir.Function(m, ir.FunctionType(F64, [F64]), name=name)
    helper = m.globals.get("tv_map_f64") or ir.Function(
        m, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I32]), name="tv_map_f64")
    pairs = exception_table(name)
    table = m.globals.get(f"tv_exceptions_{name}")
    if table is None:
        flat = [v for pair in pairs for v in pair] or [0.0]
        table = ir.GlobalVariable(m, ir.ArrayType(F64, len(flat)), f"tv_exceptions_{name}")
        table.global_constant = True
        table.linkage = "private"
        table.initializer = ir.Constant(ir.ArrayType(F64, len(flat)), flat)
    buf = cg.scratch(x.type)  # <32 x double> in memory: 32 doubles in lane order
    b.store(x, buf, align=8)
    b.call(helper, [fn, buf, table, I32(len(pairs))])
    return b.load(buf, typ=x.type, align=8)


@_op("ex2", "rcp", "lg2", "sin", "cos", "rsqrt", "tanh")
def _approx(cg: Any, instr: Instr) -> list[ir.Value]:
    """The ``.approx`` instructions as the exactly rounded f32 value of the function of the
    (flushed, with ``.ftz``) input (DESIGN §3): ``rcp`` is one IEEE f32 division; ``rsqrt`` is
    ``1/sqrt`` in f64 rounded once to f32 (the double rounding never changes the f32 result:
    checked on every f32 input); the others are the C library's double function rounded once to
    f32, except at the few inputs where that rounding may go the wrong way
    (:mod:`~tilevm.backend.cpu.approx_tables`). Special values (NaN, infinities, zeros) are C's,
    which are the PTX ISA's."""
    L = cg.L
    b = L.b
    (a,) = _args(cg, instr)
    ftz = bool(instr.mod("ftz"))
    if ftz:
        a = nm.ftz_f32(L, a)
    name = instr.op.name
    if name == "rcp":
        r = b.fdiv(L.splat(1.0, F32), a)
    else:
        x = b.fpext(a, L.vec(F64))
        if name == "rsqrt":
            r64 = b.fdiv(L.splat(1.0, F64), L.call("sqrt", [x]))
        else:
            r64 = _libm_lanes(cg, _LIBM[name], x)
        r = b.fptrunc(r64, L.vec(F32))
    return [_canon(L, nm.ftz_f32(L, r) if ftz else r, instr.type)]


@_op("and", "or", "xor", "not")
def _logic(cg: Any, instr: Instr) -> list[ir.Value]:
    b = cg.L.b
    args = _args(cg, instr)
    name = instr.op.name
    if name == "not":
        return [b.not_(args[0])]
    return [{"and": b.and_, "or": b.or_, "xor": b.xor}[name](*args)]


@_op("shl", "shr")
def _shift(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    a = cg.read(instr.args[0], t)
    n = cg.read(instr.args[1], U32)
    lt = elem_llvm_type(t)
    w = t.bits
    big = b.icmp_unsigned(">=", n, L.cint(w, I32))
    arith = instr.op.name == "shr" and t.is_signed
    n = b.select(big, L.cint(w - 1 if arith else 0, I32), n)
    n = b.zext(n, L.vec(lt)) if w > 32 else b.trunc(n, L.vec(lt)) if w < 32 else n
    if instr.op.name == "shl":
        return [b.select(big, L.cint(0, lt), b.shl(a, n))]
    if arith:
        return [b.ashr(a, n)]
    return [b.select(big, L.cint(0, lt), b.lshr(a, n))]


@_op("shf")
def _shf(cg: Any, instr: Instr) -> list[ir.Value]:
    L = cg.L
    b = L.b
    a, hi = (cg.read(x, instr.type) for x in instr.args[:2])
    c = cg.read(instr.args[2], U32)
    left = instr.mod("dir") == "l"
    if instr.mod("mode") == "wrap":
        n = b.and_(c, L.cint(31, I32))
        full = ir.Constant(ir.VectorType(I1, 32), 0)
    else:
        full = b.icmp_unsigned(">=", c, L.cint(32, I32))
        n = b.and_(c, L.cint(31, I32))
    r = L.call("fshl" if left else "fshr", [hi, a, n])
    return [b.select(full, a if left else hi, r)]


def _low_mask(L: Lanes, count: ir.Value, lt: ir.Type, w: int) -> ir.Value:
    """``(1 << count) - 1`` for 0 <= count <= w (all ones at w)."""
    b = L.b
    safe = b.select(b.icmp_unsigned(">=", count, L.cint(w, lt)), L.cint(0, lt), count)
    m = b.sub(b.shl(L.cint(1, lt), safe), L.cint(1, lt))
    return b.select(b.icmp_unsigned(">=", count, L.cint(w, lt)), L.cint(-1, lt), m)


def _field(L: Lanes, pos32: ir.Value, len32: ir.Value, lt: ir.Type, w: int
           ) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(pos, valid bit count, pos clipped for shifting) as lane-type vectors."""
    b = L.b
    to = (lambda v: b.zext(v, L.vec(lt))) if w > 32 else (lambda v: v)
    pos = to(b.and_(pos32, L.cint(0xFF, I32)))
    ln = to(b.and_(len32, L.cint(0xFF, I32)))
    room = b.select(b.icmp_unsigned(">=", pos, L.cint(w, lt)), L.cint(0, lt),
                    b.sub(L.cint(w, lt), pos))
    count = b.select(b.icmp_unsigned("<", ln, room), ln, room)
    pos_c = b.select(b.icmp_unsigned(">=", pos, L.cint(w, lt)), L.cint(w - 1, lt), pos)
    return pos, count, pos_c


def _known_field(pos: Const, length: Const, w: int) -> tuple[int, int]:
    """A bfe/bfi field given as constants: its position and the number of its bits that lie
    below the msb (PTX reads both operands' low bytes)."""
    p, n = pos.bits & 0xFF, length.bits & 0xFF
    return (p, 0) if p >= w else (p, min(n, w - p))


@_op("bfe")
def _bfe(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    a = cg.read(instr.args[0], t)
    lt, w = elem_llvm_type(t), t.bits
    if all(isinstance(x, Const) for x in instr.args[1:]):  # a field known when compiling
        pos, count = _known_field(instr.args[1], instr.args[2], w)
        if count == 0:  # an empty field, or one past the msb: zeros, or the sign everywhere
            known_zero = (instr.args[2].bits & 0xFF) == 0 or not t.is_signed
            return [L.cint(0, lt) if known_zero else b.ashr(a, L.cint(w - 1, lt))]
        if t.is_signed:  # the field's top bit spread above it
            return [b.ashr(b.shl(a, L.cint(w - pos - count, lt)), L.cint(w - count, lt))]
        r = b.lshr(a, L.cint(pos, lt)) if pos else a
        return [r if pos + count == w else b.and_(r, L.cint(_signed((1 << count) - 1, w), lt))]
    p, ln = (cg.read(x, U32) for x in instr.args[1:])
    pos, count, pos_c = _field(L, p, ln, lt, w)
    out = b.icmp_unsigned(">=", pos, L.cint(w, lt))
    shifted = b.select(out, L.cint(0, lt), b.lshr(a, pos_c))
    valid = _low_mask(L, count, lt, w)
    r = b.and_(shifted, valid)
    if t.is_signed:
        to = (lambda v: b.zext(v, L.vec(lt))) if w > 32 else (lambda v: v)
        len_full = to(b.and_(ln, L.cint(0xFF, I32)))
        top = b.add(pos, b.sub(len_full, L.cint(1, lt)))
        top = b.select(b.icmp_unsigned(">", top, L.cint(w - 1, lt)), L.cint(w - 1, lt), top)
        sbit = b.trunc(b.lshr(a, top), L.vec(I1))
        sbit = b.and_(sbit, b.icmp_unsigned("!=", len_full, L.cint(0, lt)))
        r = b.select(sbit, b.or_(r, b.not_(valid)), r)
    return [r]


@_op("bfi")
def _bfi(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    a, base = (cg.read(x, t) for x in instr.args[:2])
    lt, w = elem_llvm_type(t), t.bits
    if all(isinstance(x, Const) for x in instr.args[2:]):  # a field known when compiling
        pos, count = _known_field(instr.args[2], instr.args[3], w)
        mask = ((1 << count) - 1) << pos
        if mask == 0:
            return [base]
        field = b.and_(b.shl(a, L.cint(pos, lt)) if pos else a, L.cint(_signed(mask, w), lt))
        return [b.or_(b.and_(base, L.cint(_signed(~mask, w), lt)), field)]
    p, ln = (cg.read(x, U32) for x in instr.args[2:])
    pos, count, pos_c = _field(L, p, ln, lt, w)
    m = b.shl(_low_mask(L, count, lt, w), pos_c)
    m = b.select(b.icmp_unsigned(">=", pos, L.cint(w, lt)), L.cint(0, lt), m)
    return [b.or_(b.and_(base, b.not_(m)), b.and_(b.shl(a, pos_c), m))]


@_op("popc")
def _popc(cg: Any, instr: Instr) -> list[ir.Value]:
    L = cg.L
    (a,) = _args(cg, instr)
    r = L.call("ctpop", [a])
    return [L.b.trunc(r, L.vec(I32)) if instr.type.bits == 64 else r]


@_op("lop3")
def _lop3(cg: Any, instr: Instr) -> list[ir.Value]:
    """``lop3`` by Shannon expansion of the truth table on ``a``, then ``b``: each sub-table met
    twice is built once, and the common shapes (a & f, a | f, a ^ f…) take one instruction, so a
    table costs 1 to 7 instructions instead of a sum of up to eight minterms."""
    L = cg.L
    b = L.b
    variables = _args(cg, instr)
    memo: dict[tuple[int, int], ir.Value] = {}

    def table(bits: int, n: int) -> ir.Value:
        """The function whose truth table over the last ``n`` variables is ``bits`` (row
        index: the variables' bits, the first of them most significant)."""
        full = (1 << (1 << n)) - 1
        if bits == 0 or bits == full:
            return L.cint(0 if bits == 0 else -1, I32)
        if (bits, n) in memo:
            return memo[(bits, n)]
        v, half = variables[3 - n], 1 << (n - 1)
        upper, lower, ones = bits >> half, bits & ((1 << half) - 1), (1 << half) - 1
        if n == 1:  # v or ~v
            r = v if upper else b.not_(v)
        elif upper == lower:
            r = table(lower, n - 1)
        elif lower == 0:
            r = b.and_(v, table(upper, n - 1))
        elif upper == 0:
            r = b.and_(b.not_(v), table(lower, n - 1))
        elif upper == ones:
            r = b.or_(v, table(lower, n - 1))
        elif lower == ones:
            r = b.or_(b.not_(v), table(upper, n - 1))
        elif upper == lower ^ ones:
            r = b.xor(v, table(lower, n - 1))
        else:  # v ? f1 : f0  =  f0 ^ (v & (f0 ^ f1))
            r = b.xor(table(lower, n - 1), b.and_(v, table(lower ^ upper, n - 1)))
        memo[(bits, n)] = r
        return r

    return [table(instr.mod("lut") & 0xFF, 3)]


# Byte selectors (d.b0, d.b1, d.b2, d.b3) of the prmt modes, indexed by c[1:0] (PTX ISA prmt).
PRMT_TABLES = {
    "f4e": [(0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 6)],
    "b4e": [(0, 7, 6, 5), (1, 0, 7, 6), (2, 1, 0, 7), (3, 2, 1, 0)],
    "rc8": [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3)],
    "ecl": [(0, 1, 2, 3), (1, 1, 2, 3), (2, 2, 2, 3), (3, 3, 3, 3)],
    "ecr": [(0, 0, 0, 0), (0, 1, 1, 1), (0, 1, 2, 2), (0, 1, 2, 3)],
    "rc16": [(0, 1, 0, 1), (2, 3, 2, 3), (0, 1, 0, 1), (2, 3, 2, 3)],
}


@_op("prmt")
def _prmt(cg: Any, instr: Instr) -> list[ir.Value]:
    L = cg.L
    b = L.b
    selector = instr.args[2]
    mode = instr.mod("mode")
    if isinstance(selector, Const):  # the usual case: byte moves known when compiling
        c = selector.bits
        if mode is None:
            sources = [((c >> 4 * i) & 7, bool((c >> 4 * i) & 8)) for i in range(4)]
        else:
            sources = [(PRMT_TABLES[mode][c & 3][i], False) for i in range(4)]
        a, x = (cg.read(v, instr.type) for v in instr.args[:2])
        return [_prmt_known(L, a, x, sources)]
    a, x, c = _args(cg, instr)
    both = b.or_(b.zext(a, L.vec(I64)), b.shl(b.zext(x, L.vec(I64)), L.cint(32, I64)))
    r = L.cint(0, I32)
    for i in range(4):
        if mode is None:
            sel = b.and_(b.lshr(c, L.cint(4 * i, I32)), L.cint(0xF, I32))
        else:
            low = b.and_(c, L.cint(3, I32))
            sel = L.cint(PRMT_TABLES[mode][3][i], I32)
            for k in (2, 1, 0):
                sel = b.select(b.icmp_unsigned("==", low, L.cint(k, I32)),
                               L.cint(PRMT_TABLES[mode][k][i], I32), sel)
        src = b.zext(b.and_(sel, L.cint(7, I32)), L.vec(I64))
        byte = b.trunc(b.and_(b.lshr(both, b.mul(src, L.cint(8, I64))), L.cint(0xFF, I64)),
                       L.vec(I32))
        if mode is None:
            rep = b.icmp_unsigned("!=", b.and_(sel, L.cint(8, I32)), L.cint(0, I32))
            signed = b.mul(b.lshr(byte, L.cint(7, I32)), L.cint(0xFF, I32))
            byte = b.select(rep, signed, byte)
        r = b.or_(r, b.shl(byte, L.cint(8 * i, I32)))
    return [r]


def _prmt_known(L: Lanes, a: ir.Value, x: ir.Value, sources: list[tuple[int, bool]]
                ) -> ir.Value:
    """``prmt`` whose result byte ``i`` is byte ``sources[i][0]`` of ``{x, a}`` (sign-replicated
    where ``sources[i][1]``): bytes moved by the same shift of the same word share one shift and
    one mask, in 32-bit lanes (a few instructions instead of the general form's sixty)."""
    b = L.b
    moves: dict[tuple[int, int], int] = {}  # (word, left shift in bits) -> mask of result bytes
    parts = []
    for i, (src, replicate) in enumerate(sources):
        word, k = divmod(src, 4)
        if replicate:  # bit 8k+7 to bit 31, then spread by an arithmetic shift
            w = a if word == 0 else x
            sign = b.ashr(b.shl(w, L.cint(24 - 8 * k, I32)), L.cint(31, I32))
            parts.append(b.and_(sign, L.cint(_signed(0xFF << 8 * i), I32)))
        else:
            key = (word, 8 * (i - k))
            moves[key] = moves.get(key, 0) | 0xFF << 8 * i
    for (word, shift), mask in moves.items():
        w = a if word == 0 else x
        if shift > 0:
            w = b.shl(w, L.cint(shift, I32))
        elif shift < 0:
            w = b.lshr(w, L.cint(-shift, I32))
        parts.append(w if mask == 0xFFFFFFFF else b.and_(w, L.cint(_signed(mask), I32)))
    result = parts[0]
    for p in parts[1:]:
        result = b.or_(result, p)
    return result


def _signed(value: int, bits: int = 32) -> int:
    """``value`` (taken modulo 2**bits) as the signed integer of the same bits."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


_ICMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@_op("setp")
def _setp(cg: Any, instr: Instr) -> list[ir.Value]:
    L, t = cg.L, instr.type
    b = L.b
    a, c = _args(cg, instr)
    cmp = instr.mod("cmp")
    if t.is_int:
        f = b.icmp_signed if t.is_signed else b.icmp_unsigned
        return [f(_ICMP[cmp], a, c)]
    if t.name in ("f16", "bf16"):
        a, c = nm.half_to_f32(L, a, t.name), nm.half_to_f32(L, c, t.name)
    if cmp == "num":
        return [b.fcmp_ordered("ord", a, c)]
    if cmp == "nan":
        return [b.fcmp_unordered("uno", a, c)]
    if cmp in ("equ", "neu", "ltu", "leu", "gtu", "geu"):
        return [b.fcmp_unordered(_ICMP[cmp[:-1]], a, c)]
    return [b.fcmp_ordered(_ICMP[cmp], a, c)]


@_op("selp")
def _selp(cg: Any, instr: Instr) -> list[ir.Value]:
    a, c = (cg.read(x, instr.type) for x in instr.args[:2])
    p = cg.read(instr.args[2], PRED)
    return [cg.L.b.select(p, a, c)]


@_op("mov")
def _mov(cg: Any, instr: Instr) -> list[ir.Value]:
    # same width by the verifier: reading as the destination type bitcasts where needed
    return [cg.read(instr.args[0], instr.type)]


# -- cvt ----------------------------------------------------------------------------------------

def _float_to_f64(L: Lanes, x: ir.Value, t: ScalarType) -> ir.Value:
    if t.name in ("f16", "bf16"):
        x = nm.half_to_f32(L, x, t.name)
        t = scalar_type("f32")
    return L.b.fpext(x, L.vec(F64)) if t.name == "f32" else x


def _f64_to_f32(L: Lanes, x: ir.Value, rnd: str) -> ir.Value:
    b = L.b
    r = b.fptrunc(x, L.vec(F32))
    if rnd == "rn":
        return r
    back = b.fpext(r, L.vec(F64))
    rb = b.bitcast(r, L.vec(I32))
    neg = b.icmp_unsigned("!=", b.lshr(rb, L.cint(31, I32)), L.cint(0, I32))
    fabs = L.intrinsic("llvm.fabs.v32f64", L.vec(F64), [L.vec(F64)])
    if rnd == "rz":
        wrong = b.fcmp_ordered(">", b.call(fabs, [back]), b.call(fabs, [x]))
        up = ir.Constant(ir.VectorType(I1, 32), 0)
    elif rnd == "rm":
        wrong, up = b.fcmp_ordered(">", back, x), neg
    else:
        wrong, up = b.fcmp_ordered("<", back, x), b.not_(neg)
    step = b.select(up, L.cint(1, I32), L.cint(-1, I32))
    return b.bitcast(b.select(wrong, b.add(rb, step), rb), L.vec(F32))


def _to_float(L: Lanes, x64: ir.Value, d: ScalarType, rnd: str, sat: str | None) -> ir.Value:
    """An f64 value (exact) rounded to the float type ``d``."""
    if d.name == "f64":
        return x64
    if d.name == "f32":
        return _f64_to_f32(L, x64, rnd)
    return nm.f32_to_half(L, nm.f64_to_f32_odd(L, x64), d.name, rnd, sat == "satfinite")


@_op("cvt")
def _cvt(cg: Any, instr: Instr) -> list[ir.Value]:
    L = cg.L
    b = L.b
    d: ScalarType = instr.type
    s: ScalarType = instr.mod("src")
    rnd, sat = instr.mod("rnd"), instr.mod("sat")
    if d.name == "tf32":
        return [nm.f32_to_tf32(L, cg.read(instr.args[0], s), sat == "satfinite")]
    if d.name in ("e4m3x2", "e5m2x2"):  # a to the upper byte, b to the lower
        hi, lo = (nm.f32_to_fp8(L, cg.read(x, s), d.name[:4]) for x in instr.args)
        return [b.trunc(b.or_(b.shl(hi, L.cint(8, I32)), lo), L.vec(I16))]
    if s.name in ("e4m3x2", "e5m2x2"):  # the upper byte to the upper half, exactly
        codes = b.zext(cg.read(instr.args[0], s), L.vec(I32))
        lo, hi = b.and_(codes, L.cint(0xFF, I32)), b.lshr(codes, L.cint(8, I32))
        lo16, hi16 = (nm.f32_to_half(L, nm.fp8_to_f32(L, v, s.name[:4]), "f16") for v in (lo, hi))
        return [_join(L, lo16, hi16)]
    if d.kind == "packed":
        hi, lo = (cg.read(x, s) for x in instr.args)
        fmt = d.half_type.name
        return [_join(L, nm.f32_to_half(L, lo, fmt, "rn", sat == "satfinite"),
                      nm.f32_to_half(L, hi, fmt, "rn", sat == "satfinite"))]
    x = cg.read(instr.args[0], s)
    dt = L.vec(elem_llvm_type(d))
    rounders = {"rni": "roundeven", "rzi": "trunc", "rmi": "floor", "rpi": "ceil"}
    if s.is_float and d.is_float:
        if s == d and rnd in rounders:   # to an integral value in the same type
            if s.name in ("f16", "bf16"):  # exact in f32, and the integral result fits back
                return [nm.f32_to_half(L, L.call(rounders[rnd], [nm.half_to_f32(L, x, s.name)]),
                                       s.name)]
            return [_canon(L, L.call(rounders[rnd], [x]), s)]
        if s == d:
            return [x]
        if s.name in ("f16", "bf16") and d.name in ("f32", "f64"):
            f = nm.half_to_f32(L, x, s.name)
            return [f if d.name == "f32" else b.fpext(f, L.vec(F64))]
        if s.name == "f32" and d.name in ("f16", "bf16"):
            return [nm.f32_to_half(L, x, d.name, rnd, sat == "satfinite")]
        return [_to_float(L, _float_to_f64(L, x, s), d, rnd or "rn", sat)]
    if s.is_float:  # float -> int: round to an integer value, then saturate
        v = _float_to_f64(L, x, s)
        r = L.call(rounders[rnd], [v])
        w = d.bits
        lo, hi = (-(2.0 ** (w - 1)), 2.0 ** (w - 1)) if d.is_signed else (0.0, 2.0 ** w)
        inside = b.and_(b.fcmp_ordered(">=", r, L.splat(lo, F64)),
                        b.fcmp_ordered("<", r, L.splat(hi, F64)))
        safe = b.select(inside, r, L.splat(0.0, F64))
        conv = b.fptosi(safe, L.vec(I64)) if d.is_signed or w < 64 else b.fptoui(safe, L.vec(I64))
        conv = b.trunc(conv, dt) if w < 64 else conv
        maxv = (1 << (w - 1)) - 1 if d.is_signed else (1 << w) - 1
        minv = -(1 << (w - 1)) if d.is_signed else 0
        r2 = b.select(b.fcmp_ordered(">=", r, L.splat(hi, F64)), L.cint(maxv, elem_llvm_type(d)),
                      b.select(b.fcmp_ordered("<", r, L.splat(lo, F64)),
                               L.cint(minv, elem_llvm_type(d)), conv))
        # NaN (PTX ISA cvt, "Integer Notes"): "Zero if source is not .f64 and destination is
        # not .s64, .u64", "Otherwise 1 << (BitWidth(dst) - 1)"
        nan = 0 if s.name != "f64" and w != 64 else 1 << (w - 1)
        return [b.select(b.fcmp_unordered("uno", v, v), L.cint(nan, elem_llvm_type(d)),
                         b.select(inside, conv, r2))]
    if d.is_float:  # int -> float
        if s.bits == 64:   # not exact in f64: round once to d (through round-to-odd)
            if d.name == "f64":
                return [nm.int64_to_f64(L, x, s.is_signed, rnd)]
            return [_to_float(L, nm.int64_to_f64(L, x, s.is_signed, "odd"), d, rnd, sat)]
        x64 = b.sitofp(x, L.vec(F64)) if s.is_signed else b.uitofp(x, L.vec(F64))
        return [_to_float(L, x64, d, rnd, sat)]
    # int -> int
    if sat == "sat":
        w = max(s.bits, d.bits) + 1
        wide = _widen(L, x, s, w)
        wt = ir.IntType(w)
        maxv = (1 << (d.bits - 1)) - 1 if d.is_signed else (1 << d.bits) - 1
        minv = -(1 << (d.bits - 1)) if d.is_signed else 0
        wide = b.select(b.icmp_signed(">", wide, L.cint(maxv, wt)), L.cint(maxv, wt), wide)
        wide = b.select(b.icmp_signed("<", wide, L.cint(minv, wt)), L.cint(minv, wt), wide)
        return [b.trunc(wide, dt)]
    if d.bits < s.bits:
        return [b.trunc(x, dt)]
    if d.bits > s.bits:
        return [b.sext(x, dt) if s.is_signed else b.zext(x, dt)]
    return [x]
