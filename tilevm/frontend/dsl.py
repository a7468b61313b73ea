"""The public names of the DSL (docs/dsl.md): annotations and block-level instructions.

The annotations (``tv.Global``, ``tv.Scalar``, ``tv.Const``) are defined here; the instructions
(``tv.load``, ``tv.dot``…) in :mod:`tilevm.frontend.builtins`, each beside its translation into
Tile IR, and are re-exported here. They are never executed: ``@tilevm.kernel`` reads the
function's syntax tree and translates each call. Called from ordinary Python they raise, naming
the function. Their signatures and docstrings are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tilevm.frontend.builtins import BUILTINS, OutsideKernelError
from tilevm.ir.dtypes import DType, dtype

__all__ = [
    "BUILTINS",
    "Const",
    "Dtype",
    "Global",
    "GlobalSpec",
    "OutsideKernelError",
    "Scalar",
    "ScalarSpec",
]


@dataclass(frozen=True)
class Dtype:
    """A dtype variable, ``tv.Dtype("T")``, in place of a dtype in ``tv.Global``/``tv.Scalar``:
    bound at each call to the dtype of the argument (``x: tv.Global[tv.Dtype("T"), "n"]`` called
    with an f16 array binds ``T = f16``) or given as a constant (``T=tv.bf16``), and in scope in
    the kernel body as that dtype. Each dtype a variable takes is one specialization of the
    kernel, as each value of a ``tv.Const`` is."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise TypeError(f"tv.Dtype: the variable's name must be an identifier, got "
                            f"{self.name!r}")


def _dtype_or_variable(key: Any) -> DType | Dtype:
    return key if isinstance(key, Dtype) else dtype(key)


@dataclass(frozen=True)
class GlobalSpec:
    """The annotation ``tv.Global[dtype, "m", "k"]``: a global tensor with named dimensions.

    A dimension is a name (a run-time size, in scope in the kernel body) or a positive ``int`` (a
    size fixed when the kernel is written, checked when it is called: ``tv.Global[f16, "co", 3,
    3, "ci"]``)."""

    dtype: DType | Dtype
    dims: tuple[str | int, ...]


@dataclass(frozen=True)
class ScalarSpec:
    """The annotation ``tv.Scalar[dtype]``: a run-time scalar argument."""

    dtype: DType | Dtype


class _GlobalFactory:
    def __getitem__(self, key: Any) -> GlobalSpec:
        key = key if isinstance(key, tuple) else (key,)
        if not key:
            raise TypeError("tv.Global needs a dtype and dimension names, e.g. "
                            "tv.Global[f16, 'm', 'k']")
        dims = tuple(key[1:])
        for d in dims:
            static = isinstance(d, int) and not isinstance(d, bool) and d > 0
            if not static and not (isinstance(d, str) and d.isidentifier()):
                raise TypeError(f"tv.Global: each dimension is a name (a string such as 'm') or "
                                f"a positive int (a fixed size), got {d!r} in {dims!r}")
        return GlobalSpec(_dtype_or_variable(key[0]), dims)


class _ScalarFactory:
    def __getitem__(self, key: Any) -> ScalarSpec:
        return ScalarSpec(_dtype_or_variable(key))


Global = _GlobalFactory()
Scalar = _ScalarFactory()


class Const:
    """The annotation of a keyword-only compile-time constant (``*, bm: tv.Const = 64``)."""


# The instructions, as module attributes too: tilevm.frontend.dsl.load is tv.load.
globals().update(BUILTINS)
__all__ += list(BUILTINS)
