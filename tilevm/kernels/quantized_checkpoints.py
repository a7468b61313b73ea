"""GPTQ and AWQ checkpoints, unpacked from their int32 packing into weight codes, zero points and
scales in the layout of :mod:`tilevm.kernels.quant_linear` (W as n × k, nn.Linear's).

Both formats store a linear layer of ``in_features`` k and ``out_features`` n as

- **GPTQ** (AutoGPTQ, GPTQModel; ``bits`` 2, 3, 4 or 8): ``qweight`` int32 (k·bits/32, n), the
  codes of each output column packed along k, LSB first, as one bit stream (a 3-bit code may
  straddle two words); ``qzeros`` int32 (groups, n·bits/32), the zero points packed the same way
  along n; ``scales`` (groups, n). The classic format (``checkpoint_format="gptq"``) stores each
  zero point minus one; ``"gptq_v2"`` stores it as it is. ``g_idx`` (k) maps each input column
  to its group; only the plain map ``g_idx[i] = i // group_size`` is accepted (act-order
  checkpoints, ``desc_act=True``, permute it: not supported).
- **AWQ** (AutoAWQ's GEMM format; 4 bits): ``qweight`` int32 (k, n/8), eight codes of one input
  row per word, packed along n in the interleaved order ``[0, 2, 4, 6, 1, 3, 5, 7]`` (nibble i
  holds column ``8·word + order[i]``); ``qzeros`` int32 (groups, n/8) packed the same way, stored
  as they are; ``scales`` (groups, n).

In both the weight is ``(q − z) · s`` with unsigned codes, which is the layer's ``u{bits}``
with explicit zero points.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["AWQ_ORDER", "ImportedWeights", "import_awq", "import_gptq", "unpack_bit_stream"]

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


class ImportedWeights(NamedTuple):
    """Codes (n × k), zero points (n × groups), both int64 in ``[0, 2^bits)``, and scales
    (n × groups) as stored."""

    codes: np.ndarray
    zeros: np.ndarray
    scales: np.ndarray
    bits: int
    group_size: int  # 0: per channel


def _int32_array(name: str, value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype not in (np.int32, np.uint32):
        raise TypeError(f"{name}: int32 words expected, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name}: a matrix of int32 words expected, got shape {array.shape}")
    return array.view(np.uint32)


def _float_array(value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)


def unpack_bit_stream(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` codes of ``bits`` bits along axis 0 of ``words`` (uint32, r × c):
    column j is one LSB-first bit stream of the words ``words[0, j], words[1, j], …``.
    Returns int64 (count × c)."""
    if words.shape[0] * 32 < count * bits:
        raise ValueError(f"{words.shape[0]} words of 32 bits hold fewer than {count} codes of "
                         f"{bits} bits")
    # Bytes of each column in stream order (little-endian words), then the bits LSB first.
    stream = np.ascontiguousarray(words.T).astype("<u4").view(np.uint8)  # (c, 4·r)
    flat = np.unpackbits(stream, axis=1, bitorder="little")[:, :count * bits]
    weights = (1 << np.arange(bits, dtype=np.int64))
    return (flat.reshape(words.shape[1], count, bits).astype(np.int64) @ weights).T


def _groups_of(k: int, group_size: int) -> int:
    return -(-k // group_size) if group_size > 0 else 1


def _check_g_idx(g_idx: Any, k: int, group_size: int) -> None:
    if g_idx is None:
        return
    if type(g_idx).__module__.startswith("torch"):
        g_idx = g_idx.detach().cpu().numpy()
    g_idx = np.asarray(g_idx).reshape(-1)
    plain = np.arange(k) // group_size if group_size > 0 else np.zeros(k, np.int64)
    if g_idx.shape != (k,) or not np.array_equal(g_idx, plain):
        raise NotImplementedError(
            "g_idx: this GPTQ checkpoint was quantized with act_order (desc_act=True), which "
            "permutes the input columns' groups; act_order/g_idx checkpoints are not supported "
            "(re-quantize with desc_act=False)")


def import_gptq(qweight: Any, qzeros: Any, scales: Any, *, bits: int, group_size: int,
                in_features: int | None = None, g_idx: Any = None,
                checkpoint_format: str = "gptq") -> ImportedWeights:
    """Unpack a GPTQ layer (see the module docstring). ``group_size`` -1 or 0 is per channel;
    ``in_features`` defaults to what ``qweight`` holds. Raises NotImplementedError for an
    act-order ``g_idx``, ValueError for shapes that do not agree or an unknown format."""
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits={bits}: GPTQ checkpoints have 2, 3, 4 or 8 bits")
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ValueError(f"checkpoint_format={checkpoint_format!r}: 'gptq' (zeros stored minus "
                         "one) or 'gptq_v2'")
    words = _int32_array("qweight", qweight)
    zero_words = _int32_array("qzeros", qzeros)
    scales = _float_array(scales)
    group_size = max(group_size, 0)
    n = words.shape[1]
    k = in_features if in_features is not None else words.shape[0] * 32 // bits
    groups = _groups_of(k, group_size)
    if scales.shape != (groups, n):
        raise ValueError(f"scales: shape {scales.shape}, expected ({groups}, {n}) for "
                         f"in_features={k}, out_features={n}, group_size={group_size}")
    if zero_words.shape[0] != groups:
        raise ValueError(f"qzeros: {zero_words.shape[0]} rows for {groups} groups")
    _check_g_idx(g_idx, k, group_size)
    codes = unpack_bit_stream(words, bits, k).T  # (n, k)
    # The zeros of one group are a bit stream along n: transpose so that streams run on axis 0.
    zeros = unpack_bit_stream(zero_words.T, bits, n)  # (n, groups)
    if checkpoint_format == "gptq":
        zeros = (zeros + 1) % (1 << bits)  # stored minus one (a stored −1 wraps to all ones)
    return ImportedWeights(codes, zeros, scales.T.copy(), bits, group_size)


def import_awq(qweight: Any, qzeros: Any, scales: Any, *, group_size: int,
               bits: int = 4) -> ImportedWeights:
    """Unpack an AWQ (GEMM format) layer (see the module docstring). Raises ValueError for
    another bit width or shapes that do not agree."""
    if bits != 4:
        raise ValueError(f"bits={bits}: AWQ checkpoints (GEMM format) have 4 bits")
    words = _int32_array("qweight", qweight)
    zero_words = _int32_array("qzeros", qzeros)
    scales = _float_array(scales)
    group_size = max(group_size, 0)
    k, n = words.shape[0], words.shape[1] * 8
    groups = _groups_of(k, group_size)
    if scales.shape != (groups, n) or zero_words.shape != (groups, n // 8):
        raise ValueError(f"scales {scales.shape} / qzeros {zero_words.shape}: expected "
                         f"({groups}, {n}) / ({groups}, {n // 8}) for a ({k}, {n // 8}) "
                         f"qweight and group_size={group_size}")

    def unpack_along_n(w: np.ndarray) -> np.ndarray:
        nibbles = (w[:, :, None] >> (4 * np.arange(8, dtype=np.uint32))) & 15  # (r, c, 8)
        columns = np.empty_like(nibbles)
        columns[:, :, list(AWQ_ORDER)] = nibbles  # nibble i holds column order[i]
        return columns.reshape(w.shape[0], -1).astype(np.int64)

    codes = unpack_along_n(words).T  # (n, k)
    zeros = unpack_along_n(zero_words).T  # (n, groups)
    return ImportedWeights(codes, zeros, scales.T.copy(), bits, group_size)
