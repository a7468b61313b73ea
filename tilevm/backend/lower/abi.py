"""The parameters of a lowered kernel (its ABI) and the workspaces its launch allocates.

In order: for each global tensor its byte base address (``u64``), element offset (``s64``) and
element strides (``s64`` each); each run-time scalar in its storage form; each run-time size
(``s32``); then each workspace's base address. A runtime fills them from the call's arguments
without the frontend (DESIGN §7).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.ir.dtypes import DType
from tilevm.ir.thread.types import ScalarType

__all__ = ["AbiParam", "Workspace"]


@dataclass(frozen=True)
class AbiParam:
    """One parameter of the lowered kernel: what the runtime passes there.

    ``kind`` is ``"pointer"``, ``"offset"`` or ``"stride"`` (of the global tensor parameter
    ``source``; ``dim`` is the stride's dimension), ``"scalar"`` (the run-time scalar
    ``source``), ``"size"`` (the run-time dimension ``source``) or ``"workspace"`` (the
    workspace defined by the variable ``source``).
    """

    name: str
    kind: str
    source: str
    type: ScalarType
    dim: int = -1


@dataclass(frozen=True)
class Workspace:
    """A global buffer the launch allocates for the kernel: its shape (ints and dimension
    names), dtype, whether it starts zeroed (else its bytes are unspecified), and whether the
    kernel leaves it zeroed as it found it (``restored``: zeroed once, kept between launches)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: DType
    zeroed: bool
    restored: bool = False
