"""Register layouts as maps between (thread, local) and tile indices: the primitives against
numpy's index orders, every layout against the encoding's reference evaluation, and the inverse
map (holders) against the forward one."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from layout_oracles import layouts, reference_table

from tilevm.ir.layout import (
    RegisterLayout,
    column_local,
    column_spatial,
    local,
    replicated,
    spatial,
)

small_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=60, deadline=None)
@given(small_shapes)
def test_primitives_follow_numpy_index_orders(shape):
    n = int(np.prod(shape))
    for make, order, threads in ((spatial, "C", True), (column_spatial, "F", True),
                                 (local, "C", False), (column_local, "F", False)):
        layout = make(*shape)
        assert layout.shape == shape
        assert (layout.num_threads, layout.local_size) == ((n, 1) if threads else (1, n))
        for k in range(n):
            expected = tuple(int(i) for i in np.unravel_index(k, shape, order=order)) \
                if shape else ()
            got = layout.coords(k, 0) if threads else layout.coords(0, k)
            assert got == expected, (make.__name__, shape, k)


def test_replicated_holds_one_element_in_every_thread():
    layout = replicated(4)
    assert (layout.shape, layout.num_threads, layout.local_size) == ((), 4, 1)
    assert layout.holders(()) == [(t, 0) for t in range(4)]
    rows = spatial(8, 1) * replicated(4)  # each row held by 4 consecutive threads
    assert rows.holders((3, 0)) == [(12, 0), (13, 0), (14, 0), (15, 0)]


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_coords_match_the_reference_evaluation(layout):
    table = reference_table(layout)
    for t, slot in itertools.product(range(layout.num_threads), range(layout.local_size)):
        assert layout.coords(t, slot) == tuple(int(x) for x in table[t, slot])
    vectorized = layout.thread_local_to_index()
    assert len(vectorized) == layout.rank
    for d, index in enumerate(vectorized):
        assert index.shape == (layout.num_threads, layout.local_size)
        assert np.array_equal(index, table[:, :, d])


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_coords_and_holders_are_mutually_inverse(layout):
    seen = set()
    for index in itertools.product(*(range(s) for s in layout.shape)):
        held = layout.holders(index)
        assert held == sorted(held)
        assert len(held) == layout.replication
        for t, slot in held:
            assert layout.coords(t, slot) == index
        seen.update(held)
    every = set(itertools.product(range(layout.num_threads), range(layout.local_size)))
    for t, slot in every:
        assert (t, slot) in layout.holders(layout.coords(t, slot))
    # Every (thread, local) holds exactly one element, so the holders partition them.
    assert seen == every


@settings(max_examples=100, deadline=None)
@given(layouts(max_replications=0))
def test_a_layout_without_replication_is_a_bijection(layout):
    pairs = list(itertools.product(range(layout.num_threads), range(layout.local_size)))
    images = {layout.coords(t, slot) for t, slot in pairs}
    assert len(images) == len(pairs) == layout.size
    assert images == set(itertools.product(*(range(s) for s in layout.shape)))


@settings(max_examples=100, deadline=None)
@given(layouts())
def test_scatter_and_gather_with_numpy_fancy_indexing(layout):
    tile = np.arange(layout.size).reshape(layout.shape)
    if layout.rank == 0:
        # numpy reads tile[()] as the scalar itself, so a rank-0 tile is broadcast instead.
        regs = np.broadcast_to(tile, (layout.num_threads, layout.local_size))
    else:
        regs = tile[layout.thread_local_to_index()]
    assert regs.shape == (layout.num_threads, layout.local_size)
    thread, slot = layout.index_to_thread_local()
    assert np.array_equal(regs[thread, slot], tile)
    for index in itertools.product(*(range(s) for s in layout.shape)):
        assert (int(thread[index]), int(slot[index])) == layout.holders(index)[0]
    if layout.rank:
        back = np.full(layout.shape, -1)
        back[layout.thread_local_to_index()] = regs
        assert np.array_equal(back, tile)


def test_layouts_are_immutable_hashable_and_picklable():
    a = local(2, 1) * spatial(8, 4) * local(1, 2)
    with pytest.raises(AttributeError):
        a.shape = (1,)
    with pytest.raises(ValueError):
        a.thread_local_to_index()[0][0, 0] = 7
    b = pickle.loads(pickle.dumps(a))
    assert a == b and hash(a) == hash(b)
    assert len({a, b, spatial(16, 8)}) == 2


def test_constructor_and_queries_reject_bad_input_by_name():
    with pytest.raises(ValueError, match="mode_shape"):
        RegisterLayout((4,), (3,), (0,), ())
    with pytest.raises(ValueError, match="exactly once"):
        RegisterLayout((4,), (2, 2), (0,), (0,))
    with pytest.raises(ValueError, match="shape"):
        RegisterLayout((0,), (), (), ())
    with pytest.raises(TypeError, match="shape"):
        RegisterLayout((2.0,), (2,), (0,), ())
    layout = spatial(4, 2)
    with pytest.raises(ValueError, match="thread 8"):
        layout.coords(8, 0)
    with pytest.raises(ValueError, match="local 1"):
        layout.coords(0, 1)
    with pytest.raises(ValueError, match="index"):
        layout.holders((4, 0))
    with pytest.raises(ValueError, match="must be positive"):
        spatial(0, 2)
    with pytest.raises(ValueError, match="replicated"):
        replicated(0)


def test_size_one_modes_are_dropped():
    layout = RegisterLayout((4, 1), (1, 4, 1), (1,), (0, 2))
    assert layout.mode_shape == (4,)
    assert layout == spatial(4, 1)
