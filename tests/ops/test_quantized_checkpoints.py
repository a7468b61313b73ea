"""GPTQ and AWQ checkpoints imported into QuantLinear.

The checkpoints are packed here by a separate implementation written from the formats' own
descriptions (AutoGPTQ: codes as one LSB-first bit stream per output column along the input
dimension in int32 words, zero points packed the same way along the outputs and stored minus
one in the classic format; AutoAWQ's GEMM format: eight 4-bit codes of one input row per word,
along the outputs in the order [0, 2, 4, 6, 1, 3, 5, 7]), with Python integers rather than the
importer's numpy bit unpacking. The imported layer must multiply by exactly the weights the
formats define, ``(q − z) · s``, and its product meets the accuracy rule.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from tilevm.ops import QuantLinear

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "kernels"))
from quant_reference import accuracy_bound, dequantize_reference, linear_references, unpack

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def int32_words(stream: int, count: int) -> list[int]:
    """``count`` 32-bit words of a bit stream (a Python integer), as signed int32 values."""
    words = [(stream >> (32 * i)) & 0xFFFFFFFF for i in range(count)]
    return [w - (1 << 32) if w >= 1 << 31 else w for w in words]


def pack_stream(values: list[int], bits: int, words: int) -> list[int]:
    stream = 0
    for i, v in enumerate(values):
        stream |= (v & ((1 << bits) - 1)) << (bits * i)
    return int32_words(stream, words)


def gptq_pack(codes_kn: np.ndarray, zeros_gn: np.ndarray, bits: int,
              v1: bool) -> tuple[np.ndarray, np.ndarray]:
    """qweight (k·bits/32, n) and qzeros (groups, n·bits/32) of a GPTQ checkpoint."""
    k, n = codes_kn.shape
    rows = -(-k * bits // 32)
    qweight = np.array([pack_stream(codes_kn[:, j].tolist(), bits, rows) for j in range(n)],
                       np.int64).T.astype(np.int32)
    stored = zeros_gn - 1 if v1 else zeros_gn
    qzeros = np.array([pack_stream(row.tolist(), bits, -(-n * bits // 32)) for row in stored],
                      np.int64).astype(np.int32)
    return qweight, qzeros


def awq_pack(values: np.ndarray) -> np.ndarray:
    """(r, n) 4-bit values into (r, n/8) int32 words in AWQ's interleaved order."""
    r, n = values.shape
    out = np.zeros((r, n // 8), np.int64)
    for c in range(n // 8):
        word = np.zeros(r, np.int64)
        for i in range(8):
            word |= values[:, 8 * c + AWQ_ORDER[i]].astype(np.int64) << (4 * i)
        out[:, c] = word
    return np.where(out >= 1 << 31, out - (1 << 32), out).astype(np.int32)


def layer_dequantized(layer: QuantLinear) -> np.ndarray:
    bits = layer.weight_type.nbits
    n = layer.out_features
    kp = layer.qweight.shape[1] * 8 // bits
    codes = unpack(layer.qweight.numpy(), bits, (n, kp))
    scales = layer.scales.float().numpy()
    zeros = unpack(layer.qzeros.numpy(), bits, scales.shape)
    return dequantize_reference(codes, scales, zeros, layer.wtype, layer.group_size,
                                layer.in_features)


def format_dequantized(codes_kn, zeros_gn, scales_gn, group: int) -> np.ndarray:
    """(n, k): ``s[g, n] · (q[k, n] − z[g, n])``, g = k // group, as the formats define it."""
    k = codes_kn.shape[0]
    g = np.arange(k) // group if group > 0 else np.zeros(k, np.int64)
    return (scales_gn[g].astype(np.float64) * (codes_kn - zeros_gn[g])).T


def check_product(layer: QuantLinear, w: np.ndarray) -> None:
    x = torch.randn(11, layer.in_features, dtype=torch.float16)
    y = layer(x).double().numpy()
    ref, base = linear_references(x.numpy(), w, None, "f16")
    assert np.max(np.abs(y - ref)) <= accuracy_bound(ref, base, "f16")


@pytest.mark.parametrize("bits, group, k, v1", [(4, 128, 256, True), (3, 32, 224, True),
                                                (2, 64, 128, False), (8, -1, 96, True)])
def test_gptq_checkpoint_imports_to_the_weights_it_defines(bits, group, k, v1):
    n = 136 if bits != 3 else 64  # 3-bit zeros are packed 32 to 3 words: n a multiple of 32
    rng = np.random.default_rng(bits)
    groups = k // group if group > 0 else 1
    codes = rng.integers(0, 1 << bits, (k, n))
    zeros = rng.integers(0, 1 << bits, (groups, n))  # v1 stores a zero point of 0 as all ones
    scales = (rng.uniform(0.5, 2, (groups, n)) / (1 << bits)).astype(np.float16)
    qweight, qzeros = gptq_pack(codes, zeros, bits, v1)
    g_idx = torch.arange(k, dtype=torch.int32) // group if group > 0 else None
    layer = QuantLinear.from_gptq(torch.from_numpy(qweight), torch.from_numpy(qzeros),
                                  torch.from_numpy(scales), bits=bits, group_size=group,
                                  g_idx=g_idx, checkpoint_format="gptq" if v1 else "gptq_v2")
    assert (layer.in_features, layer.out_features, layer.wtype) == (k, n, f"u{bits}")
    w = format_dequantized(codes, zeros, scales, group)
    np.testing.assert_array_equal(layer_dequantized(layer), w)
    check_product(layer, w)


def test_gptq_act_order_is_refused_by_name():
    k, n = 64, 32
    qweight, qzeros = gptq_pack(np.zeros((k, n), np.int64), np.ones((2, n), np.int64), 4, True)
    g_idx = torch.arange(k, dtype=torch.int32).flip(0) // 32
    with pytest.raises(NotImplementedError, match="act_order"):
        QuantLinear.from_gptq(torch.from_numpy(qweight), torch.from_numpy(qzeros),
                              torch.ones(2, n, dtype=torch.float16), bits=4, group_size=32,
                              g_idx=g_idx)


def test_awq_checkpoint_imports_to_the_weights_it_defines():
    k, n, group = 224, 136, 32
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 16, (k, n))
    zeros = rng.integers(0, 16, (k // group, n))
    scales = rng.uniform(0.01, 0.1, (k // group, n)).astype(np.float16)
    bias = torch.randn(n, dtype=torch.float16)
    layer = QuantLinear.from_awq(torch.from_numpy(awq_pack(codes)),
                                 torch.from_numpy(awq_pack(zeros)), torch.from_numpy(scales),
                                 group_size=group, bias=bias)
    w = format_dequantized(codes, zeros, scales, group)
    np.testing.assert_array_equal(layer_dequantized(layer), w)
    x = torch.randn(4, k, dtype=torch.float16)
    ref, base = linear_references(x.numpy(), w, bias.numpy(), "f16")
    assert np.max(np.abs(layer(x).double().numpy() - ref)) <= accuracy_bound(ref, base, "f16")
