"""The text form reads back what the printer writes: parse(print(p)) == p, locations included."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

import tilevm as tv
from tilevm.frontend.kernel import KernelFunction
from tilevm.frontend.text import TextFormError, parse
from tilevm.ir.dtypes import dtype
from tilevm.ir.layout import SharedLayout, Swizzle, local, spatial
from tilevm.ir.tile import (
    Assign,
    Const,
    For,
    If,
    Instr,
    Kernel,
    Loc,
    ScalarType,
    TensorType,
    Var,
    While,
    print_kernel,
    verify,
    walk,
)

ROOT = Path(__file__).resolve().parents[3]


def _kernels_in(path: Path) -> list[KernelFunction]:
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"rt_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [v for v in vars(module).values() if isinstance(v, KernelFunction)]


def _all_programs() -> list[tuple[str, Kernel]]:
    programs = []
    files = [*sorted((ROOT / "examples").glob("*.py")), ROOT / "tests/examples/test_examples.py",
             ROOT / "tests/backend/interp/test_interp_semantics.py",
             ROOT / "tests/frontend/test_dsl_programs.py"]
    for path in files:
        for k in _kernels_in(path):
            with contextlib.suppress(tv.CompileError):  # those needing constants: see below
                programs.append((f"{path.stem}.{k.__name__}", k.ir()))
    # Kernels built by factories or needing constants, from the interpreter's tests.
    interp = _module(ROOT / "tests/backend/interp/test_interp_semantics.py")
    for name in ("u3", "f6e3m2", "u12"):
        programs.append((f"interp.copy_{name}", interp.make_copy(dtype(name)).ir(shift=5)))
    for op in ("add", "mul", "div"):
        programs.append((f"interp.binary_{op}", interp.make_binary(dtype("bf16"), op).ir()))
    programs.append(("interp.dot", interp.dot_kernel.ir(bm=3, bn=4, bk=40)))
    return programs


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"rtm_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_round_trip(kernel: Kernel) -> None:
    text = print_kernel(kernel)
    back = parse(text)
    assert back == kernel
    assert print_kernel(back) == text  # locations survive, and so does everything else
    assert [getattr(s, "loc", None) for s in walk(back.body)] == [
        getattr(s, "loc", None) for s in walk(kernel.body)]


PROGRAMS = _all_programs()


def test_every_example_is_among_the_programs():
    names = {n.split(".")[1] for n, _ in PROGRAMS}
    assert {"vector_add", "softmax", "matmul", "matmul_w4a16", "design_matmul"} <= names
    assert len(PROGRAMS) >= 15


@pytest.mark.parametrize(("name", "kernel"), PROGRAMS, ids=[n for n, _ in PROGRAMS])
def test_program_round_trips(name, kernel):
    _assert_round_trip(kernel)


def test_layouts_print_as_their_repr_and_parse_back():
    names = dict(PROGRAMS)
    text = print_kernel(names["test_interp_semantics.view_kernel"])
    assert f"layout({repr(spatial(8, 4) * local(1, 2))!r}".replace("'", '"') in text


SHARED = SharedLayout((2, 16, 32), (512, 32, 1), Swizzle(2, 0, 2))


@tv.kernel
def staged(a: tv.Global[tv.f16, "m", "k"]):
    tv.launch(grid=1)
    s = tv.shared((2, 16, 32), tv.f16, layout=SHARED)
    tv.copy_async(s[1], a, (0, 0))
    tv.commit()
    tv.wait(0)


def test_shared_layouts_round_trip():
    kernel = staged.ir()
    assert "shared_layout(" in print_kernel(kernel)
    _assert_round_trip(kernel)


def test_hand_built_program_with_every_statement_round_trips():
    i32, f32, u1 = dtype("i32"), dtype("f32"), dtype("u1")
    s = ScalarType
    x = Var("x", TensorType(f32, ("n",), "global"))
    g, c, t, w = Var("g", s(i32)), Var("c", s(u1)), Var("t", TensorType(f32, (4,))), Var(
        "w", s(i32))
    loc = Loc("weird \"name\".py", 3, 7)
    body = (
        Instr.make(t, "full", [Const(float("nan"), f32)], loc, shape=(4,), dtype=f32),
        Instr.make(w, "copy", [Const(-5, i32)]),
        While((Instr.make(c, "lt", [w, Const(10, i32)]),), c,
              (Assign(w, Const(7, i32), loc),), loc),
        Instr.make(Var("c2", s(u1)), "ge", [w, Const(0, i32)]),
        If(Var("c2", s(u1)), (Instr.make(None, "store", [x, t, w], mask="none"),),
           (Instr.make(None, "print", [t, w], prefix="it's \"here\"\n"),), loc),
        For(Var("k", s(i32)), Const(0, i32), Var("n", s(i32)), Const(-2, i32),
            (Instr.make(None, "sync"),), 4, loc),
        Instr.make(Var("z", TensorType(f32, (4,))), "full", [Const(-0.0, f32)], shape=(4,),
                   dtype=f32),
    )
    kernel = Kernel("k", (x,), (("flag", True), ("ratio", 0.1), ("dt", f32), ("nothing", None),
                             ("shape", (1, 2))),
                    (Instr.make(g, "cdiv", [Var("n", s(i32)), Const(3, i32)]),), (g, Const(2, i32)),
                    8, body, Loc("f.py", 1, 1))
    verify(kernel)
    _assert_round_trip(kernel)
    # Structural equality ignores locations and distinguishes -0.0 from 0.0.
    assert parse(print_kernel(kernel, locations=False)) == kernel
    other = Kernel(kernel.name, kernel.params, kernel.constants, kernel.launch_body, kernel.grid,
                   kernel.warps, (*body[:-1], Instr.make(body[-1].result, "full",
                                                         [Const(0.0, f32)], shape=(4,),
                                                         dtype=f32)))
    assert other != kernel


def test_syntax_error_gives_line_and_column():
    text = print_kernel(PROGRAMS[0][1]).replace("launch grid", "launch grud")
    with pytest.raises(TextFormError, match=r"line 2, column \d+: syntax error"):
        parse(text)


@tv.kernel
def dot_precisions(a: tv.Global[tv.f32, "m", "k"], q: tv.Global[tv.i8, "m", "k"],
                   w: tv.Global[tv.u8, "k", "n"], c: tv.Global[tv.f32, "m", "n"],
                   d: tv.Global[tv.i32, "m", "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 8))
    y = tv.load(a, (0, 0), (8, 8))
    acc = tv.dot(x, y, precision="tf32")
    tv.store(c, tv.dot(x, y, acc), (0, 0))
    tv.store(d, tv.load(q, (0, 0), (16, 32)) @ tv.load(w, (0, 0), (32, 8)), (0, 0))


def test_dot_precision_and_mixed_operands_round_trip():
    kernel = dot_precisions.ir()
    text = print_kernel(kernel)
    dots = [s for s in walk(kernel.body) if isinstance(s, Instr) and s.op == "dot"]
    assert [s.attr("precision") for s in dots] == ["tf32", "ieee", "ieee"]
    assert [tuple(a.type.dtype.name for a in s.args) for s in dots][2] == ("i8", "u8", "i32")
    assert 'precision = "tf32"' in text and 'precision = "ieee"' in text
    _assert_round_trip(kernel)
    back = [s for s in walk(parse(text).body) if isinstance(s, Instr) and s.op == "dot"]
    assert [s.attr("precision") for s in back] == ["tf32", "ieee", "ieee"]
