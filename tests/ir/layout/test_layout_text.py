"""Layouts as text: ``repr`` is an expression of the algebra that ``parse_layout`` reads back
(and the same for shared and global layouts); the picture shows who holds each element."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from layout_oracles import layouts, same_mapping

from tilevm.ir.layout import (
    GlobalLayout,
    LayoutSyntaxError,
    RegisterLayout,
    SharedLayout,
    Swizzle,
    column_local,
    concat,
    left_divide,
    local,
    parse_global_layout,
    parse_layout,
    parse_shared_layout,
    permute,
    reduce,
    replicated,
    spatial,
)


@settings(max_examples=200, deadline=None)
@given(layouts(max_modes=5))
def test_repr_parses_back_to_the_same_layout(layout):
    text = repr(layout)
    back = parse_layout(text)
    assert back == layout
    assert same_mapping(back, layout)
    assert repr(back) == text


def test_products_print_as_products():
    c = local(2, 1) * spatial(8, 4) * local(1, 2)
    assert repr(c) == "local(2, 1) * spatial(8, 4) * local(1, 2)"
    assert repr(column_local(2, 2) * spatial(8, 4) * local(1, 2)) == \
        "column_local(2, 2) * spatial(8, 4) * local(1, 2)"
    assert repr(spatial(8, 1) * replicated(4)) == "spatial(8, 1) * replicated(4)"
    assert repr(replicated(4) * local(1, 1)) == "replicated(4) * local(1, 1)"
    assert repr(local()) == "local()"


def test_a_dimension_whose_threads_run_backwards_prints_as_a_reshape():
    # Thread t holds element 2 * (t % 2) + t // 2: no product of primitives says that.
    layout = RegisterLayout((4,), (2, 2), (1, 0), ())
    assert [layout.coords(t, 0) for t in range(4)] == [(0,), (2,), (1,), (3,)]
    assert repr(layout).startswith("reshape(")
    assert parse_layout(repr(layout)) == layout


def test_every_operation_parses():
    assert parse_layout("reduce(spatial(3, 4), (0,))") == reduce(spatial(3, 4), [0])
    assert parse_layout("reduce(spatial(3, 4), [1], keepdims=True)") == \
        reduce(spatial(3, 4), [1], keepdims=True)
    assert parse_layout("permute(local(2, 3), (1, 0))") == permute(local(2, 3), (1, 0))
    assert parse_layout("concat(spatial(2), local(3))") == concat(spatial(2), local(3))
    assert parse_layout("left_divide(spatial(4, 2) * local(2, 2), spatial(4, 2))") == \
        left_divide(spatial(4, 2) * local(2, 2), spatial(4, 2))
    assert parse_layout("(spatial(4, 2) * local(2, 2)) / local(2, 2)") == spatial(4, 2)
    assert parse_layout("reshape(spatial(6), (2, 3))") == spatial(2, 3)


@pytest.mark.parametrize("text, words", [
    ("spatial(2) + local(2)", "not part of the layout algebra"),
    ("eval('1')", "unknown layout function"),
    ("spatial(x)", "expected an integer constant"),
    ("spatial(2", "not a layout expression"),
    ("spatial(2.5)", "expected an integer constant"),
    ("spatial(a=2)", "takes no keywords"),
    ("reduce(spatial(2))", "bad arguments to reduce"),
])
def test_parse_errors_name_the_offending_text(text, words):
    with pytest.raises(LayoutSyntaxError, match=words):
        parse_layout(text)


def test_picture_shows_thread_and_register_of_each_element():
    picture = (local(2, 1) * spatial(8, 4) * local(1, 2)).picture().splitlines()
    assert picture[0].startswith("local(2, 1) * spatial(8, 4) * local(1, 2)")
    rows = [[c.strip() for c in line.strip("| ").split("|")] for line in picture[1:]]
    assert len(rows) == 16 and all(len(r) == 8 for r in rows)
    # PTX ISA, m16n8k16 C fragment: c_i of lane n sits at row n // 4 + 8 * (i // 2),
    # column 2 * (n % 4) + i % 2.
    assert rows[0][:3] == ["0:0", "0:1", "1:0"]
    assert rows[9][5] == "6:3"
    replicated_rows = (spatial(2, 1) * replicated(2) * local(1, 2)).picture().splitlines()
    assert replicated_rows[1].split("|")[1:3] == [" 0,1:0 ", " 0,1:1 "]
    assert "[1, :, :]" in local(2, 2, 2).picture()


shared_layouts = st.builds(
    lambda shape, direction, swizzle: SharedLayout(
        shape, [s * 3 for s in SharedLayout.row_major(*shape).strides][::direction], swizzle),
    st.lists(st.integers(1, 64), min_size=1, max_size=3),
    st.sampled_from((1, -1)),
    st.one_of(st.none(), st.builds(Swizzle, st.integers(0, 3), st.integers(0, 2),
                                   st.integers(3, 5))))


@settings(max_examples=100, deadline=None)
@given(shared_layouts)
def test_shared_layout_repr_parses_back(layout):
    assert parse_shared_layout(repr(layout)) == layout


def test_shared_layout_text_and_errors():
    text = "SharedLayout((64, 64), strides=(64, 1), swizzle=Swizzle(3, 0, 3))"
    assert repr(parse_shared_layout(text)) == text
    assert parse_shared_layout("SharedLayout((8,), (1,))") == SharedLayout((8,), (1,))
    with pytest.raises(LayoutSyntaxError, match="expected SharedLayout"):
        parse_shared_layout("spatial(8)")
    with pytest.raises(LayoutSyntaxError, match="expected Swizzle"):
        parse_shared_layout("SharedLayout((8,), (1,), swizzle=open(3, 0, 3))")


@pytest.mark.parametrize("layout", [
    GlobalLayout(("m", "k")),
    GlobalLayout(("m", 64), strides=("ld", 1)),
    GlobalLayout(("(n + 7) // 8", 3, "b")),
])
def test_global_layout_repr_parses_back(layout):
    assert parse_global_layout(repr(layout)) == layout
