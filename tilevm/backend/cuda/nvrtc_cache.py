"""A disk cache of NVRTC results, so that the same source is compiled once per cache directory.

Each entry is two files under ``<cache_dir>/nvrtc/``: ``<key>.cubin`` and ``<key>.json`` (PTX,
log, options, parsed resources, and SHA-256 checksums of the cubin and of the JSON body). Both are
written to temporary files and renamed into place, the JSON last, so a reader sees a whole entry
or none; an entry that fails its checksums is reported with a warning and compiled again. Metadata
is JSON, never pickle.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tilevm.backend.cache_dir import write_atomic
from tilevm.backend.cuda.nvrtc_info import nvrtc_version
from tilevm.backend.cuda.resources import KernelResources
from tilevm.backend.cuda.targets import CudaTarget

if TYPE_CHECKING:
    from tilevm.backend.cuda.nvrtc_compile import CudaBinary

__all__ = ["cache_key", "load", "store"]

_FORMAT = 1


def cache_key(source: str, target: CudaTarget, options: tuple[str, ...], name: str) -> str:
    """A hex digest of everything that can change NVRTC's output for this compile."""
    parts = [f"format={_FORMAT}", f"nvrtc={nvrtc_version()}", f"arch={target.name}",
             f"name={name}", *(f"option={o}" for o in options), "source", source]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    folder = cache_dir / "nvrtc"
    return folder / f"{key}.json", folder / f"{key}.cubin"


def _body_checksum(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load(cache_dir: Path, key: str, source: str, target: CudaTarget) -> CudaBinary | None:
    """The cached result for ``key``, or None when absent or corrupt (a warning says which)."""
    # Imported here: nvrtc_compile imports this module.
    from tilevm.backend.cuda.nvrtc_compile import CudaBinary

    meta_path, cubin_path = _paths(cache_dir, key)
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        cubin = cubin_path.read_bytes()
        if meta.get("checksum") != _body_checksum(meta):
            raise ValueError("metadata checksum mismatch")
        if hashlib.sha256(cubin).hexdigest() != meta["cubin_sha256"]:
            raise ValueError("cubin checksum mismatch")
        resources = {name: KernelResources.from_json(r) for name, r in meta["resources"].items()}
        return CudaBinary(source=source, target=target, options=tuple(meta["options"]),
                          ptx=meta["ptx"], cubin=cubin, log=meta["log"], resources=resources)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"corrupt NVRTC cache entry {meta_path} ({exc}); compiling again",
                      RuntimeWarning, stacklevel=3)
        return None


def store(cache_dir: Path, key: str, binary: CudaBinary) -> None:
    """Write ``binary`` under ``key``. Concurrent writers of one key are harmless: each rename
    installs a whole, identical entry."""
    meta_path, cubin_path = _paths(cache_dir, key)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": _FORMAT,
        "arch": binary.target.name,
        "options": list(binary.options),
        "ptx": binary.ptx,
        "log": binary.log,
        "resources": {n: r.to_json() for n, r in binary.resources.items()},
        "cubin_sha256": hashlib.sha256(binary.cubin).hexdigest(),
    }
    meta["checksum"] = _body_checksum(meta)
    write_atomic(cubin_path, binary.cubin)
    write_atomic(meta_path, json.dumps(meta, sort_keys=True, indent=1).encode())
