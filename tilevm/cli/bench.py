"""``tilevm bench FILE:KERNEL --shape m=…``: where a kernel's time goes — lowering, CUDA C++,
NVRTC, the CPU backend's JIT, a CPU-backend run, and a GPU run where there is a GPU."""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from tilevm.cli.info import table
from tilevm.cli.run import add_arguments, prepare

__all__ = ["add_parser"]


@contextlib.contextmanager
def _cold_caches() -> Iterator[None]:
    """An empty cache directory for the block, so that compile and JIT times are cold."""
    saved = os.environ.get("TILEVM_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="tilevm-bench-") as folder:
        os.environ["TILEVM_CACHE_DIR"] = folder
        try:
            yield
        finally:
            if saved is None:
                del os.environ["TILEVM_CACHE_DIR"]
            else:
                os.environ["TILEVM_CACHE_DIR"] = saved


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _median_run(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm: the first call compiles
    times = []
    for _ in range(repeat):
        seconds, _ = _timed(fn)
        times.append(seconds)
    return statistics.median(times)


def _format(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def run(args: argparse.Namespace) -> int:
    """Measure each stage once (cold caches unless --warm) and the runs as medians."""
    from tilevm.backend.cpu import compile_kernel as jit_kernel
    from tilevm.backend.cuda import compile_cuda_without_spills, cuda_target, emit_cuda
    from tilevm.backend.lower import lower
    from tilevm.backend.lower.specialization import Specialization
    from tilevm.frontend.arguments import bind_arguments
    from tilevm.runtime.cpu_device import cpu_target
    from tilevm.runtime.cuda_driver import gpu_available

    kernel, ir, constants, arguments = prepare(args)
    bound = bind_arguments(ir, tuple(arguments))
    spec = Specialization.of_arguments(ir, bound.tensors, bound.dims)
    target = cuda_target(args.arch)
    rows = []
    with contextlib.nullcontext() if args.warm else _cold_caches():
        seconds, lowered = _timed(lambda: lower(ir, target.sm, spec))
        rows.append([f"lower for {target.name}", _format(seconds)])
        seconds, source = _timed(lambda: emit_cuda(lowered.thread, target))
        rows.append(["CUDA C++", _format(seconds)])
        seconds, binary = _timed(lambda: compile_cuda_without_spills(source, target))
        resources = binary.resources[lowered.thread.name]
        rows.append(["NVRTC", f"{_format(seconds)}  ({resources.registers} registers, "
                              f"{resources.spill_store_bytes} B spilled)"])
        seconds, host = _timed(lambda: lower(ir, cpu_target(ir), spec))
        rows.append(["lower for the CPU backend", _format(seconds)])
        seconds, _ = _timed(lambda: jit_kernel(host.thread))
        rows.append(["CPU-backend JIT", _format(seconds)])
        work = copy.deepcopy(arguments)
        cpu = _median_run(lambda: kernel(*work, device="cpu", **constants), args.repeat)
        rows.append([f"CPU-backend run (median of {args.repeat})", _format(cpu)])
    if gpu_available():
        from tilevm.cli.run import to_device
        from tilevm.runtime.cuda_driver import cuda_device

        device = cuda_device(0)
        on_gpu = [to_device(a) for a in arguments]

        def launch() -> None:
            kernel(*on_gpu, device="cuda", **constants)
            device.synchronize()

        gpu = _median_run(launch, args.repeat)
        rows.append([f"GPU run on {device.arch} (median of {args.repeat}, launch and "
                     "synchronize)", _format(gpu)])
    else:
        rows.append(["GPU run", "no GPU here"])
    print(table(["stage", "time"], rows))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``bench`` to the command's subparsers."""
    p = commands.add_parser("bench", help="time a kernel's compile, JIT and runs",
                            description="Time each stage of a kernel on random inputs: lowering, "
                                        "CUDA C++, NVRTC (for --arch), the CPU backend's "
                                        "lowering and JIT (with empty caches unless --warm), "
                                        "a CPU-backend run and, where there is a GPU, a GPU run "
                                        "(medians over --repeat runs after a warm-up).")
    add_arguments(p)
    p.add_argument("--arch", default="sm_90", help="the GPU target compiled for (default "
                                                   "sm_90)")
    p.add_argument("--repeat", type=int, default=5, help="runs per median (default 5)")
    p.add_argument("--warm", action="store_true",
                   help="use the cache directory as it is (default: empty caches, cold times)")
    p.set_defaults(run=run)
