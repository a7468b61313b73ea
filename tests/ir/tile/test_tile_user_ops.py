"""Typing of what user kernels needed beyond the first cut: workspaces sized by dimensions, fixed
sizes in global shapes, scalar loads and stores, fences, ``rint``."""

from __future__ import annotations

import pytest

from tilevm.frontend.text import parse
from tilevm.ir.dtypes import dtype
from tilevm.ir.tile import Const, Instr, Kernel, ScalarType, TensorType, Var, VerifyError, verify
from tilevm.ir.tile.printer import print_kernel

I32, F32, U1, I8 = (dtype(n) for n in ("i32", "f32", "u1", "i8"))
A = Var("a", TensorType(F32, ("m", 4), "global"))
M = Var("m", ScalarType(I32))
ZERO = Const(0, I32)


def kernel(*body) -> Kernel:
    return Kernel("k", (A,), (), (), (Const(1, I32),), 4, tuple(body))


def checked(k: Kernel) -> Kernel:
    verify(k)
    assert parse(print_kernel(k)) == k
    return k


def test_a_workspace_is_sized_by_integers_and_the_kernels_dimensions():
    ws = Var("ws", TensorType(F32, ("m", 8), "global"))
    checked(kernel(Instr.make(ws, "workspace", [], shape=("m", 8), dtype=F32, zeroed=True)))
    other = Var("ws", TensorType(F32, ("q",), "global"))
    with pytest.raises(VerifyError, match=r"workspace size 'q' is not a dimension of the "
                                          r"kernel's parameters \(m\)"):
        verify(kernel(Instr.make(other, "workspace", [], shape=("q",), dtype=F32)))
    bad = Var("ws", TensorType(F32, (0,), "global"))
    with pytest.raises(VerifyError, match="shape must be a tuple of positive integers and "
                                          "dimension names"):
        verify(kernel(Instr.make(bad, "workspace", [], shape=(0,), dtype=F32)))


def test_a_scalar_load_and_store_move_one_element():
    x = Var("x", ScalarType(F32))
    checked(kernel(Instr.make(x, "load", [A, M, ZERO], shape=()),
                   Instr.make(None, "store", [A, x, ZERO, Const(3, I32)])))
    mask = Var("mask", TensorType(U1, (1, 1)))
    with pytest.raises(VerifyError, match="a scalar load is masked at the bounds or not at all"):
        verify(kernel(Instr.make(mask, "full", [Const(1, U1)], shape=(1, 1), dtype=U1),
                      Instr.make(x, "load", [A, ZERO, ZERO, mask], shape=(), mask="tile")))
    with pytest.raises(VerifyError, match="1 offsets for a tensor of rank 2"):
        verify(kernel(Instr.make(x, "load", [A, ZERO], shape=())))


def test_fence_scopes_and_rint_operands():
    checked(kernel(Instr.make(None, "fence", [], scope="sys"), Instr.make(None, "fence", [])))
    with pytest.raises(VerifyError, match=r"scope must be one of \('block', 'gpu', 'sys'\)"):
        verify(kernel(Instr.make(None, "fence", [], scope="cta")))
    r = Var("r", ScalarType(F32))
    checked(kernel(Instr.make(r, "rint", [Const(2.5, F32)])))
    with pytest.raises(VerifyError, match="rint: needs a float operand, got i8"):
        verify(kernel(Instr.make(Var("r", ScalarType(I8)), "rint", [Const(3, I8)])))
