"""Workspaces and streams of a GPU launch (DESIGN §7): no allocation, host synchronization or cache
I/O on the call path once a kernel has run with arguments of that size, so a launch can be
captured in a CUDA graph.

A launch whose arguments include torch tensors runs on torch's current stream and takes its
workspaces from torch's caching allocator (stream-ordered reuse, as torch's own temporaries);
otherwise it runs on the legacy default stream and takes them from a per-device pool that grows
to the largest request and is reused after. A launch's workspaces share one allocation, the zeroed
ones first, cleared by one ``cuMemsetD8Async`` on the launch's stream.

Workspaces the kernel restores (``tv.workspace(..., restored=True)``: it leaves them zeroed as it
found them) are not cleared per launch: they live in a region kept per (GPU, stream, kernel),
zeroed once when it is allocated (or outgrown), so a launch with only those (a split-K decode
call) is the launch alone. A region is never allocated while the stream is being captured into
a CUDA graph: such a launch gets a cleared copy of its own, as the other zeroed workspaces.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tilevm.ir.dtypes import dtype

__all__ = ["WORKSPACE_ALIGNMENT", "WorkspaceLayout", "place_workspaces", "stream_of",
           "workspace_bytes", "workspace_layout", "workspaces_for"]

WORKSPACE_ALIGNMENT = 256
"""Bytes each workspace's address is a multiple of (as ``cuMemAlloc`` aligns an allocation)."""

_pool: dict[tuple[int, str], tuple[int, int]] = {}  # (device, kernel) -> (address, size)
# (device, stream, kernel) -> (address, size, the torch tensor holding it or None)
_kept: dict[tuple[int, int, str], tuple[int, int, Any]] = {}
_outgrown: list[Any] = []  # torch tensors of outgrown kept regions (graphs may hold them)
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
    """Where a launch's workspaces lie: those cleared per launch in one allocation (``offsets``:
    name → byte offset, each a multiple of :data:`WORKSPACE_ALIGNMENT`; ``total`` bytes;
    ``zeroed_bytes``, the prefix one memset clears, the zeroed workspaces coming first), and the
    restored ones in the kept region (``kept``: name → offset; ``kept_total`` bytes)."""

    offsets: dict[str, int]
    total: int
    zeroed_bytes: int
    kept: dict[str, int] = field(default_factory=dict)
    kept_total: int = 0


def _aligned(nbytes: int) -> int:
    return -(-nbytes // WORKSPACE_ALIGNMENT) * WORKSPACE_ALIGNMENT


def workspace_layout(specs: list[dict[str, Any]], dims: dict[str, int]) -> WorkspaceLayout:
    """The layout of the workspaces ``specs`` (an artifact description's) at sizes ``dims``."""
    per_launch = [w for w in specs if not w.get("restored")]
    ordered = sorted(per_launch, key=lambda w: not w["zeroed"])  # stable: the zeroed ones first
    offsets: dict[str, int] = {}
    total = zeroed = 0
    for w in ordered:
        offsets[w["name"]] = total
        total += workspace_bytes(w["shape"], dims, w["dtype"])
        if w["zeroed"]:
            zeroed = total
        total = _aligned(total)
    kept: dict[str, int] = {}
    kept_total = 0
    for w in specs:
        if w.get("restored"):
            kept[w["name"]] = kept_total
            kept_total = _aligned(kept_total + workspace_bytes(w["shape"], dims, w["dtype"]))
    return WorkspaceLayout(offsets, total, zeroed, kept, kept_total)


def place_workspaces(layout: WorkspaceLayout, device: Any, kernel: str, torch_device: Any,
                     stream: int) -> dict[str, int]:
    """The address of each workspace of ``layout`` for one launch of ``kernel`` on ``stream``:
    the per-launch ones from torch's caching allocator on ``torch_device`` (None: from the
    device's pool), their zeroed prefix cleared on ``stream``; the restored ones in the region
    kept for (device, stream, kernel), zeroed only when it is allocated."""
    addresses: dict[str, int] = {}
    kept_base = _kept_region(device, kernel, torch_device, stream, layout.kept_total)
    per_launch = dict(layout.offsets)
    total, zeroed = layout.total, layout.zeroed_bytes
    if kept_base is None and layout.kept:
        # Capturing: a cleared copy for this launch, ahead of the zeroed per-launch ones so
        # that one memset clears both.
        per_launch = {**layout.kept, **{name: offset + layout.kept_total
                                        for name, offset in layout.offsets.items()}}
        total, zeroed = total + layout.kept_total, zeroed + layout.kept_total
    elif kept_base is not None:
        addresses = {name: kept_base + offset for name, offset in layout.kept.items()}
    if not total:
        return addresses
    if torch_device is not None:
        import torch

        # Allocated on the launch's stream and dropped after it is queued: the caching
        # allocator hands the block out again only to work queued after this kernel.
        base = int(torch.empty(total, dtype=torch.uint8, device=torch_device).data_ptr())
    else:
        base = _pooled(device, kernel, total)
    if zeroed:
        device.memset_async(base, zeroed, stream)
    return addresses | {name: base + offset for name, offset in per_launch.items()}


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


def _kept_region(device: Any, kernel: str, torch_device: Any, stream: int,
                 nbytes: int) -> int | None:
    """The address of the zeroed region kept for (device, stream, kernel), at least ``nbytes``
    long: allocated (twice the old size when outgrown) and zeroed on ``stream`` the first time,
    then the same region; None when ``nbytes`` is 0 or the stream is being captured and the
    region would have to be allocated."""
    if not nbytes:
        return None
    key = (device.index, stream, kernel)
    with _pool_lock:
        found = _kept.get(key)
        if found is not None and found[1] >= nbytes:
            return found[0]
        size = max(nbytes, 2 * found[1]) if found is not None else nbytes
        if torch_device is not None:
            import torch

            if torch.cuda.is_current_stream_capturing():
                return None
            # Zeroed on the current stream (the launch's), before the launch. An outgrown region
            # is kept alive: a CUDA graph captured with it may still be replayed.
            owner = torch.zeros(size, dtype=torch.uint8, device=torch_device)
            address = int(owner.data_ptr())
            if found is not None:
                _outgrown.append(found[2])
        else:
            if found is not None:
                device.synchronize()  # the old region may still be in use by a queued launch
                device.free(found[0])
            owner, address = None, device.allocate(size)
            device.memset_async(address, size, stream)
        _kept[key] = (address, size, owner)
        return address
