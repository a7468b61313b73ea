"""Names in a kernel: the frames of nested blocks, and what a name means at each point.

Python's scoping is kept where it can be (a name assigned in both branches of an ``if`` lives on
after it), and a name whose value cannot be known after a run-time block is an error where it is
read, saying why.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from typing import Any

from tilevm.frontend.transpiler.base import TranspilerBase
from tilevm.frontend.transpiler.value import Value, same_type
from tilevm.ir.tile.program import Assign, Const, Var
from tilevm.ir.tile.verifier import types_match

__all__ = ["Frame", "Scopes"]


@dataclass
class Frame:
    """The names bound in one function body or run-time block."""

    kind: str  # "function", "for", "if", "while"
    line: int
    names: dict[str, Any] = field(default_factory=dict)


class Scopes(TranspilerBase):
    """Looking names up and binding them, across the frames of nested blocks."""

    def lookup(self, name: str, node: ast.AST) -> Any:
        """What ``name`` means at ``node``: innermost frame first, then the function's globals,
        then Python's builtins; an undefined or out-of-scope name is a diagnostic."""
        for frame in reversed(self.frames):
            if name in frame.names:
                return frame.names[name]
        if name in self.src.globals:
            return self.src.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        if name in self.gone:
            raise self.error(node, self.gone[name])
        raise self.error(node, f"undefined name '{name}'")

    def find(self, name: str) -> Frame | None:
        """The innermost frame that binds ``name``."""
        for frame in reversed(self.frames):
            if name in frame.names:
                return frame
        return None

    def bind(self, name: str, value: Any, node: ast.AST) -> None:
        """``name = value`` at ``node``: a run-time variable bound before keeps its type and is
        assigned; a new run-time value names its instruction's result."""
        if name in self.readonly:
            raise self.error(node, f"cannot assign to '{name}': parameters, dimensions and loop "
                                   "variables are read-only")
        frame = self.find(name)
        old = frame.names[name] if frame else None
        current = self.frames[-1]
        if isinstance(value, Value):
            if isinstance(old, Value) and isinstance(old.operand, Var):
                if same_type(old.type, value.type) and types_match(old.type, value.type):
                    if value.operand != old.operand:
                        self.builder.append(Assign(old.operand, value.operand, self.loc(node)))
                    return
                if same_type(old.type, value.type) and frame is not current:
                    raise self.error(node, f"'{name}' is held in {old.type.layout} before this "
                                           f"{current.kind} but in {value.type.layout} here; a "
                                           "variable keeps its layout across a run-time loop "
                                           "or branch (tv.convert_layout it back, or use "
                                           "another name)")
                if frame is not current:
                    raise self.error(node, f"'{name}' is {old.type} before this {current.kind} "
                                           f"but {value.type} here; a variable keeps its type "
                                           "across a run-time loop or branch (cast it, or use "
                                           "another name)")
            new = None
            if isinstance(value.operand, Var):
                new = self.builder.rename_last(value.operand, name)
                if new is not None:
                    value.operand = new  # other references to this value see the new name
            if new is None:
                new = self.builder.emit("copy", [value.operand], self.loc(node), name)
            current.names[name] = Value(new, name)
            return
        if isinstance(old, Value) and isinstance(old.operand, Var) and frame is not current:
            if isinstance(value, (bool, int, float)) and not old.is_tensor:
                const = self.operand(value, node, like=old.dtype)
                self.builder.append(Assign(old.operand, const, self.loc(node)))
                return
            raise self.error(node, f"'{name}' is a run-time {old.type} before this "
                                   f"{current.kind}; it cannot become a compile-time value here")
        current.names[name] = value

    def materialize(self, stmts: list[ast.stmt]) -> None:
        """Make the compile-time numbers that a run-time block assigns into run-time variables."""
        for name in _assigned_names(stmts):
            frame = self.find(name)
            if frame is None:
                continue
            value = frame.names[name]
            if isinstance(value, (bool, int, float)) or (
                    isinstance(value, Value) and isinstance(value.operand, Const)):
                const = self.operand(value, None)
                var = self.builder.emit("copy", [const], None, name)
                frame.names[name] = Value(var, name)

    def push(self, kind: str, line: int) -> Frame:
        """Open the frame of a run-time block (``kind`` at ``line`` of the parsed source)."""
        frame = Frame(kind, line)
        self.frames.append(frame)
        return frame

    def pop(self) -> None:
        """Close the innermost frame; its names are gone after it, each with the reason why."""
        frame = self.frames.pop()
        line = frame.line + self.src.first_line - 1
        for name, value in frame.names.items():
            outer = self.find(name)
            if outer is None:
                self.gone[name] = (f"'{name}' is only defined inside the '{frame.kind}' at line "
                                   f"{line}; define it before that block to use it after")
            elif outer.names[name] is not value:
                # A compile-time value rebound inside a run-time block: after the block the name
                # has no single value, so reading it is an error.
                del outer.names[name]
                self.gone[name] = (f"'{name}' was given a compile-time value inside the "
                                   f"'{frame.kind}' at line {line}, so it has no single value "
                                   "after it; use a run-time value (a tile or tv.cast) or "
                                   "another name")


def _assigned_names(stmts: list[ast.stmt]) -> list[str]:
    """The names that ``stmts`` (nested blocks included) assign, in order of appearance."""
    names: list[str] = []
    for s in stmts:
        for node in ast.walk(s):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign):
                targets = [node.target]
            for t in targets:
                for x in ast.walk(t):
                    if isinstance(x, ast.Name) and x.id not in names:
                        names.append(x.id)
    return names
