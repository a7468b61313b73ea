"""The Thread IR form of Tile IR values, and element access.

- :class:`TileValue`: a register tile. Each thread holds its ``layout.local_size`` elements in a
  register array, one element per register, or packed into ``b32`` words for types of 1 to 16
  bits (:mod:`~tilevm.backend.lower.dtype_map`; f16/bf16 tiles are f16x2/bf16x2 words).
- :class:`ScalarValue`: a block-uniform scalar: the same register in every thread.
- :class:`GlobalTensor`: a byte base address, a 64-bit element offset, sizes and element strides
  (a stride proven to be 1 by the specialization is the constant 1).
- :class:`SharedTensor`: a byte offset into the block's shared memory, a shared layout and the
  stage indices already applied to it (``s[stage]``).

Element ``i`` of a tile is addressed by an index expression of the enclosing ``unroll`` loops'
variables (:class:`~tilevm.ir.thread.values.Index`), so that a loop over a thread's elements stays
rolled in Thread IR (the CUDA printer unrolls it, the CPU backend runs it as a loop).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from tilevm.backend.lower import scalar_math as sm
from tilevm.backend.lower.dtype_map import (
    is_half_float,
    is_narrow_float,
    is_packed,
    scalar_register_type,
    storage_type,
)
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.digits import local_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B16, B32, BF16, F16, S32, U16, U32, U64
from tilevm.ir.thread.values import Const, Index, IndexOp, Operand, Reg, RegArray

__all__ = [
    "GlobalTensor",
    "ScalarValue",
    "SharedTensor",
    "TileValue",
    "extract_bits",
    "half_code",
    "index_reg",
    "insert_bits",
    "locals_loop",
    "read",
    "read_raw",
    "read_storage",
    "storage_length",
    "write",
    "write_raw",
]


@dataclass
class TileValue:
    """A register tile: ``dtype``, ``layout`` and the register array holding a thread's part."""

    dtype: DType
    layout: RegisterLayout
    array: RegArray

    @property
    def count(self) -> int:
        """The number of elements each thread holds."""
        return self.layout.local_size


@dataclass
class ScalarValue:
    """A block-uniform scalar in its storage form (a narrow float's code, an f16 register…)."""

    dtype: DType
    reg: Operand


@dataclass
class GlobalTensor:
    """A global tensor as the kernel sees it (DESIGN §7)."""

    dtype: DType
    base: Operand  # u64 byte address
    # Element offset (a sub-byte view may start mid-byte) and element strides: s64, or s32 when
    # the specialization proves every element's offset fits in i32 (offsets32).
    offset: Operand
    sizes: list[Operand]  # s32
    strides: list[Operand]
    name: str = ""
    aligned: bool = False  # base + offset is 16-byte aligned
    stride_divisor: list[int] = field(default_factory=list)  # proven divisor of each stride

    @property
    def rank(self) -> int:
        return len(self.sizes)


@dataclass
class SharedTensor:
    """A shared tensor: ``base`` (a byte offset into the shared window, an int or a u32
    register), its layout (of the whole buffer) and the leading (stage) indices applied."""

    dtype: DType
    base: Operand | int
    layout: SharedLayout
    prefix: list[Operand] = field(default_factory=list)
    name: str = ""
    prefix_bits: int = 1 << 30  # what the stage indices' part of every address is a multiple of

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the tile this value stands for (the buffer's, less the prefix)."""
        return self.layout.shape[len(self.prefix):]


def storage_length(dt: DType, count: int) -> int:
    """Registers for ``count`` elements of ``dt``: one each, or packed words (plus one spare word
    when an element may straddle two words, so that an access of element i may read word w+1)."""
    if not is_packed(dt):
        return count
    words = (count * dt.nbits + 31) // 32
    return words + (0 if 32 % dt.nbits == 0 else 1)


def new_tile(kb: KernelBuilder, dt: DType, layout: RegisterLayout, name: str) -> TileValue:
    """A fresh register array for a tile of ``dt`` in ``layout``; packed words start at zero."""
    length = storage_length(dt, layout.local_size)
    tile = TileValue(dt, layout, kb.array(storage_type(dt), length, name=name))
    if is_packed(dt):
        # Elements written one by one merge into their word: without a fresh word, the old one
        # (the last iteration's, in a loop) stays live (a loop-carried register for ptxas).
        with locals_loop(kb, length, "w") as w:
            kb.mov(Const(0, B32), B32, out=tile.array[w])
    return tile


# The range [0, n) of every unroll loop variable the lowering made, so that the digits of an index
# built from them fold (``(4·a + b) // 4 % 2`` is ``a`` when ``b < 4`` and ``a < 2``).
_RANGES: weakref.WeakKeyDictionary[Reg, int] = weakref.WeakKeyDictionary()


def local_radix(layout: RegisterLayout, vector: int = 1) -> tuple[int, ...]:
    """The sizes of ``layout``'s local digits, most significant first, with ``vector``
    (consecutive registers taken together) divided out of the least significant ones: a loop
    over the vector groups with one variable per digit. ``(count // vector,)`` when the vector
    does not fall on digit boundaries."""
    sizes = [g.size for g in local_digits(layout)]
    left = vector
    for k in reversed(range(len(sizes))):
        if left == 1:
            break
        if left % sizes[k] == 0:
            left, sizes[k] = left // sizes[k], 1
        elif sizes[k] % left == 0:
            sizes[k], left = sizes[k] // left, 1
        else:
            break
    if left != 1:
        return (layout.local_size // vector,)
    return tuple(n for n in sizes if n > 1) or (1,)


@contextmanager
def locals_loop(kb: KernelBuilder, count: int, name: str = "i",
                layout: RegisterLayout | None = None, vector: int = 1) -> Iterator[Index]:
    """``for i in range(count)`` over a thread's elements (or its groups of ``vector``): ``unroll``
    loops, rolled in Thread IR, or just the index 0 for a single element. Given the ``layout``,
    one loop per local digit (:func:`local_radix`), so that the digits of ``i`` fold to loop
    variables instead of divisions."""
    sizes = local_radix(layout, vector) if layout is not None else (count,)
    assert math.prod(sizes) == count, (sizes, count)
    with ExitStack() as loops:
        index: Index = 0
        for k, n in enumerate(sizes):
            if n == 1:
                continue
            v = loops.enter_context(kb.for_(0, n, unroll=True,
                                            name=name if len(sizes) == 1 else f"{name}{k}"))
            _RANGES[v] = n
            index = plus(scale(index, n), v)
        yield index


# -- index expressions -----------------------------------------------------------------------------


def index_reg(kb: KernelBuilder, index: Index) -> Operand:
    """An index expression as an ``s32`` register (a constant for an int)."""
    if isinstance(index, int):
        return Const.of(index, S32)
    if isinstance(index, Reg):
        return index
    a, b = index_reg(kb, index.a), index_reg(kb, index.b)
    op = index.op
    if op == "+":
        return kb.add(a, b, type=S32)
    if op == "-":
        return kb.sub(a, b, type=S32)
    if op == "*":
        return kb.mul(a, b, type=S32)
    # Index expressions are non-negative: truncating division is floor division, and by a power
    # of two a shift (a remainder a mask), which ptxas then needs no division sequence for.
    if isinstance(b, Const) and b.value > 0 and b.value & (b.value - 1) == 0:
        if op == "//":
            return kb.shr(a, b.value.bit_length() - 1, type=S32)
        return kb.mov(kb.and_(a, b.value - 1, type=B32), S32)
    if op == "//":
        return kb.div(a, b, type=S32)
    return kb.rem(a, b, type=S32)


def scale(index: Index, k: int) -> Index:
    """``index * k`` with the trivial cases folded."""
    if k == 1:
        return index
    if isinstance(index, int):
        return index * k
    return IndexOp("*", index, k)


def plus(a: Index, b: Index) -> Index:
    """``a + b`` with constants folded."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(b, int) and b == 0:
        return a
    if isinstance(a, int) and a == 0:
        return b
    return IndexOp("+", a, b)


def _linear(index: Index) -> tuple[dict[Reg, int], int] | None:
    """``index`` as ``sum(c·v) + c0`` over loop variables of known range, or None."""
    if isinstance(index, int):
        return {}, index
    if isinstance(index, Reg):
        return ({index: 1}, 0) if index in _RANGES else None
    if index.op == "+":
        a, b = _linear(index.a), _linear(index.b)
        if a is None or b is None:
            return None
        terms = dict(a[0])
        for v, c in b[0].items():
            terms[v] = terms.get(v, 0) + c
        return terms, a[1] + b[1]
    if index.op == "*" and isinstance(index.b, int):
        a = _linear(index.a)
        if a is None:
            return None
        return {v: c * index.b for v, c in a[0].items()}, a[1] * index.b
    return None


def _fold_digit(terms: dict[Reg, int], c0: int, stride: int, size: int | None) -> Index | None:
    """``(sum(c·v) + c0) // stride % size`` (no ``% size`` for None) as another such sum, when
    the terms fall on the digit's boundaries: the terms below ``stride`` cannot carry into it,
    and what is left does not wrap ``size``."""
    if c0 < 0 or any(c < 0 for c in terms.values()):
        return None
    high: dict[Reg, int] = {}
    low_extent = c0 % stride
    for v, c in terms.items():
        if c % stride == 0:
            high[v] = c // stride
        elif c < stride:
            low_extent += c * (_RANGES[v] - 1)
        else:
            return None
    if low_extent >= stride:
        return None
    if size is None:
        out: Index = c0 // stride
        for v, d in high.items():
            out = plus(out, scale(v, d))
        return out
    kept = {v: d for v, d in high.items() if d % size}
    q = (c0 // stride) % size
    if sum(d * (_RANGES[v] - 1) for v, d in kept.items()) + q >= size:
        return None
    out = q
    for v, d in kept.items():
        out = plus(out, scale(v, d))
    return out


def quotient(index: Index, k: int) -> Index:
    """``index // k``, folded where possible."""
    if isinstance(index, int):
        return index // k
    lin = _linear(index)
    folded = _fold_digit(lin[0], lin[1], k, None) if lin is not None else None
    return folded if folded is not None else IndexOp("//", index, k)


def low_bits(kb: KernelBuilder, index: Index, k: int) -> Operand | int:
    """``index % k`` for a power of two ``k``: an int, a register, or an ``and``."""
    if isinstance(index, int):
        return index % k
    folded = digit(index, 1, k)
    if not (isinstance(folded, IndexOp) and folded.op == "%"):
        return index_reg(kb, folded)
    return kb.and_(index_reg(kb, index), k - 1, type=B32)


def digit(index: Index, stride: int, size: int) -> Index:
    """``(index // stride) % size``, folded where possible."""
    if isinstance(index, int):
        return (index // stride) % size
    lin = _linear(index)
    if lin is not None:
        folded = _fold_digit(lin[0], lin[1], stride, size)
        if folded is not None:
            return folded
    q = index if stride == 1 else IndexOp("//", index, stride)
    return IndexOp("%", q, size)


# -- element access --------------------------------------------------------------------------------


def _word_and_offset(kb: KernelBuilder, i: Index, nbits: int) -> tuple[Index, Operand | int]:
    bit = scale(i, nbits)
    return quotient(bit, 32), low_bits(kb, bit, 32)


def extract_bits(kb: KernelBuilder, words: RegArray, i: Index, nbits: int) -> Operand:
    """The ``nbits``-bit code of element ``i`` of packed ``words`` (a u32, zero-extended)."""
    w, off = _word_and_offset(kb, i, nbits)
    if 32 % nbits == 0 or (isinstance(off, int) and off + nbits <= 32):
        return kb.bfe(words[w], off, nbits, type=U32)
    both = kb.shf(words[w], words[plus(w, 1)], off, dir="r", mode="clamp")
    return kb.and_(both, (1 << nbits) - 1, type=B32)


def insert_bits(kb: KernelBuilder, words: RegArray, i: Index, nbits: int, code: Operand) -> None:
    """Element ``i`` of packed ``words`` := the low ``nbits`` of ``code``."""
    w, off = _word_and_offset(kb, i, nbits)
    if 32 % nbits == 0 or (isinstance(off, int) and off + nbits <= 32):
        kb.bfi(code, words[w], off, nbits, out=words[w])
        return
    if isinstance(off, int):
        low = 32 - off
        kb.bfi(code, words[w], off, low, out=words[w])
        kb.bfi(kb.shr(code, low, type=U32), words[plus(w, 1)], 0, nbits - low,
               out=words[plus(w, 1)])
        return
    low = kb.min(kb.sub(32, off, type=U32), nbits, type=U32)
    kb.bfi(code, words[w], off, low, out=words[w])
    # A zero length leaves the next word as it is.
    kb.bfi(kb.shr(code, low, type=U32), words[plus(w, 1)], 0, kb.sub(nbits, low, type=U32),
           out=words[plus(w, 1)])


def read_raw(kb: KernelBuilder, tile: TileValue | ScalarValue, i: Index = 0) -> Operand:
    """The bit pattern of element ``i`` in the low bits of a u32 (u64 for 64-bit types), the
    other bits zero."""
    dt = tile.dtype
    if isinstance(tile, ScalarValue):
        reg = tile.reg
    elif is_packed(dt):
        return extract_bits(kb, tile.array, i, dt.nbits)
    else:
        reg = tile.array[i]
    t = storage_type(dt)
    if dt.nbits == 64:
        return kb.mov(reg, U64) if t != U64 else reg
    if dt.name in ("f16", "bf16"):
        return kb.cvt(kb.mov(reg, U16), U32, src=U16)
    if dt.name == "f32":
        return kb.mov(reg, U32)
    if dt.kind == "int" and dt.nbits < 32:
        return kb.and_(reg, (1 << dt.nbits) - 1, type=B32)
    return reg


def from_raw(kb: KernelBuilder, raw: Operand, dt: DType) -> Operand:
    """The storage form of a bit pattern (in the low bits of a u32/u64) of one element: for a
    packed type, the form a lone element (a scalar) takes (:func:`scalar_register_type`)."""
    t = scalar_register_type(dt) if is_packed(dt) else storage_type(dt)
    if dt.nbits == 64:
        return kb.mov(raw, t) if t != U64 else raw
    if dt.name in ("f16", "bf16"):
        return kb.mov(kb.cvt(raw, U16, src=U32), t)
    if dt.name == "f32":
        return kb.mov(raw, t)
    if dt.kind == "int":
        value = sm.normalize(kb, raw, dt)
    elif dt.kind == "uint" and dt.nbits < 32:
        value = kb.and_(raw, (1 << dt.nbits) - 1, type=B32)
    else:
        value = raw
    return value if value.type == t else kb.mov(value, t)


def write_raw(kb: KernelBuilder, tile: TileValue, i: Index, raw: Operand) -> None:
    """Element ``i`` := the bit pattern ``raw`` (low bits of a u32/u64)."""
    if is_packed(tile.dtype):
        insert_bits(kb, tile.array, i, tile.dtype.nbits, raw)
    else:
        write(kb, tile, i, from_raw(kb, raw, tile.dtype))


def half_code(kb: KernelBuilder, value: Operand) -> Operand:
    """A 16-bit register (an ``f16``/``bf16`` value) as its bit pattern in the low half of a
    ``u32``; any other operand as it is."""
    if value.type not in (F16, BF16, U16, B16):
        return value
    if isinstance(value, Const):
        return Const(value.bits, U32)
    raw = value if value.type == U16 else kb.mov(value, U16)
    return kb.cvt(raw, U32, src=U16)


def read(kb: KernelBuilder, tile: TileValue | ScalarValue, i: Index = 0) -> Operand:
    """Element ``i`` as a compute value (decoded for narrow floats, sign-extended for signed
    packed integers)."""
    dt = tile.dtype
    if isinstance(tile, ScalarValue):
        stored = tile.reg
    elif is_half_float(dt):
        return from_raw(kb, extract_bits(kb, tile.array, i, dt.nbits), dt)
    elif is_packed(dt):
        stored = extract_bits(kb, tile.array, i, dt.nbits)
        if dt.kind == "int":
            stored = kb.bfe(stored, 0, dt.nbits, type=S32)
    else:
        stored = tile.array[i]
    if is_narrow_float(dt):
        return sm.decode_narrow(kb, stored, dt)
    return stored


def read_storage(kb: KernelBuilder, tile: TileValue | ScalarValue, i: Index = 0) -> Operand:
    """Element ``i`` in storage form, not decoded (a code for packed and narrow float types, an
    ``f16``/``bf16`` register for a half): what a select or a copy moves."""
    if isinstance(tile, ScalarValue):
        return tile.reg
    if is_half_float(tile.dtype):
        return read(kb, tile, i)
    if is_packed(tile.dtype):
        return extract_bits(kb, tile.array, i, tile.dtype.nbits)
    return tile.array[i]


def write(kb: KernelBuilder, tile: TileValue, i: Index, value: Operand) -> None:
    """Element ``i`` := ``value``, in ``tile``'s storage form (a narrow float's code, a
    normalized integer, an ``f16``/``bf16`` register or its code)."""
    dt = tile.dtype
    if is_packed(dt):
        insert_bits(kb, tile.array, i, dt.nbits, half_code(kb, value))
        return
    t = storage_type(dt)
    kb.mov(value, t, out=tile.array[i])

