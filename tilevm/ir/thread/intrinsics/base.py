"""The intrinsic protocol: what every Thread IR instruction declares, and the registry.

Each intrinsic is a class whose docstring states its PTX semantics, and whose class attributes
state its scope (``thread``, ``warp``, ``warpgroup``, ``block``), the minimum architecture and PTX
ISA version, and whether it is ``.aligned`` (every thread of the warp must execute it together,
so a partial active mask is an error). One instance of each is registered in
:data:`INTRINSICS` under its ``name``; :class:`~tilevm.ir.thread.stmts.Instr` refers to it and
both backends dispatch on ``instr.op.name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tilevm.ir.thread.errors import ThreadIRError
from tilevm.ir.thread.types import ScalarType, Type, VectorType

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["INTRINSICS", "SCOPES", "Intrinsic", "compatible", "register"]

SCOPES = ("thread", "warp", "warpgroup", "block")

INTRINSICS: dict[str, Intrinsic] = {}


class Intrinsic:
    """Base of all intrinsics. Subclasses set the class attributes and override :meth:`check` and,
    where modifiers change them, :meth:`requirements` and :meth:`mnemonic`."""

    name: ClassVar[str]
    scope: ClassVar[str] = "thread"
    min_arch: ClassVar[int] = 50
    ptx_isa: ClassVar[tuple[int, int]] = (6, 0)
    aligned: ClassVar[bool] = False
    has_result: ClassVar[bool] = True

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        """(minimum ``sm_XX`` as an int, minimum PTX ISA version) for this use of the intrinsic."""
        return self.min_arch, self.ptx_isa

    def check(self, instr: Instr) -> None:
        """Raise ``ThreadIRError`` naming the instruction if an operand or modifier is wrong."""
        self._check_result(instr)

    def mnemonic(self, instr: Instr) -> str:
        """The PTX opcode with its modifiers and type, e.g. ``add.s32``."""
        t = f".{instr.type.name}" if instr.type is not None else ""
        return f"{self.name}{t}"

    # -- helpers for subclasses -----------------------------------------------------------------

    def fail(self, instr: Instr, message: str) -> None:
        from tilevm.ir.thread.printer import format_stmt

        raise ThreadIRError(f"{self.name}: {message} (in `{format_stmt(instr)}`)")

    def expect(self, cond: bool, instr: Instr, message: str) -> None:
        if not cond:
            self.fail(instr, message)

    def _check_result(self, instr: Instr) -> None:
        if self.has_result and instr.dst is None:
            self.fail(instr, "needs a destination register")
        if not self.has_result and instr.dst is not None:
            self.fail(instr, "has no result")

    def expect_arity(self, instr: Instr, *counts: int) -> None:
        self.expect(len(instr.args) in counts, instr,
                    f"takes {' or '.join(map(str, counts))} operands, got {len(instr.args)}")

    def expect_type(self, instr: Instr, allowed: tuple[str, ...]) -> ScalarType:
        t = instr.type
        self.expect(t is not None and t.name in allowed, instr,
                    f"type must be one of {', '.join(allowed)}, got {t}")
        assert t is not None
        return t

    def expect_operand(self, instr: Instr, i: int, want: Type, what: str = "") -> None:
        got = instr.args[i].type
        self.expect(compatible(got, want), instr,
                    f"operand {i}{' (' + what + ')' if what else ''} must be {want}, got {got}")

    def expect_dst(self, instr: Instr, want: Type) -> None:
        assert instr.dst is not None
        self.expect(compatible(instr.dst.type, want), instr,
                    f"destination must be {want}, got {instr.dst.type}")


def compatible(got: Type, want: Type) -> bool:
    """Whether a register of type ``got`` may stand where PTX wants ``want``: equal types, or equal
    widths where either is a ``b`` type or both are integers (PTX's relaxed type rules)."""
    if isinstance(got, VectorType) or isinstance(want, VectorType):
        return (isinstance(got, VectorType) and isinstance(want, VectorType)
                and got.count == want.count and compatible(got.elem, want.elem))
    if got == want:
        return True
    if got.bits != want.bits or "pred" in (got.kind, want.kind) or "token" in (got.kind, want.kind):
        return False
    return "bits" in (got.kind, want.kind) or (got.is_int and want.is_int)


def register(cls: type[Intrinsic]) -> type[Intrinsic]:
    """Class decorator: register the singleton instance of ``cls`` in :data:`INTRINSICS`."""
    if cls.name in INTRINSICS:
        raise ValueError(f"intrinsic {cls.name} registered twice")
    if cls.scope not in SCOPES:
        raise ValueError(f"intrinsic {cls.name}: bad scope {cls.scope}")
    INTRINSICS[cls.name] = cls()
    return cls
