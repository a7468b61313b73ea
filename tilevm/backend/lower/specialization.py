"""Specialization (DESIGN §7): facts about the arguments that a compiled kernel may rely on.

At each launch the runtime computes, for every global tensor, whether the address of its element
0 is 16-byte aligned, for each dimension whether the stride is 1 or a multiple of 128 bits, and
whether every element the tensor reaches lies less than 2^31 elements from its element 0; for
every run-time size, whether it is a multiple of 16. These facts are part of the compiled
kernel's identity: a kernel compiled for aligned, contiguous tensors is another binary than the
general one, and the facts it proves become constants (a stride of 1), license 16-byte vector
accesses and let element offsets be computed in 32 bits (a 64-bit multiply-add costs several
instructions on a GPU, recomputed at every step of a loop). :meth:`Specialization.generic`
knows nothing and fits every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tilevm.ir.tile.program import Kernel
from tilevm.ir.tile.types import TensorType

__all__ = ["STRIDE_FACTS", "Specialization", "TensorFacts", "offsets_fit_i32", "stride_fact"]

# What is known of a stride: exactly 1, a multiple of 128 bits, or nothing.
STRIDE_FACTS = ("1", "16", "any")
_STRIDE_TEXT = {"1": "1", "16": "a multiple of 16 bytes", "any": "unknown"}


@dataclass(frozen=True)
class TensorFacts:
    """What is known of one global tensor argument."""

    aligned: bool = False  # the address of element 0 is a multiple of 16 bytes
    strides: tuple[str, ...] = ()  # one of STRIDE_FACTS per dimension
    offsets32: bool = False  # every element reached is within i32 range of element 0

    def stride(self, dim: int) -> str:
        return self.strides[dim] if dim < len(self.strides) else "any"


@dataclass(frozen=True)
class Specialization:
    """Facts about a call's arguments (see the module docstring)."""

    tensors: tuple[tuple[str, TensorFacts], ...] = ()
    dims16: frozenset[str] = field(default_factory=frozenset)  # sizes that are multiples of 16

    @staticmethod
    def generic() -> Specialization:
        """Nothing known: the kernel works for every argument."""
        return Specialization()

    @staticmethod
    def contiguous(kernel: Kernel, aligned: bool = True) -> Specialization:
        """Every tensor dense row-major (last stride 1) and, with ``aligned``, 16-byte aligned
        with every other stride a multiple of 128 bits, under 2^31 elements, and every size a
        multiple of 16: what ``tilevm compile --aligned`` assumes."""
        tensors = []
        for p in kernel.params:
            if isinstance(p.type, TensorType):
                outer = "16" if aligned else "any"
                strides = (*(outer for _ in p.type.shape[:-1]), "1")
                tensors.append((p.name, TensorFacts(aligned, strides, aligned)))
        dims = frozenset(kernel.dims()) if aligned else frozenset()
        return Specialization(tuple(tensors), dims)

    @staticmethod
    def of_arguments(kernel: Kernel, tensors: Mapping[str, object],
                     dims: Mapping[str, int]) -> Specialization:
        """The facts of one call: ``tensors`` maps each global parameter to a
        :class:`~tilevm.ir.host_tensor.HostTensor` (or anything with ``data_ptr`` (bytes),
        ``offset``, ``strides`` and ``dtype``)."""
        facts = []
        for p in kernel.params:
            if not isinstance(p.type, TensorType):
                continue
            t = tensors[p.name]
            nbits = t.dtype.nbits
            address_bits = _address(t) * 8 + t.offset * nbits
            strides = tuple(stride_fact(s, nbits) for s in t.strides)
            small = offsets_fit_i32(t.offset, t.shape, t.strides)
            facts.append((p.name, TensorFacts(address_bits % 128 == 0, strides, small)))
        return Specialization(tuple(facts), frozenset(d for d, n in dims.items() if n % 16 == 0))

    def tensor(self, name: str) -> TensorFacts:
        """The facts of tensor parameter ``name`` (none known if not listed)."""
        for key, facts in self.tensors:
            if key == name:
                return facts
        return TensorFacts()

    def describe(self) -> str:
        """One line per tensor and the sizes, for the compile report."""
        lines = []
        for name, f in self.tensors:
            strides = ", ".join(_STRIDE_TEXT[s] for s in f.strides) if f.strides else "-"
            lines.append(f"{name}: {'16-byte aligned' if f.aligned else 'alignment unknown'}, "
                         f"strides [{strides}]"
                         + (", element offsets in i32" if f.offsets32 else ""))
        if self.dims16:
            lines.append(f"multiples of 16: {', '.join(sorted(self.dims16))}")
        return "\n".join(lines) if lines else "nothing known (the general kernel)"


def stride_fact(stride: int, nbits: int) -> str:
    """What a stride of ``stride`` elements of ``nbits`` bits is known to be (STRIDE_FACTS)."""
    return "1" if stride == 1 else "16" if (stride * nbits) % 128 == 0 else "any"


def offsets_fit_i32(offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Whether every element of a view (``offset`` + Σ index·stride, in elements) lies in i32
    range, so that a kernel may compute element offsets in 32 bits (an empty view reaches none)."""
    if 0 in shape:
        return True
    lo = hi = offset
    for n, s in zip(shape, strides):
        if s > 0:
            hi += (n - 1) * s
        else:
            lo += (n - 1) * s
    return lo >= -_I32 and hi < _I32


_I32 = 2**31


def _address(tensor: object) -> int:
    data = getattr(tensor, "data", None)
    if data is not None and hasattr(data, "ctypes"):
        return int(data.ctypes.data)
    return int(getattr(tensor, "data_ptr", 0))
