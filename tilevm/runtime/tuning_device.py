"""What the autotuner needs of a GPU, behind one small interface (:class:`TuningDevice`), so that
the tuning procedure (reset, check, L2 flush, input rotation, median) is the same code on a real
GPU (:class:`CudaTuningDevice`: the CUDA driver, events on the legacy default stream) and in tests
(a fake device that runs candidates on the interpreter and advances a fake clock).
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from typing import Any

from tilevm.ir.host_tensor import HostTensor
from tilevm.runtime.tuning_db import Fingerprint

__all__ = ["CudaTuningDevice", "TuningDevice", "TuningEvent", "driver_version",
           "fingerprint_of"]


class TuningEvent(ABC):
    """A point in the device's stream (a CUDA event)."""

    @abstractmethod
    def record(self) -> None:
        """Mark the current end of the stream."""

    @abstractmethod
    def elapsed_ms(self, end: TuningEvent) -> float:
        """Milliseconds between this event and ``end`` (both recorded; waits for ``end``)."""


class TuningDevice(ABC):
    """A GPU as the tuner sees it: memory, one launch, events.

    Buffers are opaque objects the device hands out (:meth:`to_device`) that a launch takes as
    tensor arguments. Everything is ordered on one stream; only :meth:`to_host` and
    :meth:`TuningEvent.elapsed_ms` wait for it.
    """

    name: str
    compute_capability: tuple[int, int]
    driver: str

    @property
    def arch(self) -> str:
        major, minor = self.compute_capability
        return f"sm_{major}{minor}"

    @property
    def fingerprint(self) -> Fingerprint:
        import tilevm

        major, minor = self.compute_capability
        return Fingerprint(self.name, f"{major}.{minor}", self.driver, tilevm.__version__)

    @abstractmethod
    def to_device(self, host: HostTensor) -> Any:
        """A new device buffer holding ``host``'s values (dense)."""

    @abstractmethod
    def copy(self, dst: Any, src: Any) -> None:
        """Copy buffer ``src`` into ``dst`` (same size), in stream order."""

    @abstractmethod
    def to_host(self, buffer: Any) -> HostTensor:
        """``buffer``'s values, once everything queued before has run."""

    @abstractmethod
    def launch(self, kernel: Any, config: dict[str, Any], artifact: Any,
               args: tuple[Any, ...]) -> None:
        """Queue one run of ``kernel`` (the ``@tilevm.kernel`` function) with constants
        ``config``, compiled to ``artifact`` (a :class:`~tilevm.runtime.artifact.KernelArtifact`
        for :attr:`arch`), on ``args`` (buffers and scalars, in parameter order)."""

    @abstractmethod
    def flush_l2(self) -> None:
        """Evict the L2 cache (write a buffer larger than it), in stream order."""

    @abstractmethod
    def event(self) -> TuningEvent:
        """A new event."""


@functools.cache
def driver_version() -> str:
    """The CUDA driver's version (``"13.0"``), ``"unknown"`` without one."""
    from tilevm.runtime.device import probe_driver

    return probe_driver().version or "unknown"


def fingerprint_of(device: Any) -> Fingerprint:
    """The fingerprint of a GPU as the runtime holds it (a ``CudaDevice``, or anything with
    ``name`` and ``compute_capability`` or ``arch``)."""
    import tilevm

    cc = getattr(device, "compute_capability", None)
    if cc is None:  # an arch name such as "sm_90"
        digits = str(device.arch).removeprefix("sm_").rstrip("a")
        cc = (int(digits[:-1]), int(digits[-1]))
    driver = getattr(device, "driver", None) or driver_version()
    return Fingerprint(device.name, f"{cc[0]}.{cc[1]}", driver, tilevm.__version__)


class CudaTuningDevice(TuningDevice):
    """GPU ``index`` through the CUDA driver: :class:`~tilevm.DeviceArray` buffers, launches of
    the candidate's artifact and events on the legacy default stream; the L2 is flushed by
    zeroing a buffer of twice its size."""

    def __init__(self, index: int = 0) -> None:
        from tilevm.runtime import cuda_driver

        self.device = cuda_driver.cuda_device(index)
        self.name = self.device.name
        self.compute_capability = self.device.compute_capability
        self.driver = driver_version()
        self._flush_bytes = 2 * max(self.device.l2_bytes, 1 << 20)
        self._flush = self.device.allocate(self._flush_bytes)

    def to_device(self, host: HostTensor) -> Any:
        from tilevm.runtime.device_array import DeviceArray

        return DeviceArray.from_host_tensor(host, self.device.index)

    def copy(self, dst: Any, src: Any) -> None:
        self.device.copy_on_device_async(dst.address, src.address, src.nbytes)

    def to_host(self, buffer: Any) -> HostTensor:
        return buffer.to_host_tensor()

    def launch(self, kernel: Any, config: dict[str, Any], artifact: Any,
               args: tuple[Any, ...]) -> None:
        artifact.launch(*args, stream=0)

    def flush_l2(self) -> None:
        self.device.memset_async(self._flush, self._flush_bytes, 0)

    def event(self) -> TuningEvent:
        return self.device.event()  # a cuda_driver.CudaEvent: record() and elapsed_ms(end)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the driver may be gone
            self.device.free(self._flush)
