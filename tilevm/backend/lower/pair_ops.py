"""Elementwise operations on packed half tiles two elements at a time.

An f16/bf16 tile is f16x2/bf16x2 words (:mod:`~tilevm.backend.lower.dtype_map`): local elements
``2p`` (low half) and ``2p + 1`` (high half) share word ``p``. A fused elementwise run whose every
operation has a pair instruction that rounds each half exactly as the scalar operation rounds its
element runs over the words instead of the elements (:func:`pair_op`), so that neither halves are
taken apart nor words put back together:

- ``add``, ``sub``, ``mul``, ``fma``, ``min``, ``max`` of f16: ``add.rn.f16x2``… — the scalar
  lowering uses ``add.rn.f16``…, whose halves these are (PTX ISA "Half Precision Floating Point
  Instructions": each half computed as the scalar instruction computes it, NaN rules included);
- the same of bf16: the scalar lowering computes in f32 and rounds once into bf16, which is the
  correctly rounded result (f32 keeps more than twice bf16's bits plus two, so rounding twice
  cannot differ, subnormals and overflow included); ``fma.rn.bf16x2``, ``min``/``max.bf16x2``
  and, from sm_90, ``add``/``sub``/``mul.bf16x2`` round once too. Before sm_90 ``x + y`` is
  ``fma(x, 1, y)``, ``x − y`` is ``fma(y, −1, x)`` and ``x · y`` is ``fma(x, y, −0)``: exact
  products and one rounding, zero signs as the plain operation gives them (a NaN is the
  canonical one either way);
- ``neg``, ``abs`` of f16/bf16: the sign bits of the word, as the scalar lowering flips one;
- ``cast`` of f32 to f16/bf16: ``cvt.rn.f16x2.f32`` / ``cvt.rn.bf16x2.f32`` (each half rounded as
  ``cvt.rn.f16.f32`` rounds it); ``copy``.

An operand is read as a pair (:class:`PairReader`): the word itself for a tile in the result's
layout and shape; one element in both halves where both elements of a pair read the same operand
element (a broadcast along the layout's innermost local digit, a scalar); else its two halves put
together with one ``prmt``.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.digits import local_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, BF16X2, F16X2, U32, ScalarType
from tilevm.ir.thread.values import Const, Index, Operand

__all__ = [
    "PAIR_ARITHMETIC",
    "dup_half",
    "pair_layout",
    "pair_op",
    "pair_read",
    "pair_type",
    "pairable_op",
]

# f16 operations whose f16x2 instruction is the scalar lowering's, half by half.
PAIR_ARITHMETIC = frozenset(("add", "sub", "mul", "fma", "min", "max"))
_SIGN_OPS = frozenset(("neg", "abs"))


def pair_type(dt: DType) -> ScalarType:
    """``f16x2`` or ``bf16x2``."""
    return F16X2 if dt.name == "f16" else BF16X2


def pair_layout(layout: RegisterLayout) -> bool:
    """Whether a thread's elements in ``layout`` fall into whole pairs of one word each: an even
    count, and the innermost local digit of even size, so that elements ``2p`` and ``2p + 1``
    differ in that digit alone."""
    digits = local_digits(layout)
    if layout.local_size % 2 or not digits:
        return False
    inner = min(digits, key=lambda g: g.stride)
    return inner.stride == 1 and inner.size % 2 == 0


def pairable_op(op: str, dtypes: list[DType], result: DType) -> bool:
    """Whether ``op`` with operands of ``dtypes`` and a ``result`` dtype has a pair form (see
    the module docstring)."""
    if result.name not in ("f16", "bf16"):
        return False
    if op == "copy":
        return dtypes == [result]
    if op == "cast":
        return dtypes[0].name == "f32"
    if op in _SIGN_OPS:
        return dtypes == [result]
    return op in PAIR_ARITHMETIC and all(d == result for d in dtypes)


def pair_op(kb: KernelBuilder, op: str, args: list[Operand], dt: DType, target: int,
            lows: list[Operand] | None = None) -> Operand:
    """``op`` on pair words ``args`` (for ``cast``: the two f32 values, low element first, in
    ``lows``); a pair word of ``dt``, with the instructions of sm_``target``."""
    t = pair_type(dt)
    if op == "copy":
        return args[0]
    if op == "cast":
        assert lows is not None
        return kb.cvt_pack(lows[1], lows[0], t)  # the first operand goes to the high half
    if op == "neg":
        return kb.xor(args[0], 0x80008000, type=B32)
    if op == "abs":
        return kb.and_(args[0], 0x7FFF7FFF, type=B32)
    if op == "fma":
        return kb.fma(args[0], args[1], args[2], type=t)
    if dt.name == "bf16" and target < 90 and op in ("add", "sub", "mul"):
        one, minus_one, minus_zero = (Const.of(v, t) for v in (1.0, -1.0, -0.0))
        if op == "add":
            return kb.fma(args[0], one, args[1], type=t)
        if op == "sub":
            return kb.fma(args[1], minus_one, args[0], type=t)
        return kb.fma(args[0], args[1], minus_zero, type=t)
    emit = {"add": kb.add, "sub": kb.sub, "mul": kb.mul, "min": kb.min, "max": kb.max}[op]
    return emit(args[0], args[1], type=t)


def dup_half(kb: KernelBuilder, raw: Operand) -> Operand:
    """The 16-bit pattern in the low half of ``raw`` in both halves of a word."""
    if isinstance(raw, Const):
        return Const((raw.bits & 0xFFFF) * 0x10001, B32)
    return kb.prmt(raw, raw, 0x1010)


def pair_read(kb: KernelBuilder, tile: vals.TileValue, first: Index, second: Index | None,
              same: bool) -> Operand:
    """The pair of ``tile``'s local elements ``first`` (low half) and ``second``: its word when
    ``same`` (the tile is in the result's layout: ``first`` is even, ``second`` is ``first + 1``),
    one element twice when ``second`` is None, else two halves put together."""
    if same:
        return tile.array[vals.quotient(first, 2)]
    if second is None and isinstance(tile, vals.TileValue) and tile.dtype.nbits == 16:
        # One element twice, straight from its word: one byte permute (0x1010 repeats the low
        # half, 0x3232 the high one), not an extraction and then a permute.
        word = tile.array[vals.quotient(first, 2)]
        half = vals.low_bits(kb, first, 2)
        if isinstance(half, int):
            return kb.prmt(word, word, 0x3232 if half else 0x1010)
        return kb.prmt(word, word, kb.add(kb.mul(half, 0x2222, type=U32), 0x1010, type=U32))
    lo = vals.read_raw(kb, tile, first)
    if second is None:
        return dup_half(kb, lo)
    return kb.prmt(lo, vals.read_raw(kb, tile, second), 0x5410)
