"""The algebraic laws of register layouts (DESIGN §4), each checked against the layouts'
reference evaluation (``layout_oracles.reference_table``), not only against ``==``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from layout_oracles import layouts, reference_table, same_mapping, split_mode

from tilevm.ir.layout import (
    LayoutDivisionError,
    RegisterLayout,
    column_spatial,
    concat,
    left_divide,
    local,
    mma_fragment,
    permute,
    reduce,
    replicated,
    reshape,
    spatial,
)

SETTINGS = settings(max_examples=120, deadline=None)
small = {"max_modes": 2, "sizes": (2, 3), "max_replications": 1}


@st.composite
def same_rank(draw, count: int, **kwargs) -> tuple[RegisterLayout, ...]:
    rank = draw(st.integers(0, 3))
    return tuple(draw(layouts(rank=rank, **kwargs)) for _ in range(count))


def compose_by_definition(a: RegisterLayout, b: RegisterLayout) -> np.ndarray:
    """The table of ``a * b`` from the definition of compose: thread = ta * nb + tb,
    local = la * lb_size + lb, index = index_a * b.shape + index_b."""
    ta, tb = reference_table(a), reference_table(b)
    out = np.zeros((a.num_threads * b.num_threads, a.local_size * b.local_size, a.rank), np.int64)
    for t_a, l_a, t_b, l_b in itertools.product(range(a.num_threads), range(a.local_size),
                                                range(b.num_threads), range(b.local_size)):
        out[t_a * b.num_threads + t_b, l_a * b.local_size + l_b] = \
            ta[t_a, l_a] * np.array(b.shape, np.int64) + tb[t_b, l_b]
    return out


@SETTINGS
@given(same_rank(2, **small))
def test_compose_is_the_per_dimension_kronecker_product(pair):
    a, b = pair
    product = a * b
    assert product.shape == tuple(x * y for x, y in zip(a.shape, b.shape))
    assert np.array_equal(reference_table(product), compose_by_definition(a, b))


@SETTINGS
@given(same_rank(3, max_modes=2, sizes=(2, 3), max_replications=1))
def test_compose_is_associative(triple):
    a, b, c = triple
    left, right = (a * b) * c, a * (b * c)
    assert left == right
    assert same_mapping(left, right)


def test_a_rank_zero_layout_composes_with_any_rank():
    assert spatial(4, 2) * replicated(2) == spatial(4, 2) * RegisterLayout((1, 1), (), (-2,), ())
    with pytest.raises(ValueError, match="ranks differ"):
        spatial(4) * spatial(2, 2)


@SETTINGS
@given(layouts())
def test_canonical_form_is_idempotent_and_keeps_the_mapping(layout):
    once = layout.canonical()
    twice = once.canonical()
    parts = lambda x: (x.shape, x.mode_shape, x.spatial_modes, x.local_modes)  # noqa: E731
    assert parts(once) == parts(twice)
    assert same_mapping(layout, once)
    assert len(once.mode_shape) <= len(layout.mode_shape)


@SETTINGS
@given(layouts(), st.data())
def test_splitting_a_mode_changes_nothing(layout, data):
    splittable = [i for i, m in enumerate(layout.mode_shape) if m == 4]
    assume(splittable)
    split = split_mode(layout, data.draw(st.sampled_from(splittable)), 2)
    assert split == layout and hash(split) == hash(layout)
    assert same_mapping(split, layout)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_equality_is_equality_of_mappings(data):
    # Two layouts over the same modes, with independently drawn digit orders: equal exactly
    # when they map every (thread, local) to the same index.
    rank = data.draw(st.integers(1, 2))
    first = data.draw(layouts(rank=rank, max_modes=3, sizes=(2, 4), max_replications=1))
    n = len(first.mode_shape)
    order = data.draw(st.permutations(range(n)))
    cut = len([e for e in first.spatial_modes if e >= 0])
    spatial_modes = list(order[:cut])
    for e in first.spatial_modes:
        if e < 0:
            spatial_modes.insert(data.draw(st.integers(0, len(spatial_modes))), e)
    second = RegisterLayout(first.shape, first.mode_shape, spatial_modes, order[cut:])
    assert (first == second) == same_mapping(first, second)


@SETTINGS
@given(same_rank(2, **small))
def test_divide_undoes_compose(pair):
    a, b = pair
    assert (a * b) / b == a
    assert same_mapping((a * b) / b, a)


@SETTINGS
@given(same_rank(2, **small))
def test_left_divide_undoes_compose(pair):
    a, b = pair
    assert left_divide(a * b, a) == b
    assert same_mapping(left_divide(a * b, a), b)


def functional_quotient_exists(layout: RegisterLayout, divisor: RegisterLayout) -> bool:
    """Brute force: whether some map q(t, s) makes layout(t*nb + tb, s*lb + s') equal
    q(t, s) * divisor.shape + divisor(tb, s'). Since divisor(0, 0) = 0, q is forced."""
    if any(s % d for s, d in zip(layout.shape, divisor.shape)):
        return False
    if layout.num_threads % divisor.num_threads or layout.local_size % divisor.local_size:
        return False
    whole, part = reference_table(layout), reference_table(divisor)
    nb, lb = divisor.num_threads, divisor.local_size
    step = np.array(divisor.shape, np.int64)
    for t, slot in itertools.product(range(layout.num_threads // nb),
                                     range(layout.local_size // lb)):
        base = whole[t * nb, slot * lb]
        if np.any(base % step):
            return False
        block = whole[t * nb : (t + 1) * nb, slot * lb : (slot + 1) * lb]
        if not np.array_equal(block, base + part):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(same_rank(2, max_modes=3, sizes=(2, 4), max_replications=1))
def test_divide_raises_exactly_when_no_quotient_exists(pair):
    layout, divisor = pair
    try:
        quotient = layout / divisor
    except LayoutDivisionError as e:
        assert "is not a factor of" in str(e)
        assert repr(divisor) in str(e) and repr(layout) in str(e)
        assert not functional_quotient_exists(layout, divisor)
    else:
        assert same_mapping(quotient * divisor, layout)


def test_divide_errors_name_the_reason():
    with pytest.raises(LayoutDivisionError, match="least significant thread digits"):
        spatial(8, 4) / spatial(2, 2)
    with pytest.raises(LayoutDivisionError, match="not a multiple of 4"):
        spatial(6) / spatial(4)
    with pytest.raises(LayoutDivisionError, match="registers per thread"):
        spatial(8, 4) / local(1, 2)
    with pytest.raises(LayoutDivisionError, match="most significant"):
        left_divide(spatial(8, 4), spatial(2, 2))


def test_division_selects_mma_tiles():
    # A warp tile of 2x4 m16n8 accumulators: the quotient by the mma C fragment is the loop.
    c = mma_fragment("m16n8k16", "f16", "c")
    warp_tile = local(2, 4) * c
    assert warp_tile.shape == (32, 32)
    assert warp_tile / c == local(2, 4)
    # Threads spread over the tile the other way round do not divide.
    with pytest.raises(LayoutDivisionError):
        (c * local(2, 4)) / c


@SETTINGS
@given(layouts(), st.data())
def test_reduce_turns_reduced_spatial_modes_into_replication(layout, data):
    assume(layout.rank)
    dims = data.draw(st.lists(st.integers(0, layout.rank - 1), unique=True, max_size=layout.rank))
    keepdims = data.draw(st.booleans())
    reduced = reduce(layout, dims, keepdims=keepdims)
    assert reduced.num_threads == layout.num_threads

    def project(index):
        if keepdims:
            return tuple(0 if d in dims else i for d, i in enumerate(index))
        return tuple(i for d, i in enumerate(index) if d not in dims)

    # Thread t holds a reduced element exactly when it held some element projecting onto it.
    table, out = reference_table(layout), reference_table(reduced)
    before = {(t, project(tuple(table[t, slot]))) for t in range(layout.num_threads)
              for slot in range(layout.local_size)}
    after = {(t, tuple(out[t, slot])) for t in range(reduced.num_threads)
             for slot in range(reduced.local_size)}
    assert before == after
    gone = [m for m, d in zip(layout.mode_shape, layout.mode_dims) if d in dims]
    lost_threads = int(np.prod([m for i, m in enumerate(layout.mode_shape)
                                if layout.mode_dims[i] in dims and i in layout.spatial_modes]))
    assert reduced.replication == layout.replication * lost_threads
    assert reduced.local_size * int(np.prod(gone)) == layout.local_size * lost_threads


def test_reduce_example_from_the_design():
    assert reduce(spatial(3, 4), [0]) == replicated(3) * spatial(4)
    assert reduce(spatial(3, 4), [1], keepdims=True) == spatial(3, 1) * replicated(4)
    with pytest.raises(ValueError, match="dimension 2"):
        reduce(spatial(3, 4), [2])


@SETTINGS
@given(layouts(), st.data())
def test_permute_moves_indices_like_numpy_transpose(layout, data):
    order = data.draw(st.permutations(range(layout.rank)))
    moved = permute(layout, order)
    assert moved.shape == tuple(layout.shape[d] for d in order)
    assert np.array_equal(reference_table(moved), reference_table(layout)[:, :, list(order)])


@SETTINGS
@given(layouts(), st.data())
def test_reshape_moves_indices_like_numpy_reshape(layout, data):
    sizes = [p for p in range(1, layout.size + 1) if layout.size % p == 0]
    first = data.draw(st.sampled_from(sizes))
    new_shape = (first, layout.size // first)
    try:
        moved = reshape(layout, new_shape)
    except ValueError as e:
        assert "straddles" in str(e)
        return
    pairs = layout.num_threads * layout.local_size
    table = reference_table(layout).reshape(pairs, layout.rank)  # 1-D inputs: see layout_oracles
    flat = np.ravel_multi_index(tuple(table.T), layout.shape) if layout.rank else \
        np.zeros(len(table), np.int64)
    expected = np.stack(np.unravel_index(flat, new_shape), axis=-1).reshape(
        layout.num_threads, layout.local_size, 2)
    assert np.array_equal(reference_table(moved), expected)


def test_reshape_splits_merged_modes_and_refuses_impossible_cuts():
    assert reshape(spatial(6), (2, 3)) == spatial(2, 3)
    assert reshape(column_spatial(4, 2), (8,)) == RegisterLayout((8,), (4, 2), (1, 0), ())
    with pytest.raises(ValueError, match="straddles"):
        reshape(spatial(4) * local(3), (6, 2))
    with pytest.raises(ValueError, match="cannot reshape"):
        reshape(spatial(4), (3,))


@SETTINGS
@given(layouts(max_modes=2), layouts(max_modes=2))
def test_concat_is_the_outer_product(a, b):
    joined = concat(a, b)
    assert joined.shape == a.shape + b.shape
    ta, tb, tj = reference_table(a), reference_table(b), reference_table(joined)
    for t_a, l_a, t_b, l_b in itertools.product(range(a.num_threads), range(a.local_size),
                                                range(b.num_threads), range(b.local_size)):
        got = tj[t_a * b.num_threads + t_b, l_a * b.local_size + l_b]
        assert tuple(got) == tuple(ta[t_a, l_a]) + tuple(tb[t_b, l_b])
