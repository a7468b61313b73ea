"""The binary cache of compiled kernels (DESIGN §7): one entry per kernel artifact, on disk under
``<cache dir>/kernels`` (``$TILEVM_CACHE_DIR`` or the user cache directory), shared by every
process that uses that directory.

**Key.** SHA-256 over everything that can change the binary (:func:`key_parts`): the Tile IR
text without source locations, the constants, the launch specialization, the target, the NVRTC
version and options, and a hash of tilevm's compiler sources (every file under ``tilevm/ir``,
``tilevm/frontend`` and ``tilevm/backend``: :func:`compiler_source_hash`, computed once per
process). Source locations are left out, so a kernel moved in its file hits; on a hit the
source-line comments and the report are rebuilt from the current IR (:func:`compile_cached`).

**Entry.** ``<key>.cubin`` and ``<key>.json``: the artifact's description
(:mod:`tilevm.runtime.artifact`), the PTX, NVRTC's log, ptxas's resources, the NVRTC options
the build used (a build that spilled is redone with more registers:
:mod:`tilevm.backend.cuda.spill_free`), the key's parts, and a SHA-256 of the JSON body (the
description carries the cubin's). Both files are written to
temporary names and renamed into place, the cubin first and the JSON last, under an exclusive
``flock`` on ``<key>.lock``, so that processes compiling one kernel at once compile it once:
the first builds, the others wait and load. A corrupt entry (a truncated cubin, garbled JSON, a
checksum that does not match) is rebuilt with a ``RuntimeWarning``, never loaded. A cache
directory that cannot be written gives one ``RuntimeWarning`` and the kernel is compiled in
memory. Metadata is JSON, never pickle.

**Maintenance** (the ``tilevm cache`` command): :func:`list_entries`, :func:`entry_info`,
:func:`verify`, :func:`clear`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilevm.backend.cache_dir import cache_dir, write_atomic
from tilevm.runtime.artifact import KernelArtifact, artifact_of

__all__ = ["COMPILER_PACKAGES", "FORMAT", "CacheEntry", "CacheEntryError", "artifact_cached",
           "cache_directory", "cache_key", "clear", "compile_cached", "compiler_source_hash",
           "entry_info", "key_parts", "list_entries", "specialization_text", "verify"]

FORMAT = 1

# The parts of the package whose sources decide what a compile produces (DESIGN §2): a change
# to any file under them misses the cache. ops/, runtime/, kernels/ and cli/ launch or call
# kernels but do not change a binary.
COMPILER_PACKAGES = ("ir", "frontend", "backend")

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # tilevm/


class CacheEntryError(ValueError):
    """A cache entry that is missing, corrupt, or does not match its key."""


def cache_directory() -> Path:
    """``kernels`` under tilevm's cache directory (``$TILEVM_CACHE_DIR`` or the user cache)."""
    return cache_dir() / "kernels"


# -- the key ----------------------------------------------------------------------------------


def compiler_source_hash(package_root: Path | None = None) -> str:
    """SHA-256 over the relative path and bytes of every file under ``ir/``, ``frontend/`` and
    ``backend/`` of ``package_root`` (default: the installed tilevm, hashed once per process),
    in path order; byte-code caches (``__pycache__``) are left out."""
    if package_root is None:
        return _installed_source_hash()
    return _source_hash(Path(package_root))


@functools.cache
def _installed_source_hash() -> str:
    return _source_hash(_PACKAGE_ROOT)


def _source_hash(root: Path) -> str:
    h = hashlib.sha256()
    for package in COMPILER_PACKAGES:
        files = sorted(p for p in (root / package).rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def specialization_text(spec: Any) -> str:
    """A canonical text of a :class:`~tilevm.backend.lower.Specialization` (the same in every
    process: the sizes known to be multiples of 16 are sorted)."""
    return json.dumps({"tensors": [[name, f.aligned, list(f.strides), f.offsets32]
                                   for name, f in spec.tensors],
                       "dims16": sorted(spec.dims16)}, separators=(",", ":"))


@functools.cache
def _nvrtc_version() -> str:
    from tilevm.backend.cuda.nvrtc_info import nvrtc_version

    return nvrtc_version()


# Tile IR text digests by kernel object: a repeated compile of one kernel prints and hashes its
# IR once. The kernel is kept with its digest, so its id is not reused while the entry lives.
_ir_digests: dict[int, tuple[Any, str, str]] = {}
_ir_lock = threading.Lock()


def _ir_text_and_digest(tile: Any) -> tuple[str, str]:
    with _ir_lock:
        found = _ir_digests.get(id(tile))
    if found is not None and found[0] is tile:
        return found[1], found[2]
    from tilevm.ir.tile.printer import print_kernel

    text = print_kernel(tile, locations=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    with _ir_lock:
        _ir_digests[id(tile)] = (tile, text, digest)
    return text, digest


def key_parts(tile: Any, spec: Any, target: Any) -> dict[str, str]:
    """What the key of ``tile`` (Tile IR) compiled under ``spec`` (a Specialization) for
    ``target`` (a :class:`~tilevm.backend.cuda.CudaTarget`) hashes, by name: ``tile_ir`` (the
    SHA-256 of the text without source locations), ``constants``, ``specialization``,
    ``target``, ``nvrtc`` (version), ``options`` (NVRTC's), ``compiler_sources`` and
    ``format`` (of the entry)."""
    from tilevm.backend.cuda import BASE_OPTIONS

    _, ir_digest = _ir_text_and_digest(tile)
    return {
        "format": str(FORMAT),
        "tile_ir": ir_digest,
        "constants": json.dumps([[k, repr(v)] for k, v in tile.constants]),
        "specialization": specialization_text(spec),
        "target": target.name,
        "nvrtc": _nvrtc_version(),
        "options": " ".join((*BASE_OPTIONS, target.nvrtc_option)),
        "compiler_sources": compiler_source_hash(),
    }


def cache_key(parts: dict[str, str]) -> str:
    """The hex SHA-256 of ``parts`` (as :func:`key_parts` gives them)."""
    h = hashlib.sha256()
    for name in sorted(parts):
        h.update(name.encode() + b"=" + parts[name].encode() + b"\0")
    return h.hexdigest()


# -- entries ----------------------------------------------------------------------------------


@dataclass
class _Entry:
    """What an entry holds: the artifact and what ``tilevm.compile`` gives besides it."""

    artifact: KernelArtifact
    ptx: str
    log: str
    resources: dict[str, Any]  # name -> KernelResources as JSON
    options: list[str]  # NVRTC's, as the build used them (a spilling build is redone)


def _paths(directory: Path, key: str) -> tuple[Path, Path, Path]:
    return directory / f"{key}.json", directory / f"{key}.cubin", directory / f"{key}.lock"


def _body_checksum(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read(directory: Path, key: str) -> tuple[dict[str, Any], bytes]:
    """The metadata and cubin of entry ``key``: :class:`FileNotFoundError` when it is absent,
    :class:`CacheEntryError` saying what is wrong when it is corrupt."""
    meta_path, cubin_path, _ = _paths(directory, key)
    text = meta_path.read_text()  # FileNotFoundError: no entry
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise CacheEntryError(f"the metadata is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CacheEntryError("the metadata is not a JSON object")
    if meta.get("checksum") != _body_checksum(meta):
        raise CacheEntryError("the metadata does not match its checksum")
    if meta.get("format") != FORMAT or meta.get("key") != key:
        raise CacheEntryError(f"the entry is of format {meta.get('format')!r} and key "
                              f"{str(meta.get('key'))[:16]}…, not this one's")
    try:
        cubin = cubin_path.read_bytes()
    except FileNotFoundError:
        raise CacheEntryError("the cubin is missing") from None
    if hashlib.sha256(cubin).hexdigest() != meta["description"].get("cubin_sha256"):
        raise CacheEntryError(f"the cubin ({len(cubin)} bytes) does not match its checksum")
    return meta, cubin


def _load(directory: Path, key: str) -> _Entry:
    meta, cubin = _read(directory, key)
    return _Entry(KernelArtifact(cubin, meta["description"]), meta["ptx"], meta["log"],
                  meta["resources"], list(meta["options"]))


def _store(directory: Path, key: str, parts: dict[str, str], ir_text: str,
           entry: _Entry) -> None:
    meta_path, cubin_path, _ = _paths(directory, key)
    description = entry.artifact.description
    meta: dict[str, Any] = {
        "format": FORMAT, "key": key, "kernel": description["name"],
        "target": description["target"], "created": time.time(), "parts": parts,
        "tile_ir_text": ir_text, "description": description, "ptx": entry.ptx,
        "log": entry.log, "resources": entry.resources, "options": entry.options,
    }
    meta["checksum"] = _body_checksum(meta)
    # The cubin first, the JSON last: an entry is complete once its JSON is in place.
    write_atomic(cubin_path, entry.artifact.cubin)
    write_atomic(meta_path, json.dumps(meta, sort_keys=True, indent=1).encode())


_unwritable_warned: set[str] = set()


def _warn_unwritable(directory: Path, error: OSError) -> None:
    if str(directory) in _unwritable_warned:
        return
    _unwritable_warned.add(str(directory))
    warnings.warn(f"the kernel cache {directory} cannot be written ({error.strerror or error}); "
                  "kernels are compiled in memory and not kept (set TILEVM_CACHE_DIR to a "
                  "writable directory)", RuntimeWarning, stacklevel=4)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` (created if needed) for the ``with`` block."""
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _lookup_or_build(parts: dict[str, str], ir_text: str,
                     build: Callable[[], _Entry]) -> tuple[_Entry, bool]:
    """The entry of ``parts``: loaded from disk when a valid one is there, else built, stored and
    returned. The second value says whether it came from disk."""
    key = cache_key(parts)
    directory = cache_directory()
    try:  # the common case, without the lock: entries are renamed into place whole
        return _load(directory, key), True
    except (OSError, CacheEntryError, KeyError, TypeError, AttributeError):
        pass
    meta_path, _, lock_path = _paths(directory, key)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = _locked(lock_path)
        lock.__enter__()
    except OSError as e:
        _warn_unwritable(directory, e)
        return build(), False
    try:
        try:  # another process may have built it while this one waited for the lock
            return _load(directory, key), True
        except FileNotFoundError:
            pass
        except (OSError, CacheEntryError, KeyError, TypeError, AttributeError) as e:
            # Writers hold the lock, so this is a corrupt entry, not one being written.
            warnings.warn(f"corrupt kernel cache entry {meta_path} ({e}); compiling the kernel "
                          "again", RuntimeWarning, stacklevel=3)
        entry = build()
        try:
            _store(directory, key, parts, ir_text, entry)
        except OSError as e:
            _warn_unwritable(directory, e)
        return entry, False
    finally:
        lock.__exit__(None, None, None)


def _entry_of(compiled: Any) -> _Entry:
    binary = compiled.binary
    return _Entry(artifact_of(compiled), binary.ptx, binary.log,
                  {name: r.to_json() for name, r in binary.resources.items()},
                  list(binary.options))


def artifact_cached(tile: Any, spec: Any, target: str) -> KernelArtifact:
    """The artifact of ``tile`` (Tile IR) under ``spec`` (a Specialization) for ``target``: from
    the cache when it holds it (nothing is lowered or compiled), else compiled and stored."""
    from tilevm.backend.cuda import cuda_target
    from tilevm.runtime.compile import compile_uncached

    tgt = cuda_target(target)
    parts = key_parts(tile, spec, tgt)
    ir_text, _ = _ir_text_and_digest(tile)
    entry, _ = _lookup_or_build(parts, ir_text,
                                lambda: _entry_of(compile_uncached(tile, tgt, spec)))
    return entry.artifact


def compile_cached(tile: Any, spec: Any, target: str) -> Any:
    """``tilevm.compile`` through the cache: a :class:`~tilevm.runtime.compile.CompiledKernel`.
    On a hit NVRTC does not run: the kernel is lowered again (which gives the layouts, the Thread
    IR, the report and the CUDA source with the kernel's current source lines) and the PTX,
    cubin, log and resources come from the entry."""
    from tilevm.backend.cuda import CudaBinary, KernelResources, cuda_target, emit_cuda
    from tilevm.backend.lower import lower
    from tilevm.runtime.compile import CompiledKernel, compile_uncached

    tgt = cuda_target(target)
    parts = key_parts(tile, spec, tgt)
    ir_text, _ = _ir_text_and_digest(tile)
    built: list[Any] = []

    def build() -> _Entry:
        built.append(compile_uncached(tile, tgt, spec))
        return _entry_of(built[0])

    entry, _ = _lookup_or_build(parts, ir_text, build)
    if built:
        return built[0]
    lowered = lower(tile, tgt.sm, spec)
    resources = {name: KernelResources.from_json(r) for name, r in entry.resources.items()}
    binary = CudaBinary(source=emit_cuda(lowered.thread, tgt), target=tgt,
                        options=tuple(entry.options), ptx=entry.ptx,
                        cubin=entry.artifact.cubin, log=entry.log, resources=resources)
    return CompiledKernel(tile.name, tgt.name, lowered, binary, tile)


# -- maintenance (the `tilevm cache` command) ---------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    """One entry as :func:`list_entries` sees it. ``kernel`` and ``target`` are ``"?"`` when
    the metadata cannot be read (:func:`verify` says why)."""

    key: str
    kernel: str
    target: str
    specialization: str
    size_bytes: int  # the cubin and the JSON together
    modified: float  # when the JSON was written, seconds since the epoch
    path: Path  # the JSON

    @property
    def age_seconds(self) -> float:
        return max(time.time() - self.modified, 0.0)


def _directory(directory: str | Path | None) -> Path:
    return cache_directory() if directory is None else Path(directory)


def list_entries(directory: str | Path | None = None) -> list[CacheEntry]:
    """Every entry of the cache (``directory``, default :func:`cache_directory`), newest first;
    an empty list when there is no cache."""
    folder = _directory(directory)
    out = []
    for meta_path in folder.glob("*.json") if folder.is_dir() else ():
        key = meta_path.stem
        cubin = meta_path.with_suffix(".cubin")
        try:
            stat = meta_path.stat()
            size = stat.st_size + (cubin.stat().st_size if cubin.exists() else 0)
        except OSError:
            continue  # removed meanwhile
        kernel = target = spec = "?"
        try:
            meta = json.loads(meta_path.read_text())
            kernel, target = str(meta["kernel"]), str(meta["target"])
            spec = _describe_spec(meta["description"]["specialization"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        out.append(CacheEntry(key, kernel, target, spec, size, stat.st_mtime, meta_path))
    return sorted(out, key=lambda e: e.modified, reverse=True)


def _describe_spec(spec: dict[str, Any]) -> str:
    from tilevm.backend.lower.specialization import Specialization, TensorFacts

    tensors = tuple((n, TensorFacts(f["aligned"], tuple(f["strides"]), f.get("offsets32", False)))
                    for n, f in spec["tensors"].items())
    return Specialization(tensors, frozenset(spec["dims16"])).describe().replace("\n", "; ")


def _find(key_prefix: str, folder: Path) -> str:
    keys = sorted(p.stem for p in folder.glob(f"{key_prefix}*.json")) if key_prefix else []
    if not keys:
        raise KeyError(f"no kernel cache entry {key_prefix!r} in {folder}")
    if len(keys) > 1:
        raise KeyError(f"{key_prefix!r} names {len(keys)} kernel cache entries; give more of "
                       "the key")
    return keys[0]


def entry_info(key_prefix: str, directory: str | Path | None = None) -> dict[str, Any]:
    """All that is known of the entry whose key starts with ``key_prefix``: ``key``, ``kernel``,
    ``target``, ``created`` (epoch seconds), ``parts`` (the key's parts), ``tile_ir_text``
    (without locations), ``description`` (the artifact's), ``resources`` (ptxas's), ``files``
    (path -> bytes), ``valid`` and ``problem`` (None when valid). Raises ``KeyError`` for a
    prefix that names no entry or several."""
    folder = _directory(directory)
    key = _find(key_prefix, folder)
    meta_path, cubin_path, _ = _paths(folder, key)
    info: dict[str, Any] = {"key": key}
    try:
        meta = json.loads(meta_path.read_text())
        for name in ("kernel", "target", "created", "parts", "tile_ir_text", "description",
                     "resources"):
            info[name] = meta.get(name)
    except (OSError, ValueError) as e:
        info["problem"] = f"the metadata cannot be read ({e})"
    info["files"] = {str(p): p.stat().st_size for p in (meta_path, cubin_path) if p.exists()}
    problem = _problem(folder, key)
    info["valid"], info["problem"] = problem is None, problem
    return info


def _problem(folder: Path, key: str) -> str | None:
    try:
        _load(folder, key)
    except FileNotFoundError:
        return "the metadata is missing"
    except (OSError, CacheEntryError, KeyError, TypeError, AttributeError) as e:
        return str(e) or type(e).__name__
    return None


def verify(directory: str | Path | None = None) -> list[tuple[str, str | None]]:
    """Check every entry's checksums: ``(key, problem)`` per entry, ``problem`` None when the
    entry is valid. A cubin without its JSON (a writer that died between the two renames) is
    listed as a problem too; neither is ever loaded."""
    folder = _directory(directory)
    if not folder.is_dir():
        return []
    keys = {p.stem for p in folder.glob("*.json")}
    out = [(key, _problem(folder, key)) for key in sorted(keys)]
    out += [(p.stem, "a cubin without its metadata") for p in sorted(folder.glob("*.cubin"))
            if p.stem not in keys]
    return out


def clear(directory: str | Path | None = None, *, compiler_caches: bool = False) -> int:
    """Remove every entry (and lock file) of the kernel cache; with ``compiler_caches`` also the
    NVRTC and CPU-backend JIT caches beside it (``nvrtc/``, ``cpu-jit/``). Returns the number of
    files removed. Tuning results are not touched."""
    folder = _directory(directory)
    folders = [folder]
    if compiler_caches:
        folders += [folder.parent / "nvrtc", folder.parent / "cpu-jit"]
    removed = 0
    for f in folders:
        if not f.is_dir():
            continue
        for path in f.iterdir():
            if not path.is_file() or path.suffix not in (".json", ".cubin", ".lock", ".o", ".tmp"):
                continue
            # A writer's temporary file is left alone while it may still be renamed into place.
            if path.suffix == ".tmp" and time.time() - path.stat().st_mtime < 3600:
                continue
            path.unlink(missing_ok=True)
            removed += 1
    return removed
