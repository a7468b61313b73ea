"""Comparing a kernel's results on the interpreter and on the CPU backend (the lowering)."""

from __future__ import annotations

import contextlib
import io
import os

from tilevm.ir.tile.program import Instr, walk
from tilevm.runtime.result_check import bounded_operations, difference


def same_results(a, b, bounded: bool, name: str) -> None:
    """Raise AssertionError unless ``a`` (interpreter) and ``b`` (CPU backend) agree: bitwise
    with NaNs equal, or for bounded programs within a relative tolerance of the largest value
    (:func:`tilevm.runtime.result_check.difference`)."""
    problem = difference(a, b, bounded)
    assert problem is None, f"argument {name}: the CPU backend {problem}"


_COMPILED: dict[tuple, object] = {}


def compiles_for_the_gpu(kernel, spec) -> None:
    """The lowered kernel compiles through NVRTC for sm_80 and sm_90 without spills or a stack
    frame (issue 8), once per kernel and specialization in a session."""
    from tilevm.backend.cuda import compile_cuda_without_spills, emit_cuda
    from tilevm.backend.lower import lower
    from tilevm.runtime.cpu_device import cpu_target

    # A kernel with an fp8 dot needs sm_89: it compiles for the targets that have its instructions.
    for arch in (f"sm_{n}" for n in (80, 90) if n >= cpu_target(kernel)):
        key = (id(kernel), spec, arch)
        if key in _COMPILED:
            continue
        lowered = lower(kernel, arch, spec)
        # As tilevm.compile builds it: a build ptxas spills under its occupancy aim is compiled
        # again with the register budget lifted.
        binary = compile_cuda_without_spills(emit_cuda(lowered.thread, arch), arch)
        r = binary.resources[lowered.thread.name]
        # vprintf takes its arguments in a local buffer: a kernel that prints (or may print a
        # failed device_assert) has a stack frame.
        prints = any(isinstance(s, Instr) and s.op in ("print", "device_assert")
                     for s in walk(kernel.body))
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
    bounded = bool(bounded_operations(kernel))
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
