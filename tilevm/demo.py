"""``tilevm demo``: the library's low-bit-weight linear layer, run, checked and compiled in one
command.

Three weight formats of ``y = x · Wᵀ`` — W4A16 (u4 codes, an f16 scale per 32), W3A16 (u3) and
MXFP4 (f4e2m1 codes, an e8m0 power-of-two scale per 32, the OCP MX format) — are quantized from
the same random float weights by the DSL quantization kernel and run through
``tilevm.ops.QuantLinear`` when torch is installed (the numpy kernel path,
``tilevm.kernels.prepared_linear.launch_prepared_linear`` on weights prepared by
``prepare_linear_weights``, when it is not): on the GPU when there is one,
on the CPU backend otherwise. Each result is checked against float64 on the same dequantized
weights with the examples' accuracy rule (``examples/accuracy.py``, DESIGN §8). The first call
(building, lowering, compiling) and the median of warm calls are timed; on a GPU also
``torch.matmul`` in f16 on the dequantized weights, and the speed-up over it. Then, with or
without a GPU, the kernel a call of the layer runs (the prefill variant on prepared weights)
is compiled for sm_90 through NVRTC for each format, with the
registers and spills ptxas found and the SASS instruction counts when ``cuobjdump`` is installed.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import tilevm
from tilevm.backend.cuda.sass import cuobjdump_path, disassemble, sass_opcodes

__all__ = ["CASES", "DemoError", "accuracy_bound", "run_demo"]

SHAPE = (40, 50, 80)  # m, n, k: k ends in a partial group, which weight preparation pads
GROUP = 32
SEED = 0
WARM_CALLS = 5  # the warm time is the median of these
TARGET = "sm_90"
# The SASS opcodes the second table counts: tensor-core MMAs, global loads (direct, and cp.async
# copies into shared memory: LDGSTS) and stores, shared memory (ldmatrix, loads, stores) and
# barriers.
SASS_COLUMNS = ("HMMA", "LDG", "LDGSTS", "STG", "LDSM", "LDS", "STS", "BAR")

# Exit statuses of run_demo.
PASSED, FAILED, USAGE = 0, 1, 2


class DemoError(Exception):
    """A problem with the environment or the command line, reported as one line (no
    traceback)."""


@dataclass(frozen=True)
class Case:
    """One row of the demo: a weight format of the linear layer."""

    name: str  # W4A16, W3A16, MXFP4
    wtype: str
    scale_dtype: str | None = None  # None: scales in the activation type (f16)

    @property
    def label(self) -> str:
        return f"{self.name} ({tilevm.dtype(self.wtype).name} weights)"


CASES = (Case("W4A16", "u4"), Case("W3A16", "u3"), Case("MXFP4", "f4e2m1fn", "f8e8m0fnu"))


@dataclass
class RunResult:
    """How one case ran: the accuracy check, the times and, on a GPU, torch f16's warm time."""

    case: Case
    device: str
    via: str  # "QuantLinear" or "kernel"
    error: float
    bound: float
    first_call_s: float
    warm_call_s: float
    torch_warm_s: float | None = None

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


def inputs(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The activations (m × k, f16) and the float weights (n × k, f32) of ``case``, from
    :data:`SEED`: the same for every case, so the rows differ only in the weight format."""
    m, n, k = SHAPE
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((m, k)).astype(np.float16)
    weight = (rng.standard_normal((n, k)) * 0.1).astype(np.float32)
    return x, weight


def reference(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ref``, ``x · Wᵀ`` in float64, and ``base``, the product of the f16-rounded weights in
    f32 rounded to f16 (the accuracy rule's baseline), on the dequantized ``weights``."""
    ref = x.astype(np.float64) @ weights.T
    base = (x.astype(np.float32) @ weights.astype(np.float16).astype(np.float32).T).astype(
        np.float16)
    return ref, base


def accuracy_bound(ref: np.ndarray, base: np.ndarray, unit_roundoff: float) -> float:
    """The accuracy rule's bound on ``max|ours − ref|`` (``examples/accuracy.py``, DESIGN §8):
    ``2·max|base − ref| + u·max|ref|``, with ``ref`` in float64 and ``base`` the computation in
    the kernel's input precision with f32 accumulation."""
    base64 = np.asarray(base, np.float64)
    return 2 * float(np.max(np.abs(base64 - ref), initial=0.0)) + unit_roundoff * float(
        np.max(np.abs(ref), initial=0.0))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed_calls(call: Callable[[], Any], finish: Callable[[], None]) -> tuple[float, float]:
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


def torch_available() -> bool:
    """Whether torch can be imported (the demo then goes through ``QuantLinear``)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _through_quant_linear(case: Case, device: str, x: np.ndarray, weight: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, float, float, float | None]:
    """``QuantLinear.from_linear`` on ``device``: (y, dequantized weights, first call, warm
    call, torch f16's warm call on a GPU)."""
    import torch

    from tilevm.ops import QuantLinear, dequantize

    _, n, k = SHAPE
    where = "cuda" if device == "cuda" else "cpu"
    linear = torch.nn.Linear(k, n, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
    layer = QuantLinear.from_linear(linear.to(where), wtype=case.wtype, group_size=GROUP,
                                    dtype=torch.float16, scale_dtype=case.scale_dtype)
    xt = torch.from_numpy(x).to(where)
    finish = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    result: list[Any] = []
    first, warm = _timed_calls(lambda: result.append(layer(xt)), finish)
    weights = dequantize(layer).numpy()
    torch_warm = None
    if device == "cuda":
        w16 = torch.from_numpy(weights).to(torch.float16).to(where)
        _, torch_warm = _timed_calls(lambda: torch.matmul(xt, w16.T), finish)
    return result[-1].cpu().numpy(), weights, first, warm, torch_warm


def _through_the_kernel(case: Case, device: str, x: np.ndarray, weight: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, float, float, None]:
    """The numpy path (no torch): ``quantize_weights``, ``prepare_linear_weights`` and
    ``launch_prepared_linear`` on the CPU backend."""
    from tilevm.kernels.prepared_linear import launch_prepared_linear
    from tilevm.kernels.prepared_weights import prepare_linear_weights
    from tilevm.kernels.quantize import quantize_weights

    if device == "cuda":
        raise DemoError("the GPU demo goes through QuantLinear: install torch")
    q = quantize_weights(weight, case.wtype, GROUP, scale_dtype=case.scale_dtype)
    prepared = prepare_linear_weights(q.codes, q.scales, act="f16", group_size=GROUP,
                                      device="cpu")
    y = np.zeros((SHAPE[0], SHAPE[1]), np.float16)
    first, warm = _timed_calls(lambda: launch_prepared_linear(x, prepared, y, device="cpu"),
                               lambda: None)
    return y, q.dequantize(), first, warm, None


def run_case(case: Case, device: str, use_torch: bool) -> RunResult:
    """Run ``case`` on ``device`` (``"cpu"`` or ``"cuda"``), through ``QuantLinear`` when
    ``use_torch``, and check it against float64 on its own dequantized weights."""
    x, weight = inputs(case)
    run = _through_quant_linear if use_torch else _through_the_kernel
    y, weights, first, warm, torch_warm = run(case, device, x, weight)
    ref, base = reference(x, weights)
    error = float(np.max(np.abs(np.asarray(y, np.float64) - ref), initial=0.0))
    return RunResult(case, device, "QuantLinear" if use_torch else "kernel", error,
                     accuracy_bound(ref, base, tilevm.f16.unit_roundoff), first, warm,
                     torch_warm)


def compile_case(case: Case, sass: bool) -> TargetResult:
    """Compile the kernel a call of the layer runs (the prefill variant on prepared weights,
    its default tiles) for :data:`TARGET` with ``case``'s weight format, specialized to the
    demo's arguments, and count its SASS opcodes when ``sass`` (raises FileNotFoundError
    without cuobjdump)."""
    from tilevm.kernels.prepared_linear import PREPARED_VARIANTS, prepared_linear_prefill
    from tilevm.kernels.prepared_weights import prepare_linear_weights
    from tilevm.kernels.quant_linear import BLOCK_SCALES, implicit_zero
    from tilevm.kernels.quantize import quantize_weights

    x, weight = inputs(case)
    q = quantize_weights(weight, case.wtype, GROUP, scale_dtype=case.scale_dtype)
    p = prepare_linear_weights(q.codes, q.scales, act="f16", group_size=GROUP, device="cpu")
    y = np.zeros((SHAPE[0], SHAPE[1]), np.float16)
    spec = (x, p.codes, p.scales, np.zeros((1, 1, 1), np.uint32), np.zeros(1, np.float16), y)
    compiled = tilevm.compile(prepared_linear_prefill, TARGET, spec=spec, A=tilevm.f16,
                              wtype=p.wtype, stype=p.scale_type, group=GROUP, bk=p.bk,
                              zero=implicit_zero(p.wtype),
                              block_scaled=p.scale_type.name in BLOCK_SCALES,
                              **PREPARED_VARIANTS["prefill"][2])
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


def _speedup(r: RunResult) -> str:
    if r.torch_warm_s is None:
        return "-"
    return f"{r.torch_warm_s / r.warm_call_s:.2f}x"


def run_table(results: list[RunResult]) -> str:
    """The first table: one row per case with its shape, dtypes, path, device, error, times
    and, on a GPU, the speed-up over torch f16."""
    m, n, k = SHAPE
    header = ["format", "m x n x k", "x", "w", "scales", "y", "via", "device", "max error",
              "bound", "check", "first call", "warm call", "vs torch f16"]
    rows = [[r.case.name, f"{m} x {n} x {k}", "f16", _weight_name(r.case.wtype),
             _weight_name(r.case.scale_dtype or "f16") + f"/{GROUP}", "f16", r.via, r.device,
             f"{r.error:.3g}", f"{r.bound:.3g}", "ok" if r.passed else "MISMATCH",
             _duration(r.first_call_s), _duration(r.warm_call_s), _speedup(r)]
            for r in results]
    return _table(header, rows)


def target_table(results: list[TargetResult]) -> str:
    """The second table: registers, spills (bytes per thread), stack, shared memory and, where
    disassembled, SASS counts per case."""
    header = ["format", "w", "registers", "spills", "stack", "shared"]
    with_sass = any(r.sass is not None for r in results)
    if with_sass:
        header += ["SASS", *SASS_COLUMNS]
    rows = []
    for r in results:
        res = r.resources
        row = [r.case.name, _weight_name(r.case.wtype), str(res.registers),
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
    (with one line on stderr) when ``device`` cannot be used."""
    try:
        where = resolve_device(device)
        use_torch = torch_available()
        if where == "cuda" and not use_torch:
            raise DemoError("the GPU demo goes through QuantLinear: install torch")
    except DemoError as e:
        print(f"tilevm demo: {e}", file=sys.stderr)
        return USAGE
    m, n, k = SHAPE
    what = ("the GPU" if where == "cuda" else
            "the CPU backend (the lowered per-thread code, JIT-compiled for this host)")
    via = ("tilevm.ops.QuantLinear" if use_torch else
           "the kernel path (torch is not installed)")
    print(f"tilevm demo: y = x @ W^T through {via}, m x n x k = {m} x {n} x {k}, scales per "
          f"{GROUP} inputs, seed {SEED}, on {what}")
    failures: list[str] = []
    results: list[RunResult] = []
    for case in CASES:
        _progress(f"{case.label}: quantizing and running on {where} (the first call builds, "
                  "lowers and compiles the kernel)...")
        try:
            result = run_case(case, where, use_torch)
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
    if where == "cuda":
        print("vs torch f16: torch.matmul in f16 on the dequantized weights, warm time over ours")
    print()
    print(f"The layer's kernel compiled for {TARGET} by NVRTC (no GPU needed), specialized to "
          "these arguments;")
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
