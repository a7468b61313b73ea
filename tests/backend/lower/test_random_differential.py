"""The random-program differential test of the lowering (issue 8): each program runs on the
reference interpreter and, lowered, on the CPU backend; the outputs must agree bit for bit (NaNs
equal), or within the written bound for the bounded class of DESIGN §3 (float sums, float
atomics, the transcendental functions). A failure prints its seed and writes the program's text
form, shrunk by deleting statements, under ``tests/failures/``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from random_programs import KINDS, Program, generate

from tilevm.backend.interp import run
from tilevm.backend.lower import lower
from tilevm.frontend.arguments import bind_arguments
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.thread import walk as thread_walk
from tilevm.ir.thread.intrinsics.arith import APPROX_ERROR_BOUNDS
from tilevm.ir.tile import Instr, print_kernel, verify
from tilevm.runtime.cpu_device import CPU_TARGET, run_on_cpu

PROGRAMS = 240  # 16 of each of the 15 kinds
MAX_STATEMENTS = 600  # Thread IR statements per program (JIT time is what CI pays)
FAILURES = Path(__file__).resolve().parents[2] / "failures"


def _arguments(program: Program) -> tuple:
    out = []
    for p in program.kernel.params:
        if p.name in program.tensors:
            t = program.tensors[p.name]
            out.append(HostTensor(t.data.copy(), t.dtype, t.shape, t.strides, t.offset))
        else:
            out.append(program.scalars[p.name])
    return tuple(out)


def _execute(program: Program, device: str) -> dict[str, np.ndarray]:
    args = _arguments(program)
    bound = bind_arguments(program.kernel, args)
    if device == "interp":
        run(program.kernel, bound.tensors, bound.scalars, bound.dims)
    else:
        run_on_cpu(program.kernel, bound, {})
    return {name: bound.tensors[name] for name in program.tensors}


# -- bounds --------------------------------------------------------------------------------------


def _ulp_terms(dt) -> tuple[float, float]:
    """(unit roundoff, smallest subnormal) of an output type."""
    return dt.unit_roundoff, dt.smallest_subnormal


def _sum_ok(program: Program, ref: HostTensor, ours: HostTensor, source: str, axis: int):
    """|ours − ref| ≤ (n − 1)·2⁻²⁴·Σ|x| + 2u·|ref| + 2·(smallest subnormal): an f32 sum in any
    order, rounded once into the output type, against the exact sum rounded once."""
    x = program.tensors[source].to_numpy()
    n = x.shape[axis]
    magnitude = np.abs(np.where(np.isfinite(x), x, 0)).sum(axis=axis)
    u, tiny = _ulp_terms(ref.dtype)
    bound = (n - 1) * 2.0**-24 * magnitude * (1 + 2.0**-20) + 2 * tiny
    return bound.reshape(-1), u


def _isa_bound(mnemonic: str, x: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The PTX ISA's error bound for the ``.approx`` instruction at these inputs (the table the
    Thread IR quotes: ``APPROX_ERROR_BOUNDS``), as an absolute bound."""
    bound = np.full(x.shape, np.inf)
    for b in APPROX_ERROR_BOUNDS[mnemonic]:
        if b.kind == "ulp":
            here = np.full(x.shape, True)
            value = b.bound * 2.0**-23 * np.abs(exact)  # an ulp of f32 is within 2^-23 |f|
        elif b.kind == "relative":
            here = np.full(x.shape, True) if "(0.5, 2)" not in b.domain else (
                (x <= 0.5) | (x >= 2))
            value = b.bound * np.abs(exact)
        else:
            here = {"inputs in (0.5, 2)": (x > 0.5) & (x < 2),
                    "inputs in [-2pi .. 2pi]": np.abs(x) <= 2 * math.pi,
                    "inputs in [-100pi .. +100pi]": np.abs(x) <= 100 * math.pi}[b.domain]
            value = np.full(x.shape, b.bound)
        bound = np.where(here, np.minimum(bound, value), bound)
    return bound


_INSTRUCTION = {"exp": "ex2", "exp2": "ex2", "log": "lg2", "log2": "lg2", "sin": "sin",
                "cos": "cos", "rsqrt": "rsqrt", "tanh": "tanh"}


def _approx_bound(op: str, x: np.ndarray, exact: np.ndarray, dt) -> np.ndarray:
    """How far the lowering may be from the interpreter (both rounded into ``dt``), DESIGN §3:
    the GPU instruction's error (the PTX ISA's table), the f32 roundings of ``x·log2(e)`` (for
    ``exp``) and of ``lg2(x)·ln(2)`` (for ``log``), flushing subnormal results to zero, and the
    two roundings into ``dt``."""
    u, tiny = _ulp_terms(dt)
    a = np.abs(exact)
    name = _INSTRUCTION[op] + (".approx.f32" if op == "tanh" else ".approx.ftz.f32")
    if op == "exp":  # 2^(RN(x·RN(log2 e))): the argument is off by up to 2^-23·|x·log2 e|
        bound = _isa_bound(name, x * math.log2(math.e), exact) + a * np.abs(x) * 2.0**-23 * 1.01
    elif op == "log":  # RN(lg2(x)·RN(ln 2))
        with np.errstate(divide="ignore", invalid="ignore"):  # log2 of 0 or of a negative x
            lg2 = np.log2(x)
        bound = _isa_bound(name, x, lg2) * math.log(2) + 2.0**-23 * a
    else:
        bound = _isa_bound(name, x, exact)
    return bound + 2 * u * a + 2 * tiny + 2.0**-126


def _approx_ok(program, ref, ours, op: str, source: str) -> np.ndarray:
    x = program.tensors[source].to_numpy()
    with np.errstate(all="ignore"):
        exact = {"exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sin": np.sin,
                 "cos": np.cos, "tanh": np.tanh, "rsqrt": lambda v: 1 / np.sqrt(v)}[op](x)
    return _approx_bound(op, x, exact, ref.dtype).reshape(-1)


def _check(program: Program, name: str, ref: HostTensor, ours: HostTensor) -> None:
    a, b = ref.to_numpy().reshape(-1), ours.to_numpy().reshape(-1)
    rule = program.bounded.get(name)
    if ref.dtype.is_integer or rule is None:
        if ref.dtype.is_float:
            same = (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))
        else:
            same = a == b
        bad = np.nonzero(~same)[0]
        assert bad.size == 0, (f"output '{name}' element {bad[0]}: the CPU backend gives "
                               f"{b[bad[0]]!r}, the interpreter {a[bad[0]]!r} ({bad.size} differ)")
        return
    if rule[0] == "sum":
        bound, u = _sum_ok(program, ref, ours, rule[1], rule[2])
        bound = bound + 2 * u * np.abs(np.where(np.isfinite(a), a, 0))
    elif rule[0] == "atomic_sum":
        terms = rule[1] + 1
        u, tiny = _ulp_terms(ref.dtype)
        scale = np.abs(np.where(np.isfinite(a), a, 0)) + np.abs(b - a)
        bound = 2 * terms * u * (scale + 8) + terms * (tiny + 2.0**-126)
    else:
        bound = _approx_ok(program, ref, ours, rule[1], rule[2])
    with np.errstate(invalid="ignore"):
        ok = (np.isnan(a) & np.isnan(b)) | (a == b) | (np.abs(a - b) <= bound)
    bad = np.nonzero(~ok)[0]
    assert bad.size == 0, (f"output '{name}' element {bad[0]}: the CPU backend gives "
                           f"{b[bad[0]]!r}, the interpreter {a[bad[0]]!r}, beyond the bound "
                           f"{bound[bad[0]]!r} ({bad.size} differ)")


def _differs(program: Program) -> str | None:
    """Why the two executions of ``program`` disagree, or None."""
    try:
        ref = _execute(program, "interp")
        ours = _execute(program, "cpu")
        for name in program.tensors:
            _check(program, name, ref[name], ours[name])
    except Exception as e:  # any failure is a difference, reported with its seed
        return f"{type(e).__name__}: {e}"
    return None


def _shrink(program: Program) -> Program:
    """Delete statements (last first) while the program still fails; the smallest failing
    program is easier to read."""
    from dataclasses import replace

    body = list(program.kernel.body)
    i = len(body) - 1
    while i >= 0:
        trial = replace(program, kernel=replace(program.kernel, body=tuple(body[:i] +
                                                                           body[i + 1:])))
        try:
            verify(trial.kernel)
        except Exception:  # a deletion that breaks the program is not kept
            i -= 1
            continue
        if _differs(trial) is not None:
            body = list(trial.kernel.body)
        i -= 1
    return replace(program, kernel=replace(program.kernel, body=tuple(body)))


@pytest.mark.parametrize("seed", range(PROGRAMS))
def test_random_program_agrees_with_the_interpreter(seed):
    program = generate(seed)
    verify(program.kernel)
    lowered = lower(program.kernel, CPU_TARGET)
    count = sum(1 for _ in thread_walk(lowered.thread.body))
    assert count <= MAX_STATEMENTS, f"seed {seed}: {count} Thread IR statements"
    why = _differs(program)
    if why is not None:
        small = _shrink(program)
        FAILURES.mkdir(exist_ok=True)
        path = FAILURES / f"{program.kind}-{seed}.tvm"
        path.write_text(print_kernel(small.kernel))
        pytest.fail(f"seed {seed} ({program.kind}): {why}\nthe program, shrunk, is in {path}")


def test_the_generator_covers_every_kind():
    kinds = {generate(seed).kind for seed in range(len(KINDS))}
    assert len(kinds) == len(KINDS) >= 10


def test_a_wrong_result_is_caught():
    # The comparison must fail when the CPU result differs (a check that cannot fail proves
    # nothing): corrupt one output and compare.
    program = generate(0)
    ref = _execute(program, "interp")
    ours = _execute(program, "cpu")
    name = next(iter(program.tensors))
    ours[name].data[0] ^= 0xFF
    with pytest.raises(AssertionError):
        for k in program.tensors:
            _check(program, k, ref[k], ours[k])
    _ = Instr


@pytest.mark.parametrize("seed", range(0, PROGRAMS, len(KINDS) + 1))
def test_random_programs_compile_for_the_gpu(seed):
    # Generated programs compile through NVRTC (they may spill: their layouts are random); the
    # sample holds one program of each kind and alternates between the two targets.
    from tilevm.backend.cuda import compile_cuda, emit_cuda

    arch = ("sm_80", "sm_90")[seed // (len(KINDS) + 1) % 2]
    thread = lower(generate(seed).kernel, arch).thread
    assert thread.name in compile_cuda(emit_cuda(thread, arch), arch).resources
