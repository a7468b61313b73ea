"""LLVM JIT of a Thread IR kernel, with compiled objects cached on disk.

The cache key hashes the Thread IR text, the llvmlite and LLVM versions, the host CPU and its
features, the optimisation level and the CPU backend's own sources. Entries live under
``$TILEVM_CACHE_DIR/cpu-jit`` (default: the user cache directory), are written atomically
(temporary file + rename) with a SHA-256 checksum, and a corrupt entry is rebuilt with a
warning, never loaded. Metadata is JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tilevm.backend.cache_dir import cache_dir, write_atomic
from tilevm.backend.cpu.codegen import Layout, generate
from tilevm.ir.thread.printer import dump
from tilevm.ir.thread.stmts import Kernel

__all__ = ["OPT_LEVEL", "PASSES", "JitResult", "cache_directory", "cache_key",
           "environment_parts", "jit"]

# The optimisation is moderate on purpose: JIT time dominates test time. Warp-vector code needs
# its registers promoted from allocas to SSA (sroa) and its branches on constant masks folded
# (simplifycfg); instruction selection then runs at LLVM's -O0 (OPT_LEVEL), which on warp-vector
# code costs little run time (the work is in gathers, scatters and helpers) and saves about a
# fifth of the JIT time of -O1 (bench/jit_time.py).
PASSES = ("sroa", "simplify_cfg")
OPT_LEVEL = 0

_lock = threading.Lock()


@dataclass
class JitResult:
    """A loaded kernel: the address of ``tv_run``, the workspace layout and what keeps the code
    alive (the execution engine)."""

    address: int
    layout: Layout
    engine: Any
    cached: bool
    seconds: float


def cache_directory() -> Path:
    """``cpu-jit`` under tilevm's cache directory (``$TILEVM_CACHE_DIR`` or the user cache)."""
    return cache_dir() / "cpu-jit"


@functools.cache
def _llvm() -> Any:
    from llvmlite import binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


def _new_target_machine() -> Any:
    """A target machine for this host. Not shared: an execution engine takes ownership of the
    one it is created with and frees it with itself."""
    llvm = _llvm()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=OPT_LEVEL, codemodel="jitdefault")


def environment_parts() -> dict[str, str]:
    """What besides the Thread IR text decides the object code, by name: the llvmlite and LLVM
    versions, the process triple, the host CPU and its features, the optimisation level and
    passes, and the CPU backend's own sources."""
    import llvmlite

    llvm = _llvm()
    h = hashlib.sha256()
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    return {"llvmlite": llvmlite.__version__, "llvm": str(llvm.llvm_version_info),
            "triple": llvm.get_process_triple(), "cpu": llvm.get_host_cpu_name(),
            "features": llvm.get_host_cpu_features().flatten(), "opt": str(OPT_LEVEL),
            "passes": ",".join(PASSES), "cpu_backend_sources": h.hexdigest()}


@functools.cache
def _environment_key() -> str:
    h = hashlib.sha256()
    for name, value in sorted(environment_parts().items()):
        h.update(f"{name}={value}".encode() + b"\0")
    return h.hexdigest()


def cache_key(thread_ir_text: str, sanitize: bool = False) -> str:
    """The key of the object compiled from ``thread_ir_text`` (the Thread IR as
    :func:`tilevm.ir.thread.printer.dump` prints it: no source locations, which the object does
    not hold) on this host: a hex SHA-256 over the text, ``sanitize`` and
    :func:`environment_parts` (computed once per process)."""
    text = thread_ir_text + ("\n; sanitized" if sanitize else "")
    return hashlib.sha256((_environment_key() + "\0" + text).encode()).hexdigest()


def _compile(kernel: Kernel, sanitize: bool = False) -> tuple[bytes, Layout]:
    from tilevm.backend.cpu.helpers_ir import CPA_LANE_BYTES, helpers_for

    llvm = _llvm()
    text, layout = generate(kernel, llvm.get_process_triple(), sanitize)
    mod = llvm.parse_assembly(text)
    helpers = llvm.parse_assembly(helpers_for(text))
    helpers.triple = mod.triple
    mod.link_in(helpers)
    if sanitize:  # sanitizer: its helpers, in sanitized modules only
        from tilevm.backend.cpu.sanitizer_ir import helpers_module

        san = llvm.parse_assembly(helpers_module(mod.triple, CPA_LANE_BYTES))
        mod.link_in(san)
    mod.verify()
    tm = _new_target_machine()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=0))
    fpm = llvm.create_new_function_pass_manager()
    for name in PASSES:
        getattr(fpm, f"add_{name}_pass")()
    for fn in mod.functions:
        if not fn.is_declaration:
            fpm.run(fn, pb)
    return tm.emit_object(mod), layout


def _load_cached(obj_path: Path, meta_path: Path) -> tuple[bytes, Layout] | None:
    try:
        meta = json.loads(meta_path.read_text())
        data = obj_path.read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        warnings.warn(f"corrupt CPU JIT cache entry {obj_path}; rebuilding it", stacklevel=3)
        return None
    return data, Layout(**meta["layout"])


def jit(kernel: Kernel, sanitize: bool = False) -> JitResult:
    """Compile ``kernel`` for this host (or load it from the disk cache) and load the code;
    ``sanitize`` compiles the sanitizer's checked variant (its own cache entry)."""
    t0 = time.perf_counter()
    key = cache_key(dump(kernel), sanitize)
    directory = cache_directory()
    obj_path, meta_path = directory / f"{key}.o", directory / f"{key}.json"
    found = _load_cached(obj_path, meta_path) if meta_path.exists() else None
    cached = found is not None
    if found is None:
        with _lock:  # one LLVM compilation at a time per process
            data, layout = _compile(kernel, sanitize)
        write_atomic(obj_path, data)
        meta = {"sha256": hashlib.sha256(data).hexdigest(), "layout": asdict(layout),
                "kernel": kernel.name}
        write_atomic(meta_path, json.dumps(meta).encode())
    else:
        data, layout = found
    llvm = _llvm()
    with _lock:
        empty = llvm.parse_assembly("")
        empty.triple = llvm.get_process_triple()
        engine = llvm.create_mcjit_compiler(empty, _new_target_machine())
        obj = llvm.ObjectFileRef.from_data(data)
        engine.add_object_file(obj)
        engine.finalize_object()
        address = engine.get_function_address("tv_run")
    return JitResult(address, layout, (engine, obj), cached, time.perf_counter() - t0)
