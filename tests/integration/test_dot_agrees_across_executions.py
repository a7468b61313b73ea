"""Executions of one computation are each other's oracle (DESIGN §1, §3).

The interpreter's ``tv.dot`` (Tile IR) and the CPU backend's ``mma.sync`` (Thread IR, through
ldmatrix and the fragment layouts) implement the numeric contract independently: exact products
summed in increasing k, the accumulator added last, one rounding to f32 per 16-wide K-chunk. On
one m16n8k16 tile they must agree bit for bit, also on data chosen to make the rounding matter.
"""

# No `from __future__ import annotations`: the kernel's annotations use the factory's dtype, and
# string annotations cannot see a closure's variables.
import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm import f32
from tilevm.backend.cpu import compile_kernel
from tilevm.ir.thread import examples


def tile_dot(in_dtype):
    @tv.kernel
    def one_tile(a: tv.Global[in_dtype, "m", "k"], b: tv.Global[in_dtype, "k", "n"],
                 c: tv.Global[f32, "m", "n"], d: tv.Global[f32, "m", "n"]):
        tv.launch(grid=(1,), warps=1)
        x = tv.load(a, (0, 0), (16, 16))
        y = tv.load(b, (0, 0), (16, 8))
        acc = tv.load(c, (0, 0), (16, 8))
        tv.store(d, tv.dot(x, y, acc), (0, 0))

    return one_tile


def adversarial_operands(rng: np.random.Generator, np_type) -> tuple[np.ndarray, ...]:
    """Magnitudes spread over many binades and cancelling sums, so that a different summation
    order or an extra rounding changes low bits."""
    a = rng.standard_normal((16, 16)) * np.exp2(rng.integers(-12, 12, (16, 16)))
    b = rng.standard_normal((16, 8)) * np.exp2(rng.integers(-12, 12, (16, 8)))
    a[:, 8:] = -a[:, :8]  # half of every row cancels the other half
    c = (rng.standard_normal((16, 8)) * np.exp2(rng.integers(-20, 20, (16, 8)))).astype(np.float32)
    return a.astype(np_type), b.astype(np_type), c


@pytest.mark.parametrize("name, np_type", [("f16", np.float16), ("bf16", ml_dtypes.bfloat16)])
def test_interpreter_dot_and_cpu_mma_agree_bit_for_bit(name, np_type):
    rng = np.random.default_rng(7)
    mma = compile_kernel(examples.mma_tile(name))
    dot = tile_dot(tv.dtype(name))
    for trial in range(4):
        if trial == 0:
            a = rng.standard_normal((16, 16)).astype(np_type)
            b = rng.standard_normal((16, 8)).astype(np_type)
            c = rng.standard_normal((16, 8)).astype(np.float32)
        else:
            a, b, c = adversarial_operands(rng, np_type)
        on_cpu = np.zeros((16, 8), np.float32)
        mma(1, a, b, c, on_cpu)
        interpreted = np.zeros((16, 8), np.float32)
        dot(a, b, c, interpreted, device="interp")
        np.testing.assert_array_equal(on_cpu.view(np.uint32), interpreted.view(np.uint32))
