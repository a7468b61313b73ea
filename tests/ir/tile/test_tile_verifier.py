"""The verifier rejects ill-typed programs, naming the instruction and the operand."""

from __future__ import annotations

import pytest

from tilevm.ir.dtypes import dtype
from tilevm.ir.tile import (
    OPS,
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
    VerifyError,
    verify,
)

I32, F32, F16, U1 = (dtype(n) for n in ("i32", "f32", "f16", "u1"))
A = Var("a", TensorType(F16, ("m", "k"), "global"))
M = Var("m", ScalarType(I32))


def kernel(*body, params=(A,)) -> Kernel:
    g = Var("g", ScalarType(I32))
    return Kernel("k", params, (), (Instr.make(g, "cdiv", [M, Const(16, I32)]),), (g,), 4,
                  tuple(body))


def tile(name, dt, *shape):
    return Var(name, TensorType(dt, shape))


def test_a_well_typed_program_passes():
    x, y, acc = tile("x", F16, 16, 32), tile("y", F16, 32, 8), tile("acc", F32, 16, 8)
    verify(kernel(
        Instr.make(x, "load", [A, Const(0, I32), Const(0, I32)], shape=(16, 32)),
        Instr.make(y, "load", [A, Const(0, I32), Const(0, I32)], shape=(32, 8)),
        Instr.make(acc, "full", [Const(0.0, F32)], shape=(16, 8), dtype=F32),
        Instr.make(tile("d", F32, 16, 8), "dot", [x, y, acc]),
    ))


def test_dot_dtype_mismatch_names_instruction_and_operand():
    x, y, acc = tile("x", F16, 16, 16), tile("y", F32, 16, 16), tile("acc", F32, 16, 16)
    program = kernel(
        Instr.make(x, "full", [Const(0.0, F16)], shape=(16, 16), dtype=F16),
        Instr.make(y, "full", [Const(0.0, F32)], shape=(16, 16), dtype=F32),
        Instr.make(acc, "full", [Const(0.0, F32)], shape=(16, 16), dtype=F32),
        Instr.make(tile("d", F32, 16, 16), "dot", [x, y, acc], Loc("k.py", 9, 3)),
    )
    with pytest.raises(VerifyError, match=r"`%d: tile<f32\[16, 16\]> = dot\(%x, %y, %acc\)` at "
                                          r"k.py:9:3: dot: dtype mismatch: a is f16 but b is f32, "
                                          r"a pair no dot instruction takes \(supported \(a, b\) "
                                          r"pairs: \(f16, f16\), .*; cast one of them first "
                                          r"\(operand 1: %y\)"):
        verify(program)


def test_wrong_declared_result_type():
    program = kernel(Instr.make(tile("x", F32, 4), "full", [Const(0.0, F32)], shape=(8,),
                                dtype=F32))
    with pytest.raises(VerifyError, match=r"declared tile<f32\[4\]> but full gives "
                                          r"tile<f32\[8\]>"):
        verify(program)


def test_use_before_definition_and_out_of_scope():
    x = tile("x", F32, 4)
    with pytest.raises(VerifyError, match=r"%x is used before it is defined"):
        verify(kernel(Instr.make(tile("y", F32, 4), "neg", [x])))
    c = Var("c", ScalarType(U1))
    program = kernel(
        Instr.make(c, "lt", [M, Const(3, I32)]),
        If(c, (Instr.make(x, "full", [Const(1.0, F32)], shape=(4,), dtype=F32),)),
        Instr.make(tile("y", F32, 4), "neg", [x]),
    )
    with pytest.raises(VerifyError, match=r"%x is used before it is defined \(or out of scope\)"):
        verify(program)


def test_load_offsets_and_store_dtype():
    with pytest.raises(VerifyError, match=r"load: 1 offsets for a tensor of rank 2"):
        verify(kernel(Instr.make(tile("x", F16, 4, 4), "load", [A, Const(0, I32)],
                                 shape=(4, 4))))
    x = tile("x", F32, 4, 4)
    with pytest.raises(VerifyError, match=r"store: dtype mismatch: the tensor holds f16 but the "
                                          r"value is f32.*\(operand 1: %x\)"):
        verify(kernel(Instr.make(x, "full", [Const(0.0, F32)], shape=(4, 4), dtype=F32),
                      Instr.make(None, "store", [A, x, Const(0, I32), Const(0, I32)])))


def test_assign_type_mismatch_and_bad_loop_bounds():
    x = tile("x", F32, 4)
    with pytest.raises(VerifyError, match=r"cannot assign tile<f16\[4\]> to a tile<f32\[4\]>"):
        verify(kernel(Instr.make(x, "full", [Const(0.0, F32)], shape=(4,), dtype=F32),
                      Instr.make(tile("h", F16, 4), "full", [Const(0.0, F16)], shape=(4,),
                                 dtype=F16),
                      Assign(x, tile("h", F16, 4))))
    with pytest.raises(VerifyError, match=r"the bounds must be integer scalars, got f32"):
        verify(kernel(For(Var("i", ScalarType(I32)), Const(0, I32), Const(1.0, F32),
                          Const(1, I32), ())))


def test_constant_out_of_range_and_unknown_op():
    with pytest.raises(VerifyError, match=r"constant 300 does not fit in u8"):
        verify(kernel(Instr.make(Var("b", ScalarType(dtype("u8"))), "copy",
                                 [Const(300, dtype("u8"))])))
    with pytest.raises(VerifyError, match=r"frobnicate: unknown operation"):
        verify(kernel(Instr.make(None, "frobnicate", [])))


def test_atomic_dtype_follows_the_isa():
    t = Var("t", TensorType(F16, (4,), "global"))
    v = tile("v", F16, 4)
    with pytest.raises(VerifyError, match=r"atomic max is not available for f16"):
        verify(kernel(Instr.make(v, "full", [Const(0.0, F16)], shape=(4,), dtype=F16),
                      Instr.make(tile("o", F16, 4), "atomic", [t, v, Const(0, I32)], op="max"),
                      params=(A, t)))


def test_every_operation_has_a_typing_rule():
    assert {"load", "store", "dot", "view", "atomic", "workspace", "copy_async", "reduce"} <= set(
        OPS)
