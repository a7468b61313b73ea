"""A low-bit-weight matrix multiplication for every weight type: y = x · Wᵀ, W of 1 to 8 bits.

The W4A16 example (``matmul_w4a16.py``) generalized: one kernel factory,
:func:`make_matmul_wna16`, returns the kernel for any weight type ``tv.cast(q, f16)`` can
convert — unsigned integers ``u1``…``u8``, signed integers ``i2``…``i8`` and the sub-byte and
8-bit floats (``f4e2m1``, ``f6e3m2``, ``f8e4m3``…). W (n × k) is stored densely packed in a
``tilevm.HostTensor`` (``u3``: 3 bits per code, LSB first). Each row of W is split into groups of
``group`` consecutive columns with one f16 scale each; the real weight is ``(value − zero) ·
scale``, where ``value`` is what the code means in its type and ``zero`` is ``2^(bits−1)`` for
unsigned integers (the W4A16 example's 8) and 0 for signed integers and floats. Activations x
(m × k) and the result y (m × n) are f16; products accumulate in f32.

The kernel body is the W4A16 example's: the weight type is only the dtype of ``w``. Casting the
codes to f16 is exact for every accepted type, so each dequantized weight is rounded once, by
the multiply with its scale.

Run it: ``python examples/matmul_wna16.py --wtype u3`` (it checks itself against numpy in
float64; ``--device interp`` for the interpreter).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

import tilevm as tv
from tilevm import f16, f32

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import check_accuracy

if TYPE_CHECKING:
    from tilevm.frontend.kernel import KernelFunction


def weight_type(name: str | tv.DType) -> tv.DType:
    """The weight type ``name`` stands for (aliases resolve: ``"f6e3m2"`` is ``f6e3m2fn``).

    Raises ValueError for an unknown name, a type wider than 8 bits, or one whose values do not
    fit f16 (``f8e8m0fnu``, a scale type).
    """
    dt = tv.dtype(name) if isinstance(name, str) else name
    if dt.nbits > 8 or dt.kind not in ("uint", "int", "float"):
        raise ValueError(f"--wtype {dt.name}: weights are 1- to 8-bit integers or floats")
    if dt.max > tv.f16.max:
        raise ValueError(f"--wtype {dt.name}: its values (up to {dt.max:.3g}) do not fit f16")
    return dt


def zero_point(dt: tv.DType) -> float:
    """What is subtracted from a weight's value before scaling: ``2^(bits−1)`` for unsigned
    integers (codes centred on zero), 0 for signed integers and floats."""
    return float(2 ** (dt.nbits - 1)) if dt.kind == "uint" else 0.0


@functools.cache
def make_matmul_wna16(wtype: tv.DType) -> KernelFunction:
    """The kernel for weights of type ``wtype`` (one kernel object per type, so its compiled
    forms are reused): ``kernel(x, w, scales, y, *, bm=32, bn=32, group=32)`` computes
    ``y = x · ((w − zero) · scales)ᵀ`` with ``scales`` of shape (n, ⌈k/group⌉)."""
    zero = zero_point(wtype)

    @tv.kernel
    def matmul_wna16(x: tv.Global[f16, "m", "k"], w: tv.Global[wtype, "n", "k"],
                     scales: tv.Global[f16, "n", "groups"], y: tv.Global[f16, "m", "n"],
                     *, bm: tv.Const = 32, bn: tv.Const = 32, group: tv.Const = 32):
        tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=4)
        i, j = tv.block_idx()
        acc = tv.zeros((bm, bn), f32)
        for k0 in tv.range(0, k, group):  # one quantization group per step
            a = tv.load(x, (i * bm, k0), (bm, group))
            q = tv.load(w, (j * bn, k0), (bn, group))  # codes, unpacked from the packed bytes
            s = tv.load(scales, (j * bn, k0 // group), (bn, 1))  # broadcasts along the group
            values = tv.cast(q, f16)  # exact: every code of the type is an f16 value
            if zero != 0.0:  # compile-time: only unsigned weights have a zero point
                values = values - zero
            acc = tv.dot(a, tv.transpose(values * s), acc)
        tv.store(y, tv.cast(acc, f16), (i * bm, j * bn))

    return matmul_wna16


class Problem(NamedTuple):
    """Random inputs of one W·A16 product and what the result is held to.

    ``ref`` is y in float64 from the exact dequantized weights; ``base`` is what a careful
    library computes (f16-rounded weights, f32 accumulation, rounded to f16) — the accuracy rule
    of ``accuracy.py`` compares against both."""

    wtype: tv.DType
    group: int
    x: np.ndarray  # (m, k) f16
    codes: np.ndarray  # (n, k) the weights' bit patterns
    w: tv.HostTensor  # the codes, packed
    scales: np.ndarray  # (n, groups) f16
    ref: np.ndarray  # (m, n) float64
    base: np.ndarray  # (m, n) f16

    @property
    def shape(self) -> tuple[int, int, int]:
        """(m, n, k)."""
        return self.x.shape[0], self.codes.shape[0], self.x.shape[1]

    def output(self) -> np.ndarray:
        """A zeroed y of the right shape and type."""
        m, n, _ = self.shape
        return np.zeros((m, n), np.float16)


def random_problem(wtype: str | tv.DType, m: int, n: int, k: int, group: int,
                   seed: int = 0) -> Problem:
    """A problem of shape (m, n, k) with random codes of ``wtype`` (never NaN or infinity),
    standard-normal x and scales that bring the weights to about [−1.5, 1.5]."""
    dt = weight_type(wtype)
    rng = np.random.default_rng(seed)
    groups = -(-k // group)
    x = rng.standard_normal((m, k)).astype(np.float16)
    codes = rng.integers(0, 1 << dt.nbits, size=(n, k))
    values = dt.decode(codes).astype(np.float64)
    special = ~np.isfinite(values)  # NaN and infinity codes (f8e4m3fn, f8e5m2) make no weights
    codes[special] = 0
    values[special] = float(dt.decode(0))
    zero = zero_point(dt)
    largest = max(abs(dt.min - zero), abs(dt.max - zero))
    scales = (rng.uniform(0.5, 1.5, size=(n, groups)) / largest).astype(np.float16)

    col_scale = np.repeat(scales.astype(np.float64), group, axis=1)[:, :k]
    w_real = (values - zero) * col_scale  # the dequantized weights, exactly
    ref = x.astype(np.float64) @ w_real.T
    base = (x.astype(np.float32) @ w_real.astype(np.float16).astype(np.float32).T).astype(
        np.float16)
    return Problem(dt, group, x, codes, tv.HostTensor.from_bits(codes, dt), scales, ref, base)


def main(argv: list[str] | None = None) -> float:
    """Run on random data and check the accuracy rule; returns the largest error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wtype", default="u3", help="the weight type: u1..u8, i2..i8, f4e2m1, "
                                                      "f6e3m2, f8e4m3… (default u3)")
    parser.add_argument("--m", type=int, default=40)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--k", type=int, default=80)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu (the default) or interp")
    args = parser.parse_args(argv)
    try:
        problem = random_problem(args.wtype, args.m, args.n, args.k, args.group)
    except ValueError as e:
        parser.error(str(e))
    y = problem.output()
    kernel = make_matmul_wna16(problem.wtype)
    kernel(problem.x, problem.w, problem.scales, y, device=args.device, group=args.group)
    return check_accuracy(f"matmul_wna16 ({problem.wtype.name})", y, problem.ref, problem.base,
                          tv.f16.unit_roundoff)


if __name__ == "__main__":
    main()
