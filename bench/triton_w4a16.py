"""The W4A16 GEMM of ``examples/matmul_w4a16.py`` written in Triton, for comparison only.

y = x · Wᵀ with x (m × k) f16, W (n × k) 4-bit unsigned codes packed two per byte LSB first
(tilevm's ``HostTensor`` layout: element e of the buffer in bits [4e, 4e + 4)), per-group f16
scales (n × ⌈k / group⌉) and y (m × n) f16; the real weight is ``(code − 8) · scale`` and products
accumulate in f32.

It is written the way a Triton user writes W4A16 (the GPTQ-Triton pattern): every program computes
a (BM, BN) tile of y, one quantization group of K per step; it gathers the byte that holds each
code, shifts and masks the nibble out, dequantizes in f16 — ``(q − 8) · s``, exact because codes
are small integers, one f16 rounding in the multiply as in tilevm's kernel — and accumulates with
``tl.dot`` in f32. The tile configuration is tilevm's example's: BM = BN = GROUP = 32, 4 warps.

Whether ``matmul_w4a16_kernel`` is interpreted or compiled is decided by Triton when this module
is imported: set ``TRITON_INTERPRET=1`` before importing it to run it on CPU torch tensors.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

__all__ = ["BLOCK_M", "BLOCK_N", "GROUP", "NUM_WARPS", "grid", "launch_arguments",
           "matmul_w4a16", "matmul_w4a16_kernel"]

# tilevm's example's defaults (examples/matmul_w4a16.py: bm, bn, group, warps).
BLOCK_M = 32
BLOCK_N = 32
GROUP = 32
NUM_WARPS = 4


@triton.jit
def matmul_w4a16_kernel(x_ptr, w_ptr, scales_ptr, y_ptr, M, N, K,
                        stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sg,
                        stride_ym, stride_yn,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP: tl.constexpr):
    """One (BLOCK_M, BLOCK_N) tile of y = x · dequant(W)ᵀ; the w strides are in 4-bit elements."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, GROUP):  # one quantization group per step
        offs_k = k0 + tl.arange(0, GROUP)
        mask_k = offs_k < K
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        # Element e of W lives in byte e // 2, low nibble first.
        element = offs_n[:, None] * stride_wn + offs_k[None, :] * stride_wk
        packed = tl.load(w_ptr + element // 2, mask=mask_n[:, None] & mask_k[None, :], other=0)
        q = (packed >> ((element % 2) * 4)) & 0xF
        s = tl.load(scales_ptr + offs_n * stride_sn + (k0 // GROUP) * stride_sg,
                    mask=mask_n, other=0.0)
        weights = (q.to(tl.float16) - 8.0) * s[:, None]
        acc = tl.dot(a, tl.trans(weights), acc)
    y = acc.to(tl.float16)
    tl.store(y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn, y,
             mask=mask_m[:, None] & mask_n[None, :])


def grid(m: int, n: int) -> tuple[int, int]:
    """The launch grid: one program per (BLOCK_M, BLOCK_N) tile of y, as tilevm's example."""
    return triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N)


def launch_arguments(x: Any, w_packed: Any, scales: Any, y: Any, k: int,
                     group: int = GROUP) -> tuple[list, dict]:
    """Positional and keyword arguments of ``matmul_w4a16_kernel`` for these tensors.

    ``x`` is (m, k) f16, ``w_packed`` the (n · k + 1) // 2 bytes (uint8, 1-D) of a contiguous
    (n, k) u4 tensor packed LSB first, ``scales`` (n, ⌈k / group⌉) f16 and ``y`` (m, n) f16.
    """
    m, n = y.shape
    args = [x, w_packed, scales, y, m, n, k, x.stride(0), x.stride(1), k, 1,
            scales.stride(0), scales.stride(1), y.stride(0), y.stride(1)]
    kwargs = {"BLOCK_M": BLOCK_M, "BLOCK_N": BLOCK_N, "GROUP": group, "num_warps": NUM_WARPS}
    return args, kwargs


def matmul_w4a16(x: Any, w_packed: Any, scales: Any, y: Any, k: int, group: int = GROUP) -> None:
    """Write x · dequant(W)ᵀ into ``y`` (torch tensors on one device; see
    :func:`launch_arguments`)."""
    args, kwargs = launch_arguments(x, w_packed, scales, y, k, group)
    matmul_w4a16_kernel[grid(*y.shape)](*args, **kwargs)
