"""The low-bit linear layer on prepared weights: ``y = x · Wᵀ (+ bias)`` with W's codes, scales
and zero points re-laid out by weight preparation (:mod:`tilevm.kernels.prepared_weights`) so
that each lane loads its weights as one contiguous run per step and the cast needs no bit moved.

The operands (the format: :mod:`tilevm.kernels.prepared_layouts`):

- ``x`` (m × k) in the activation type ``A`` (f16 or bf16).
- ``wp`` (⌈n/32⌉ × kp/bk × 32·words) u32: the codes of type ``wtype``, chunk ``(c, kb)`` holding
  rows ``32c…`` and columns ``kb·bk…`` of W, lane ``l``'s run at ``[l·words, (l+1)·words)``.
- ``sp`` (⌈n/32⌉ × groups × 8·words) u32: the scales of type ``stype`` (``A``, or the MX/NVFP4
  block scale types), one run per lane group, chunk and quantization group (``group=0``: one
  group, per channel).
- ``zp`` (like ``sp``, values of ``A``): the zero points, read only when ``has_zeros``.
- ``bias`` (n) in ``A``, read only when ``has_bias``; ``y`` (m × n) in ``A``.

The arithmetic is the dense kernels' (:mod:`tilevm.kernels.quant_linear`): each weight is
``(q − z) · s`` rounded once to ``A`` (the block-scaled formats: ``q · s`` formed in f32, exact,
then rounded once), products accumulate in f32, the bias is added in f32 before the result is
rounded. Each block's warps sit side by side along N, one 32-row chunk each, so a block covers
``32 · warps`` columns of y and the prepared format does not depend on the M tile, the warps or
the pipeline: the decode and the prefill variants read the same prepared weights.
"""

from __future__ import annotations

from typing import Any

import tilevm as tv
from tilevm import f32, u32
from tilevm.kernels.prepared_layouts import (
    CHUNK_N,
    accumulator_layout,
    chunk_words,
    packed_layout,
    packed_value_layout,
    value_layout,
    value_words,
    weight_layout,
)
from tilevm.kernels.quant_linear import (
    BLOCK_SCALES,
    DECODE_ROWS,
    finish_split_k,
    implicit_zero,
    stand_in_like,
)

__all__ = [
    "PREPARED_PREFILL_SPACE",
    "PREPARED_SPLIT_K_SPACE",
    "PREPARED_VARIANTS",
    "launch_prepared_linear",
    "prepared_linear_call",
    "prepared_linear_prefill",
    "prepared_linear_prefill_tuned",
    "prepared_linear_split_k",
    "prepared_linear_split_k_tuned",
    "step_group",
    "step_weights",
]

A = tv.Dtype("A")  # the activation type: f16 or bf16


def _load_step(codes: Any, code_at: tuple, scales: Any, zeros: Any, value_at: tuple,
               wtype: Any, stype: Any, has_zeros: bool, bk: int, warps: int
               ) -> tuple[Any, Any, Any]:
    """The words one step dequantizes (a helper the kernels inline): the prepared code words of
    ``codes`` (global memory or a pipeline stage) at ``code_at``, and the scale and zero-point
    words of ``scales`` and ``zeros`` at ``value_at``, each lane reading its run. Without
    ``has_zeros`` the zero points are not read and the scale words stand in for them."""
    words = chunk_words(bk, wtype.nbits)
    packed = tv.load(codes, code_at, (warps, 1, 32 * words), layout=packed_layout(warps, words))
    scale_words = value_words(stype.nbits)
    s = tv.load(scales, value_at, (warps, 1, 8 * scale_words),
                layout=packed_value_layout(warps, scale_words))
    if not has_zeros:
        return packed, s, s
    zero_words = value_words(16)
    z = tv.load(zeros, value_at, (warps, 1, 8 * zero_words),
                layout=packed_value_layout(warps, zero_words))
    return packed, s, z


def _dequantized(packed: Any, scale_words: Any, zero_words: Any, act: Any, wtype: Any,
                 stype: Any, zero: float, has_zeros: bool, block_scaled: bool, bk: int,
                 warps: int) -> Any:
    """The (32 · warps, bk) weights of one step in ``act`` (a helper the kernels inline), in
    the layout of the ``dot``'s transposed B operand, from the words :func:`_load_step`
    read."""
    bn = warps * CHUNK_N
    q = tv.view(packed, wtype, tv.fast_cast_layout(weight_layout(bn, bk, warps), wtype, act))
    s = tv.view(scale_words, stype, value_layout(bn, warps))
    if block_scaled:
        # A power of two (e8m0) or an e4m3 scale times a code of at most 4 significant bits:
        # exact in f32, then rounded once.
        return tv.cast(tv.cast(q, f32) * tv.cast(s, f32), act)
    # The cast is exact (every code is an f16 and a bf16 value), so is the difference; the
    # multiply rounds once. (One expression per case: a cast whose one use subtracts a constant
    # is lowered as one sequence.)
    if has_zeros:
        z = tv.view(zero_words, act, value_layout(bn, warps))
        return (tv.cast(q, act) - z) * s
    if zero != 0.0:
        return (tv.cast(q, act) - zero) * s
    return tv.cast(q, act) * s


def step_weights(codes: Any, code_at: tuple, scales: Any, zeros: Any, value_at: tuple,
                 act: Any, wtype: Any, stype: Any, zero: float, has_zeros: bool,
                 block_scaled: bool, bk: int, warps: int) -> Any:
    """:func:`_dequantized` of what :func:`_load_step` reads (a helper the kernels inline)."""
    packed, s, z = _load_step(codes, code_at, scales, zeros, value_at, wtype, stype, has_zeros,
                              bk, warps)
    return _dequantized(packed, s, z, act, wtype, stype, zero, has_zeros, block_scaled, bk,
                        warps)


def step_group(step: Any, bk: int, group: int) -> Any:
    """The quantization group of step ``step`` (``group=0``, per channel: the one group)."""
    return step * bk // group if group else 0


def _copy_step(x_slot: Any, code_slot: Any, scale_slot: Any, zero_slot: Any, x: Any, wp: Any,
               sp: Any, zp: Any, i: Any, j: Any, step: Any, bm: int, bk: int, group: int,
               warps: int, has_zeros: bool) -> None:
    """Start the copies of step ``step`` of block ``(i, j)`` into one pipeline stage (a helper
    the prefill kernel inlines): x's (bm, bk) tile into ``x_slot``, the step's code words into
    ``code_slot``, its group's scale (and zero-point) words into ``scale_slot``
    (``zero_slot``)."""
    g = step_group(step, bk, group)
    tv.copy_async(x_slot, x, (i * bm, step * bk))
    tv.copy_async(code_slot, wp, (j * warps, step, 0))
    tv.copy_async(scale_slot, sp, (j * warps, g, 0))
    if has_zeros:
        tv.copy_async(zero_slot, zp, (j * warps, g, 0))


@tv.kernel
def prepared_linear_split_k(x: tv.Global[A, "m", "k"], wp: tv.Global[u32, "nc", "kc", "lw"],
                            sp: tv.Global[u32, "nc", "groups", "sw"],
                            zp: tv.Global[u32, "zc", "zg", "zw"],
                            bias: tv.Global[A, "bias_size"], y: tv.Global[A, "m", "n"],
                            *, wtype: tv.Const, stype: tv.Const, group: tv.Const, bk: tv.Const,
                            zero: tv.Const = 0.0, has_zeros: tv.Const = False,
                            has_bias: tv.Const = False, block_scaled: tv.Const = False,
                            bm: tv.Const = 16, warps: tv.Const = 2, split: tv.Const = 4,
                            deterministic: tv.Const = False):
    """The decode variant: each (bm, 32·warps) tile of y has its K loop split over ``split``
    blocks whose f32 partials meet in a workspace — ``red.global.add.f32``, or with
    ``deterministic`` one slot per block summed in split order — and the last block to arrive
    (an atomic counter) adds the bias, rounds to A and stores. Each step reads, per lane, one
    run of the prepared codes straight from global memory."""
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, warps * CHUNK_N), split), warps=warps)
    i, j, part = tv.block_idx()
    bn = warps * CHUNK_N
    steps = tv.cdiv(tv.cdiv(k, bk), split)  # the steps of each part
    first = part * steps
    acc = tv.zeros((bm, bn), f32, layout=accumulator_layout(bm, bn, warps))
    # Each step's operands are loaded a step ahead, so that their loads are in flight while the
    # step before is converted and multiplied (a decode grid has few warps per SM to hide the
    # latency of memory with). Loads past the end are masked by the tensors' bounds.
    a = tv.load(x, (i * bm, first * bk), (bm, bk))
    packed, s, z = _load_step(wp, (j * warps, first, 0), sp, zp,
                              (j * warps, step_group(first, bk, group), 0), wtype, stype,
                              has_zeros, bk, warps)
    for kb in tv.range(first, min(tv.cdiv(k, bk), first + steps)):
        ahead = kb + 1
        a_ahead = tv.load(x, (i * bm, ahead * bk), (bm, bk))
        packed_ahead, s_ahead, z_ahead = _load_step(
            wp, (j * warps, ahead, 0), sp, zp, (j * warps, step_group(ahead, bk, group), 0),
            wtype, stype, has_zeros, bk, warps)
        weights = _dequantized(packed, s, z, A, wtype, stype, zero, has_zeros, block_scaled, bk,
                               warps)
        acc = tv.dot(a, tv.transpose(weights), acc)
        a, packed, s, z = a_ahead, packed_ahead, s_ahead, z_ahead
    # Workspaces: one arrival counter per output tile (the element at its corner), and the
    # partial sums; when deterministic, one slot per part, which its part writes whole (a part
    # with no steps writes zeros). The last block of a tile sets its counter and sums back to
    # zero (restored): the GPU runtime then clears nothing before a launch.
    arrivals = tv.workspace((m, n), tv.i32, restored=True)
    partials = (tv.workspace((split, m, n), f32, zeroed=False) if deterministic
                else tv.workspace((m, n), f32, restored=True))
    finish_split_k(acc, y, bias, arrivals, partials, i * bm, j * bn, part, split, deterministic,
                   has_bias, A)


@tv.kernel
def prepared_linear_prefill(x: tv.Global[A, "m", "k"], wp: tv.Global[u32, "nc", "kc", "lw"],
                            sp: tv.Global[u32, "nc", "groups", "sw"],
                            zp: tv.Global[u32, "zc", "zg", "zw"],
                            bias: tv.Global[A, "bias_size"], y: tv.Global[A, "m", "n"],
                            *, wtype: tv.Const, stype: tv.Const, group: tv.Const, bk: tv.Const,
                            zero: tv.Const = 0.0, has_zeros: tv.Const = False,
                            has_bias: tv.Const = False, block_scaled: tv.Const = False,
                            bm: tv.Const = 64, warps: tv.Const = 4, stages: tv.Const = 3):
    """The prefill variant: x's (bm, bk) tiles and the step's prepared code, scale and zero
    words go through shared memory in a ``stages``-deep ``cp.async`` pipeline (the copies of
    step t + stages − 1 run while step t is dequantized and multiplied); x reaches the tensor
    cores from shared memory, each lane's codes in one run."""
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, warps * CHUNK_N)), warps=warps)
    i, j = tv.block_idx()
    bn = warps * CHUNK_N
    words = chunk_words(bk, wtype.nbits)
    scale_words = value_words(stype.nbits)
    zero_words = value_words(16) if has_zeros else scale_words  # (no zeros: a placeholder)
    x_stage = tv.shared((stages, bm, bk), A)
    code_stage = tv.shared((stages, warps, 1, 32 * words), u32)
    scale_stage = tv.shared((stages, warps, 1, 8 * scale_words), u32)
    zero_stage = tv.shared((stages, warps, 1, 8 * zero_words), u32)
    acc = tv.zeros((bm, bn), f32, layout=accumulator_layout(bm, bn, warps))
    steps = tv.cdiv(k, bk)
    for p in range(stages - 1):  # the prologue: the first stages − 1 steps in flight
        if p < steps:
            _copy_step(x_stage[p], code_stage[p], scale_stage[p], zero_stage[p], x, wp, sp, zp,
                       i, j, p, bm, bk, group, warps, has_zeros)
        tv.commit()
    # The stage step t reads, and the one step t + stages − 1 fills (the one step t − 1 read),
    # carried from step to step: no division by the stage count in the loop.
    s = 0
    s_ahead = stages - 1
    for t in tv.range(0, steps):
        ahead = t + stages - 1
        if ahead < steps:
            _copy_step(x_stage[s_ahead], code_stage[s_ahead], scale_stage[s_ahead],
                       zero_stage[s_ahead], x, wp, sp, zp, i, j, ahead, bm, bk, group, warps,
                       has_zeros)
        tv.commit()  # one group per step (empty ones at the end): wait() counts steps
        tv.wait(stages - 1)
        tv.sync()
        a = tv.load(x_stage[s], (0, 0), (bm, bk))
        weights = step_weights(code_stage[s], (0, 0, 0), scale_stage[s], zero_stage[s],
                               (0, 0, 0), A, wtype, stype, zero, has_zeros, block_scaled, bk,
                               warps)
        acc = tv.dot(a, tv.transpose(weights), acc)
        tv.sync()  # every warp is done with stage s before it is refilled
        s_ahead = s
        s = tv.where(s == stages - 1, 0, s + 1)
    if has_bias:
        acc = acc + tv.reshape(tv.cast(tv.load(bias, (j * bn,), (bn,)), f32), (1, bn))
    tv.store(y, tv.cast(acc, A), (i * bm, j * bn))


def _fits(config: dict[str, Any]) -> bool:
    # Each warp's accumulator is bm × 32 f32 values over 32 lanes: at most 128 registers.
    return config["bm"] <= 128


_KEY = {"m": "pow2", "n": "exact", "k": "exact"}

# The decode variant's space: one m16 row of tiles, 1 to 4 warps (32 to 128 columns of y per
# block), the K loop split 4 to 16 ways. The K step is the prepared format's. A decode grid is
# small (N = 4096 at split 4: 256 blocks of 2 warps, about 4 warps per SM of an H200), and each
# warp has one step's loads in flight ahead of its math: splitting further is what puts enough
# bytes in flight for a small layer to reach the memory's bandwidth.
PREPARED_SPLIT_K_SPACE: dict[str, list[int]] = {"bm": [16], "warps": [1, 2, 4],
                                                "split": [4, 8, 16]}
prepared_linear_split_k_tuned = tv.autotune(space=PREPARED_SPLIT_K_SPACE, prune=_fits,
                                            key=_KEY)(prepared_linear_split_k)

# The prefill variant's space: 64 or 128 rows, 2 to 8 warps, 2 to 4 pipeline stages.
PREPARED_PREFILL_SPACE: dict[str, list[int]] = {"bm": [64, 128], "warps": [2, 4, 8],
                                                "stages": [2, 3, 4]}
prepared_linear_prefill_tuned = tv.autotune(space=PREPARED_PREFILL_SPACE, prune=_fits,
                                            key=_KEY)(prepared_linear_prefill)

PREPARED_VARIANTS: dict[str, tuple[Any, Any, dict[str, int]]] = {
    # Decode: 64 columns of y per block, K split 4 ways: 256 blocks for N = 4096 (two per SM of
    # an H100/H200 — 128 columns per block would leave SMs idle), 1792 for N = 28672.
    "split_k": (prepared_linear_split_k, prepared_linear_split_k_tuned,
                {"bm": 16, "warps": 2, "split": 4}),
    "prefill": (prepared_linear_prefill, prepared_linear_prefill_tuned,
                {"bm": 64, "warps": 4, "stages": 3}),
}
"""Each variant's kernel, its autotuned kernel and its default tiles."""


def prepared_linear_call(x: Any, weights: Any, y: Any, *, bias: Any = None,
                         variant: str = "auto", deterministic: bool = False,
                         fill_tiles: bool = True, **tiles: int
                         ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """What :func:`launch_prepared_linear` runs for these operands, without running it: the
    variant (``"split_k"`` or ``"prefill"``), the arguments and the constants — what
    ``PREPARED_VARIANTS[variant][0](*args, **constants)`` runs and ``tilevm.compile(kernel,
    arch, spec=args, **constants)`` compiles. With ``fill_tiles`` the tiles not named come from
    the variant's defaults (without, they are left to an autotuner). Raises ValueError for an
    unknown variant or operands whose sizes disagree with the weights."""
    if variant == "auto":
        variant = "split_k" if x.shape[0] <= DECODE_ROWS else "prefill"
    if variant not in PREPARED_VARIANTS:
        raise ValueError(f"variant={variant!r}: 'auto', "
                         f"{', '.join(map(repr, PREPARED_VARIANTS))}")
    m, k = x.shape
    if k > weights.kp or tuple(y.shape) != (m, weights.n):
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} do not fit prepared "
                         f"weights of {weights.n} rows of {weights.kp} codes")
    constants: dict[str, Any] = {
        "wtype": weights.wtype, "stype": weights.scale_type, "group": weights.group_size,
        "bk": weights.bk, "zero": implicit_zero(weights.wtype),
        "has_zeros": weights.zeros is not None, "has_bias": bias is not None,
        "block_scaled": weights.scale_type.name in BLOCK_SCALES,
    }
    if fill_tiles:
        constants.update({**PREPARED_VARIANTS[variant][2], **tiles})
    if variant == "split_k":
        constants["deterministic"] = deterministic
    zeros = weights.zeros if weights.zeros is not None else stand_in_like(y, u32, 3)
    if bias is None:
        bias = stand_in_like(y, weights.act, 1)
    return variant, (x, weights.codes, weights.scales, zeros, bias, y), constants


def launch_prepared_linear(x: Any, weights: Any, y: Any, *, bias: Any = None,
                           device: str | None = None, variant: str = "auto",
                           deterministic: bool = False, tuned: bool = False,
                           **tiles: int) -> None:
    """Run the linear layer on prepared weights, writing ``y`` (m × n): ``x`` (m × k) and
    ``bias`` (n) in the activation type the weights were prepared for, ``weights`` a
    :class:`~tilevm.kernels.prepared_weights.PreparedWeights`. ``variant``: ``"split_k"``
    (decode; ``deterministic`` chooses its in-order reduction), ``"prefill"`` or ``"auto"``
    (split-K up to :data:`DECODE_ROWS` rows). ``tiles`` override the variant's defaults
    (:data:`PREPARED_VARIANTS`; the K step is the weights'); ``tuned=True`` lets the autotuned
    kernel choose them. Raises ValueError as :func:`prepared_linear_call` does."""
    variant, args, constants = prepared_linear_call(
        x, weights, y, bias=bias, variant=variant, deterministic=deterministic,
        fill_tiles=not tuned, **tiles)
    kernel, autotuned, _ = PREPARED_VARIANTS[variant]
    (autotuned if tuned else kernel)(*args, device=device, **constants)
