"""Plans that move packed n-bit fields into the mantissas of f16/bf16 pairs (the magic exponent).

A group of ``g`` elements of ``n`` bits is a string of bits held in ``w`` words (element ``e`` at
bits ``[e·n, e·n + n)``, LSB-first). An output word holds two elements, one per 16-bit half. A
half is built from the element's bits ``u`` at mantissa position ``p`` under the exponent
``E = M − p`` (``M`` mantissa bits: 10 for f16, 7 for bf16), whose mantissa's place ``p`` weighs
1: the half's value is ``2^(M−p) + u`` (at ``p = 0`` the classic magic numbers 0x6400 = 1024 and
0x4300 = 128). One add per word then gives both elements exactly: ``(2^(M−p) + u) − (2^(M−p) +
offset) = u − offset``, an integer of at most 9 bits, so the one rounding is exact. Signed
fields have their sign bit flipped in the words first (one ``xor`` per word): ``u`` is then the
value plus ``2^(n−1)``, the offset.

Putting the exponent with the field keeps every constant an immediate: the add's per-half bias
is one immediate pair, and ``lop3`` takes the field mask with the exponents as its immediate and
the exponent region (one register for all outputs) as its third operand: ``b & (a | c)``.
Per-output constants in registers are what ptxas for sm_90 rematerializes at every use.

The bits get into place from *sources*: the words themselves, shifted windows of the bit string
(``shf``/``shr``/``shl``), byte gathers of two sources (``prmt``), or one source shifted. A plan
records every source as the map from its 32 bits to the bits of the string, so whether a field
sits at a usable position is read off the map, and the plan is correct by construction. An output
whose two elements no single source holds in place takes two ``lop3`` (one per half).

Two planners choose the sources greedily, counting instructions: :func:`natural_plan` fixes the
pairs (output ``j`` holds elements ``2j`` and ``2j + 1``); :func:`free_plan` pairs the elements as
the sources allow (the permutation is part of the plan).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FieldPlan", "Output", "Source", "exponent_region", "free_plan", "magic_exponents",
           "mantissa_bits", "natural_plan"]

_EXPONENT_BIAS = {"f16": 15, "bf16": 127}


def mantissa_bits(dst: str) -> int:
    """Mantissa width of the half type ``dst`` ("f16" or "bf16")."""
    return 10 if dst == "f16" else 7


@dataclass(frozen=True)
class Source:
    """A register of the plan: ``op`` on ``args`` and the string bit each of its bits holds.

    ``op`` is ``"word"`` (args: the word index), ``"window"`` (args: the bit offset ``s``: the
    string's bits ``[s, s + 32)``), ``"prmt"`` (args: two source indices and the selector) or
    ``"shr"``/``"shl"`` (args: a source index and the amount). ``bits[i]`` is the index in the
    string of the bit the register holds at bit ``i``, or None (zero or unknown)."""

    op: str
    args: tuple[int, ...]
    bits: tuple[int | None, ...]

    @functools.cached_property
    def where(self) -> dict[int, tuple[int, ...]]:
        """The register bits holding each string bit the source holds (a byte gather may hold
        one twice)."""
        out: dict[int, tuple[int, ...]] = {}
        for i, b in enumerate(self.bits):
            if b is not None:
                out[b] = (*out.get(b, ()), i)
        return out

    def holds(self, start: int, n: int) -> tuple[int, ...]:
        """The register bits at which the ``n`` string bits from ``start`` on begin, in order."""
        return tuple(at for at in self.where.get(start, ())
                     if at + n <= 32 and all(self.bits[at + k] == start + k for k in range(n)))


@dataclass(frozen=True)
class Output:
    """One output word: ``elements`` (low half, high half); ``steps`` the (source, mask) pairs
    whose masked bits, with the exponents of :func:`magic_exponents`, make the word;
    ``positions`` the mantissa position of each element."""

    elements: tuple[int, int]
    steps: tuple[tuple[int, int], ...]
    positions: tuple[int, int]


@dataclass(frozen=True)
class FieldPlan:
    """Sources and outputs for one (width, half type, order); signedness changes only the
    constants."""

    nbits: int
    dst: str
    words: int
    sources: tuple[Source, ...]
    outputs: tuple[Output, ...]

    @property
    def permutation(self) -> tuple[int, ...]:
        """Output slot ``s`` (half ``s % 2`` of word ``s // 2``) holds element ``perm[s]``."""
        return tuple(e for out in self.outputs for e in out.elements)

    @property
    def instruction_count(self) -> int:
        """Instructions per group: sources made, ``lop3`` steps and one ``fma`` per output."""
        made = sum(1 for s in self.sources if s.op != "word"
                   and not (s.op == "window" and s.args[0] % 32 == 0))
        return made + sum(len(o.steps) + 1 for o in self.outputs)


# -- bit maps ----------------------------------------------------------------------------------


def _window_bits(offset: int, length: int) -> tuple[int | None, ...]:
    return tuple(offset + i if 0 <= offset + i < length else None for i in range(32))


def _prmt_bits(a: Source, b: Source, selector: int) -> tuple[int | None, ...]:
    both = a.bits + b.bits
    out: list[int | None] = []
    for k in range(4):
        byte = (selector >> (4 * k)) & 7
        out.extend(both[8 * byte: 8 * byte + 8])
    return tuple(out)


def _shifted_bits(src: Source, amount: int) -> tuple[int | None, ...]:
    """``src >> amount`` (``<<`` for a negative amount); vacated bits are zeros (None)."""
    return tuple(src.bits[i + amount] if 0 <= i + amount < 32 else None for i in range(32))


def magic_exponents(dst: str, positions: tuple[int, int]) -> int:
    """The exponent fields that make the mantissa place ``p`` of each half weigh 1 (see the
    module docstring), for the halves' positions."""
    m = mantissa_bits(dst)
    word = 0
    for half, p in enumerate(positions):
        word |= (m - p + _EXPONENT_BIAS[dst]) << (m + 16 * half)
    return word


def exponent_region(dst: str) -> int:
    """The exponent fields of both halves."""
    m = mantissa_bits(dst)
    field = ((1 << (15 - m)) - 1) << m
    return field | field << 16


@dataclass
class _Planner:
    n: int
    dst: str

    def __post_init__(self) -> None:
        self.group = 32 // math.gcd(self.n, 32)
        self.words = self.n // math.gcd(self.n, 32)
        self.length = 32 * self.words
        self.room = mantissa_bits(self.dst) - self.n  # the highest mantissa position of a field
        self.sources: list[Source] = [Source("word", (w,), _window_bits(32 * w, self.length))
                                      for w in range(self.words)]
        self.index: dict[tuple[str, tuple[int, ...]], int] = {
            ("window", (32 * w,)): w for w in range(self.words)}

    # -- sources ---------------------------------------------------------------------------

    def window(self, offset: int) -> Source:
        if offset % 32 == 0 and 0 <= offset < self.length:
            return self.sources[offset // 32]
        return Source("window", (offset,), _window_bits(offset, self.length))

    def key(self, s: Source) -> tuple[str, tuple[int, ...]]:
        return ("window", (32 * s.args[0],)) if s.op == "word" else (s.op, s.args)

    def existing(self, s: Source) -> int | None:
        return self.index.get(self.key(s))

    def add(self, s: Source) -> int:
        found = self.existing(s)
        if found is not None:
            return found
        self.sources.append(s)
        self.index[self.key(s)] = len(self.sources) - 1
        return len(self.sources) - 1

    def cost(self, *new: Source) -> int:
        """Instructions to make the sources ``new`` that do not exist yet."""
        keys = {self.key(s) for s in new if self.existing(s) is None}
        return len(keys)

    def position(self, s: Source, element: int, half: int) -> int | None:
        for at in s.holds(element * self.n, self.n):
            if 0 <= at - 16 * half <= self.room:
                return at - 16 * half
        return None

    def low_windows(self, element: int) -> list[Source]:
        """Windows holding ``element`` at a usable position of their low half (existing first)."""
        return [self.window(element * self.n - p) for p in range(self.room + 1)]

    def high_windows(self, element: int) -> list[Source]:
        return [self.window(element * self.n - 16 - p) for p in range(self.room + 1)]

    # -- outputs ---------------------------------------------------------------------------

    def mask(self, half: int, p: int) -> int:
        return ((1 << self.n) - 1) << (p + 16 * half)

    def output(self, lo: int, hi: int, lo_src: int, hi_src: int) -> Output:
        """The output of elements ``lo`` and ``hi`` read from the sources at those indices (one
        ``lop3`` when they are the same source)."""
        plo = self.position(self.sources[lo_src], lo, 0)
        phi = self.position(self.sources[hi_src], hi, 1)
        assert plo is not None and phi is not None, (lo, hi)
        if lo_src == hi_src:
            steps = ((lo_src, self.mask(0, plo) | self.mask(1, phi)),)
        else:
            steps = ((lo_src, self.mask(0, plo)), (hi_src, self.mask(1, phi)))
        return Output((lo, hi), steps, (plo, phi))

    def serves(self, s: Source, lo: int, hi: int) -> bool:
        return self.position(s, lo, 0) is not None and self.position(s, hi, 1) is not None

    # -- candidate single sources for a fixed pair ----------------------------------------------

    def gathers(self, lo: int, hi: int) -> Iterable[Source]:
        """``prmt`` byte gathers whose low half holds ``lo`` and high half ``hi`` in place, from
        existing sources and new windows."""
        pool = list(self.sources)
        lows = [s for s in pool + self.low_windows(lo) if self._byte_start(s, lo) is not None]
        highs = [s for s in pool + self.high_windows(hi) + self.low_windows(hi)
                 if self._byte_start(s, hi) is not None]
        for a in lows:
            for b in highs:
                x = self._byte_start(a, lo)
                y = self._byte_start(b, hi)
                assert x is not None and y is not None
                same = self.key(a) == self.key(b)
                yb = y if same else y + 4
                selector = x | (x + 1) << 4 | yb << 8 | (yb + 1) << 12
                yield Source("prmt", (selector,), _prmt_bits(a, b, selector)), a, b

    def _byte_start(self, s: Source, element: int) -> int | None:
        """A byte ``x`` (0..2) of ``s`` such that bytes ``x, x+1`` hold ``element`` at a usable
        mantissa position."""
        for at in s.holds(element * self.n, self.n):
            for x in range(3):
                if 0 <= at - 8 * x <= self.room:
                    return x
        return None

    def shifts(self, lo: int) -> Iterable[tuple[Source, int]]:
        """Existing sources shifted so that ``lo`` lands at a usable position of the low half."""
        for k, s in enumerate(self.sources):
            for at in s.holds(lo * self.n, self.n)[:1]:
                for p in range(self.room + 1):
                    amount = at - p
                    if amount != 0 and -31 <= amount <= 31:
                        op = "shr" if amount > 0 else "shl"
                        yield Source(op, (k, abs(amount)), _shifted_bits(s, amount)), k


def _pending_served(planner: _Planner, s: Source, pending: list[tuple[int, int]]) -> int:
    return sum(1 for lo, hi in pending if planner.serves(s, lo, hi))


def _place_pair(planner: _Planner, lo: int, hi: int, pending: list[tuple[int, int]]
                ) -> tuple[list[Source], Source | None, tuple[Source, Source] | None]:
    """The cheapest way to make the output (lo, hi), counting what it does for the ``pending``
    outputs too: (sources to add, the single source holding both, or the two sources of a
    two-``lop3`` output)."""
    best: tuple[float, int, list[Source], Source | None, tuple[Source, Source] | None] | None = None
    order = 0

    def consider(score: float, new: list[Source], single: Source | None,
                 pair: tuple[Source, Source] | None) -> None:
        nonlocal best, order
        order += 1
        if best is None or score < best[0]:
            best = (score, order, new, single, pair)

    for s in planner.sources:
        if planner.serves(s, lo, hi):
            return [], s, None
    for gather, a, b in planner.gathers(lo, hi):
        if planner.serves(gather, lo, hi):
            cost = 1 + planner.cost(a, b)
            extra = _pending_served(planner, gather, pending)
            consider(cost - 0.999 * extra, [a, b, gather], gather, None)
    for shifted, _ in planner.shifts(lo):
        if planner.serves(shifted, lo, hi):
            consider(1 - 0.999 * _pending_served(planner, shifted, pending), [shifted], shifted,
                     None)
    lows = [s for s in planner.sources + planner.low_windows(lo)
            if planner.position(s, lo, 0) is not None]
    highs = [s for s in planner.sources + planner.high_windows(hi)
             if planner.position(s, hi, 1) is not None]
    for a in lows:
        for b in highs:
            if planner.key(a) == planner.key(b):
                continue
            consider(1 + planner.cost(a, b), [a, b], None, (a, b))
    assert best is not None, (planner.n, lo, hi)
    return best[2], best[3], best[4]


def _emit_pair(planner: _Planner, lo: int, hi: int, pending: list[tuple[int, int]]) -> Output:
    new, single, pair = _place_pair(planner, lo, hi, pending)
    for s in new:
        if s.op in ("prmt", "shr", "shl"):
            continue
        planner.add(s)
    if single is not None:
        if single.op == "prmt":
            a, b = new[0], new[1]
            single = Source("prmt", (planner.add(a), planner.add(b), single.args[-1]),
                            single.bits)
        elif single.op in ("shr", "shl"):
            single = Source(single.op, single.args, single.bits)
        k = planner.add(single)
        return planner.output(lo, hi, k, k)
    assert pair is not None
    return planner.output(lo, hi, planner.add(pair[0]), planner.add(pair[1]))


def _finish(planner: _Planner, outputs: list[Output]) -> FieldPlan:
    return FieldPlan(planner.n, planner.dst, planner.words,
                     tuple(planner.sources), tuple(outputs))


@functools.cache
def natural_plan(nbits: int, dst: str) -> FieldPlan:
    """A plan whose output ``j`` holds elements ``2j`` (low half) and ``2j + 1`` (high half), for
    ``nbits`` ≤ the mantissa width of ``dst``."""
    planner = _Planner(nbits, dst)
    pending = [(2 * j, 2 * j + 1) for j in range(planner.group // 2)]
    done: dict[tuple[int, int], Output] = {}
    while pending:
        lo, hi = pending.pop(0)
        out = _emit_pair(planner, lo, hi, pending)
        done[(lo, hi)] = out
        source = out.steps[0][0] if len(out.steps) == 1 else None
        if source is not None:  # the other outputs this source holds in place
            for other in list(pending):
                if planner.serves(planner.sources[source], *other):
                    pending.remove(other)
                    done[other] = planner.output(*other, source, source)
    outputs = [done[(2 * j, 2 * j + 1)] for j in range(planner.group // 2)]
    return _finish(planner, outputs)


@functools.cache
def free_plan(nbits: int, dst: str) -> FieldPlan:
    """A plan pairing the elements in whatever order the sources make cheapest (its
    :attr:`FieldPlan.permutation` says which)."""
    planner = _Planner(nbits, dst)
    left = set(range(planner.group))
    outputs: list[Output] = []
    while True:
        best = None
        candidates: list[tuple[Source, int]] = [(s, 0) for s in planner.sources]
        offsets = sorted({e * nbits - p - 16 * h for e in left for h in (0, 1)
                          for p in range(planner.room + 1)})
        candidates += [(planner.window(s), planner.cost(planner.window(s))) for s in offsets]
        for s, cost in candidates:
            lows = sorted(e for e in left if planner.position(s, e, 0) is not None)
            highs = sorted(e for e in left if planner.position(s, e, 1) is not None)
            count = min(len(lows), len(highs))
            if count == 0:
                continue
            score = (cost / count, -count, cost)
            if best is None or score < best[0]:
                best = (score, s, lows[:count], highs[:count])
        if best is None:
            break
        _, s, lows, highs = best
        k = planner.add(s)
        for lo, hi in zip(lows, highs, strict=True):
            outputs.append(planner.output(lo, hi, k, k))
            left -= {lo, hi}
    rest = sorted(left)
    pairs = list(zip(rest[0::2], rest[1::2], strict=True))
    while pairs:
        lo, hi = pairs.pop(0)
        outputs.append(_emit_pair(planner, lo, hi, pairs))
    return _finish(planner, outputs)
