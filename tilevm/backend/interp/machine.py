"""The reference interpreter of Tile IR: what a program means (DESIGN §1).

Every block of the grid runs in turn, one statement at a time, on numpy arrays of bit patterns.
Global tensors are :class:`~tilevm.ir.host_tensor.HostTensor` s (packed, any bit width) read and
written with :func:`~tilevm.ir.packing.read_patterns` / ``write_patterns``; shared tensors are
arrays of patterns. ``copy_async`` is deferred as on the GPU: a copy joins the open group,
``commit`` closes it, ``wait n`` performs every committed group but the ``n`` newest, and only then
does the destination change. Accesses outside a tensor that are not masked raise
:class:`InterpreterError` naming the instruction.

A store into a sub-byte tensor rewrites the bits of its elements only (``write_patterns``): the
bytes it shares with other elements keep their other bits, which is the atomic read-modify-write
of edge bytes that Tile IR promises (:mod:`tilevm.ir.tile.ops`), so blocks storing neighbouring
sub-byte tiles give the same result in any order (``run(..., block_order=...)`` checks it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tilevm.backend.interp.dot import dot as exact_dot
from tilevm.backend.interp.dot import exact_sum
from tilevm.backend.interp.numeric import decode, encode, round_sum_to_odd, two_sum
from tilevm.backend.interp.print_text import print_lines
from tilevm.backend.interp.scan import scan
from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.errors import KernelExecutionError, check_restored_workspace
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.packing import pack, read_patterns, unpack, write_patterns
from tilevm.ir.tile.ops import is_index_tile, reduce_axes
from tilevm.ir.tile.program import (
    Assign,
    Const,
    For,
    If,
    Instr,
    Kernel,
    Operand,
    While,
    walk,
)
from tilevm.ir.tile.types import TensorType

__all__ = ["InterpreterError", "run"]


_ATOMIC: dict[str, Callable] = {
    "add": lambda a, b: a + b, "max": np.maximum, "min": np.minimum,
    "exch": lambda a, b: b + 0 * a, "and": np.bitwise_and, "or": np.bitwise_or,
    "xor": np.bitwise_xor,
}


def _rounds(index: tuple[np.ndarray, ...], active: np.ndarray,
            mem_shape: tuple[int, ...]) -> list[np.ndarray]:
    """``active`` split into masks whose elements have distinct ``index`` es: the r-th mask
    holds, for every address, its r-th active element in row-major order."""
    where = np.flatnonzero(active.reshape(-1))
    if where.size == 0:
        return []
    keys = np.ravel_multi_index(tuple(np.asarray(i).reshape(-1)[where] for i in index),
                                tuple(mem_shape))
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    group_start = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    starts = np.repeat(group_start, np.diff(np.r_[group_start, ranked.size]))
    occurrence = np.empty_like(order)
    occurrence[order] = np.arange(ranked.size) - starts
    parts = []
    for r in range(int(occurrence.max()) + 1):
        part = np.zeros(active.size, dtype=bool)
        part[where[occurrence == r]] = True
        parts.append(part.reshape(active.shape))
    return parts


class InterpreterError(KernelExecutionError):
    """A program that does something undefined (an unmasked access outside a tensor…)."""


@dataclass
class _Shared:
    """A shared-memory tensor (or a stage of one): an array of patterns."""

    data: np.ndarray
    dtype: DType


@dataclass
class _Block:
    index: tuple[int, ...]
    grid: tuple[int, ...]
    env: dict[str, Any] = field(default_factory=dict)
    open_group: list = field(default_factory=list)
    groups: list = field(default_factory=list)


def run(kernel: Kernel, tensors: dict[str, HostTensor], scalars: dict[str, int | float],
        dims: dict[str, int], *, block_order: str | int = "forward") -> None:
    """Run ``kernel`` on every block of its grid; global tensors are written in place.

    ``tensors`` maps each global parameter to its data, ``scalars`` each scalar parameter to its
    value, ``dims`` each named dimension to its size. Blocks run one after another, in row-major
    order (``block_order="forward"``), reversed (``"reverse"``) or shuffled by an ``int`` seed: a
    correct kernel gives the same result in every order, as blocks on a GPU run in any order.
    """
    if not (block_order in ("forward", "reverse") or
            (isinstance(block_order, int) and not isinstance(block_order, bool))):
        raise ValueError(f"run: block_order is 'forward', 'reverse' or an int seed, got "
                         f"{block_order!r}")
    machine = _Machine(kernel, tensors, scalars, dims)
    machine.run(block_order)
    for s in walk(kernel.body):
        made = machine.workspaces.get(id(s))
        if made is not None and s.attr("restored"):
            check_restored_workspace(kernel.name, s.result.name, made)


def launch_grid(kernel: Kernel, scalars: dict[str, int | float],
                dims: dict[str, int]) -> tuple[int, ...]:
    """The grid a launch of ``kernel`` with these run-time scalars and sizes has: its launch
    block evaluated as the interpreter evaluates it (1 to 3 block counts)."""
    machine = _Machine(kernel, {}, scalars, dims)
    return machine.grid()


def _signed_zero_min(r: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PTX ``min``: −0 is below +0 (numpy's ``fmin`` of two zeros returns the first)."""
    if r.dtype.kind != "f":
        return r
    return np.where((r == 0) & (np.signbit(x) | np.signbit(y)) & (x == 0) & (y == 0), -0.0, r)


def _signed_zero_max(r: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PTX ``max``: +0 is above −0."""
    if r.dtype.kind != "f":
        return r
    both_negative = np.signbit(x) & np.signbit(y)
    return np.where((r == 0) & (x == 0) & (y == 0) & ~both_negative, 0.0, r)


class _Machine:
    def __init__(self, kernel: Kernel, tensors: dict, scalars: dict, dims: dict) -> None:
        self.kernel = kernel
        self.base: dict[str, Any] = {}
        for p in kernel.params:
            if isinstance(p.type, TensorType):
                self.base[p.name] = tensors.get(p.name)
            else:
                self.base[p.name] = encode(np.asarray(scalars[p.name]), p.type.dtype)
        i32 = dtype("i32")
        for name in kernel.dims():
            self.base[name] = encode(np.asarray(dims[name]), i32)
        self.dims = dict(dims)
        self.workspaces: dict[int, HostTensor] = {}

    def grid(self) -> tuple[int, ...]:
        launch = _Block((), (), dict(self.base))
        self.block_stmts(launch, self.kernel.launch_body)
        grid = tuple(int(self.scalar(launch, g)) for g in self.kernel.grid)
        if any(g < 0 for g in grid):
            raise InterpreterError(f"kernel {self.kernel.name}: negative grid {grid}")
        return grid

    def run(self, block_order: str | int) -> None:
        grid = self.grid()
        blocks = list(itertools.product(*(range(g) for g in grid)))
        if block_order == "reverse":
            blocks.reverse()
        elif not isinstance(block_order, str):
            np.random.default_rng(block_order).shuffle(blocks)
        for index in blocks:
            self.block_stmts(_Block(index, grid, dict(self.base)), self.kernel.body)

    # -- values ------------------------------------------------------------------------------------

    def get(self, blk: _Block, x: Operand) -> Any:
        if isinstance(x, Const):
            return encode(np.asarray(x.value), x.dtype)
        return blk.env[x.name]

    def scalar(self, blk: _Block, x: Operand) -> int | float:
        return decode(self.get(blk, x), x.type.dtype)[()].item()

    # -- statements --------------------------------------------------------------------------------

    def block_stmts(self, blk: _Block, stmts: tuple) -> None:
        for s in stmts:
            if isinstance(s, Instr):
                try:
                    value = getattr(self, "op_" + s.op)(blk, s)
                except InterpreterError:
                    raise
                except (ValueError, IndexError, OverflowError) as e:
                    raise InterpreterError(f"{s.op} at {s.loc} in block {blk.index}: {e}") from e
                if s.result is not None:
                    blk.env[s.result.name] = value
            elif isinstance(s, Assign):
                blk.env[s.target.name] = self.get(blk, s.value)
            elif isinstance(s, For):
                start, stop, step = (int(self.scalar(blk, x)) for x in (s.start, s.stop, s.step))
                if step == 0:
                    raise InterpreterError(f"for at {s.loc}: step is zero")
                for i in range(start, stop, step):
                    blk.env[s.var.name] = encode(np.asarray(i), s.var.type.dtype)
                    self.block_stmts(blk, s.body)
            elif isinstance(s, If):
                self.block_stmts(blk, s.then_body if self.scalar(blk, s.cond) else s.else_body)
            elif isinstance(s, While):
                while True:
                    self.block_stmts(blk, s.cond_body)
                    if not self.scalar(blk, s.cond):
                        break
                    self.block_stmts(blk, s.body)

    # -- creation ----------------------------------------------------------------------------------

    def op_full(self, blk: _Block, s: Instr) -> np.ndarray:
        return np.broadcast_to(self.get(blk, s.args[0]), s.attr("shape")).copy()

    def op_arange(self, blk: _Block, s: Instr) -> np.ndarray:
        return encode(np.arange(s.attr("start"), s.attr("stop")), dtype("i32"))

    def op_block_idx(self, blk: _Block, s: Instr) -> np.ndarray:
        return encode(np.asarray(blk.index[s.attr("axis")]), dtype("i32"))

    def op_grid_dim(self, blk: _Block, s: Instr) -> np.ndarray:
        return encode(np.asarray(blk.grid[s.attr("axis")]), dtype("i32"))

    def op_copy(self, blk: _Block, s: Instr) -> Any:
        return self.get(blk, s.args[0])

    # -- elementwise -------------------------------------------------------------------------------

    def values(self, blk: _Block, s: Instr) -> list[np.ndarray]:
        return [decode(self.get(blk, a), a.type.dtype) for a in s.args]

    def result(self, s: Instr, values: np.ndarray) -> np.ndarray:
        dt = s.result.type.dtype
        if dt.is_float:
            return encode(np.asarray(values, dtype=np.float64), dt)
        return encode(values, dt)

    def _unary(fn: Callable) -> Callable:
        def op(self: _Machine, blk: _Block, s: Instr) -> np.ndarray:
            (x,) = self.values(blk, s)
            with np.errstate(all="ignore"):
                return self.result(s, fn(x, s.result.type.dtype))

        return op

    op_neg = _unary(lambda x, dt: -x)
    op_abs = _unary(lambda x, dt: np.abs(x))
    op_exp = _unary(lambda x, dt: np.exp(x))
    op_exp2 = _unary(lambda x, dt: np.exp2(x))
    op_log = _unary(lambda x, dt: np.log(x))
    op_log2 = _unary(lambda x, dt: np.log2(x))
    op_sqrt = _unary(lambda x, dt: np.sqrt(x))
    op_rsqrt = _unary(lambda x, dt: 1.0 / np.sqrt(x))
    op_sin = _unary(lambda x, dt: np.sin(x))
    op_cos = _unary(lambda x, dt: np.cos(x))
    op_tanh = _unary(lambda x, dt: np.tanh(x))
    op_floor = _unary(lambda x, dt: np.floor(x))
    op_ceil = _unary(lambda x, dt: np.ceil(x))
    op_rint = _unary(lambda x, dt: np.rint(x))  # ties to even
    op_invert = _unary(lambda x, dt: 1 - x if dt.nbits == 1 else ~x)

    def _binary(fn: Callable) -> Callable:
        def op(self: _Machine, blk: _Block, s: Instr) -> np.ndarray:
            x, y = self.values(blk, s)
            with np.errstate(all="ignore"):
                return self.result(s, fn(x, y, s.result.type.dtype))

        return op

    op_add = _binary(lambda x, y, dt: x + y)
    op_sub = _binary(lambda x, y, dt: x - y)
    op_mul = _binary(lambda x, y, dt: x * y)
    op_div = _binary(lambda x, y, dt: x / y)
    # Integer division by zero is unspecified (PTX); these give x // 1 and x % 1 rather than
    # fail, because both sides of a tv.where are computed.
    op_floordiv = _binary(lambda x, y, dt: np.floor_divide(x, np.where(y == 0, 1, y)))
    op_mod = _binary(lambda x, y, dt: np.mod(x, np.where(y == 0, 1, y)))
    op_min = _binary(lambda x, y, dt: _signed_zero_min(np.fmin(x, y), x, y))
    op_max = _binary(lambda x, y, dt: _signed_zero_max(np.fmax(x, y), x, y))
    op_and = _binary(lambda x, y, dt: x & y)
    op_or = _binary(lambda x, y, dt: x | y)
    op_xor = _binary(lambda x, y, dt: x ^ y)
    # PTX shl/shr clamp the shift amount to the width: everything shifted out.
    # The amount is unsigned, as PTX reads it: a negative one is huge and shifts everything out.
    op_shl = _binary(lambda x, y, dt: np.where((y < 0) | (y >= dt.nbits), 0,
                                               x << np.clip(y, 0, 63)))
    op_shr = _binary(lambda x, y, dt: np.where((y < 0) | (y >= dt.nbits),
                                               np.where(x < 0, -1, 0), x >> np.clip(y, 0, 63)))

    def _compare(fn: Callable) -> Callable:
        def op(self: _Machine, blk: _Block, s: Instr) -> np.ndarray:
            x, y = self.values(blk, s)
            with np.errstate(invalid="ignore"):
                return fn(x, y).astype(np.uint8)

        return op

    op_lt = _compare(np.less)
    op_le = _compare(np.less_equal)
    op_gt = _compare(np.greater)
    op_ge = _compare(np.greater_equal)
    op_eq = _compare(np.equal)
    op_ne = _compare(np.not_equal)

    def op_where(self, blk: _Block, s: Instr) -> np.ndarray:
        c, x, y = (self.get(blk, a) for a in s.args)
        return np.where(c.astype(bool), x, y).astype(s.result.type.dtype.storage_dtype)

    def op_fma(self, blk: _Block, s: Instr) -> np.ndarray:
        a, b, c = self.values(blk, s)
        dt = s.result.type.dtype
        with np.errstate(all="ignore"):
            product = a * b  # exact in float64 for types of at most 26 mantissa bits
            total, err = two_sum(product, c)
        if dt.name != "f64":
            total = round_sum_to_odd(total, err)
        return encode(total, dt)

    def op_cdiv(self, blk: _Block, s: Instr) -> np.ndarray:
        x, y = self.values(blk, s)
        if np.any(y == 0):
            raise InterpreterError(f"cdiv at {s.loc}: division by zero")
        return self.result(s, -(-x // y))

    # -- conversions -------------------------------------------------------------------------------

    def op_cast(self, blk: _Block, s: Instr) -> np.ndarray:
        (x,) = self.values(blk, s)
        src, dst = s.args[0].type.dtype, s.result.type.dtype
        if dst.nbits == 1 and dst.is_integer:
            return (x != 0).astype(np.uint8)
        if dst.is_integer and src.is_float:
            # C and PTX cvt.rzi: toward zero, saturating; NaN becomes 0.
            with np.errstate(invalid="ignore"):
                return dst.encode(np.trunc(x), saturate=True)
        if dst.is_integer:
            return encode(x, dst)  # integer to integer wraps
        return encode(np.asarray(x, dtype=np.float64), dst)

    def op_bitcast(self, blk: _Block, s: Instr) -> np.ndarray:
        bits = self.get(blk, s.args[0])
        src, dst = s.args[0].type.dtype, s.result.type.dtype
        shape = s.result.type.shape if isinstance(s.result.type, TensorType) else ()
        count = int(np.prod(shape, dtype=np.int64))
        return unpack(pack(bits, src.nbits), dst.nbits, count).reshape(shape)

    def op_view(self, blk: _Block, s: Instr) -> np.ndarray:
        bits = self.get(blk, s.args[0])
        src_t, dst_t = s.args[0].type, s.result.type
        src_layout, dst_layout = src_t.layout, dst_t.layout
        regs = bits[src_layout.thread_local_to_index()]  # (threads, locals) of the source type
        n = dst_layout.num_threads * dst_layout.local_size
        new_regs = unpack(pack(regs, src_t.dtype.nbits), dst_t.dtype.nbits, n).reshape(
            dst_layout.num_threads, dst_layout.local_size)
        out = new_regs[dst_layout.index_to_thread_local()]
        if not np.array_equal(out[dst_layout.thread_local_to_index()], new_regs):
            raise InterpreterError(f"view at {s.loc}: threads holding the same element of the new "
                                   "layout hold different bits")
        return out

    def op_convert_layout(self, blk: _Block, s: Instr) -> np.ndarray:
        return self.get(blk, s.args[0])

    # -- shapes ------------------------------------------------------------------------------------

    def op_reduce(self, blk: _Block, s: Instr) -> np.ndarray:
        # A float sum is exact and rounded once (no order to agree on: the lowering may combine
        # threads in any order); integer sums wrap; max and min ignore NaN, like PTX max/min.
        if s.attr("op") == "custom":
            return self._custom_reduce(blk, s)
        (x,) = self.values(blk, s)
        dt, axis, keep = s.args[0].type.dtype, s.attr("axis"), s.attr("keepdims")
        op = s.attr("op")
        if op in ("argmax", "argmin"):
            return self.result(s, _arg_reduce(x, op, axis, keep))
        if op == "sum" and dt.is_float and dt.name != "f64":
            return self.result(s, exact_sum(x, dt, axis, keep))
        fn = {"sum": np.sum, "max": np.fmax.reduce, "min": np.fmin.reduce}[op]
        with np.errstate(all="ignore"):
            r = fn(x, axis=axis, keepdims=keep)
        if op != "sum" and dt.is_float:  # -0 < +0, whatever the order of the elements
            zeros = x == 0
            plus = np.any(zeros & ~np.signbit(x), axis=axis, keepdims=keep)
            minus = np.any(zeros & np.signbit(x), axis=axis, keepdims=keep)
            if op == "max":
                r = np.where(r == 0, np.where(plus, 0.0, -0.0), r)
            else:
                r = np.where(r == 0, np.where(minus, -0.0, 0.0), r)
        return self.result(s, r)

    def _custom_reduce(self, blk: _Block, s: Instr) -> np.ndarray:
        """``reduce {op = "custom"}``: the combine function applied left to right over the
        reduced elements in increasing row-major index, all outputs at once (one step of numpy
        per reduced element)."""
        x = self.get(blk, s.args[0])  # bit patterns
        combine = s.attr("combine")
        axes = reduce_axes(s.attr("axis"))
        kept = [d for d in range(x.ndim) if d not in axes]
        # the kept axes first, then the reduced ones flattened in row-major order
        rows = np.transpose(x, kept + list(axes)).reshape(
            *(x.shape[d] for d in kept), -1)
        first, second = (p.name for p in combine.params)
        step = _Block(blk.index, blk.grid)
        acc = rows[..., 0]
        for k in range(1, rows.shape[-1]):
            step.env = {first: acc, second: rows[..., k]}
            self.block_stmts(step, combine.body)
            acc = np.broadcast_to(self.get(step, combine.result), acc.shape)
        if s.attr("keepdims"):
            acc = np.expand_dims(acc, axes)
        return np.array(acc, dtype=x.dtype)

    def _custom_scan(self, blk: _Block, s: Instr) -> np.ndarray:
        """``scan {op = "custom"}``: at each position the combine function applied left to
        right over the elements up to it (one step of numpy per position along the axis)."""
        x = np.moveaxis(self.get(blk, s.args[0]), s.attr("axis"), -1)  # bit patterns
        combine = s.attr("combine")
        first, second = (p.name for p in combine.params)
        step = _Block(blk.index, blk.grid)
        out = x.copy()
        for k in range(1, x.shape[-1]):
            step.env = {first: out[..., k - 1], second: x[..., k]}
            self.block_stmts(step, combine.body)
            out[..., k] = self.get(step, combine.result)
        return np.ascontiguousarray(np.moveaxis(out, -1, s.attr("axis")))

    def op_scan(self, blk: _Block, s: Instr) -> np.ndarray:
        if s.attr("op") == "custom":
            return self._custom_scan(blk, s)
        (x,) = self.values(blk, s)
        return self.result(s, scan(x, s.attr("op"), s.args[0].type.dtype, s.attr("axis"),
                                   s.attr("exclusive")))

    def op_transpose(self, blk: _Block, s: Instr) -> np.ndarray:
        return np.transpose(self.get(blk, s.args[0]), s.attr("perm")).copy()

    def op_reshape(self, blk: _Block, s: Instr) -> np.ndarray:
        return self.get(blk, s.args[0]).reshape(s.attr("shape"))

    def op_broadcast(self, blk: _Block, s: Instr) -> np.ndarray:
        return np.broadcast_to(self.get(blk, s.args[0]), s.attr("shape")).copy()

    def op_dot(self, blk: _Block, s: Instr) -> np.ndarray:
        a, b, c = (self.get(blk, x) for x in s.args)
        # A dot without the attribute (Tile IR written by hand) has the default, "ieee".
        return exact_dot(a, b, c, *(x.type.dtype for x in s.args), s.attr("precision", "ieee"))

    # -- memory ------------------------------------------------------------------------------------

    def _where_in(self, blk: _Block, s: Instr, mem: Any, first: int,
                  shape: tuple[int, ...]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """The element indices of a tile at the instruction's offsets, and which are accessed.

        An index tile as an offset gives the absolute indices along its dimension (a gather or
        scatter); with a mask tile, such an access is also limited to the tensor's bounds."""
        mem_shape = mem.shape if isinstance(mem, HostTensor) else mem.data.shape
        rank = len(mem_shape)
        grids = np.indices(shape, dtype=np.int64) if shape else np.zeros((0,), np.int64)
        index = []
        for d, x in enumerate(s.args[first:first + rank]):
            if is_index_tile(x.type):
                raw = np.asarray(decode(self.get(blk, x), x.type.dtype), dtype=np.int64)
                index.append(np.broadcast_to(raw, shape))
            else:
                index.append(grids[d] + int(self.scalar(blk, x)))
        index = tuple(index)
        inside = np.ones(shape, dtype=bool)
        for d in range(rank):
            inside &= (index[d] >= 0) & (index[d] < mem_shape[d])
        mode = s.attr("mask", "bounds")
        if mode == "bounds":
            return index, inside
        active = np.ones(shape, dtype=bool)
        if mode == "tile":
            active = np.broadcast_to(self.get(blk, s.args[-1]).astype(bool), shape)
            if any(is_index_tile(x.type) for x in s.args[first:first + rank]):
                return index, active & inside
        if np.any(active & ~inside):
            bad = tuple(int(i[active & ~inside][0]) for i in index)
            raise InterpreterError(f"{s.op} at {s.loc} in block {blk.index}: element {bad} is "
                                   f"outside the tensor of shape {tuple(mem_shape)}")
        return index, active

    @staticmethod
    def _read(mem: Any, index: tuple[np.ndarray, ...], active: np.ndarray) -> np.ndarray:
        if isinstance(mem, HostTensor):
            elems = np.full(active.shape, mem.offset, dtype=np.int64)
            for i, st in zip(index, mem.strides):
                elems = elems + np.where(active, i, 0) * st
            return read_patterns(mem.data, elems[active] * mem.dtype.nbits, mem.dtype.nbits)
        return mem.data[tuple(i[active] for i in index)]

    @staticmethod
    def _write(mem: Any, index: tuple[np.ndarray, ...], active: np.ndarray,
               patterns: np.ndarray) -> None:
        if isinstance(mem, HostTensor):
            elems = np.full(active.shape, mem.offset, dtype=np.int64)
            for i, st in zip(index, mem.strides):
                elems = elems + np.where(active, i, 0) * st
            write_patterns(mem.data, elems[active] * mem.dtype.nbits, patterns,
                           mem.dtype.nbits)
        else:
            mem.data[tuple(i[active] for i in index)] = patterns

    def op_load(self, blk: _Block, s: Instr) -> np.ndarray:
        mem = self.get(blk, s.args[0])
        dt = s.result.type.dtype
        shape = s.attr("shape")
        rank = len(mem.shape if isinstance(mem, HostTensor) else mem.data.shape)
        tile = shape or (1,) * rank  # a scalar load reads a tile of one element
        index, active = self._where_in(blk, s, mem, 1, tile)
        out = np.broadcast_to(encode(np.asarray(s.attr("other")), dt), tile).copy()
        out[active] = self._read(mem, index, active)
        return out.reshape(shape)

    def op_store(self, blk: _Block, s: Instr) -> None:
        mem = self.get(blk, s.args[0])
        rank = len(mem.shape if isinstance(mem, HostTensor) else mem.data.shape)
        shape = s.args[1].type.shape if isinstance(s.args[1].type, TensorType) else (1,) * rank
        value = np.broadcast_to(self.get(blk, s.args[1]), shape)
        index, active = self._where_in(blk, s, mem, 2, shape)
        self._write(mem, index, active, value[active])

    def op_shared(self, blk: _Block, s: Instr) -> _Shared:
        dt = s.result.type.dtype
        # Fresh shared memory holds no defined value: a recognisable pattern exposes reads of it.
        return _Shared(np.full(s.attr("shape"), (1 << dt.nbits) - 1, dtype=dt.storage_dtype), dt)

    def op_index(self, blk: _Block, s: Instr) -> _Shared:
        mem = self.get(blk, s.args[0])
        stage = int(self.scalar(blk, s.args[1]))
        if not 0 <= stage < mem.data.shape[0]:
            raise InterpreterError(f"index at {s.loc}: stage {stage} of {mem.data.shape[0]}")
        return _Shared(mem.data[stage], mem.dtype)

    def op_copy_async(self, blk: _Block, s: Instr) -> None:
        dst, src = self.get(blk, s.args[0]), self.get(blk, s.args[1])
        shape = dst.data.shape
        index, active = self._where_in(blk, s, src, 2, shape)
        data = np.zeros(shape, dtype=dst.data.dtype)  # masked elements are zero-filled
        data[active] = self._read(src, index, active)
        blk.open_group.append((dst, data))

    def op_commit(self, blk: _Block, s: Instr) -> None:
        blk.groups.append(blk.open_group)
        blk.open_group = []

    def op_wait(self, blk: _Block, s: Instr) -> None:
        keep = s.attr("n")
        done = blk.groups[:max(len(blk.groups) - keep, 0)]
        blk.groups = blk.groups[len(done):]
        for group in done:
            for dst, data in group:
                dst.data[...] = data

    def op_sync(self, blk: _Block, s: Instr) -> None:
        return None

    def op_fence(self, blk: _Block, s: Instr) -> None:
        return None  # blocks run one after another: every write is already visible

    def op_atomic(self, blk: _Block, s: Instr) -> np.ndarray:
        mem = self.get(blk, s.args[0])
        vt = s.args[1].type
        shape = vt.shape if isinstance(vt, TensorType) else (1,) * len(
            mem.shape if isinstance(mem, HostTensor) else mem.data.shape)
        value = np.broadcast_to(self.get(blk, s.args[1]), shape)
        index, active = self._where_in(blk, s, mem, 2, shape)
        mem_shape = mem.shape if isinstance(mem, HostTensor) else mem.data.shape
        dt = vt.dtype
        old = np.zeros(shape, dtype=dt.storage_dtype)
        op = s.attr("op")
        # Atomics of different instructions and blocks run in program and block order; within
        # a tile, elements that index tiles send to one address apply in row-major order, in
        # rounds: round r applies each address's r-th element (distinct addresses per round).
        for part in _rounds(index, active, mem_shape):
            prev = self._read(mem, index, part)
            a, b = decode(prev, dt), decode(value[part], dt)
            new = np.asarray(_ATOMIC[op](a, b), dtype=a.dtype)
            self._write(mem, index, part, encode(new, dt))
            old[part] = prev
        return old if isinstance(vt, TensorType) else old.reshape(-1)[0].copy()

    def op_workspace(self, blk: _Block, s: Instr) -> HostTensor:
        key = id(s)
        if key not in self.workspaces:
            dt = s.result.type.dtype
            shape = [self.dims[n] if isinstance(n, str) else n for n in s.attr("shape")]
            t = HostTensor.empty(shape, dt)
            if not s.attr("zeroed"):
                t.data[:] = 0xFF  # not zeroed: recognisable garbage, the same on every run
            self.workspaces[key] = t
        return self.workspaces[key]

    def op_print(self, blk: _Block, s: Instr) -> None:
        # Only the chosen block prints (block 0 when the attribute is empty).
        chosen = tuple(s.attr("block")) or (0,) * len(blk.grid)
        if tuple(blk.index) != chosen:
            return
        shown = [(np.asarray(decode(self.get(blk, a), a.type.dtype)), a.type.dtype)
                 for a in s.args]
        print("\n".join(print_lines(tuple(blk.index), s.attr("prefix"), shown)), flush=True)

    def op_device_assert(self, blk: _Block, s: Instr) -> None:
        cond = np.asarray(self.get(blk, s.args[0])).astype(bool)
        if cond.all():
            return
        where = f"block {tuple(int(b) for b in blk.index)}"
        if cond.ndim:
            first = np.unravel_index(int(np.argmin(cond.ravel())), cond.shape)
            where += f", element {tuple(int(i) for i in first)}"
        raise InterpreterError(f"{s.loc}: device_assert failed: {s.attr('msg')} ({where})")


def _arg_reduce(x: np.ndarray, op: str, axis: int | tuple[int, ...], keep: bool) -> np.ndarray:
    """numpy's ``argmax``/``argmin`` of ``x`` over ``axis`` (one axis or several; over several,
    the row-major position among them): the first extreme element, NaN counting as the extreme;
    −0 and +0 tie."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    rest = [d for d in range(x.ndim) if d not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape((*moved.shape[:len(rest)], -1))
    r = (np.argmax if op == "argmax" else np.argmin)(flat, axis=-1)
    if keep:
        r = r.reshape([1 if d in axes else n for d, n in enumerate(x.shape)])
    return r
