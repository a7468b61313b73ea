"""The register-layout algebra: primitives, compose, divide and the shape operations.

``A * B`` (compose) is the per-dimension Kronecker product: B's tile is repeated in A's pattern, so
``index = index_A * B.shape + index_B``, ``thread = thread_A * B.num_threads + thread_B`` and
``local = local_A * B.local_size + local_B``. ``L / B`` and ``left_divide(L, A)`` undo it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.ir.layout.register import RegisterLayout, _ints, _prod

# ---- primitives -------------------------------------------------------------------------------


def _primitive(name: str, shape: Sequence[int], spatial_kind: bool, column: bool) -> RegisterLayout:
    shape = _ints(name, shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"{name}{shape}: sizes must be positive")
    order = list(range(len(shape)))
    if column:
        order.reverse()
    if spatial_kind:
        return RegisterLayout(shape, shape, order, [])
    return RegisterLayout(shape, shape, [], order)


def spatial(*shape: int) -> RegisterLayout:
    """One element per thread; thread ``t`` holds the element whose row-major position is ``t``."""
    return _primitive("spatial", shape, True, False)


def column_spatial(*shape: int) -> RegisterLayout:
    """One element per thread, threads in column-major order (the first dimension varies
    fastest)."""
    return _primitive("column_spatial", shape, True, True)


def local(*shape: int) -> RegisterLayout:
    """The whole tile in one thread; register ``i`` holds the element at row-major position
    ``i``."""
    return _primitive("local", shape, False, False)


def column_local(*shape: int) -> RegisterLayout:
    """The whole tile in one thread, registers in column-major order."""
    return _primitive("column_local", shape, False, True)


def replicated(times: int) -> RegisterLayout:
    """A rank-0 layout: ``times`` threads that all hold the one (scalar) element.

    A rank-0 layout composes with a layout of any rank, as if its shape were all ones:
    ``spatial(8, 1) * replicated(4)`` has each row held by 4 consecutive threads.
    """
    (times,) = _ints("replicated", (times,))
    if times < 1:
        raise ValueError(f"replicated({times}): times must be positive")
    return RegisterLayout((), (), (-times,), ())


# ---- a mutable working form ---------------------------------------------------------------


class _Parts:
    """A layout being taken apart: modes by id, per-dimension lists of ids, the two chains."""

    def __init__(self, layout: RegisterLayout) -> None:
        self.shape = list(layout.shape)
        self.size = dict(enumerate(layout.mode_shape))
        self.dim_of = dict(enumerate(layout.mode_dims))
        self.dims: list[list[int]] = [[] for _ in layout.shape]
        for i, d in enumerate(layout.mode_dims):
            self.dims[d].append(i)
        self.spatial = list(layout.spatial_modes)
        self.local = list(layout.local_modes)
        self.next_id = len(layout.mode_shape)

    def split(self, mode: int, outer: int) -> int:
        """Split ``mode`` into an outer part of size ``outer`` (a new id, returned) and an inner
        part (keeping the old id), adjacent in their dimension and in their chain."""
        new = self.next_id
        self.next_id += 1
        self.size[new] = outer
        self.size[mode] //= outer
        d = self.dim_of[mode]
        self.dim_of[new] = d
        self.dims[d].insert(self.dims[d].index(mode), new)
        chain = self.spatial if mode in self.spatial else self.local
        chain.insert(chain.index(mode), new)
        return new

    def build(self, shape: Sequence[int], dims: Sequence[Sequence[int]],
              spatial: Sequence[int], local: Sequence[int]) -> RegisterLayout:
        order = [m for ds in dims for m in ds]
        number = {m: i for i, m in enumerate(order)}
        return RegisterLayout(shape, [self.size[m] for m in order],
                              [number[e] if e >= 0 else e for e in spatial],
                              [number[e] for e in local])


def _expand(layout: RegisterLayout, before: int, after: int) -> RegisterLayout:
    """``layout`` with ``before`` leading and ``after`` trailing dimensions of size 1."""
    return RegisterLayout((1,) * before + layout.shape + (1,) * after, layout.mode_shape,
                          layout.spatial_modes, layout.local_modes)


def _same_rank(a: RegisterLayout, b: RegisterLayout,
               op: str) -> tuple[RegisterLayout, RegisterLayout]:
    if a.rank == b.rank:
        return a, b
    if a.rank == 0:
        return _expand(a, 0, b.rank), b
    if b.rank == 0:
        return a, _expand(b, 0, a.rank)
    raise ValueError(f"{op}: ranks differ: {a!r} has rank {a.rank}, {b!r} has rank {b.rank}")


# ---- compose and divide -------------------------------------------------------------------


def compose(outer: RegisterLayout, inner: RegisterLayout) -> RegisterLayout:
    """``outer * inner``: inner's tile repeated in outer's pattern (per-dimension Kronecker
    product). Ranks must agree, except that a rank-0 operand composes with any rank."""
    outer, inner = _same_rank(outer, inner, "compose")
    order = []  # (which, old mode index), dimension by dimension, outer's modes first
    for d in range(outer.rank):
        order += [(0, i) for i, md in enumerate(outer.mode_dims) if md == d]
        order += [(1, i) for i, md in enumerate(inner.mode_dims) if md == d]
    number = {key: n for n, key in enumerate(order)}
    sizes = [(outer, inner)[w].mode_shape[i] for w, i in order]

    def chain(which: int, entries: Sequence[int]) -> list[int]:
        return [number[(which, e)] if e >= 0 else e for e in entries]

    return RegisterLayout(
        [a * b for a, b in zip(outer.shape, inner.shape)], sizes,
        chain(0, outer.spatial_modes) + chain(1, inner.spatial_modes),
        chain(0, outer.local_modes) + chain(1, inner.local_modes))


class LayoutDivisionError(ValueError):
    """A layout is not a product with the given factor."""


def _division_failure(what: str, layout: RegisterLayout, factor: RegisterLayout,
                      reason: str) -> LayoutDivisionError:
    return LayoutDivisionError(f"{what}: {factor!r} is not a factor of {layout!r}: {reason}")


def _check_counts(what: str, layout: RegisterLayout, factor: RegisterLayout) -> None:
    for d, (s, f) in enumerate(zip(layout.shape, factor.shape)):
        if s % f:
            raise _division_failure(what, layout, factor,
                                    f"dimension {d} has size {s}, not a multiple of {f}")
    if layout.num_threads % factor.num_threads:
        raise _division_failure(what, layout, factor, f"{layout.num_threads} threads are not a "
                                f"multiple of {factor.num_threads}")
    if layout.local_size % factor.local_size:
        raise _division_failure(what, layout, factor, f"{layout.local_size} registers per thread "
                                f"are not a multiple of {factor.local_size}")


def divide(layout: RegisterLayout, divisor: RegisterLayout) -> RegisterLayout:
    """``layout / divisor``: the layout ``Q`` with ``Q * divisor == layout``.

    Raises ``LayoutDivisionError`` (a ``ValueError``) naming both layouts when there is none.
    This is how instructions are selected: a tile layout that divides by an instruction's fragment
    layout is covered by repeating the instruction, and the quotient is the loop.
    """
    what = "divide"
    layout, divisor = _same_rank(layout, divisor, what)
    _check_counts(what, layout, divisor)
    whole, part = layout.canonical(), divisor.canonical()
    p, q = _Parts(whole), _Parts(part)
    match: dict[int, int] = {}
    for d in range(whole.rank):
        mine, theirs = p.dims[d], q.dims[d]
        k = len(theirs)
        if not k:
            continue
        if len(mine) < k:
            raise _division_failure(what, layout, divisor, f"dimension {d} has too few modes")
        tail = mine[len(mine) - k:]
        for a, b in zip(tail[1:], theirs[1:]):
            if p.size[a] != q.size[b]:
                raise _division_failure(what, layout, divisor, f"dimension {d}: inner modes differ")
        first, size = tail[0], q.size[theirs[0]]
        if p.size[first] % size:
            raise _division_failure(what, layout, divisor, f"dimension {d}: mode {p.size[first]} "
                                    f"does not end in a factor {size}")
        if p.size[first] != size:
            p.split(first, p.size[first] // size)
        match.update(zip(theirs, tail))
    spatial_start = _match_suffix(what, layout, divisor, p.spatial, q.spatial, match, True)
    local_start = _match_suffix(what, layout, divisor, p.local, q.local, match, False)
    kept = set(match.values())
    quotient = p.build([a // b for a, b in zip(whole.shape, part.shape)],
                       [[m for m in ms if m not in kept] for ms in p.dims],
                       p.spatial[:spatial_start], p.local[:local_start])
    if compose(quotient, divisor) != layout:
        raise _division_failure(what, layout, divisor, "the remaining modes do not compose back")
    return quotient


def _match_suffix(what: str, layout: RegisterLayout, factor: RegisterLayout, mine: list[int],
                  theirs: list[int], match: dict[int, int], spatial_chain: bool) -> int:
    """Check that ``mine`` ends with ``theirs`` (under ``match``); return where the suffix
    starts. A leading replication of ``theirs`` may be split off a larger one in ``mine``."""
    n = len(theirs)
    name = "thread" if spatial_chain else "register"
    if n > len(mine):
        raise _division_failure(what, layout, factor, f"too few {name} modes")
    start = len(mine) - n
    if n and theirs[0] < 0 and mine[start] < 0 and mine[start] != theirs[0]:
        have, want = -mine[start], -theirs[0]
        if have % want == 0:
            mine[start : start + 1] = [-(have // want), -want]
            start += 1
    for a, b in zip(mine[start:], theirs):
        if (b < 0 and a != b) or (b >= 0 and match.get(b) != a):
            raise _division_failure(what, layout, factor,
                                    f"the least significant {name} digits differ")
    return start


def left_divide(layout: RegisterLayout, divisor: RegisterLayout) -> RegisterLayout:
    """The layout ``Q`` with ``divisor * Q == layout`` (division from the left).

    Raises ``LayoutDivisionError`` (a ``ValueError``) naming both layouts when there is none.
    """
    what = "left_divide"
    layout, divisor = _same_rank(layout, divisor, what)
    _check_counts(what, layout, divisor)
    whole, part = layout.canonical(), divisor.canonical()
    p, q = _Parts(whole), _Parts(part)
    match: dict[int, int] = {}
    for d in range(whole.rank):
        mine, theirs = p.dims[d], q.dims[d]
        k = len(theirs)
        if not k:
            continue
        if len(mine) < k:
            raise _division_failure(what, layout, divisor, f"dimension {d} has too few modes")
        head = mine[:k]
        for a, b in zip(head[:-1], theirs[:-1]):
            if p.size[a] != q.size[b]:
                raise _division_failure(what, layout, divisor, f"dimension {d}: outer modes differ")
        last, size = head[-1], q.size[theirs[-1]]
        if p.size[last] % size:
            raise _division_failure(what, layout, divisor, f"dimension {d}: mode {p.size[last]} "
                                    f"does not start with a factor {size}")
        if p.size[last] != size:
            head[-1] = p.split(last, size)
        match.update(zip(theirs, head))
    spatial_end = _match_prefix(what, layout, divisor, p.spatial, q.spatial, match, True)
    local_end = _match_prefix(what, layout, divisor, p.local, q.local, match, False)
    kept = set(match.values())
    quotient = p.build([a // b for a, b in zip(whole.shape, part.shape)],
                       [[m for m in ms if m not in kept] for ms in p.dims],
                       p.spatial[spatial_end:], p.local[local_end:])
    if compose(divisor, quotient) != layout:
        raise _division_failure(what, layout, divisor, "the remaining modes do not compose back")
    return quotient


def _match_prefix(what: str, layout: RegisterLayout, factor: RegisterLayout, mine: list[int],
                  theirs: list[int], match: dict[int, int], spatial_chain: bool) -> int:
    """Check that ``mine`` starts with ``theirs`` (under ``match``); return where the prefix
    ends. A trailing replication of ``theirs`` may be split off a larger one in ``mine``."""
    n = len(theirs)
    name = "thread" if spatial_chain else "register"
    if n > len(mine):
        raise _division_failure(what, layout, factor, f"too few {name} modes")
    if n and theirs[-1] < 0 and mine[n - 1] < 0 and mine[n - 1] != theirs[-1]:
        have, want = -mine[n - 1], -theirs[-1]
        if have % want == 0:
            mine[n - 1 : n] = [-want, -(have // want)]
    for a, b in zip(mine[:n], theirs):
        if (b < 0 and a != b) or (b >= 0 and match.get(b) != a):
            raise _division_failure(what, layout, factor,
                                    f"the most significant {name} digits differ")
    return n


# ---- shape operations -------------------------------------------------------------------------


def _normalize_dims(what: str, dims: Sequence[int], rank: int) -> list[int]:
    out = []
    for d in _ints(f"{what} dims", dims):
        if not -rank <= d < rank:
            raise ValueError(f"{what}: dimension {d} is outside a rank-{rank} layout")
        out.append(d % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: dims {tuple(dims)} repeat a dimension")
    return out


def reduce(layout: RegisterLayout, dims: Sequence[int], keepdims: bool = False) -> RegisterLayout:
    """The layout of the result of reducing ``layout``'s tile over ``dims``.

    Every thread keeps the threads it had: a spatial mode of a reduced dimension becomes a
    replication (all threads that held a part of a reduced row hold its result), and a local mode
    of a reduced dimension disappears (a thread's partial results collapse into one register).
    Reduced dimensions are removed, or kept with size 1 when ``keepdims``.
    """
    reduced = set(_normalize_dims("reduce", dims, layout.rank))
    gone = {i for i, d in enumerate(layout.mode_dims) if d in reduced}
    keep = [i for i in range(len(layout.mode_shape)) if i not in gone]
    number = {old: new for new, old in enumerate(keep)}
    spatial_modes = [e if e < 0 else (-layout.mode_shape[e] if e in gone else number[e])
                     for e in layout.spatial_modes]
    local_modes = [number[e] for e in layout.local_modes if e not in gone]
    if keepdims:
        shape = [1 if d in reduced else s for d, s in enumerate(layout.shape)]
    else:
        shape = [s for d, s in enumerate(layout.shape) if d not in reduced]
    return RegisterLayout(shape, [layout.mode_shape[i] for i in keep], spatial_modes, local_modes)


def permute(layout: RegisterLayout, dims: Sequence[int]) -> RegisterLayout:
    """The layout of the tile with its dimensions reordered: new dimension ``i`` is old ``dims[i]``
    (as ``numpy.transpose``). Threads and registers keep their elements."""
    order = _normalize_dims("permute", dims, layout.rank)
    if len(order) != layout.rank:
        raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of "
                         f"{layout.rank} dimensions")
    p = _Parts(layout)
    return p.build([layout.shape[d] for d in order], [p.dims[d] for d in order],
                   p.spatial, p.local)


def reshape(layout: RegisterLayout, shape: Sequence[int]) -> RegisterLayout:
    """The layout of the tile reshaped row-major to ``shape`` (as ``numpy.reshape``).

    Raises ``ValueError`` when the new dimension boundaries cut a mode in a way no layout can
    express (e.g. a 4-thread mode spread over dimensions of size 6 and 2).
    """
    shape = _ints("reshape shape", shape)
    if any(s < 1 for s in shape) or _prod(shape) != layout.size:
        raise ValueError(f"reshape: cannot reshape {layout!r} of shape {layout.shape} "
                         f"to {shape}")
    p = _Parts(layout.canonical())
    flat = [m for ms in p.dims for m in ms]
    new_dims: list[list[int]] = []
    at = 0
    for n in shape:
        mine: list[int] = []
        rest = n
        while rest > 1:
            m = flat[at]
            if rest % p.size[m] == 0:
                mine.append(m)
                rest //= p.size[m]
                at += 1
            elif p.size[m] % rest == 0:
                mine.append(p.split(m, rest))
                rest = 1
            else:
                raise ValueError(f"reshape: cannot reshape {layout!r} to {shape}: a mode of size "
                                 f"{p.size[m]} straddles a boundary of dimension size {n}")
        new_dims.append(mine)
    return p.build(shape, new_dims, p.spatial, p.local)


def concat(first: RegisterLayout, second: RegisterLayout) -> RegisterLayout:
    """The outer product of two layouts: the tile has ``first``'s dimensions then ``second``'s;
    threads and registers are ``first``'s (more significant) then ``second``'s."""
    return compose(_expand(first, 0, second.rank), _expand(second, first.rank, 0))
