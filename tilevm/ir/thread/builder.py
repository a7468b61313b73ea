"""Writing Thread IR by hand: :class:`KernelBuilder`.

Example (a guarded copy)::

    kb = KernelBuilder("copy", block_threads=128)
    src, dst = kb.param("src", U64, pointer=True), kb.param("dst", U64, pointer=True)
    tid = kb.sreg("tid.x")
    off = kb.mul(tid, 4, mode="wide")                  # u64 byte offset
    x = kb.ld("global", kb.add(src, off), B32)
    kb.st("global", kb.add(dst, off), x)
    kernel = kb.finish()

Every method checks its instruction at once (``ThreadIRError`` naming it). Python ints and floats
given as operands become constants of the instruction's type. Methods that produce a value return
a fresh register, or write ``out=`` (an existing register or array element) when given: that is
how a loop carries a value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tilevm.ir.thread.errors import ThreadIRError
from tilevm.ir.thread.intrinsics import INTRINSICS
from tilevm.ir.thread.intrinsics.memory import address_type
from tilevm.ir.thread.intrinsics.warp import mma_default_ctype, mma_register_types
from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Param, Stmt, While
from tilevm.ir.thread.types import (
    B32,
    PRED,
    S32,
    TOKEN,
    U32,
    ScalarType,
    Type,
    VectorType,
    scalar_type,
    vector,
)
from tilevm.ir.thread.values import Const, Dest, Elem, Operand, Reg, RegArray

__all__ = ["KernelBuilder", "WhileLoop"]

OperandLike = Operand | int | float | bool


class KernelBuilder:
    """Builds one :class:`Kernel`; call :meth:`finish` at the end.

    Two attributes are stamped into every statement created while they are set: ``loc`` (the
    user's source line, for diagnostics; the CUDA printer writes it as a comment) and ``origin``
    (the id of the Tile IR instruction being lowered; kept out of the text dump).
    """

    def __init__(self, name: str, block_threads: int, shared_bytes: int = 0,
                 local_bytes: int = 0) -> None:
        self.name = name
        self.block_threads = block_threads
        self.shared_bytes = shared_bytes
        self.local_bytes = local_bytes
        self.params: list[Param] = []
        self.arrays: list[RegArray] = []
        self._stack: list[list[Stmt]] = [[]]
        self._names: dict[str, int] = {}
        self._last_if: If | None = None
        self.loc: str | None = None
        self.origin: int | None = None

    # -- declarations ---------------------------------------------------------------------------

    def _fresh(self, hint: str) -> str:
        n = self._names.get(hint, 0)
        self._names[hint] = n + 1
        if hint == "r":
            return f"r{n}"
        return hint if n == 0 and not hint[-1].isdigit() else f"{hint}_{n}"

    def param(self, name: str, type: Type | str, pointer: bool = False) -> Reg:
        """A kernel parameter; ``pointer=True`` marks a global address (type ``u64``)."""
        t = scalar_type(type) if isinstance(type, str) else type
        if pointer and t != scalar_type("u64"):
            raise ThreadIRError(f"pointer parameter {name} must be u64, got {t}")
        r = Reg(self._fresh(name), t)
        self.params.append(Param(r, pointer))
        return r

    def reg(self, type: Type | str, name: str = "v") -> Reg:
        """A fresh register, to be assigned with ``out=`` (e.g. a loop-carried value)."""
        return Reg(self._fresh(name), scalar_type(type) if isinstance(type, str) else type)

    def array(self, type: Type | str, length: int, name: str = "a") -> RegArray:
        """A register array of ``length`` elements (index it with ints or unroll-loop variables)."""
        t = scalar_type(type) if isinstance(type, str) else type
        a = RegArray(self._fresh(name), t, length)
        self.arrays.append(a)
        return a

    @staticmethod
    def const(value: int | float | bool, type: ScalarType | str) -> Const:
        """The constant ``value`` of ``type`` (floats rounded to nearest even)."""
        return Const.of(value, scalar_type(type))

    # -- the generic emitter --------------------------------------------------------------------

    def _coerce(self, x: OperandLike, t: Type | None, what: str) -> Operand:
        if isinstance(x, Reg | Const | Elem):
            return x
        if isinstance(x, int | float | bool):
            if not isinstance(t, ScalarType):
                raise ThreadIRError(f"{what}: cannot infer the type of the literal {x!r}")
            return Const.of(x, t)
        raise ThreadIRError(f"{what}: not an operand: {x!r}")

    def emit(self, op: str, args: Sequence[OperandLike], /, *, type: ScalarType | None = None,
             dst_type: Type | None = None, out: Dest | None = None, arg_types:
             Sequence[Type | None] | None = None, guard: Reg | None = None,
             guard_negated: bool = False, **mods: Any) -> Reg | None:
        """Append intrinsic ``op``; returns its destination (``out`` or a fresh register of
        ``dst_type``, default ``type``) or ``None`` for intrinsics without a result.

        Literal operands become constants of ``arg_types[i]`` (default ``type``).
        """
        intr = INTRINSICS.get(op)
        if intr is None:
            raise ThreadIRError(f"unknown intrinsic {op!r}")
        types = list(arg_types) if arg_types is not None else [type] * len(args)
        ops = tuple(self._coerce(a, types[i], f"{op} operand {i}") for i, a in enumerate(args))
        dst: Dest | None = None
        if intr.has_result:
            t = dst_type if dst_type is not None else type
            if out is not None:
                dst = out
            elif t is None:
                raise ThreadIRError(f"{op}: cannot infer the destination type")
            else:
                dst = Reg(self._fresh("r"), t)
        elif out is not None:
            raise ThreadIRError(f"{op} has no result; out= is not allowed")
        instr = Instr(intr, dst, ops, type, {k: v for k, v in mods.items() if v is not None},
                      guard, guard_negated, self.loc, self.origin)
        intr.check(instr)
        if guard is not None and guard.type != PRED:
            raise ThreadIRError(f"{op}: guard must be a pred register, got {guard.type}")
        self._stack[-1].append(instr)
        self._last_if = None
        return dst  # type: ignore[return-value]

    @staticmethod
    def _type_of(*xs: OperandLike) -> ScalarType | None:
        for x in xs:
            if isinstance(x, Reg | Const | Elem) and isinstance(x.type, ScalarType):
                return x.type
        return None

    def _binary(self, op: str, a: OperandLike, b: OperandLike, type: ScalarType | str | None,
                out: Dest | None, **kw: Any) -> Reg:
        t = scalar_type(type) if type is not None else self._type_of(a, b)
        return self.emit(op, (a, b), type=t, out=out, **kw)  # type: ignore[return-value]

    # -- arithmetic -----------------------------------------------------------------------------

    def add(self, a: OperandLike, b: OperandLike, *, type: ScalarType | str | None = None,
            out: Dest | None = None, **kw: Any) -> Reg:
        """``add``: ``a + b`` (type from the first typed operand unless given)."""
        return self._binary("add", a, b, type, out, **kw)

    def sub(self, a: OperandLike, b: OperandLike, *, type: ScalarType | str | None = None,
            out: Dest | None = None, **kw: Any) -> Reg:
        """``sub``: ``a - b``."""
        return self._binary("sub", a, b, type, out, **kw)

    def mul(self, a: OperandLike, b: OperandLike, *, mode: str | None = "lo",
            type: ScalarType | str | None = None, out: Dest | None = None, **kw: Any) -> Reg:
        """``mul.lo/hi/wide`` for integers (``mode``), ``mul.rn`` for floats (mode ignored)."""
        t = scalar_type(type) if type is not None else self._type_of(a, b)
        if t is not None and t.kind in ("float", "packed"):
            mode = None
        dt = scalar_type(f"{t.name[0]}{2 * t.bits}") if t is not None and mode == "wide" else t
        return self.emit("mul", (a, b), type=t, dst_type=dt, out=out, mode=mode, **kw)  # type: ignore[return-value]

    def mad(self, a: OperandLike, b: OperandLike, c: OperandLike, *, mode: str = "lo",
            type: ScalarType | str | None = None, out: Dest | None = None, **kw: Any) -> Reg:
        """``mad.lo/hi/wide``: ``a·b + c`` on integers."""
        t = scalar_type(type) if type is not None else self._type_of(a, b)
        dt = scalar_type(f"{t.name[0]}{2 * t.bits}") if t is not None and mode == "wide" else t
        return self.emit("mad", (a, b, c), type=t, dst_type=dt, out=out, mode=mode,  # type: ignore[return-value]
                         arg_types=(t, t, dt), **kw)

    def fma(self, a: OperandLike, b: OperandLike, c: OperandLike, *,
            type: ScalarType | str | None = None, out: Dest | None = None, **kw: Any) -> Reg:
        """``fma.rn``: ``a·b + c`` rounded once."""
        t = scalar_type(type) if type is not None else self._type_of(a, b, c)
        return self.emit("fma", (a, b, c), type=t, out=out, **kw)  # type: ignore[return-value]

    def div(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``div``: the integer quotient (truncated), or ``div.rn.f32``/``div.rn.f64`` (IEEE
        division rounded to nearest even) for float operands."""
        return self._binary("div", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def rem(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``rem``: integer remainder."""
        return self._binary("rem", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def min(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``min``."""
        return self._binary("min", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def max(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``max``."""
        return self._binary("max", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def and_(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``and``."""
        return self._binary("and", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def or_(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``or``."""
        return self._binary("or", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def xor(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``xor``."""
        return self._binary("xor", a, b, kw.pop("type", None), kw.pop("out", None), **kw)

    def unary(self, op: str, a: OperandLike, *, type: ScalarType | str | None = None,
              out: Dest | None = None, **mods: Any) -> Reg:
        """A one-operand intrinsic of the operand's type: ``not``, ``neg``, ``abs``, ``sqrt``,
        and the ``.approx`` ones ``ex2``, ``rcp``, ``lg2``, ``sin``, ``cos``, ``rsqrt`` (each
        with ``ftz=True`` for the ``.ftz`` form) and ``tanh``."""
        t = scalar_type(type) if type is not None else self._type_of(a)
        return self.emit(op, (a,), type=t, out=out, **mods)  # type: ignore[return-value]

    def sqrt(self, a: OperandLike, *, type: ScalarType | str | None = None,
             out: Dest | None = None, **kw: Any) -> Reg:
        """``sqrt.rn.f32`` / ``sqrt.rn.f64``: the correctly rounded square root."""
        return self.unary("sqrt", a, type=type, out=out, **kw)

    def _approx(self, op: str, a: OperandLike, ftz: bool, out: Dest | None, kw: Any) -> Reg:
        return self.unary(op, a, type=kw.pop("type", "f32"), out=out, ftz=ftz or None, **kw)

    def ex2(self, a: OperandLike, *, ftz: bool = False, out: Dest | None = None,
            **kw: Any) -> Reg:
        """``ex2.approx{.ftz}.f32``: ``2**a`` (max 2 ulp on the GPU; exact on the CPU)."""
        return self._approx("ex2", a, ftz, out, kw)

    def rcp(self, a: OperandLike, *, ftz: bool = False, out: Dest | None = None,
            **kw: Any) -> Reg:
        """``rcp.approx{.ftz}.f32``: ``1/a`` (max 1 ulp on the GPU; exact on the CPU)."""
        return self._approx("rcp", a, ftz, out, kw)

    def lg2(self, a: OperandLike, *, ftz: bool = False, out: Dest | None = None,
            **kw: Any) -> Reg:
        """``lg2.approx{.ftz}.f32``: ``log2(a)`` (bounds in ``APPROX_ERROR_BOUNDS``)."""
        return self._approx("lg2", a, ftz, out, kw)

    def sin(self, a: OperandLike, *, ftz: bool = False, out: Dest | None = None,
            **kw: Any) -> Reg:
        """``sin.approx{.ftz}.f32``: ``sin(a)``, radians."""
        return self._approx("sin", a, ftz, out, kw)

    def cos(self, a: OperandLike, *, ftz: bool = False, out: Dest | None = None,
            **kw: Any) -> Reg:
        """``cos.approx{.ftz}.f32``: ``cos(a)``, radians."""
        return self._approx("cos", a, ftz, out, kw)

    def rsqrt(self, a: OperandLike, *, ftz: bool = False, out: Dest | None = None,
              **kw: Any) -> Reg:
        """``rsqrt.approx{.ftz}.f32``: ``1/sqrt(a)``."""
        return self._approx("rsqrt", a, ftz, out, kw)

    def tanh(self, a: OperandLike, *, out: Dest | None = None, **kw: Any) -> Reg:
        """``tanh.approx.f32``: ``tanh(a)`` (sm_75+; no ``.ftz`` form)."""
        return self._approx("tanh", a, False, out, kw)

    def shl(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``shl``: ``a << b`` (``b`` is u32)."""
        t = kw.pop("type", None)
        t = scalar_type(t) if t is not None else self._type_of(a)
        return self.emit("shl", (a, b), type=t, arg_types=(t, U32), **kw)  # type: ignore[return-value]

    def shr(self, a: OperandLike, b: OperandLike, **kw: Any) -> Reg:
        """``shr``: ``a >> b``, arithmetic for s types (``b`` is u32)."""
        t = kw.pop("type", None)
        t = scalar_type(t) if t is not None else self._type_of(a)
        return self.emit("shr", (a, b), type=t, arg_types=(t, U32), **kw)  # type: ignore[return-value]

    def shf(self, a: OperandLike, b: OperandLike, c: OperandLike, *, dir: str, mode: str,
            **kw: Any) -> Reg:
        """``shf.{l,r}.{clamp,wrap}.b32``: funnel shift of ``b:a`` by ``c``."""
        return self.emit("shf", (a, b, c), type=B32, arg_types=(B32, B32, U32), dir=dir,  # type: ignore[return-value]
                         mode=mode, **kw)

    def bfe(self, a: OperandLike, pos: OperandLike, length: OperandLike, *,
            type: ScalarType | str | None = None, **kw: Any) -> Reg:
        """``bfe``: extract ``length`` bits of ``a`` at ``pos``."""
        t = scalar_type(type) if type is not None else self._type_of(a)
        return self.emit("bfe", (a, pos, length), type=t, arg_types=(t, U32, U32), **kw)  # type: ignore[return-value]

    def bfi(self, a: OperandLike, b: OperandLike, pos: OperandLike, length: OperandLike, *,
            type: ScalarType | str = B32, **kw: Any) -> Reg:
        """``bfi``: ``b`` with ``length`` bits at ``pos`` replaced by ``a``'s low bits."""
        t = scalar_type(type)
        return self.emit("bfi", (a, b, pos, length), type=t, arg_types=(t, t, U32, U32), **kw)  # type: ignore[return-value]

    def popc(self, a: OperandLike, *, type: ScalarType | str = B32, **kw: Any) -> Reg:
        """``popc``: number of set bits, as u32."""
        return self.emit("popc", (a,), type=scalar_type(type), dst_type=U32, **kw)  # type: ignore[return-value]

    def lop3(self, a: OperandLike, b: OperandLike, c: OperandLike, lut: int, **kw: Any) -> Reg:
        """``lop3.b32`` with the 8-bit truth table ``lut``."""
        return self.emit("lop3", (a, b, c), type=B32, lut=lut, **kw)  # type: ignore[return-value]

    def prmt(self, a: OperandLike, b: OperandLike, c: OperandLike, *, mode: str | None = None,
             **kw: Any) -> Reg:
        """``prmt.b32{.mode}``: byte permute of ``{b, a}`` selected by ``c``."""
        return self.emit("prmt", (a, b, c), type=B32, mode=mode, **kw)  # type: ignore[return-value]

    def setp(self, cmp: str, a: OperandLike, b: OperandLike, *,
             type: ScalarType | str | None = None, **kw: Any) -> Reg:
        """``setp.cmp``: a predicate ``a cmp b``."""
        t = scalar_type(type) if type is not None else self._type_of(a, b)
        return self.emit("setp", (a, b), type=t, dst_type=PRED, cmp=cmp, **kw)  # type: ignore[return-value]

    def selp(self, a: OperandLike, b: OperandLike, c: Operand, *,
             type: ScalarType | str | None = None, **kw: Any) -> Reg:
        """``selp``: ``c ? a : b``."""
        t = scalar_type(type) if type is not None else self._type_of(a, b)
        return self.emit("selp", (a, b, c), type=t, arg_types=(t, t, PRED), **kw)  # type: ignore[return-value]

    def cvt(self, a: OperandLike, to: ScalarType | str, *, src: ScalarType | str | None = None,
            rnd: str | None = None, sat: str | None = None, **kw: Any) -> Reg:
        """``cvt{.rnd}{.sat}.to.src``; ``src`` defaults to ``a``'s type."""
        s = scalar_type(src) if src is not None else self._type_of(a)
        return self.emit("cvt", (a,), type=scalar_type(to), arg_types=(s,), src=s, rnd=rnd,  # type: ignore[return-value]
                         sat=sat, **kw)

    def cvt_pack(self, a: OperandLike, b: OperandLike, to: ScalarType | str, *,
                 sat: str | None = None, **kw: Any) -> Reg:
        """``cvt.rn.{f16x2,bf16x2}.f32 d, a, b``: ``a`` goes to the **upper** half."""
        f32 = scalar_type("f32")
        return self.emit("cvt", (a, b), type=scalar_type(to), arg_types=(f32, f32), src=f32,  # type: ignore[return-value]
                         rnd="rn", sat=sat, **kw)

    def cvt_tf32(self, a: OperandLike, *, satfinite: bool = False, **kw: Any) -> Reg:
        """``cvt.rna{.satfinite}.tf32.f32 d, a``: the f32 ``a`` rounded to nearest, ties away
        from zero, to a ``tf32`` register (an ``mma.sync`` m16n8k8 operand word)."""
        return self.cvt(a, "tf32", src="f32", rnd="rna", sat="satfinite" if satfinite else None,
                        **kw)

    def cvt_fp8x2(self, a: OperandLike, b: OperandLike, fmt: str, **kw: Any) -> Reg:
        """``cvt.rn.satfinite.{fmt}x2.f32 d, a, b`` (``fmt`` ``"e4m3"`` or ``"e5m2"``): two f32
        values to fp8 codes in a 16-bit register, ``a`` in the **upper** byte (sm_89)."""
        return self.cvt_pack(a, b, f"{fmt}x2", sat="satfinite", **kw)

    def cvt_f16x2_fp8x2(self, a: OperandLike, fmt: str, **kw: Any) -> Reg:
        """``cvt.rn.f16x2.{fmt}x2 d, a``: the two fp8 codes of the 16-bit ``a`` as f16 values,
        the upper byte in the upper half (sm_89)."""
        return self.cvt(a, "f16x2", src=f"{fmt}x2", rnd="rn", **kw)

    def mov(self, a: OperandLike, type: ScalarType | str | None = None, **kw: Any) -> Reg:
        """``mov``: copy ``a``, reinterpreting its bits as ``type`` when given."""
        t = scalar_type(type) if type is not None else self._type_of(a)
        return self.emit("mov", (a,), type=t, arg_types=(t,), **kw)  # type: ignore[return-value]

    def pack(self, elems: Sequence[OperandLike], elem_type: ScalarType | str | None = None,
             **kw: Any) -> Reg:
        """A vector register from 2 or 4 scalars."""
        t = scalar_type(elem_type) if elem_type is not None else self._type_of(*elems)
        assert t is not None
        return self.emit("pack", tuple(elems), dst_type=vector(t, len(elems)),  # type: ignore[return-value]
                         arg_types=[t] * len(elems), **kw)

    def extract(self, v: Operand, index: int, **kw: Any) -> Reg:
        """Element ``index`` of a vector register."""
        t = v.type
        if not isinstance(t, VectorType):
            raise ThreadIRError(f"extract: {v} is not a vector")
        return self.emit("extract", (v,), dst_type=t.elem, index=index, **kw)  # type: ignore[return-value]

    def unpack(self, v: Operand) -> list[Reg]:
        """Every element of a vector register, as scalars."""
        assert isinstance(v.type, VectorType)
        return [self.extract(v, i) for i in range(v.type.count)]

    # -- memory ---------------------------------------------------------------------------------

    def ld(self, space: str, addr: Operand, type: Type | str, *, nc: bool = False,
           cache: str | None = None, offset: int = 0, **kw: Any) -> Reg:
        """``ld.space`` of ``type`` (scalar or vector) at ``addr``."""
        t = scalar_type(type) if isinstance(type, str) else type
        return self.emit("ld", (addr,), type=t.elem, dst_type=t, nc=nc or None, cache=cache,  # type: ignore[return-value]
                         space=space, offset=offset or None, **kw)

    def st(self, space: str, addr: Operand, value: Operand, *, cache: str | None = None,
           offset: int = 0, **kw: Any) -> None:
        """``st.space`` of ``value`` at ``addr``."""
        self.emit("st", (addr, value), type=value.type.elem, space=space, cache=cache,
                  offset=offset or None, **kw)

    def cp_async(self, dst: Operand, src: Operand, size: int, *, cache: str = "ca",
                 src_size: OperandLike | None = None, **kw: Any) -> None:
        """``cp.async.{ca,cg}``: ``size`` bytes from global ``src`` to shared ``dst``; with
        ``src_size`` the bytes past it are zero-filled."""
        args: tuple[OperandLike, ...] = (dst, src) if src_size is None else (dst, src, src_size)
        self.emit("cp.async", args, arg_types=(U32, address_type("global"), U32), cache=cache,
                  size=size, **kw)

    def commit_group(self, **kw: Any) -> Reg:
        """``cp.async.commit_group``; returns the group's token."""
        return self.emit("cp.async.commit_group", (), dst_type=TOKEN, **kw)  # type: ignore[return-value]

    def wait_group(self, n: int, *tokens: Reg, **kw: Any) -> None:
        """``cp.async.wait_group n`` (the tokens record what the wait is meant to cover)."""
        self.emit("cp.async.wait_group", tokens, n=n, **kw)

    def atom(self, space: str, op: str, addr: Operand, *values: OperandLike,
             type: ScalarType | str, **kw: Any) -> Reg:
        """``atom.space.op.type``: returns the old value."""
        t = scalar_type(type)
        return self.emit("atom", (addr, *values), type=t,  # type: ignore[return-value]
                         arg_types=(address_type(space), t, t), space=space, op=op, **kw)

    def red(self, space: str, op: str, addr: Operand, value: OperandLike, *,
            type: ScalarType | str, **kw: Any) -> None:
        """``red.space.op.type``."""
        t = scalar_type(type)
        self.emit("red", (addr, value), type=t, arg_types=(address_type(space), t), space=space,
                  op=op, **kw)

    def fence(self, sem: str = "acq_rel", scope: str = "gpu", **kw: Any) -> None:
        """``fence.sem.scope``."""
        self.emit("fence", (), sem=sem, scope=scope, **kw)

    def membar(self, level: str = "gl", **kw: Any) -> None:
        """``membar.level``."""
        self.emit("membar", (), level=level, **kw)

    def shared_base(self, **kw: Any) -> Reg:
        """The shared address of the kernel's dynamic shared memory (u32)."""
        return self.emit("shared_base", (), dst_type=U32, **kw)  # type: ignore[return-value]

    def local_base(self, **kw: Any) -> Reg:
        """The local address of the thread's local buffer (u32)."""
        return self.emit("local_base", (), dst_type=U32, **kw)  # type: ignore[return-value]

    # -- stopping and reporting -----------------------------------------------------------------

    def trap(self, **kw: Any) -> None:
        """``trap``: abort the kernel (with ``guard=p``: where ``p`` holds)."""
        self.emit("trap", (), **kw)

    def vprintf(self, format: str, *args: Operand, **kw: Any) -> None:
        """``printf(format, args...)`` on every executing thread: ``args`` are 32- or 64-bit
        integer registers or ``f64`` (convert ``f32`` first), matching the conversions of
        ``format`` (``%d %u %x %lld %f %g``…; see :class:`~tilevm.ir.thread.intrinsics.debug.
        Vprintf`)."""
        self.emit("vprintf", tuple(args), format=format, **kw)

    # -- warp and block -------------------------------------------------------------------------

    def sreg(self, name: str, **kw: Any) -> Reg:
        """A special register (``tid.x``, ``ctaid.x``, ``laneid``…) as u32."""
        return self.emit("sreg", (), dst_type=U32, name=name, **kw)  # type: ignore[return-value]

    def bar_sync(self, **kw: Any) -> None:
        """``bar.sync 0``."""
        self.emit("bar.sync", (), **kw)

    def bar_warp_sync(self, mask: OperandLike = 0xFFFFFFFF, **kw: Any) -> None:
        """``bar.warp.sync mask``."""
        self.emit("bar.warp.sync", (mask,), arg_types=(U32,), **kw)

    def shfl(self, mode: str, a: OperandLike, b: OperandLike, c: OperandLike,
             mask: OperandLike = 0xFFFFFFFF, **kw: Any) -> Reg:
        """``shfl.sync.mode.b32 d, a, b, c, mask``."""
        return self.emit("shfl.sync", (a, b, c, mask), type=B32, arg_types=(B32, U32, U32, U32),  # type: ignore[return-value]
                         mode=mode, **kw)

    def vote(self, mode: str, a: Operand, mask: OperandLike = 0xFFFFFFFF, **kw: Any) -> Reg:
        """``vote.sync.mode``: pred for all/any/uni, b32 for ballot."""
        return self.emit("vote.sync", (a, mask), dst_type=B32 if mode == "ballot" else PRED,  # type: ignore[return-value]
                         arg_types=(PRED, U32), mode=mode, **kw)

    def activemask(self, **kw: Any) -> Reg:
        """``activemask.b32``."""
        return self.emit("activemask", (), dst_type=B32, **kw)  # type: ignore[return-value]

    def ldmatrix(self, addr: Operand, num: int, *, trans: bool = False, **kw: Any) -> Reg:
        """``ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16``."""
        t: Type = B32 if num == 1 else vector(B32, num)
        return self.emit("ldmatrix", (addr,), dst_type=t, num=num, trans=trans or None, **kw)  # type: ignore[return-value]

    def mma(self, shape: str, atype: str, a: Operand, b: Operand, c: Operand, *,
            btype: str | None = None, ctype: str | None = None, out: Dest | None = None,
            **kw: Any) -> Reg:
        """``mma.sync.aligned.{shape}.row.col.{ctype}.{atype}.{btype}.{ctype} d, a, b, c``
        (:class:`~tilevm.ir.thread.intrinsics.warp.Mma`, whose :data:`MMA_FORMS` lists the
        forms): ``a`` is ``b32v4``, ``b`` ``b32v2``, ``c`` the accumulator (``f32v4``,
        ``s32v4``, or ``f16x2v2`` for ``ctype="f16"``). ``btype`` defaults to ``atype``,
        ``ctype`` to ``s32`` for ``s8``/``u8`` and ``f32`` otherwise; ``out=`` accumulates in
        place. Returns ``d`` (a fresh register of ``c``'s type unless ``out`` is given)."""
        acc = ctype if ctype is not None else mma_default_ctype(atype)
        d_type = mma_register_types(acc)[2]
        return self.emit("mma.sync", (a, b, c), type=scalar_type(acc), dst_type=d_type,  # type: ignore[return-value]
                         out=out, shape=shape, atype=atype,
                         btype=btype if btype != atype else None, **kw)

    # -- control flow ---------------------------------------------------------------------------

    @contextmanager
    def for_(self, start: OperandLike, stop: OperandLike, step: int = 1, *, unroll: bool = False,
             uniform: bool = False, name: str = "i", type: ScalarType | str = S32
             ) -> Iterator[Reg]:
        """``with kb.for_(0, n) as i:`` a loop; ``i`` is the loop's variable."""
        t = scalar_type(type)
        var = Reg(self._fresh(name), t)
        s = self._coerce(start, t, "for start") if not isinstance(start, int) else start
        e = self._coerce(stop, t, "for stop") if not isinstance(stop, int) else stop
        loop = For(var, s, e, step, [], unroll, uniform, self.loc, self.origin)
        self._stack[-1].append(loop)
        self._stack.append(loop.body)
        try:
            yield var
        finally:
            self._stack.pop()
            self._last_if = None

    @contextmanager
    def if_(self, cond: Operand, *, uniform: bool = False) -> Iterator[None]:
        """``with kb.if_(p):`` run the body where ``p`` holds; may be followed by :meth:`else_`."""
        node = If(cond, [], [], uniform, self.loc, self.origin)
        self._stack[-1].append(node)
        self._stack.append(node.then_body)
        try:
            yield
        finally:
            self._stack.pop()
            self._last_if = node

    @contextmanager
    def else_(self) -> Iterator[None]:
        """``with kb.else_():`` right after an ``if_`` block."""
        node = self._last_if
        if node is None:
            raise ThreadIRError("else_ must follow an if_ block directly")
        self._stack.append(node.else_body)
        try:
            yield
        finally:
            self._stack.pop()
            self._last_if = None

    @contextmanager
    def while_(self, *, uniform: bool = False) -> Iterator[WhileLoop]:
        """``with kb.while_() as loop:`` a loop ``loop { cond_body; if (!cond) break; body }``.

        The statements before ``loop.cond(p)`` form the condition's body (run in every iteration,
        also the last); ``loop.cond(p)`` names the ``pred`` that keeps the loop going, and the
        statements after it form the body::

            with kb.while_(uniform=True) as loop:
                c = kb.setp("lt", i, n)
                loop.cond(c)
                kb.add(i, 1, out=i)

        ``uniform=True`` promises every thread of the block runs the same number of iterations
        (needed around ``bar.sync``). Leaving the block without calling ``loop.cond`` is a
        ``ThreadIRError``.
        """
        node = While([], None, [], uniform, self.loc, self.origin)  # type: ignore[arg-type]
        self._stack[-1].append(node)
        self._stack.append(node.cond_body)
        loop = WhileLoop(self, node)
        ok = False
        try:
            yield loop
            ok = True
        finally:
            self._stack.pop()
            self._last_if = None
        if ok and not loop.has_cond:
            raise ThreadIRError("while_ block ended without loop.cond(p): the loop has no "
                                "condition")

    def open_blocks(self) -> tuple[list[Stmt], ...]:
        """The statement lists being built, outermost first: a value emitted into one of them
        is defined at every later point of the kernel until that list's block is closed."""
        return tuple(self._stack)

    def finish(self, verify_arch: int | str | None = None) -> Kernel:
        """The kernel, verified (see ``verify``), for the target ``verify_arch`` if given."""
        from tilevm.ir.thread.verify import verify

        if len(self._stack) != 1:
            raise ThreadIRError("finish() inside an open for_/if_/while_ block")
        k = Kernel(self.name, self.params, self._stack[0], self.block_threads, self.shared_bytes,
                   self.local_bytes, self.arrays)
        verify(k, arch=verify_arch)
        return k


class WhileLoop:
    """The handle :meth:`KernelBuilder.while_` yields: call :meth:`cond` once, between the
    condition's statements and the body's."""

    def __init__(self, kb: KernelBuilder, node: While) -> None:
        self._kb = kb
        self.node = node
        self.has_cond = False

    def cond(self, p: Operand) -> None:
        """End the condition's body: the loop continues while ``p`` (a ``pred``) holds; the
        statements that follow form the loop body."""
        kb, node = self._kb, self.node
        if self.has_cond:
            raise ThreadIRError("while_: loop.cond() called twice")
        if kb._stack[-1] is not node.cond_body:
            raise ThreadIRError("while_: loop.cond() must be called directly in the while_ "
                                "block, not inside a nested block")
        if not isinstance(p, Reg | Const | Elem) or p.type != PRED:
            raise ThreadIRError(f"while_: the condition must be a pred operand, got {p!r}")
        node.cond = p
        kb._stack[-1] = node.body
        kb._last_if = None
        self.has_cond = True


_ = (B32, Elem)
