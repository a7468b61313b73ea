"""Executions of one computation are each other's oracle (DESIGN §1, §3).

The interpreter's ``tv.dot`` (Tile IR) and the CPU backend's ``mma.sync`` (Thread IR, through
ldmatrix and the fragment layouts) implement the numeric contract independently: exact products
summed in increasing k, the accumulator added last, one rounding to the accumulator type per
K-chunk. On one m16n8kK tile of every form ``mma.sync`` takes (each operand pair of
``dot_rule``, each accumulator) they must agree bit for bit, also on data chosen to make the
rounding matter, on special values and, for the integers, on sums that wrap.
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
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.stmts import Kernel
from tilevm.ir.thread.types import B32, F32, S32, U32, U64, vector


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


# -- every mma.sync form ---------------------------------------------------------------------------

NP_TYPES = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32,
            "f8e4m3fn": ml_dtypes.float8_e4m3fn, "f8e5m2": ml_dtypes.float8_e5m2, "i8": np.int8,
            "u8": np.uint8, "i32": np.int32}
# PTX ISA, "Matrix Fragments for mma.m16n8k8 / m16n8k16 / m16n8k32": the instruction of each
# operand type, its PTX name, and the form's K.
PTX = {"f16": "f16", "bf16": "bf16", "f32": "tf32", "f8e4m3fn": "e4m3", "f8e5m2": "e5m2",
       "i8": "s8", "u8": "u8"}
SHAPE = {"f16": "m16n8k16", "bf16": "m16n8k16", "f32": "m16n8k8", "f8e4m3fn": "m16n8k32",
         "f8e5m2": "m16n8k32", "i8": "m16n8k32", "u8": "m16n8k32"}
FORMS = [("f16", "f16", "f32"), ("f16", "f16", "f16"), ("bf16", "bf16", "f32"),
         ("f32", "f32", "f32"),
         *[(a, b, "i32") for a in ("i8", "u8") for b in ("i8", "u8")],
         *[(a, b, "f32") for a in ("f8e4m3fn", "f8e5m2") for b in ("f8e4m3fn", "f8e5m2")]]


def mma_fragments(a_name: str, b_name: str, c_name: str) -> Kernel:
    """``(a, bt, c, d)``, one warp: ``d = a·b + c`` by one ``mma.sync`` with ``a`` 16xK
    row-major, ``bt`` = bᵀ (8xK row-major), ``c``/``d`` 16x8 row-major (f32 operands go through
    ``cvt.rna.tf32.f32`` into the m16n8k8 tf32 form). Each lane loads its
    fragment words where the ISA's fragment tables put them: with ``g = lane / 4``,
    ``t = lane % 4`` and 32-byte rows of A and bᵀ, A's register r is word ``t + 4(r / 2)`` of row
    ``g + 8(r % 2)``, B's register r word ``t + 4r`` of row ``g`` of bᵀ, and C's element j is at
    row ``g + 8(j / 2)``, column ``2t + j % 2`` (register j / 2, half j % 2 for f16)."""
    shape, atype, btype = SHAPE[a_name], PTX[a_name], PTX[b_name]
    ctype = {"f32": "f32", "f16": "f16", "i32": "s32"}[c_name]
    kb = KernelBuilder(f"mma_{atype}_{btype}_{ctype}", block_threads=32)
    a, bt, c, d = (kb.param(n, U64, pointer=True) for n in ("a", "bt", "c", "d"))
    lane = kb.sreg("laneid")
    g, t = kb.shr(lane, 2), kb.and_(lane, 3, type=B32)

    def address(base, row_bytes: int, lane_bytes: int):
        offset = kb.add(kb.mul(g, row_bytes, type=U32), kb.mul(t, lane_bytes, type=U32), type=U32)
        return kb.add(base, kb.cvt(offset, U64))

    def word(at, offset: int):
        if atype != "tf32":
            return kb.ld("global", at, B32, offset=offset)
        # f32 operands become tf32 words through cvt.rna.tf32.f32, as precision="tf32" says
        return kb.mov(kb.cvt_tf32(kb.ld("global", at, F32, offset=offset)), B32)

    a_at, b_at = address(a, 32, 4), address(bt, 32, 4)
    afrag = kb.pack([word(a_at, 256 * (r % 2) + 16 * (r // 2)) for r in range(4)])
    bfrag = kb.pack([word(b_at, 16 * r) for r in range(2)])
    if ctype == "f16":  # two registers of two halves: rows g and g + 8, columns 2t and 2t + 1
        c_at, d_at = address(c, 16, 4), address(d, 16, 4)
        cfrag = kb.pack([kb.ld("global", c_at, B32, offset=128 * q) for q in range(2)])
        dfrag = kb.mma(shape, atype, afrag, bfrag, cfrag, btype=btype, ctype=ctype)
        for q, word in enumerate(kb.unpack(dfrag)):
            kb.st("global", d_at, word, offset=128 * q)
        return kb.finish()
    elem = F32 if ctype == "f32" else S32
    c_at, d_at = address(c, 32, 8), address(d, 32, 8)
    halves = [kb.unpack(kb.ld("global", c_at, vector(elem, 2), offset=256 * h)) for h in range(2)]
    dfrag = kb.mma(shape, atype, afrag, bfrag, kb.pack([*halves[0], *halves[1]]), btype=btype,
                   ctype=ctype)
    d0, d1, d2, d3 = kb.unpack(dfrag)
    kb.st("global", d_at, kb.pack([d0, d1]))
    kb.st("global", d_at, kb.pack([d2, d3]), offset=256)
    return kb.finish()


def one_dot(a_name: str, b_name: str, c_name: str, precision: str):
    a_dt, b_dt, c_dt = tv.dtype(a_name), tv.dtype(b_name), tv.dtype(c_name)

    @tv.kernel
    def one_chunk(a: tv.Global[a_dt, "m", "k"], b: tv.Global[b_dt, "k", "n"],
                  c: tv.Global[c_dt, "m", "n"], d: tv.Global[c_dt, "m", "n"], *,
                  bk: tv.Const):
        tv.launch(grid=(1,), warps=1)
        acc = tv.load(c, (0, 0), (16, 8))
        x = tv.load(a, (0, 0), (16, bk))
        tv.store(d, tv.dot(x, tv.load(b, (0, 0), (bk, 8)), acc, precision=precision), (0, 0))

    return one_chunk


def operands(rng: np.random.Generator, name: str, shape: tuple[int, int], trial: int,
             ) -> np.ndarray:
    """Trial 0: plain values; 1: spread binades with cancelling halves of each row; 2: the same
    with specials (inf, NaN, signed zeros, subnormals) or, for integers, the extremes."""
    np_type = NP_TYPES[name]
    if np.issubdtype(np_type, np.integer):
        info = np.iinfo(np_type)
        x = rng.integers(info.min, info.max + 1, shape)
        if trial == 2:
            x[:] = info.max
            x[::3] = info.min
        return x.astype(np_type)
    span = {"f16": 6, "bf16": 20, "f32": 20, "f8e4m3fn": 3, "f8e5m2": 6}[name]
    x = rng.standard_normal(shape)
    if trial >= 1:
        x *= np.exp2(rng.integers(-span, span, shape))
        x[:, shape[1] // 2:] = -x[:, :shape[1] // 2]
    if trial == 2:
        tiny = float(ml_dtypes.finfo(np_type).smallest_subnormal)
        specials = [np.inf, -np.inf, np.nan, 0.0, -0.0, tiny, -tiny]
        x[rng.integers(0, shape[0], 6), rng.integers(0, shape[1], 6)] = rng.choice(specials, 6)
    x = x.astype(np_type)
    if name == "f32" and trial == 1:  # ties for tf32: the low 13 bits 0x1000
        x = ((x.view(np.uint32) & np.uint32(0xFFFFE000)) | np.uint32(0x1000)).view(np.float32)
    return x


@pytest.mark.parametrize("a_name, b_name, c_name", FORMS, ids=["x".join(f) for f in FORMS])
def test_every_mma_form_agrees_with_the_interpreter_bit_for_bit(a_name, b_name, c_name):
    rng = np.random.default_rng(sum(map(ord, a_name + b_name + c_name)))
    k = int(SHAPE[a_name].split("k")[1])
    precision = "tf32" if a_name == "f32" else "ieee"
    mma = compile_kernel(mma_fragments(a_name, b_name, c_name))
    dot = one_dot(a_name, b_name, c_name, precision)
    for trial in range(3):
        a = operands(rng, a_name, (16, k), trial)
        b = operands(rng, b_name, (8, k), trial).T.copy()  # K x N
        if c_name == "i32":
            c = rng.integers(-2**31, 2**31, (16, 8)).astype(np.int32)
            c[:4] = np.int32(2**31 - 1)  # sums that leave i32 and wrap
        else:
            c = (rng.standard_normal((16, 8)) * 4).astype(NP_TYPES[c_name])
            if trial == 2:
                c[0, :4] = [-0.0, np.inf, np.nan, -0.0]
        on_cpu = np.zeros((16, 8), NP_TYPES[c_name])
        mma(1, a, b.T.copy(), c, on_cpu)
        interpreted = np.zeros((16, 8), NP_TYPES[c_name])
        dot(a, b, c, interpreted, device="interp", bk=k)
        bits = f"u{on_cpu.dtype.itemsize}"
        nan = np.isnan(interpreted) if c_name != "i32" else np.zeros((16, 8), bool)
        assert np.array_equal(np.isnan(on_cpu) if c_name != "i32" else nan, nan)
        np.testing.assert_array_equal(on_cpu.view(bits)[~nan], interpreted.view(bits)[~nan])
        if c_name == "i32":  # the wraparound is exercised
            exact = a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)
            assert (exact != interpreted.astype(np.int64)).any()
