"""``dot``'s rule table against the PTX ISA's ``mma`` forms, and the verifier's refusals.

The expected pairs and instructions are written here from the PTX ISA ("Warp Level Matrix
Multiply-Accumulate Instructions: mma": ``m16n8k16`` takes ``.f16`` x ``.f16`` into ``.f32`` or
``.f16`` and ``.bf16`` x ``.bf16`` into ``.f32``; ``m16n8k32`` takes ``.u8``/``.s8`` in any mix
into ``.s32`` and ``.e4m3``/``.e5m2`` in any mix into ``.f32``, the latter "requires sm_89";
``m16n8k8`` takes ``.tf32``; the rest needs sm_80), and the f32 "ieee" rule from the numeric
contract (a chain of ``fma.rn.f32``).
"""

from __future__ import annotations

import re

import pytest

from tilevm.ir.dtypes import dtype
from tilevm.ir.tile import (
    Const,
    Instr,
    Kernel,
    Loc,
    ScalarType,
    TensorType,
    Var,
    VerifyError,
    verify,
)
from tilevm.ir.tile.ops import DOT_PRECISIONS, DOT_RULES, DotRule, dot_rule

I8_FAMILY = {"i8": "s8", "u8": "u8"}
FP8_FAMILY = {"f8e4m3fn": "e4m3", "f8e5m2": "e5m2"}
# (a, b, precision) → (accumulators, default first; K of the instruction; instruction; PTX types;
# minimum sm)
EXPECTED = {
    ("f16", "f16", "ieee"): (("f32", "f16"), 16, "m16n8k16", ("f16", "f16"), 80),
    ("bf16", "bf16", "ieee"): (("f32",), 16, "m16n8k16", ("bf16", "bf16"), 80),
    **{(a, b, "ieee"): (("i32",), 32, "m16n8k32", (pa, pb), 80)
       for a, pa in I8_FAMILY.items() for b, pb in I8_FAMILY.items()},
    **{(a, b, "ieee"): (("f32",), 32, "m16n8k32", (pa, pb), 89)
       for a, pa in FP8_FAMILY.items() for b, pb in FP8_FAMILY.items()},
    ("f32", "f32", "ieee"): (("f32",), 1, None, None, 80),
    ("f32", "f32", "tf32"): (("f32",), 8, "m16n8k8", ("tf32", "tf32"), 80),
}


def test_the_table_is_the_isa_forms_and_the_fma_chain():
    assert DOT_PRECISIONS == ("ieee", "tf32")
    assert set(DOT_RULES) == set(EXPECTED)
    for (a, b, precision), (accs, chunk, instruction, ptx, sm) in EXPECTED.items():
        rule = dot_rule(dtype(a), dtype(b), precision)
        assert rule == DotRule(a, b, accs, chunk, instruction, ptx, sm)
        assert DOT_RULES[a, b, precision] is rule
        if instruction is not None:  # one instruction is one chunk: its K
            assert chunk == int(re.fullmatch(r"m16n8k(\d+)", instruction).group(1))
        if ptx is not None and ptx != ("tf32", "tf32"):  # the dtypes' own PTX names
            assert ptx == (dtype(a).ptx.lstrip("."), dtype(b).ptx.lstrip("."))


def test_rules_are_found_by_alias_and_default_to_ieee():
    assert dot_rule("e4m3", "e5m2") is DOT_RULES["f8e4m3fn", "f8e5m2", "ieee"]
    assert dot_rule(dtype("f32"), "f32") is DOT_RULES["f32", "f32", "ieee"]


SUPPORTED = ", ".join(f"({a}, {b})" for a, b in dict.fromkeys((a, b) for a, b, _ in EXPECTED))


@pytest.mark.parametrize(("a", "b", "precision", "message"), [
    ("f16", "bf16", "ieee", r"dtype mismatch: a is f16 but b is bf16, a pair no dot instruction "
                            r"takes \(supported \(a, b\) pairs: (.*)\); cast one of them first"),
    ("f64", "f64", "ieee", r"no dot instruction for f64 operands \(supported \(a, b\) pairs: "
                           r"(.*)\); cast them first"),
    ("f16", "f16", "tf32", r"precision='tf32' applies to f32 operands only \(it rounds them to "
                           r"tf32 for the m16n8k8 tensor-core instruction\), not f16 and f16"),
    ("f32", "f32", "fast", r"precision must be one of \('ieee', 'tf32'\), got 'fast'"),
])
def test_dot_rule_refusals_say_what_is_supported(a, b, precision, message):
    with pytest.raises(ValueError, match=message) as info:
        dot_rule(a, b, precision)
    listed = re.fullmatch(message, str(info.value)).groups()
    assert listed in ((), (SUPPORTED,))


# -- the verifier ----------------------------------------------------------------------------------

I32 = dtype("i32")
A = Var("a", TensorType(dtype("f16"), ("m", "k"), "global"))


def tile(name: str, dt: str, *shape: int) -> Var:
    return Var(name, TensorType(dtype(dt), shape))


def dot_program(a: str, b: str, c: str, *, shapes=((16, 32), (32, 8), (16, 8)),
                **attrs) -> Kernel:
    """Three tiles filled with zeros and ``d = dot(x, y, acc) {attrs}`` at k.py:9:3."""
    x, y, acc = (tile(n, dt, *s) for n, dt, s in zip(("x", "y", "acc"), (a, b, c), shapes))
    body = [Instr.make(v, "full", [Const(0 if v.type.dtype.is_integer else 0.0, v.type.dtype)],
                       shape=v.type.shape, dtype=v.type.dtype) for v in (x, y, acc)]
    body.append(Instr.make(tile("d", c, *shapes[2]), "dot", [x, y, acc], Loc("k.py", 9, 3),
                           **attrs))
    g = Var("g", ScalarType(I32))
    return Kernel("k", (A,), (), (Instr.make(g, "cdiv", [Var("m", ScalarType(I32)),
                                                         Const(16, I32)]),), (g,), 4, tuple(body))


@pytest.mark.parametrize(("a", "b", "precision"), sorted(EXPECTED))
def test_every_rule_verifies_with_each_of_its_accumulators(a, b, precision):
    for acc in EXPECTED[a, b, precision][0]:
        verify(dot_program(a, b, acc, precision=precision))
    if precision == "ieee":  # the attribute is optional; "ieee" is its default
        verify(dot_program(a, b, EXPECTED[a, b, precision][0][0]))


HEAD = r"`%d: tile<\w+\[16, 8\]> = dot\(%x, %y, %acc\)( \{precision = .*\})?` at k.py:9:3: dot: "
REFUSALS = [
    (("f16", "bf16", "f32"), {}, r"dtype mismatch: a is f16 but b is bf16, a pair no dot "
                                 r"instruction takes \(supported .*\); cast one of them first",
     "operand 1: %y"),
    (("f16", "f32", "f32"), {}, r"dtype mismatch: a is f16 but b is f32, a pair", "operand 1: %y"),
    (("i8", "f8e4m3fn", "i32"), {}, r"dtype mismatch: a is i8 but b is f8e4m3fn, a pair",
     "operand 1: %y"),
    (("f64", "f64", "f64"), {}, r"no dot instruction for f64 operands \(supported .*\); cast them "
                                r"first", "operand 0: %x"),
    (("i32", "i32", "i32"), {}, r"no dot instruction for i32 operands", "operand 0: %x"),
    (("u4", "u4", "i32"), {}, r"no dot instruction for u4 operands", "operand 0: %x"),
    (("f16", "f16", "f32"), {"precision": "tf32"}, r"precision='tf32' applies to f32 operands "
                                                   r"only .*, not f16 and f16", None),
    (("f32", "f16", "f32"), {"precision": "tf32"}, r"precision='tf32' applies to f32 operands "
                                                   r"only .*, not f32 and f16", None),
    (("f32", "f32", "f32"), {"precision": "fast"}, r"precision must be one of \('ieee', 'tf32'\), "
                                                   r"got 'fast'", None),
    (("f32", "f32", "f32"), {"precision": 8}, r"precision must be one of \('ieee', 'tf32'\), "
                                              r"got 8", None),
    (("f16", "f16", "i32"), {}, r"a f16 dot accumulates in f32 or f16, not i32", "operand 2: %acc"),
    (("bf16", "bf16", "f16"), {}, r"a bf16 dot accumulates in f32, not f16", "operand 2: %acc"),
    (("i8", "u8", "f32"), {}, r"a i8 x u8 dot accumulates in i32, not f32", "operand 2: %acc"),
    (("f8e5m2", "f8e4m3fn", "f16"), {}, r"a f8e5m2 x f8e4m3fn dot accumulates in f32, not f16",
     "operand 2: %acc"),
    (("f32", "f32", "f16"), {"precision": "tf32"}, r"a f32 dot accumulates in f32, not f16",
     "operand 2: %acc"),
    (("f32", "f32", "bf16"), {}, r"a f32 dot accumulates in f32, not bf16", "operand 2: %acc"),
]


@pytest.mark.parametrize(("dtypes", "attrs", "message", "operand"), REFUSALS,
                         ids=[f"{'x'.join(d)}-{a}" for d, a, _, _ in REFUSALS])
def test_every_refusal_names_the_instruction_the_reason_and_the_operand(dtypes, attrs, message,
                                                                        operand):
    suffix = rf" \({re.escape(operand)}\)" if operand else ""
    with pytest.raises(VerifyError, match=HEAD + message + ".*" + suffix + "$"):
        verify(dot_program(*dtypes, **attrs))
    if operand is None:
        with pytest.raises(VerifyError) as info:
            verify(dot_program(*dtypes, **attrs))
        assert "(operand" not in str(info.value)


@pytest.mark.parametrize(("shapes", "message", "operand"), [
    (((16, 32), (16, 8), (16, 8)), r"inner dimensions differ: a is \[16, 32\] and b is "
                                   r"\[16, 8\]", "operand 1: %y"),
    (((16, 32), (32, 8), (16, 16)), r"the accumulator is \[16, 16\] but a @ b is \[16, 8\]",
     "operand 2: %acc"),
    (((16, 32, 1), (32, 8), (16, 8)), r"operand a must be a 2-D tile, got shape \[16, 32, 1\]",
     "operand 0: %x"),
])
def test_shape_refusals(shapes, message, operand):
    head = HEAD.replace(r"\[16, 8\]", r"\[\d+, \d+\]")
    with pytest.raises(VerifyError, match=head + message + rf" \({re.escape(operand)}\)$"):
        verify(dot_program("i8", "u8", "i32", shapes=shapes))


def test_a_misspelt_attribute_is_refused():
    with pytest.raises(VerifyError, match=r"dot: unknown attribute 'precison'"):
        verify(dot_program("f32", "f32", "f32", precison="tf32"))
