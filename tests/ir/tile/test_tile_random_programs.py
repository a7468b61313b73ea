"""Randomly generated well-typed programs: they verify, their text form reads back, and the program
read back computes the same bits as the original on the interpreter.

A failure names its seed and writes the program's text form (DESIGN §8).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from tilevm.backend.interp import run
from tilevm.frontend.text import parse
from tilevm.ir.dtypes import dtype
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile import (
    Assign,
    Const,
    For,
    If,
    Instr,
    Kernel,
    ScalarType,
    TensorType,
    Var,
    infer_type,
    print_kernel,
    verify,
)

F32, F16, I32, U1 = (dtype(n) for n in ("f32", "f16", "i32", "u1"))
T = 8  # the tile length


class ProgramGenerator:
    """Builds a random kernel over f32 tiles of shape (T,) and (2, T // 2)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0
        self.x = Var("x", TensorType(F32, ("n",), "global"))
        self.y = Var("y", TensorType(F32, ("n",), "global"))

    def var(self, ty) -> Var:
        self.count += 1
        return Var(f"v{self.count}", ty)

    def emit(self, out: list, op: str, args: list, /, **attrs) -> Var:
        ty = infer_type(op, [a.type for a in args], attrs)
        v = self.var(ty)
        out.append(Instr.make(v, op, args, **attrs))
        return v

    def tile_op(self, out: list, pool: list[Var]) -> Var:
        """One random instruction on tiles of ``pool``; returns its (T,) f32 result."""
        rng = self.rng
        a, b = rng.choice(pool), rng.choice(pool)
        kind = rng.randrange(9)
        if kind == 0:
            return self.emit(out, rng.choice(["neg", "abs", "floor"]), [a])
        if kind == 1:
            return self.emit(out, "sqrt", [self.emit(out, "abs", [a])])
        if kind == 2:
            return self.emit(out, rng.choice(["add", "sub", "mul", "max", "min"]), [a, b])
        if kind == 3:
            scale = Const(rng.choice([0.5, -2.0, 3.25, 1e-3]), F32)
            return self.emit(out, "mul", [a, scale])
        if kind == 4:
            cond = self.emit(out, rng.choice(["lt", "ge", "ne"]), [a, b])
            return self.emit(out, "where", [cond, a, b])
        if kind == 5:
            return self.emit(out, "fma", [a, b, rng.choice(pool)])
        if kind == 6:
            half = self.emit(out, "cast", [a], dtype=F16)
            return self.emit(out, "cast", [self.emit(out, "add", [half, half])], dtype=F32)
        if kind == 7:
            grid = self.emit(out, "reshape", [a], shape=(2, T // 2))
            total = self.emit(out, "reduce", [grid], op=rng.choice(["sum", "max"]), axis=1,
                              keepdims=True)
            spread = self.emit(out, "broadcast", [total], shape=(2, T // 2))
            flipped = self.emit(out, "transpose", [self.emit(out, "sub", [grid, spread])])
            return self.emit(out, "reshape", [flipped], shape=(T,))
        row = self.emit(out, "arange", [], start=0, stop=T)
        as_float = self.emit(out, "cast", [row], dtype=F32)
        return self.emit(out, "add", [a, as_float])

    @staticmethod
    def last_tile(stmts: list, like: Var) -> Var:
        """The last value of ``like``'s type defined at the top of ``stmts`` (else ``like``)."""
        for s in reversed(stmts):
            if isinstance(s, Instr) and s.result is not None and s.result.type == like.type:
                return s.result
        return like

    def block(self, depth: int, pool: list[Var], length: int) -> list:
        out: list = []
        for _ in range(length):
            choice = self.rng.random()
            if depth < 2 and choice < 0.15:
                acc = pool[-1]
                k = self.var(ScalarType(I32))
                body = self.block(depth + 1, [*pool, acc], 3)
                body.append(Assign(acc, self.last_tile(body, acc)))
                out.append(For(k, Const(0, I32), Const(self.rng.randrange(1, 4), I32),
                               Const(1, I32), tuple(body), self.rng.choice([None, True, 2])))
            elif depth < 2 and choice < 0.25:
                target = pool[-1]
                n = Var("n", ScalarType(I32))
                cond = self.emit(out, "gt", [n, Const(self.rng.randrange(0, 20), I32)])
                then = self.block(depth + 1, list(pool), 2)
                then.append(Assign(target, self.last_tile(then, target)))
                out.append(If(cond, tuple(then), ()))
            else:
                pool.append(self.tile_op(out, pool))
        return out

    def kernel(self) -> Kernel:
        n = Var("n", ScalarType(I32))
        grid = self.var(ScalarType(I32))
        launch = [Instr.make(grid, "cdiv", [n, Const(T, I32)])]
        body: list = []
        i = self.emit(body, "block_idx", [], axis=0)
        offset = self.emit(body, "mul", [i, Const(T, I32)])
        first = self.emit(body, "load", [self.x, offset], shape=(T,), other=1.5)
        acc = self.emit(body, "copy", [first])
        pool = [first, acc]
        body += self.block(0, pool, self.rng.randrange(4, 12))
        result = pool[0]
        for v in pool[1:]:  # every value reaches the output
            result = self.emit(body, "add", [result, v])
        body.append(Instr.make(None, "store", [self.y, result, offset]))
        return Kernel("random", (self.x, self.y), (("seed", 0),), tuple(launch), (grid,), 4,
                      tuple(body))


def _run(kernel: Kernel, x: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x)
    tensors = {"x": HostTensor(x.view(np.uint8), F32, x.shape),
               "y": HostTensor(y.view(np.uint8), F32, y.shape)}
    with np.errstate(all="ignore"):
        run(kernel, tensors, {}, {"n": x.size})
    return y


@pytest.mark.parametrize("seed", range(30))
def test_random_program_verifies_reads_back_and_computes_the_same(seed, tmp_path):
    kernel = ProgramGenerator(seed).kernel()
    text = print_kernel(kernel)
    try:
        verify(kernel)
        back = parse(text)
        assert back == kernel
        x = np.random.default_rng(seed).standard_normal(21).astype(np.float32)
        assert np.array_equal(_run(kernel, x).view(np.uint32), _run(back, x).view(np.uint32))
    except Exception:
        path = tmp_path / f"random-{seed}.tvm"
        path.write_text(text)
        print(f"seed {seed}: the program is in {path}")
        raise
