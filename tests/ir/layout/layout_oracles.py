"""Test oracles and hypothesis strategies for the layout tests.

``reference_table`` evaluates a layout straight from its encoding (DESIGN §4, the docstring of
``tilevm.ir.layout.register``) with numpy's ``unravel_index``/``ravel_multi_index``; it shares no
code with the library. ``layouts`` draws arbitrary encodings, including ones that no product of
primitives expresses, with replications anywhere among the thread digits.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from tilevm.ir.layout import RegisterLayout


def group_modes(shape: tuple[int, ...], mode_shape: tuple[int, ...]) -> list[int]:
    """The dimension of each mode: modes fill dimensions in order, outer first."""
    dims, d, filled = [], 0, 1
    for m in mode_shape:
        while filled == shape[d]:
            d, filled = d + 1, 1
        filled *= m
        dims.append(d)
    return dims


def reference_table(layout: RegisterLayout) -> np.ndarray:
    """``table[t, s]``: the tile index (``rank`` ints) thread t holds in register slot s."""
    shape, modes = layout.shape, layout.mode_shape
    spatial, local = layout.spatial_modes, layout.local_modes
    s_sizes = [modes[e] if e >= 0 else -e for e in spatial]
    l_sizes = [modes[e] for e in local]
    nt, nl = math.prod(s_sizes), math.prod(l_sizes)
    # numpy 2.4's unravel_index/ravel_multi_index give wrong digits for multi-dimensional inputs
    # longer than its 8192-element iterator buffer, so every call here takes 1-D arrays.
    digit: dict[int, np.ndarray] = {}
    if s_sizes:
        for e, dg in zip(spatial, np.unravel_index(np.arange(nt), s_sizes)):
            if e >= 0:
                digit[e] = np.repeat(dg, nl)
    if l_sizes:
        for e, dg in zip(local, np.unravel_index(np.arange(nl), l_sizes)):
            digit[e] = np.tile(dg, nt)
    dims = group_modes(shape, modes)
    table = np.zeros((nt * nl, len(shape)), np.int64)
    for d in range(len(shape)):
        mine = [i for i in range(len(modes)) if dims[i] == d]
        if mine:
            table[:, d] = np.ravel_multi_index([digit[i] for i in mine], [modes[i] for i in mine])
    table = table.reshape(nt, nl, len(shape))
    return table


def same_mapping(a: RegisterLayout, b: RegisterLayout) -> bool:
    """Whether two layouts are the same function (thread, local) -> index."""
    if a.shape != b.shape or a.num_threads != b.num_threads or a.local_size != b.local_size:
        return False
    return bool(np.array_equal(reference_table(a), reference_table(b)))


@st.composite
def layouts(draw, rank: int | None = None, max_modes: int = 4, sizes=(2, 3, 4),
            max_replications: int = 2) -> RegisterLayout:
    """An arbitrary layout: modes dealt to dimensions, a random split and order of thread and
    register digits, and replications inserted among the thread digits."""
    if rank is None:
        rank = draw(st.integers(0, 3))
    n = draw(st.integers(0, max_modes if rank else 0))
    mode_shape = [draw(st.sampled_from(sizes)) for _ in range(n)]
    dims = sorted(draw(st.integers(0, rank - 1)) for _ in range(n)) if rank else []
    shape = [math.prod(m for m, d in zip(mode_shape, dims) if d == k) for k in range(rank)]
    order = draw(st.permutations(range(n)))
    cut = draw(st.integers(0, n))
    spatial, local = list(order[:cut]), list(order[cut:])
    for _ in range(draw(st.integers(0, max_replications))):
        spatial.insert(draw(st.integers(0, len(spatial))), -draw(st.sampled_from((2, 3))))
    return RegisterLayout(shape, mode_shape, spatial, local)


def split_mode(layout: RegisterLayout, mode: int, outer: int) -> RegisterLayout:
    """The same mapping with ``mode`` written as two adjacent modes ``outer`` and the rest."""
    modes = list(layout.mode_shape)
    size = modes[mode]
    modes[mode : mode + 1] = [outer, size // outer]

    def renumber(chain: tuple[int, ...]) -> list[int]:
        out = []
        for e in chain:
            if e == mode:
                out += [mode, mode + 1]
            else:
                out.append(e + 1 if e > mode else e)
        return out

    return RegisterLayout(layout.shape, modes, renumber(layout.spatial_modes),
                          renumber(layout.local_modes))
