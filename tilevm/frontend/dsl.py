"""The public names of the DSL (DESIGN §5): annotations and block-level instructions.

These functions are never executed: ``@tilevm.kernel`` reads the function's syntax tree and
translates each call into Tile IR (:mod:`tilevm.frontend.transpiler`). Called from ordinary Python
they raise, naming the function. Their signatures and docstrings are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tilevm.ir.dtypes import DType, dtype

__all__ = [
    "BUILTINS",
    "Const",
    "Global",
    "GlobalSpec",
    "OutsideKernelError",
    "Scalar",
    "ScalarSpec",
]


@dataclass(frozen=True)
class GlobalSpec:
    """The annotation ``tv.Global[dtype, "m", "k"]``: a global tensor with named dimensions.

    A dimension is a name (a run-time size, in scope in the kernel body) or a positive ``int`` (a
    size fixed when the kernel is written, checked when it is called: ``tv.Global[f16, "co", 3,
    3, "ci"]``)."""

    dtype: DType
    dims: tuple[str | int, ...]


@dataclass(frozen=True)
class ScalarSpec:
    """The annotation ``tv.Scalar[dtype]``: a run-time scalar argument."""

    dtype: DType


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
        return GlobalSpec(dtype(key[0]), dims)


class _ScalarFactory:
    def __getitem__(self, key: Any) -> ScalarSpec:
        return ScalarSpec(dtype(key))


Global = _GlobalFactory()
Scalar = _ScalarFactory()


class Const:
    """The annotation of a keyword-only compile-time constant (``*, bm: tv.Const = 64``)."""


BUILTINS: dict[str, Any] = {}


class OutsideKernelError(RuntimeError):
    """A DSL instruction called from ordinary Python."""


def _builtin(fn: Any) -> Any:
    def outside(*args: Any, **kwargs: Any) -> Any:
        raise OutsideKernelError(f"tilevm.{fn.__name__} can only be used inside a "
                                 "@tilevm.kernel function")

    outside.__name__ = outside.__qualname__ = fn.__name__
    outside.__doc__ = fn.__doc__
    outside.__wrapped_signature__ = fn
    outside.__tilevm_builtin__ = fn.__name__
    BUILTINS[fn.__name__] = outside
    __all__.append(fn.__name__)
    return outside


# The stubs below document the contract; the transpiler implements each one.


@_builtin
def launch(grid: Any, warps: int = 4) -> None:
    """Declare the launch: ``grid`` (1 to 3 block-uniform integers of parameters and constants)
    and ``warps`` (a compile-time power of two). Must come before any run-time computation."""


@_builtin
def block_idx(axis: int | None = None) -> Any:
    """This block's index: a scalar for a 1-D grid, a tuple for 2-D and 3-D grids, or one axis."""


@_builtin
def grid_dim(axis: int | None = None) -> Any:
    """The number of blocks along each axis (like :func:`block_idx`)."""


@_builtin
def zeros(shape: tuple[int, ...], dtype: DType, layout: Any = None) -> Any:
    """A register tile of zeros (with a register ``layout`` if given)."""


@_builtin
def full(shape: tuple[int, ...], value: Any, dtype: DType, layout: Any = None) -> Any:
    """A register tile filled with a compile-time or block-uniform scalar."""


@_builtin
def arange(start: int, stop: int | None = None) -> Any:
    """An i32 tile ``[start, stop)`` (``[0, start)`` with one argument)."""


@_builtin
def range(start: Any, stop: Any = None, step: Any = 1, unroll: bool | int | None = None) -> Any:
    """A run-time loop ``for i in tv.range(...)``; bounds are block-uniform integers."""


@_builtin
def cdiv(a: Any, b: Any) -> Any:
    """Ceiling division of non-negative integers (compile-time when both are)."""


@_builtin
def load(tensor: Any, offsets: tuple, shape: tuple[int, ...], mask: Any = None,
         other: float = 0, layout: Any = None) -> Any:
    """Load a tile of ``shape`` at ``offsets`` from a global or shared tensor.

    ``mask=None`` masks at the tensor's bounds (outside elements read ``other``), ``False`` is
    unchecked, a u1 tile selects elements. ``layout`` fixes the tile's register layout.
    ``shape=()`` loads the one element at ``offsets`` as a block-uniform scalar (a sequence
    length, a table entry), usable as a loop bound, an offset or an ``if`` condition."""


@_builtin
def store(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> None:
    """Store a tile (or a scalar or a number: one element) at ``offsets`` of a global or shared
    tensor, masked like :func:`load`. Into a sub-byte tensor only the stored elements' bits
    change: bytes shared with a neighbouring block's elements are updated atomically."""


@_builtin
def shared(shape: tuple[int, ...], dtype: DType, layout: Any = None) -> Any:
    """Allocate a shared-memory tensor; a leading stage dimension is indexed with ``s[stage]``."""


@_builtin
def copy_async(dst: Any, src: Any, offsets: tuple, mask: Any = None) -> None:
    """Start copying the tile of ``dst``'s shape at ``offsets`` of global ``src`` into shared
    ``dst``; it joins the open group, :func:`commit` closes it, :func:`wait` completes it."""


@_builtin
def commit() -> None:
    """Close the open group of :func:`copy_async` copies."""


@_builtin
def wait(n: int = 0) -> None:
    """Complete every committed group but the ``n`` newest."""


@_builtin
def sync() -> None:
    """A block barrier."""


@_builtin
def fence(scope: str = "gpu") -> None:
    """Order this block's memory accesses: those before the fence are seen by other blocks
    (``scope="gpu"``; ``"sys"`` includes the host, ``"block"`` only this block) before those after
    it. Put one between writing data and publishing it with an atomic, and one between seeing an
    atomic's result and reading what other blocks published (PTX ``fence.acq_rel``)."""


@_builtin
def dot(a: Any, b: Any, acc: Any = None) -> Any:
    """``a @ b + acc`` under the numeric contract (DESIGN §3). Without ``acc``, ``a @ b`` summed
    from zero in f32 (i32 for integer operands)."""


@_builtin
def cast(x: Any, dtype: DType) -> Any:
    """Convert values to ``dtype`` (round to nearest even; saturating into narrow types)."""


@_builtin
def bitcast(x: Any, dtype: DType) -> Any:
    """Reinterpret bits along the last dimension."""


@_builtin
def view(x: Any, dtype: DType, layout: Any) -> Any:
    """Reinterpret the bits each thread holds under another register layout."""


@_builtin
def convert_layout(x: Any, layout: Any) -> Any:
    """The same values under another register layout."""


@_builtin
def where(cond: Any, x: Any, y: Any) -> Any:
    """Elementwise ``x if cond else y`` with broadcasting."""


@_builtin
def reduce(x: Any, op: str, axis: int, keepdims: bool = False) -> Any:
    """Reduce along ``axis`` with ``"sum"``, ``"max"`` or ``"min"``."""


@_builtin
def sum(x: Any, axis: int, keepdims: bool = False) -> Any:
    """``reduce(x, "sum", axis)``."""


@_builtin
def max(x: Any, axis: int, keepdims: bool = False) -> Any:
    """``reduce(x, "max", axis)``."""


@_builtin
def min(x: Any, axis: int, keepdims: bool = False) -> Any:
    """``reduce(x, "min", axis)``."""


@_builtin
def maximum(x: Any, y: Any) -> Any:
    """Elementwise maximum."""


@_builtin
def minimum(x: Any, y: Any) -> Any:
    """Elementwise minimum."""


@_builtin
def fma(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` rounded once."""


@_builtin
def transpose(x: Any, perm: tuple[int, ...] | None = None) -> Any:
    """Permute the dimensions (reversed by default)."""


@_builtin
def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """The same elements, row-major, in another shape."""


@_builtin
def broadcast(x: Any, shape: tuple[int, ...]) -> Any:
    """Broadcast to ``shape`` (numpy rules)."""


@_builtin
def atomic(tensor: Any, value: Any, offsets: tuple, op: str, mask: Any = None) -> Any:
    """Atomic read-modify-write (``op`` one of add, max, min, exch, and, or, xor); returns the
    old values."""


@_builtin
def atomic_add(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> Any:
    """Atomic add (f32, f16, bf16, f64, i32, u32, u64); returns the old values."""


@_builtin
def atomic_max(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> Any:
    """Atomic max on integers; returns the old values."""


@_builtin
def atomic_min(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> Any:
    """Atomic min on integers; returns the old values."""


@_builtin
def atomic_exch(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> Any:
    """Atomic exchange; returns the old values."""


@_builtin
def workspace(shape: tuple[int, ...], dtype: DType, zeroed: bool = True) -> Any:
    """A global tensor owned by this launch, shared by every block (zero-filled if ``zeroed``)."""


@_builtin
def debug_print(prefix: str, *values: Any) -> None:
    """Print ``prefix`` and values, with the block index (the interpreter prints every block)."""


def _unary_builtin(name: str) -> None:
    def stub(x: Any) -> Any:
        pass

    stub.__name__ = name
    stub.__doc__ = f"Elementwise {name}, rounded once to the operand's dtype."
    globals()[name] = _builtin(stub)


for _name in ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "abs", "floor",
              "ceil"):
    _unary_builtin(_name)


@_builtin
def rint(x: Any) -> Any:
    """Elementwise rounding to the nearest integral value, ties to even (PTX ``cvt.rni``), in the
    operand's float type; ``tv.cast(tv.rint(x), i8)`` is round-to-nearest-even quantization
    (``tv.cast`` alone truncates toward zero, as C does). Python's ``round(x)`` means the same."""
del _name
