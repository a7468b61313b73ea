"""The CUDA driver as tilevm sees it: is there one, which version, which GPUs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DriverInfo", "GpuInfo", "probe_driver"]


@dataclass(frozen=True)
class GpuInfo:
    """One visible GPU."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_bytes: int

    @property
    def arch(self) -> str:
        """The target name, e.g. ``sm_90``."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


@dataclass(frozen=True)
class DriverInfo:
    """The driver's version and GPUs, or why none could be reached (``error``)."""

    version: str | None
    gpus: tuple[GpuInfo, ...]
    error: str | None = None


def probe_driver() -> DriverInfo:
    """Ask the CUDA driver (through cuda-bindings) for its version and devices.

    Never raises: on a machine without a driver or GPU, ``error`` says what was missing.
    """
    try:
        from cuda.bindings import driver
    except ImportError as exc:
        return DriverInfo(None, (), f"cuda-bindings is not installed ({exc})")
    try:
        (err,) = driver.cuInit(0)
    except RuntimeError as exc:  # libcuda.so.1 absent: no driver on this machine
        return DriverInfo(None, (), f"no CUDA driver ({exc})")
    if err != driver.CUresult.CUDA_SUCCESS:
        return DriverInfo(None, (), f"cuInit failed: {err.name}")
    err, version = driver.cuDriverGetVersion()
    version_text = f"{version // 1000}.{(version % 1000) // 10}"
    err, count = driver.cuDeviceGetCount()
    gpus = []
    for index in range(count if err == driver.CUresult.CUDA_SUCCESS else 0):
        _, device = driver.cuDeviceGet(index)
        _, raw_name = driver.cuDeviceGetName(64, device)
        attr = driver.CUdevice_attribute
        _, major = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                               device)
        _, minor = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                               device)
        _, memory = driver.cuDeviceTotalMem(device)
        name = raw_name.split(b"\0", 1)[0].decode(errors="replace")
        gpus.append(GpuInfo(index, name, (major, minor), int(memory)))
    return DriverInfo(version_text, tuple(gpus))
