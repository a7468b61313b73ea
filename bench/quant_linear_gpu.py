"""The low-bit linear layer on a GPU: time, speed-up over torch f16 and fraction of the roofline.

Issue 14, item 5 (GPU part). ``y = x · Wᵀ`` for W of Llama-2-7B's (4096, 4096), (11008, 4096),
(4096, 11008) and Llama-2-70B's (28672, 8192), M ∈ {1, 16, 4096}, W in u2/u3/u4/u8 codes with an
f16 scale per 128 columns and the implicit zero point, x and y in f16. Two halves, as
``bench/gpu_check.py``, so that the GPU machine needs no tilevm, NVRTC, lark or llvmlite:

- ``python bench/quant_linear_gpu.py --dry-run [--bundle DIR] [--only PATTERNS]`` (tilevm and
  NVRTC, no GPU): compiles, for every case, what the library's layer (``QuantLinear``) runs —
  the preparation kernels that turn the dense codes and scales into prepared words, then the
  prepared-weight GEMM ``launch_prepared_linear(variant="auto")`` picks with its default tiles
  (``quant_linear_gpu_cases.prepare_launches``, ``library_launch``) —, the dense-code kernel
  with its default tiles (``dense_launch``), the prepared tuning candidates, and two tiles of
  the f16 GEMM of ``examples/matmul.py`` at 4096³ to sm_90 cubins, writes the bundle
  (``manifest.json``, ``cubins/``; no data) and prints the plan.
- ``python3 bench/quant_linear_gpu.py --bundle DIR --results DIR`` (the GPU machine: numpy,
  ``cuda.bindings``, torch): measures the copy bandwidth, the tilevm f16 GEMM's rate (the
  ``mma.sync`` rate) and cuBLAS's (``torch.matmul`` f16), then per case makes random dense
  codes and scales with torch, prepares them with the bundle's preparation launches (timed
  apart: ``prepare_us``), launches the prepared GEMM once and checks its output against an f32
  matmul of the dequantized dense codes, times it, checks and times the dense kernel beside it
  (``dense_time_us``) and ``torch.matmul(x, W_f16.T)``, writes ``results.json`` after every case
  and prints a table; then, time permitting, tunes the prepared GEMM's tiles. Exit status 1 if
  a check failed.

``bench/README.md`` ("quant_linear_gpu.py") documents the bundle, the measurements and
the command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_BUNDLE = BENCH / "results" / "quant_linear_gpu" / "bundle"
DEFAULT_RESULTS = BENCH / "results" / "quant_linear_gpu"
MANIFEST_VERSION = 2
ZEROED_BLOCK = " zeroed workspaces"  # the block a launch's workspaces to clear share (no param's)
# The driver API the GPU run uses (None: cuda.bindings.driver) and where its torch tensors live
# ("cuda"). The tests put a fake driver here and "cpu": the fake runs each launch on tilevm's
# CPU backend on the bytes of torch's CPU tensors.
DRIVER_API: Any = None
TORCH_DEVICE = "cuda"
# The part of --budget-s the default tiles' pass may take when a tuning pass follows.
TUNING_SHARE = 0.5


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _shapes(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(n), int(k)) for n, k in (s.lower().split("x") for s in text.split(",") if s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shapes {text!r}: NxK,NxK,...") from None


# == The dry run: build the bundle (needs tilevm) ==============================================


def dry_run(args: argparse.Namespace) -> int:
    """Build the bundle and print the plan."""
    sys.path.insert(0, str(BENCH))
    import quant_linear_gpu_cases as cases_module

    start = time.perf_counter()
    cases = cases_module.all_cases(args.shapes or cases_module.SHAPES,
                                   args.rows or cases_module.ROWS,
                                   args.bits or cases_module.BITS, args.only)
    if not cases:
        print(f"quant_linear_gpu: --only {args.only!r} matches no case", file=sys.stderr)
        return 2
    bundle = Path(args.bundle)
    print(f"quant_linear_gpu --dry-run: {len(cases)} cases into {bundle}", flush=True)
    manifest = cases_module.build_bundle(bundle, cases, args.gemm_size,
                                         candidates=args.candidates)
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    print(cases_module.describe(manifest, bundle))
    print(f"bundle: {len(manifest['cases'])} cases, {len(manifest['gemms'])} GEMMs, "
          f"{manifest['cubins']} cubins, {size / 2**20:.2f} MiB in {bundle}")
    shown = bundle.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    print(f"dry run done in {time.perf_counter() - start:.1f} s; on the GPU machine (carry "
          f"{shown}): timeout 280 python3 bench/quant_linear_gpu.py --bundle {shown} "
          "--results DIR")
    return 0


# == The GPU run: numpy, cuda.bindings and torch; no tilevm ====================================


def unpack_codes(torch: Any, packed: Any, bits: int, rows: int, cols: int) -> Any:
    """The (rows, cols) integer codes (int32) of densely packed LSB-first ``bits``-bit fields
    (``packed``: uint8, row-major; code ``e`` is bits ``[e·bits, (e + 1)·bits)``)."""
    count, mask = rows * cols, (1 << bits) - 1
    data = packed.to(torch.int32)
    if 8 % bits == 0:  # no code straddles a byte
        shifts = torch.arange(0, 8, bits, dtype=torch.int32, device=packed.device)
        codes = (data.unsqueeze(-1) >> shifts) & mask
        return codes.reshape(-1)[:count].reshape(rows, cols)
    start = torch.arange(count, dtype=torch.int64, device=packed.device) * bits
    byte, shift = start >> 3, (start & 7).to(torch.int32)
    data = torch.cat([data, data.new_zeros(1)])  # the window of the last code may pass the end
    window = data[byte] | (data[byte + 1] << 8)  # bits ≤ 8: a code spans at most two bytes
    return ((window >> shift) & mask).reshape(rows, cols)


def dequantize(torch: Any, packed: Any, scales: Any, bits: int, n: int, k: int,
               group: int) -> Any:
    """The f16 (n, k) weights ``(code − 2^(bits−1)) · scale`` of u``bits`` codes: the code minus
    the zero point is exact in f16 and the product is rounded once (torch's f16 multiply rounds
    the exact product), as the kernel does (``weight_step``), so these are its weights bit for
    bit. Done in blocks of rows (an index per code of a 70B matrix would take gigabytes)."""
    row_bytes = k * bits // 8
    assert k * bits % 8 == 0, "rows of whole bytes"
    out = torch.empty((n, k), dtype=torch.float16, device=packed.device)
    zero = float(2 ** (bits - 1))
    step = max(1, (1 << 24) // k)
    for r in range(0, n, step):
        rows = min(step, n - r)
        codes = unpack_codes(torch, packed[r * row_bytes:(r + rows) * row_bytes], bits, rows, k)
        scale = scales[r:r + rows].repeat_interleave(group, dim=1)[:, :k]
        out[r:r + rows] = (codes.to(torch.float16) - zero) * scale
    return out


# The tolerance of a check (y computed from x (m, k) and the weights W (n, k), both f16):
# every product x_i·w_i is exact in f32 (11-bit significands), so the kernel's only errors are
# the f32 accumulation of k products, in any order (mma.sync's internal order, split-K's partial
# sums added atomically), at most γ_k·S with S = Σ|x_i·w_i| and γ_k ≈ k·2^-24, and the final
# rounding to f16, at most 2^-11·|y|. The f32 reference has an accumulation error of the same
# bound. Hence |y − ref| ≤ (2k + 2)·2^-24·S + 2^-11·|ref| + 2^-24 (the last term: half an f16
# subnormal step), tv.dot's numeric contract (DESIGN §3) plus the output rounding. For these
# inputs S/|y| is about 0.55·√k, so the bound is 2 % (k = 4096) to 8 % (k = 11008) of a typical
# |y|: a wrong tile, a stale output (y starts as NaN) or a missing split fails it.
F32_UNIT, F16_UNIT = 2.0**-24, 2.0**-11


def reference(torch: Any, x: Any, w: Any) -> tuple[Any, Any]:
    """(x·Wᵀ in f32, the bound above per element) for x (m, k) and W (n, k)."""
    k = x.shape[1]
    xf, wf = x.float(), w.float()
    ref = xf @ wf.t()
    magnitude = xf.abs() @ wf.abs().t()
    return ref, (2 * k + 2) * F32_UNIT * magnitude + F16_UNIT * ref.abs() + F32_UNIT


def compare(y: Any, ref: Any, bound: Any) -> dict[str, Any]:
    """Whether every element of y is within ``bound`` of ``ref`` (NaN and inf never are), how
    many are not, the largest error over its bound and the first element out."""
    error = (y.float() - ref).abs()
    bad = ~(error <= bound)
    count = int(bad.sum())
    result: dict[str, Any] = {"ok": count == 0, "mismatches": count,
                              "max_error_over_bound": float((error / bound).nan_to_num(
                                  nan=float("inf")).max()),
                              "max_abs_ref": float(ref.abs().max())}
    if count:
        index = int(bad.reshape(-1).nonzero()[0])
        result["first_mismatch"] = {"index": index,
                                    "got": float(y.reshape(-1)[index].float()),
                                    "want": float(ref.reshape(-1)[index]),
                                    "bound": float(bound.reshape(-1)[index])}
    return result


def check_output(torch: Any, y: Any, x: Any, w: Any) -> dict[str, Any]:
    """Compare y (m, n) with x·Wᵀ in f32 (W: (n, k)) under the bound above."""
    return compare(y, *reference(torch, x, w))


class Clock:
    """Times GPU work on torch's current stream with CUDA events: each repetition runs
    ``setup`` (the L2 flush, the workspaces' clearing), records an event, runs, records another;
    all are queued and the host waits once at the end (the GPU, busy with the flushes, is never
    waiting for the host inside a timed region)."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.stream = torch.cuda.current_stream()

    @property
    def handle(self) -> int:
        """The stream handle for ``cuLaunchKernel``."""
        return int(self.stream.cuda_stream)

    def synchronize(self) -> None:
        self.torch.cuda.synchronize()

    def times_ms(self, setup: Any, run: Any, reps: int) -> list[float]:
        events = []
        for _ in range(reps):
            setup()
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            run()
            end.record(self.stream)
            events.append((start, end))
        self.synchronize()
        return [start.elapsed_time(end) for start, end in events]


class HostClock(Clock):
    """The clock of the CPU stand-in (tests): every launch is synchronous, wall time."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    @property
    def handle(self) -> int:
        return 0

    def synchronize(self) -> None:
        pass

    def times_ms(self, setup: Any, run: Any, reps: int) -> list[float]:
        times = []
        for _ in range(reps):
            setup()
            t0 = time.perf_counter()
            run()
            times.append(1e3 * (time.perf_counter() - t0))
        return times


@dataclass
class KernelLaunch:
    """A kernel bound to its buffers. The kernel is given only their addresses: this object
    keeps the tensors alive (freed, their memory would go to the next allocation while the
    kernel still writes there)."""

    bench: Bench
    entry: dict[str, Any]
    buffers: dict[str, Any]
    params: list[Any]
    function: Any

    def run(self) -> None:
        """Queue the kernel on the clock's stream."""
        e = self.entry
        self.bench.device.launch(self.function, e["grid"], e["block"], e["shared_bytes"],
                                 self.params, stream=self.bench.clock.handle)

    def clear(self) -> None:
        """Zero the workspaces the kernel needs zeroed and does not restore itself: queued
        before every launch, one memset over the block they share, as tilevm's runtime does.
        (The split-K kernels restore their counters and sums: their buffers are zeroed once,
        when allocated, and nothing is cleared per launch.)"""
        if self.entry["zero_before_launch"]:
            self.buffers[ZEROED_BLOCK].zero_()


class Bench:
    """The GPU side's state: the driver (``cuda_loader.Device``), loaded modules, the clock, the
    L2 flush buffer and the timing options."""

    def __init__(self, args: argparse.Namespace, bundle: Path, torch: Any, loader: Any) -> None:
        self.torch, self.loader, self.bundle, self.args = torch, loader, bundle, args
        self.device = loader.Device(0, DRIVER_API)
        self.clock = Clock(torch) if TORCH_DEVICE == "cuda" else HostClock(torch)
        self.flush_buffer = torch.empty(args.flush_bytes, dtype=torch.uint8, device=TORCH_DEVICE)
        self.functions: dict[tuple[str, str], Any] = {}
        self.generator = torch.Generator(device=TORCH_DEVICE).manual_seed(0)

    def function(self, entry: dict[str, Any]) -> Any:
        """The entry's kernel, its cubin loaded once."""
        key = (entry["cubin"], entry["function"])
        if key not in self.functions:
            module = self.device.load_module((self.bundle / entry["cubin"]).read_bytes())
            self.functions[key] = module.function(entry["function"], entry["shared_bytes"])
        return self.functions[key]

    def flush(self) -> None:
        """Write the flush buffer (256 MiB by default, beyond H200's 50 MiB L2): the next run
        finds none of its operands in the L2."""
        self.flush_buffer.fill_(0x5A)

    def buffers(self, entry: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """A torch tensor per buffer of ``entry``: ``given`` ones as they are (the buffers a
        case's launches share by name; each must have the bytes the launch reads), activations
        standard normal f16, the output NaN (an unwritten element fails the check), the
        prepared words a launch ``writes`` 0xA5 bytes (an unwritten word is wrong weights),
        dummies (operands the kernel does not read) and workspaces zero bytes. A ``prepared``
        buffer that the launch reads and no earlier launch wrote is a ValueError (a broken
        chain)."""
        torch = self.torch
        out = {}
        for name, spec in entry["buffers"].items():
            if name in given:
                out[name] = given[name]
                nbytes = given[name].numel() * given[name].element_size()
                if nbytes != spec["nbytes"]:
                    raise ValueError(f"buffer {name} of {entry['name']}: the launch reads "
                                     f"{spec['nbytes']} bytes, the case's tensor has {nbytes}")
            elif spec["role"] == "prepared":
                if name not in entry.get("writes", []):
                    raise ValueError(f"buffer {name} of {entry['name']}: prepared words that no "
                                     "launch before it wrote")
                out[name] = torch.full((spec["nbytes"],), 0xA5, dtype=torch.uint8,
                                       device=TORCH_DEVICE)
            elif spec["role"] == "activations":
                out[name] = torch.randn(*spec["shape"], dtype=torch.float16, device=TORCH_DEVICE,
                                        generator=self.generator)
            elif spec["role"] == "output":
                out[name] = torch.full(spec["shape"], float("nan"), dtype=torch.float16,
                                       device=TORCH_DEVICE)
            elif name in entry["zero_before_launch"]:
                continue  # below, in the block they share
            else:
                out[name] = torch.zeros(max(spec["nbytes"], 16), dtype=torch.uint8,
                                        device=TORCH_DEVICE)
        if entry["zero_before_launch"]:
            # One block for the workspaces to clear, each at a multiple of 256 bytes (as
            # tilevm.runtime.gpu_workspaces lays a launch's workspaces out): one memset clears it.
            offsets, total = {}, 0
            for name in entry["zero_before_launch"]:
                offsets[name] = total
                total += -(-entry["buffers"][name]["nbytes"] // 256) * 256
            out[ZEROED_BLOCK] = torch.zeros(total, dtype=torch.uint8, device=TORCH_DEVICE)
            for name, offset in offsets.items():
                out[name] = out[ZEROED_BLOCK][offset:offset + entry["buffers"][name]["nbytes"]]
        for name, tensor in out.items():
            if tensor.data_ptr() % 16:  # the cubins assume 16-byte aligned tensors
                raise ValueError(f"buffer {name} of {entry['name']} is not 16-byte aligned")
        return out

    def launcher(self, entry: dict[str, Any], buffers: dict[str, Any]) -> KernelLaunch:
        """The entry's kernel bound to ``buffers``, its parameters in the cubin's order."""
        Pointer, Value = self.loader.Pointer, self.loader.Value
        params = [Pointer(buffers[p["buffer"]].data_ptr()) if "buffer" in p
                  else Value(int(p["bits"]), int(p["bytes"])) for p in entry["params"]]
        return KernelLaunch(self, entry, buffers, params, self.function(entry))

    def median_us(self, run: Any, setup: Any, share_s: float,
                  reps: int | None = None) -> tuple[float, float, int]:
        """(median µs, min µs, repetitions): ``--warmup`` runs, then as many timed runs as fit
        ``share_s`` seconds (estimated from the warm-up), at least ``--reps``, at most
        ``--max-reps`` (or one warm-up and exactly ``reps``); ``setup`` (the flush and any
        clearing) runs before each, untimed."""
        warmup = self.args.warmup if reps is None else 1
        t0 = time.perf_counter()
        self.clock.times_ms(setup, run, warmup)
        each = (time.perf_counter() - t0) / max(warmup, 1)
        if reps is None:
            reps = int(min(max(share_s / max(each, 1e-6), self.args.reps), self.args.max_reps))
        times = self.clock.times_ms(setup, run, reps)
        return 1e3 * statistics.median(times), 1e3 * min(times), reps

    def copy_bandwidth(self) -> dict[str, Any]:
        """A device-to-device copy of ``--copy-bytes`` with torch (1 GiB: the L2 plays no part):
        bytes read plus written over the median time of ``--reps`` copies."""
        torch = self.torch
        source = torch.empty(self.args.copy_bytes, dtype=torch.uint8, device=TORCH_DEVICE)
        source.fill_(1)
        target = torch.empty_like(source)
        median, _, reps = self.median_us(lambda: target.copy_(source), lambda: None, 0.0)
        moved = 2 * self.args.copy_bytes
        return {"bytes": self.args.copy_bytes, "moved_bytes": moved, "median_us": median,
                "reps": reps, "gb_per_s": moved / median / 1e3}

    def torch_gemm(self, size: int) -> dict[str, Any]:
        """torch.matmul f16 at size³ (cuBLAS; wgmma kernels on an H100/H200), L2 flushed."""
        torch = self.torch
        a, b = (torch.randn(size, size, dtype=torch.float16, device=TORCH_DEVICE,
                            generator=self.generator) for _ in range(2))
        c = torch.empty(size, size, dtype=torch.float16, device=TORCH_DEVICE)
        median, best, reps = self.median_us(lambda: torch.matmul(a, b, out=c), self.flush, 0.5)
        return {"m": size, "n": size, "k": size, "median_us": median, "min_us": best,
                "reps": reps, "tflops": 2 * size**3 / median / 1e6}

    def tilevm_gemm(self, entry: dict[str, Any]) -> dict[str, Any]:
        """One f16 GEMM of the bundle: launch, check against f32, time (L2 flushed)."""
        buffers = self.buffers(entry, {})
        launch = self.launcher(entry, buffers)
        launch.clear()
        launch.run()
        self.clock.synchronize()
        out = buffers["c"].reshape(entry["m"], entry["n"])
        a = buffers["a"].reshape(entry["m"], entry["k"])
        b = buffers["b"].reshape(entry["k"], entry["n"])
        check = check_output(self.torch, out, a, b.t())

        def setup() -> None:
            self.flush()
            launch.clear()

        median, best, reps = self.median_us(launch.run, setup, 0.5)
        return {"name": entry["name"], "tiles": entry["tiles"], "check": check,
                "median_us": median, "min_us": best, "reps": reps,
                "tflops": entry["flops"] / median / 1e6, "registers": entry["registers"]}


def case_buffer(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """The description of the case's buffer ``name`` in the first of its launches that has it
    (preparation, the prepared GEMM, the dense kernel); KeyError if none has."""
    for launch in [*entry.get("prepare", []), entry, entry.get("dense", {})]:
        if name in launch.get("buffers", {}):
            return launch["buffers"][name]
    raise KeyError(f"{entry['name']}: no launch has a buffer {name!r}")


def _weights(bench: Bench, entry: dict[str, Any]) -> dict[str, Any]:
    """Random codes (uniform bytes), scales uniform in [0.05, 0.15]·2^-(bits−1) (|W| up to about
    0.15, so |y| stays far below f16's range at k = 11008), the dequantized f16 weights, and
    the prepared words (``wp``, ``sp``) the case's preparation launches make of them, with the
    time of that chain (:func:`prepare_weights`)."""
    torch, n, k, bits = bench.torch, entry["n"], entry["k"], entry["bits"]
    spec_w, spec_s = case_buffer(entry, "w"), case_buffer(entry, "scales")
    codes = torch.randint(0, 256, (spec_w["nbytes"],), dtype=torch.uint8, device=TORCH_DEVICE,
                          generator=bench.generator)
    unit = 2.0 ** -(bits - 1)
    scales = (torch.rand(*spec_s["shape"], device=TORCH_DEVICE, generator=bench.generator)
              * 0.1 + 0.05).mul(unit).half()
    weights = {"w": codes, "scales": scales,
               "w_f16": dequantize(torch, codes, scales, bits, n, k, entry["group"])}
    weights.update(prepare_weights(bench, entry, weights))
    return weights


def prepare_weights(bench: Bench, entry: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Run the case's preparation launches in order on ``given`` (the dense codes ``w`` and
    ``scales``), each reading the buffers of those before it by name and adding what it
    ``writes`` (the prepared words ``wp``, ``sp``); then time the whole chain (L2 flushed,
    ``--reps`` runs: offline work, not part of a call). Returns the written buffers and
    ``prepare_us`` (median), ``prepare_min_us``, ``prepare_reps``."""
    shared = dict(given)
    launches = []
    for step in entry.get("prepare", []):
        launch = bench.launcher(step, bench.buffers(step, shared))
        launch.clear()
        launch.run()
        shared.update({name: launch.buffers[name] for name in step["writes"]})
        launches.append(launch)
    bench.clock.synchronize()
    out = {name: shared[name] for name in shared if name not in given}
    if launches:
        def chain() -> None:
            for launch in launches:
                launch.run()

        def setup() -> None:
            bench.flush()
            for launch in launches:
                launch.clear()

        median, best, reps = bench.median_us(chain, setup, 0.0, bench.args.reps)
        out.update(prepare_us=median, prepare_min_us=best, prepare_reps=reps)
    return out


def _rates(entry: dict[str, Any], median_us: float, torch_us: float,
           rates: dict[str, Any]) -> dict[str, float]:
    """Speed-up over torch, GB/s and TFLOP/s and their fractions of the measured peaks."""
    out = {"time_us": median_us, "speedup": torch_us / median_us,
           "gb_per_s": entry["bytes_moved"] / median_us / 1e3,
           "tflops": entry["flops"] / median_us / 1e6}
    out["fraction_of_copy_bandwidth"] = out["gb_per_s"] / rates["copy_gb_per_s"]
    if rates.get("mma_tflops"):
        out["fraction_of_mma"] = out["tflops"] / rates["mma_tflops"]
    out["fraction_of_cublas"] = out["tflops"] / rates["cublas_tflops"]
    # The roofline: the time the bytes take at the copy bandwidth or the FLOPs at the mma.sync
    # rate (cuBLAS's wgmma rate for the second figure), whichever is longer, over the time.
    memory_us = entry["bytes_moved"] / rates["copy_gb_per_s"] / 1e3
    for key, peak in (("fraction_of_roofline", rates.get("mma_tflops")),
                      ("fraction_of_roofline_cublas", rates["cublas_tflops"])):
        if peak:
            out[key] = max(memory_us, entry["flops"] / peak / 1e6) / median_us
    return out


def _launch_and_check(bench: Bench, entry: dict[str, Any], given: dict[str, Any], ref: Any,
                      bound: Any) -> tuple[dict[str, Any], KernelLaunch, Any]:
    """Buffers for ``entry`` (``given`` ones shared), one launch after clearing its
    workspaces, the output compared with (ref, bound). Returns (check, launch, setup): setup
    flushes the L2 and then clears the workspaces (their few KiB then sit in the L2)."""
    launch = bench.launcher(entry, bench.buffers(entry, given))
    launch.clear()
    launch.run()
    bench.clock.synchronize()
    check = compare(launch.buffers["y"].reshape(ref.shape), ref, bound)

    def setup() -> None:
        bench.flush()
        launch.clear()

    return check, launch, setup


def _shared_buffers(weights: dict[str, Any], x: Any) -> dict[str, Any]:
    """The tensors a case's launches share by name: x, the dense codes and scales, the prepared
    words."""
    return {"x": x, **{name: value for name, value in weights.items()
                       if hasattr(value, "data_ptr") and name != "w_f16"}}


def run_case(bench: Bench, entry: dict[str, Any], weights: dict[str, Any],
             torch_times: dict[tuple[int, int, int], dict[str, float]], share_s: float,
             rates: dict[str, Any]) -> dict[str, Any]:
    """The default tiles: the prepared GEMM (on the words ``weights``' preparation made)
    launched once and checked against the dequantized dense codes, timed; the dense kernel the
    same way (``dense_*``); torch.matmul(x, W_f16.T) timed (once per shape and m: it does not
    depend on the bit width); the derived rates (of the prepared GEMM)."""
    torch = bench.torch
    m, n, k = entry["m"], entry["n"], entry["k"]
    x = torch.randn(m, k, dtype=torch.float16, device=TORCH_DEVICE, generator=bench.generator)
    ref, bound = reference(torch, x, weights["w_f16"])
    given = _shared_buffers(weights, x)
    check, launch, setup = _launch_and_check(bench, entry, given, ref, bound)
    dense = entry.get("dense")
    if dense is not None:
        dense_check, dense_launch, dense_setup = _launch_and_check(bench, dense, given, ref,
                                                                   bound)
    del ref, bound
    result: dict[str, Any] = {
        "name": entry["name"], "n": n, "k": k, "m": m, "bits": entry["bits"],
        "variant": entry["variant"], "tiles": entry["tiles"], "bk": entry.get("bk"),
        "grid": entry["grid"], "registers": entry["registers"],
        "bytes_moved": entry["bytes_moved"], "flops": entry["flops"], "check": check}
    for key in ("prepare_us", "prepare_min_us", "prepare_reps"):
        if key in weights:
            result[key] = weights[key]
    # The shares: the prepared GEMM, the dense kernel, torch.
    median, best, reps = bench.median_us(launch.run, setup, share_s / 3)
    if entry["zero_before_launch"]:
        # What a library call costs the GPU: the runtime clears the workspaces (a memset on
        # the launch's stream) before each launch; timed here with the kernel, --reps runs.
        def clear_and_run() -> None:
            launch.clear()
            launch.run()

        result["time_with_clear_us"] = bench.median_us(clear_and_run, bench.flush, 0.0,
                                                       bench.args.reps)[0]
    del launch
    if dense is not None:
        d_median, d_best, d_reps = bench.median_us(dense_launch.run, dense_setup, share_s / 3)
        result.update(dense_variant=dense["variant"], dense_tiles=dense["tiles"],
                      dense_check=dense_check, dense_time_us=d_median, dense_min_us=d_best,
                      dense_reps=d_reps, dense_registers=dense["registers"],
                      speedup_over_dense=d_median / median)
        del dense_launch
    key = (n, k, m)
    if key not in torch_times:
        w_t = weights["w_f16"].t()
        out = torch.empty(m, n, dtype=torch.float16, device=TORCH_DEVICE)
        t_median, t_best, t_reps = bench.median_us(lambda: torch.matmul(x, w_t, out=out),
                                                   bench.flush, share_s / 3)
        torch_times[key] = {"median_us": t_median, "min_us": t_best, "reps": t_reps}
    baseline = torch_times[key]
    result.update(min_us=best, reps=reps, torch_us=baseline["median_us"],
                  torch_reps=baseline["reps"])
    result.update(_rates(entry, median, baseline["median_us"], rates))
    return result


def tune_case(bench: Bench, entry: dict[str, Any], weights: dict[str, Any], torch_us: float,
              share_s: float, rates: dict[str, Any]) -> dict[str, Any]:
    """The tuning pass of one case: the default tiles and every candidate of the bundle, each
    launched once and checked, then timed with ``--tune-reps`` runs (L2 flushed); the fastest
    that passed timed again as the default was, with its rates."""
    torch = bench.torch
    m, k = entry["m"], entry["k"]
    x = torch.randn(m, k, dtype=torch.float16, device=TORCH_DEVICE, generator=bench.generator)
    ref, bound = reference(torch, x, weights["w_f16"])
    given = _shared_buffers(weights, x)
    tried: list[dict[str, Any]] = []
    fastest: tuple[float, dict[str, Any], Any, Any] | None = None
    for candidate in [entry, *entry.get("candidates", [])]:
        record: dict[str, Any] = {"tiles": candidate["tiles"]}
        tried.append(record)
        if "error" in candidate:  # did not compile
            record["compile_error"] = candidate["error"]
            continue
        candidate = {**entry, **candidate}  # sizes, name and roles from the case
        try:
            check, launch, setup = _launch_and_check(bench, candidate, given, ref, bound)
            record["check_ok"] = check["ok"]
            if not check["ok"]:
                record["check"] = check
                continue
            record["median_us"] = bench.median_us(launch.run, setup, 0.0,
                                                  bench.args.tune_reps)[0]
        except Exception as error:  # recorded; the next candidate may still run
            record["error"] = f"{type(error).__name__}: {error}"
            continue
        if fastest is None or record["median_us"] < fastest[0]:
            fastest = (record["median_us"], candidate, launch, setup)
    del ref, bound
    out: dict[str, Any] = {"tried": tried}
    if fastest is not None:
        _, candidate, launch, setup = fastest
        median, best, reps = bench.median_us(launch.run, setup, share_s)
        out.update(tiles=candidate["tiles"], grid=candidate["grid"], min_us=best, reps=reps,
                   registers=candidate["registers"])
        out.update(_rates(entry, median, torch_us, rates))
    return out


def table(results: list[dict[str, Any]]) -> str:
    """The cases as a Markdown table (the prepared GEMM with its default tiles, the dense
    kernel's time beside it); a second one for the tuning pass where it ran."""
    lines = ["| case | variant | µs | dense µs | over dense | prepare µs | torch µs | speed-up "
             "| GB/s | of copy | TFLOP/s | of mma | of cuBLAS | of roofline | check |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in results:
        if "time_us" not in r:
            lines.append(f"| {r['name']} | {r.get('variant', '')} | | | | | | | | | | | | | "
                         f"{r.get('error') or r.get('skipped') or 'not timed'} |")
            continue
        mma, roof = (f"{r[key]:.1%}" if key in r else "–"
                     for key in ("fraction_of_mma", "fraction_of_roofline"))
        dense, over, prepare = (f"{r[key]:.{digits}f}" if key in r else "–" for key, digits in (
            ("dense_time_us", 1), ("speedup_over_dense", 2), ("prepare_us", 1)))
        check = "ok" if r["check"]["ok"] else "FAILED"
        if r.get("dense_check", {}).get("ok") is False:
            check += ", dense FAILED"
        lines.append(
            f"| {r['name']} | {r['variant']} | {r['time_us']:.1f} | {dense} | {over} | "
            f"{prepare} | {r['torch_us']:.1f} | "
            f"{r['speedup']:.2f} | {r['gb_per_s']:.0f} | {r['fraction_of_copy_bandwidth']:.1%} | "
            f"{r['tflops']:.1f} | {mma} | {r['fraction_of_cublas']:.1%} | {roof} | {check} |")
    tuned = [r for r in results if "tuned" in r]
    if tuned:
        lines += ["", "| case | default µs | tuned µs | tuned tiles | tried | speed-up | of copy "
                  "| of roofline |", "|---|--:|--:|---|--:|--:|--:|--:|"]
        for r in tuned:
            t = r["tuned"]
            if "time_us" not in t:
                lines.append(f"| {r['name']} | {r.get('time_us', 0):.1f} | | "
                             f"{t.get('skipped') or t.get('error') or 'no tile passed'} | "
                             f"{len(t.get('tried', []))} | | | |")
                continue
            tiles = " ".join(f"{k}={v}" for k, v in t["tiles"].items())
            roof = f"{t['fraction_of_roofline']:.1%}" if "fraction_of_roofline" in t else "–"
            lines.append(f"| {r['name']} | {r.get('time_us', 0):.1f} | {t['time_us']:.1f} | "
                         f"{tiles} | {len(t['tried'])} | {t['speedup']:.2f} | "
                         f"{t['fraction_of_copy_bandwidth']:.1%} | {roof} |")
    return "\n".join(lines)


class _Weights:
    """One weight matrix at a time (a 70B one is gigabytes with its f16 copy), made again when
    the shape or bit width changes."""

    def __init__(self, bench: Bench) -> None:
        self.bench, self.key, self.value = bench, None, {}

    def get(self, entry: dict[str, Any]) -> dict[str, Any]:
        key = (entry["n"], entry["k"], entry["bits"])
        if key != self.key:
            self.key, self.value = None, {}  # the last matrix's memory first
            self.value, self.key = _weights(self.bench, entry), key
        return self.value


def gpu_run(args: argparse.Namespace, command: str) -> int:
    """Run the bundle: rates, every case with its default tiles, then (time permitting) the
    tuning pass; results.json after each step."""
    start = time.perf_counter()
    bundle = Path(args.bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        print(f"quant_linear_gpu: {bundle} has manifest version {manifest.get('version')}, this "
              f"script reads {MANIFEST_VERSION}: rebuild it with --dry-run", file=sys.stderr)
        return 2
    sys.path.insert(0, str(BENCH))
    import cuda_loader
    import torch

    # The f32 references must be f32 (no TF32): the tolerance assumes f32 accumulation. Off by
    # default; said here in the API of the torch at hand (2.9 added fp32_precision).
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
    bench = Bench(args, bundle, torch, cuda_loader)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "results.json"
    report: dict[str, Any] = {
        "command": command, "date": _now(), "device": bench.device.name,
        "driver_version": bench.device.driver_version, "torch": torch.__version__,
        "torch_cuda": getattr(torch.version, "cuda", None), "python": sys.version.split()[0],
        "bundle": {k: manifest[k] for k in ("commit", "created", "target", "group")},
        "tuning": manifest["tuning"], "rates": {}, "gemms": [], "cases": []}

    def save() -> None:
        report["elapsed_s"] = round(time.perf_counter() - start, 1)
        path.write_text(json.dumps(report, indent=1) + "\n")

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {text}", flush=True)

    def left(fraction: float = 1.0) -> float:
        return args.budget_s * fraction - (time.perf_counter() - start)

    say(f"quant_linear_gpu on {report['device']} (driver {report['driver_version']}, torch "
        f"{report['torch']}): {bundle}")
    rates = report["rates"]
    copy = bench.copy_bandwidth()
    rates["copy"], rates["copy_gb_per_s"] = copy, copy["gb_per_s"]
    say(f"copy bandwidth {copy['gb_per_s']:.0f} GB/s (read + write of {copy['bytes']} B)")
    size = manifest["gemms"][0]["m"] if manifest["gemms"] else 4096
    cublas = bench.torch_gemm(size)
    rates["cublas"], rates["cublas_tflops"] = cublas, cublas["tflops"]
    say(f"torch.matmul f16 {size}³: {cublas['tflops']:.1f} TFLOP/s")
    failed: list[str] = []
    for entry in manifest["gemms"]:
        try:
            gemm = bench.tilevm_gemm(entry)
        except Exception as error:  # recorded; the cases still run
            gemm = {"name": entry["name"], "error": f"{type(error).__name__}: {error}"}
        report["gemms"].append(gemm)
        if "error" in gemm or not gemm["check"]["ok"]:
            failed.append(entry["name"])
            say(f"{entry['name']}: FAILED {gemm.get('error', gemm.get('check'))}")
        else:
            say(f"{entry['name']}: {gemm['tflops']:.1f} TFLOP/s (mma.sync), check ok")
    good = [g["tflops"] for g in report["gemms"] if "check" in g and g["check"]["ok"]]
    if good:
        rates["mma_tflops"] = max(good)
    save()
    patterns = [p for p in (args.only or "").split(",") if p]
    cases = [e for e in manifest["cases"]
             if not patterns or any(fnmatch(e["name"], p) for p in patterns)]
    tuning = not args.no_tune and any(e.get("candidates") for e in cases)
    # The default tiles first, for every case: a candidate of the tuning pass that faults (a
    # dead context) cannot cost the defaults' numbers. Their repetitions are sized to leave
    # 1 − TUNING_SHARE of the budget to the tuning pass; they stop only at the whole budget.
    first_budget = TUNING_SHARE if tuning else 1.0
    torch_times: dict[tuple[int, int, int], dict[str, float]] = {}
    weights = _Weights(bench)
    results: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(cases):
        if left() <= 0:
            result = {"name": entry["name"], "variant": entry["variant"],
                      "skipped": "time budget spent"}
        else:
            # An equal share of what is left per case (none: --reps runs); inputs and checks
            # take about a third of a case's time.
            share = max(left(first_budget), 0.0) / (len(cases) - index) / 1.5
            try:
                result = run_case(bench, entry, weights.get(entry), torch_times, share, rates)
            except Exception as error:  # a CUDA error, an allocation failure: recorded
                result = {"name": entry["name"], "variant": entry["variant"],
                          "error": f"{type(error).__name__}: {error}"}
            if "error" in result or not result["check"]["ok"]:
                failed.append(entry["name"])
                say(f"{entry['name']}: FAILED {result.get('error', result.get('check'))}")
            else:
                cleared = (f" ({result['time_with_clear_us']:.1f} with the clearing)"
                           if "time_with_clear_us" in result else "")
                prepared = (f", prepared in {result['prepare_us']:.1f} µs"
                            if "prepare_us" in result else "")
                dense = (f", dense {result['dense_time_us']:.1f} µs"
                         if "dense_time_us" in result else "")
                say(f"{entry['name']}: {result['time_us']:.1f} µs{cleared} "
                    f"({result['reps']} runs{prepared}){dense}, "
                    f"torch {result['torch_us']:.1f} µs, ×{result['speedup']:.2f}, "
                    f"{result['fraction_of_copy_bandwidth']:.0%} of copy bandwidth")
            if result.get("dense_check", {}).get("ok") is False:  # the dense kernel's row
                failed.append(f"{entry['name']} dense")
                say(f"{entry['name']}: dense kernel FAILED {result['dense_check']}")
        results[entry["name"]] = result
        report["cases"].append(result)
        save()
    if tuning:
        say("tuning pass: the candidates' tiles of each case")
        for index, entry in enumerate(cases):
            result = results[entry["name"]]
            if "time_us" not in result or not result["check"]["ok"]:
                continue
            if left() <= 0:
                result["tuned"] = {"skipped": "time budget spent"}
                continue
            share = left() / (len(cases) - index) / 3
            try:
                tuned = tune_case(bench, entry, weights.get(entry), result["torch_us"], share,
                                  rates)
            except Exception as error:
                tuned = {"error": f"{type(error).__name__}: {error}"}
            result["tuned"] = tuned
            for record in tuned.get("tried", []):  # tiles the autotuner may pick: a bug
                if record.get("check_ok") is False or "error" in record:
                    failed.append(f"{entry['name']} {record['tiles']}")
                    say(f"{entry['name']}: tiles {record['tiles']} FAILED "
                        f"{record.get('error', record.get('check'))}")
            if "time_us" in tuned:
                say(f"{entry['name']}: tuned {tuned['time_us']:.1f} µs with {tuned['tiles']} "
                    f"({len(tuned['tried'])} tiles tried; default {result['time_us']:.1f} µs)")
            else:
                say(f"{entry['name']}: tuning found nothing: {tuned.get('error', tuned)}")
            save()
    report["failed"] = failed
    report["skipped"] = [r["name"] for r in report["cases"] if "skipped" in r]
    save()
    print(table(report["cases"]))
    passed = sum(1 for r in report["cases"] if r.get("check", {}).get("ok"))
    print(f"quant_linear_gpu: {passed}/{len(report['cases'])} cases passed their check, "
          f"{len(report['skipped'])} skipped, {report['elapsed_s']} s; results in {path}"
          + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="build the bundle and print what a GPU run would do (no GPU)")
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE),
                        help=f"the bundle directory (default {DEFAULT_BUNDLE.relative_to(ROOT)})")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS),
                        help="where the GPU run writes results.json")
    parser.add_argument("--only", help="comma-separated fnmatch patterns of case names "
                                       "(u4_n4096_k4096_m1, u3_*_m16)")
    parser.add_argument("--shapes", type=_shapes, help="dry run: NxK,... instead of the four")
    parser.add_argument("--rows", type=_int_list, help="dry run: M values instead of 1,16,4096")
    parser.add_argument("--bits", type=_int_list, help="dry run: bit widths instead of 2,3,4,8")
    parser.add_argument("--gemm-size", type=int, default=4096,
                        help="dry run: the f16 GEMMs' size (default 4096)")
    parser.add_argument("--reps", type=int, default=20, help="at least this many timed runs")
    parser.add_argument("--max-reps", type=int, default=200, help="at most this many")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before them")
    parser.add_argument("--no-tune", action="store_true",
                        help="GPU run: skip the tuning pass (the default tiles only)")
    parser.add_argument("--tune-reps", type=int, default=5,
                        help="GPU run: timed runs per candidate in the tuning pass")
    parser.add_argument("--candidates", type=int,
                        help="dry run: at most this many tiles per case besides the defaults "
                             "for the tuning pass (default: all; 0: none)")
    parser.add_argument("--budget-s", type=float, default=170.0,
                        help="seconds for the whole GPU run; cases past it are skipped")
    parser.add_argument("--copy-bytes", type=int, default=2**30, help="the bandwidth copy's size")
    parser.add_argument("--flush-bytes", type=int, default=256 * 2**20,
                        help="the buffer written before each timed run to flush the L2")
    args = parser.parse_args(argv)
    if args.dry_run:
        return dry_run(args)
    command = "python3 bench/quant_linear_gpu.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    return gpu_run(args, command)


if __name__ == "__main__":
    raise SystemExit(main())
