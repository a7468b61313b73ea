"""The golden outputs of the per-instruction conformance kernels: one ``.npz`` file.

Keys: ``<launch>/<buffer>`` (the recorded output bytes of each checked buffer, in the buffer's
own dtype), ``<launch>/__inputs__`` (the SHA-256 of the launch's inputs, :func:`inputs_digest`,
so that a test can tell that the goldens belong to the inputs it makes), and the metadata
``__source__`` (``"cpu"`` for the CPU backend's outputs, ``"gpu:<device name>"`` for a GPU's),
``__recorded__`` (UTC time) and ``__commit__`` (the tilevm commit of the bundle).

This module imports only numpy and the standard library: ``bench/gpu_check.py`` loads it by file
path on the GPU machine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["GOLDEN_FILE", "Goldens", "inputs_digest", "read_goldens", "write_goldens"]

GOLDEN_FILE = "conformance.npz"
_META = ("__source__", "__recorded__", "__commit__")


def inputs_digest(buffers: dict[str, np.ndarray]) -> str:
    """SHA-256 over every buffer's name, shape, dtype and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(buffers):
        a = np.ascontiguousarray(buffers[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class Goldens:
    """Recorded outputs: :attr:`outputs` ``{launch: {buffer: array}}``, :attr:`digests`
    ``{launch: inputs digest}``, :attr:`source`, :attr:`recorded`, :attr:`commit`."""

    def __init__(self, outputs: dict[str, dict[str, np.ndarray]], digests: dict[str, str],
                 source: str, recorded: str = "", commit: str = "") -> None:
        self.outputs, self.digests = outputs, digests
        self.source, self.recorded, self.commit = source, recorded, commit

    @property
    def on_gpu(self) -> bool:
        """Whether a GPU recorded them (``source`` ``"gpu:..."``)."""
        return self.source.startswith("gpu:")


def write_goldens(directory: Path | str, goldens: Goldens) -> Path:
    """Write ``goldens`` to ``directory/conformance.npz`` (compressed); returns the path."""
    path = Path(directory) / GOLDEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "__source__": np.array(goldens.source), "__recorded__": np.array(goldens.recorded),
        "__commit__": np.array(goldens.commit)}
    for launch, buffers in sorted(goldens.outputs.items()):
        arrays[f"{launch}/__inputs__"] = np.array(goldens.digests[launch])
        for name, data in sorted(buffers.items()):
            arrays[f"{launch}/{name}"] = np.ascontiguousarray(data)
    np.savez_compressed(path, **arrays)
    return path


def read_goldens(directory: Path | str) -> Goldens:
    """Read ``directory/conformance.npz`` (raises ``FileNotFoundError`` if absent)."""
    outputs: dict[str, dict[str, np.ndarray]] = {}
    digests: dict[str, str] = {}
    with np.load(Path(directory) / GOLDEN_FILE, allow_pickle=False) as data:
        meta = {k: str(data[k]) for k in _META if k in data}
        for key in data.files:
            if key in _META:
                continue
            launch, _, name = key.partition("/")
            if name == "__inputs__":
                digests[launch] = str(data[key])
            else:
                outputs.setdefault(launch, {})[name] = data[key]
    return Goldens(outputs, digests, meta.get("__source__", "unknown"),
                   meta.get("__recorded__", ""), meta.get("__commit__", ""))
