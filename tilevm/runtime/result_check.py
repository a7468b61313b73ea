"""Holding one execution's results to the reference interpreter's (DESIGN §3): bit for bit for a
program of the exact class, within a tolerance for a program with a bounded operation.

``tilevm run`` checks a kernel with it; the test suite holds every kernel it runs on the
interpreter to the CPU backend with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.program import Instr, Kernel, walk

__all__ = ["RELATIVE_TOLERANCE", "TRANSCENDENTAL", "bounded_operations", "difference"]

TRANSCENDENTAL = ("exp", "exp2", "log", "log2", "sin", "cos", "tanh", "rsqrt")
"""Operations lowered to ``.approx`` instructions (docs/numeric-contract.md)."""

RELATIVE_TOLERANCE = 2.0**-9
"""A bounded program's element passes within ``2^-9·max|want| + 2^-9·|want|`` of the reference:
float sums in another order and ``.approx`` functions stay well inside it for the sizes kernels
reduce over; the random differential test holds each operation to its own, tighter bound."""


def bounded_operations(kernel: Kernel, on_gpu: bool = False) -> list[str]:
    """The operations of ``kernel`` (Tile IR) whose lowering is compared under a bound, not bit
    for bit: transcendental functions, float sums (reductions, scans, products and atomics, whose
    order the layout fixes), float reductions with a combine function (a scan with one applies
    it left to right everywhere: exact) and, ``on_gpu``, ``dot``
    (the tensor cores' internal order; the CPU backend's ``mma`` is exact)."""
    found: list[str] = []
    for s in walk(kernel.body):
        if not isinstance(s, Instr):
            continue
        float_arg = bool(s.args) and getattr(s.args[0].type, "dtype", None) is not None and (
            s.args[0].type.dtype.is_float)
        if s.op in TRANSCENDENTAL:
            found.append(s.op)
        elif s.op == "reduce" and float_arg and s.attr("op") in ("sum", "custom"):
            found.append(f"reduce {s.attr('op')}")
        elif s.op == "scan" and float_arg and s.attr("op") in ("sum", "prod"):
            found.append(f"scan {s.attr('op')}")
        elif s.op == "atomic" and float_arg:
            found.append("atomic")
        elif s.op == "dot" and on_gpu:
            found.append("dot")
    return found


def _values(x: Any) -> np.ndarray | None:
    if isinstance(x, HostTensor):
        return x.to_numpy()
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().float().numpy()
    return None


def difference(want: Any, got: Any, bounded: bool) -> str | None:
    """Where ``got`` differs from the reference ``want`` (arrays, HostTensors or CPU torch
    tensors; anything else is not compared): ``None`` when they agree, else the first differing
    index with both values. Agreement is equal values (NaNs equal, the sign of zero counted)
    or, where ``bounded``, within :data:`RELATIVE_TOLERANCE`."""
    xa, xb = _values(want), _values(got)
    if xa is None or xb is None:
        return None
    xa, xb = np.asarray(xa), np.asarray(xb)
    if xa.dtype.kind == "V" or str(xa.dtype) == "bfloat16" or "float8" in str(xa.dtype):
        xa, xb = xa.astype(np.float64), xb.astype(np.float64)
    if xa.dtype.kind != "f":
        same = xa == xb
    else:
        both_nan = np.isnan(xa) & np.isnan(xb)
        same = both_nan | ((xa == xb) & (np.signbit(xa) == np.signbit(xb)))
        if bounded:
            wa, wb = xa.astype(np.float64), xb.astype(np.float64)
            finite = np.isfinite(wa)
            scale = np.max(np.abs(wa[finite])) if finite.any() else 0.0
            tolerance = RELATIVE_TOLERANCE * (scale + np.abs(wa))
            with np.errstate(invalid="ignore"):  # inf - inf where both are one infinity
                same = both_nan | (wa == wb) | (np.abs(wa - wb) <= tolerance)
    bad = np.argwhere(~np.asarray(same))
    if bad.size == 0:
        return None
    at = tuple(int(i) for i in bad[0])
    beyond = " beyond the tolerance" if bounded else ""
    return f"differs{beyond} at {at}: {xb[at]!r} instead of {xa[at]!r}"
