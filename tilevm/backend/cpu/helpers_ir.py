"""Scalar helper functions of the CPU backend, written as LLVM IR text and linked into the
kernel modules (``helpers_for``: the mma helpers only into modules that call them): the
membermask check of the warp collectives where lanes form groups, the deferred ``cp.async``
queues, the exact ``mma.sync`` accumulation, and ``tv_map_f64``, which applies a C library
function ``double f(double)`` to the 32 lanes of a buffer in place, with a table of exceptions
(the ``.approx`` transcendentals: one call and a loop instead of 32 libcalls expanded at every
use).

cp.async queue of one lane (``CPA_LANE_BYTES`` bytes): ``[count i32][commits i32]`` then
``CPA_CAPACITY`` entries of ``[dst i32][size i32][src_size i32][group i32][src i64]``. A copy
joins the lane's open group (numbered by how many commits the lane has made); ``wait n``
performs, in issue order, every entry whose group is older than the ``n`` newest committed
groups, and keeps the rest.

mma: ``tv_mma(F, acode, bcode, ccode)`` runs one ``mma.sync`` of the warp on the raw fragment
words in ``F`` (A, B, C, then D written, each register's 32 lanes in a row), decoding each
element from its type code (``TV_MMA_INPUT_CODES``, ``TV_MMA_ACCUMULATOR_CODES``). Float results
are the exact sum of the K products and C, rounded once to f32 or f16 (nearest even): when every
addition of the f64 sum is exact (TwoSum error 0) that sum is rounded; otherwise the products
are summed again in a 640-bit fixed-point accumulator with 2^-300 resolution (tf32 products reach
2^-272, bf16 ones 2^-266). Integer results are C plus the exact sum, wrapped to 32 bits.
"""

from __future__ import annotations

__all__ = ["CPA_CAPACITY", "CPA_LANE_BYTES", "HELPERS_IR", "TV_MMA_ACCUMULATOR_CODES",
           "TV_MMA_INPUT_CODES", "helpers_for"]

# A thread may have this many copies pending (GPUs set no limit; a pipeline of a few stages
# that falls back to 4-byte copies can reach a hundred).
CPA_CAPACITY = 256
CPA_ENTRY_BYTES = 24
CPA_LANE_BYTES = 8 + CPA_CAPACITY * CPA_ENTRY_BYTES

# The type codes tv_mma takes for its inputs and accumulators.
TV_MMA_INPUT_CODES = {"f16": 0, "bf16": 1, "tf32": 2, "e4m3": 3, "e5m2": 4, "s8": 5, "u8": 6}
TV_MMA_ACCUMULATOR_CODES = {"f32": 0, "f16": 1, "s32": 2}

_BASE_IR = r"""
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

; The membermask rule of shfl.sync/vote.sync/bar.warp.sync where the executing lanes do not all
; name exactly themselves: each executing lane k (in order) must be in its mask m[k], name only
; executing lanes, and every lane it names must name the same mask. 0 if that holds, else
; 2^32 | the first offending lane's mask.
define i64 @tv_members_bad(ptr %m, i32 %act) {
entry:
  %nact = xor i32 %act, -1
  br label %lane
lane:
  %k = phi i32 [ 0, %entry ], [ %k1, %lane_next ]
  %ka = lshr i32 %act, %k
  %kon = and i32 %ka, 1
  %executing = icmp ne i32 %kon, 0
  br i1 %executing, label %check, label %lane_next
check:
  %mp = getelementptr i32, ptr %m, i32 %k
  %mk = load i32, ptr %mp, align 4
  %self = lshr i32 %mk, %k
  %self1 = and i32 %self, 1
  %outside = icmp eq i32 %self1, 0
  %absent = and i32 %mk, %nact
  %missing = icmp ne i32 %absent, 0
  %wrong = or i1 %outside, %missing
  br i1 %wrong, label %bad, label %named
named:
  %j = phi i32 [ 0, %check ], [ %j1, %named_next ]
  %ja = lshr i32 %mk, %j
  %jon = and i32 %ja, 1
  %is_named = icmp ne i32 %jon, 0
  br i1 %is_named, label %compare, label %named_next
compare:
  %mjp = getelementptr i32, ptr %m, i32 %j
  %mj = load i32, ptr %mjp, align 4
  %differs = icmp ne i32 %mj, %mk
  br i1 %differs, label %bad, label %named_next
named_next:
  %j1 = add i32 %j, 1
  %jmore = icmp ult i32 %j1, 32
  br i1 %jmore, label %named, label %lane_next
lane_next:
  %k1 = add i32 %k, 1
  %more = icmp ult i32 %k1, 32
  br i1 %more, label %lane, label %ok
ok:
  ret i64 0
bad:
  %mk64 = zext i32 %mk to i64
  %r = or i64 %mk64, 4294967296
  ret i64 %r
}

define internal ptr @tv_cpa_lane(ptr %q, i32 %lane) {
  %off = mul i32 %lane, LANE_BYTES
  %o64 = zext i32 %off to i64
  %p = getelementptr i8, ptr %q, i64 %o64
  ret ptr %p
}

define internal ptr @tv_cpa_entry(ptr %lq, i32 %i) {
  %off = mul i32 %i, 24
  %o = add i32 %off, 8
  %o64 = zext i32 %o to i64
  %p = getelementptr i8, ptr %lq, i64 %o64
  ret ptr %p
}

define i32 @tv_cpa_issue(ptr %q, i32 %lane, i32 %dst, i64 %src, i32 %size, i32 %srcsize) {
entry:
  %lq = call ptr @tv_cpa_lane(ptr %q, i32 %lane)
  %count = load i32, ptr %lq, align 4
  %full = icmp uge i32 %count, CAPACITY
  br i1 %full, label %overflow, label %ok
overflow:
  ret i32 1
ok:
  %pc = getelementptr i8, ptr %lq, i64 4
  %commits = load i32, ptr %pc, align 4
  %e = call ptr @tv_cpa_entry(ptr %lq, i32 %count)
  store i32 %dst, ptr %e, align 4
  %e1 = getelementptr i8, ptr %e, i64 4
  store i32 %size, ptr %e1, align 4
  %e2 = getelementptr i8, ptr %e, i64 8
  %small = icmp ult i32 %srcsize, %size
  %ss = select i1 %small, i32 %srcsize, i32 %size
  store i32 %ss, ptr %e2, align 4
  %e3 = getelementptr i8, ptr %e, i64 12
  store i32 %commits, ptr %e3, align 4
  %e4 = getelementptr i8, ptr %e, i64 16
  store i64 %src, ptr %e4, align 4
  %c1 = add i32 %count, 1
  store i32 %c1, ptr %lq, align 4
  ret i32 0
}

define void @tv_cpa_commit(ptr %q, i32 %lane) {
  %lq = call ptr @tv_cpa_lane(ptr %q, i32 %lane)
  %pc = getelementptr i8, ptr %lq, i64 4
  %commits = load i32, ptr %pc, align 4
  %c1 = add i32 %commits, 1
  store i32 %c1, ptr %pc, align 4
  ret void
}

define void @tv_cpa_wait(ptr %q, i32 %lane, i32 %n, ptr %smem) {
entry:
  %lq = call ptr @tv_cpa_lane(ptr %q, i32 %lane)
  %count = load i32, ptr %lq, align 4
  %pc = getelementptr i8, ptr %lq, i64 4
  %commits = load i32, ptr %pc, align 4
  %thr = sub i32 %commits, %n
  br label %head
head:
  %i = phi i32 [0, %entry], [%i1, %next]
  %j = phi i32 [0, %entry], [%j1, %next]
  %more = icmp ult i32 %i, %count
  br i1 %more, label %body, label %done
body:
  %e = call ptr @tv_cpa_entry(ptr %lq, i32 %i)
  %e3 = getelementptr i8, ptr %e, i64 12
  %group = load i32, ptr %e3, align 4
  %old = icmp slt i32 %group, %thr
  br i1 %old, label %perform, label %keep
perform:
  %dst = load i32, ptr %e, align 4
  %e1 = getelementptr i8, ptr %e, i64 4
  %size = load i32, ptr %e1, align 4
  %e2 = getelementptr i8, ptr %e, i64 8
  %ss = load i32, ptr %e2, align 4
  %e4 = getelementptr i8, ptr %e, i64 16
  %src = load i64, ptr %e4, align 4
  %d64 = zext i32 %dst to i64
  %dp = getelementptr i8, ptr %smem, i64 %d64
  %sp = inttoptr i64 %src to ptr
  %ss64 = zext i32 %ss to i64
  call void @llvm.memcpy.p0.p0.i64(ptr %dp, ptr %sp, i64 %ss64, i1 false)
  %zp = getelementptr i8, ptr %dp, i64 %ss64
  %zn = sub i32 %size, %ss
  %zn64 = zext i32 %zn to i64
  call void @llvm.memset.p0.i64(ptr %zp, i8 0, i64 %zn64, i1 false)
  br label %next
keep:
  %ej = call ptr @tv_cpa_entry(ptr %lq, i32 %j)
  call void @llvm.memcpy.p0.p0.i64(ptr %ej, ptr %e, i64 24, i1 false)
  %jk = add i32 %j, 1
  br label %next
next:
  %j1 = phi i32 [%j, %perform], [%jk, %keep]
  %i1 = add i32 %i, 1
  br label %head
done:
  store i32 %j, ptr %lq, align 4
  ret void
}


; x[i] = f(x[i]) for the 32 lanes of a warp vector of doubles, except where x[i] is one of the n
; inputs of the table (pairs of doubles (input, result), sorted by input): there the table's
; result (found by binary search; a NaN input finds nothing)
define void @tv_map_f64(ptr %f, ptr %x, ptr %table, i32 %n) {
entry:
  br label %head
head:
  %i = phi i32 [0, %entry], [%i1, %next]
  %more = icmp ult i32 %i, 32
  br i1 %more, label %body, label %done
body:
  %p = getelementptr double, ptr %x, i32 %i
  %v = load double, ptr %p, align 8
  %r = call double %f(double %v)
  br label %search
search:
  %lo = phi i32 [0, %body], [%lo1, %step]
  %hi = phi i32 [%n, %body], [%hi1, %step]
  %left = icmp ult i32 %lo, %hi
  br i1 %left, label %probe, label %next
probe:
  %sum = add i32 %lo, %hi
  %mid = lshr i32 %sum, 1
  %k2 = shl i32 %mid, 1
  %pin = getelementptr double, ptr %table, i32 %k2
  %in = load double, ptr %pin, align 8
  %hit = fcmp oeq double %in, %v
  br i1 %hit, label %found, label %step
step:
  %below = fcmp olt double %in, %v
  %mid1 = add i32 %mid, 1
  %lo1 = select i1 %below, i32 %mid1, i32 %lo
  %hi1 = select i1 %below, i32 %hi, i32 %mid
  br label %search
found:
  %pout = getelementptr double, ptr %pin, i32 1
  %out = load double, ptr %pout, align 8
  br label %next
next:
  %final = phi double [%r, %search], [%out, %found]
  store double %final, ptr %p, align 8
  %i1 = add i32 %i, 1
  br label %head
done:
  ret void
}
"""

_MMA_IR = r"""
declare i640 @llvm.ctlz.i640(i640, i1)

; exact f64 -> fixed point with 2^-300 resolution (the value must be finite and a multiple of it)
define internal i640 @tv_fix(double %p) {
  %bits = bitcast double %p to i64
  %e = lshr i64 %bits, 52
  %ee = and i64 %e, 2047
  %m = and i64 %bits, 4503599627370495
  %isz = icmp eq i64 %ee, 0
  %mi = or i64 %m, 4503599627370496
  %sh = sub i64 %ee, 775
  %neg = icmp slt i64 %sh, 0
  %nsh = sub i64 0, %sh
  %nshc = select i1 %neg, i64 %nsh, i64 0
  %mr = lshr i64 %mi, %nshc
  %w = zext i64 %mr to i640
  %psh = select i1 %neg, i64 0, i64 %sh
  %psh640 = zext i64 %psh to i640
  %v = shl i640 %w, %psh640
  %v0 = select i1 %isz, i640 0, i640 %v
  %sign = icmp slt i64 %bits, 0
  %nv = sub i640 0, %v0
  %r = select i1 %sign, i640 %nv, i640 %v0
  ret i640 %r
}

; fixed point (2^-300 resolution) -> the bits of a binary float with %p significant bits whose
; smallest subnormal is 2^(%q - 300) (f32: 24, 151; f16: 11, 276), rounded to nearest even;
; overflow gives the infinity %inf, a negative value the sign bit %sgn; zero gives +0.
define internal i32 @tv_round(i640 %t, i32 %p, i32 %q, i32 %inf, i32 %sgn) {
  %neg = icmp slt i640 %t, 0
  %nt = sub i640 0, %t
  %mag = select i1 %neg, i640 %nt, i640 %t
  %lz = call i640 @llvm.ctlz.i640(i640 %mag, i1 false)
  %n = sub i640 640, %lz
  %p640 = zext i32 %p to i640
  %q640 = zext i32 %q to i640
  %nmp = sub i640 %n, %p640
  %big = icmp sgt i640 %nmp, %q640
  %shift = select i1 %big, i640 %nmp, i640 %q640
  %keepw = lshr i640 %mag, %shift
  %keep = trunc i640 %keepw to i64
  %up = sub i640 640, %shift
  %low = shl i640 %mag, %up
  %halfbit = shl i640 1, 639
  %gt = icmp ugt i640 %low, %halfbit
  %eq = icmp eq i640 %low, %halfbit
  %odd0 = and i64 %keep, 1
  %odd = icmp ne i64 %odd0, 0
  %tie = and i1 %eq, %odd
  %rup = or i1 %gt, %tie
  %inc = zext i1 %rup to i64
  %k2 = add i64 %keep, %inc
  %s64 = trunc i640 %shift to i64
  %q64 = zext i32 %q to i64
  %ex = sub i64 %s64, %q64
  %pm1 = sub i32 %p, 1
  %pm164 = zext i32 %pm1 to i64
  %exs = shl i64 %ex, %pm164
  %b0 = add i64 %exs, %k2
  %inf64 = zext i32 %inf to i64
  %ovf = icmp uge i64 %b0, %inf64
  %b1 = select i1 %ovf, i64 %inf64, i64 %b0
  %b32 = trunc i64 %b1 to i32
  %s = select i1 %neg, i32 %sgn, i32 0
  %r = or i32 %b32, %s
  ret i32 %r
}

; 2^k as a double, for -1022 <= k <= 1023
define internal double @tv_pow2(i32 %k) {
  %b = add i32 %k, 1023
  %w = zext i32 %b to i64
  %s = shl i64 %w, 52
  %d = bitcast i64 %s to double
  ret double %d
}

; the exact value of the code %x of a binary float with %eb exponent bits (bias 2^(eb-1) - 1)
; and %mb mantissa bits: IEEE specials, or with %fn (OCP "fn", e4m3) no infinity and only
; S.1..1.1..1 a NaN
define internal double @tv_float_value(i32 %x, i32 %eb, i32 %mb, i1 %fn) {
  %em = add i32 %eb, %mb
  %sb = lshr i32 %x, %em
  %sign = and i32 %sb, 1
  %e0 = lshr i32 %x, %mb
  %eone = shl i32 1, %eb
  %emax = sub i32 %eone, 1
  %e = and i32 %e0, %emax
  %mone = shl i32 1, %mb
  %mmax = sub i32 %mone, 1
  %m = and i32 %x, %mmax
  %sub = icmp eq i32 %e, 0
  %mi = or i32 %m, %mone
  %sig = select i1 %sub, i32 %m, i32 %mi
  %ex = select i1 %sub, i32 1, i32 %e
  %ebm1 = sub i32 %eb, 1
  %bias1 = shl i32 1, %ebm1
  %bias = sub i32 %bias1, 1
  %k0 = sub i32 %ex, %bias
  %k = sub i32 %k0, %mb
  %sigf = uitofp i32 %sig to double
  %scale = call double @tv_pow2(i32 %k)
  %v = fmul double %sigf, %scale
  %top = icmp eq i32 %e, %emax
  %mzero = icmp eq i32 %m, 0
  %mfull = icmp eq i32 %m, %mmax
  %ieee = xor i1 %fn, true
  %isinf0 = and i1 %top, %mzero
  %isinf = and i1 %isinf0, %ieee
  %mnz = xor i1 %mzero, true
  %nan_ieee = and i1 %top, %mnz
  %nan_fn = and i1 %top, %mfull
  %isnan = select i1 %fn, i1 %nan_fn, i1 %nan_ieee
  %v1 = select i1 %isinf, double 0x7FF0000000000000, double %v
  %v2 = select i1 %isnan, double 0x7FF8000000000000, double %v1
  %neg = icmp ne i32 %sign, 0
  %nv = fneg double %v2
  %r = select i1 %neg, double %nv, double %v2
  ret double %r
}

; log2 of the elements per 32-bit register of an mma input type code (see tv_mma)
define internal i32 @tv_mma_lg(i32 %code) {
  %is16 = icmp ult i32 %code, 2
  %istf = icmp eq i32 %code, 2
  %a = select i1 %is16, i32 1, i32 2
  %r = select i1 %istf, i32 0, i32 %a
  ret i32 %r
}

; element %e (LSB-first) of the fragment word %w of input type %code, as an exact double
define internal double @tv_mma_value(i32 %w, i32 %e, i32 %code) {
entry:
  %lg = call i32 @tv_mma_lg(i32 %code)
  %width = lshr i32 32, %lg
  %sh = mul i32 %e, %width
  %x = lshr i32 %w, %sh
  %x16 = and i32 %x, 65535
  %x8 = and i32 %x, 255
  switch i32 %code, label %u8 [ i32 0, label %f16
                                i32 1, label %bf16
                                i32 2, label %tf32
                                i32 3, label %e4m3
                                i32 4, label %e5m2
                                i32 5, label %s8 ]
f16:
  %vf16 = call double @tv_float_value(i32 %x16, i32 5, i32 10, i1 false)
  br label %done
bf16:
  %vbf16 = call double @tv_float_value(i32 %x16, i32 8, i32 7, i1 false)
  br label %done
tf32:
  ; the tensor core reads the high 19 bits of a tf32 register
  %xt = and i32 %w, -8192
  %vtf32 = call double @tv_float_value(i32 %xt, i32 8, i32 23, i1 false)
  br label %done
e4m3:
  %ve4m3 = call double @tv_float_value(i32 %x8, i32 4, i32 3, i1 true)
  br label %done
e5m2:
  %ve5m2 = call double @tv_float_value(i32 %x8, i32 5, i32 2, i1 false)
  br label %done
s8:
  %t8 = trunc i32 %x8 to i8
  %vs8 = sitofp i8 %t8 to double
  br label %done
u8:
  %vu8 = uitofp i32 %x8 to double
  br label %done
done:
  %v = phi double [%vf16, %f16], [%vbf16, %bf16], [%vtf32, %tf32], [%ve4m3, %e4m3],
                  [%ve5m2, %e5m2], [%vs8, %s8], [%vu8, %u8]
  ret double %v
}

; the %n elements per lane of the fragment of %nr registers at words %F (register r, lane l at
; r*32 + l) decoded into %V: element i (PTX index, i = r * 2^lg + e) of lane l at i*32 + l
define internal void @tv_mma_decode(ptr %F, ptr %V, i32 %nr, i32 %code) {
entry:
  %lg = call i32 @tv_mma_lg(i32 %code)
  %epr = shl i32 1, %lg
  %emask = sub i32 %epr, 1
  %n0 = shl i32 %nr, %lg
  %n = mul i32 %n0, 32
  br label %head
head:
  %j = phi i32 [0, %entry], [%j1, %body]
  %more = icmp ult i32 %j, %n
  br i1 %more, label %body, label %done
body:
  %i = lshr i32 %j, 5
  %lane = and i32 %j, 31
  %r = lshr i32 %i, %lg
  %e = and i32 %i, %emask
  %r32 = mul i32 %r, 32
  %wi = add i32 %r32, %lane
  %wp = getelementptr i32, ptr %F, i32 %wi
  %w = load i32, ptr %wp, align 4
  %v = call double @tv_mma_value(i32 %w, i32 %e, i32 %code)
  %vp = getelementptr double, ptr %V, i32 %j
  store double %v, ptr %vp, align 8
  %j1 = add i32 %j, 1
  br label %head
done:
  ret void
}

; One mma.sync (m16n8kK, K = 8 * 2^lg) of the warp on raw fragment words at %F: A in words
; 0..127 (4 registers), B in 128..191 (2), C in 192..319 (4 registers, or 2 f16x2), D written to
; 320..447 (the same shape as C); register r of lane l at r*32 + l. Input type codes %acode,
; %bcode: 0 f16, 1 bf16, 2 tf32, 3 e4m3, 4 e5m2, 5 s8, 6 u8 (both of one width); accumulator
; %ccode: 0 f32, 1 f16, 2 s32.
; Fragments (PTX ISA "Matrix Fragments for mma.m16n8k8/k16/k32"), with p = 2^lg elements per
; register and h = K/2: A(row, k) is element e = k % p of register (row / 8) + 2 (k / h) of lane
; (row % 8) * 4 + (k % h) / p; B(k, col) element k % p of register k / h of lane col * 4 +
; (k % h) / p; C/D element j = o / 32 of lane o % 32 sits at row lane/4 + 8 (j/2), col
; 2 (lane%4) + j%2 (register j, or half j%2 of register j/2 for f16).
; Each float output is the exact sum of the K products and C rounded once: when no f64 addition
; (TwoSum) was inexact the f64 sum is exact and is rounded; otherwise the sum is redone in a
; 640-bit fixed point of resolution 2^-300 (products reach 2^-272 for tf32, 2^-266 for bf16, and
; stay below 2^257). Integer outputs are C plus the exact f64 sum (below 2^22), modulo 2^32.
define void @tv_mma(ptr %F, i32 %acode, i32 %bcode, i32 %ccode) {
entry:
  %Av = alloca [512 x double], align 16
  %Bv = alloca [256 x double], align 16
  %Bw = getelementptr i32, ptr %F, i32 128
  %Cw = getelementptr i32, ptr %F, i32 192
  %Dw = getelementptr i32, ptr %F, i32 320
  call void @tv_mma_decode(ptr %F, ptr %Av, i32 4, i32 %acode)
  call void @tv_mma_decode(ptr %Bw, ptr %Bv, i32 2, i32 %bcode)
  %lg = call i32 @tv_mma_lg(i32 %acode)
  %lg2 = add i32 %lg, 2
  %epr = shl i32 1, %lg
  %emask = sub i32 %epr, 1
  %K = shl i32 8, %lg
  %h = shl i32 4, %lg
  %hmask = sub i32 %h, 1
  %isint = icmp eq i32 %ccode, 2
  %isf16 = icmp eq i32 %ccode, 1
  br label %outer
outer:
  %o = phi i32 [0, %entry], [%o1, %store]
  %odone = icmp uge i32 %o, 128
  br i1 %odone, label %pack, label %obody
obody:
  %lane = and i32 %o, 31
  %j = lshr i32 %o, 5
  %g = lshr i32 %lane, 2
  %t = and i32 %lane, 3
  %jhalf = lshr i32 %j, 1
  %row8 = mul i32 %jhalf, 8
  %row = add i32 %g, %row8
  %t2 = shl i32 %t, 1
  %jlow = and i32 %j, 1
  %col = add i32 %t2, %jlow
  %rowlo = and i32 %row, 7
  %arl = shl i32 %rowlo, 2
  %arhi = lshr i32 %row, 3
  %bcl = shl i32 %col, 2
  ; C: word j (f32, s32) or half j%2 of word j/2 (f16)
  %creg = select i1 %isf16, i32 %jhalf, i32 %j
  %creg32 = mul i32 %creg, 32
  %cwi = add i32 %creg32, %lane
  %cwp = getelementptr i32, ptr %Cw, i32 %cwi
  %cw = load i32, ptr %cwp, align 4
  %chsh = mul i32 %jlow, 16
  %chs = lshr i32 %cw, %chsh
  %ch = and i32 %chs, 65535
  %cf16 = call double @tv_float_value(i32 %ch, i32 5, i32 10, i1 false)
  %cf = bitcast i32 %cw to float
  %cf32 = fpext float %cf to double
  %cfl = select i1 %isf16, double %cf16, double %cf32
  %c = select i1 %isint, double 0.0, double %cfl
  %cabs = call double @llvm.fabs.f64(double %c)
  %cfin = fcmp olt double %cabs, 0x7FF0000000000000
  %cspecial = xor i1 %cfin, true
  br label %fast
fast:
  %k = phi i32 [0, %obody], [%k1, %fbody]
  %fs = phi double [%c, %obody], [%fs1, %fbody]
  %sp = phi i1 [%cspecial, %obody], [%sp1, %fbody]
  %ex = phi i1 [true, %obody], [%ex1, %fbody]
  %kdone = icmp uge i32 %k, %K
  br i1 %kdone, label %decide, label %fbody
fbody:
  %p = call double @tv_mma_product(ptr %Av, ptr %Bv, i32 %k, i32 %arl, i32 %arhi, i32 %bcl,
                                   i32 %lg, i32 %lg2, i32 %emask, i32 %hmask)
  %pabs = call double @llvm.fabs.f64(double %p)
  %pfin = fcmp olt double %pabs, 0x7FF0000000000000
  %pspecial = xor i1 %pfin, true
  %sp1 = or i1 %sp, %pspecial
  %fs1 = fadd double %fs, %p
  %bb = fsub double %fs1, %fs
  %t1 = fsub double %fs1, %bb
  %e1 = fsub double %fs, %t1
  %e2 = fsub double %p, %bb
  %err = fadd double %e1, %e2
  %exact = fcmp oeq double %err, 0.0
  %ex1 = and i1 %ex, %exact
  %k1 = add i32 %k, 1
  br label %fast
decide:
  br i1 %isint, label %intres, label %fdecide
intres:
  %iv = fptosi double %fs to i64
  %cw64 = sext i32 %cw to i64
  %isum = add i64 %iv, %cw64
  %ir = trunc i64 %isum to i32
  br label %store
fdecide:
  %fsbits = bitcast double %fs to i64
  %fsneg = icmp slt i64 %fsbits, 0
  %sgn16 = select i1 %fsneg, i32 32768, i32 0
  br i1 %sp, label %special, label %fdecide2
special:
  ; an inf or NaN input: IEEE arithmetic on the f64 sum decides inf vs NaN; NaN is canonical
  %fsnan = fcmp uno double %fs, 0.0
  %fsf = fptrunc double %fs to float
  %fsb = bitcast float %fsf to i32
  %inf16 = or i32 %sgn16, 31744
  %spv = select i1 %isf16, i32 %inf16, i32 %fsb
  %nanv = select i1 %isf16, i32 32767, i32 2147483647
  %spres = select i1 %fsnan, i32 %nanv, i32 %spv
  br label %store
fdecide2:
  br i1 %ex, label %exactsum, label %slow0
exactsum:
  br i1 %isf16, label %exact16, label %exact32
exact32:
  %ef = fptrunc double %fs to float
  %eb = bitcast float %ef to i32
  br label %store
exact16:
  ; the exact sum is a multiple of 2^-48: its fixed point rounds once to f16 (a zero keeps the
  ; sign the f64 sum gave it, as IEEE addition does)
  %iszero = fcmp oeq double %fs, 0.0
  %efix = call i640 @tv_fix(double %fs)
  %er16 = call i32 @tv_round(i640 %efix, i32 11, i32 276, i32 31744, i32 32768)
  %e16 = select i1 %iszero, i32 %sgn16, i32 %er16
  br label %store
slow0:
  %cfix = call i640 @tv_fix(double %c)
  br label %slow
slow:
  %sk = phi i32 [0, %slow0], [%sk1, %sbody]
  %acc = phi i640 [%cfix, %slow0], [%acc1, %sbody]
  %sdone = icmp uge i32 %sk, %K
  br i1 %sdone, label %sfinish, label %sbody
sbody:
  %sp2 = call double @tv_mma_product(ptr %Av, ptr %Bv, i32 %sk, i32 %arl, i32 %arhi, i32 %bcl,
                                     i32 %lg, i32 %lg2, i32 %emask, i32 %hmask)
  %pfix = call i640 @tv_fix(double %sp2)
  %acc1 = add i640 %acc, %pfix
  %sk1 = add i32 %sk, 1
  br label %slow
sfinish:
  ; an exact zero (terms that cancel, though the f64 sum did not) rounds to +0, as in IEEE
  %rb32 = call i32 @tv_round(i640 %acc, i32 24, i32 151, i32 2139095040, i32 -2147483648)
  %rb16 = call i32 @tv_round(i640 %acc, i32 11, i32 276, i32 31744, i32 32768)
  %rb = select i1 %isf16, i32 %rb16, i32 %rb32
  br label %store
store:
  %res = phi i32 [%ir, %intres], [%spres, %special], [%eb, %exact32], [%e16, %exact16],
                 [%rb, %sfinish]
  %dp = getelementptr i32, ptr %Dw, i32 %o
  store i32 %res, ptr %dp, align 4
  %o1 = add i32 %o, 1
  br label %outer
pack:
  ; an f16 accumulator: elements 2r, 2r+1 become the halves of register r (in place, r = 0, 1)
  br i1 %isf16, label %phead, label %exit
phead:
  %q = phi i32 [0, %pack], [%q1, %pbody]
  %pmore = icmp ult i32 %q, 64
  br i1 %pmore, label %pbody, label %exit
pbody:
  %pr = lshr i32 %q, 5
  %pl = and i32 %q, 31
  %pr2 = mul i32 %pr, 64
  %loi = add i32 %pr2, %pl
  %hii = add i32 %loi, 32
  %lop = getelementptr i32, ptr %Dw, i32 %loi
  %hip = getelementptr i32, ptr %Dw, i32 %hii
  %lo = load i32, ptr %lop, align 4
  %hi = load i32, ptr %hip, align 4
  %hish = shl i32 %hi, 16
  %word = or i32 %lo, %hish
  %wp = getelementptr i32, ptr %Dw, i32 %q
  store i32 %word, ptr %wp, align 4
  %q1 = add i32 %q, 1
  br label %phead
exit:
  ret void
}

; tv_mma_at(A, B, C, D, acode, bcode, ccode, nc): tv_mma on the registers at A (a0-a3), B (b0, b1),
; C (c0.., nc of them) and D (d0..): each register 32 lanes of 4 bytes, a fragment's registers in a
; row. A kernel's mma.sync statement is a call of this with the addresses of its registers' slots:
; no vector value crosses the call, which keeps the statement cheap to compile.
define void @tv_mma_at(ptr %A, ptr %B, ptr %C, ptr %D, i32 %acode, i32 %bcode, i32 %ccode,
                       i32 %nc) {
  %F = alloca [14 x <32 x i32>], align 32
  call void @llvm.memset.p0.i64(ptr %F, i8 0, i64 1792, i1 false)
  call void @llvm.memcpy.p0.p0.i64(ptr %F, ptr %A, i64 512, i1 false)
  %Fb = getelementptr i8, ptr %F, i64 512
  call void @llvm.memcpy.p0.p0.i64(ptr %Fb, ptr %B, i64 256, i1 false)
  %Fc = getelementptr i8, ptr %F, i64 768
  %nc32 = mul i32 %nc, 128
  %cbytes = zext i32 %nc32 to i64
  call void @llvm.memcpy.p0.p0.i64(ptr %Fc, ptr %C, i64 %cbytes, i1 false)
  call void @tv_mma(ptr %F, i32 %acode, i32 %bcode, i32 %ccode)
  %Fd = getelementptr i8, ptr %F, i64 1280
  call void @llvm.memcpy.p0.p0.i64(ptr %D, ptr %Fd, i64 %cbytes, i1 false)
  ret void
}
; A(row, k) * B(k, col), exact in f64, from the decoded fragments (see tv_mma); %arl = (row % 8)
; * 4, %arhi = row / 8, %bcl = col * 4
define internal double @tv_mma_product(ptr %Av, ptr %Bv, i32 %k, i32 %arl, i32 %arhi, i32 %bcl,
                                       i32 %lg, i32 %lg2, i32 %emask, i32 %hmask) {
  %kin = and i32 %k, %hmask
  %kt = lshr i32 %kin, %lg
  %kh = lshr i32 %k, %lg2
  %e = and i32 %k, %emask
  %alane = add i32 %arl, %kt
  %kh2 = shl i32 %kh, 1
  %areg = add i32 %arhi, %kh2
  %aregs = shl i32 %areg, %lg
  %ai = add i32 %aregs, %e
  %ai32 = mul i32 %ai, 32
  %aidx = add i32 %ai32, %alane
  %ap = getelementptr double, ptr %Av, i32 %aidx
  %a = load double, ptr %ap, align 8
  %blane = add i32 %bcl, %kt
  %bregs = shl i32 %kh, %lg
  %bi = add i32 %bregs, %e
  %bi32 = mul i32 %bi, 32
  %bidx = add i32 %bi32, %blane
  %bp = getelementptr double, ptr %Bv, i32 %bidx
  %b = load double, ptr %bp, align 8
  %prod = fmul double %a, %b
  ret double %prod
}

declare double @llvm.fabs.f64(double)
"""


_BASE_IR = _BASE_IR.replace("LANE_BYTES", str(CPA_LANE_BYTES)).replace("CAPACITY",
                                                                      str(CPA_CAPACITY))
HELPERS_IR = _BASE_IR + _MMA_IR


def helpers_for(module_text: str) -> str:
    """The helpers a kernel module needs: every one but the mma helpers, and those too when the
    module calls ``tv_mma`` (each helper costs JIT time in every module it is linked into)."""
    return HELPERS_IR if "tv_mma" in module_text else _BASE_IR
