"""Test session setup: one temporary cache directory shared by every xdist worker, one CPU
backend thread per worker, and a text-form round trip of every kernel a test builds."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

# Helpers shared by tests anywhere in the tree (execution_check.py) live next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config) -> None:
    # Workers are started after the controller configures, so they inherit these variables and
    # share the compiled binaries and JIT objects of the session.
    if "TILEVM_CACHE_DIR" not in os.environ:
        os.environ["TILEVM_CACHE_DIR"] = tempfile.mkdtemp(prefix="tilevm-test-cache-")
        config._tilevm_made_cache_dir = os.environ["TILEVM_CACHE_DIR"]
    # Under xdist each worker already occupies a core: more CPU-backend threads only contend.
    if getattr(config.option, "numprocesses", None) and "TILEVM_CPU_THREADS" not in os.environ:
        os.environ["TILEVM_CPU_THREADS"] = "1"
        config._tilevm_set_threads = True


def pytest_unconfigure(config) -> None:
    # Only the process that made the directory removes it: the controller, after every worker.
    made = getattr(config, "_tilevm_made_cache_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
        del os.environ["TILEVM_CACHE_DIR"]
    if getattr(config, "_tilevm_set_threads", False):
        del os.environ["TILEVM_CPU_THREADS"]


@pytest.fixture(autouse=True)
def every_built_kernel_reads_back_from_its_text(monkeypatch):
    """Every kernel any test builds must read back from its text form (issue 4: the text form
    round-trips every program built in the tests)."""
    from tilevm.frontend.kernel import KernelFunction
    from tilevm.frontend.text import parse
    from tilevm.ir.tile import print_kernel

    build = KernelFunction._build

    def build_and_read_back(self, constants):
        kernel = build(self, constants)
        text = print_kernel(kernel)
        assert parse(text) == kernel, f"the text form of {kernel.name} does not read back:\n{text}"
        return kernel

    monkeypatch.setattr(KernelFunction, "_build", build_and_read_back)


def _snapshot(value):
    """A deep copy of a kernel argument (arrays are written in place by a run)."""
    import numpy as np

    from tilevm.ir.host_tensor import HostTensor

    if isinstance(value, HostTensor):
        return HostTensor(value.data.copy(), value.dtype, value.shape, value.strides,
                          value.offset)
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value).__module__.startswith("torch"):
        return value.clone()
    return value


@pytest.fixture(autouse=True)
def every_lowered_kernel_defines_its_registers_before_reading_them(monkeypatch):
    """No lowered kernel reads a register that some path has not written (a GPU would read
    garbage where the CPU backend reads zeros): checked on every kernel any test lowers through
    ``tilevm.backend.lower.lower``."""
    import tilevm.backend.lower as lowering
    from tilevm.ir.thread.definedness import undefined_reads

    lower = lowering.lower

    def lower_and_check(*args, **kwargs):
        lowered = lower(*args, **kwargs)
        missing = undefined_reads(lowered.thread)
        assert not missing, (f"{lowered.thread.name}: registers read before any write on some "
                             f"path: {missing[:8]}")
        return lowered

    monkeypatch.setattr(lowering, "lower", lower_and_check)


def _on_a_gpu(values) -> bool:
    """Whether a call has GPU tensors (it then runs on the GPU, not the interpreter)."""
    from tilevm.frontend.device_tensors import argument_device

    return any((argument_device(v) or "").startswith("cuda") for v in values)


@pytest.fixture(autouse=True)
def every_interpreted_kernel_also_runs_on_the_cpu_backend(monkeypatch, request):
    """Every kernel a test runs on the interpreter (``device="interp"``, or the default device)
    also runs, on copies of its arguments, through the lowering on the CPU backend, and must give
    the interpreter's results
    (issue 8: bit for bit for the exact class of DESIGN §3, within a tolerance for programs with
    bounded operations — the random differential test holds each operation to its own bound)."""
    if request.node.get_closest_marker("interpreter_only"):
        yield
        return
    from execution_check import compare_executions

    from tilevm.frontend.kernel import KernelFunction

    call = KernelFunction.__call__

    def call_both(self, *args, device=None, **kwargs):
        if device not in (None, "interp") or _on_a_gpu([*args, *kwargs.values()]):
            return call(self, *args, device=device, **kwargs)
        named = {k: v for k, v in kwargs.items()}
        copies = [_snapshot(a) for a in args]
        copied_named = {k: _snapshot(v) for k, v in named.items()}
        result = call(self, *args, device="interp", **kwargs)
        compare_executions(self, call, args, named, copies, copied_named)
        return result

    monkeypatch.setattr(KernelFunction, "__call__", call_both)
    yield
