"""Fused attention forward for one head: O = softmax(Q·Kᵀ·scale) · V, optionally causal.

The scores matrix S is never stored. Each block owns ``bm`` query rows and walks over the keys
``bn`` at a time, keeping for every row a running maximum ``m_i``, a running sum ``l_i`` of
exp(s − m_i) and an accumulator of P·V. When a new block of keys raises the maximum, what was
accumulated so far is rescaled by exp(m_old − m_new) ("online softmax", as in FlashAttention), so
one pass over K and V suffices. The causal mask is a ``tv.where`` on tile coordinates. Q, K, V and
O are f16; scores, softmax and accumulation are f32; P is rounded to f16 for the second ``dot``.

Run it: ``python examples/attention.py`` (it checks itself against numpy in float64).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tilevm as tv
from tilevm import f16, f32

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import check_accuracy


@tv.kernel
def attention(q: tv.Global[f16, "sq", "d"], k: tv.Global[f16, "sk", "d"],
              v: tv.Global[f16, "sk", "d"], o: tv.Global[f16, "sq", "d"], scale: tv.Scalar[f32],
              *, bm: tv.Const = 16, bn: tv.Const = 16, hd: tv.Const = 64, causal: tv.Const = True):
    tv.launch(grid=tv.cdiv(sq, bm), warps=4)
    row0 = tv.block_idx() * bm
    qt = tv.load(q, (row0, 0), (bm, hd))  # hd >= d: the extra head columns read 0
    m_i = tv.full((bm,), float("-inf"), f32)
    l_i = tv.zeros((bm,), f32)
    acc = tv.zeros((bm, hd), f32)
    rows = row0 + tv.arange(0, bm)
    # With a causal mask, keys after the block's last row are masked for every row: stop there.
    # Key 0 is visible to every row, so m_i is finite after the first step (no inf - inf).
    end = min(sk, row0 + bm) if causal else sk
    for n0 in tv.range(0, end, bn):
        s = tv.dot(qt, tv.load(k, (n0, 0), (bn, hd)).T) * scale  # f32, from zero
        cols = n0 + tv.arange(0, bn)
        valid = cols[None, :] < sk  # keys past the end
        if causal:  # a compile-time branch: only one version is built
            valid = valid & (cols[None, :] <= rows[:, None])
        s = tv.where(valid, s, float("-inf"))
        m_new = tv.maximum(m_i, tv.max(s, 1))
        p = tv.exp(s - m_new[:, None])
        alpha = tv.exp(m_i - m_new)  # rescales the old sum and accumulator to the new max
        l_i = l_i * alpha + tv.sum(p, 1)
        acc = tv.dot(tv.cast(p, f16), tv.load(v, (n0, 0), (bn, hd)), acc * alpha[:, None])
        m_i = m_new
    tv.store(o, tv.cast(acc / l_i[:, None], f16), (row0, 0))


def main(argv: list[str] | None = None) -> float:
    """Run on random data and check the accuracy rule; returns the largest error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sq", type=int, default=45)
    parser.add_argument("--sk", type=int, default=45)
    parser.add_argument("--d", type=int, default=40)
    parser.add_argument("--no-causal", dest="causal", action="store_false")
    parser.add_argument("--device", default="cpu", help="cpu (the default) or interp")
    args = parser.parse_args(argv)
    if args.causal and args.sq != args.sk:
        parser.error("the causal mask here is for sq == sk")
    hd = max(16, 1 << (args.d - 1).bit_length())
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((n, args.d)).astype(np.float16)
               for n in (args.sq, args.sk, args.sk))
    scale = 1 / np.sqrt(args.d)
    o = np.zeros((args.sq, args.d), np.float16)
    attention(q, k, v, o, scale, device=args.device, hd=hd, causal=args.causal)

    allowed = np.ones((args.sq, args.sk), bool)
    if args.causal:
        allowed = np.arange(args.sk)[None, :] <= np.arange(args.sq)[:, None]

    def softmax_rows(s: np.ndarray) -> np.ndarray:
        s = np.where(allowed, s, -np.inf)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    ref = softmax_rows(q.astype(np.float64) @ k.astype(np.float64).T * scale) @ v.astype(
        np.float64)
    p32 = softmax_rows(q.astype(np.float32) @ k.astype(np.float32).T * np.float32(scale))
    base = (p32.astype(np.float16).astype(np.float32) @ v.astype(np.float32)).astype(np.float16)
    return check_accuracy("attention", o, ref, base, tv.f16.unit_roundoff)


if __name__ == "__main__":
    main()
