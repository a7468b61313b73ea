"""Warp-wide LLVM values: every Thread IR value of a warp is an LLVM vector of 32 lanes.

:class:`Lanes` wraps an ``IRBuilder`` with the few helpers the code generator needs: the LLVM
type of each Thread IR type, splats, lane masks as ``i32`` bit sets, intrinsic declarations.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from tilevm.ir.thread.types import ScalarType

__all__ = ["I1", "I8", "I16", "I32", "I64", "PTR", "WARP", "Lanes", "elem_llvm_type"]

WARP = 32
I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()


def elem_llvm_type(t: ScalarType) -> ir.Type:
    """The LLVM lane type of a scalar: f16/bf16 are kept as i16 bit patterns, f16x2/bf16x2 as
    i32, tokens as i32."""
    if t.kind == "pred":
        return I1
    if t.kind == "token":
        return I32
    if t.name == "f32":
        return F32
    if t.name == "f64":
        return F64
    return ir.IntType(t.bits)


class Splat(ir.Constant):
    """A constant vector with one value in every lane, printed as LLVM's short ``splat (T v)``
    instead of 32 repetitions (the IR text, and its parsing, shrink several times)."""

    def __init__(self, typ: ir.VectorType, value: Any) -> None:
        super().__init__(typ, value)
        self.scalar = value

    def _get_reference(self) -> str:
        if not isinstance(self.scalar, int | float):
            return super()._get_reference()
        elem = ir.Constant(self.type.element, self.scalar)
        return f"splat ({elem.type} {elem.get_reference()})"


class Lanes:
    """An ``IRBuilder`` plus warp-vector helpers. ``b`` is the builder."""

    def __init__(self, module: ir.Module, builder: ir.IRBuilder) -> None:
        self.m = module
        self.b = builder

    # -- types and constants --------------------------------------------------------------------

    @staticmethod
    def vec(t: ir.Type) -> ir.VectorType:
        return ir.VectorType(t, WARP)

    def vtype(self, t: ScalarType) -> ir.VectorType:
        return self.vec(elem_llvm_type(t))

    def splat(self, value: Any, t: ir.Type) -> ir.Constant:
        """A constant vector with ``value`` in every lane (``t`` the lane type)."""
        return Splat(self.vec(t), value)

    def splat_value(self, x: ir.Value) -> ir.Value:
        """A run-time scalar broadcast to all lanes."""
        v = self.b.insert_element(ir.Constant(self.vec(x.type), ir.Undefined), x, I32(0))
        return self.b.shuffle_vector(v, ir.Constant(self.vec(x.type), ir.Undefined),
                                     Splat(self.vec(I32), 0))

    @staticmethod
    def lane_ids() -> ir.Constant:
        return ir.Constant(ir.VectorType(I32, WARP), list(range(WARP)))

    @staticmethod
    def shuffle_const(indices: list[int]) -> ir.Constant:
        return ir.Constant(ir.VectorType(I32, WARP), indices)

    def permute(self, v: ir.Value, indices: list[int]) -> ir.Value:
        """Lane ``i`` of the result is lane ``indices[i]`` of ``v`` (a constant shuffle)."""
        return self.b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                                     self.shuffle_const(indices))

    # -- masks ----------------------------------------------------------------------------------

    def bits(self, mask: ir.Value) -> ir.Value:
        """A ``<32 x i1>`` mask as an ``i32`` (bit i = lane i)."""
        return self.b.bitcast(mask, I32)

    def from_bits(self, bits: ir.Value) -> ir.Value:
        return self.b.bitcast(bits, ir.VectorType(I1, WARP))

    def any(self, mask: ir.Value) -> ir.Value:
        return self.b.icmp_unsigned("!=", self.bits(mask), I32(0))

    def all_ones(self) -> ir.Constant:
        return Splat(ir.VectorType(I1, WARP), 1)

    # -- intrinsics -----------------------------------------------------------------------------

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        """The declaration of the LLVM intrinsic ``name`` (full mangled name)."""
        fn = self.m.globals.get(name)
        if fn is None:
            fn = ir.Function(self.m, ir.FunctionType(ret, args), name=name)
        return fn

    @staticmethod
    def suffix(t: ir.Type) -> str:
        """The overload suffix of a vector type, e.g. ``v32i32``, ``v32f32``."""
        e = t.element if isinstance(t, ir.VectorType) else t
        if isinstance(e, ir.IntType):
            s = f"i{e.width}"
        elif isinstance(e, ir.FloatType):
            s = "f32"
        elif isinstance(e, ir.DoubleType):
            s = "f64"
        else:
            raise TypeError(f"no suffix for {t}")
        return f"v{t.count}{s}" if isinstance(t, ir.VectorType) else s

    def call(self, base: str, args: list[ir.Value], ret: ir.Type | None = None) -> ir.Value:
        """Call the overloaded intrinsic ``llvm.<base>`` on the type of the first argument."""
        t = args[0].type
        fn = self.intrinsic(f"llvm.{base}.{self.suffix(t)}", ret or t, [a.type for a in args])
        return self.b.call(fn, args)

    # -- arithmetic shorthands ------------------------------------------------------------------

    def cint(self, value: int, lane_type: ir.Type) -> ir.Constant:
        return self.splat(value, lane_type)

    def select(self, c: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(c, a, b)
