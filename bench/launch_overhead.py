"""Host-side overhead of a GPU call of a cached kernel (issue 13, item 4): ``kernel(x, y, out)``
with three torch tensors, from the call to the return of ``cuLaunchKernel``, median over
``--calls`` calls (10,000 by default) after the first call compiled and loaded the kernel.

Without ``--real`` nothing needs a GPU: the CUDA driver (``cuda.bindings.driver``) is replaced by
a stand-in whose every call returns success at once (``cuLaunchKernel`` does nothing) and which
says GPU 0 is an sm_90. The torch tensors are CPU tensors of a subclass that reports
``device == cuda:0`` (torch here is CPU-only), and ``torch.cuda.current_stream`` returns the
legacy default stream. Everything else is tilevm's real call path: argument binding and checks,
the specialization, the compiled-kernel memo, the grid, the parameter packing and
``CudaFunction.launch`` building its argument array. ``--args cai`` passes objects with
``__cuda_array_interface__`` instead of torch tensors.

With ``--real`` (on a GPU machine) the tensors are CUDA torch tensors and the driver is the real
one: the time then includes the real ``cuLaunchKernel``, queued without synchronization.

``--workspace`` calls ``add_tally`` instead, which also takes a zeroed workspace (as the split-K
kernels do): the call places and clears it before the launch.

Usage: ``python bench/launch_overhead.py [--calls N] [--real] [--args torch|cai] [--workspace]
[--profile]``.
The aim is under 20 µs per call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import tilevm as tv
from tilevm import f32

N = 1 << 20


@tv.kernel
def add(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], out: tv.Global[f32, "n"],
        *, block: tv.Const = 1024):
    tv.launch(grid=tv.cdiv(n, block), warps=4)
    i = tv.block_idx() * block
    tv.store(out, tv.load(x, (i,), (block,)) + tv.load(y, (i,), (block,)), (i,))


@tv.kernel
def add_tally(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], out: tv.Global[f32, "n"],
              *, block: tv.Const = 1024):
    """``add`` that also counts its blocks in a zeroed workspace (as split-K kernels count
    arrivals): a call places and clears a workspace before the launch."""
    tv.launch(grid=tv.cdiv(n, block), warps=4)
    blocks = tv.workspace((1,), tv.i32)
    i = tv.block_idx() * block
    tv.store(out, tv.load(x, (i,), (block,)) + tv.load(y, (i,), (block,)), (i,))
    tv.atomic_add(blocks, tv.full((1,), 1, tv.i32), (0,))


def fake_driver() -> Any:
    """A stand-in for ``cuda.bindings.driver``: GPU 0 is an sm_90, every call succeeds at once,
    ``cuLaunchKernel`` does nothing."""
    ok = 0
    attr = SimpleNamespace(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR=1,
                           CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR=2,
                           CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN=3)
    attributes = {1: 9, 2: 0, 3: 227 * 1024}
    return SimpleNamespace(
        CUresult=SimpleNamespace(CUDA_SUCCESS=ok), CUdevice_attribute=attr,
        CUfunction_attribute=SimpleNamespace(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=8),
        CUpointer_attribute=SimpleNamespace(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL=9),
        cuInit=lambda flags: (ok,), cuDeviceGetCount=lambda: (ok, 1),
        cuDeviceGet=lambda index: (ok, index), cuDeviceGetName=lambda n, h: (ok, b"Fake H100"),
        cuDeviceGetAttribute=lambda a, h: (ok, attributes[a]),
        cuDevicePrimaryCtxRetain=lambda h: (ok, 1), cuCtxGetCurrent=lambda: (ok, 1),
        cuCtxSetCurrent=lambda c: (ok,), cuModuleLoadData=lambda image: (ok, 2),
        cuModuleGetFunction=lambda m, name: (ok, 3), cuFuncSetAttribute=lambda *a: (ok,),
        cuPointerGetAttribute=lambda a, p: (ok, 0), CUstream=int,
        cuMemAlloc=lambda nbytes: (ok, 0x7E0000000000), cuMemsetD8Async=lambda *a: (ok,),
        cuLaunchKernel=lambda *a: (ok,))


def fake_cuda_tensors(count: int) -> list[Any]:
    """CPU torch tensors of a subclass that says it is on cuda:0 (torch here has no CUDA)."""
    import torch

    cuda0 = torch.device("cuda", 0)

    class FakeCudaTensor(torch.Tensor):
        __module__ = "torch.fake_cuda"  # tilevm tells torch tensors by their type's module
        # No __torch_function__ dispatch: a plain tensor's method costs, as on a real one.
        __torch_function__ = torch._C._disabled_torch_function_impl

        @property
        def device(self) -> Any:
            return cuda0

    torch.cuda.current_stream = lambda device=None: SimpleNamespace(cuda_stream=0)
    return [torch.empty(N, dtype=torch.float32).as_subclass(FakeCudaTensor)
            for _ in range(count)]


class CudaArrayInterface:
    """An array "on GPU 0" seen through ``__cuda_array_interface__`` (nothing is allocated)."""

    def __init__(self, address: int) -> None:
        self.__cuda_array_interface__ = {"shape": (N,), "typestr": "<f4", "version": 3,
                                         "data": (address, False), "strides": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--real", action="store_true",
                        help="the real driver and CUDA torch tensors (needs a GPU)")
    parser.add_argument("--args", choices=("torch", "cai"), default="torch")
    parser.add_argument("--workspace", action="store_true",
                        help="call add_tally (a zeroed workspace per launch) instead of add")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the calls")
    options = parser.parse_args()
    if options.workspace and options.args == "torch" and not options.real:
        parser.error("--workspace without --real needs --args cai (the fake CUDA tensors cannot "
                     "allocate torch's workspace)")
    kernel = add_tally if options.workspace else add

    if options.real:
        import torch

        args = [torch.randn(N, device="cuda") for _ in range(3)]
    else:
        import os

        from tilevm.runtime import cuda_driver

        os.environ.setdefault("TILEVM_CACHE_DIR", tempfile.mkdtemp(prefix="tilevm-bench-"))
        driver = fake_driver()
        cuda_driver._driver = lambda: driver
        args = (fake_cuda_tensors(3) if options.args == "torch"
                else [CudaArrayInterface(0x7F0000000000 + k * 4 * N) for k in range(3)])

    kernel(*args)  # compiles (or loads from the cache) and loads the module
    for _ in range(100):
        kernel(*args)
    if options.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        for _ in range(options.calls):
            kernel(*args)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    times = []
    clock = time.perf_counter_ns
    for _ in range(options.calls):
        t0 = clock()
        kernel(*args)
        times.append(clock() - t0)
    if options.real:
        import torch

        torch.cuda.synchronize()
        assert torch.equal(args[2], args[0] + args[1]), "the kernel computed a wrong sum"
    median = statistics.median(times) / 1000
    p90 = sorted(times)[int(0.9 * len(times))] / 1000
    driver = "real driver" if options.real else "cuLaunchKernel a no-op"
    what = "a zeroed workspace, " if options.workspace else ""
    print(f"launch overhead ({options.args} arguments, {what}{driver}): median {median:.1f} µs, "
          f"p90 {p90:.1f} µs per call over {options.calls} calls")


if __name__ == "__main__":
    main()
