"""``dot`` through tensor cores: every operand pair, the layouts and the instructions it lowers to.

The oracle is the interpreter (itself checked against exact fractions in
tests/backend/interp/test_interp_dot.py): every kernel here runs with the default device, which
the suite's fixture (tests/conftest.py) runs on the interpreter and on the CPU backend and compares
bit for bit — the dot is exact per K-chunk on both (DESIGN §3) — and compiles for sm_80/sm_90
without spills. The tests add what that cannot see: a reference in float64 for the quantized
GEMMs, the instructions in the SASS, the layouts and conversions in the report, the diagnostics.
"""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm.backend.cuda.sass import disassemble, sass_opcodes
from tilevm.backend.lower import LoweringError
from tilevm.backend.lower.dot_layouts import dot_shape, warp_tiling
from tilevm.ir.layout.algebra import local
from tilevm.ir.layout.fragments import mma_fragment
from tilevm.ir.tile.ops import DOT_RULES, dot_rule

NP = {"f16": np.float16, "f32": np.float32, "i32": np.int32, "i8": np.int8, "u8": np.uint8}


def make_dot(a_name: str, b_name: str, c_name: str, precision: str = "ieee",
             through_shared: bool = False, warps: int = 4):
    """A tiled GEMM ``c += a @ b``; with ``through_shared`` the operands pass through shared
    memory (stored from registers, loaded back in fragments)."""
    a_dt, b_dt, c_dt = tv.dtype(a_name), tv.dtype(b_name), tv.dtype(c_name)

    @tv.kernel
    def gemm(a: tv.Global[a_dt, "m", "k"], b: tv.Global[b_dt, "k", "n"],
             c: tv.Global[c_dt, "m", "n"], *, bm: tv.Const, bn: tv.Const, bk: tv.Const):
        tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=warps)
        i, j = tv.block_idx()
        acc = tv.load(c, (i * bm, j * bn), (bm, bn))
        for k0 in tv.range(0, k, bk):
            acc = tv.dot(tv.load(a, (i * bm, k0), (bm, bk)), tv.load(b, (k0, j * bn), (bk, bn)),
                         acc, precision=precision)
        tv.store(c, acc, (i * bm, j * bn))

    @tv.kernel
    def gemm_shared(a: tv.Global[a_dt, "m", "k"], b: tv.Global[b_dt, "k", "n"],
                    c: tv.Global[c_dt, "m", "n"], *, bm: tv.Const, bn: tv.Const, bk: tv.Const):
        tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=warps)
        i, j = tv.block_idx()
        acc = tv.load(c, (i * bm, j * bn), (bm, bn))
        sa = tv.shared((bm, bk), a_dt)
        sb = tv.shared((bk, bn), b_dt)
        for k0 in tv.range(0, k, bk):
            tv.copy_async(sa, a, (i * bm, k0))
            tv.copy_async(sb, b, (k0, j * bn))
            tv.commit()
            tv.wait(0)
            tv.sync()
            acc = tv.dot(tv.load(sa, (0, 0), (bm, bk)), tv.load(sb, (0, 0), (bk, bn)), acc,
                         precision=precision)
            tv.sync()
        tv.store(c, acc, (i * bm, j * bn))

    return gemm_shared if through_shared else gemm


def _values(name: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    dt = tv.dtype(name)
    if dt.is_integer:
        return rng.integers(int(dt.min), int(dt.max) + 1, shape).astype(NP[name])
    x = rng.standard_normal(shape) * 4
    return x.astype(NP.get(name, dt.ml_dtype))


PAIRS = sorted({(r.a, r.b, r.accumulators[0], p) for (_, _, p), r in DOT_RULES.items()} |
               {("f16", "f16", "f16", "ieee")})


@pytest.mark.parametrize(("a_name", "b_name", "c_name", "precision"), PAIRS,
                         ids=[f"{a}x{b}->{c}-{p}" for a, b, c, p in PAIRS])
def test_every_operand_pair_agrees_with_the_interpreter(a_name, b_name, c_name, precision):
    rng = np.random.default_rng(7)
    m, n, k = 32, 32, 64
    a, b = _values(a_name, (m, k), rng), _values(b_name, (k, n), rng)
    c = _values(c_name, (m, n), rng) if c_name != "i32" else rng.integers(
        -1000, 1000, (m, n)).astype(np.int32)
    c0 = c.astype(np.float64)
    expected = a.astype(np.float64) @ b.astype(np.float64) + c0
    make_dot(a_name, b_name, c_name, precision)(a, b, c, bm=32, bn=32, bk=32)
    if c_name == "i32":
        assert np.array_equal(c.astype(np.int64), expected.astype(np.int64))
    else:  # the fixture compared the CPU backend with the interpreter bit for bit
        scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
        # one rounding per chunk of 16 or 32 (4 at most here), each within a unit of the sum so
        # far; tf32 first rounds each operand to 11 significant bits
        unit = 2.0**-10 if precision == "tf32" else {"f16": 2.0**-11, "f32": 2.0**-24}[c_name]
        bound = unit * 4 * (scale + np.abs(c0) + np.abs(expected))
        assert np.all(np.abs(c.astype(np.float64) - expected) <= bound)


@pytest.mark.parametrize("name", ["f16", "bf16"])
def test_operands_from_shared_memory_load_by_ldmatrix(name):
    rng = np.random.default_rng(3)
    kernel = make_dot(name, name, "f32", through_shared=True)
    a, b = _values(name, (64, 32), rng), _values(name, (32, 64), rng)
    c = np.zeros((64, 64), np.float32)
    kernel(a, b, c, bm=64, bn=64, bk=32)
    report = str(tv.compile(kernel, "sm_80", bm=64, bn=64, bk=32).report)
    assert "ldmatrix.x4" in report and "ldmatrix.x2.trans" in report, report


def test_the_sass_has_tensor_core_and_ldmatrix_instructions():
    kernel = make_dot("f16", "f16", "f32", through_shared=True)
    for arch in ("sm_80", "sm_90"):
        compiled = tv.compile(kernel, arch, bm=64, bn=64, bk=32)
        ops = sass_opcodes(disassemble(compiled.cubin))["gemm_shared"]
        assert ops["HMMA"] == 64 // 16 * 64 // 8 * 32 // 16 // 4 * 1, ops  # atoms per warp
        assert ops["LDSM"] > 0, ops
        assert (compiled.resources.spills, compiled.resources.stack) == (0, 0)


def test_operands_loaded_from_global_memory_are_converted_and_listed():
    kernel = make_dot("f16", "f16", "f32")
    report = str(tv.compile(kernel, "sm_80", bm=64, bn=64, bk=32).report)
    # a and b (coalesced loads, then fragments); the accumulator is loaded in its own layout
    assert report.count("operand a of dot") == 1 and report.count("operand b of dot") == 1, report
    assert "operand acc of dot" not in report, report


def test_an_fp8_dot_on_sm_80_names_the_targets_that_have_it():
    kernel = make_dot("f8e4m3fn", "f8e5m2", "f32")
    with pytest.raises(LoweringError, match=r"sm_89 and sm_90"):
        tv.compile(kernel, "sm_80", bm=32, bn=32, bk=32)
    tv.compile(kernel, "sm_89", bm=32, bn=32, bk=32)


def test_a_pinned_accumulator_layout_chooses_the_warp_tiling():
    atom = dot_shape(dot_rule("f16", "f16"))
    pinned = local(1, 4) * tv.spatial(4, 1) * atom.c  # warps stacked along M

    @tv.kernel
    def pinned_gemm(a: tv.Global[tv.f16, "m", "k"], b: tv.Global[tv.f16, "k", "n"],
                    c: tv.Global[tv.f32, "m", "n"]):
        tv.launch(grid=1, warps=4)
        acc = tv.zeros((64, 32), tv.f32, layout=pinned)
        acc = tv.dot(tv.load(a, (0, 0), (64, 16)), tv.load(b, (0, 0), (16, 32)), acc)
        tv.store(c, acc, (0, 0))

    rng = np.random.default_rng(5)
    a, b = _values("f16", (64, 16), rng), _values("f16", (16, 32), rng)
    c = np.zeros((64, 32), np.float32)
    pinned_gemm(a, b, c)
    report = str(tv.compile(pinned_gemm, "sm_80").report)
    assert f"%acc {pinned!r}" in report, report


@pytest.mark.parametrize(("m", "n", "k", "warps"), [(5, 6, 40, 4), (16, 8, 8, 1), (24, 40, 24, 4)])
def test_tiles_of_partial_atoms_are_padded(m, n, k, warps):
    rng = np.random.default_rng(m * n * k)
    a, b = _values("f16", (m, k), rng), _values("f16", (k, n), rng)
    c = np.zeros((m, n), np.float32)
    make_dot("f16", "f16", "f32", warps=warps)(a, b, c, bm=m, bn=n, bk=k)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    assert np.allclose(c, expected, rtol=2**-10, atol=2**-10 * np.abs(expected).max())


def test_warps_split_m_and_n_as_squarely_as_the_tile_allows():
    assert warp_tiling(4, 8, 4) == (2, 2)   # 64 x 64 over 4 warps: 32 x 32 each
    assert warp_tiling(1, 8, 4) == (1, 4)   # 16 x 64: only N can split
    assert warp_tiling(8, 1, 4) == (4, 1)
    assert warp_tiling(1, 1, 4) == (1, 1)   # one atom: three warps replicate it
    assert warp_tiling(2, 2, 8) == (2, 2)


@pytest.mark.parametrize("rule", sorted({r.instruction for r in DOT_RULES.values()} - {None}))
def test_half_fragments_stack_into_the_instruction_fragments(rule):
    r = next(x for x in DOT_RULES.values() if x.instruction == rule)
    atom = dot_shape(r)
    assert local(1, 2) * atom.a == mma_fragment(rule, r.ptx_types[0], "a")
    assert local(2, 1) * atom.b == mma_fragment(rule, r.ptx_types[0], "b")
