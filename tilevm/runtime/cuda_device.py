"""The GPU as a device: ``kernel(...)`` with GPU tensors, or ``device="cuda"``.

A call computes the specialization of its arguments (DESIGN §7), lowers and compiles the kernel
for the architecture of the GPU holding them (once per kernel, constants, specialization and
architecture in this process), and launches the artifact on that GPU
(:meth:`~tilevm.runtime.artifact.KernelArtifact.launch_bound`): no host synchronization.
"""

from __future__ import annotations

import threading
from typing import Any

from tilevm.frontend.device_tensors import set_pointer_device
from tilevm.frontend.devices import register_device, register_fast_path
from tilevm.runtime import cuda_driver
from tilevm.runtime.artifact import KernelArtifact
from tilevm.runtime.fast_launch import make_launcher

__all__ = ["compiled_for_cuda", "run_on_cuda"]

_memo: dict[tuple[int, Any, str], tuple[Any, KernelArtifact]] = {}
_lock = threading.Lock()


def compiled_for_cuda(kernel: Any, spec: Any, arch: str) -> KernelArtifact:
    """The artifact of ``kernel`` (Tile IR) under ``spec`` for ``arch``: from the binary cache
    (:mod:`tilevm.runtime.kernel_cache`) or compiled on the first call, then memoized for the
    life of the process."""
    key = (id(kernel), spec, arch)
    with _lock:
        hit = _memo.get(key)
    if hit is not None and hit[0] is kernel:
        return hit[1]
    from tilevm.runtime.kernel_cache import artifact_cached

    artifact = artifact_cached(kernel, spec, arch)
    with _lock:
        _memo[key] = (kernel, artifact)  # the kernel is kept: its id stays unique
    return artifact


def run_on_cuda(kernel: Any, bound: Any, constants: dict[str, Any]) -> None:
    """Run a Tile IR kernel on arguments bound on a GPU (the GPU that holds them; GPU 0 when the
    call has no tensor)."""
    from tilevm.backend.lower.specialization import Specialization

    index = next((t.device for t in bound.tensors.values()), 0)
    device = cuda_driver.cuda_device(index)
    spec = Specialization.of_arguments(kernel, bound.tensors, bound.dims)
    compiled_for_cuda(kernel, spec, device.arch).launch_bound(bound, spec=spec)


register_device("cuda", run_on_cuda)
register_fast_path("cuda", make_launcher)
set_pointer_device(cuda_driver.pointer_device)
