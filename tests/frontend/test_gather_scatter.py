"""Gathers and scatters (issue 12, item 1): ``tv.load``, ``tv.store`` and atomics whose offsets
are i32 index tiles of absolute indices along their dimension. Each kernel runs with the default
device, so the test fixtures also run it on the CPU backend (bit for bit against the
interpreter) and compile it for sm_80 and sm_90 without spills; results are checked against
numpy. Shapes are not multiples of the tiles, and index tiles hold out-of-range indices."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tilevm as tv
from tilevm import f16, f32, i32, u4
from tilevm.ir.errors import CompileError
from tilevm.ir.host_tensor import HostTensor

# -- an embedding lookup: a row gather, vectorized along the contiguous embedding dimension ------


@tv.kernel
def embedding(table: tv.Global[f16, "vocab", "dim"], ids: tv.Global[i32, "n"],
              out: tv.Global[f16, "n", "dim"], *, bt: tv.Const = 16, bd: tv.Const = 32):
    tv.launch(grid=(tv.cdiv(n, bt), tv.cdiv(dim, bd)), warps=4)
    i, j = tv.block_idx()
    tokens = tv.load(ids, (i * bt,), (bt,))
    # Row ids outside the table (negative or >= vocab) read 0: the bounds check covers them.
    rows = tv.load(table, (tokens[:, None], j * bd), (bt, bd))
    tv.store(out, rows, (i * bt, j * bd))


def test_embedding_lookup_reads_out_of_range_ids_as_zero():
    rng = np.random.default_rng(1)
    vocab, dim, n = 37, 40, 45
    table = rng.standard_normal((vocab, dim)).astype(np.float16)
    ids = rng.integers(-4, vocab + 4, n).astype(np.int32)
    out = np.full((n, dim), 9, np.float16)
    embedding(table, ids, out)
    inside = (ids >= 0) & (ids < vocab)
    assert 0 < inside.sum() < n  # both kinds occur
    expected = np.where(inside[:, None], table[np.clip(ids, 0, vocab - 1)], 0)
    assert np.array_equal(out, expected)


def test_a_row_gather_stays_vectorized_along_the_last_dimension():
    compiled = tv.compile(embedding, "sm_90", spec="aligned")
    lines = {a.tensor: a for a in compiled.lowered.report.accesses}
    # As wide as the plain store of the same tile: every group of a thread is one row's run.
    assert lines["table"].vector > 1, lines["table"].line()
    assert lines["table"].bits == lines["out"].bits, [a.line() for a in lines.values()]
    assert compiled.resources.spills == 0


# -- a masked gather along the last dimension (one element per access) --------------------------


@tv.kernel
def pick(x: tv.Global[f32, "m", "n"], cols: tv.Global[i32, "m", "k"],
         out: tv.Global[f32, "m", "k"], *, bm: tv.Const = 8, bk: tv.Const = 8):
    tv.launch(grid=tv.cdiv(m, bm), warps=2)
    r0 = tv.block_idx() * bm
    c = tv.load(cols, (r0, 0), (bm, bk))
    rows = r0 + tv.arange(0, bm)
    # Each row picks its own columns; the mask drops even columns, the bounds check the rest.
    got = tv.load(x, (rows[:, None], c), (bm, bk), mask=(c % 2) == 1, other=-1.0)
    tv.store(out, got, (r0, 0))


def test_a_gather_along_the_last_dimension_ands_the_mask_with_the_bounds():
    rng = np.random.default_rng(2)
    m, n, k = 13, 11, 6
    x = rng.standard_normal((m, n)).astype(np.float32)
    cols = rng.integers(-3, n + 3, (m, k)).astype(np.int32)
    out = np.zeros((m, k), np.float32)
    pick(x, cols, out)
    read = (cols % 2 == 1) & (cols >= 0) & (cols < n)
    expected = np.where(read, x[np.arange(m)[:, None], np.clip(cols, 0, n - 1)], -1.0)
    assert np.array_equal(out, expected)
    compiled = tv.compile(pick, "sm_90", spec="aligned")
    assert {a.tensor: a.bits for a in compiled.lowered.report.accesses}["x"] == 32


# -- a scatter: rows stored at a permutation, rows sent outside dropped -------------------------


@tv.kernel
def scatter_rows(x: tv.Global[f32, "n", "dim"], dest: tv.Global[i32, "n"],
                 out: tv.Global[f32, "m", "dim"], *, bt: tv.Const = 8, bd: tv.Const = 16):
    tv.launch(grid=(tv.cdiv(n, bt), tv.cdiv(dim, bd)), warps=2)
    i, j = tv.block_idx()
    to = tv.load(dest, (i * bt,), (bt,), other=-1)  # rows past n go nowhere
    tv.store(out, tv.load(x, (i * bt, j * bd), (bt, bd)), (to[:, None], j * bd))


def test_a_row_scatter_stores_each_row_at_its_index():
    rng = np.random.default_rng(3)
    n, m, dim = 21, 17, 19
    x = rng.standard_normal((n, dim)).astype(np.float32)
    dest = rng.permutation(n).astype(np.int32) - 2  # distinct: -2, -1 and 17..18 are dropped
    out = np.full((m, dim), 5.0, np.float32)
    scatter_rows(x, dest, out)
    expected = np.full((m, dim), 5.0, np.float32)
    keep = (dest >= 0) & (dest < m)
    expected[dest[keep]] = x[keep]
    assert np.array_equal(out, expected)


# -- sub-byte elements, shared memory, atomics' old values, broadcast masks ----------------------


@tv.kernel
def nibbles(x: tv.Global[u4, "m", "n"], perm: tv.Global[i32, "m"], y: tv.Global[u4, "r", "n"],
            *, bm: tv.Const = 8, bn: tv.Const = 16):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=1)
    i, j = tv.block_idx()
    to = tv.load(perm, (i * bm,), (bm,), other=-1)
    rows = i * bm + tv.arange(0, bm)
    # A gather of u4 rows from x and a scatter of them into y: only the stored nibbles change.
    t = tv.load(x, (rows[:, None], j * bn), (bm, bn))
    tv.store(y, t, (to[:, None], j * bn))


def test_sub_byte_rows_gather_and_scatter_change_only_their_own_bits():
    rng = np.random.default_rng(6)
    m, n, r = 11, 13, 9
    x = rng.integers(0, 16, (m, n)).astype(np.uint8)
    perm = (rng.permutation(m) - 1).astype(np.int32)  # -1 and 9..10 fall outside y
    y0 = rng.integers(0, 16, (r, n)).astype(np.uint8)
    xs, ys = HostTensor.from_bits(x, u4), HostTensor.from_bits(y0, u4)
    nibbles(xs, perm, ys)
    expected = y0.copy()
    keep = (perm >= 0) & (perm < r)
    expected[perm[keep]] = x[keep]
    assert np.array_equal(ys.bits(), expected)


@tv.kernel
def shared_lookup(table: tv.Global[f32, "rows", "cols"], ids: tv.Global[i32, "n"],
                  out: tv.Global[f32, "n", "cols"], old: tv.Global[f32, "n", "cols"],
                  acc: tv.Global[f32, "rows", "cols"], *, tr: tv.Const = 16, tc: tv.Const = 8,
                  bt: tv.Const = 8):
    tv.launch(grid=tv.cdiv(n, bt), warps=2)
    staged = tv.shared((tr, tc), f32)
    tv.store(staged, tv.load(table, (0, 0), (tr, tc)), (0, 0))
    tv.sync()
    o = tv.block_idx() * bt
    k = tv.load(ids, (o,), (bt,), other=-1)
    got = tv.load(staged, (k[:, None], 0), (bt, tc), other=-2.0)  # a gather from shared memory
    tv.store(out, got, (o, 0))
    # ids are distinct: the old values each element sees are those before the kernel.
    tv.store(old, tv.atomic_add(acc, got, (k[:, None], 0)), (o, 0))


def test_gather_from_shared_memory_and_atomics_return_the_old_values():
    rng = np.random.default_rng(7)
    rows, cols, n = 16, 8, 13
    table = rng.standard_normal((rows, cols)).astype(np.float32)
    ids = np.concatenate([rng.permutation(rows)[:n - 2], [-1, rows]]).astype(np.int32)
    out, old = np.zeros((n, cols), np.float32), np.zeros((n, cols), np.float32)
    acc = rng.standard_normal((rows, cols)).astype(np.float32)
    acc0 = acc.copy()
    shared_lookup(table, ids, out, old, acc)
    inside = (ids >= 0) & (ids < rows)
    expected = np.where(inside[:, None], table[np.clip(ids, 0, rows - 1)], -2.0)
    assert np.array_equal(out, expected)
    assert np.array_equal(old, np.where(inside[:, None], acc0[np.clip(ids, 0, rows - 1)], 0))
    want = acc0.copy()
    want[ids[inside]] += table[ids[inside]]
    assert np.array_equal(acc, want)


@tv.kernel
def row_masked_copy(x: tv.Global[f32, "m", "n"], keep: tv.Global[i32, "m"],
                    y: tv.Global[f32, "m", "n"], *, bm: tv.Const = 16, bn: tv.Const = 32):
    tv.launch(grid=tv.cdiv(m, bm), warps=2)
    r0 = tv.block_idx() * bm
    rows = tv.load(keep, (r0,), (bm,))[:, None] != 0  # a mask broadcast along the columns
    tv.store(y, tv.load(x, (r0, 0), (bm, bn), mask=rows & (r0 + tv.arange(0, bm) < m)[:, None]),
             (r0, 0), mask=rows & (r0 + tv.arange(0, bm) < m)[:, None])


def test_a_mask_broadcast_along_a_dimension_selects_whole_rows():
    # Regression: the lowering read a mask of another shape than the tile at the tile's local
    # index, so the CPU backend chose the wrong rows.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((19, 32)).astype(np.float32)
    keep = rng.integers(0, 2, 19).astype(np.int32)
    y = np.full((19, 32), 3.0, np.float32)
    row_masked_copy(x, keep, y)
    assert np.array_equal(y, np.where(keep[:, None] != 0, x, 3.0))


def _copy_rows(dt, full_mask: bool):
    @tv.kernel
    def copy_rows(x: tv.Global[dt, "m", "n"], keep: tv.Global[i32, "m"],
                  y: tv.Global[dt, "m", "n"], *, bm: tv.Const = 16, bn: tv.Const = 32):
        tv.launch(grid=tv.cdiv(m, bm), warps=2)
        r0 = tv.block_idx() * bm
        rows = (tv.load(keep, (r0,), (bm,)) != 0) & (r0 + tv.arange(0, bm) < m)
        mask = tv.broadcast(rows[:, None], (bm, bn)) if full_mask else rows[:, None]
        staged = tv.shared((bm, bn), dt)
        tv.copy_async(staged, x, (r0, 0), mask=mask)  # rows not selected become 0
        tv.commit()
        tv.wait()
        tv.sync()
        tv.store(y, tv.load(staged, (0, 0), (bm, bn)), (r0, 0))

    return copy_rows


@pytest.mark.parametrize("dt, full_mask", [(f32, True), (f32, False), (f16, False)])
def test_copy_async_with_a_mask_tile_copies_the_selected_rows_only(dt, full_mask):
    # Regression: the CPU backend's cp.async path ignored the mask tile (and a broadcast mask
    # had the wrong shape to lay the copy out by).
    rng = np.random.default_rng(9)
    np_dt = np.float32 if dt == f32 else np.float16
    x = rng.standard_normal((21, 32)).astype(np_dt)
    keep = rng.integers(0, 2, 21).astype(np.int32)
    y = np.full((21, 32), 3.0, np_dt)
    _copy_rows(dt, full_mask)(x, keep, y)
    assert np.array_equal(y, np.where(keep[:, None] != 0, x, 0))


# -- a histogram: an atomic scatter with duplicate indices ---------------------------------------


@tv.kernel
def histogram(x: tv.Global[i32, "n"], counts: tv.Global[i32, "bins"],
              weights: tv.Global[i32, "n"], weighted: tv.Global[i32, "bins"],
              *, b: tv.Const = 128):
    tv.launch(grid=tv.cdiv(n, b), warps=4)
    o = tv.block_idx() * b
    v = tv.load(x, (o,), (b,), other=-1)  # past n: -1, in no bin
    tv.atomic_add(counts, 1, (v,))  # a number: one per index; bins outside are dropped
    w = tv.load(weights, (o,), (b,))
    tv.atomic_add(weighted, w, (v,), mask=w > 0)  # the mask ANDed with the bounds


def test_histogram_by_atomic_scatter_counts_duplicates():
    rng = np.random.default_rng(4)
    n, bins = 700, 10
    x = rng.integers(-2, bins + 2, n).astype(np.int32)
    weights = rng.integers(-3, 6, n).astype(np.int32)
    counts = np.zeros(bins, np.int32)
    weighted = np.full(bins, 100, np.int32)
    histogram(x, counts, weights, weighted)
    inside = (x >= 0) & (x < bins)
    assert np.array_equal(counts, np.bincount(x[inside], minlength=bins))
    use = inside & (weights > 0)
    assert np.array_equal(weighted, 100 + np.bincount(x[use], weights[use], minlength=bins))


@tv.kernel
def cross(a: tv.Global[i32, "p"], b: tv.Global[i32, "q"], x: tv.Global[f32, "m", "n"],
          hits: tv.Global[i32, "m", "n"], y: tv.Global[f32, "p", "q"], *, bp: tv.Const = 8,
          bq: tv.Const = 4):
    tv.launch(grid=1, warps=1)
    ia = tv.load(a, (0,), (bp,), other=-1)
    ib = tv.load(b, (0,), (bq,), other=-1)
    # Index tiles on both dimensions (ib is 1-D: it broadcasts as [1, bq]).
    tv.store(y, tv.load(x, (ia[:, None], ib), (bp, bq)), (0, 0))
    tv.atomic_add(hits, 1, (ia[:, None], ib[None, :]))  # a 2-D scatter, with duplicates


def test_index_tiles_on_every_dimension_gather_and_scatter_a_cross_product():
    rng = np.random.default_rng(10)
    m, n = 5, 6
    a = rng.integers(-1, m + 1, 7).astype(np.int32)
    b = rng.integers(0, n + 1, 3).astype(np.int32)
    x = rng.standard_normal((m, n)).astype(np.float32)
    hits, y = np.zeros((m, n), np.int32), np.zeros((7, 3), np.float32)
    cross(a, b, x, hits, y)
    ok = ((a >= 0) & (a < m))[:, None] & ((b >= 0) & (b < n))[None, :]
    ia, ib = np.broadcast_arrays(np.clip(a, 0, m - 1)[:, None], np.clip(b, 0, n - 1)[None, :])
    assert np.array_equal(y, np.where(ok, x[ia, ib], 0))
    expected = np.zeros((m, n), np.int32)
    np.add.at(expected, (ia[ok], ib[ok]), 1)
    assert np.array_equal(hits, expected)


# -- a paged-attention decode step: the block table as a tile of indices -------------------------


@tv.kernel
def paged_decode(q: tv.Global[f32, "seqs", "d"], cache_k: tv.Global[f32, "pages", "page", "d"],
                 cache_v: tv.Global[f32, "pages", "page", "d"],
                 table: tv.Global[i32, "seqs", "per_seq"], lens: tv.Global[i32, "seqs"],
                 out: tv.Global[f32, "seqs", "d"], *, ps: tv.Const = 4, bl: tv.Const = 16,
                 hd: tv.Const = 8):
    tv.launch(grid=seqs, warps=1)
    s = tv.block_idx()
    length = tv.load(lens, (s,), ())
    pos = tv.arange(0, bl)
    # The page of each position, gathered from this sequence's row of the block table (past
    # per_seq: page -1, outside the cache, so nothing is read there).
    pages_of = tv.load(table, (s, pos[None, :] // ps), (1, bl), other=-1)
    at = tv.reshape(pages_of, (bl, 1, 1))
    slot = tv.reshape(pos % ps, (bl, 1, 1))
    k = tv.reshape(tv.load(cache_k, (at, slot, 0), (bl, 1, hd)), (bl, hd))
    v = tv.reshape(tv.load(cache_v, (at, slot, 0), (bl, 1, hd)), (bl, hd))
    qt = tv.load(q, (s, 0), (1, hd))
    scores = tv.where(pos < length, tv.sum(k * qt, 1), float("-inf"))
    p = tv.exp(scores - tv.max(scores, 0))
    o = tv.sum(p[:, None] * v, 0) / tv.sum(p, 0)
    tv.store(out, tv.reshape(o, (1, hd)), (s, 0))


def test_paged_attention_decode_gathers_keys_and_values_through_the_block_table():
    rng = np.random.default_rng(5)
    seqs, pages, page, d, per_seq = 3, 9, 4, 8, 3
    q = rng.standard_normal((seqs, d)).astype(np.float32)
    cache_k = rng.standard_normal((pages, page, d)).astype(np.float32)
    cache_v = rng.standard_normal((pages, page, d)).astype(np.float32)
    table = np.stack([rng.permutation(pages)[:per_seq] for _ in range(seqs)]).astype(np.int32)
    lens = np.array([5, 12, 1], np.int32)
    out = np.zeros((seqs, d), np.float32)
    paged_decode(q, cache_k, cache_v, table, lens, out)
    for s in range(seqs):
        pos = np.arange(lens[s])
        k = cache_k[table[s, pos // page], pos % page].astype(np.float64)
        v = cache_v[table[s, pos // page], pos % page].astype(np.float64)
        w = np.exp(k @ q[s] - np.max(k @ q[s]))
        np.testing.assert_allclose(out[s], (w @ v) / w.sum(), rtol=1e-5, atol=1e-6)


# -- diagnostics at the user's line ---------------------------------------------------------------


def _compile_error(body: str, tmp_path) -> str | None:
    namespace = {"tv": tv, "f32": f32, "i32": i32}
    source = ("@tv.kernel\n"
              "def bad(x: tv.Global[f32, 'n', 'm'], ids: tv.Global[i32, 'n'], "
              "y: tv.Global[f32, 'n'], z: tv.Global[f32, 1, 'n']):\n"
              "    tv.launch(grid=1, warps=1)\n"
              "    idx = tv.load(ids, (0,), (8,))\n"
              f"    {body}\n")
    path = tmp_path / "bad_kernel.py"
    path.write_text(source)
    exec(compile(source, str(path), "exec"), namespace)
    try:
        namespace["bad"].ir()
    except CompileError as e:
        return str(e)
    return None


@pytest.mark.parametrize("body, message", [
    ("tv.load(x, (tv.cast(idx, f32)[:, None], 0), (8, 4))",
     r"offset 0 is a .*f32.*; an index tile must be an i32 tile"),
    ("tv.load(x, (tv.cast(idx, tv.u8)[:, None], 0), (8, 4))", r"cast it to i32"),
    ("tv.load(x, (idx[:, None], 0), (4, 4))", r"shape \[8, 1\], which does not broadcast to "
                                              r"the tile's \[4, 4\]"),
    ("tv.load(x, (idx[None, :], 0), (8, 8))", r"of size 1 along dimension 0, where the tile "
                                              r"has 8 elements"),
    ("tv.load(y, (idx,), ())", r"needs a tile load, not shape \[\]"),
    ("tv.store(y, 1.0, (idx, 0))", r"2 offsets for .* of rank 1"),
    ("tv.load(z, (0, idx), (1, 8))", None),
    ("tv.load(z, (idx[:, None], 0), (8, 8))", r"on dimension 0 of size 1, where the only index "
                                               r"is 0"),
])
def test_bad_index_tiles_are_diagnosed_at_the_users_line(body, message, tmp_path):
    text = _compile_error(body, tmp_path)
    if message is None:  # the well-formed neighbour of a diagnosed case compiles
        assert text is None, text
        return
    assert "bad_kernel.py:5" in text, text
    assert re.search(message, text), text
