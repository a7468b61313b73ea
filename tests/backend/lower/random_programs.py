"""Random Tile IR programs for the differential test of the lowering (interpreter vs CPU backend).

Each *kind* builds one small kernel around one feature — elementwise chains with casts between
all types, loads and stores at odd offsets with masks and strides, reductions, shared-memory round
trips, ``bitcast``, ``view``, layout conversions, atomics, loops with run-time bounds, the
transcendental functions, ``copy_async``, shape operations, gathers and scatters through index
tiles, scans, ``argmax``/``argmin`` — with random dtypes, shapes (tiles
up to 64×64), layouts, offsets and 1 to 4 warps, and the random inputs it runs on. A program says
which outputs are compared bit for bit and which under a bound (DESIGN §3).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.layout import RegisterLayout, SharedLayout, Swizzle, local, replicated, spatial
from tilevm.ir.tile import (
    Assign,
    Const,
    For,
    Instr,
    Kernel,
    ScalarType,
    TensorType,
    Var,
    While,
    infer_type,
)
from tilevm.ir.tile.ops import ATOMIC_DTYPES, OPS, REQUIRED

I32, U1, F32 = dtype("i32"), dtype("u1"), dtype("f32")
FLOATS = [dtype(n) for n in ("f32", "f16", "bf16", "f64", "f8e4m3fn", "f8e5m2", "f6e3m2fn",
                             "f6e2m3fn", "f4e2m1fn", "f5e2m2", "f8e8m0fnu", "f8e4m3fnuz")]
INTS = [dtype(n) for n in ("i32", "u32", "i8", "u8", "i16", "u16", "i64", "u64", "u4", "i3",
                           "u1", "i5", "u7", "u12")]
ALL = FLOATS + INTS


@dataclass
class Program:
    """A kernel, its arguments, and how each output is compared."""

    kernel: Kernel
    tensors: dict[str, HostTensor]
    scalars: dict[str, int | float] = field(default_factory=dict)
    # output name -> None (bit for bit) or a function (interp, cpu, inputs) -> bool array "ok"
    bounded: dict[str, Callable] = field(default_factory=dict)
    kind: str = ""


class _Builder:
    """Statements of one kernel under construction."""

    def __init__(self, rng: random.Random, warps: int) -> None:
        self.rng = rng
        self.warps = warps
        self.params: list[Var] = []
        self.body: list = []
        self.stack: list[list] = [self.body]
        self.count = 0
        self.tensors: dict[str, HostTensor] = {}
        self.scalars: dict[str, int | float] = {}

    @property
    def threads(self) -> int:
        return 32 * self.warps

    def var(self, ty, hint: str = "v") -> Var:
        self.count += 1
        return Var(f"{hint}{self.count}", ty)

    def emit(self, op: str, args: list, /, **attrs) -> Var | None:
        # Every attribute written out, defaults too, as the frontend writes them.
        attrs = {**{k: v for k, v in OPS[op].attrs.items() if v is not REQUIRED}, **attrs}
        ty = infer_type(op, [a.type for a in args], attrs)
        v = None if ty is None else self.var(ty)
        self.stack[-1].append(Instr.make(v, op, args, **attrs))
        return v

    def pinned(self, v: Var, layout: RegisterLayout) -> Var:
        """Give the last instruction's result a layout (as the DSL's ``layout=`` does)."""
        last = self.stack[-1][-1]
        new = Var(v.name, TensorType(v.type.dtype, v.type.shape, "reg", layout))
        self.stack[-1][-1] = Instr(new, last.op, last.args, last.attrs, last.loc)
        return new

    def global_input(self, name: str, dt: DType, shape: tuple[int, ...],
                     values: np.ndarray | None = None, strided: bool = False) -> Var:
        dims = tuple(f"{name}_{d}" for d in range(len(shape)))
        p = Var(name, TensorType(dt, dims, "global"))
        self.params.append(p)
        self.tensors[name] = make_tensor(self.rng, dt, shape, values, strided)
        return p

    def scalar(self, name: str, dt: DType, value: int | float) -> Var:
        p = Var(name, ScalarType(dt))
        self.params.append(p)
        self.scalars[name] = value
        return p

    def kernel(self, name: str, grid: tuple[int, ...]) -> Kernel:
        return Kernel(name, tuple(self.params), (), (), tuple(Const(g, I32) for g in grid),
                      self.warps, tuple(self.body))


def random_values(rng: random.Random, dt: DType, shape: tuple[int, ...]) -> np.ndarray:
    """Random bit patterns of ``dt`` (any code for narrow types: NaN, infinity, subnormals; wide
    floats mostly finite, with a few specials)."""
    n = int(np.prod(shape))
    g = np.random.default_rng(rng.randrange(1 << 30))
    if dt.nbits <= 16 or dt.is_integer:
        bits = g.integers(0, 1 << min(dt.nbits, 62), n, dtype=np.uint64)
        if dt.nbits == 64:
            bits = g.integers(0, 1 << 63, n, dtype=np.uint64) * np.uint64(2) + g.integers(
                0, 2, n, dtype=np.uint64)
        if dt.is_float and dt.nbits == 16:  # mostly moderate values, some specials
            values = g.standard_normal(n) * np.exp2(g.integers(-8, 8, n))
            bits = dt.encode(values).astype(np.uint64)
            special = g.random(n) < 0.05
            bits[special] = g.integers(0, 1 << 16, int(special.sum()))
        return bits.reshape(shape)
    values = g.standard_normal(n) * np.exp2(g.integers(-20, 20, n))
    values[g.random(n) < 0.03] = np.nan
    values[g.random(n) < 0.03] = np.inf
    return dt.encode(values).reshape(shape)


def make_tensor(rng: random.Random, dt: DType, shape: tuple[int, ...],
                values: np.ndarray | None = None, strided: bool = False) -> HostTensor:
    """A HostTensor of ``shape`` holding random (or the given) bit patterns; ``strided`` makes it
    a view into a larger buffer, starting at an odd element, with a padded row pitch."""
    bits = random_values(rng, dt, shape) if values is None else values
    if not strided or len(shape) < 2:
        return HostTensor.from_bits(bits, dt)
    pad = rng.randrange(1, 5)
    start = rng.randrange(0, min(3, pad + 1))
    big = HostTensor.from_bits(random_values(rng, dt, (shape[0] + 1, shape[1] + pad)), dt)
    view = big[start % 2:start % 2 + shape[0], start:start + shape[1]]
    view.set_bits(bits)
    return view


def random_layout(rng: random.Random, shape: tuple[int, ...], threads: int) -> RegisterLayout:
    """A random register layout of ``shape`` over ``threads`` threads: power-of-two spatial
    factors where the dimensions allow, replication for the rest, at most 64 elements a thread
    where the shape allows it."""
    best = None
    for _ in range(20):
        layout = _one_layout(rng, shape, threads)
        if best is None or layout.local_size < best.local_size:
            best = layout
        if layout.local_size <= 64:
            return layout
    return best


def _one_layout(rng: random.Random, shape: tuple[int, ...], threads: int) -> RegisterLayout:
    rank = len(shape)
    rest = list(shape)
    inner = [1] * rank
    for d in range(rank):
        while rest[d] % 2 == 0 and rng.random() < 0.4:
            inner[d] *= 2
            rest[d] //= 2
    lanes = [1] * rank
    left = threads
    order = list(range(rank))
    rng.shuffle(order)
    for d in order:
        while rest[d] % 2 == 0 and left > 1 and rng.random() < 0.8:
            lanes[d] *= 2
            rest[d] //= 2
            left //= 2
    layout = local(*rest) * spatial(*lanes) * local(*inner)
    if left > 1:
        layout = replicated(left) * layout
    return layout


def _prod(values: list[int]) -> int:
    return int(np.prod(values))


def _shape(rng: random.Random, rank: int | None = None) -> tuple[int, ...]:
    rank = rank or rng.choice([1, 2, 2])
    sizes = [1, 2, 3, 4, 5, 7, 8, 12, 16, 24, 32, 64]
    shape = tuple(rng.choice(sizes) for _ in range(rank))
    while int(np.prod(shape)) > 1024:  # at most 8 registers a thread per tile at 4 warps
        shape = tuple(max(1, n // 2) for n in shape)
    return shape


def _offsets(rng: random.Random, tile: tuple[int, ...], tensor: tuple[int, ...],
             inside: bool = False) -> list[Const]:
    """Random offsets of a tile in a tensor: partly outside (even negative) unless ``inside``."""
    out = []
    for t, n in zip(tile, tensor):
        if inside:
            out.append(Const(rng.randrange(0, n - t + 1), I32))
        else:
            out.append(Const(rng.randrange(-t // 2, max(n - t // 2, 1) + 1), I32))
    return out


def _tensor_shape(rng: random.Random, tile: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(max(1, t + rng.randrange(-t // 2, 4)) for t in tile)


def _float_ops(dt: DType) -> list[str]:
    return ["add", "sub", "mul", "div", "min", "max"]


def _int_ops(dt: DType) -> list[str]:
    return ["add", "sub", "mul", "floordiv", "mod", "min", "max", "and", "or", "xor", "shl",
            "shr"]


def _unary_ops(dt: DType) -> list[str]:
    if dt.is_float:
        return ["neg", "abs", "floor", "ceil", "rint", "sqrt"]
    return ["invert", "abs"] + ([] if dt.kind == "uint" else ["neg"])


def kind_elementwise(rng: random.Random) -> Program:
    """A chain of elementwise operations with casts between all types."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng)
    shape = _tensor_shape(rng, tile)
    x = b.global_input("x", dt, shape)
    y = b.global_input("y", dt, shape)
    offs = _offsets(rng, tile, shape)
    v = b.emit("load", [x, *offs], shape=tile)
    w = b.emit("load", [y, *offs], shape=tile)
    for _ in range(rng.randrange(2, 6)):
        dt = v.type.dtype
        r = rng.random()
        if r < 0.25:
            new = rng.choice(ALL)
            v = b.emit("cast", [v], dtype=new)
            w = b.emit("cast", [w], dtype=new)
        elif r < 0.4:
            v = b.emit(rng.choice(_unary_ops(dt)), [v])
        elif r < 0.55:
            cond = b.emit(rng.choice(["lt", "le", "gt", "ge", "eq", "ne"]), [v, w])
            v = b.emit("where", [cond, v, w])
        elif r < 0.62 and dt.is_float:
            v = b.emit("fma", [v, w, v])
        else:
            ops = _float_ops(dt) if dt.is_float else _int_ops(dt)
            op = rng.choice(ops)
            other = w if rng.random() < 0.7 else _constant(rng, dt)
            v = b.emit(op, [v, other] if rng.random() < 0.8 else [other, v])
    out = b.global_input("out", v.type.dtype, shape)
    b.emit("store", [out, v, *offs])
    return Program(b.kernel("elementwise", (1,)), b.tensors, b.scalars, kind="elementwise")


def _constant(rng: random.Random, dt: DType) -> Const:
    if dt.is_float:
        value = float(dt.decode(dt.encode(rng.choice([0.5, -1.5, 3.0, 0.0, -0.0, 1e-3, 7.25]))))
        if not np.isfinite(value):
            value = 0.0
        return Const(value, dt)
    return Const(int(dt.decode(dt.encode(rng.randrange(-9, 9), saturate=True))), dt)


def kind_memory(rng: random.Random) -> Program:
    """Loads and stores at odd offsets, on strided views, masked at the bounds, by a mask tile,
    or not at all; plus a scalar load and store."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng, 2)
    shape = _tensor_shape(rng, tile)
    x = b.global_input("x", dt, shape, strided=rng.random() < 0.5)
    out = b.global_input("out", dt, shape, strided=rng.random() < 0.5)
    mode = rng.choice(["bounds", "bounds", "none", "tile"])
    if mode == "none":  # unchecked: the tile must lie inside
        tile = tuple(min(t, n) for t, n in zip(tile, shape))
    offs = _offsets(rng, tile, shape, inside=mode == "none")
    other = _constant(rng, dt).value
    other = other if dt.is_float else int(other)
    if mode == "tile":
        rows = b.emit("arange", [], start=0, stop=tile[0])
        cols = b.emit("arange", [], start=0, stop=tile[1])
        r2 = b.emit("reshape", [rows], shape=(tile[0], 1))
        c2 = b.emit("reshape", [cols], shape=(1, tile[1]))
        # Inside the tensor, and a random diagonal band.
        lim_r = b.emit("lt", [b.emit("add", [r2, offs[0]]), Const(shape[0], I32)])
        lim_c = b.emit("lt", [b.emit("add", [c2, offs[1]]), Const(shape[1], I32)])
        pos_r = b.emit("ge", [b.emit("add", [r2, offs[0]]), Const(0, I32)])
        pos_c = b.emit("ge", [b.emit("add", [c2, offs[1]]), Const(0, I32)])
        band = b.emit("lt", [b.emit("sub", [c2, r2]), Const(rng.randrange(-3, 6), I32)])
        mask = b.emit("and", [b.emit("and", [lim_r, lim_c]), b.emit("and", [pos_r, pos_c])])
        mask = b.emit("and", [mask, band])
        v = b.emit("load", [x, *offs, mask], shape=tile, mask="tile", other=other)
        b.emit("store", [out, v, *offs, mask], mask="tile")
    else:
        v = b.emit("load", [x, *offs], shape=tile, mask=mode, other=other)
        b.emit("store", [out, v, *offs], mask=mode)
    # The scalar goes to a tensor of its own: two threads storing to one element without a
    # barrier between them race, on the GPU as on the CPU backend.
    one = b.emit("load", [x, Const(0, I32), Const(shape[1] - 1, I32)], shape=())
    single = b.global_input("single", dt, (2, 2))
    b.emit("store", [single, one, Const(1, I32), Const(rng.randrange(-1, 3), I32)])
    return Program(b.kernel("memory", (1,)), b.tensors, b.scalars, kind="memory")


def kind_reduce(rng: random.Random) -> Program:
    """``reduce`` with every op, along either axis, kept or not, of integers and floats."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice([d for d in ALL if d.nbits <= 32 or d.is_integer])
    tile = _shape(rng, 2)
    x = b.global_input("x", dt, tile)
    op = rng.choice(["sum", "max", "min"])
    axis = rng.randrange(2)
    keep = rng.random() < 0.5
    t = b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile)
    r = b.emit("reduce", [t], op=op, axis=axis, keepdims=keep)
    out_shape = tuple(1 if (d == axis and keep) else n for d, n in enumerate(tile)
                      if keep or d != axis)
    out = b.global_input("out", dt, out_shape)
    b.emit("store", [out, r, *[Const(0, I32)] * len(out_shape)])
    bounded = op == "sum" and dt.is_float
    if not bounded:  # a reduction to a scalar (of a reduction): exact for these ops
        total = b.emit("reduce", [b.emit("reduce", [t], op=op, axis=0)], op=op, axis=0)
        whole = b.global_input("whole", dt, (1,))
        b.emit("store", [whole, total, Const(0, I32)])
    program = Program(b.kernel("reduction", (1,)), b.tensors, b.scalars, kind="reduce")
    if bounded:
        program.bounded["out"] = ("sum", "x", axis)
    return program


def kind_shared(rng: random.Random) -> Program:
    """A tile through shared memory (staged, maybe swizzled): store, barrier, load back."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng, 2)
    x = b.global_input("x", dt, tile)
    out = b.global_input("out", dt, tile)
    stages = rng.choice([1, 2])
    layout = None
    row_bytes = tile[1] * dt.nbits // 8
    if rng.random() < 0.5 and tile[1] * dt.nbits % 128 == 0 and row_bytes >= 128:
        layout = SharedLayout.row_major(stages, *tile, swizzle=Swizzle.mode(128))
    buf = b.emit("shared", [], shape=(stages, *tile), dtype=dt, layout=layout)
    stage = b.emit("index", [buf, Const(stages - 1, I32)])
    t = b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile)
    if rng.random() < 0.5:
        t = b.pinned(t, random_layout(rng, tile, b.threads))
    b.emit("store", [stage, t, Const(0, I32), Const(0, I32)])
    b.emit("sync", [])
    back = b.emit("load", [stage, Const(0, I32), Const(0, I32)], shape=tile)
    if rng.random() < 0.5:
        back = b.pinned(back, random_layout(rng, tile, b.threads))
    b.emit("store", [out, back, Const(0, I32), Const(0, I32)])
    return Program(b.kernel("shared_round_trip", (1,)), b.tensors, b.scalars, kind="shared")


def kind_bitcast(rng: random.Random) -> Program:
    """``bitcast`` along the last dimension between types of different widths."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    src = rng.choice(ALL)
    bits_options = [d for d in ALL if d.nbits != 64 or src.nbits == 64]
    dst = rng.choice(bits_options)
    rows = rng.choice([1, 2, 3, 4, 8])
    import math

    unit = math.lcm(src.nbits, dst.nbits)
    cols = unit // src.nbits * rng.choice([1, 2, 4, 8])
    while cols > 64:
        cols //= 2
    if cols * src.nbits % dst.nbits:
        cols = unit // src.nbits
    tile = (rows, cols)
    x = b.global_input("x", src, tile)
    t = b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile)
    r = b.emit("bitcast", [t], dtype=dst)
    out = b.global_input("out", dst, tuple(r.type.shape))
    b.emit("store", [out, r, Const(0, I32), Const(0, I32)])
    return Program(b.kernel("bitcast_program", (1,)), b.tensors, b.scalars, kind="bitcast")


def kind_view(rng: random.Random) -> Program:
    """``view``: the bits each thread holds, under another dtype and layout."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    src = rng.choice(ALL)
    tile = _shape(rng, 2)
    layout = random_layout(rng, tile, b.threads)
    bits = layout.local_size * src.nbits
    fits = [d for d in ALL if bits % d.nbits == 0 and bits // d.nbits <= 64]
    dst = rng.choice(fits) if fits else src
    count = bits // dst.nbits
    rep = layout.replication
    target = replicated(rep) * spatial(b.threads // rep) * local(count)
    x = b.global_input("x", src, tile)
    t = b.pinned(b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile), layout)
    r = b.emit("view", [t], dtype=dst, layout=target)
    out = b.global_input("out", dst, tuple(target.shape))
    b.emit("store", [out, r, Const(0, I32)])
    back = b.emit("view", [r], dtype=src, layout=layout)
    again = b.global_input("again", src, tile)
    b.emit("store", [again, back, Const(0, I32), Const(0, I32)])
    return Program(b.kernel("view_program", (1,)), b.tensors, b.scalars, kind="view")


def kind_convert(rng: random.Random) -> Program:
    """``convert_layout`` between random layouts, with arithmetic on both sides."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng, 2)
    x = b.global_input("x", dt, tile)
    t = b.pinned(b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile),
                 random_layout(rng, tile, b.threads))
    c = b.emit("convert_layout", [t], layout=random_layout(rng, tile, b.threads))
    d = b.emit("convert_layout", [c], layout=random_layout(rng, tile, b.threads))
    out = b.global_input("out", dt, tile)
    b.emit("store", [out, d, Const(0, I32), Const(0, I32)])
    return Program(b.kernel("conversions", (1,)), b.tensors, b.scalars, kind="convert")


def kind_atomic(rng: random.Random) -> Program:
    """Atomics from several blocks onto a small tensor (the final values must agree; returned
    old values are compared where no two blocks touch an address)."""
    op = rng.choice(list(ATOMIC_DTYPES))
    dt = dtype(rng.choice(ATOMIC_DTYPES[op]))
    b = _Builder(rng, rng.choice([1, 2, 4]))
    tile = (rng.choice([1, 4, 8, 32, 64]),)
    blocks = rng.choice([1, 1, 2, 3])
    x = b.global_input("x", dt, (tile[0] * blocks,), values=_atomic_values(rng, dt,
                                                                              tile[0] * blocks))
    target = b.global_input("target", dt, (tile[0],), values=_atomic_values(rng, dt, tile[0]))
    blk = b.emit("block_idx", [], axis=0)
    start = b.emit("mul", [blk, Const(tile[0], I32)])
    v = b.emit("load", [x, start], shape=tile)
    old = b.emit("atomic", [target, v, Const(0, I32)], op=op)
    olds = b.global_input("olds", dt, (tile[0] * blocks,))
    if blocks == 1:
        b.emit("store", [olds, old, start])
    program = Program(b.kernel("atomics", (blocks,)), b.tensors, b.scalars, kind="atomic")
    if op == "add" and dt.is_float:
        program.bounded["target"] = ("atomic_sum", blocks)
    return program


def _atomic_values(rng: random.Random, dt: DType, n: int) -> np.ndarray:
    g = np.random.default_rng(rng.randrange(1 << 30))
    if dt.is_float:
        return dt.encode(g.standard_normal(n) * 4)
    return dt.encode(g.integers(-1000, 1000, n), saturate=False)


def kind_loops(rng: random.Random) -> Program:
    """``for`` loops with run-time bounds and steps (negative too) and a ``while`` loop."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    n = rng.choice([8, 16, 32])
    dt = rng.choice([dtype("i32"), dtype("f32"), dtype("u8"), dtype("f16")])
    x = b.global_input("x", dt, (4 * n,))
    step = rng.choice([1, 2, 3, -1, -2, 5])
    start, stop = (0, 4 * n) if step > 0 else (4 * n - n, -n)
    p_start = b.scalar("start", I32, start)
    p_stop = b.scalar("stop", I32, stop)
    p_step = b.scalar("step", I32, step * n if abs(step) < 5 else n)
    acc = b.emit("full", [Const(0.0 if dt.is_float else 0, dt)], shape=(n,), dtype=dt)
    i = b.var(ScalarType(I32), "i")
    b.stack.append([])
    t = b.emit("load", [x, i], shape=(n,))
    s = b.emit("add", [acc, t])
    b.stack[-1].append(Assign(acc, s))
    body = b.stack.pop()
    b.body.append(For(i, p_start, p_stop, p_step, tuple(body)))
    k = b.emit("copy", [Const(0, I32)])
    b.stack.append([])
    c = b.emit("lt", [k, Const(3, I32)])
    cond_body = b.stack.pop()
    b.stack.append([])
    t2 = b.emit("load", [x, b.emit("mul", [k, Const(n, I32)])], shape=(n,))
    b.stack[-1].append(Assign(acc, b.emit("max", [acc, t2])))
    b.stack[-1].append(Assign(k, b.emit("add", [k, Const(1, I32)])))
    loop_body = b.stack.pop()
    b.body.append(While(tuple(cond_body), c, tuple(loop_body)))
    out = b.global_input("out", dt, (n,))
    b.emit("store", [out, acc, Const(0, I32)])
    return Program(b.kernel("loops", (1,)), b.tensors, b.scalars, kind="loops")


APPROX = ["exp", "exp2", "log", "log2", "sin", "cos", "tanh", "rsqrt"]


def kind_approx(rng: random.Random) -> Program:
    """A transcendental function of every element (the bounded class of DESIGN §3)."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice([dtype("f32"), dtype("f16"), dtype("bf16"), dtype("f8e4m3fn")])
    op = rng.choice(APPROX)
    tile = _shape(rng)
    g = np.random.default_rng(rng.randrange(1 << 30))
    span = {"exp": 10, "exp2": 14, "sin": 50, "cos": 50, "tanh": 6}.get(op, 100)
    values = g.uniform(-span, span, tile) if op not in ("log", "log2", "rsqrt") else \
        np.exp2(g.uniform(-30, 30, tile))
    x = b.global_input("x", dt, tile, values=dt.encode(values))
    t = b.emit("load", [x, *[Const(0, I32)] * len(tile)], shape=tile)
    r = b.emit(op, [t])
    out = b.global_input("out", dt, tile)
    b.emit("store", [out, r, *[Const(0, I32)] * len(tile)])
    program = Program(b.kernel("approx", (1,)), b.tensors, b.scalars, kind="approx")
    program.bounded["out"] = ("approx", op, "x")
    return program


def kind_copy_async(rng: random.Random) -> Program:
    """``copy_async`` into staged shared memory, ``commit``, ``wait``, a barrier, a load."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng, 2)
    shape = _tensor_shape(rng, tile)
    x = b.global_input("x", dt, shape, strided=rng.random() < 0.3)
    buf = b.emit("shared", [], shape=(2, *tile), dtype=dt)
    offs = _offsets(rng, tile, shape)
    for stage in range(2):
        dst = b.emit("index", [buf, Const(stage, I32)])
        b.emit("copy_async", [dst, x, *offs])
        b.emit("commit", [])
    b.emit("wait", [], n=0)
    b.emit("sync", [])
    back = b.emit("load", [b.emit("index", [buf, Const(1, I32)]), Const(0, I32), Const(0, I32)],
                  shape=tile)
    out = b.global_input("out", dt, tile)
    b.emit("store", [out, back, Const(0, I32), Const(0, I32)])
    return Program(b.kernel("copies", (1,)), b.tensors, b.scalars, kind="copy_async")


def kind_shape(rng: random.Random) -> Program:
    """``transpose``, ``reshape``, ``broadcast`` and broadcasting ``where``."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng, 2)
    x = b.global_input("x", dt, tile)
    t = b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile)
    tt = b.emit("transpose", [t], perm=(1, 0))
    flat = b.emit("reshape", [tt], shape=(tile[0] * tile[1],))
    back = b.emit("reshape", [flat], shape=(tile[1], tile[0]))
    col = b.emit("reduce", [back], op="max", axis=1, keepdims=True)
    wide = b.emit("broadcast", [col], shape=(tile[1], tile[0]))
    cond = b.emit("gt", [back, wide])
    picked = b.emit("where", [cond, back, col])
    out = b.global_input("out", dt, (tile[1], tile[0]))
    b.emit("store", [out, picked, Const(0, I32), Const(0, I32)])
    flat_out = b.global_input("flat", dt, (tile[0] * tile[1],))
    b.emit("store", [flat_out, flat, Const(0, I32)])
    return Program(b.kernel("shapes", (1,)), b.tensors, b.scalars, kind="shape")


def kind_gather(rng: random.Random) -> Program:
    """Loads and stores whose offsets along one dimension are an index tile (issue 12: gathers
    and scatters): random indices, some outside the tensor (masked by the bounds check), the
    scatter through a permutation (distinct destinations: no two threads race)."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice(ALL)
    tile = _shape(rng, 2)
    dim = rng.randrange(2)
    shape = _tensor_shape(rng, tile)
    x = b.global_input("x", dt, shape, strided=rng.random() < 0.5)
    n = shape[dim]
    picks = np.array([rng.randrange(-2, n + 2) for _ in range(tile[dim])], np.int64)
    ids = b.global_input("ids", I32, (tile[dim],), values=(picks & 0xFFFFFFFF).astype(np.uint32))
    index = b.emit("load", [ids, Const(0, I32)], shape=(tile[dim],))
    index = b.emit("reshape", [index], shape=(tile[0], 1) if dim == 0 else (1, tile[1]))
    other = _constant(rng, dt).value
    offs: list = [index, Const(rng.randrange(-1, 2), I32)]
    if dim == 1:
        offs.reverse()
    v = b.emit("load", [x, *offs], shape=tile, other=other if dt.is_float else int(other))
    out_shape = list(tile)
    out_shape[dim] = tile[dim] + rng.randrange(0, 3)
    out = b.global_input("out", dt, tuple(out_shape))
    order = list(range(out_shape[dim]))
    rng.shuffle(order)
    dest = b.global_input("dest", I32, (tile[dim],),
                          values=np.array(order[:tile[dim]], np.int64).astype(np.uint32))
    where = b.emit("load", [dest, Const(0, I32)], shape=(tile[dim],))
    where = b.emit("reshape", [where], shape=(tile[0], 1) if dim == 0 else (1, tile[1]))
    b.emit("store", [out, v, *([where, Const(0, I32)] if dim == 0 else [Const(0, I32), where])])
    return Program(b.kernel("gather", (1,)), b.tensors, b.scalars, kind="gather")


def kind_scan(rng: random.Random) -> Program:
    """``scan`` of every op along either axis, inclusive or exclusive, of the exact cases:
    integers (wrapping) for every op, floats for max and min."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    op = rng.choice(["sum", "prod", "max", "min"])
    types = [d for d in INTS if d.nbits <= 32] + (
        [d for d in FLOATS if d.nbits <= 32] if op in ("max", "min") else [])
    dt = rng.choice(types)
    tile = (rng.choice([1, 2, 4, 8]), rng.choice([4, 8, 16, 32]))
    x = b.global_input("x", dt, tile)
    t = b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile)
    r = b.emit("scan", [t], op=op, axis=rng.randrange(2), exclusive=rng.random() < 0.5)
    out = b.global_input("out", dt, tile)
    b.emit("store", [out, r, Const(0, I32), Const(0, I32)])
    return Program(b.kernel("scan", (1,)), b.tensors, b.scalars, kind="scan")


def kind_arg_reduce(rng: random.Random) -> Program:
    """``argmax``/``argmin`` along an axis, over both axes, kept or not, of every type (NaN, -0
    and ties included in the random codes): exact."""
    b = _Builder(rng, rng.choice([1, 2, 4]))
    dt = rng.choice([d for d in ALL if d.nbits <= 32])
    tile = _shape(rng, 2)
    x = b.global_input("x", dt, tile)
    t = b.emit("load", [x, Const(0, I32), Const(0, I32)], shape=tile)
    op = rng.choice(["argmax", "argmin"])
    axis = rng.choice([0, 1, (0, 1)])
    keep = rng.random() < 0.5
    r = b.emit("reduce", [t], op=op, axis=axis, keepdims=keep)
    out_shape = r.type.shape if isinstance(r.type, TensorType) else (1,)
    out = b.global_input("out", I32, tuple(out_shape))
    b.emit("store", [out, r, *[Const(0, I32)] * len(out_shape)])
    return Program(b.kernel("arg_reduce", (1,)), b.tensors, b.scalars, kind="arg_reduce")


KINDS = [kind_elementwise, kind_memory, kind_reduce, kind_shared, kind_bitcast, kind_view,
         kind_convert, kind_atomic, kind_loops, kind_approx, kind_copy_async, kind_shape,
         kind_gather, kind_scan, kind_arg_reduce]


def generate(seed: int) -> Program:
    """The program of ``seed``: its kind is ``seed % len(KINDS)``."""
    rng = random.Random(seed)
    return KINDS[seed % len(KINDS)](rng)
