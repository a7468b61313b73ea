"""Index expressions over unroll-loop variables (``values.digit``, ``values.quotient``): a digit
or quotient of a loop index folds to loop variables where it falls on the loops' boundaries, so
that no division reaches Thread IR (the CUDA printer's inline PTX would keep it), and always
equals ``(i // stride) % size`` or ``i // stride`` (checked by evaluating every expression at
every point of the loops)."""

from __future__ import annotations

import itertools
import random

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext
from tilevm.ir.layout.algebra import local, spatial
from tilevm.ir.thread import KernelBuilder
from tilevm.ir.thread.values import IndexOp, Reg


def _evaluate(index, env) -> int:
    if isinstance(index, int):
        return index
    if isinstance(index, Reg):
        return env[index]
    a, b = _evaluate(index.a, env), _evaluate(index.b, env)
    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "//": int.__floordiv__,
           "%": int.__mod__}
    return ops[index.op](a, b)


def _divides(index) -> bool:
    return isinstance(index, IndexOp) and (index.op in ("//", "%") or _divides(index.a)
                                            or _divides(index.b))


def _loop_vars(index) -> list[Reg]:
    if isinstance(index, Reg):
        return [index]
    if isinstance(index, IndexOp):
        return _loop_vars(index.a) + _loop_vars(index.b)
    return []


def test_digits_of_a_loop_index_equal_floor_division_and_fold_on_boundaries():
    rng = random.Random(0)
    folded = 0
    for _ in range(300):
        sizes = [rng.choice([1, 2, 3, 4, 8]) for _ in range(rng.randrange(1, 4))]
        count = 1
        for n in sizes:
            count *= n
        layout = local(*sizes) if len(sizes) > 1 else local(sizes[0])
        vector = rng.choice([v for v in (1, 2, 4) if count % v == 0])
        kb = KernelBuilder("k", block_threads=32)
        stride, size = rng.choice([1, 2, 3, 4, 8]), rng.choice([1, 2, 3, 4, 8, 16])
        with vals.locals_loop(kb, count // vector, "g", layout, vector) as g:
            i = vals.scale(g, vector)
            d = vals.digit(i, stride, size)
            q = vals.quotient(i, stride)
            names = sorted(set(_loop_vars(i)), key=lambda r: r.name)
            ranges = [vals._RANGES[v] for v in names]
            for point in itertools.product(*(range(n) for n in ranges)):
                env = dict(zip(names, point, strict=True))
                value = _evaluate(i, env)
                assert _evaluate(d, env) == (value // stride) % size, (sizes, vector, stride,
                                                                        size, point)
                assert _evaluate(q, env) == value // stride, (sizes, vector, stride, point)
        folded += not _divides(d)
    assert folded > 150


def test_the_digits_of_a_layouts_locals_fold_completely():
    layout = local(2, 1) * spatial(4, 32) * local(1, 4)  # locals: 2 rows of 4 columns
    kb = KernelBuilder("k", block_threads=128)
    for vector in (1, 2, 4):
        with vals.locals_loop(kb, layout.local_size // vector, "g", layout, vector) as g:
            parts = LoweringContext.local_part(layout, vals.scale(g, vector))
            assert not any(_divides(p) for p in parts), (vector, parts)
