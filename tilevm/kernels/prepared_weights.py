"""Weight preparation in the DSL: dense quantized weights (the operands of
:mod:`tilevm.kernels.quant_linear`) re-laid out in the prepared format of
:mod:`tilevm.kernels.prepared_layouts`, the format the prepared-weight GEMMs
(:mod:`tilevm.kernels.prepared_linear`) read.

Given the activation type ``A`` (f16 or bf16), the weight type ``W`` (1 to 8 bits) and the chunk
width ``bk`` (:data:`CHUNK_WIDTHS`: 16, 32, 64 or 128):

- **codes** (``n × kp`` of ``W``) become a ``uint32`` tensor of shape
  ``(⌈n/32⌉, ⌈kp/bk⌉, 32 · chunk_words(bk, W.nbits))``: chunk ``(c, kb)`` holds rows
  ``[32c, 32c + 32)`` and columns ``[kb·bk, kb·bk + bk)``, lane ``l``'s codes in the local order
  of ``tv.fast_cast_layout(chunk_layout(bk), W, A)`` packed LSB first into words
  ``[l · words, (l + 1) · words)``. Rows ``≥ n`` and columns ``≥ kp`` are code 0.
- **scales** (``n × groups`` of ``S``: ``A``, or a block scale type) become a ``uint32`` tensor of
  shape ``(⌈n/32⌉, groups, 8 · value_words(S.nbits))``: per chunk and group, lane group ``g``'s
  four values (rows ``g``, ``g + 8``, ``g + 16``, ``g + 24`` of the chunk) in one run of words.
  Rows ``≥ n`` are bits 0.
- **zero points** (``n × groups`` of ``W``, integer types only) are converted to ``A`` (exact:
  every code of an integer type of at most 8 bits is an f16 and a bf16 value) and prepared as
  scales of type ``A``.

The bytes are those of the numpy reference
:func:`tilevm.kernels.weight_preparation.prepare_weights` on the padded codes. Two kernels do
the work, one load, one ``view`` and one store per block (the codes kernel converts its tile's
layout in between); each ``(W, A, bk)`` is one specialization of the codes kernel, each pair of
value types one of the other. The kernels use the public API only (DESIGN §2: kernels sit on
top).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import tilevm as tv
from tilevm import u32
from tilevm.frontend.device_tensors import argument_dtype

from .prepared_layouts import (
    CHUNK_N,
    chunk_layout,
    chunk_words,
    packed_layout,
    packed_value_layout,
    value_layout,
    value_words,
)
from .quant_linear import BLOCK_SCALES, check_block_format, weight_dtype

__all__ = ["CHUNK_WIDTHS", "PreparedWeights", "default_chunk_k", "prepare_codes_kernel",
           "prepare_linear_weights", "prepare_values_kernel"]

CHUNK_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)
"""The chunk widths ``bk`` (columns of W per chunk) the prepared format takes (16: one
``m16n8k16`` step, for NVFP4's groups of 16)."""

W = tv.Dtype("W")  # the weight codes' type
V = tv.Dtype("V")  # the type of a column of values: scales' (S) or zero points' (W)


@tv.kernel
def prepare_codes_kernel(w: tv.Global[W, "n", "kp"],
                         out: tv.Global[u32, "chunks", "steps", "lane_words"],
                         *, act: tv.Const, bk: tv.Const, warps: tv.Const = 4):
    """Write the prepared codes of ``w`` into ``out`` (``⌈n/32⌉ × ⌈kp/bk⌉ × 32 ·
    chunk_words(bk, W.nbits)``), in the fast-cast order of the activation type ``act``. Each
    block prepares ``warps`` chunks of one column of chunks; codes past ``n`` and ``kp`` are 0."""
    tv.launch(grid=(tv.cdiv(n, CHUNK_N * warps), steps), warps=warps)
    c, kb = tv.block_idx()
    # Each thread loads one row's run of bk codes (whole vectors; the masked load pads with
    # code 0): loading straight into the chunk layout would gather every code (or pair of
    # codes) with a load of its own.
    rows = tv.load(w, (c * CHUNK_N * warps, kb * bk), (CHUNK_N * warps, bk),
                   layout=tv.spatial(CHUNK_N * warps, 1) * tv.local(1, bk))
    # Warp w then holds chunk c·warps + w, each lane's codes in the order the GEMM's cast wants
    # them, so that the view is each lane's own bits.
    chunk = tv.convert_layout(rows, tv.spatial(warps, 1)
                              * tv.fast_cast_layout(chunk_layout(bk), W, act))
    words = tv.view(chunk, u32, packed_layout(warps, chunk_words(bk, W.nbits)))
    tv.store(out, words, (c * warps, kb, 0))


@tv.kernel
def prepare_values_kernel(values: tv.Global[V, "n", "groups"],
                          out: tv.Global[u32, "chunks", "groups", "group_words"],
                          *, value_type: tv.Const, warps: tv.Const = 4):
    """Write the prepared columns of ``values`` (scales, or zero points) as ``value_type``
    values into ``out`` (``⌈n/32⌉ × groups × 8 · value_words(value_type.nbits)``):
    ``value_type`` is the values' own type (scales) or the activation type they are converted to
    (zero points, exactly). Rows past ``n`` are bits 0 (value 0 converts to +0)."""
    tv.launch(grid=(tv.cdiv(n, CHUNK_N * warps), groups), warps=warps)
    c, g = tv.block_idx()
    layout = value_layout(CHUNK_N * warps, warps)
    column = tv.load(values, (c * CHUNK_N * warps, g), (CHUNK_N * warps, 1), layout=layout,
                     other=_value_of_zero_bits(V))
    # A cast to the same type is no instruction; view wants a layout the program gave.
    column = tv.convert_layout(tv.cast(column, value_type), layout)
    words = tv.view(column, u32, packed_value_layout(warps, value_words(value_type.nbits)))
    tv.store(out, words, (c * warps, g, 0))


def _value_of_zero_bits(dtype_: tv.DType) -> float:
    """The value whose bits are all 0 in ``dtype_``: what rows past ``n`` hold. 0, except for
    ``f8e8m0fnu``, which has no zero (0 would encode as its NaN, 0xFF): 2^-127."""
    return float(dtype_.decode(np.array(0))) if dtype_.kind == "float" else 0


@dataclass(frozen=True)
class PreparedWeights:
    """A quantized linear layer's weights in the prepared format (see the module docstring).

    ``codes``: ``uint32`` ``(chunks, steps, 32 · code_words)``; ``scales``: ``uint32``
    ``(chunks, groups, 8 · scale_words)``; ``zeros``: ``uint32`` ``(chunks, groups, 8 ·
    zero_words)`` of ``act`` values, or None (the implicit zero point of
    :func:`~tilevm.kernels.quant_linear.implicit_zero`). numpy arrays for host inputs, torch
    tensors on the inputs' device for torch inputs. ``n`` rows (out features), ``kp`` columns
    of the dense codes (``k`` padded by quantization; the prepared codes pad further to
    ``kp_padded``); ``group_size`` 0 is one scale per row."""

    codes: Any
    scales: Any
    zeros: Any
    wtype: tv.DType
    act: tv.DType
    scale_type: tv.DType
    group_size: int
    bk: int
    n: int
    kp: int

    @property
    def chunks(self) -> int:
        """Chunks of 32 rows: ``⌈n / 32⌉``."""
        return -(-self.n // CHUNK_N)

    @property
    def steps(self) -> int:
        """Chunk columns of ``bk`` codes: ``⌈kp / bk⌉``."""
        return -(-self.kp // self.bk)

    @property
    def kp_padded(self) -> int:
        """The prepared codes' columns: ``kp`` rounded up to a multiple of ``bk``."""
        return self.steps * self.bk

    @property
    def groups(self) -> int:
        """Quantization groups per row (1 per channel)."""
        return -(-self.kp // self.group_size) if self.group_size else 1

    @property
    def code_words(self) -> int:
        """32-bit words of codes per lane and chunk."""
        return chunk_words(self.bk, self.wtype.nbits)

    @property
    def scale_words(self) -> int:
        """32-bit words of scales per lane group, chunk and group."""
        return value_words(self.scale_type.nbits)

    @property
    def zero_words(self) -> int:
        """32-bit words of zero points (``act`` values) per lane group, chunk and group."""
        return value_words(self.act.nbits)

    @property
    def block_scaled(self) -> bool:
        """Scales of a block scale type (MX, NVFP4) rather than of ``act``."""
        return self.scale_type.name in BLOCK_SCALES


def default_chunk_k(wtype: tv.DType | str, group_size: int) -> int:
    """The chunk width a layer's weights are prepared with by default: the smallest ``bk`` of
    32, 64 and 128 dividing ``group_size`` (0, per channel: any) whose lane runs
    (``bk · nbits / 8`` bytes) are whole 16-byte vectors; if none is, the largest of them
    dividing the group; 16 for a group of 16 (NVFP4). Raises ValueError naming
    ``group_size`` when no width divides it."""
    nbits = (tv.dtype(wtype) if isinstance(wtype, str) else wtype).nbits
    if group_size < 0:
        raise ValueError(f"group_size={group_size}: a positive group size, or 0 per channel")
    # Steps of 16 codes only where nothing wider fits: each step costs its loop overhead.
    dividing = ([bk for bk in CHUNK_WIDTHS if bk >= 32 and group_size % bk == 0]
                or [bk for bk in CHUNK_WIDTHS if group_size % bk == 0])
    if not dividing:
        raise ValueError(f"group_size={group_size}: no chunk width of {CHUNK_WIDTHS} divides "
                         "it (prepared weights take groups of multiples of 16, or 0)")
    for bk in dividing:
        if bk * nbits % 128 == 0:  # the lane's bk·nbits bits are whole 16-byte vectors
            return bk
    return dividing[-1]


def prepare_linear_weights(w: Any, scales: Any, zeros: Any = None, *, act: tv.DType | str,
                           group_size: int, bk: int | None = None,
                           device: str | None = None) -> PreparedWeights:
    """Prepare a quantized layer's dense weights for the prepared-weight GEMMs.

    ``w``: the codes (``n × kp`` of the weight type: a ``tv.HostTensor``, ``tv.packed`` bytes,
    or a numpy array or torch tensor of a type of 8 bits); ``scales`` (``n × groups``) of
    ``act`` or of a block scale type (``f8e8m0fnu``, ``f8e4m3fn``: :data:`BLOCK_SCALES`);
    ``zeros`` (``n × groups`` of the weight type, integer types only) or None; ``groups`` is
    ``⌈kp / group_size⌉`` (1 when ``group_size`` is 0, per channel). ``act`` is the
    activation type (f16 or bf16), ``bk`` the chunk width (default :func:`default_chunk_k`).

    Host inputs run on the CPU backend (``device`` may say ``"interp"``) and give numpy arrays;
    torch inputs give torch tensors allocated on their device. Raises ValueError naming the
    argument for a type that is not accepted, shapes that disagree, zero points of float
    (or block-scaled) weights, a ``bk`` not in :data:`CHUNK_WIDTHS` or not dividing the group,
    a negative group size, or inputs on different devices."""
    try:
        at = tv.dtype(act) if isinstance(act, str) else act
    except ValueError:  # an unknown name
        at = None
    if not isinstance(at, tv.DType) or at.name not in ("f16", "bf16"):
        raise ValueError(f"act={getattr(at, 'name', act)}: activations are f16 or bf16")
    code_type = _argument_type("w", w)
    try:
        wtype = weight_dtype(code_type)
    except ValueError as e:  # its message names the type as wtype=…; here the argument is w
        reason = str(e).removeprefix(f"wtype={code_type.name}: ")
        raise ValueError(f"w: {code_type.name} codes: {reason}") from None
    scale_type = _argument_type("scales", scales)
    if scale_type.name in BLOCK_SCALES:
        check_block_format(wtype, scale_type, group_size)
    elif scale_type != at:
        raise ValueError(f"scales: {scale_type.name} scales with {at.name} activations; scales "
                         f"are {at.name} or a block scale type ({', '.join(BLOCK_SCALES)})")
    if group_size < 0:
        raise ValueError(f"group_size={group_size}: a positive group size, or 0 per channel")
    if bk is None:
        bk = default_chunk_k(wtype, group_size)
    elif bk not in CHUNK_WIDTHS:
        raise ValueError(f"bk={bk}: the chunk width is one of {CHUNK_WIDTHS}")
    elif group_size % bk:
        raise ValueError(f"bk={bk} does not divide group_size={group_size}: a chunk must not "
                         "cross a quantization group")

    if len(w.shape) != 2:
        raise ValueError(f"w: the codes are a matrix (n, kp), got shape {tuple(w.shape)}")
    n, kp = (int(s) for s in w.shape)
    groups = -(-kp // group_size) if group_size else 1
    if tuple(scales.shape) != (n, groups):
        raise ValueError(f"scales: expected shape {(n, groups)} ({n} rows of w, "
                         f"{groups} groups of {group_size or kp} in its {kp} columns), got "
                         f"{tuple(scales.shape)}")
    if zeros is not None:
        if wtype.kind not in ("uint", "int"):
            raise ValueError(f"zeros: {wtype.name} weights have no zero points (integers only)")
        zero_type = _argument_type("zeros", zeros)
        if zero_type != wtype:
            raise ValueError(f"zeros: zero points are of the weights' type {wtype.name}, got "
                             f"{zero_type.name}")
        if tuple(zeros.shape) != (n, groups):
            raise ValueError(f"zeros: expected the scales' shape {(n, groups)}, got "
                             f"{tuple(zeros.shape)}")

    place = _common_place(w=w, scales=scales, zeros=zeros)
    chunks, steps = -(-n // CHUNK_N), -(-kp // bk)
    codes_out = _empty_words((chunks, steps, CHUNK_N * chunk_words(bk, wtype.nbits)), place)
    prepare_codes_kernel(w, codes_out, device=device, act=at, bk=bk)
    scales_out = _empty_words((chunks, groups, 8 * value_words(scale_type.nbits)), place)
    prepare_values_kernel(scales, scales_out, device=device, value_type=scale_type)
    zeros_out = None
    if zeros is not None:
        zeros_out = _empty_words((chunks, groups, 8 * value_words(at.nbits)), place)
        prepare_values_kernel(zeros, zeros_out, device=device, value_type=at)
    return PreparedWeights(codes_out, scales_out, zeros_out, wtype, at, scale_type, group_size,
                           bk, n, kp)


def _argument_type(name: str, tensor: Any) -> tv.DType:
    """The tilevm type of an input: a HostTensor's or packed tensor's own, a numpy (ml_dtypes)
    array's or a torch tensor's counterpart; ValueError naming the argument otherwise."""
    found = argument_dtype(tensor) if hasattr(tensor, "shape") else None
    if found is None:
        dt = getattr(tensor, "dtype", None)
        raise ValueError(f"{name}: expected a tensor of a tilevm type, got {type(tensor).__name__}"
                         f"{'' if dt is None else f' of dtype {dt}'}")
    return found


def _torch_tensor(tensor: Any) -> Any:
    """The torch tensor holding ``tensor``'s data (itself, or the bytes of ``tv.packed``), or
    None for host data that are not torch's."""
    if isinstance(tensor, np.ndarray):  # its .data is a buffer, which not every dtype gives
        return None
    for candidate in (tensor, getattr(tensor, "data", None)):
        if type(candidate).__module__.startswith("torch") and hasattr(candidate, "device"):
            return candidate
    return None


def _common_place(**inputs: Any) -> Any:
    """Where the outputs go: None (numpy arrays) when no input is a torch tensor, else the torch
    device of the torch inputs. ValueError naming two inputs on different devices."""
    first: tuple[str, str] | None = None  # the first input's name and device
    place = None
    for name, tensor in inputs.items():
        if tensor is None:
            continue
        held = _torch_tensor(tensor)
        device = "host" if held is None or held.device.type == "cpu" else str(held.device)
        if first is None:
            first = (name, device)
        elif device != first[1]:
            raise ValueError(f"{first[0]} and {name}: the inputs are on different devices "
                             f"({first[1]}, {device})")
        if held is not None and place is None:
            place = held.device
    return place


def _empty_words(shape: tuple[int, ...], place: Any) -> Any:
    """An output of 32-bit words: a numpy array (``place`` None) or a torch tensor on
    ``place`` (the kernel writes every word)."""
    if place is None:
        return np.empty(shape, np.uint32)
    import torch  # optional: only torch inputs lead here

    return torch.empty(shape, dtype=torch.uint32, device=place)
