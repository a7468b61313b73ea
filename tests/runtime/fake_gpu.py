"""Stand-ins for GPU memory and the CUDA driver, so that argument checks, artifacts and launches
are tested without a GPU: ``FakeCudaArray`` exposes ``__cuda_array_interface__`` at an address
that no one dereferences; ``FakeDevice`` records what a launch would do, and its "device memory"
is host memory (copies are memmoves)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class FakeCudaArray:
    """An array "on GPU ``device``" at ``address`` (nothing is allocated)."""

    def __init__(self, shape, np_dtype, address=0x7F0000000000, strides=None, device=0):
        self.shape, self.np_dtype = tuple(shape), np.dtype(np_dtype)
        self.address, self.byte_strides, self.device = address, strides, device

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.np_dtype.str, "version": 3,
                "data": (self.address, False), "strides": self.byte_strides}


def fake_pointer_device(arrays_by_address: dict[int, int]):
    """A ``pointer_device`` that knows the fake arrays' devices (device 0 otherwise)."""
    return lambda address: arrays_by_address.get(address, 0)


@dataclass
class Launch:
    grid: tuple
    block: tuple
    args: list
    shared_bytes: int
    stream: int


@dataclass
class FakeFunction:
    name: str
    launches: list = field(default_factory=list)
    dynamic_shared: int = 48 * 1024

    def allow_dynamic_shared(self, nbytes: int) -> None:
        self.dynamic_shared = max(self.dynamic_shared, nbytes)

    def launch(self, grid, block, args, shared_bytes=0, stream=0) -> None:
        self.launches.append(Launch(tuple(grid), tuple(block),
                                    [type(a)(a.value) for a in args], shared_bytes, stream))


@dataclass
class FakeModule:
    cubin: bytes
    functions: dict = field(default_factory=dict)

    def function(self, name: str) -> FakeFunction:
        return self.functions.setdefault(name, FakeFunction(name))


@dataclass
class FakeDevice:
    """A GPU of compute capability ``arch`` that records loads, allocations and memsets."""

    index: int = 0
    arch: str = "sm_90"
    name: str = "Fake GPU"
    modules: list = field(default_factory=list)
    memsets: list = field(default_factory=list)
    allocations: list = field(default_factory=list)

    def load_module(self, cubin: bytes) -> FakeModule:
        assert cubin[:4] == b"\x7fELF", "only cubins are loaded"
        self.modules.append(FakeModule(cubin))
        return self.modules[-1]

    def allocate(self, nbytes: int) -> int:
        buffer = ctypes.create_string_buffer(nbytes)
        self.allocations.append(buffer)
        return ctypes.addressof(buffer) + 0  # 16-byte aligned by malloc

    def free(self, address: int) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def copy_to_device(self, address: int, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        ctypes.memmove(address, host.ctypes.data, host.nbytes)

    def copy_to_host(self, host: np.ndarray, address: int) -> None:
        ctypes.memmove(host.ctypes.data, address, host.nbytes)

    def memset_async(self, address: int, nbytes: int, stream: int = 0) -> None:
        self.memsets.append((address, nbytes, stream))

    @property
    def launches(self) -> list[Any]:
        return [x for m in self.modules for f in m.functions.values() for x in f.launches]


def install_fake_gpu(monkeypatch: Any) -> FakeDevice:
    """Make GPU 0 a :class:`FakeDevice` for the test (every pointer on it) and return it, with
    workspace pools of its own (a real GPU 0 keeps them for the process)."""
    from tilevm.frontend import device_tensors
    from tilevm.runtime import cuda_driver, gpu_workspaces

    device = FakeDevice(0)
    monkeypatch.setattr(cuda_driver, "cuda_device", lambda index=0: device)
    monkeypatch.setattr(device_tensors, "pointer_device", lambda address: 0)
    monkeypatch.setattr(gpu_workspaces, "_pool", {})
    monkeypatch.setattr(gpu_workspaces, "_kept", {})
    return device
