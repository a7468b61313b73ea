"""The register layouts of PTX warp instructions' fragments, written in the layout algebra.

The local index of every fragment layout is the PTX element index (``a0…a7`` in the ISA's
figures), so elements ``2r, 2r+1`` share 32-bit register ``r`` for 16-bit types and ``4r…4r+3``
for 8-bit types. Threads are lanes of one warp. Coordinates are (row, column) of the operand as
the ISA draws it: A is M×K, B is K×N, C/D is M×N.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.ir.layout.algebra import column_local, column_spatial, local, spatial
from tilevm.ir.layout.register import RegisterLayout

# PTX ISA "Matrix Fragments for mma.m16n8k8", "... for mma.m16n8k16 with floating point type" and
# "... for mma.m16n8k32": groupID = lane >> 2 indexes rows (of A and C) or columns (of B),
# threadID_in_group = lane % 4 indexes the inner K (or N) singles/pairs/quads, and the element
# index runs over (K half, M half, inner).
_ELEMENTS = {"m16n8k8": 1, "m16n8k16": 2, "m16n8k32": 4}  # consecutive K elements per register
_DTYPES = {
    "m16n8k8": {"tf32": 80},
    "m16n8k16": {"f16": 80, "bf16": 80},
    "m16n8k32": {"s8": 80, "u8": 80, "e4m3": 89, "e5m2": 89},
}
_ALIASES = {"i8": "s8", "f8e4m3": "e4m3", "f8e4m3fn": "e4m3", "f8e5m2": "e5m2"}


def _mma_key(shape: str, dtype_name: str) -> tuple[str, str]:
    if shape not in _DTYPES:
        raise ValueError(f"mma shape {shape!r} is not one of {sorted(_DTYPES)}")
    name = _ALIASES.get(dtype_name, dtype_name)
    if name not in _DTYPES[shape]:
        raise ValueError(f"mma {shape} does not take dtype {dtype_name!r}; it takes "
                         f"{sorted(_DTYPES[shape])}")
    return shape, name


def mma_min_sm(shape: str, dtype_name: str) -> int:
    """The lowest SM version with ``mma.sync`` of this shape and input type (89 for fp8, else
    80)."""
    shape, name = _mma_key(shape, dtype_name)
    return _DTYPES[shape][name]


def mma_fragment(shape: str, dtype_name: str, operand: str) -> RegisterLayout:
    """The fragment layout of operand ``"a"``, ``"b"`` or ``"c"`` (C and D share it) of
    ``mma.sync.aligned.<shape>.row.col`` with input type ``dtype_name``.

    Shapes and types: ``m16n8k8`` with ``tf32``; ``m16n8k16`` with ``f16``/``bf16``;
    ``m16n8k32`` with ``s8``/``u8`` (sm_80+) and ``e4m3``/``e5m2`` (sm_89+, see
    ``mma_min_sm``). tilevm's names ``i8``, ``f8e4m3fn``, ``f8e5m2`` are accepted too. A and B
    of mixed types (``s8`` x ``u8``, ``e4m3`` x ``e5m2``) have the fragments of their width. The
    C fragment is the same for every accumulator type: an ``f16`` accumulator holds elements
    ``2r, 2r+1`` in the halves of register ``r`` at the coordinates an ``f32`` one holds them.
    """
    shape, _ = _mma_key(shape, dtype_name)
    inner = _ELEMENTS[shape]
    if operand == "a":
        # a_i: K half = i // (2*inner), M half = (i // inner) % 2, inner K element = i % inner.
        return column_local(2, 2) * spatial(8, 4) * local(1, inner)
    if operand == "b":
        # b_i: K half = i // inner, inner K element = i % inner; N = groupID.
        return local(2, 1) * column_spatial(4, 8) * local(inner, 1)
    if operand == "c":
        return local(2, 1) * spatial(8, 4) * local(1, 2)
    raise ValueError(f"mma operand must be 'a', 'b' or 'c', got {operand!r}")


def _arrangement(num: int, arrangement: RegisterLayout | Sequence[Sequence[int]] | None
                 ) -> RegisterLayout:
    if arrangement is None:
        # mma-A order: down the rows first, then along K.
        return {1: local(1, 1), 2: local(2, 1), 4: column_local(2, 2)}[num]
    if isinstance(arrangement, RegisterLayout):
        layout = arrangement
    else:
        blocks = [tuple(int(x) for x in b) for b in arrangement]
        if any(len(b) != 2 or min(b) < 0 for b in blocks):
            raise ValueError(f"ldmatrix arrangement {arrangement!r} must list (row block, "
                             f"column block) pairs")
        rows = max((r for r, _ in blocks), default=0) + 1
        cols = max((c for _, c in blocks), default=0) + 1
        row_major = [(r, c) for r in range(rows) for c in range(cols)]
        column_major = [(r, c) for c in range(cols) for r in range(rows)]
        if blocks == row_major:
            layout = local(rows, cols)
        elif blocks == column_major:
            layout = column_local(rows, cols)
        else:
            raise ValueError(f"ldmatrix arrangement {arrangement!r} must enumerate its grid of "
                             f"8x8 tiles row-major or column-major")
    if layout.rank != 2 or layout.num_threads != 1 or layout.local_size != num:
        raise ValueError(f"ldmatrix arrangement {layout!r} must be a rank-2 layout of one thread "
                         f"holding {num} matrices")
    return layout


def ldmatrix_fragment(num: int = 4, trans: bool = False,
                      arrangement: RegisterLayout | Sequence[Sequence[int]] | None = None
                      ) -> RegisterLayout:
    """The register layout that ``ldmatrix.sync.aligned.m8n8.x{num}{.trans}.b16`` produces.

    Coordinates are those of the tile in shared memory whose rows the lanes address: lanes
    ``8j … 8j+7`` give the addresses of rows 0…7 of matrix ``j``, and matrix ``j`` lands in
    32-bit register ``j`` (local elements ``2j, 2j+1``). ``arrangement`` says which 8×8 tile of
    the operand each matrix is: a rank-2 layout of one thread whose local index is the matrix, or a
    list of (row block, column block) per matrix; by default the mma-A order (rows first, then K),
    so that ``ldmatrix_fragment(4)`` equals the m16n8k16 A fragment.
    """
    if num not in (1, 2, 4):
        raise ValueError(f"ldmatrix num must be 1, 2 or 4, got {num!r}")
    # Without .trans lane l holds row l // 4, columns 2 (l % 4) + {0, 1}; with .trans the matrix
    # is read column-major, so lane l holds column l // 4, rows 2 (l % 4) + {0, 1}.
    matrix = column_spatial(4, 8) * local(2, 1) if trans else spatial(8, 4) * local(1, 2)
    return _arrangement(num, arrangement) * matrix


def ldmatrix_row_starts(num: int = 4,
                        arrangement: RegisterLayout | Sequence[Sequence[int]] | None = None
                        ) -> list[tuple[int, int]]:
    """For lanes ``0 … 8·num-1``, the tile coordinate (row, column) where the 8-element row
    whose address the lane gives starts."""
    if num not in (1, 2, 4):
        raise ValueError(f"ldmatrix num must be 1, 2 or 4, got {num!r}")
    grid = _arrangement(num, arrangement)
    starts = []
    for lane in range(8 * num):
        block_row, block_col = grid.coords(0, lane // 8)
        starts.append((block_row * 8 + lane % 8, block_col * 8))
    return starts
