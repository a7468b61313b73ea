"""How a DSL builtin is defined: its public function and its translation, side by side.

A builtin (``tv.load``, ``tv.dot``…) is two adjacent definitions in one module of
:mod:`tilevm.frontend.builtins`::

    @builtin
    def load(tensor: Any, offsets: tuple, shape: tuple[int, ...], mask: Any = None,
             other: float = 0, layout: Any = None) -> Any:
        \"\"\"Load a tile of ``shape`` at ``offsets``…\"\"\"


    @translates(load)
    def _load(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
        t = tr.memory_tensor(a["tensor"], n["tensor"], "tv.load", ("global", "shared"))
        ...

:func:`builtin` turns the stub into the public function: the same name, signature and docstring
(``help(tv.load)``), raising :class:`OutsideKernelError` when called from ordinary Python.
:func:`translates` attaches the function that turns a call in a kernel into Tile IR: it gets the
transpiler, the call's node, the arguments' values by parameter name (defaults filled in) and each
argument's syntax node, at which its diagnostics point (the call's node for a defaulted one).
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUILTINS",
    "DEFINITIONS",
    "Args",
    "Builtin",
    "Nodes",
    "OutsideKernelError",
    "builtin",
    "definition_of",
    "translates",
]

Args = dict[str, Any]  # a call's argument values by parameter name
Nodes = dict[str, ast.AST]  # the syntax node of each argument


class OutsideKernelError(RuntimeError):
    """A DSL instruction called from ordinary Python."""


@dataclass
class Builtin:
    """One DSL builtin: its name, public function, signature and translation.

    ``translate`` is called as ``translate(tr, node, args, nodes)``; with ``bind=False`` as
    ``translate(tr, node)``, and it binds and evaluates the arguments itself (``tv.launch`` does,
    inside the launch block).
    """

    name: str
    function: Callable[..., Any]
    signature: inspect.Signature
    translate: Callable[..., Any] | None = None
    bind: bool = True


# name → the public function (tv.<name>), in the order of definition.
BUILTINS: dict[str, Callable[..., Any]] = {}
# name → its definition.
DEFINITIONS: dict[str, Builtin] = {}


def builtin(stub: Callable[..., Any], *, name: str | None = None,
            doc: str | None = None) -> Callable[..., Any]:
    """Make ``stub`` (a signature and a docstring) the public DSL function of its name.

    The returned function has the stub's name, signature (``inspect.signature``) and docstring,
    raises :class:`OutsideKernelError` when called, and is registered in :data:`BUILTINS`. Its
    translation is attached with :func:`translates`. ``name`` and ``doc`` replace the stub's, to
    define several builtins of one signature from a table (``tv.exp``, ``tv.sqrt``…).
    """
    name = name or stub.__name__

    @functools.wraps(stub)
    def public(*args: Any, **kwargs: Any) -> Any:
        raise OutsideKernelError(f"tilevm.{name} can only be used inside a @tilevm.kernel "
                                 "function")

    # The module that re-exports it: a builtin given as a constant prints as
    # <function tilevm.frontend.dsl.NAME> in the text form, which keys the binary cache.
    public.__module__ = "tilevm.frontend.dsl"
    public.__name__ = public.__qualname__ = name
    if doc is not None:
        public.__doc__ = doc
    definition = Builtin(name, public, inspect.signature(stub))
    public.__tilevm_builtin__ = definition  # type: ignore[attr-defined]
    BUILTINS[name] = public
    DEFINITIONS[name] = definition
    return public


def translates(function: Callable[..., Any], *,
               bind: bool = True) -> Callable[[Callable], Callable]:
    """Register the decorated function as the translation of the builtin ``function``.

    ``bind=False``: the translation is called without arguments bound (see :class:`Builtin`).
    Raises ``ValueError`` if ``function`` is not a builtin or already has a translation.
    """
    definition = definition_of(function)
    if definition is None:
        raise ValueError(f"translates: {function!r} is not a DSL builtin (decorate it @builtin)")
    if definition.translate is not None:
        raise ValueError(f"translates: tv.{definition.name} already has a translation")

    def register(translate: Callable[..., Any]) -> Callable[..., Any]:
        definition.translate = translate
        definition.bind = bind
        return translate

    return register


def definition_of(fn: Any) -> Builtin | None:
    """The definition of ``fn`` if it is a DSL builtin's public function, else ``None``."""
    definition = getattr(fn, "__tilevm_builtin__", None)
    return definition if isinstance(definition, Builtin) else None
