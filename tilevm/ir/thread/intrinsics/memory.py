"""Memory intrinsics: loads, stores, asynchronous copies, atomics and fences.

Address spaces: ``global`` addresses are ``u64``; ``shared`` and ``local`` addresses are ``u32``
(PTX's 32-bit shared/local windows; ``shared_base``/``local_base`` give the address of the
kernel's dynamic shared memory and of the thread's local buffer). An access of n bytes must be
n-aligned. The optional ``offset`` modifier is an immediate byte offset added to the address
(``[%r+offset]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tilevm.ir.thread.intrinsics.base import Intrinsic, register
from tilevm.ir.thread.types import TOKEN, U32, U64, ScalarType, VectorType

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["ATOM_TYPES", "SPACES", "Atom", "CpAsync", "CpAsyncCommit", "CpAsyncWait", "Fence", "Ld",
           "LocalBase", "Membar", "Red", "SharedBase", "St", "address_type"]

SPACES = ("global", "shared", "local")
_LD_CACHE = ("ca", "cg", "cs", "lu", "cv")
_ST_CACHE = ("wb", "cg", "cs", "wt")


def address_type(space: str) -> ScalarType:
    """``u64`` for global addresses, ``u32`` for shared and local ones."""
    return U64 if space == "global" else U32


def _access(intr: Intrinsic, instr: Instr, value_type: object, cache_ops: tuple[str, ...]) -> None:
    space = instr.mod("space")
    intr.expect(space in SPACES, instr, f"space must be one of {SPACES}, got {space!r}")
    intr.expect_operand(instr, 0, address_type(space), "address")
    cache = instr.mod("cache")
    intr.expect(cache is None or cache in cache_ops, instr,
                f"cache operator must be one of {cache_ops}, got {cache!r}")
    nbytes = value_type.bits // 8  # type: ignore[attr-defined]
    intr.expect(nbytes in (1, 2, 4, 8, 16) and value_type.bits % 8 == 0, instr,  # type: ignore[attr-defined]
                f"accesses 1, 2, 4, 8 or 16 bytes, not {value_type}")
    intr.expect(isinstance(instr.mod("offset", 0), int), instr, "offset must be an int")
    elem = value_type.elem  # type: ignore[attr-defined]
    intr.expect(instr.type is not None and instr.type == elem, instr,
                f"instruction type must be the element type {elem}, got {instr.type}")


def _vec(t: object) -> str:
    return f".v{t.count}" if isinstance(t, VectorType) else ""


@register
class Ld(Intrinsic):
    """``ld{.space}{.nc}{.cache}{.vN}.type d, [a+offset]`` (PTX ISA, Data Movement and Conversion
    Instructions: ``ld``, ``ld.global.nc``).

    Reads ``d``'s width (1–16 bytes; a vector type gives ``.v2``/``.v4``) at address ``a`` of the
    space. Modifiers: ``space`` (global/shared/local), ``nc`` (read-only non-coherent path, global
    only), ``cache`` (ca/cg/cs/lu/cv; with ``nc`` only ca/cg/cs), ``offset``. Scope thread;
    sm_50, PTX 1.0 (``.nc``: sm_32, PTX 3.1).
    """

    name = "ld"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 1)
        _access(self, instr, instr.dst.type, _LD_CACHE)  # type: ignore[union-attr]
        self.expect(not instr.mod("nc") or instr.mod("space") == "global", instr,
                    ".nc is for the global space only")
        # ld.global{.cop}.nc with .cop = {.ca, .cg, .cs} (ptxas: "Illegal cache operation for
        # instruction 'ld.nc'" for .lu and .cv)
        self.expect(not instr.mod("nc") or instr.mod("cache") in (None, "ca", "cg", "cs"), instr,
                    f".nc takes the cache operators ca, cg, cs, not {instr.mod('cache')!r}")

    def mnemonic(self, instr: Instr) -> str:
        nc = ".nc" if instr.mod("nc") else ""
        cache = f".{instr.mod('cache')}" if instr.mod("cache") else ""
        return f"ld.{instr.mod('space')}{nc}{cache}{_vec(instr.dst.type)}.{instr.type}"  # type: ignore[union-attr]


@register
class St(Intrinsic):
    """``st{.space}{.cache}{.vN}.type [a+offset], b`` (PTX ISA, Data Movement and Conversion
    Instructions: ``st``).

    Writes ``b``'s width (1–16 bytes) at address ``a``. Operands ``(a, b)``; modifiers ``space``,
    ``cache`` (wb/cg/cs/wt), ``offset``. Scope thread; sm_50, PTX 1.0.
    """

    name = "st"
    ptx_isa = (1, 0)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 2)
        _access(self, instr, instr.args[1].type, _ST_CACHE)

    def mnemonic(self, instr: Instr) -> str:
        cache = f".{instr.mod('cache')}" if instr.mod("cache") else ""
        return f"st.{instr.mod('space')}{cache}{_vec(instr.args[1].type)}.{instr.type}"


@register
class CpAsync(Intrinsic):
    """``cp.async.{ca,cg}.shared.global [d], [s], size{, src_size}`` (PTX ISA, Data Movement and
    Conversion Instructions: ``cp.async``).

    Starts copying ``size`` bytes (``ca``: 4, 8 or 16; ``cg``: 16) from global address ``s``
    (``u64``) to shared address ``d`` (``u32``); with the optional ``src_size`` operand (``u32``,
    ≤ size) only that many bytes are read and the rest of the destination is zero-filled. The copy
    joins the thread's open ``cp.async`` group and the destination may change at any time until a
    ``cp.async.wait_group`` that covers the group. Operands ``(d, s[, src_size])``; modifiers
    ``cache`` ("ca"/"cg"), ``size``. Scope thread; sm_80, PTX 7.0.
    """

    name = "cp.async"
    min_arch = 80
    ptx_isa = (7, 0)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 2, 3)
        self.expect_operand(instr, 0, U32, "shared destination")
        self.expect_operand(instr, 1, U64, "global source")
        if len(instr.args) == 3:
            self.expect_operand(instr, 2, U32, "src_size")
        cache, size = instr.mod("cache"), instr.mod("size")
        self.expect(cache in ("ca", "cg"), instr, f"cache must be ca or cg, got {cache!r}")
        ok = size in (4, 8, 16) if cache == "ca" else size == 16
        self.expect(ok, instr, f"cp.async.{cache} cannot copy {size!r} bytes (ca: 4/8/16, cg: 16)")

    def mnemonic(self, instr: Instr) -> str:
        return f"cp.async.{instr.mod('cache')}.shared.global"


@register
class CpAsyncCommit(Intrinsic):
    """``cp.async.commit_group`` (PTX ISA: ``cp.async.commit_group``): closes the thread's open
    group of ``cp.async`` copies (possibly empty) and returns its ``token``. Scope thread; sm_80,
    PTX 7.0."""

    name = "cp.async.commit_group"
    min_arch = 80
    ptx_isa = (7, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect_dst(instr, TOKEN)

    def mnemonic(self, instr: Instr) -> str:
        return self.name


@register
class CpAsyncWait(Intrinsic):
    """``cp.async.wait_group N`` (PTX ISA: ``cp.async.wait_group``): waits until at most ``N``
    (modifier ``n``) of the thread's most recent committed groups are pending; every older group's
    copies are then complete and visible to the thread. Operands: the tokens this wait is meant to
    cover (dependencies only; may be empty). Scope thread; sm_80, PTX 7.0."""

    name = "cp.async.wait_group"
    min_arch = 80
    ptx_isa = (7, 0)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        n = instr.mod("n")
        self.expect(isinstance(n, int) and 0 <= n <= 7, instr, f"n must be an int 0..7, got {n!r}")
        for i in range(len(instr.args)):
            self.expect_operand(instr, i, TOKEN, "token")

    def mnemonic(self, instr: Instr) -> str:
        return self.name


# The types ptxas accepts for each operation (PTX ISA, Parallel Synchronization and
# Communication Instructions: ``atom``: "The bit-size operations are .and, .or, .xor, .cas and
# .exch. The integer operations are .add, .inc, .dec, .min, .max"; ptxas spells it out, e.g.
# "Operation .add requires .u32 or .s32 or .u64 or .f64 or .f32", "Operation .exch requires
# .b32 or .b64").
ATOM_TYPES: dict[str, tuple[str, ...]] = {
    "add": ("u32", "s32", "u64", "f32", "f64"),
    "min": ("u32", "s32", "u64", "s64"),
    "max": ("u32", "s32", "u64", "s64"),
    "inc": ("u32",),
    "dec": ("u32",),
    "and": ("b32", "b64"),
    "or": ("b32", "b64"),
    "xor": ("b32", "b64"),
    "exch": ("b32", "b64"),
    "cas": ("b32", "b64"),
}
_ATOM_OPS = tuple(ATOM_TYPES)


def _check_atomic(intr: Intrinsic, instr: Instr, with_result: bool) -> None:
    space = instr.mod("space")
    intr.expect(space in ("global", "shared"), instr,
                f"space must be global or shared, got {space!r}")
    op = instr.mod("op")
    intr.expect(op in _ATOM_OPS, instr, f"op must be one of {_ATOM_OPS}, got {op!r}")
    intr.expect(with_result or op not in ("exch", "cas"), instr, f"red has no .{op}")
    t = intr.expect_type(instr, ATOM_TYPES[op])
    intr.expect_arity(instr, 3 if op == "cas" else 2)
    intr.expect_operand(instr, 0, address_type(space), "address")
    for i in range(1, len(instr.args)):
        intr.expect_operand(instr, i, t)
    if with_result:
        intr.expect_dst(instr, t)


@register
class Atom(Intrinsic):
    """``atom{.space}.op.type d, [a], b{, c}`` (PTX ISA, Parallel Synchronization and Communication
    Instructions: ``atom``): atomically reads the value ``x`` at ``a``, writes ``op(x, b)``
    (``cas``: ``x == b ? c : x``; ``inc``: ``x >= b ? 0 : x+1``; ``dec``: ``x == 0 || x > b ? b :
    x-1``) and returns ``x`` in ``d``. Modifiers ``space`` (global/shared), ``op``; the types of
    each operation are :data:`ATOM_TYPES`. ``add.f32`` on global memory flushes subnormal inputs
    (``b`` and the value read) and its result to zero of the same sign, as the ISA says the
    implementation does; on shared memory it keeps them. Relaxed, gpu scope. Scope thread; sm_50,
    PTX 1.1 (f64 add: sm_60, PTX 5.0)."""

    name = "atom"
    ptx_isa = (1, 1)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        _check_atomic(self, instr, True)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        if instr.type is not None and instr.type.name == "f64":
            return 60, (5, 0)
        return self.min_arch, self.ptx_isa

    def mnemonic(self, instr: Instr) -> str:
        return f"atom.{instr.mod('space')}.{instr.mod('op')}.{instr.type}"


@register
class Red(Atom):
    """``red{.space}.op.type [a], b`` (PTX ISA, Parallel Synchronization and Communication
    Instructions: ``red``): ``atom`` without the result. Scope thread; sm_50, PTX 1.2."""

    name = "red"
    ptx_isa = (1, 2)
    has_result = False

    def check(self, instr: Instr) -> None:
        Intrinsic.check(self, instr)
        _check_atomic(self, instr, False)

    def mnemonic(self, instr: Instr) -> str:
        return f"red.{instr.mod('space')}.{instr.mod('op')}.{instr.type}"


@register
class Fence(Intrinsic):
    """``fence.sem.scope`` (PTX ISA, Parallel Synchronization and Communication Instructions:
    ``membar``/``fence``): orders this thread's memory accesses (``sem`` ``sc`` or ``acq_rel``) as
    seen by threads of ``scope`` (``cta``, ``gpu``, ``sys``). A no-op on the CPU, where a block's
    warps run in program order. Scope thread; sm_70, PTX 6.0."""

    name = "fence"
    min_arch = 70
    ptx_isa = (6, 0)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect(instr.mod("sem") in ("sc", "acq_rel"), instr, "sem must be sc or acq_rel")
        self.expect(instr.mod("scope") in ("cta", "gpu", "sys"), instr, "scope must be cta/gpu/sys")

    def mnemonic(self, instr: Instr) -> str:
        return f"fence.{instr.mod('sem')}.{instr.mod('scope')}"


@register
class Membar(Intrinsic):
    """``membar.level`` (PTX ISA, Parallel Synchronization and Communication Instructions:
    ``membar``): the older fence, ``level`` ``cta``, ``gl`` or ``sys`` (``membar.gl`` is
    ``fence.sc.gpu``). Scope thread; sm_50, PTX 1.4."""

    name = "membar"
    ptx_isa = (1, 4)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect(instr.mod("level") in ("cta", "gl", "sys"), instr, "level must be cta/gl/sys")

    def mnemonic(self, instr: Instr) -> str:
        return f"membar.{instr.mod('level')}"


@register
class SharedBase(Intrinsic):
    """``d = shared address of the kernel's dynamic shared memory`` (``u32``): what
    ``cvta.to.shared.u32`` of the ``extern __shared__`` array gives (PTX ISA, Data Movement and
    Conversion Instructions: ``cvta``). Not an instruction of its own; 0 on the CPU. Scope
    thread; sm_50, PTX 2.0."""

    name = "shared_base"
    ptx_isa = (2, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect_dst(instr, U32)

    def mnemonic(self, instr: Instr) -> str:
        return "cvta.to.shared.u32"


@register
class LocalBase(Intrinsic):
    """``d = local address of the thread's local buffer`` of ``Kernel.local_bytes`` bytes
    (``u32``, ``cvta.to.local`` of a per-thread array, PTX ISA: ``cvta``). Scope thread; sm_50,
    PTX 2.0."""

    name = "local_base"
    ptx_isa = (2, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect_dst(instr, U32)

    def mnemonic(self, instr: Instr) -> str:
        return "cvta.to.local.u32"
