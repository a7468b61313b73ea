"""Workspaces and streams of a GPU launch (DESIGN §7): no allocation, host synchronization or cache
I/O on the call path once a kernel has run with arguments of that size, so a launch can be
captured in a CUDA graph.

A launch whose arguments include torch tensors runs on torch's current stream and takes its
workspaces from torch's caching allocator (stream-ordered reuse, as torch's own temporaries);
otherwise it runs on the legacy default stream and takes them from a per-device pool that grows
to the largest request and is reused after. Zeroed workspaces are cleared with
``cuMemsetD8Async`` on the launch's stream.
"""

from __future__ import annotations

import threading
from typing import Any

from tilevm.ir.dtypes import dtype

__all__ = ["stream_of", "workspace_bytes", "workspaces_for"]

_pool: dict[tuple[int, str, str], tuple[int, int]] = {}  # (device, kernel, name) -> (address, size)
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


def workspaces_for(artifact: Any, device: Any, bound: Any, stream: int) -> dict[str, int]:
    """The address of each workspace of ``artifact``'s launch, zeroed on ``stream`` where the
    kernel needs it zeroed."""
    specs = artifact.description["workspaces"]
    if not specs:
        return {}
    out: dict[str, int] = {}
    torch_args = _torch_tensors(bound)
    for w in specs:
        nbytes = workspace_bytes(w["shape"], bound.dims, w["dtype"])
        if torch_args:
            import torch

            # Allocated on the launch's stream and dropped after it is queued: the caching
            # allocator hands the block out again only to work queued after this kernel.
            buffer = torch.empty(nbytes, dtype=torch.uint8, device=torch_args[0].device)
            address = int(buffer.data_ptr())
        else:
            address = _pooled(device, artifact.name, w["name"], nbytes)
        if w["zeroed"]:
            device.memset_async(address, nbytes, stream)
        out[w["name"]] = address
    return out


def _pooled(device: Any, kernel: str, name: str, nbytes: int) -> int:
    key = (device.index, kernel, name)
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
