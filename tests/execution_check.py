"""Comparing a kernel's results on the interpreter and on the CPU backend (the lowering)."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np

from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.program import Instr, walk

# Operations whose lowering is compared under a bound (DESIGN §3), not bit for bit.
BOUNDED = {"exp", "exp2", "log", "log2", "sin", "cos", "tanh", "rsqrt"}


def _bounded(kernel) -> bool:
    for s in walk(kernel.body):
        if isinstance(s, Instr):
            if s.op in BOUNDED:
                return True
            if (s.op == "reduce" and s.attr("op") in ("sum", "custom")
                    and s.args[0].type.dtype.is_float):
                return True  # float sums and float combine functions: order-dependent
            if (s.op == "scan" and s.attr("op") in ("sum", "prod")
                    and s.args[0].type.dtype.is_float):
                return True
            if s.op == "atomic" and s.args[0].type.dtype.is_float:
                return True
    return False


def _values(x) -> np.ndarray | None:
    if isinstance(x, HostTensor):
        return x.to_numpy()
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().float().numpy()
    return None


def same_results(a, b, bounded: bool, name: str) -> None:
    """Raise AssertionError unless ``a`` (interpreter) and ``b`` (CPU backend) agree: bitwise
    with NaNs equal, or for bounded programs within a relative tolerance of the largest value."""
    xa, xb = _values(a), _values(b)
    if xa is None:
        return
    xa = np.asarray(xa)
    xb = np.asarray(xb)
    if xa.dtype.kind == "V" or str(xa.dtype) in ("bfloat16",) or "float8" in str(xa.dtype):
        xa, xb = xa.astype(np.float64), xb.astype(np.float64)
    if xa.dtype.kind != "f":
        bad = np.nonzero(xa != xb)
        assert bad[0].size == 0, (f"argument {name}: the CPU backend differs from the "
                                  f"interpreter at {tuple(int(i[0]) for i in bad)}: "
                                  f"{xb[bad][0]!r} instead of {xa[bad][0]!r}")
        return
    both_nan = np.isnan(xa) & np.isnan(xb)
    if not bounded:
        same = both_nan | ((xa == xb) & (np.signbit(xa) == np.signbit(xb)))
        bad = np.nonzero(~same)
        assert bad[0].size == 0, (f"argument {name}: the CPU backend differs from the "
                                  f"interpreter at {tuple(int(i[0]) for i in bad)}: "
                                  f"{xb[bad][0]!r} instead of {xa[bad][0]!r}")
        return
    x64a, x64b = xa.astype(np.float64), xb.astype(np.float64)
    finite = np.isfinite(x64a)
    scale = np.max(np.abs(x64a[finite])) if finite.any() else 0.0
    tolerance = 2.0**-9 * scale + 2.0**-9 * np.abs(x64a)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        close = both_nan | (x64a == x64b) | (np.abs(x64a - x64b) <= tolerance)
    bad = np.nonzero(~close)
    assert bad[0].size == 0, (f"argument {name}: the CPU backend differs from the interpreter "
                              f"beyond the tolerance at {tuple(int(i[0]) for i in bad)}: "
                              f"{xb[bad][0]!r} instead of {xa[bad][0]!r}")


_COMPILED: dict[tuple, object] = {}


def compiles_for_the_gpu(kernel, spec) -> None:
    """The lowered kernel compiles through NVRTC for sm_80 and sm_90 without spills or a stack
    frame (issue 8), once per kernel and specialization in a session."""
    from tilevm.backend.cuda import compile_cuda, emit_cuda
    from tilevm.backend.lower import lower
    from tilevm.runtime.cpu_device import cpu_target

    # A kernel with an fp8 dot needs sm_89: it compiles for the targets that have its instructions.
    for arch in (f"sm_{n}" for n in (80, 90) if n >= cpu_target(kernel)):
        key = (id(kernel), spec, arch)
        if key in _COMPILED:
            continue
        lowered = lower(kernel, arch, spec)
        binary = compile_cuda(emit_cuda(lowered.thread, arch), arch)
        r = binary.resources[lowered.thread.name]
        # vprintf takes its arguments in a local buffer: a printing kernel has a stack frame.
        prints = any(isinstance(s, Instr) and s.op == "print" for s in walk(kernel.body))
        stack = 0 if prints else r.stack_frame_bytes
        assert (r.spill_store_bytes, r.spill_load_bytes, stack) == (0, 0, 0), (
            f"{kernel.name} for {arch} spills or uses a stack frame: {r}")
        _COMPILED[key] = kernel  # the kernel is kept alive, so its id stays its own


def compare_executions(fn, call, args, named, copies, copied_named) -> None:
    """Run ``fn`` on the CPU backend with the copies and compare every argument with the
    interpreter's results in ``args``/``named``; compile it for the GPU targets too."""
    from tilevm.backend.lower import Specialization
    from tilevm.frontend.arguments import bind_arguments

    constants = {k: v for k, v in named.items() if k not in _tensor_names(fn)}
    kernel = fn.ir(**fn._bind_dtype_variables(_ordered(fn, copies, copied_named), constants))
    # Blocks one after another in index order, as the interpreter runs them (the values atomics
    # return depend on the order); the check's own tv.debug_print text is not the test's output.
    threads = os.environ.get("TILEVM_CPU_THREADS")
    os.environ["TILEVM_CPU_THREADS"] = "1"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            call(fn, *copies, device="cpu", **copied_named)
    finally:
        if threads is None:
            del os.environ["TILEVM_CPU_THREADS"]
        else:
            os.environ["TILEVM_CPU_THREADS"] = threads
    bound = bind_arguments(kernel, _ordered(fn, copies, copied_named))
    compiles_for_the_gpu(kernel, Specialization.of_arguments(kernel, bound.tensors, bound.dims))
    bounded = _bounded(kernel)
    params = [p.name for p in kernel.params]
    for i, (a, b) in enumerate(zip(args, copies)):
        same_results(a, b, bounded, params[i] if i < len(params) else str(i))
    for k in named:
        same_results(named[k], copied_named[k], bounded, k)


def _ordered(fn, args, named) -> tuple:
    """The call's tensor and scalar arguments in parameter order."""
    names = [n for n in _tensor_names_in_order(fn)]
    extra = [named[n] for n in names[len(args):] if n in named]
    return (*args, *extra)


def _tensor_names_in_order(fn) -> list[str]:
    import inspect

    return [p.name for p in inspect.signature(fn.fn).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def _tensor_names(fn) -> set[str]:
    import inspect

    return {p.name for p in inspect.signature(fn.fn).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}
