"""tilevm's W4A16 GEMM next to the same kernel in Triton (``bench/triton_w4a16.py``), on a CPU.

Two steps, both by default (``--steps``):

- ``time``: in one process, ``examples/matmul_w4a16.py`` at m = n = k = 512 (group 32) on tilevm's
  CPU backend and the Triton kernel through Triton's interpreter (``TRITON_INTERPRET=1``, CPU torch
  tensors). Every call's output is checked against a float64 numpy reference under the accuracy
  rule (docs/numeric-contract.md) before its time counts. Reported: the first call (lowering and
  JIT included; tilevm's disk cache is a fresh temporary folder) and the median of ``--repeats``
  warm calls, and the ratio tilevm / Triton of the warm medians. Until the lowering handles
  ``dot``, the CPU backend raises a LoweringError saying so; then tilevm runs on its Tile IR
  interpreter instead, with a notice in the output and the JSON. Written to
  ``w4a16_vs_triton_interp.json``.
- ``sass``: Triton's kernel compiled ahead of time without a GPU (``triton.compile`` of an
  ``ASTSource`` for ``GPUTarget("cuda", 80 | 90, 32)``, specialized as Triton's JIT specializes a
  launch on the timing step's arguments), its cubin analysed with ``sass_metrics.py`` (the shared
  metric definitions; ``--sass-metrics PATH``), and the same for tilevm's cubin
  (:func:`tilevm_sass_column`) once its lowering handles ``dot``. Written to ``w4a16_sass.json``.

Usage: ``python bench/w4a16_vs_triton.py [--steps time,sass] [--sass-metrics PATH]`` with tilevm
and Triton installed (``pip install -e ".[bench]"``; Triton only for the benchmarks).

Triton decides when it is imported whether ``@triton.jit`` interprets, and one process cannot hold
both modes (``triton.language``'s own functions are decorated at import), so the ``sass`` step
runs in a child process of this script, which imports Triton with ``TRITON_INTERPRET=0``.
"""

# Imports follow the choice of Triton's mode, which must precede `import triton`.
# ruff: noqa: E402

from __future__ import annotations

import os

_SASS_CHILD = "W4A16_VS_TRITON_SASS_STEP"  # set in the child process that runs the sass step
_COMMAND = "W4A16_VS_TRITON_COMMAND"  # the parent's command line, which the child records
os.environ["TRITON_INTERPRET"] = "0" if os.environ.get(_SASS_CHILD) == "1" else "1"
# Triton 3.9's default, made explicit (it warns otherwise); it cannot change this kernel's code:
# its only f32 arithmetic is the accumulation inside mma, and the dequantization has no a·b + c.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import argparse
import datetime
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import llvmlite
import numpy as np
import torch
import triton
import triton_w4a16
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

import tilevm as tv
from tilevm.backend.cpu.launch import worker_count
from tilevm.backend.lower import LoweringError

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
# tilevm's example's tile configuration, which the Triton kernel copies (checked in main).
TILE = {"bm": 32, "bn": 32, "group": 32, "warps": 4}
SASS_TARGETS = (80, 90)
# Triton's default software pipelining (num_stages=3) and none, as tilevm's example has none.
TRITON_NUM_STAGES = (None, 1)


# -- inputs and the accuracy check -----------------------------------------------------------------

class Problem:
    """Random W4A16 inputs of one shape, the float64 reference and the f32-accumulated baseline."""

    def __init__(self, m: int, n: int, k: int, group: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.m, self.n, self.k, self.group = m, n, k, group
        groups = -(-k // group)
        self.x = rng.standard_normal((m, k)).astype(np.float16)
        self.codes = rng.integers(0, 16, size=(n, k))
        self.w = tv.HostTensor.from_bits(self.codes, "u4")  # two codes per byte, LSB first
        self.scales = (rng.uniform(0.5, 1.5, size=(n, groups)) / 8).astype(np.float16)
        col_scale = np.repeat(self.scales.astype(np.float64), group, axis=1)[:, :k]
        w_real = (self.codes - 8) * col_scale  # the dequantized weights, exactly
        self.ref = self.x.astype(np.float64) @ w_real.T
        self.base = (self.x.astype(np.float32)
                     @ w_real.astype(np.float16).astype(np.float32).T).astype(np.float16)

    def check(self, name: str, y: np.ndarray) -> dict[str, float]:
        """The accuracy rule ``max|y − ref| ≤ 2·max|base − ref| + u·max|ref|`` (u of f16); raises
        RuntimeError when ``y`` breaks it (NaN included), so that a broken run has no time."""
        y64 = np.asarray(y, np.float64)
        error = float(np.max(np.abs(y64 - self.ref)))
        bound = 2 * float(np.max(np.abs(self.base.astype(np.float64) - self.ref))) + (
            tv.f16.unit_roundoff * float(np.max(np.abs(self.ref))))
        if not error <= bound:  # NaN fails too
            raise RuntimeError(f"{name}: max error {error:.3g} exceeds the accuracy bound "
                               f"{bound:.3g}; no time is reported")
        return {"max_error": error, "bound": bound}


def _example_kernel() -> Any:
    """``matmul_w4a16`` of examples/matmul_w4a16.py (examples/ is not a package)."""
    folder = REPO / "examples"
    sys.path.insert(0, str(folder))  # the example imports its neighbour accuracy.py
    spec = importlib.util.spec_from_file_location("example_matmul_w4a16",
                                                  folder / "matmul_w4a16.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.matmul_w4a16


# -- the time step -------------------------------------------------------------------------------

def _timed(name: str, problem: Problem, call: Callable[[], np.ndarray]) -> tuple[float, dict]:
    """Seconds of one call of ``call`` (which poisons its output first and returns it), and the
    accuracy check of that output."""
    t0 = time.perf_counter()
    y = call()
    seconds = time.perf_counter() - t0
    return seconds, problem.check(name, y)


def _measure(name: str, problem: Problem, call: Callable[[], np.ndarray], repeats: int,
             first: tuple[float, dict] | None = None) -> dict:
    """First call and ``repeats`` warm calls of ``call``, each checked; ``first`` if already run."""
    first_s, accuracy = first or _timed(name, problem, call)
    warm = [_timed(name, problem, call)[0] for _ in range(repeats)]
    print(f"  {name}: first call {first_s:.3f} s, warm {', '.join(f'{w:.3f}' for w in warm)} s")
    return {"first_call_s": first_s, "warm_s": warm, "warm_median_s": statistics.median(warm),
            **accuracy}


def is_dot_not_lowered(error: LoweringError) -> bool:
    """Whether ``error`` is the lowering's refusal of ``dot`` (tensor cores not lowered yet)."""
    text = str(error)
    return "dot" in text and "not lowered" in text


def time_tilevm(problem: Problem, repeats: int) -> dict:
    """tilevm's example on the CPU backend; on the Tile IR interpreter (with a notice) if the CPU
    backend raises a LoweringError saying ``dot`` is not lowered yet."""
    kernel = _example_kernel()
    y = np.zeros((problem.m, problem.n), np.float16)

    def call_on(device: str) -> Callable[[], np.ndarray]:
        def call() -> np.ndarray:
            y.fill(np.nan)
            kernel(problem.x, problem.w, problem.scales, y, device=device, group=problem.group)
            return y
        return call

    device, notice, first = "cpu", None, None
    try:
        first = _timed("tilevm", problem, call_on("cpu"))
    except LoweringError as e:
        if not is_dot_not_lowered(e):
            raise
        device = "interp"
        reason = str(e).splitlines()[0]
        notice = (f"NOTICE: tilevm's CPU backend cannot run this kernel yet ({reason}); tilevm was "
                  "measured on its Tile IR interpreter (device='interp') instead")
        print(notice)
    result = _measure(f"tilevm ({device})", problem, call_on(device), repeats, first)
    blocks = -(-problem.m // TILE["bm"]) * -(-problem.n // TILE["bn"])
    return {"device": device, "requested_device": "cpu", "notice": notice,
            "host_threads": worker_count(blocks) if device == "cpu" else 1, **result}


def time_triton(problem: Problem, repeats: int) -> dict:
    """The Triton kernel through Triton's interpreter on CPU torch tensors."""
    if not triton.knobs.runtime.interpret:
        raise RuntimeError("the time step needs Triton's interpreter (TRITON_INTERPRET=1)")
    x = torch.from_numpy(problem.x)
    w = torch.from_numpy(problem.w.data)
    scales = torch.from_numpy(problem.scales)
    y = torch.zeros((problem.m, problem.n), dtype=torch.float16)

    def call() -> np.ndarray:
        y.fill_(float("nan"))
        triton_w4a16.matmul_w4a16(x, w, scales, y, problem.k, problem.group)
        return y.numpy()

    return {"mode": "interpreter (TRITON_INTERPRET=1), CPU torch tensors",
            **_measure("triton (interpreter)", problem, call, repeats)}


def time_step(args: argparse.Namespace, command: str) -> dict:
    """Both implementations in this process; returns (and writes) the JSON record."""
    started = time.perf_counter()
    problem = Problem(args.m, args.n, args.k, args.group)
    print(f"time: m, n, k = {args.m}, {args.n}, {args.k}, group {args.group}")
    saved_cache = os.environ.get("TILEVM_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="tilevm-bench-cache-") as cache:
        os.environ["TILEVM_CACHE_DIR"] = cache  # the first call JIT-compiles, not a cache load
        try:
            tilevm_row = time_tilevm(problem, args.repeats)
        finally:
            if saved_cache is None:
                del os.environ["TILEVM_CACHE_DIR"]
            else:
                os.environ["TILEVM_CACHE_DIR"] = saved_cache
    triton_row = time_triton(problem, args.repeats)
    record = {
        "benchmark": "W4A16 GEMM: tilevm vs Triton's interpreter, on the CPU",
        "date": datetime.date.today().isoformat(),
        "command": command,
        "machine": machine(),
        "versions": versions(),
        "shape": {"m": args.m, "n": args.n, "k": args.k, "group": args.group},
        "tile": TILE,
        "repeats": args.repeats,
        "tilevm": tilevm_row,
        "triton": triton_row,
        "ratio_tilevm_over_triton_warm": (tilevm_row["warm_median_s"]
                                          / triton_row["warm_median_s"]),
        "total_run_s": time.perf_counter() - started,
    }
    print_time_table(record)
    write_json(args.out_dir / "w4a16_vs_triton_interp.json", record)
    return record


def print_time_table(record: dict) -> None:
    """The time step's numbers as a table."""
    print(f"\n{'implementation':24s} {'first call':>11s} {'warm median':>12s} "
          f"{'max error':>10s} {'bound':>10s}")
    for label, row in ((f"tilevm ({record['tilevm']['device']})", record["tilevm"]),
                       ("triton (interpreter)", record["triton"])):
        print(f"{label:24s} {row['first_call_s']:10.3f}s {row['warm_median_s']:11.3f}s "
              f"{row['max_error']:10.3g} {row['bound']:10.3g}")
    print(f"ratio tilevm / triton (warm medians): {record['ratio_tilevm_over_triton_warm']:.3f}")
    if record["tilevm"]["notice"]:
        print(record["tilevm"]["notice"])
    print(f"total run time {record['total_run_s']:.1f} s")


# -- the sass step -------------------------------------------------------------------------------

def load_sass_metrics(path: Path) -> ModuleType:
    """The module ``sass_metrics.py`` at ``path`` (the shared metric definitions)."""
    if not path.is_file():
        raise SystemExit(f"sass step: no sass_metrics.py at {path}; pass --sass-metrics PATH "
                         "(by default the copy in bench/)")
    spec = importlib.util.spec_from_file_location("sass_metrics", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sass_metrics"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def triton_launch_arguments(problem: Problem) -> tuple[list, dict]:
    """The arguments of the time step's Triton launch (CPU torch tensors stand in for CUDA ones:
    both allocators align to more than 16 bytes, the only fact Triton specializes pointers on)."""
    x = torch.from_numpy(problem.x)
    w = torch.from_numpy(problem.w.data)
    scales = torch.from_numpy(problem.scales)
    y = torch.zeros((problem.m, problem.n), dtype=torch.float16)
    return triton_w4a16.launch_arguments(x, w, scales, y, problem.k, problem.group)


def triton_cubin(problem: Problem, capability: int, num_stages: int | None) -> tuple[bytes, dict]:
    """Triton's cubin for sm_``capability``, compiled ahead of time with the signature, constants
    and divisibility attributes that Triton's JIT derives from the launch's arguments."""
    kernel = triton_w4a16.matmul_w4a16_kernel
    if not isinstance(kernel, JITFunction):
        raise RuntimeError("the sass step needs Triton's compiler (TRITON_INTERPRET=0)")
    backend = make_backend(GPUTarget("cuda", capability, 32))
    args, kwargs = triton_launch_arguments(problem)
    if num_stages is not None:
        kwargs["num_stages"] = num_stages
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound,
                                                              specialization, options)
    compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs),
                              target=GPUTarget("cuda", capability, 32), options=options.__dict__)
    meta = compiled.metadata
    return compiled.asm["cubin"], {
        "num_warps": meta.num_warps, "num_stages": meta.num_stages,
        "dynamic_shared_bytes": meta.shared, "signature": signature,
        "constexprs": {kernel.arg_names[k[0]]: v for k, v in constexprs.items()},
        "divisible_by_16": sorted(kernel.arg_names[k[0]] for k, v in attrs.items() if v)}


def sass_row(metrics: ModuleType, cubin: Path, warps: int, bm: int, bn: int = TILE["bn"]
             ) -> dict:
    """Resources and main-loop metrics of one cubin, with the dequantization instructions per
    weight: ``loop.dequant_instructions × 32 × bm / loop.mma_macs_per_warp``, i.e. the thread
    instructions of sass_metrics' DEQUANT_OPCODES one pass of the main loop spends per weight it
    consumes (a pass over a (bm, bn) tile takes mma_macs_per_warp × warps / (bm · bn) columns of
    K, so bn × that many weights, over 32 × warps threads)."""
    report = metrics.analyze_cubin(cubin)
    kernel = metrics.single_kernel(report)
    loop = kernel["main_loop"]
    row = {key: kernel[key] for key in ("function", "arch", "registers", "stack_bytes",
                                        "local_bytes", "shared_static_bytes", "instructions",
                                        "mma_instructions")}
    row["cubin"] = str(cubin.relative_to(REPO)) if cubin.is_relative_to(REPO) else str(cubin)
    row["cubin_sha256"] = report["sha256"]
    if loop is None:
        row["main_loop"] = None
        return row
    per_weight = (loop["dequant_instructions"] * 32 * bm / loop["mma_macs_per_warp"]
                  if loop["mma_macs_per_warp"] else None)
    row["main_loop"] = {
        "instructions": loop["instructions"], "mma_instructions": loop["mma_instructions"],
        "mma_shapes": loop["mma_shapes"], "mma_macs_per_warp": loop["mma_macs_per_warp"],
        "k_per_pass": (loop["mma_macs_per_warp"] * warps // (bm * bn)
                       if loop["mma_macs_per_warp"] else None),
        "instructions_per_m16n8k16": loop["instructions_per_m16n8k16"],
        "dequant_instructions": loop["dequant_instructions"],
        "dequant_breakdown": loop["dequant_breakdown"],
        "dequant_per_m16n8k16": loop["dequant_per_m16n8k16"],
        "dequant_thread_instructions_per_weight": per_weight,
        "opcodes": loop["opcodes"]}
    return row


def tilevm_sass_column(metrics: ModuleType, problem: Problem, capability: int,
                       cubin_dir: Path) -> dict:
    """tilevm's column of the SASS table for sm_``capability``: its example compiled with
    ``tilevm.compile`` (specialized on the time step's arguments) and analysed like Triton's.

    Until the lowering handles ``dot`` this prints a notice and returns a row holding only it.
    """
    kernel = _example_kernel()
    try:
        compiled = tv.compile(kernel, f"sm_{capability}",
                              spec=(problem.x, problem.w, problem.scales,
                                    np.zeros((problem.m, problem.n), np.float16)),
                              group=problem.group)
    except LoweringError as e:
        if not is_dot_not_lowered(e):
            raise
        notice = (f"NOTICE: no tilevm cubin for sm_{capability} yet: "
                  f"{str(e).splitlines()[0]}")
        print(notice)
        return {"notice": notice}
    path = cubin_dir / f"tilevm_matmul_w4a16_sm{capability}.cubin"
    path.write_bytes(compiled.cubin)
    return {"notice": None, "compiler": "tilevm.compile (NVRTC)",
            **sass_row(metrics, path, TILE["warps"], TILE["bm"])}


def sass_step(args: argparse.Namespace, command: str) -> dict:
    """Triton's (and, once possible, tilevm's) SASS metrics; returns (and writes) the record."""
    metrics = load_sass_metrics(args.sass_metrics)
    problem = Problem(args.m, args.n, args.k, args.group)
    args.cubin_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for capability in SASS_TARGETS:
        for num_stages in TRITON_NUM_STAGES:
            cubin, meta = triton_cubin(problem, capability, num_stages)
            path = args.cubin_dir / (f"triton_matmul_w4a16_sm{capability}"
                                     f"_stages{meta['num_stages']}.cubin")
            path.write_bytes(cubin)
            row = {"producer": "triton", "target": f"sm_{capability}",
                   "num_stages": meta["num_stages"],
                   "num_stages_is_default": num_stages is None, "triton": meta,
                   **sass_row(metrics, path, meta["num_warps"], TILE["bm"])}
            rows.append(row)
        rows.append({"producer": "tilevm", "target": f"sm_{capability}",
                     **tilevm_sass_column(metrics, problem, capability, args.cubin_dir)})
    record = {
        "benchmark": "W4A16 GEMM: static SASS of tilevm's and Triton's kernels (no GPU)",
        "date": datetime.date.today().isoformat(),
        "command": command,
        "machine": machine(),
        "versions": versions(),
        "sass_metrics": {"path": str(args.sass_metrics),
                         "definitions": "the docstring of sass_metrics.py",
                         "cuobjdump": metrics.find_cuobjdump()},
        "shape_specialized_for": {"m": args.m, "n": args.n, "k": args.k, "group": args.group},
        "tile": TILE,
        "rows": rows,
    }
    print_sass_table(rows)
    write_json(args.out_dir / "w4a16_sass.json", record)
    return record


def print_sass_table(rows: list[dict]) -> None:
    """The sass step's numbers as a table (rows without a cubin show their notice)."""
    print(f"\n{'producer':8s} {'target':6s} {'stages':>6s} {'regs':>4s} {'loop insns':>10s} "
          f"{'MMA':>4s} {'insns/m16n8k16':>14s} {'dequant/m16n8k16':>16s} {'dequant/weight':>14s}")
    for row in rows:
        loop = row.get("main_loop")
        if loop is None:
            print(f"{row['producer']:8s} {row['target']:6s} "
                  f"{row.get('notice') or 'no main loop with MMA found'}")
            continue
        stages = str(row.get("num_stages", "-"))
        print(f"{row['producer']:8s} {row['target']:6s} {stages:>6s} {row['registers']:4d} "
              f"{loop['instructions']:10d} {loop['mma_instructions']:4d} "
              f"{loop['instructions_per_m16n8k16']:14.2f} {loop['dequant_per_m16n8k16']:16.2f} "
              f"{loop['dequant_thread_instructions_per_weight']:14.3f}")


# -- records -------------------------------------------------------------------------------------

def machine() -> dict:
    """The CPU model, logical cores and OS of this machine, and its load (other processes share
    the cores: the times are only as quiet as the machine was)."""
    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu_model": model, "logical_cores": os.cpu_count(), "platform": platform.platform(),
            "load_average_1_5_15_min_at_end": [round(v, 2) for v in os.getloadavg()]}


def versions() -> dict:
    """Versions of what the numbers depend on, and the repository's commit."""
    def git(*words: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *words], capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "triton": triton.__version__,
            "llvmlite": llvmlite.__version__, "tilevm_commit": commit or None,
            # uncommitted edits of what the numbers depend on: then the commit does not say it all
            "tilevm_uncommitted_changes": bool(git("status", "--porcelain", "--", "tilevm",
                                                   "examples")) if commit else None}


def write_json(path: Path, record: dict) -> None:
    """Write ``record`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


# -- command line --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="time,sass",
                        help="comma-separated steps to run: time, sass (default: both)")
    parser.add_argument("--m", type=int, default=512)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--group", type=int, default=TILE["group"])
    parser.add_argument("--repeats", type=int, default=3, help="warm calls timed (at least 3)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--cubin-dir", type=Path, default=RESULTS / "cubins")
    parser.add_argument("--sass-metrics", type=Path, default=BENCH / "sass_metrics.py",
                        help="path of sass_metrics.py (default: the copy in bench/)")
    args = parser.parse_args(argv)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if not set(args.steps) <= {"time", "sass"}:
        parser.error(f"--steps: unknown step in {args.steps}")
    if args.repeats < 3:
        parser.error("--repeats: at least 3 warm calls")
    args.out_dir = args.out_dir.resolve()
    args.cubin_dir = args.cubin_dir.resolve()
    args.sass_metrics = args.sass_metrics.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen steps; the sass step in a child process unless this is that child."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # The environment that changes what is measured belongs to the command.
    settings = [f"{name}={os.environ[name]}" for name in ("TILEVM_CPU_THREADS",)
                if name in os.environ]
    command = os.environ.get(_COMMAND) or " ".join(
        [*settings, "python bench/w4a16_vs_triton.py", *argv])
    triton_tile = (triton_w4a16.BLOCK_M, triton_w4a16.BLOCK_N, triton_w4a16.NUM_WARPS)
    if triton_tile != (TILE["bm"], TILE["bn"], TILE["warps"]):
        raise SystemExit("the Triton kernel's tile configuration differs from tilevm's example")
    started = time.perf_counter()
    in_child = os.environ.get(_SASS_CHILD) == "1"
    if "time" in args.steps and not in_child:
        time_step(args, command)
    status = 0
    if "sass" in args.steps:
        if in_child:
            sass_step(args, command)
        else:
            child = subprocess.run([sys.executable, __file__, *argv, "--steps", "sass"],
                                   env={**os.environ, _SASS_CHILD: "1", _COMMAND: command},
                                   check=False)
            status = child.returncode
    what = "the sass step" if in_child else "all steps"
    print(f"w4a16_vs_triton: {what} took {time.perf_counter() - started:.1f} s")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
