"""Which NVRTC tilevm compiles with: the pinned ``nvidia-cuda-nvrtc`` wheel, never a toolkit."""

from __future__ import annotations

from importlib import metadata

__all__ = ["NVRTC_PACKAGE", "nvrtc_supported_archs", "nvrtc_version"]

NVRTC_PACKAGE = "nvidia-cuda-nvrtc"


def nvrtc_version() -> str:
    """The NVRTC release in use, e.g. ``"13.0.88"``, or a sentence saying why there is none.

    Loads the library (through cuda-bindings, which finds the wheel's copy) to prove it works;
    the full release number comes from the wheel's metadata, since NVRTC itself reports only
    major.minor.
    """
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        return f"unavailable (cuda-bindings is not installed: {exc})"
    try:
        result, major, minor = nvrtc.nvrtcVersion()
    except Exception as exc:  # the library failed to load: report, don't crash `tilevm info`
        return f"unavailable ({exc})"
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return f"unavailable (nvrtcVersion returned {result})"
    try:
        release = metadata.version(NVRTC_PACKAGE)
    except metadata.PackageNotFoundError:
        return f"{major}.{minor} (not from the {NVRTC_PACKAGE} wheel)"
    return release if release.startswith(f"{major}.{minor}.") else f"{major}.{minor} ({release})"


def nvrtc_supported_archs() -> tuple[int, ...]:
    """The compute capabilities NVRTC can compile for, as numbers (``80`` for sm_80), ascending.

    Raises RuntimeError when NVRTC cannot be loaded or answers with an error.
    """
    from cuda.bindings import nvrtc

    result, archs = nvrtc.nvrtcGetSupportedArchs()
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcGetSupportedArchs returned {result}")
    return tuple(sorted(int(a) for a in archs))
