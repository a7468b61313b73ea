"""Vectorized casts of packed floats of at most 8 bits to f16 and bf16 pairs, as Thread IR.

The value is the interpreter's (DESIGN §3): the code's exact value rounded once to nearest even
f16/bf16 (beyond f16's range ±inf, below it a subnormal or zero), bit for bit; every NaN code
gives a NaN of the destination type, any payload and sign (the numeric contract treats NaN as a
class). No sequence converts one element at a time. The common idea: place each
code's exponent and mantissa (``e + m`` bits) just under the exponent of an f16/bf16 half with
masks, shifts, ``lop3`` and ``prmt``, working on several fields of a word at once; then one
multiply by ``2^(15 − bias)`` (f16) or ``2^(127 − bias)`` (bf16) re-biases both halves exactly,
subnormal codes included (on sm_80–89 the bf16 multiply is ``fma.rn.bf16x2`` with a zero
addend: ``mul.rn.bf16x2`` needs sm_90). The sign goes to bit 15 with one more ``lop3``. Per
type:

- 3-, 5-, 6- and 7-bit codes: a ``prmt`` gathers codes ``k`` and ``k + stride`` (their bit
  offsets agree modulo 8) into the two halves, one shift aligns both, the magnitude is masked
  and re-biased, and the sign is or-ed in from a shifted copy. 4-bit codes ``k`` and ``k + 4``
  sit 16 bits apart already (no ``prmt``); f4e2m1 to
  f16 builds the f16 high bytes of four codes with one select-``lop3`` and spreads them with
  ``prmt``. ``f7e5m1`` to f16 (bias 15) needs no multiply; a ``min`` with +inf turns the two
  codes whose placed pattern is a NaN (exponent 31) into the inf they round to.
- 8-bit codes: a sign plane ``q & 0x80808080`` and one select-``lop3`` per pair build both
  halves. ``f8e4m3fn`` to f16: the byte flag ``(q & 0x7F7F7F7F) + 0x01010101`` replaces each
  code's sign bit in the word, so that 0x7F/0xFF are placed as 0x7F80 (a NaN the multiply
  keeps). Otherwise NaN codes need a fix after the multiply: for ``fn`` codes to bf16 a byte
  flag ``(q & 0x7F7F7F7F) + 0x01010101`` spread by ``prmt``'s
  sign replication selects the NaN; for ``fnuz`` (0x80, whose pattern is −0) the multiply is an
  ``fma`` with +0, which turns −0 into +0, so the sign that changed marks the NaN (spread by
  the same ``prmt``) and a ``lop3`` ors the NaN pattern in.
- ``f8e5m2`` to f16: the code is the f16 high byte (``prmt`` only: NaN stays NaN, inf stays
  inf). To bf16: ``prmt``, ``cvt.f32.f16`` (exact, keeps inf and NaN) and one
  ``cvt.rn.bf16x2.f32``.
- ``f8e4m3fn`` to f16 on sm_89 and later: ``cvt.rn.f16x2.e4m3x2`` alone.
- ``f8e5m2fnuz`` to f16: the code as an f16 high byte times 1/2. Codes of exponent 31 (finite
  here) and the NaN 0x80 are flagged in one byte-flag word: a flagged code's exponent msb is
  flipped before the multiply and or-ed back after it (exponent 31 → 15 → 14 → 30); the NaN's
  placed low byte is nonzero, so the or makes it a NaN.
- ``f8e8m0fnu``: to bf16 the code is the exponent field (``prmt``, shift); a ``max`` with
  2^-127 gives the code 0 its subnormal and a carry flags 0xFF. To f16 (41 binades): an f32
  ``E << 23`` with the low mantissa bits set from bit 7 (a NaN for 0xFF, harmless elsewhere)
  and one ``cvt.rn.f16x2.f32`` per pair (0xFF gives its NaN 0x7FFF).

A group (:func:`float_group_size`) is 4 codes for 8 bits, 8 for 4 bits, 16 for 6 bits and 32
(``n`` words) for 3, 5 and 7 bits. The free order of each sequence is a permutation of the
element index's bits and the same on sm_80, sm_89 and sm_90 (prepared weights are laid out for
it whatever the target); natural order costs one ``prmt`` per word or per pair more.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, BF16X2, E4M3X2, F16, F16X2, F32, U16, U32, ScalarType
from tilevm.ir.thread.values import Const, Operand

__all__ = ["float_group_size", "float_words_to_half", "float_words_to_half_free"]

_NAN = {"f16": 0x7E00, "bf16": 0x7FC0}  # the NaN the fix-ups write (any NaN would do)
_MANTISSA = {"f16": 10, "bf16": 7}
_EXPONENT_BIAS = {"f16": 15, "bf16": 127}

# lop3 truth tables over a = 0xF0, b = 0xCC, c = 0xAA
_SELECT_A_WHERE_C = 0xE4  # (a & c) | (b & ~c)
_SELECT_C_WHERE_B = 0xB8  # (a & ~b) | (c & b)
_A_OR_B_AND_C = 0xF8  # a | (b & c)
_A_XOR_B_AND_C = 0x78  # a ^ (b & c)

_SIGNS = 0x80008000  # bit 15 of both halves


def float_group_size(src: DType) -> int:
    """Elements of ``src`` one call of :func:`float_words_to_half` converts: the fewest that fill
    whole 32-bit words (4 for 8-bit codes, 8 for 4 bits, 16 for 6 bits, 32 for 3, 5 and 7)."""
    _check(src, None)
    n = src.nbits
    words = n // math.gcd(n, 32)
    return 32 * words // n


def float_words_to_half(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                        target: int) -> list[Operand]:
    """Convert one group of packed ``src`` floats to ``dst`` (f16 or bf16) pairs, in order.

    ``words``: the b32 registers holding :func:`float_group_size` codes dense and LSB-first
    (code ``k`` at bits ``[k·n, (k+1)·n)`` of the concatenated words). Returns 32-bit registers
    of ``dst`` pairs: word ``j`` holds element ``2j`` in its low half and ``2j + 1`` in its high
    half. Each half is the code's exact value rounded once to nearest even ``dst`` (±inf beyond
    f16's range), bit for bit as the interpreter's cast; every NaN code gives some NaN of
    ``dst`` (any payload and sign). ``target`` is the SM version (80, 89, 90): it picks
    ``fma`` or ``mul`` for bf16 and the hardware fp8 conversion where it exists.
    """
    outs, perm = _convert(kb, words, src, dst, target, natural=True)
    assert perm == tuple(range(len(perm)))
    return outs


def float_words_to_half_free(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                             target: int) -> tuple[list[Operand], tuple[int, ...]]:
    """As :func:`float_words_to_half`, with the elements in the order the cheapest sequence
    makes them: returns the pairs and the permutation (output slot ``s``, half ``s % 2`` of word
    ``s // 2``, holds group element ``perm[s]``)."""
    return _convert(kb, words, src, dst, target, natural=False)


# -- dispatch ----------------------------------------------------------------------------------


def _check(src: DType, dst: DType | None) -> None:
    if not (src.is_float and src.nbits <= 8):
        raise ValueError(f"float_words: {src} is not a float of at most 8 bits")
    if dst is not None and dst.name not in ("f16", "bf16"):
        raise ValueError(f"float_words: converts to f16 or bf16, not {dst}")


def _convert(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType, target: int,
             natural: bool) -> tuple[list[Operand], tuple[int, ...]]:
    _check(src, dst)
    group = float_group_size(src)
    if len(words) != src.nbits * group // 32:
        raise ValueError(f"float_words: a group of {src} is {src.nbits * group // 32} words, "
                         f"got {len(words)}")
    seq = _Seq(kb, dst.name, target)
    geo = _Geometry.of(src, dst.name)
    name, half = src.name, dst.name
    if name == "f8e8m0fnu":
        return _e8m0(seq, words[0])
    if name == "f8e5m2":
        return _e5m2_f16(seq, words[0]) if half == "f16" else _e5m2_bf16(seq, words[0])
    if name == "f8e4m3fn" and half == "f16" and target >= 89:
        return _fp8_hardware(seq, words[0], natural)
    if name == "f8e5m2fnuz" and half == "f16":
        return _e5m2fnuz_f16(seq, words[0], natural)
    if src.nbits == 8:
        return _bytes(seq, words[0], geo, src.specials, natural)
    if name == "f4e2m1fn" and half == "f16":
        return _nibble_high_bytes(seq, words[0], natural)
    outs, perm = _fields(seq, words, geo)
    return (_natural_order(seq, outs, perm), tuple(range(group))) if natural else (outs, perm)


# -- geometry and the emitter ------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    """Where a code's fields go in a half: magnitude (``w = e + m`` bits) at ``[p, p + w)``,
    sign at 15; the multiply by ``2^scale`` re-biases."""

    n: int  # code bits (sign included)
    w: int  # exponent and mantissa bits
    p: int  # position of the magnitude's lowest bit in the half
    scale: int  # the re-bias exponent

    @staticmethod
    def of(src: DType, half: str) -> _Geometry:
        e, m = src.exponent_bits, src.mantissa_bits
        return _Geometry(src.nbits, e + m, _MANTISSA[half] - m, _EXPONENT_BIAS[half] - src.bias)

    @property
    def magnitude_mask(self) -> int:
        field = ((1 << self.w) - 1) << self.p
        return field | field << 16


class _Seq:
    """Emits the instructions of one conversion; shifted copies of a register are made once."""

    def __init__(self, kb: KernelBuilder, half: str, target: int) -> None:
        self.kb = kb
        self.half = half
        self.target = target
        self._shifted: dict[tuple[Operand, int], Operand] = {}

    @property
    def pair_type(self) -> ScalarType:
        return F16X2 if self.half == "f16" else BF16X2

    def const(self, bits: int) -> Const:
        return Const(bits & 0xFFFFFFFF, B32)

    def bits(self, x: Operand) -> Operand:
        """``x`` as a b32 register (a pair register is moved: integer instructions refuse it)."""
        t = x.type
        if isinstance(t, ScalarType) and t.kind in ("packed", "float"):
            return self.kb.mov(x, B32)
        return x

    def pair(self, value: float) -> Const:
        return Const.of(value, self.pair_type)

    def shift(self, x: Operand, amount: int) -> Operand:
        """``x << amount`` (``x >> -amount`` when negative), logical; made once per amount."""
        if amount == 0:
            return x
        key = (x, amount)  # registers hash by identity
        if key not in self._shifted:
            kb = self.kb
            if amount > 0:
                self._shifted[key] = kb.shl(x, amount, type=B32)
            else:
                self._shifted[key] = kb.shr(x, -amount, type=B32)
        return self._shifted[key]

    def lop3(self, a: Operand, b: Operand | int, c: Operand | int, lut: int) -> Operand:
        b = self.const(b) if isinstance(b, int) else b
        c = self.const(c) if isinstance(c, int) else c
        return self.kb.lop3(a, b, c, lut)

    def and_(self, a: Operand, mask: int) -> Operand:
        return self.kb.and_(a, self.const(mask), type=B32)

    def prmt(self, a: Operand, b: Operand | int, selector: int) -> Operand:
        b = self.const(b) if isinstance(b, int) else b
        return self.kb.prmt(a, b, self.const(selector))

    def add_const(self, a: Operand, minus: Operand, constant: int) -> Operand:
        """``a − minus + constant`` (one ``IADD3`` after ptxas)."""
        kb = self.kb
        return kb.add(kb.sub(a, minus, type=U32), self.const(constant), type=U32)

    def rebias(self, t: Operand, scale: int, plus_zero: bool = False) -> Operand:
        """Both halves of ``t`` times ``2^scale``, exactly; ``plus_zero`` adds +0 (an ``fma``
        that turns −0 into +0), else −0 (no change) or a plain ``mul``."""
        kb, pt = self.kb, self.pair_type
        if scale == 0 and not plus_zero:
            return t
        factor = self.pair(2.0 ** scale)
        if plus_zero:
            return kb.fma(t, factor, Const(0, pt), type=pt)
        if self.half == "f16" or self.target >= 90:
            return kb.mul(t, factor, type=pt)
        return kb.fma(t, factor, Const(0x80008000, pt), type=pt)  # bf16 mul needs sm_90

    def nan_where_sign_changed(self, before: Operand, after: Operand) -> Operand:
        """``after`` (+0 where ``before`` was −0: an ``fma`` with +0) with the NaN pattern in the
        halves whose sign bit differs from ``before``'s: ``prmt`` replicates the sign bit of
        ``before ^ after`` over each half, a ``lop3`` ors the NaN in there."""
        changed = self.kb.xor(before, self.bits(after), type=B32)
        halves = self.prmt(changed, changed, _prmt_selector(9, 9, 11, 11))
        return self.lop3(after, halves, _NAN[self.half] * 0x10001, _A_OR_B_AND_C)


def _prmt_selector(*sources: int) -> int:
    """The ``prmt`` selector putting source byte ``sources[i]`` (0–7; +8 replicates its sign)
    into byte ``i``."""
    return sum(s << (4 * i) for i, s in enumerate(sources))


_ZERO_BYTE = 4  # prmt(a, 0, ...): bytes 4–7 are the zero operand's


def _natural_order(seq: _Seq, outs: list[Operand], perm: tuple[int, ...]) -> list[Operand]:
    """Pairs in natural order from pairs in order ``perm``: one ``prmt`` of two words per
    output word whose halves are not already in place."""
    where = {element: divmod(slot, 2) for slot, element in enumerate(perm)}
    result = []
    for j in range(len(outs)):
        (wa, ha), (wb, hb) = where[2 * j], where[2 * j + 1]
        if wa == wb and (ha, hb) == (0, 1):
            result.append(outs[wa])
            continue
        b_base = 0 if wa == wb else 4
        selector = _prmt_selector(2 * ha, 2 * ha + 1, b_base + 2 * hb, b_base + 2 * hb + 1)
        result.append(seq.prmt(outs[wa], outs[wb], selector))
    return result


# -- 3- to 7-bit codes -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """Four bytes of the group's byte stream starting at byte ``start`` (a word when
    ``start % 4 == 0``, else a funnel shift of two words)."""

    start: int

    def has(self, byte: int) -> bool:
        return self.start <= byte < self.start + 4


@dataclass(frozen=True)
class _Gather:
    """A ``prmt`` of windows ``a`` and ``b`` putting elements ``lo``/``hi`` at bit ``x`` of the
    low/high half."""

    lo: int
    hi: int
    a: _Window
    b: _Window
    selector: int
    x: int


def _fields(seq: _Seq, words: Sequence[Operand], geo: _Geometry
            ) -> tuple[list[Operand], tuple[int, ...]]:
    """Codes of 3 to 7 bits (no specials but ``f7e5m1`` to f16's overflow), free order."""
    n = geo.n
    if 16 % n == 0:  # codes 16 bits apart: the word itself holds both halves' fields
        per_word = 32 // n
        step = per_word // 2
        units = [(words[k // per_word], (k % per_word) * n, k, k + step)
                 for k in range(len(words) * per_word) if k % per_word < step]
    else:
        units = []
        windows: dict[int, Operand] = {}
        for g in _plan_gathers(n, len(words), geo):
            u = seq.prmt(_window(seq, words, g.a, windows), _window(seq, words, g.b, windows),
                         g.selector)
            units.append((u, g.x, g.lo, g.hi))
    outs, perm = [], []
    for u, x, lo, hi in units:
        outs.append(_place_and_rebias(seq, u, x, geo))
        perm += [lo, hi]
    return outs, tuple(perm)


def _place_and_rebias(seq: _Seq, u: Operand, x: int, geo: _Geometry) -> Operand:
    """``u`` holds two codes at bits ``x`` and ``x + 16``: mask the magnitudes into place,
    re-bias, or the signs in."""
    aligned = seq.shift(u, geo.p - x)
    magnitude = seq.and_(aligned, geo.magnitude_mask)
    if seq.half == "f16" and geo.scale == 0:  # f7e5m1: exponent 31 is beyond f16, not NaN
        r = seq.kb.min(magnitude, Const(0x7C007C00, F16X2), type=F16X2)
    else:
        r = seq.rebias(magnitude, geo.scale)
    signs = seq.shift(u, 15 - (x + geo.n - 1))
    return seq.lop3(r, signs, _SIGNS, _A_OR_B_AND_C)


def _window(seq: _Seq, words: Sequence[Operand], w: _Window, made: dict[int, Operand]
            ) -> Operand:
    word, byte = divmod(w.start, 4)
    if byte == 0:
        return words[word]
    if w.start not in made:
        if word + 1 < len(words):
            made[w.start] = seq.kb.shf(words[word], words[word + 1], 8 * byte, dir="r",
                                       mode="clamp")
        else:
            made[w.start] = seq.shift(words[word], -8 * byte)
    return made[w.start]


def _plan_gathers(n: int, nwords: int, geo: _Geometry) -> list[_Gather]:
    """Pair code ``k`` with ``k + stride`` (their offsets agree modulo 8), ``k`` in increasing
    order over the codes whose ``stride`` bit is clear, so that the order is a permutation of the
    index bits (prepared weights can be laid out for it); of the strides that keep offsets equal
    modulo 8, the one needing the fewest funnel-shifted windows (an instruction each)."""
    count = 32 * nwords // n
    stride = 1
    while stride * n % 8:
        stride *= 2
    best = None
    for s in (stride, 2 * stride):
        if s >= count:
            continue
        made: set[int] = set()
        gathers = []
        for lo in range(count):
            if lo & s:
                continue
            g, extra = _cheapest_gather(n, nwords, geo, lo, lo + s, made)
            made |= extra
            gathers.append(g)
        if best is None or len(made) < best[0]:
            best = (len(made), gathers)
    assert best is not None
    return best[1]


def _code_bytes(n: int, k: int) -> list[int]:
    first, last = k * n // 8, (k * n + n - 1) // 8
    return list(range(first, last + 1))


def _cheapest_gather(n: int, nwords: int, geo: _Geometry, lo: int, hi: int, made: set[int]
                     ) -> tuple[_Gather, set[int]]:
    """The gather of ``lo`` and ``hi`` needing the fewest new funnel windows (words first)."""
    needed = set(_code_bytes(n, lo)) | set(_code_bytes(n, hi))
    candidates = [_Window(s) for s in range(4 * nwords)]

    def cost(w: _Window) -> int:
        return 0 if w.start % 4 == 0 or w.start in made else 1

    best = None
    for a, b in itertools.combinations_with_replacement(candidates, 2):
        if not all(a.has(byte) or b.has(byte) for byte in needed):
            continue
        key = (cost(a) + (cost(b) if b != a else 0), a.start % 4 != 0, b.start % 4 != 0)
        if best is None or key < best[0]:
            best = (key, a, b)
    assert best is not None, (lo, hi)
    _, a, b = best

    def index(byte: int) -> int:
        return byte - a.start if a.has(byte) else 4 + byte - b.start

    r = lo * n % 8
    bytes_lo, bytes_hi = _code_bytes(n, lo), _code_bytes(n, hi)
    if len(bytes_lo) == 2:
        x = r
        lane_lo, lane_hi = [index(v) for v in bytes_lo], [index(v) for v in bytes_hi]
    else:  # one byte each: in the low or the high byte of the half, whichever saves a shift
        def saving(t: int) -> int:
            return (r + 8 * t == geo.p) + (r + 8 * t + n - 1 == 15)
        t = max((0, 1), key=saving)
        x = r + 8 * t
        lane_lo = [index(bytes_lo[0])] * 2
        lane_hi = [index(bytes_hi[0])] * 2
    selector = _prmt_selector(*lane_lo, *lane_hi)
    extra = {w.start for w in (a, b) if cost(w)}
    return _Gather(lo, hi, a, b, selector, x), extra


def _nibble_high_bytes(seq: _Seq, q: Operand, natural: bool
                       ) -> tuple[list[Operand], tuple[int, ...]]:
    """f4e2m1 to f16: the f16 high byte of a code is ``s000 eem0`` (magnitude at bits 9–11 of
    the half). One select-``lop3`` per word builds the high bytes of the four even (odd) codes:
    the other codes' signs fall inside the magnitude mask, where the select takes the shifted
    word. ``prmt`` then puts two high bytes over zero low bytes; one ``mul`` by 2^14."""
    signs = seq.and_(q, 0x88888888)
    mask = 0x0E0E0E0E
    even = seq.lop3(seq.shift(q, 1), seq.shift(signs, 4), mask, _SELECT_A_WHERE_C)  # 0 2 4 6
    odd = seq.lop3(seq.shift(q, -3), signs, mask, _SELECT_A_WHERE_C)  # 1 3 5 7
    if natural:  # bytes of codes 0 1 2 3 and 4 5 6 7
        even, odd = (seq.prmt(even, odd, _prmt_selector(0, 4, 1, 5)),
                     seq.prmt(even, odd, _prmt_selector(2, 6, 3, 7)))
        order = (0, 1, 2, 3, 4, 5, 6, 7)
    else:
        order = (0, 2, 4, 6, 1, 3, 5, 7)
    outs = []
    for word in (even, odd):
        for first in (0, 2):
            lanes = seq.prmt(word, 0, _prmt_selector(_ZERO_BYTE, first, _ZERO_BYTE, first + 1))
            outs.append(seq.rebias(lanes, 14))
    return outs, order


# -- 8-bit codes -------------------------------------------------------------------------------


def _bytes(seq: _Seq, q: Operand, geo: _Geometry, specials: str, natural: bool
           ) -> tuple[list[Operand], tuple[int, ...]]:
    """e4m3fn, e4m3fnuz (f16, bf16) and e5m2fnuz (bf16): the sign plane ``S = q & 0x80808080``
    and one select-``lop3`` per pair: codes 1 and 3 need the magnitude shifted by ``p − 8``
    and their signs are in place; codes 0 and 2 take ``q << p`` and ``S << 8``. The other
    codes' signs fall inside the magnitude mask (``p ≤ 7``)."""
    assert 1 <= geo.p <= 7 and geo.w == 7
    if natural:  # bytes 0 2 1 3: the pairs below become (0, 1) and (2, 3)
        q = seq.prmt(q, q, _prmt_selector(0, 2, 1, 3))
    signs = seq.and_(q, 0x80808080)
    mask = geo.magnitude_mask
    fnuz = specials == "fnuz"
    pairs = ((0, 2), (1, 3))
    fn_flag_in_exponent = specials == "fn" and seq.half == "f16" and geo.p == 7
    if fn_flag_in_exponent:
        # 0x7F/0xFF (low 7 bits + 1 carry into bit 7) get bit 7 set in place of the sign: one
        # bit above the placed magnitude it completes f16 exponent 31 (0x7F80, a NaN, which
        # the multiply keeps); other codes get 0 there
        flags = seq.add_const(q, signs, 0x01010101)
        q = seq.lop3(flags, q, 0x80808080, _SELECT_A_WHERE_C)
        mask |= mask << 1
    placed = [seq.lop3(seq.shift(q, geo.p), seq.shift(signs, 8), mask, _SELECT_A_WHERE_C),
              seq.lop3(seq.shift(q, geo.p - 8), signs, mask, _SELECT_A_WHERE_C)]
    outs = [seq.rebias(t, geo.scale, plus_zero=fnuz) for t in placed]
    if fnuz:  # 0x80 placed is −0; the fma made it +0
        outs = [seq.nan_where_sign_changed(t, r) for t, r in zip(placed, outs, strict=True)]
    elif specials == "fn" and not fn_flag_in_exponent:  # 0x7F, 0xFF: low 7 bits + 1 carry
        flags = seq.add_const(q, signs, 0x01010101)
        nan = seq.const(_NAN[seq.half] * 0x10001)
        outs = [seq.lop3(r, seq.prmt(flags, flags, _prmt_selector(8 + a, 8 + a, 8 + b, 8 + b)),
                         nan, _SELECT_C_WHERE_B) for r, (a, b) in zip(outs, pairs, strict=True)]
    order = (0, 1, 2, 3) if natural else (0, 2, 1, 3)
    return outs, order


def _e5m2_f16(seq: _Seq, q: Operand) -> tuple[list[Operand], tuple[int, ...]]:
    """e5m2 is the high byte of an f16 (inf stays inf, NaN stays a NaN): one ``prmt`` per pair
    puts two codes over zero low bytes."""
    outs = [seq.prmt(q, 0, _prmt_selector(_ZERO_BYTE, a, _ZERO_BYTE, a + 1)) for a in (0, 2)]
    return outs, (0, 1, 2, 3)


def _f16_halves(seq: _Seq, word: Operand) -> tuple[Operand, Operand]:
    """The low and high halves of ``word`` as f16 registers."""
    kb = seq.kb
    lo = kb.cvt(word, U16, src=U32)
    hi = kb.cvt(seq.shift(word, -16), U16, src=U32)
    return kb.mov(lo, F16), kb.mov(hi, F16)


def _e5m2_bf16(seq: _Seq, q: Operand) -> tuple[list[Operand], tuple[int, ...]]:
    """e5m2 to bf16: the f16 halves (``prmt``), ``cvt.f32.f16`` (exact: inf stays inf, where a
    placed-and-multiplied code of exponent 31 would be finite) and ``cvt.rn.bf16x2.f32`` (NaN
    codes give 0x7FFF)."""
    kb = seq.kb
    outs = []
    for a in (0, 2):
        lanes = seq.prmt(q, 0, _prmt_selector(_ZERO_BYTE, a, _ZERO_BYTE, a + 1))
        lo, hi = (kb.cvt(h, F32, src=F16) for h in _f16_halves(seq, lanes))
        outs.append(kb.cvt_pack(hi, lo, BF16X2))
    return outs, (0, 1, 2, 3)


def _fp8_hardware(seq: _Seq, q: Operand, natural: bool) -> tuple[list[Operand], tuple[int, ...]]:
    """e4m3fn to f16 on sm_89+: ``cvt.rn.f16x2.e4m3x2`` per half-word (exact; NaN codes give
    0x7FFF). The free order is sm_80's
    (0, 2, 1, 3), one ``prmt`` more, so that prepared weights suit every target."""
    kb = seq.kb
    if not natural:
        q = seq.prmt(q, q, _prmt_selector(0, 2, 1, 3))
    outs = []
    for half in (q, seq.shift(q, -16)):
        codes = kb.mov(kb.cvt(half, U16, src=U32), E4M3X2)
        outs.append(kb.cvt(codes, F16X2, src=E4M3X2, rnd="rn"))
    return outs, (0, 1, 2, 3) if natural else (0, 2, 1, 3)


def _e5m2fnuz_f16(seq: _Seq, q: Operand, natural: bool) -> tuple[list[Operand], tuple[int, ...]]:
    """e5m2fnuz to f16 (bias 16): the code as an f16 high byte, times 1/2. Codes of exponent 31
    (finite here, inf/NaN as f16 patterns) and the NaN 0x80 are flagged at bit 7 of
    ``W = mag + 4 + N`` (``mag = q & 0x7F…``, ``N = 0x80`` in the bytes of 0x80, from
    ``Z = 0x80 − mag``, whose bit 7 marks a zero magnitude): a flagged code gets bit 6 flipped
    (exponent 31 → 15, 0x80 → 0xC0), and after the multiply (exponent 14, resp. −1) bit 14 is
    or-ed back in: exponent 30, the code's value. The NaN code's placed low byte is ``N``'s byte
    (0x80), so its result is 0xFC80, a NaN."""
    if natural:
        q = seq.prmt(q, q, _prmt_selector(0, 2, 1, 3))
    kb = seq.kb
    signs = seq.and_(q, 0x80808080)
    zero_mag = seq.add_const(signs, q, 0x80808080)  # 0x80 - mag per byte: bit 7 iff mag == 0
    nan = seq.lop3(signs, zero_mag, 0x80808080, 0x80)  # a & b & c: 0x80 in the bytes of 0x80
    flags = kb.add(kb.sub(nan, zero_mag, type=U32), seq.const(0x84848484), type=U32)
    odd = seq.shift(flags, -1)  # flags of codes 1, 3 at bits 14, 30; of each code at its bit 6
    q = seq.lop3(q, odd, 0x40404040, _A_XOR_B_AND_C)
    even = seq.shift(flags, 7)  # flags of codes 0, 2 at bits 14, 30
    half = Const.of(0.5, F16X2)
    outs = []
    for (a, b), flag in (((0, 2), even), ((1, 3), odd)):
        placed = seq.prmt(q, nan, _prmt_selector(_ZERO_BYTE + a, a, _ZERO_BYTE + b, b))
        r = kb.mul(placed, half, type=F16X2)
        outs.append(seq.lop3(r, flag, 0x40004000, _A_OR_B_AND_C))
    order = (0, 1, 2, 3) if natural else (0, 2, 1, 3)
    return outs, order


def _e8m0(seq: _Seq, q: Operand) -> tuple[list[Operand], tuple[int, ...]]:
    """e8m0 (2^(code − 127), 0xFF NaN). bf16: ``code << 7`` per half, ``max`` with 2^-127 (the
    code 0), and 0xFF (inf so far) gets bit 6 from the carry of ``+ 0x80`` into bit 15. f16:
    per code an f32 ``(code << 23) | (code ≥ 128 ? 0x7F : 0)`` (``prmt`` with a replicated
    sign byte, then ``>> 1``): exact below 2^1 — the tie 2^-25 stays a tie — and above it the
    low bits do not change the f16 (≥ 2^16 overflows) but make 0xFF a NaN; ``cvt.rn.f16x2.f32``
    rounds once and gives 0x7FFF for it."""
    kb = seq.kb
    outs = []
    for a in (0, 2):
        if seq.half == "bf16":
            codes = seq.prmt(q, 0, _prmt_selector(a, _ZERO_BYTE, a + 1, _ZERO_BYTE))
            placed = kb.shl(codes, 7, type=B32)
            r = kb.max(placed, Const(0x00400040, BF16X2), type=BF16X2)
            carry = kb.add(seq.bits(r), seq.const(0x00800080), type=U32)
            outs.append(seq.lop3(r, kb.shr(carry, 9, type=B32), 0x00400040, _A_OR_B_AND_C))
        else:
            f32 = [kb.mov(kb.shr(seq.prmt(q, 0, _prmt_selector(8 + c, _ZERO_BYTE, _ZERO_BYTE, c)),
                                 1, type=B32), F32) for c in (a, a + 1)]
            outs.append(kb.cvt_pack(f32[1], f32[0], F16X2))
    return outs, (0, 1, 2, 3)
