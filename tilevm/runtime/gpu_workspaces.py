"""Workspaces and streams of a GPU launch (DESIGN §7): no allocation, host synchronization or cache
I/O on the call path once a kernel has run with arguments of that size, so a launch can be
captured in a CUDA graph.

A launch whose arguments include torch tensors runs on torch's current stream and takes its
workspaces from torch's caching allocator (stream-ordered reuse, as torch's own temporaries);
otherwise it runs on the legacy default stream and takes them from a per-device pool that grows
to the largest request and is reused after. A launch's workspaces share one allocation, the zeroed
ones first, cleared by one ``cuMemsetD8Async`` on the launch's stream.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from tilevm.ir.dtypes import dtype

__all__ = ["WORKSPACE_ALIGNMENT", "WorkspaceLayout", "place_workspaces", "stream_of",
           "workspace_bytes", "workspace_layout", "workspaces_for"]

WORKSPACE_ALIGNMENT = 256
"""Bytes each workspace's address is a multiple of (as ``cuMemAlloc`` aligns an allocation)."""

_pool: dict[tuple[int, str], tuple[int, int]] = {}  # (device, kernel) -> (address, size)
_pool_lock = threading.Lock()


def _torch_tensors(bound: Any) -> list[Any]:
    return [t.owner for t in bound.tensors.values()
            if type(t.owner).__module__.startswith("torch")]


def stream_of(bound: Any) -> int:
    """The stream a launch goes on: torch's current stream for the arguments' device when one is
    a torch tensor, else 0 (the legacy default stream)."""
    tensors = _torch_tensors(bound)
    if not tensors:
        return 0
    import torch

    return int(torch.cuda.current_stream(tensors[0].device).cuda_stream)


def workspace_bytes(shape: list[Any], dims: dict[str, int], dtype_name: str) -> int:
    """Bytes of a workspace of ``shape`` (ints and dimension names) at these sizes."""
    count = 1
    for n in shape:
        count *= dims[n] if isinstance(n, str) else int(n)
    return max(-(-count * dtype(dtype_name).nbits // 8), 1)


@dataclass(frozen=True)
class WorkspaceLayout:
    """Where a launch's workspaces lie in the one allocation they share: ``offsets`` (name →
    byte offset, each a multiple of :data:`WORKSPACE_ALIGNMENT`), ``total`` bytes, and
    ``zeroed_bytes``, the prefix one memset clears (the zeroed workspaces come first)."""

    offsets: dict[str, int]
    total: int
    zeroed_bytes: int


def workspace_layout(specs: list[dict[str, Any]], dims: dict[str, int]) -> WorkspaceLayout:
    """The layout of the workspaces ``specs`` (an artifact description's) at sizes ``dims``."""
    ordered = sorted(specs, key=lambda w: not w["zeroed"])  # stable: the zeroed ones first
    offsets: dict[str, int] = {}
    total = zeroed = 0
    for w in ordered:
        offsets[w["name"]] = total
        total += workspace_bytes(w["shape"], dims, w["dtype"])
        if w["zeroed"]:
            zeroed = total
        total = -(-total // WORKSPACE_ALIGNMENT) * WORKSPACE_ALIGNMENT
    return WorkspaceLayout(offsets, total, zeroed)


def place_workspaces(layout: WorkspaceLayout, device: Any, kernel: str, torch_device: Any,
                     stream: int) -> dict[str, int]:
    """The address of each workspace of ``layout`` for one launch of ``kernel`` on ``stream``,
    the zeroed prefix cleared there: from torch's caching allocator on ``torch_device`` (None:
    from the device's pool)."""
    if torch_device is not None:
        import torch

        # Allocated on the launch's stream and dropped after it is queued: the caching
        # allocator hands the block out again only to work queued after this kernel.
        base = int(torch.empty(layout.total, dtype=torch.uint8, device=torch_device).data_ptr())
    else:
        base = _pooled(device, kernel, layout.total)
    if layout.zeroed_bytes:
        device.memset_async(base, layout.zeroed_bytes, stream)
    return {name: base + offset for name, offset in layout.offsets.items()}


def workspaces_for(artifact: Any, device: Any, bound: Any, stream: int) -> dict[str, int]:
    """The address of each workspace of ``artifact``'s launch, zeroed on ``stream`` where the
    kernel needs it zeroed.

    The launch's workspaces share one allocation, those to be zeroed first, each at a multiple of
    :data:`WORKSPACE_ALIGNMENT` bytes: one allocation and at most one ``cuMemsetD8Async`` per
    launch, however many workspaces the kernel has (a split-K call's counters and sums)."""
    specs = artifact.description["workspaces"]
    if not specs:
        return {}
    torch_args = _torch_tensors(bound)
    return place_workspaces(workspace_layout(specs, bound.dims), device, artifact.name,
                            torch_args[0].device if torch_args else None, stream)


def _pooled(device: Any, kernel: str, nbytes: int) -> int:
    key = (device.index, kernel)
    with _pool_lock:
        found = _pool.get(key)
        if found is not None and found[1] >= nbytes:
            return found[0]
        if found is not None:
            device.synchronize()  # the old buffer may still be in use by a queued launch
            device.free(found[0])
        address = device.allocate(nbytes)
        _pool[key] = (address, nbytes)
        return address
