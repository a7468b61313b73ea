"""The tuning database (DESIGN §7): which configuration of an autotuned kernel won on which GPU.

One JSON file per kernel under ``<cache_dir>/tuning/`` (``$TILEVM_CACHE_DIR`` overrides the cache
dir), each holding a list of entries. An entry is found by its *identity* — the kernel's qualified
name and a hash of its source, a hash of its constant space, the size bucket of the call (the
tuning key), the other constants of the call — and its *fingerprint* — GPU name, compute
capability, driver version and tilevm version. An entry whose fingerprint differs from the GPU's
is ignored, never deleted: the same cache directory may serve several GPUs and driver versions.

Files are written whole (:func:`~tilevm.backend.cache_dir.write_atomic`) under a file lock, so
concurrent tuners keep each other's entries; a file that cannot be read or parsed is ignored with
a warning (and rewritten by the next tuning run), never a crash.

The same format is the export format: :func:`export_tuning` writes entries to a file a user can
commit, :func:`load_tuning` loads one into the process so a deployment needs no tuning run.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import re
import textwrap
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tilevm.backend.cache_dir import cache_dir, write_atomic

__all__ = ["FORMAT", "Fingerprint", "TuningDatabase", "TuningEntry", "TuningFileError",
           "canonical", "clear_loaded", "decode_config", "encode_config", "export_tuning",
           "kernel_source_hash", "load_tuning", "loaded_entries"]

FORMAT = 1


class TuningFileError(ValueError):
    """A tuning file given by the user (:func:`load_tuning`) that cannot be read."""


@dataclass(frozen=True)
class Fingerprint:
    """What a measured time depends on besides the kernel: the GPU, its driver, tilevm."""

    gpu: str
    compute_capability: str  # "9.0"
    driver: str  # "13.0"
    tilevm: str

    def __str__(self) -> str:
        return (f"{self.gpu} (compute capability {self.compute_capability}), driver "
                f"{self.driver}, tilevm {self.tilevm}")


@dataclass(frozen=True)
class TuningEntry:
    """One tuning result.

    Attributes:
        kernel: the kernel's qualified name (``matmul``, ``Model.make.<locals>.k``).
        source_hash: :func:`kernel_source_hash` of its source.
        space_hash: a hash of the candidate configurations.
        key: the size bucket, e.g. ``{"m": 128, "k": 88, "n": 72}``.
        constants: the call's other constants (JSON-encoded, see :func:`encode_config`).
        fingerprint: the GPU, driver and tilevm the result was measured with.
        config: the chosen constants.
        arch: the target the candidates were compiled for.
        time_ms: the chosen configuration's median time.
        candidates: how many configurations the space had.
    """

    kernel: str
    source_hash: str
    space_hash: str
    key: dict[str, int]
    constants: dict[str, Any]
    fingerprint: Fingerprint
    config: dict[str, Any]
    arch: str
    time_ms: float | None = None
    candidates: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def identity(self) -> tuple[str, ...]:
        """Everything but the fingerprint that must match for the entry to apply."""
        return (self.kernel, self.source_hash, self.space_hash, canonical(self.key),
                canonical(self.constants))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fingerprint"] = asdict(self.fingerprint)
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> TuningEntry:
        """The entry ``data`` describes; ``KeyError``, ``TypeError`` or ``ValueError`` when
        malformed."""
        fields = dict(data)
        fields["fingerprint"] = Fingerprint(**fields["fingerprint"])
        fields["key"] = {str(k): int(v) for k, v in fields["key"].items()}
        if not isinstance(fields["config"], dict) or not isinstance(fields["constants"], dict):
            raise TypeError("config and constants must be objects")
        return TuningEntry(**fields)


def canonical(value: Any) -> str:
    """``value`` as compact JSON with sorted keys: how an identity holds a key or constants."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- constants as JSON ------------------------------------------------------------------------


def encode_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as JSON values: numbers, strings, booleans and None as they are, tilevm dtypes
    as ``{"dtype": name}``; a ``TypeError`` names any other constant."""
    from tilevm.ir.dtypes import DType

    out: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, DType):
            out[name] = {"dtype": value.name}
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            raise TypeError(f"constant {name}={value!r}: a tuned constant must be a number, "
                            "string, boolean or tilevm dtype")
    return out


def decode_config(config: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`encode_config`."""
    from tilevm.ir.dtypes import dtype

    return {name: dtype(v["dtype"]) if isinstance(v, dict) else v for name, v in config.items()}


def kernel_source_hash(fn: Any) -> str:
    """A hash of a kernel function's source text (its position in the file does not count);
    of its bytecode when the source is unavailable."""
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr(code.co_code if code is not None else fn)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- files ------------------------------------------------------------------------------------


def _read_entries(path: Path) -> list[TuningEntry]:
    """The entries of ``path``; ``ValueError`` naming what is wrong when it is not a tuning
    file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or data.get("tilevm_tuning") != FORMAT:
        raise ValueError(f"{path} is not a tilevm tuning file of format {FORMAT}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'entries' is not a list")
    out = []
    for i, raw in enumerate(entries):
        try:
            out.append(TuningEntry.from_json(raw))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{path}: entry {i} is malformed ({e!r})") from None
    return out


def _write_entries(path: Path, entries: Iterable[TuningEntry]) -> None:
    body = {"tilevm_tuning": FORMAT, "entries": [e.to_json() for e in entries]}
    write_atomic(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock file (``filelock``; a thread lock when it is not installed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from filelock import FileLock
    except ImportError:  # a GPU machine's own Python may lack it
        with _thread_lock:
            yield
        return
    with FileLock(str(path) + ".lock", timeout=60):
        yield


_thread_lock = threading.Lock()


def _merge(old: Iterable[TuningEntry], new: Iterable[TuningEntry]) -> list[TuningEntry]:
    """``old`` with each of ``new`` replacing the entry of the same identity and fingerprint."""
    by_id = {(e.identity, e.fingerprint): e for e in old}
    for e in new:
        by_id[(e.identity, e.fingerprint)] = e
    return list(by_id.values())


class TuningDatabase:
    """The tuning results under ``directory`` (default ``<cache_dir>/tuning``)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir() / "tuning"

    def path(self, kernel: str) -> Path:
        """The file holding ``kernel``'s entries."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", kernel).strip("._") or "kernel"
        return self.directory / f"{safe}.json"

    def entries(self, kernel: str) -> list[TuningEntry]:
        """Every entry of ``kernel``, whatever its fingerprint; none (with a warning) when its
        file is corrupt."""
        path = self.path(kernel)
        if not path.exists():
            return []
        try:
            return _read_entries(path)
        except ValueError as e:
            warnings.warn(f"tilevm: ignoring the corrupt tuning database file {path} ({e}); "
                          "the next tuning run rewrites it", RuntimeWarning, stacklevel=2)
            return []

    def all_entries(self) -> list[TuningEntry]:
        """Every entry of every kernel (corrupt files are skipped with a warning)."""
        out: list[TuningEntry] = []
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.json")):
                out.extend(_entries_or_warn(path))
        return out

    def lookup(self, identity: tuple[str, ...], fingerprint: Fingerprint) -> TuningEntry | None:
        """The entry for ``identity`` measured with ``fingerprint``, if any."""
        for e in self.entries(identity[0]):
            if e.identity == identity and e.fingerprint == fingerprint:
                return e
        return None

    def store(self, entry: TuningEntry) -> Path:
        """Add ``entry`` (replacing one of the same identity and fingerprint), atomically and
        under the file's lock; entries of other fingerprints are kept."""
        path = self.path(entry.kernel)
        with _locked(path):
            _write_entries(path, _merge(self.entries(entry.kernel), [entry]))
        return path


def _entries_or_warn(path: Path) -> list[TuningEntry]:
    try:
        return _read_entries(path)
    except ValueError as e:
        warnings.warn(f"tilevm: ignoring the corrupt tuning file {path} ({e})", RuntimeWarning,
                      stacklevel=3)
        return []


# -- export and import ------------------------------------------------------------------------

_loaded: list[TuningEntry] = []
_loaded_lock = threading.Lock()


def export_tuning(path: str | Path, entries: Iterable[TuningEntry] | None = None,
                  kernel: str | None = None, merge: bool = True) -> int:
    """Write tuning results to ``path`` (a JSON file to commit with the code that uses it);
    returns how many entries the file holds.

    ``entries``: the results to write (e.g. ``[result.entry]`` of a :func:`tune` run); default:
    every entry of the tuning database, or those of the kernel named ``kernel`` (qualified
    name). With ``merge``, entries already in the file are kept unless replaced."""
    path = Path(path)
    if entries is None:
        entries = TuningDatabase().all_entries()
    chosen = [e for e in entries if kernel is None or e.kernel == kernel]
    with _locked(path):
        old: list[TuningEntry] = []
        if merge and path.exists():
            try:
                old = _read_entries(path)
            except ValueError as e:
                raise TuningFileError(f"export_tuning: {e}; remove the file or pass "
                                      "merge=False") from None
        merged = _merge(old, chosen)
        _write_entries(path, merged)
    return len(merged)


def load_tuning(path: str | Path) -> int:
    """Load the tuning results exported to ``path`` into this process: calls of the kernels they
    describe, on a GPU of the same fingerprint, use them without tuning. Returns the number of
    entries loaded. Raises :class:`TuningFileError` naming the file when it cannot be read."""
    try:
        entries = _read_entries(Path(path))
    except ValueError as e:
        raise TuningFileError(f"load_tuning: {e}") from None
    with _loaded_lock:
        _loaded[:] = _merge(_loaded, entries)
    return len(entries)


def loaded_entries() -> list[TuningEntry]:
    """The entries loaded by :func:`load_tuning` (a copy)."""
    with _loaded_lock:
        return list(_loaded)


def clear_loaded() -> None:
    """Forget what :func:`load_tuning` loaded."""
    with _loaded_lock:
        _loaded.clear()
