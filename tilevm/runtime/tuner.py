"""Tuning one autotuned kernel for one size bucket (DESIGN §7, docs/tuning.md).

:func:`tune` takes the candidates of the kernel's space through these steps, recording each one's
fate in a :class:`Candidate`:

1. the space's ``prune`` predicate (status ``pruned``);
2. Tile IR in this process, then lowering and NVRTC for the target in parallel worker processes
   (a ``spawn`` pool of at most ``os.cpu_count()`` workers; status ``error`` when it fails);
3. static resources from ptxas (:func:`prune_reason`: registers, shared memory; status
   ``pruned``); spills (status ``spills``) are kept aside and used only when nothing else is left;
4. with a GPU (a :class:`~tilevm.runtime.tuning_device.TuningDevice`): each survivor is run on
   random inputs and its outputs checked against the reference (status ``wrong``), then timed
   (status ``timed``): outputs reset before every run, the L2 flushed, inputs rotated across
   copies, CUDA events, the median; the fastest is chosen and written to the tuning database;
5. without one: the static heuristic (:mod:`tilevm.runtime.heuristic`) chooses among the
   survivors (status ``fits``).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import statistics
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.types import TensorType
from tilevm.runtime.tuning_db import Fingerprint, TuningDatabase, TuningEntry, encode_config

__all__ = ["Candidate", "CandidateResources", "ProgressBar", "TimingSettings", "TuningError",
           "TuningResult", "compile_candidates", "prune_reason", "random_arguments", "tune"]

MAX_REGISTERS = 255
REGISTERS_PER_SM = 65536
MAX_STATIC_SHARED = 48 * 1024

# progress(stage, done, total): stage is "compile" (per candidate compiled) or "measure" (per
# candidate checked and timed on the GPU).
Progress = Callable[[str, int, int], None]


class TuningError(RuntimeError):
    """No candidate survived tuning; the message holds the table of candidates."""


@dataclass(frozen=True)
class CandidateResources:
    """A compiled candidate's static resources: per thread ``registers``, ``spills`` (bytes of
    spill stores and loads) and ``stack`` (bytes); per block ``static_shared`` (ptxas),
    ``dynamic_shared`` (tilevm's buffers) and ``warps``."""

    registers: int
    spills: int
    stack: int
    static_shared: int
    dynamic_shared: int
    warps: int

    @property
    def shared(self) -> int:
        return self.static_shared + self.dynamic_shared


def prune_reason(resources: CandidateResources, arch: str) -> str | None:
    """Why a candidate with ``resources`` cannot run well on ``arch``, or None when it fits:
    more than 255 registers per thread; ceil(regs/8)·8 × 32 × warps above the 65536 registers of
    an SM; static shared memory above 48 KB; static and dynamic shared memory above the target's
    opt-in limit (163 KB on sm_80, 99 KB on sm_86/89, 227 KB on sm_90). Spills are not judged
    here (see :func:`tune`)."""
    from tilevm.backend.cuda.targets import cuda_target

    r = resources
    if r.registers > MAX_REGISTERS:
        return f"{r.registers} registers per thread > {MAX_REGISTERS}"
    block_registers = math.ceil(r.registers / 8) * 8 * 32 * r.warps
    if block_registers > REGISTERS_PER_SM:
        return (f"registers: ceil({r.registers}/8)·8 × 32 × {r.warps} warps = {block_registers}"
                f" > {REGISTERS_PER_SM}")
    if r.static_shared > MAX_STATIC_SHARED:
        return f"static shared memory {r.static_shared} bytes > {MAX_STATIC_SHARED}"
    limit = cuda_target(arch).max_shared_bytes
    if r.shared > limit:
        return f"shared memory {r.shared} bytes > {limit} on {arch}"
    return None


@dataclass
class Candidate:
    """One configuration and what became of it (``status``: ``pruned``, ``error``, ``spills``,
    ``wrong``, ``timed`` (measured), ``fits`` (not measured: no GPU); ``reason`` says why)."""

    index: int
    config: dict[str, Any]
    status: str = "pending"
    reason: str = ""
    resources: CandidateResources | None = None
    blocks: int | None = None  # blocks in the grid at the key's sizes
    time_ms: float | None = None
    times_ms: list[float] = field(default_factory=list, repr=False)
    chosen: bool = False
    artifact: Any = field(default=None, repr=False)
    ir: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        r = self.resources
        return {"config": encode_config(self.config), "status": self.status,
                "reason": self.reason, "chosen": self.chosen, "time_ms": self.time_ms,
                "blocks": self.blocks,
                "resources": None if r is None else {
                    "registers": r.registers, "spills": r.spills, "stack": r.stack,
                    "static_shared": r.static_shared, "dynamic_shared": r.dynamic_shared,
                    "warps": r.warps}}


@dataclass
class TuningResult:
    """What :func:`tune` found: every candidate, the chosen one, and where it was recorded.

    ``source`` is ``"tuned"`` (measured on a GPU) or ``"heuristic"`` (no GPU: the static
    heuristic chose). ``entry`` is the tuning-database entry (tuned only), ``db_path`` the file
    it was written to (None when not written)."""

    kernel: str
    key: dict[str, int]
    dims: dict[str, int]
    arch: str
    source: str
    candidates: list[Candidate]
    fingerprint: Fingerprint | None = None
    entry: TuningEntry | None = None
    db_path: Path | None = None

    @property
    def best(self) -> Candidate:
        return next(c for c in self.candidates if c.chosen)

    @property
    def config(self) -> dict[str, Any]:
        """The chosen constants."""
        return dict(self.best.config)

    def table(self) -> str:
        """The candidates as a text table (the best marked ``*``), one line each."""
        names = list(dict.fromkeys(n for c in self.candidates for n in c.config))
        head = [*names, "regs", "spill", "shared", "threads", "blocks", "status", "ms", "why"]
        rows = []
        for c in self.candidates:
            r = c.resources
            res = (["-"] * 4 if r is None else
                   [str(r.registers), str(r.spills), str(r.shared), str(32 * r.warps)])
            rows.append([*(_text(c.config.get(n, "")) for n in names), *res,
                         "-" if c.blocks is None else str(c.blocks),
                         c.status + (" *" if c.chosen else ""),
                         "-" if c.time_ms is None else f"{c.time_ms:.4f}", c.reason])
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip()
                 for row in [head, *rows]]
        where = f"{self.fingerprint}" if self.fingerprint else f"{self.arch}, no GPU"
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        how = "measured" if self.source == "tuned" else "static heuristic"
        return f"{self.kernel} [{key}] on {where} ({how})\n" + "\n".join(lines)

    def export(self, path: str | Path) -> int:
        """Add this run's result to the tuning file ``path`` (:func:`~tilevm.export_tuning`);
        returns the number of entries the file holds. A ``ValueError`` when nothing was
        measured (the heuristic's choice is not a tuning result)."""
        from tilevm.runtime.tuning_db import export_tuning

        if self.entry is None:
            raise ValueError(f"{self.kernel}: nothing to export: no GPU measured the candidates "
                             f"(the static heuristic chose for {self.arch})")
        return export_tuning(path, [self.entry])

    def to_json(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "key": self.key, "dims": self.dims, "arch": self.arch,
                "source": self.source, "config": encode_config(self.config),
                "fingerprint": None if self.fingerprint is None else vars(self.fingerprint),
                "candidates": [c.to_json() for c in self.candidates]}


def _text(value: Any) -> str:
    return getattr(value, "name", None) or str(value)


@dataclass(frozen=True)
class TimingSettings:
    """How candidates are measured: ``repeats`` timed runs (the median counts), after
    ``warmup`` untimed ones; inputs rotated across ``input_copies`` copies; random inputs drawn
    with ``seed``."""

    warmup: int = 1
    repeats: int = 10
    input_copies: int = 3
    seed: int = 0


class ProgressBar:
    """A progress callback drawing ``stage [#####.....] done/total`` on ``stream`` (stderr)."""

    def __init__(self, label: str = "", stream: Any = None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream, width
        self._stage: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        stream = self.stream or sys.stderr
        if stage != self._stage and self._stage is not None:
            stream.write("\n")
        self._stage = stage
        filled = self.width * done // max(total, 1)
        stream.write(f"\r{self.label}{stage:8} [{'#' * filled}{'.' * (self.width - filled)}] "
                     f"{done}/{total}")
        if done == total:
            stream.write("\n")
            self._stage = None
        stream.flush()


# -- arguments --------------------------------------------------------------------------------


def random_arguments(kernel: Any, dims: dict[str, int], scalars: dict[str, Any] | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """Arguments for ``kernel`` (Tile IR) at sizes ``dims``, by parameter name, every tensor a
    :class:`HostTensor`: tensors it writes are zeros (what a run that resets its outputs starts
    from), the others random as ``tilevm run`` makes them
    (:func:`tilevm.runtime.random_inputs.random_arguments`); scalars from ``scalars``, else 1.
    A ``ValueError`` names the dimensions without a size."""
    from tilevm.frontend.arguments import _written_params
    from tilevm.runtime.random_inputs import random_arguments as random_values

    given = dict(scalars or {})
    for p in kernel.params:
        if not isinstance(p.type, TensorType):
            given.setdefault(p.name, 1.0 if p.type.dtype.is_float else 1)
    values = random_values(kernel, dims, given, seed)
    written = _written_params(kernel)
    out: dict[str, Any] = {}
    for p, value in zip(kernel.params, values, strict=True):
        if not isinstance(p.type, TensorType):
            out[p.name] = value
        elif p.name in written:
            out[p.name] = HostTensor.empty(value.shape, p.type.dtype)
        else:
            out[p.name] = (value if isinstance(value, HostTensor)
                           else HostTensor.from_numpy(value, p.type.dtype))
    return out


def _copy(t: HostTensor) -> HostTensor:
    return HostTensor(t.data.copy(), t.dtype, t.shape, t.strides, t.offset)


# -- compiling --------------------------------------------------------------------------------


def _compile_one(tile_ir: Any, arch: str, spec: Any) -> dict[str, Any]:
    """Lower and compile one candidate (in a worker process): the artifact's parts and the
    resources, or the error's message."""
    from tilevm.frontend.diagnostics import CompileError
    from tilevm.runtime.artifact import artifact_of
    from tilevm.runtime.compile import compile_kernel

    try:
        compiled = compile_kernel(tile_ir, arch, spec)
        artifact = artifact_of(compiled)
    except CompileError as e:
        return {"error": str(e).strip().splitlines()[0]}
    except Exception as e:  # a bug or an unsupported construct: recorded, the others go on
        return {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"}
    r = compiled.binary.resources[compiled.lowered.thread.name]
    return {"cubin": artifact.cubin, "description": artifact.description,
            "resources": {"registers": r.registers,
                          "spills": r.spill_store_bytes + r.spill_load_bytes,
                          "stack": r.stack_frame_bytes, "static_shared": r.shared_bytes,
                          "dynamic_shared": compiled.lowered.thread.shared_bytes,
                          "warps": tile_ir.warps}}


def default_workers() -> int:
    """``$TILEVM_TUNE_WORKERS`` if set (0: compile in this process), else ``os.cpu_count()``."""
    env = os.environ.get("TILEVM_TUNE_WORKERS")
    if env:
        return max(int(env), 0)
    return os.cpu_count() or 1


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start worker processes without the user's ``__main__``: a spawned worker otherwise runs
    the user's script again before it takes a job, and a script that calls a tuned kernel at
    top level (no ``if __name__ == "__main__":``) would tune again in every worker. The jobs
    need nothing from ``__main__`` (Tile IR and tilevm's own functions)."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def compile_candidates(irs: list[Any], arch: str, spec: Any, workers: int | None = None,
                       progress: Progress | None = None) -> list[dict[str, Any]]:
    """:func:`_compile_one` for each Tile IR of ``irs``, in at most ``workers`` spawned processes
    (default :func:`default_workers`; 0 or 1: in this process), results in ``irs``' order.

    A pool that cannot start falls back to compiling here, with a warning."""
    workers = min(default_workers() if workers is None else workers, len(irs))
    results: list[dict[str, Any] | None] = [None] * len(irs)
    done = 0
    if workers > 1:
        try:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                with _main_module_hidden():  # the workers start during the submits
                    futures = {pool.submit(_compile_one, ir, arch, spec): i
                               for i, ir in enumerate(irs)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    done += 1
                    if progress:
                        progress("compile", done, len(irs))
            return results  # type: ignore[return-value]
        except (BrokenProcessPool, OSError) as e:
            warnings.warn(f"tilevm: the compile pool failed ({e}); compiling the candidates in "
                          "this process", RuntimeWarning, stacklevel=2)
    for i, ir in enumerate(irs):
        if results[i] is None:
            results[i] = _compile_one(ir, arch, spec)
        if progress:
            progress("compile", i + 1, len(irs))
    return results  # type: ignore[return-value]


# -- tuning -----------------------------------------------------------------------------------


def tune(kernel: Any, dims: dict[str, int], *, scalars: dict[str, Any] | None = None,
         constants: dict[str, Any] | None = None, arch: str | None = None,
         device: Any = "auto", progress: Progress | None = None, workers: int | None = None,
         database: TuningDatabase | None = None, write: bool = True,
         settings: TimingSettings | None = None) -> TuningResult:
    """Tune ``kernel`` (an ``@tilevm.autotune`` kernel) for a call at sizes ``dims``
    (``{"m": 4096, "n": 4096, "k": 512}``) with ``scalars`` (default 1) and the other
    ``constants`` of the call (dtype variables…); see the module docstring for the steps.

    ``device``: a :class:`~tilevm.runtime.tuning_device.TuningDevice`, ``"auto"`` (GPU 0 when
    there is one) or None (no measurements: the static heuristic chooses). ``arch``: the target
    to compile for (default: the device's, else the one the CPU backend stands in for);
    ``progress(stage, done, total)`` is called as candidates are compiled (stage ``"compile"``)
    and measured (``"measure"``: checked and timed; :class:`ProgressBar` draws a bar);
    ``workers``: compile processes (see :func:`compile_candidates`); with ``write``, a measured
    result is stored in ``database`` (default: the one under the cache dir). Raises
    :class:`TuningError` (with the table) when no candidate survives, ``ValueError`` for sizes
    or constants that do not fit the kernel."""
    from tilevm.backend.lower.specialization import Specialization
    from tilevm.frontend.arguments import bind_arguments
    from tilevm.frontend.diagnostics import CompileError

    constants = dict(constants or {})
    settings = settings or TimingSettings()
    if device == "auto":
        from tilevm.runtime.cuda_driver import gpu_available
        from tilevm.runtime.tuning_device import CudaTuningDevice

        device = CudaTuningDevice(0) if gpu_available() else None
    candidates = [Candidate(i, c) for i, c in enumerate(kernel.candidates(constants))]
    for c in candidates:
        if kernel.prune is not None and not kernel.prune(dict(c.config)):
            c.status, c.reason = "pruned", "rejected by prune="
            continue
        try:
            c.ir = kernel.kernel.ir(**{**constants, **c.config})
        except CompileError as e:
            c.status, c.reason = "error", str(e).strip().splitlines()[0]
    building = [c for c in candidates if c.status == "pending"]
    if not building:
        raise TuningError("no candidate could be built:\n" + _bare_table(candidates))
    first_ir = building[0].ir
    if arch is None:
        arch = device.arch if device is not None else _cpu_arch(first_ir)
    elif device is not None and arch.rstrip("a") != device.arch:
        raise ValueError(f"arch {arch} was asked for, but the GPU {device.name} is {device.arch}")
    host = random_arguments(first_ir, dims, scalars, settings.seed)
    bound = bind_arguments(first_ir, tuple(host[p.name] for p in first_ir.params))
    spec = Specialization.of_arguments(first_ir, bound.tensors, bound.dims)

    key = kernel.key_of(dims)
    # the grid is sized at the bucket's sizes, so that a key's choice does not depend on which
    # call of the bucket came first
    key_sizes = {d: key.get(d, n) for d, n in bound.dims.items()}
    compiled = compile_candidates([c.ir for c in building], arch, spec, workers, progress)
    for c, out in zip(building, compiled):
        if "error" in out:
            c.status, c.reason = "error", out["error"]
            continue
        from tilevm.runtime.artifact import KernelArtifact

        c.artifact = KernelArtifact(out["cubin"], out["description"])
        c.resources = CandidateResources(**out["resources"])
        c.blocks = math.prod(c.artifact.grid(key_sizes, bound.scalars))
        why = prune_reason(c.resources, arch)
        if why:
            c.status, c.reason = "pruned", why
        elif c.resources.spills:
            c.status, c.reason = "spills", f"{c.resources.spills} bytes of spills"
        else:
            c.status = "fits"
    survivors = [c for c in candidates if c.status == "fits"]
    if not survivors:
        survivors = [c for c in candidates if c.status == "spills"]
        for c in survivors:
            c.reason += " (kept: no candidate fits without spilling)"
    if not survivors:
        raise TuningError(f"no candidate of {kernel.qualname} fits {arch}:\n"
                          + _bare_table(candidates))

    if device is None:
        from tilevm.runtime.heuristic import heuristic_rank

        best = heuristic_rank(survivors, int(arch[3:5]))[0]
        best.chosen = True
        return TuningResult(kernel.qualname, key, dict(dims), arch, "heuristic", candidates)

    _measure(kernel, device, survivors, dims, dict(bound.scalars), constants, settings,
             progress)
    timed = [c for c in survivors if c.status == "timed"]
    if not timed:
        raise TuningError(f"no candidate of {kernel.qualname} passed the check on "
                          f"{device.name}:\n" + _bare_table(candidates))
    best = min(timed, key=lambda c: (c.time_ms, c.index))
    best.chosen = True
    fingerprint = device.fingerprint
    entry = TuningEntry(kernel.qualname, kernel.source_hash, kernel.space_hash, key,
                        kernel.constants_text(constants), fingerprint,
                        encode_config(best.config), arch, best.time_ms, len(candidates))
    result = TuningResult(kernel.qualname, key, dict(dims), arch, "tuned", candidates,
                          fingerprint, entry)
    if write:
        database = database or TuningDatabase()
        try:
            result.db_path = database.store(entry)
        except OSError as e:  # a read-only or broken cache dir costs the memory, not the call
            warnings.warn(f"tilevm: the tuning result of {kernel.qualname} was not saved to "
                          f"{database.directory} ({e})", RuntimeWarning, stacklevel=2)
    return result


def _bare_table(candidates: list[Candidate]) -> str:
    return "\n".join(f"  {_config_text(c.config)}: {c.status} ({c.reason})" for c in candidates)


def _config_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in config.items())


def _cpu_arch(ir: Any) -> str:
    from tilevm.runtime.cpu_device import cpu_target

    return f"sm_{cpu_target(ir)}"


# -- measuring --------------------------------------------------------------------------------


def _measure(kernel: Any, device: Any, survivors: list[Candidate], dims: dict[str, int],
             scalars: dict[str, Any], constants: dict[str, Any], settings: TimingSettings,
             progress: Progress | None) -> None:
    """Check each survivor against the reference, then time it (see the module docstring)."""
    from tilevm.frontend.arguments import _written_params

    ir = survivors[0].ir
    outputs = [p.name for p in ir.params if p.name in _written_params(ir)]
    tensors = [p.name for p in ir.params if hasattr(p.type, "shape")]
    inputs = [n for n in tensors if n not in outputs]

    host = random_arguments(ir, dims, scalars, settings.seed)
    check_dims = dims if kernel.reference is not None else kernel.reduced_sizes(dims)
    check_host = (host if check_dims == dims
                  else random_arguments(ir, check_dims, scalars, settings.seed + 1))
    expected = _reference_outputs(kernel, ir, check_host, outputs, constants)

    def buffers(values: dict[str, Any], names: list[str]) -> dict[str, Any]:
        return {n: device.to_device(values[n]) for n in names}

    copies = [buffers(host, inputs) for _ in range(max(settings.input_copies, 1))]
    timed_out, timed_pristine = buffers(host, outputs), buffers(host, outputs)
    if check_host is host:
        check_in, check_out, check_pristine = copies[0], timed_out, timed_pristine
    else:
        check_in = buffers(check_host, inputs)
        check_out, check_pristine = buffers(check_host, outputs), buffers(check_host, outputs)

    def call_args(ins: dict[str, Any], outs: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(ins[p.name] if p.name in ins else outs[p.name] if p.name in outs
                     else scalars[p.name] for p in ir.params)

    def reset(outs: dict[str, Any], pristine: dict[str, Any]) -> None:
        for n in outputs:  # split-K and other accumulating kernels start from the same state
            device.copy(outs[n], pristine[n])

    for done, c in enumerate(survivors, 1):
        config = {**constants, **c.config}
        try:
            args = call_args(check_in, check_out)
            for _ in range(max(settings.warmup, 1)):  # loads the module; results discarded
                reset(check_out, check_pristine)
                device.launch(kernel.kernel, config, c.artifact, args)
            reset(check_out, check_pristine)
            device.launch(kernel.kernel, config, c.artifact, args)
            got = {n: device.to_host(check_out[n]) for n in outputs}
            wrong = _compare(got, expected, kernel.tolerance)
            if wrong:
                c.status, c.reason = "wrong", wrong
                if progress:
                    progress("measure", done, len(survivors))
                continue
            events = []
            for r in range(settings.repeats):
                reset(timed_out, timed_pristine)
                device.flush_l2()
                start, end = device.event(), device.event()
                start.record()
                device.launch(kernel.kernel, config, c.artifact,
                              call_args(copies[r % len(copies)], timed_out))
                end.record()
                events.append((start, end))
            c.times_ms = [s.elapsed_ms(e) for s, e in events]
            c.time_ms = statistics.median(c.times_ms)
            c.status = "timed"
        except Exception as e:  # a launch that fails rules out this candidate only
            c.status, c.reason = "error", f"{type(e).__name__}: {e}".splitlines()[0]
        if progress:
            progress("measure", done, len(survivors))


def _reference_outputs(kernel: Any, ir: Any, host: dict[str, Any], outputs: list[str],
                       constants: dict[str, Any]) -> dict[str, np.ndarray]:
    """The outputs the candidates must produce from ``host``: the declared reference's, else
    the kernel's on the CPU backend with its reference configuration."""
    args = [_copy(host[p.name]) if isinstance(host[p.name], HostTensor) else host[p.name]
            for p in ir.params]
    if kernel.reference is None:
        kernel.kernel(*args, device="cpu", **constants, **kernel.reference_config(constants))
        return {p.name: a.to_numpy() for p, a in zip(ir.params, args) if p.name in outputs}
    arrays = [a.to_numpy() if isinstance(a, HostTensor) else a for a in args]
    result = kernel.reference(*arrays)
    if result is None:  # written in place
        return {p.name: a for p, a in zip(ir.params, arrays) if p.name in outputs}
    if isinstance(result, dict):
        return {n: np.asarray(result[n]) for n in outputs}
    if not isinstance(result, (tuple, list)):
        result = (result,)
    if len(result) != len(outputs):
        raise ValueError(f"the reference of {kernel.qualname} returned {len(result)} arrays for "
                         f"{len(outputs)} outputs ({', '.join(outputs)})")
    return {n: np.asarray(r) for n, r in zip(outputs, result)}


def _compare(got: dict[str, HostTensor], expected: dict[str, np.ndarray],
             tolerance: float | dict[str, float] | None) -> str | None:
    """Why ``got`` differs from ``expected``, or None. Integers must be equal; floats within
    ``tol·(|want| + max|want|)`` (default tol: 8 unit roundoffs of the output's type + 1e-5),
    NaN where the reference has NaN."""
    for name, tensor in got.items():
        have = tensor.to_numpy()
        want = np.asarray(expected[name])
        if want.shape != have.shape:
            return f"{name}: the reference has shape {want.shape}, the output {have.shape}"
        dt = tensor.dtype
        if not dt.is_float:
            bad = have != want
            if bad.any():
                i = tuple(int(x) for x in np.argwhere(bad)[0])
                return (f"{name}{list(i)} = {have[i]}, the reference says {want[i]} "
                        f"({int(bad.sum())} elements differ)")
            continue
        tol = tolerance.get(name) if isinstance(tolerance, dict) else tolerance
        if tol is None:
            tol = 8 * dt.unit_roundoff + 1e-5
        want = want.astype(np.float64)
        finite = np.isfinite(want)
        scale = float(np.abs(want[finite]).max()) if finite.any() else 0.0
        with np.errstate(invalid="ignore"):
            err = np.abs(have - want)
            bad = ~((have == want) | (err <= tol * (np.abs(want) + scale)))
        bad &= ~(np.isnan(want) & np.isnan(have))
        if bad.any():
            i = tuple(int(x) for x in np.argwhere(bad)[0])
            return (f"{name}{list(i)} = {have[i]:.6g}, the reference says {want[i]:.6g} "
                    f"({int(bad.sum())} elements outside the tolerance {tol:.3g})")
    return None
