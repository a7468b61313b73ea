"""``tilevm demo``: the low-bit-weight GEMM examples, run, checked and compiled in one command.

For the W4A16 example (``examples/matmul_w4a16.py``) and the kernel of every weight type
(``examples/matmul_wna16.py``, with u3 and f4e2m1 weights) the demo builds random inputs from a
fixed seed, runs the kernel — on the GPU when there is one, on the CPU backend otherwise — and
checks the result against float64 with the examples' accuracy rule (``examples/accuracy.py``,
DESIGN §8). It times the first call (which builds the Tile IR, lowers it and compiles it) and the
warm calls after it. Then, with or without a GPU, it compiles each kernel for sm_90 through NVRTC
and reports the registers and spills ptxas found, and the SASS instruction counts when
``cuobjdump`` is installed.

It needs no torch. The examples are read from the ``examples/`` folder of the source checkout that
holds this package.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tilevm
from tilevm.backend.cuda.sass import cuobjdump_path, disassemble, sass_opcodes

__all__ = ["CASES", "DemoError", "accuracy_bound", "load_example", "run_demo"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHAPE = (40, 50, 80)  # m, n, k: no multiple of the 32 × 32 tile; k ends in a partial group
GROUP = 32
SEED = 0
WARM_CALLS = 5  # the warm time is the median of these
TARGET = "sm_90"
# The SASS opcodes the second table counts: tensor-core MMAs, global loads and stores, shared
# memory (ldmatrix, loads, stores) and barriers.
SASS_COLUMNS = ("HMMA", "LDG", "STG", "LDSM", "LDS", "STS", "BAR")

# Exit statuses of run_demo.
PASSED, FAILED, USAGE = 0, 1, 2


class DemoError(Exception):
    """A problem with the environment or the command line, reported as one line (no
    traceback)."""


@dataclass(frozen=True)
class Case:
    """One row of the demo: an example's kernel with one weight type."""

    kernel_name: str  # the example file's name, and its kernel's
    wtype: str

    @property
    def label(self) -> str:
        return f"{self.kernel_name} ({_weight_name(self.wtype)})"


CASES = (Case("matmul_w4a16", "u4"), Case("matmul_wna16", "u3"),
         Case("matmul_wna16", "f4e2m1"))


@dataclass
class RunResult:
    """How one case ran: the accuracy check and the times."""

    case: Case
    device: str
    error: float
    bound: float
    first_call_s: float
    warm_call_s: float

    @property
    def passed(self) -> bool:
        return self.error <= self.bound


@dataclass
class TargetResult:
    """One case compiled for :data:`TARGET`: ptxas's resources and the SASS opcode counts (None
    when not disassembled)."""

    case: Case
    resources: Any  # tilevm.runtime.compile.Resources
    sass: Counter[str] | None


_loaded: dict[str, ModuleType] = {}


def load_example(name: str) -> ModuleType:
    """The module ``examples/<name>.py`` of this checkout, imported once per process.

    Raises :class:`DemoError` when the file is not there (an install without the sources).
    """
    if name in _loaded:
        return _loaded[name]
    path = EXAMPLES / f"{name}.py"
    if not path.is_file():
        raise DemoError(f"the demo runs the examples of a source checkout, and {path} is not "
                        "there (install tilevm with `pip install -e .` from a clone)")
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # the examples import accuracy.py beside them
    spec = importlib.util.spec_from_file_location(f"tilevm_demo_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded[name] = module
    return module


def kernel_of(case: Case) -> Any:
    """The ``@tilevm.kernel`` that ``case`` runs."""
    if case.kernel_name == "matmul_wna16":
        wna16 = load_example("matmul_wna16")
        return wna16.make_matmul_wna16(wna16.weight_type(case.wtype))
    return getattr(load_example(case.kernel_name), case.kernel_name)


def problem_of(case: Case) -> Any:
    """The random inputs and float64 reference of ``case`` (``matmul_wna16.Problem``). The W4A16
    example's weights are the u4 case of the general kernel's: ``(code − 8) · scale``."""
    m, n, k = SHAPE
    return load_example("matmul_wna16").random_problem(case.wtype, m, n, k, GROUP, SEED)


def accuracy_bound(ref: np.ndarray, base: np.ndarray, unit_roundoff: float) -> float:
    """The accuracy rule's bound on ``max|ours − ref|`` (``examples/accuracy.py``, DESIGN §8):
    ``2·max|base − ref| + u·max|ref|``, with ``ref`` in float64 and ``base`` the computation in
    the kernel's input precision with f32 accumulation."""
    base64 = np.asarray(base, np.float64)
    return 2 * float(np.max(np.abs(base64 - ref), initial=0.0)) + unit_roundoff * float(
        np.max(np.abs(ref), initial=0.0))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed_calls(call: Callable[[], None], finish: Callable[[], None]) -> tuple[float, float]:
    """The first call's time and the median of :data:`WARM_CALLS` more, each until
    ``finish()`` returns."""
    start = time.perf_counter()
    call()
    finish()
    first = time.perf_counter() - start
    warm = []
    for _ in range(WARM_CALLS):
        start = time.perf_counter()
        call()
        finish()
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


def _run_on_cpu(kernel: Any, problem: Any) -> tuple[np.ndarray, float, float]:
    y = problem.output()

    def call() -> None:
        kernel(problem.x, problem.w, problem.scales, y, device="cpu", group=problem.group)

    first, warm = _timed_calls(call, lambda: None)
    return y, first, warm


def _run_on_gpu(kernel: Any, problem: Any) -> tuple[np.ndarray, float, float]:
    from tilevm.runtime.cuda_driver import cuda_device
    from tilevm.runtime.device_array import DeviceArray

    x = DeviceArray.from_numpy(problem.x)
    w = DeviceArray.from_host_tensor(problem.w)
    scales = DeviceArray.from_numpy(problem.scales)
    y = DeviceArray.from_numpy(problem.output())
    device = cuda_device()

    def call() -> None:
        kernel(x, w, scales, y, device="cuda", group=problem.group)

    first, warm = _timed_calls(call, device.synchronize)
    return y.to_numpy(), first, warm


def run_case(case: Case, device: str) -> RunResult:
    """Run ``case`` on ``device`` (``"cpu"`` or ``"cuda"``) and check it against float64."""
    problem = problem_of(case)
    run = _run_on_gpu if device == "cuda" else _run_on_cpu
    y, first, warm = run(kernel_of(case), problem)
    error = float(np.max(np.abs(np.asarray(y, np.float64) - problem.ref), initial=0.0))
    return RunResult(case, device, error, accuracy_bound(problem.ref, problem.base,
                                                         tilevm.f16.unit_roundoff), first, warm)


def compile_case(case: Case, sass: bool) -> TargetResult:
    """Compile ``case``'s kernel for :data:`TARGET`, specialized to the demo's arguments, and
    count its SASS opcodes when ``sass`` (raises FileNotFoundError without cuobjdump)."""
    problem = problem_of(case)
    arguments = (problem.x, problem.w, problem.scales, problem.output())
    compiled = tilevm.compile(kernel_of(case), TARGET, spec=arguments, group=problem.group)
    counts = None
    if sass:
        _progress(f"{case.label}: disassembling the {TARGET} cubin (cuobjdump)...")
        counts = sass_opcodes(disassemble(compiled.cubin)).get(compiled.lowered.thread.name,
                                                                 Counter())
    return TargetResult(case, compiled.resources, counts)


def resolve_device(requested: str) -> str:
    """``"cpu"`` or ``"cuda"`` for ``requested`` (``"cpu"``, ``"cuda"`` or ``"auto"``: the GPU
    when there is one). Raises :class:`DemoError` for ``"cuda"`` without a GPU."""
    if requested == "cpu":
        return "cpu"
    try:
        from tilevm.runtime.cuda_driver import NoCudaDevice, cuda_device, gpu_available
    except ImportError as e:  # a partial install: the CPU backend still works
        if requested == "auto":
            return "cpu"
        raise DemoError(f"no CUDA device: the GPU runtime cannot be imported ({e})") from None
    if requested == "auto":
        return "cuda" if gpu_available() else "cpu"
    try:
        cuda_device()
    except NoCudaDevice as e:
        raise DemoError(str(e)) from None
    return "cuda"


def _duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [header, ["-" * w for w in widths], *rows])


def run_table(results: list[RunResult]) -> str:
    """The first table: one row per case with its shape, dtypes, device, error and times."""
    m, n, k = SHAPE
    header = ["kernel", "m x n x k", "x", "w", "y", "device", "max error", "bound", "check",
              "first call", "warm call"]
    rows = [[r.case.kernel_name, f"{m} x {n} x {k}", "f16", _weight_name(r.case.wtype), "f16",
             r.device, f"{r.error:.3g}", f"{r.bound:.3g}", "ok" if r.passed else "MISMATCH",
             _duration(r.first_call_s), _duration(r.warm_call_s)] for r in results]
    return _table(header, rows)


def target_table(results: list[TargetResult]) -> str:
    """The second table: registers, spills (bytes per thread), stack, shared memory and, where
    disassembled, SASS counts per case."""
    header = ["kernel", "w", "registers", "spills", "stack", "shared"]
    with_sass = any(r.sass is not None for r in results)
    if with_sass:
        header += ["SASS", *SASS_COLUMNS]
    rows = []
    for r in results:
        res = r.resources
        row = [r.case.kernel_name, _weight_name(r.case.wtype), str(res.registers),
               f"{res.spills} B", f"{res.stack} B", f"{res.shared} B"]
        if with_sass:
            counts = r.sass if r.sass is not None else Counter()
            row += [str(sum(counts.values())), *(str(counts[op]) for op in SASS_COLUMNS)]
        rows.append(row)
    return _table(header, rows)


def _weight_name(wtype: str) -> str:
    return tilevm.dtype(wtype).name


def _sass_available() -> bool:
    return cuobjdump_path() is not None


def run_demo(device: str = "auto", sass: bool = True) -> int:
    """Run, check and compile every case of :data:`CASES`, print the two tables; returns the exit
    status: 0 when every result meets the accuracy rule, 1 on a mismatch or a failed compile, 2
    (with one line on stderr) when ``device`` cannot be used or the examples are missing."""
    try:
        where = resolve_device(device)
        for name in ("matmul_w4a16", "matmul_wna16"):
            load_example(name)
    except DemoError as e:
        print(f"tilevm demo: {e}", file=sys.stderr)
        return USAGE
    m, n, k = SHAPE
    what = ("the GPU" if where == "cuda" else
            "the CPU backend (the lowered per-thread code, JIT-compiled for this host)")
    print(f"tilevm demo: y = x @ W^T, m x n x k = {m} x {n} x {k}, groups of {GROUP}, seed "
          f"{SEED}, on {what}")
    failures: list[str] = []
    results: list[RunResult] = []
    for case in CASES:
        _progress(f"{case.label}: running on {where} (the first call builds, lowers and "
                  "compiles the kernel)...")
        try:
            result = run_case(case, where)
        except (tilevm.CompileError, tilevm.KernelExecutionError, RuntimeError,
                ValueError) as e:
            failures.append(f"{case.label} on {where}: {e}")
            continue
        results.append(result)
        if not result.passed:
            failures.append(f"{case.label} on {where}: error {result.error:.3g} exceeds the "
                            f"accuracy bound {result.bound:.3g}")
    sass = sass and _sass_available()
    compiled: list[TargetResult] = []
    for case in CASES:
        _progress(f"{case.label}: compiling for {TARGET} (NVRTC)...")
        try:
            compiled.append(compile_case(case, sass))
        except (tilevm.CompileError, RuntimeError, OSError) as e:
            failures.append(f"{case.label} for {TARGET}: {e}")

    print()
    print(run_table(results))
    print("max error: max|y - y64|, y64 computed in float64 from the same dequantized weights")
    print("bound: 2*max|base - y64| + u*max|y64|, base in f16 with f32 accumulation "
          "(examples/accuracy.py)")
    print()
    print(f"Compiled for {TARGET} by NVRTC (no GPU needed), specialized to these arguments;")
    print("registers, spills and stack per thread, shared memory per block"
          + (", SASS instruction counts:" if sass else ":"))
    print(target_table(compiled))
    if not sass:
        print("SASS counts: not shown (" + ("--no-sass" if _sass_available() else
              "cuobjdump is not installed: pip install nvidia-cuda-cuobjdump, part of tilevm's "
              "'test' extra") + ")")
    for failure in failures:
        print(f"tilevm demo: {failure}", file=sys.stderr)
    return FAILED if failures else PASSED
