"""Scalar helper functions of the CPU backend, written as LLVM IR text and linked into every
kernel module: the deferred ``cp.async`` queues, the exact ``mma.sync`` accumulation, and
``tv_map_f64``, which applies a C library function ``double f(double)`` to the 32 lanes of a
buffer in place, with a table of exceptions (the ``.approx`` transcendentals: one call and a loop
instead of 32 libcalls expanded at every use).

cp.async queue of one lane (``CPA_LANE_BYTES`` bytes): ``[count i32][commits i32]`` then
``CPA_CAPACITY`` entries of ``[dst i32][size i32][src_size i32][group i32][src i64]``. A copy
joins the lane's open group (numbered by how many commits the lane has made); ``wait n``
performs, in issue order, every entry whose group is older than the ``n`` newest committed
groups, and keeps the rest.

mma: ``tv_mma`` takes the fragments decoded to f64 (``A[i][lane]``, ``B[i][lane]``,
``C[i][lane]``) and writes ``D[i][lane]`` as 32-bit patterns. Float results are the exact sum
of the K products and C, rounded once to f32 (nearest even): when every addition of the f64 sum
is exact (TwoSum error 0) that sum is rounded; otherwise the products are summed again in a
640-bit fixed-point accumulator with 2^-300 resolution (bf16 products reach 2^-266, f32 inputs
2^-149). Integer results are the sum in f64 (exact: |sum| < 2^53) wrapped to 32 bits.
"""

from __future__ import annotations

__all__ = ["CPA_CAPACITY", "CPA_LANE_BYTES", "HELPERS_IR"]

# A thread may have this many copies pending (GPUs set no limit; a pipeline of a few stages
# that falls back to 4-byte copies can reach a hundred).
CPA_CAPACITY = 256
CPA_ENTRY_BYTES = 24
CPA_LANE_BYTES = 8 + CPA_CAPACITY * CPA_ENTRY_BYTES

HELPERS_IR = r"""
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
declare i640 @llvm.ctlz.i640(i640, i1)

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

; fixed point (2^-300 resolution) -> f32 bits, rounded to nearest even
define internal i32 @tv_round_f32(i640 %t) {
  %neg = icmp slt i640 %t, 0
  %nt = sub i640 0, %t
  %mag = select i1 %neg, i640 %nt, i640 %t
  %lz = call i640 @llvm.ctlz.i640(i640 %mag, i1 false)
  %n = sub i640 640, %lz
  %nm24 = sub i640 %n, 24
  %big = icmp sgt i640 %nm24, 151
  %shift = select i1 %big, i640 %nm24, i640 151
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
  %ex = sub i64 %s64, 151
  %exs = shl i64 %ex, 23
  %b0 = add i64 %exs, %k2
  %ovf = icmp uge i64 %b0, 2139095040
  %b1 = select i1 %ovf, i64 2139095040, i64 %b0
  %b32 = trunc i64 %b1 to i32
  %sgn = select i1 %neg, i32 -2147483648, i32 0
  %r = or i32 %b32, %sgn
  ret i32 %r
}

; the product A(row, k) * B(k, col), exact in f64, read from the fragments:
; A(row, k): 16-bit: lane (row%8)*4 + (k%8)/2, elem (k%2) + 2*(row/8) + 4*(k/8)
;            8-bit:  lane (row%8)*4 + (k%16)/4, elem (k%4) + 4*(row/8) + 8*(k/16)
; B(k, col): 16-bit: lane col*4 + (k%8)/2, elem (k%2) + 2*(k/8)
;            8-bit:  lane col*4 + (k%16)/4, elem (k%4) + 4*(k/16)
define internal double @tv_mma_product(ptr %A, ptr %B, i32 %row, i32 %col, i32 %k, i1 %is8) {
  %rm8 = and i32 %row, 7
  %rl = shl i32 %rm8, 2
  %rd8 = lshr i32 %row, 3
  %kq16 = and i32 %k, 7
  %kq8 = and i32 %k, 15
  %kq = select i1 %is8, i32 %kq8, i32 %kq16
  %tsh = select i1 %is8, i32 2, i32 1
  %kt = lshr i32 %kq, %tsh
  %alane = add i32 %rl, %kt
  %kwm = select i1 %is8, i32 3, i32 1
  %kw = and i32 %k, %kwm
  %rstride = select i1 %is8, i32 4, i32 2
  %rpart = mul i32 %rd8, %rstride
  %ksh = select i1 %is8, i32 4, i32 3
  %kblk = lshr i32 %k, %ksh
  %kstride = select i1 %is8, i32 8, i32 4
  %kpart = mul i32 %kblk, %kstride
  %ae0 = add i32 %kw, %rpart
  %aelem = add i32 %ae0, %kpart
  %aoff0 = mul i32 %aelem, 32
  %aoff = add i32 %aoff0, %alane
  %ap = getelementptr double, ptr %A, i32 %aoff
  %a = load double, ptr %ap, align 8
  %cl = shl i32 %col, 2
  %blane = add i32 %cl, %kt
  %bstride = select i1 %is8, i32 4, i32 2
  %bpart = mul i32 %kblk, %bstride
  %belem = add i32 %kw, %bpart
  %boff0 = mul i32 %belem, 32
  %boff = add i32 %boff0, %blane
  %bp = getelementptr double, ptr %B, i32 %boff
  %b = load double, ptr %bp, align 8
  %p = fmul double %a, %b
  ret double %p
}

; A[na][32], B[nb][32], C[4][32] as f64; D[4][32] as i32 patterns.
; k8 = 1 for 8-bit inputs (K = 32), 0 for 16-bit (K = 16); isint = 1 for s32 accumulation.
; Each output is first summed in f64 with TwoSum: if no addition was inexact, the f64 sum is
; the exact sum and one fptrunc rounds it; otherwise the products are summed again exactly in
; the 640-bit fixed point.
define void @tv_mma(ptr %A, ptr %B, ptr %C, ptr %D, i32 %k8, i32 %isint) {
entry:
  %is8 = icmp ne i32 %k8, 0
  %isi = icmp ne i32 %isint, 0
  %K = select i1 %is8, i32 32, i32 16
  br label %outer
outer:
  %o = phi i32 [0, %entry], [%o1, %store]
  %odone = icmp uge i32 %o, 128
  br i1 %odone, label %exit, label %obody
obody:
  ; output element (lane, i): o = i * 32 + lane; row g + 8*(i/2), column 2t + i%2
  %lane = and i32 %o, 31
  %i = lshr i32 %o, 5
  %g = lshr i32 %lane, 2
  %t = and i32 %lane, 3
  %ihalf = lshr i32 %i, 1
  %row8 = mul i32 %ihalf, 8
  %row = add i32 %g, %row8
  %t2 = shl i32 %t, 1
  %ilow = and i32 %i, 1
  %col = add i32 %t2, %ilow
  %cidx = getelementptr double, ptr %C, i32 %o
  %c = load double, ptr %cidx, align 8
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
  %p = call double @tv_mma_product(ptr %A, ptr %B, i32 %row, i32 %col, i32 %k, i1 %is8)
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
  br i1 %isi, label %intres, label %fdecide
intres:
  %iv = fptosi double %fs to i64
  %ir = trunc i64 %iv to i32
  br label %store
fdecide:
  br i1 %sp, label %special, label %fdecide2
special:
  ; an inf or NaN input: IEEE arithmetic on the f64 sum decides inf vs NaN; NaN is canonical
  %fsnan = fcmp uno double %fs, 0.0
  %fsf = fptrunc double %fs to float
  %fsb = bitcast float %fsf to i32
  %spres = select i1 %fsnan, i32 2147483647, i32 %fsb
  br label %store
fdecide2:
  br i1 %ex, label %exactsum, label %slow0
exactsum:
  %ef = fptrunc double %fs to float
  %eb = bitcast float %ef to i32
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
  %sp2 = call double @tv_mma_product(ptr %A, ptr %B, i32 %row, i32 %col, i32 %sk, i1 %is8)
  %pfix = call i640 @tv_fix(double %sp2)
  %acc1 = add i640 %acc, %pfix
  %sk1 = add i32 %sk, 1
  br label %slow
sfinish:
  ; an inexact f64 sum cannot be an exact zero, so the fixed-point result is never a zero
  ; whose sign matters
  %rb = call i32 @tv_round_f32(i640 %acc)
  br label %store
store:
  %res = phi i32 [%ir, %intres], [%spres, %special], [%eb, %exactsum], [%rb, %sfinish]
  %dp = getelementptr i32, ptr %D, i32 %o
  store i32 %res, ptr %dp, align 4
  %o1 = add i32 %o, 1
  br label %outer
exit:
  ret void
}

declare double @llvm.fabs.f64(double)

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
""".replace("LANE_BYTES", str(CPA_LANE_BYTES)).replace("CAPACITY", str(CPA_CAPACITY))
