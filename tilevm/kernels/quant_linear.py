"""The low-bit-weight linear layer: ``y = x · Wᵀ (+ bias)``, W of any type of 1 to 8 bits.

The general kernel of the library's weight-only quantized GEMM (the tuned decode and prefill
variants come later). Its operands:

- ``x`` (m × k) in the activation type ``A`` (f16 or bf16); callers flatten leading dimensions
  into m.
- ``w`` (n × kp) the weight codes, densely packed (LSB first) in their own type ``W``: unsigned
  integers ``u1``…``u8``, signed integers ``i2``…``i8`` or floats of 3 to 8 bits (``f3e1m1``,
  ``f4e2m1``…``f8e5m2``). ``kp ≥ k`` is k padded by weight preparation to whole groups; the
  kernel reads columns ``[0, k)`` only.
- ``scales`` (n × groups) in ``A``: one per ``group`` consecutive columns of a row, or one per
  row (``group=0``, per channel). Or the block-scaled formats: the OCP MX formats (``f4e2m1``,
  ``f6e2m3``, ``f6e3m2`` or ``f8e4m3`` weights, an ``f8e8m0fnu`` power-of-two scale per 32) and
  NVFP4 (``f4e2m1`` weights, an ``f8e4m3fn`` scale per 16; NVFP4's per-tensor f32 scale is not
  part of this layer: fold it into the activations or the output).
- optionally ``zeros`` (n × groups) in ``W`` (integer types only): the weight is
  ``(q − z) · s``. Without zeros, unsigned codes are centred on the implicit zero point
  ``2^(bits−1)`` (:func:`implicit_zero`) and signed integers and floats on 0.
- optionally ``bias`` (n) in ``A``, added in f32 before the result is rounded to ``A``.

Each dequantized weight is rounded once (the code and its difference with the zero point are
exact in f16 and bf16 for every accepted type; the multiply by the scale rounds); products
accumulate in f32 (``tv.dot``).

One kernel object serves every weight and activation type (``tv.Dtype`` variables); each
combination of types, group size and flags is one specialization, and m varies at run time
without recompiling. The tile sizes ``bm``, ``bn``, ``bk`` and ``warps`` are constants an
autotuner searches (:data:`TUNING_SPACE`, :data:`quant_linear_tuned`).
"""

from __future__ import annotations

import functools
from typing import Any

import tilevm as tv
from tilevm import f32
from tilevm.frontend.device_tensors import argument_dtype

__all__ = [
    "ACTIVATION_TYPES",
    "BLOCK_SCALES",
    "DECODE_ROWS",
    "PREFILL_SPACE",
    "SPLIT_K_SPACE",
    "TUNING_SPACE",
    "VARIANTS",
    "WEIGHT_TYPES",
    "activation_dtype",
    "check_block_format",
    "dtype_of",
    "finish_split_k",
    "group_step",
    "implicit_zero",
    "launch_quant_linear",
    "quant_linear_call",
    "quant_linear_kernel",
    "quant_linear_prefill",
    "quant_linear_prefill_tuned",
    "quant_linear_split_k",
    "quant_linear_split_k_tuned",
    "quant_linear_tuned",
    "stand_in_like",
    "weight_dtype",
    "weight_step",
]

# Every weight type the layer is tested with (DESIGN §3 names; aliases resolve).
WEIGHT_TYPES: tuple[str, ...] = (
    "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8",
    "i2", "i3", "i4", "i5", "i6", "i7", "i8",
    "f3e1m1", "f4e2m1fn", "f5e2m2", "f5e3m1", "f6e2m3fn", "f6e3m2fn", "f7e3m3", "f8e4m3fn",
    "f8e5m2",
)
ACTIVATION_TYPES: tuple[str, ...] = ("f16", "bf16")

# The tile constants an autotuner searches (``bk`` ≤ 32 divides every group size).
TUNING_SPACE: dict[str, list[int]] = {
    "bm": [16, 32, 64], "bn": [32, 64, 128], "bk": [16, 32], "warps": [4, 8],
}
# What a call runs with where nothing chose otherwise (the CPU backend: small JIT, any m).
DEFAULT_TILES: dict[str, int] = {"bm": 16, "bn": 64, "bk": 32, "warps": 4}

A = tv.Dtype("A")  # the activation type: f16 or bf16
W = tv.Dtype("W")  # the weight codes' type
S = tv.Dtype("S")  # the scales' type: A, or a block scale type (f8e8m0fnu, f8e4m3fn)

# The block-scaled formats: scale type → (group size, element types) of the OCP MX formats
# (an e8m0 power of two per 32) and NVFP4 (an e4m3 scale per 16).
BLOCK_SCALES: dict[str, tuple[int, tuple[str, ...]]] = {
    "f8e8m0fnu": (32, ("f4e2m1fn", "f6e2m3fn", "f6e3m2fn", "f8e4m3fn")),
    "f8e4m3fn": (16, ("f4e2m1fn",)),
}


def weight_dtype(name: str | tv.DType) -> tv.DType:
    """The weight type ``name`` stands for (``"f4e2m1"`` is ``f4e2m1fn``).

    Raises ValueError naming the type when it is not an integer or float of 1 to 8 bits whose
    values f16 and bf16 hold exactly (``f8e8m0fnu`` is a scale type, not a weight type)."""
    dt = tv.dtype(name) if isinstance(name, str) else name
    if dt.nbits > 8 or dt.kind not in ("uint", "int", "float") or dt.name == "f8e8m0fnu":
        raise ValueError(f"wtype={dt.name}: weights are integers or floats of 1 to 8 bits")
    if dt.kind == "float" and not dt.float_signed:
        raise ValueError(f"wtype={dt.name}: an unsigned float makes no weights")
    if dt.kind == "float" and dt.max > tv.f16.max:
        raise ValueError(f"wtype={dt.name}: its values (up to {dt.max:.3g}) do not fit f16")
    return dt


def activation_dtype(name: str | tv.DType) -> tv.DType:
    """f16 or bf16; ValueError naming anything else."""
    dt = tv.dtype(name) if isinstance(name, str) else name
    if dt.name not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be f16 or bf16, got {dt.name}")
    return dt


def check_block_format(wtype: tv.DType, scale_type: tv.DType, group_size: int) -> None:
    """Raise ValueError unless (weights, scales, group) is a block-scaled format of
    :data:`BLOCK_SCALES`: MX (an ``f8e8m0fnu`` scale per 32 of ``f4e2m1fn``, ``f6e2m3fn``,
    ``f6e3m2fn`` or ``f8e4m3fn``) or NVFP4 (an ``f8e4m3fn`` scale per 16 of ``f4e2m1fn``)."""
    group, elements = BLOCK_SCALES[scale_type.name]
    if wtype.name not in elements or group_size != group:
        raise ValueError(f"{scale_type.name} scales: the block-scaled formats take "
                         f"{', '.join(elements)} weights in groups of {group}, got "
                         f"{wtype.name} weights in groups of {group_size}")


def group_step(group_size: int) -> int | None:
    """The K step a group size forces on the dense kernels: 16 for groups of 16 (NVFP4; a step
    must not cross a quantization group), else None (the tiles' own step)."""
    return 16 if group_size % 32 else None


def implicit_zero(wtype: tv.DType) -> float:
    """The zero point of weights stored without zeros: ``2^(bits−1)`` for unsigned integers
    (their codes centred on zero), 0 for signed integers and floats."""
    return float(2 ** (wtype.nbits - 1)) if wtype.kind == "uint" else 0.0


def code_layout(bn: int, bk: int, threads: int) -> Any:
    """A register layout of a ``(bn, bk)`` tile of codes over ``threads`` threads in which each
    thread holds a run along K as long as the tile allows (the widest loads), rows spread over
    the threads: ``spatial(bn, t) * local(1, bk / t)``, or ``local(r, 1) * spatial(bn / r, 1) *
    local(1, bk)`` when a thread holds whole rows; None (layout inference chooses) for a tile of
    fewer elements than threads or sizes that do not split evenly."""
    per_thread = bn * bk // threads
    if per_thread < 1 or bn * bk % threads or bk % min(per_thread, bk) or (
            per_thread > bk and (per_thread % bk or bn % (per_thread // bk))):
        return None
    if per_thread <= bk:
        return tv.spatial(bn, bk // per_thread) * tv.local(1, per_thread)
    rows = per_thread // bk
    return tv.local(rows, 1) * tv.spatial(bn // rows, 1) * tv.local(1, bk)


def weight_step(w: Any, row: Any, k0: Any, scales: Any, zeros: Any, scale_row: Any,
                scale_col: Any, act: Any, group: int, zero: float, has_zeros: bool,
                block_scaled: bool, bn: int, bk: int, layout: Any = None) -> Any:
    """The dequantized weights of one step, a ``(bn, bk)`` tile of the activation type ``act``
    (a helper the kernels inline): the codes at rows ``row…``, columns ``k0…`` of ``w`` (global
    memory, or a stage in shared memory), with the scales and zeros of the weight matrix's rows
    ``scale_row…`` and columns ``scale_col…`` (``bk`` divides ``group``)."""
    g = scale_col // group if group else 0  # the step's quantization group
    q = tv.load(w, (row, k0), (bn, bk), layout=layout)  # codes, unpacked from packed bytes
    s = tv.load(scales, (scale_row, g), (bn, 1))  # broadcasts along the step
    if block_scaled:
        # A power of two (e8m0) or an e4m3 scale times a code of at most 4 significant bits:
        # exact in f32, then rounded once.
        return tv.cast(tv.cast(q, f32) * tv.cast(s, f32), act)
    # The cast is exact (every code of W is an f16 and a bf16 value), so is the difference;
    # the multiply rounds once. (One expression per case: a cast whose one use subtracts a
    # constant is lowered as one sequence.)
    if has_zeros:
        return (tv.cast(q, act) - tv.cast(tv.load(zeros, (scale_row, g), (bn, 1)), act)) * s
    if zero != 0.0:
        return (tv.cast(q, act) - zero) * s
    return tv.cast(q, act) * s


@tv.kernel
def quant_linear_kernel(x: tv.Global[A, "m", "k"], w: tv.Global[W, "n", "kp"],
                        scales: tv.Global[S, "n", "groups"],
                        zeros: tv.Global[W, "zero_rows", "zero_groups"],
                        bias: tv.Global[A, "bias_size"], y: tv.Global[A, "m", "n"],
                        *, group: tv.Const, zero: tv.Const = 0.0, has_zeros: tv.Const = False,
                        has_bias: tv.Const = False, block_scaled: tv.Const = False,
                        bm: tv.Const = 16, bn: tv.Const = 64, bk: tv.Const = 32,
                        warps: tv.Const = 4):
    """``y = x · ((w − z) · scales)ᵀ (+ bias)``; ``group=0`` is one scale per row. ``zeros``
    and ``bias`` are read only when ``has_zeros``/``has_bias`` (else any tensor of their
    types); without zeros ``z`` is ``zero``. ``block_scaled``: scales of a block scale type,
    the product ``value · scale`` formed in f32 (exact) and rounded once to A. ``bk`` must
    divide ``group``."""
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=warps)
    i, j = tv.block_idx()
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(0, k, bk):
        a = tv.load(x, (i * bm, k0), (bm, bk))
        weights = weight_step(w, j * bn, k0, scales, zeros, j * bn, k0, A, group, zero,
                              has_zeros, block_scaled, bn, bk)
        acc = tv.dot(a, tv.transpose(weights), acc)
    if has_bias:
        acc = acc + tv.reshape(tv.cast(tv.load(bias, (j * bn,), (bn,)), f32), (1, bn))
    tv.store(y, tv.cast(acc, A), (i * bm, j * bn))


@tv.kernel
def quant_linear_split_k(x: tv.Global[A, "m", "k"], w: tv.Global[W, "n", "kp"],
                         scales: tv.Global[S, "n", "groups"],
                         zeros: tv.Global[W, "zero_rows", "zero_groups"],
                         bias: tv.Global[A, "bias_size"], y: tv.Global[A, "m", "n"],
                         *, group: tv.Const, zero: tv.Const = 0.0, has_zeros: tv.Const = False,
                         has_bias: tv.Const = False, block_scaled: tv.Const = False,
                         bm: tv.Const = 16, bn: tv.Const = 64, bk: tv.Const = 32,
                         warps: tv.Const = 4, split: tv.Const = 4,
                         deterministic: tv.Const = False):
    """The decode variant of :data:`quant_linear_kernel` (few rows, long K): each output tile's
    K loop is split over ``split`` blocks, whose f32 partial products meet in a workspace; the
    last block of a tile to arrive (an atomic counter) adds the bias, rounds to A and stores.

    By default the partials are added with ``red.global.add.f32`` (their order is the order the
    blocks arrive in: the bounded class of DESIGN §3). ``deterministic=True`` stores each
    block's partial in a slot of its own instead and the last block sums the slots in split
    order, so every run gives the same bits (and the interpreter's sum order)."""
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn), split), warps=warps)
    i, j, part = tv.block_idx()
    steps = tv.cdiv(tv.cdiv(k, bk), split)  # the steps of each part
    begin = part * steps * bk
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(begin, min(k, begin + steps * bk), bk):
        a = tv.load(x, (i * bm, k0), (bm, bk))
        weights = weight_step(w, j * bn, k0, scales, zeros, j * bn, k0, A, group, zero,
                              has_zeros, block_scaled, bn, bk)
        acc = tv.dot(a, tv.transpose(weights), acc)
    # Workspaces: one arrival counter per output tile (the element at its corner), and the
    # partial sums; when deterministic, one slot per part, which its part writes whole (a part
    # with no steps writes zeros). The last block of a tile sets its counter and sums back to
    # zero (restored): the GPU runtime then clears nothing before a launch.
    arrivals = tv.workspace((m, n), tv.i32, restored=True)
    partials = (tv.workspace((split, m, n), f32, zeroed=False) if deterministic
                else tv.workspace((m, n), f32, restored=True))
    finish_split_k(acc, y, bias, arrivals, partials, i * bm, j * bn, part, split, deterministic,
                   has_bias, A)


def finish_split_k(acc: Any, y: Any, bias: Any, arrivals: Any, partials: Any, row: Any,
                   col: Any, part: Any, split: int, deterministic: bool, has_bias: bool,
                   act: Any) -> None:
    """The end of a split-K block (a helper the kernels inline): its f32 partial ``acc`` of the
    tile of ``y`` at ``(row, col)`` goes into the ``partials`` workspace (like ``y``) with
    ``red.global.add.f32``, or into its slot ``part`` when ``deterministic`` (``partials``
    then ``split`` × y); the last block of the tile to arrive (an i32 counter like ``y`` in
    ``arrivals``, zeroed) sums the slots in split order (or reads the sums), adds the bias
    when ``has_bias``, rounds to ``act`` and stores, and sets the tile's counter (and sums)
    back to zero for the next launch (the workspaces are ``restored``)."""
    tile_rows, tile_cols = acc.shape
    if deterministic:
        tv.store(partials, tv.reshape(acc, (1, tile_rows, tile_cols)), (part, row, col))
    else:
        tv.atomic_add(partials, acc, (row, col))
    tv.fence()  # this thread's partials are visible before the block says it has arrived
    tv.sync()
    arrived = tv.atomic_add(arrivals, 1, (row, col))
    if arrived == split - 1:  # the last block of this tile: every partial is in
        tv.fence()
        if deterministic:
            total = tv.zeros((tile_rows, tile_cols), f32)
            for p in tv.range(split):
                total = total + tv.reshape(
                    tv.load(partials, (p, row, col), (1, tile_rows, tile_cols)),
                    (tile_rows, tile_cols))
        else:
            total = tv.load(partials, (row, col), (tile_rows, tile_cols))
            tv.sync()  # every thread has read its sums before any is cleared
            tv.store(partials, tv.zeros((tile_rows, tile_cols), f32), (row, col))
        tv.store(arrivals, 0, (row, col))  # every block of the tile has counted itself
        if has_bias:
            total = total + tv.reshape(
                tv.cast(tv.load(bias, (col,), (tile_cols,)), f32), (1, tile_cols))
        tv.store(y, tv.cast(total, act), (row, col))


@tv.kernel
def quant_linear_prefill(x: tv.Global[A, "m", "k"], w: tv.Global[W, "n", "kp"],
                         scales: tv.Global[S, "n", "groups"],
                         zeros: tv.Global[W, "zero_rows", "zero_groups"],
                         bias: tv.Global[A, "bias_size"], y: tv.Global[A, "m", "n"],
                         *, group: tv.Const, zero: tv.Const = 0.0, has_zeros: tv.Const = False,
                         has_bias: tv.Const = False, block_scaled: tv.Const = False,
                         bm: tv.Const = 64, bn: tv.Const = 64, bk: tv.Const = 32,
                         warps: tv.Const = 4, stages: tv.Const = 3):
    """The prefill variant of :data:`quant_linear_kernel` (many rows): the tiles of x and of the
    weight codes go through shared memory in a ``stages``-deep ``cp.async`` pipeline — the
    copies of step t + stages − 1 run while step t is dequantized and multiplied — and the
    operands reach the tensor cores from shared memory (``ldmatrix`` where the layout allows).
    Same arithmetic as the general kernel: each weight rounded once, f32 accumulation."""
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=warps)
    i, j = tv.block_idx()
    sx = tv.shared((stages, bm, bk), A)
    sw = tv.shared((stages, bn, bk), W)
    acc = tv.zeros((bm, bn), f32)
    steps = tv.cdiv(k, bk)
    for p in range(stages - 1):  # the prologue: the first stages − 1 steps in flight
        if p < steps:
            tv.copy_async(sx[p], x, (i * bm, p * bk))
            tv.copy_async(sw[p], w, (j * bn, p * bk))
        tv.commit()
    # The stage step t reads, and the one step t + stages − 1 fills (the one step t − 1 read),
    # carried from step to step: no division by the stage count in the loop.
    s = 0
    s_ahead = stages - 1
    for t in tv.range(0, steps):
        ahead = t + stages - 1
        if ahead < steps:
            tv.copy_async(sx[s_ahead], x, (i * bm, ahead * bk))
            tv.copy_async(sw[s_ahead], w, (j * bn, ahead * bk))
        tv.commit()  # one group per step (empty ones at the end): wait() counts steps
        tv.wait(stages - 1)
        tv.sync()
        a = tv.load(sx[s], (0, 0), (bm, bk))
        # The codes leave shared memory in whole runs (as the general kernel's global loads do)
        # and the dequantized weights move to the dot's layout, not the codes byte by byte.
        weights = weight_step(sw[s], 0, 0, scales, zeros, j * bn, t * bk, A, group, zero,
                              has_zeros, block_scaled, bn, bk,
                              layout=code_layout(bn, bk, warps * 32))
        acc = tv.dot(a, tv.transpose(weights), acc)
        tv.sync()  # every warp is done with stage s before it is refilled
        s_ahead = s
        s = tv.where(s == stages - 1, 0, s + 1)
    if has_bias:
        acc = acc + tv.reshape(tv.cast(tv.load(bias, (j * bn,), (bn,)), f32), (1, bn))
    tv.store(y, tv.cast(acc, A), (i * bm, j * bn))


def _fits(config: dict[str, Any]) -> bool:
    # The accumulator tile must hold at least one m16n8 fragment per warp.
    return config["bm"] * config["bn"] >= 16 * 8 * config["warps"]


# The autotuned kernel a GPU call goes through. Its key: m rounded up to a power of two (decode
# and prefill shapes get their own tiles), n and k exact; the other sizes (kp, groups…) follow
# from k and the group.
quant_linear_tuned = tv.autotune(space=TUNING_SPACE, prune=_fits,
                                 key={"m": "pow2", "n": "exact", "k": "exact"})(
    quant_linear_kernel)

# The decode variant's space: one m16 row of tiles, the K loop split 2 to 8 ways.
SPLIT_K_SPACE: dict[str, list[int]] = {"bm": [16], "bn": [32, 64, 128], "bk": [16, 32],
                                       "warps": [4], "split": [2, 4, 8]}
DECODE_ROWS = 16
"""Calls of at most this many rows (decode steps) take the split-K variant by default."""
quant_linear_split_k_tuned = tv.autotune(space=SPLIT_K_SPACE, prune=_fits,
                                         key={"m": "pow2", "n": "exact", "k": "exact"})(
    quant_linear_split_k)

# The prefill variant's space: larger tiles, 2 to 4 pipeline stages.
PREFILL_SPACE: dict[str, list[int]] = {"bm": [64, 128], "bn": [64, 128], "bk": [32],
                                       "warps": [4, 8], "stages": [2, 3, 4]}
quant_linear_prefill_tuned = tv.autotune(space=PREFILL_SPACE, prune=_fits,
                                         key={"m": "pow2", "n": "exact", "k": "exact"})(
    quant_linear_prefill)

VARIANTS: dict[str, tuple[Any, Any, dict[str, int]]] = {
    "general": (quant_linear_kernel, quant_linear_tuned, DEFAULT_TILES),
    "split_k": (quant_linear_split_k, quant_linear_split_k_tuned, {**DEFAULT_TILES, "split": 4}),
    "prefill": (quant_linear_prefill, quant_linear_prefill_tuned,
                {"bm": 64, "bn": 64, "bk": 32, "warps": 4, "stages": 3}),
}
"""Each variant's kernel, its autotuned kernel and its default tiles."""


def stand_in_like(reference: Any, dtype_: tv.DType, ndim: int) -> Any:
    """A one-element tensor of ``dtype_`` where ``reference`` lives (a stand-in for an absent
    operand the kernel does not read)."""
    shape = (1,) * ndim
    if type(reference).__module__.startswith("torch") and reference.device.type != "cpu":
        return _device_dummy(reference.device, dtype_, ndim)
    return tv.HostTensor.empty(shape, dtype_)


@functools.cache
def _device_dummy(device: Any, dtype_: tv.DType, ndim: int) -> Any:
    """The stand-in of :func:`stand_in_like` on a GPU, made once per device, type and rank: a
    layer call allocates nothing after its first (DESIGN §7, CUDA-graph safe). A plain torch
    tensor where torch has the type whole (the fast path of a repeated call takes those, not
    ``tv.packed`` bytes); packed bytes for sub-byte types."""
    import torch

    whole = dtype_.torch_dtype if dtype_.nbits % 8 == 0 else None
    if whole is not None:
        return torch.zeros((1,) * ndim, dtype=whole, device=device)
    return tv.packed(torch.zeros(4, dtype=torch.uint8, device=device), dtype_, (1,) * ndim)


def quant_linear_call(x: Any, w: Any, scales: Any, y: Any, *, group_size: int,
                      zeros: Any = None, bias: Any = None, fill_tiles: bool = True,
                      defaults: dict[str, int] | None = None,
                      **tiles: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments and the constants of the layer's kernels for these operands (see
    :func:`launch_quant_linear`): what a launch passes, and what ``tilevm.compile(
    quant_linear_kernel, arch, spec=args, **constants)`` compiles. With ``fill_tiles`` the
    tiles not named come from ``defaults`` (:data:`DEFAULT_TILES` unless given; without
    ``fill_tiles`` they are left to an autotuner). Raises ValueError as
    :func:`launch_quant_linear` does."""
    wtype = dtype_of(w)
    if group_size < 0:
        raise ValueError(f"group_size={group_size}: a positive group size, or 0 per channel")
    if zeros is not None and wtype.kind not in ("uint", "int"):
        raise ValueError(f"zeros: {wtype.name} weights have no zero points (integers only)")
    scale_type = dtype_of(scales)
    block_scaled = scale_type.name in BLOCK_SCALES
    if block_scaled:
        check_block_format(wtype, scale_type, group_size)
        if zeros is not None:
            raise ValueError(f"zeros: block-scaled ({scale_type.name}) weights have no zero "
                             "points")
    flags = {"group": group_size, "zero": implicit_zero(wtype), "has_zeros": zeros is not None,
             "has_bias": bias is not None, "block_scaled": block_scaled}
    forced = group_step(group_size)
    if forced and "bk" not in tiles:
        tiles = {**tiles, "bk": forced}
    if zeros is None:
        zeros = stand_in_like(y, wtype, 2)
    if bias is None:
        bias = stand_in_like(y, dtype_of(y), 1)
    chosen = {**(DEFAULT_TILES if defaults is None else defaults), **tiles} if fill_tiles else tiles
    step = chosen.get("bk", 16)  # an autotuner's steps all divide 16-multiples too
    if group_size and group_size % step:
        raise ValueError(f"group_size={group_size} is not a multiple of the tile step bk={step}")
    return (x, w, scales, zeros, bias, y), {**flags, **chosen}


def launch_quant_linear(x: Any, w: Any, scales: Any, y: Any, *, group_size: int,
                        zeros: Any = None, bias: Any = None, device: str | None = None,
                        tuned: bool = False, variant: str = "auto",
                        deterministic: bool = False, **tiles: int) -> None:
    """Run the quantized linear layer on 2-D operands, writing ``y`` (m × n).

    ``x``, ``scales``, ``bias`` and ``y`` are arrays or tensors of the activation type; ``w``
    and ``zeros`` tensors of the weight type (a ``tilevm.HostTensor``, or ``tv.packed`` bytes,
    for sub-byte types). ``group_size=0`` means per channel. ``variant``: ``"general"``
    (:data:`quant_linear_kernel`), ``"split_k"`` (:data:`quant_linear_split_k`, the decode
    variant; ``deterministic`` chooses its in-order reduction), ``"prefill"``
    (:data:`quant_linear_prefill`, the ``cp.async`` pipeline) or ``"auto"``: split-K for at
    most :data:`DECODE_ROWS` rows, the prefill kernel above. ``tiles`` override the variant's
    defaults (:data:`VARIANTS`); ``tuned=True`` lets the variant's autotuned kernel choose
    them instead (on a GPU it measures). Raises ValueError for an unknown variant, a negative
    group size, one the tile step does not divide, or zeros of a float type.
    """
    if variant == "auto":
        variant = "split_k" if x.shape[0] <= DECODE_ROWS else "prefill"
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: 'auto', {', '.join(map(repr, VARIANTS))}")
    kernel, autotuned, defaults = VARIANTS[variant]
    args, constants = quant_linear_call(x, w, scales, y, group_size=group_size, zeros=zeros,
                                        bias=bias, fill_tiles=not tuned, defaults=defaults,
                                        **tiles)
    if variant == "split_k":
        constants["deterministic"] = deterministic
    (autotuned if tuned else kernel)(*args, device=device, **constants)


def dtype_of(t: Any) -> tv.DType:
    """The tilevm type of a kernel argument: a HostTensor's or packed tensor's own, a numpy
    array's or a torch tensor's counterpart."""
    found = argument_dtype(t)
    if found is None:
        raise TypeError(f"no tilevm type for an argument of dtype {getattr(t, 'dtype', None)}")
    return found
