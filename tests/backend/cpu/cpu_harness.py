"""Test helper: one-thread-per-element kernels for checking intrinsics on every lane.

``lane_program(name, in_types, body)`` builds a kernel where thread ``g`` (global index) loads
element ``g`` of each input array, applies ``body(kb, inputs) -> outputs`` and stores element
``g`` of each output array. Predicates are stored as u32 0/1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from tilevm.backend.cpu import compile_kernel
from tilevm.ir.thread import PRED, U32, U64, KernelBuilder, Reg, scalar_type

_NP = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


class LaneProgram:
    """A compiled lane program; call it with input arrays of equal length (a multiple of the
    block size) to get the output arrays (unsigned bit patterns)."""

    def __init__(self, name: str, in_types: Sequence[str], body: Callable, threads: int = 32
                 ) -> None:
        kb = KernelBuilder(name, block_threads=threads)
        ins = [kb.param(f"in{i}", U64, pointer=True) for i in range(len(in_types))]
        g = kb.mad(kb.sreg("ctaid.x"), threads, kb.sreg("tid.x"))
        vals = []
        for p, tname in zip(ins, in_types, strict=True):
            t = scalar_type(tname)
            vals.append(kb.ld("global", kb.add(p, kb.mul(g, t.bits // 8, mode="wide")), t))
        outs = body(kb, vals)
        self.out_types = []
        for j, v in enumerate(outs):
            if v.type == PRED:
                v = kb.selp(1, 0, v, type=U32)
            p = kb.param(f"out{j}", U64, pointer=True)
            kb.st("global", kb.add(p, kb.mul(g, v.type.bits // 8, mode="wide")), v)
            self.out_types.append(v.type)
        self.kernel = kb.finish()
        self.threads = threads
        self.run = compile_kernel(self.kernel)

    def __call__(self, *inputs: np.ndarray, **kw: object) -> list[np.ndarray]:
        n = len(inputs[0])
        assert n % self.threads == 0
        outs = [np.zeros(n, _NP[t.bits]) for t in self.out_types]
        arrays = [np.ascontiguousarray(a) for a in inputs]
        self.run(n // self.threads, *arrays, *outs, **kw)
        return outs


def lane_program(name: str, in_types: Sequence[str], body: Callable[[KernelBuilder, list[Reg]],
                 list[Reg]], threads: int = 32) -> LaneProgram:
    """Build and compile a :class:`LaneProgram`."""
    return LaneProgram(name, in_types, body, threads)


def random_words(rng: np.random.Generator, n: int, bits: int = 32) -> np.ndarray:
    """``n`` random unsigned words with every bit uniformly random."""
    return rng.integers(0, 1 << bits, size=n, dtype=np.uint64).astype(_NP[bits])


def nearest_f32(x: Fraction) -> np.float32:
    """``x`` rounded to nearest even f32, exactly (neighbours compared as rationals)."""
    f = np.float32(float(x))
    best: tuple[Fraction, np.float32] | None = None
    for cand in (np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))):
        d = abs(Fraction(float(cand)) - x)
        if best is None or d < best[0] or (d == best[0] and int(cand.view(np.uint32)) % 2 == 0):
            best = (d, cand)
    assert best is not None
    return best[1]
