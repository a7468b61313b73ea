"""Register types of Thread IR: PTX-like scalars, packed pairs and short vectors (≤ 128 bits).

Scalars are named as in PTX (``pred``, ``b32``, ``u32``, ``s32``, ``f16``, ``bf16``, ``f32``,
``f16x2``…). ``f16x2``/``bf16x2`` are one 32-bit register holding two halves, element 0 in the low
16 bits. ``tf32`` (32 bits) and ``e4m3x2``/``e5m2x2`` (16 bits) are bit patterns of the tensor-core
formats that only ``cvt`` and ``mma.sync`` interpret (kind ``bits``). A :class:`VectorType` is a
fixed group of 2 or 4 scalars that one instruction reads or writes together (``ld.v4.b32``, the
fragments of ``ldmatrix`` and ``mma.sync``); a backend may keep it as separate registers.
Sub-byte data lives in ``b32`` words (DESIGN §3): no register but a predicate is narrower than 8
bits.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ScalarType",
    "Type",
    "VectorType",
    "scalar_type",
    "vector",
]


@dataclass(frozen=True)
class ScalarType:
    """A PTX register type.

    Attributes:
        name: the PTX spelling without the dot (``"u32"``, ``"f16x2"``, ``"pred"``, ``"token"``).
        bits: width in bits (1 for ``pred``, 0 for ``token``).
        kind: ``"pred"``, ``"bits"``, ``"uint"``, ``"int"``, ``"float"``, ``"packed"`` (f16x2,
            bf16x2) or ``"token"`` (the group token of ``cp.async.commit_group``).
    """

    name: str
    bits: int
    kind: str

    @property
    def ptx(self) -> str:
        """The PTX type suffix, e.g. ``".u32"``."""
        return "." + self.name

    @property
    def count(self) -> int:
        return 1

    @property
    def elem(self) -> ScalarType:
        return self

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        """True for bit, unsigned and signed integer types."""
        return self.kind in ("bits", "uint", "int")

    @property
    def is_signed(self) -> bool:
        return self.kind == "int"

    @property
    def half_type(self) -> ScalarType:
        """The element type of a packed pair (``f16`` for ``f16x2``)."""
        if self.kind != "packed":
            raise ValueError(f"{self.name} is not a packed pair type")
        return _SCALARS[self.name[:-2]]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class VectorType:
    """``count`` (2 or 4) scalars of one type, at most 128 bits in all, e.g. ``b32x4``."""

    elem: ScalarType
    count: int

    def __post_init__(self) -> None:
        if self.count not in (2, 4):
            raise ValueError(f"vector count must be 2 or 4, got {self.count}")
        if self.elem.kind in ("pred", "token"):
            raise ValueError(f"no vectors of {self.elem.name}")
        if self.elem.bits * self.count > 128:
            raise ValueError(f"vector {self.elem.name}x{self.count} exceeds 128 bits")

    @property
    def name(self) -> str:
        return f"{self.elem.name}v{self.count}"

    @property
    def bits(self) -> int:
        return self.elem.bits * self.count

    @property
    def kind(self) -> str:
        return "vector"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


Type = ScalarType | VectorType

_SCALARS: dict[str, ScalarType] = {}


def _add(name: str, bits: int, kind: str) -> ScalarType:
    t = ScalarType(name, bits, kind)
    _SCALARS[name] = t
    return t


PRED = _add("pred", 1, "pred")
TOKEN = _add("token", 0, "token")
B8, B16, B32, B64 = (_add(f"b{n}", n, "bits") for n in (8, 16, 32, 64))
U8, U16, U32, U64 = (_add(f"u{n}", n, "uint") for n in (8, 16, 32, 64))
S8, S16, S32, S64 = (_add(f"s{n}", n, "int") for n in (8, 16, 32, 64))
F16 = _add("f16", 16, "float")
BF16 = _add("bf16", 16, "float")
F32 = _add("f32", 32, "float")
F64 = _add("f64", 64, "float")
F16X2 = _add("f16x2", 32, "packed")
BF16X2 = _add("bf16x2", 32, "packed")
# Opaque bit patterns that only conversions and mma.sync interpret (PTX declares their registers
# .b32 / .b16): tf32 (sign, 8 exponent and 10 mantissa bits in the high 19 bits of an f32
# pattern, the low 13 bits zero as cvt.rna.tf32.f32 writes them) and two fp8 codes, element 0 in
# the low byte, as cvt.rn.satfinite.e4m3x2.f32 writes them.
TF32 = _add("tf32", 32, "bits")
E4M3X2 = _add("e4m3x2", 16, "bits")
E5M2X2 = _add("e5m2x2", 16, "bits")

__all__ += [
    "B8", "B16", "B32", "B64", "BF16", "BF16X2", "E4M3X2", "E5M2X2", "F16", "F16X2", "F32",
    "F64", "PRED", "S8", "S16", "S32", "S64", "TF32", "TOKEN", "U8", "U16", "U32", "U64",
]


def scalar_type(name: str | ScalarType) -> ScalarType:
    """The scalar type named ``name`` (``"u32"``, ``"f16x2"``…); raises ``ValueError`` naming it."""
    if isinstance(name, ScalarType):
        return name
    try:
        return _SCALARS[name.lstrip(".")]
    except KeyError:
        raise ValueError(f"unknown Thread IR type {name!r}; known: {sorted(_SCALARS)}") from None


def vector(elem: str | ScalarType, count: int) -> VectorType:
    """The vector type of ``count`` elements of ``elem`` (``vector("b32", 4)`` is ``b32v4``)."""
    return VectorType(scalar_type(elem), count)
