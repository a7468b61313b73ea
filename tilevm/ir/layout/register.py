"""Register layouts: which threads hold each element of a tile, and in which register slot.

A register layout splits every dimension of a tile into *modes* (sub-dimensions, outermost first),
and deals the modes out to two mixed-radix numbers: the thread index (the *spatial* modes) and the
per-thread local index (the *local* modes). A spatial entry may also be a *replication*: a thread
digit that selects no element, so that several threads hold the same element.

Encoding (as in Tilus): ``mode_shape`` lists the sizes of all modes, dimension by dimension, outer
first; ``spatial_modes`` lists thread digits from most to least significant, each a mode index
``>= 0`` or ``-r`` for a replication by ``r`` threads; ``local_modes`` lists local digits from
most to least significant. Modes of size 1 carry no information and are dropped on construction.

Threads are relative to the thread group the layout lives in: thread 0 is the group's first thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np


def _ints(name: str, values: Iterable[int]) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {v!r}")
        out.append(int(v))
    return tuple(out)


def _prod(values: Iterable[int]) -> int:
    p = 1
    for v in values:
        p *= v
    return p


class RegisterLayout:
    """An immutable register layout; see the module docstring for the encoding.

    ``==`` and ``hash`` compare layouts up to canonical form, i.e. as functions from
    (thread, local) to the tile index. Build layouts with the primitives (``spatial``, ``local``,
    ``column_spatial``, ``column_local``, ``replicated``) and the algebra (``A * B``, ``L / B``,
    ``left_divide``, ``reduce``, ``permute``, ``reshape``, ``concat``) rather than by hand.
    """

    __slots__ = ("_cache", "_dims", "local_modes", "mode_shape", "shape", "spatial_modes")

    shape: tuple[int, ...]
    mode_shape: tuple[int, ...]
    spatial_modes: tuple[int, ...]
    local_modes: tuple[int, ...]

    def __init__(self, shape: Sequence[int], mode_shape: Sequence[int],
                 spatial_modes: Sequence[int], local_modes: Sequence[int]) -> None:
        shape = _ints("shape", shape)
        mode_shape = _ints("mode_shape", mode_shape)
        spatial_modes = _ints("spatial_modes", spatial_modes)
        local_modes = _ints("local_modes", local_modes)
        if any(s < 1 for s in shape):
            raise ValueError(f"shape {shape} must be positive")
        if any(m < 1 for m in mode_shape):
            raise ValueError(f"mode_shape {mode_shape} must be positive")
        used = [e for e in spatial_modes if e >= 0] + list(local_modes)
        if sorted(used) != list(range(len(mode_shape))):
            raise ValueError(
                f"spatial_modes {spatial_modes} and local_modes {local_modes} must together name "
                f"every mode of mode_shape {mode_shape} exactly once (replications are negative, "
                f"and only in spatial_modes)")
        # Drop modes of size 1 and replications by 1: they select nothing.
        keep = [i for i, m in enumerate(mode_shape) if m > 1]
        renumber = {old: new for new, old in enumerate(keep)}
        mode_shape = tuple(mode_shape[i] for i in keep)
        spatial_modes = tuple(renumber[e] if e >= 0 else e for e in spatial_modes
                              if (e >= 0 and e in renumber) or e < -1)
        local_modes = tuple(renumber[e] for e in local_modes if e in renumber)
        dims: list[int] = []
        d, prod = 0, 1
        for m in mode_shape:
            while d < len(shape) and prod == shape[d]:
                d, prod = d + 1, 1
            if d == len(shape) or shape[d] % (prod * m):
                raise ValueError(f"mode_shape {mode_shape} does not factor shape {shape} "
                                 f"dimension by dimension")
            prod *= m
            dims.append(d)
        while d < len(shape) and prod == shape[d]:
            d, prod = d + 1, 1
        if d != len(shape):
            raise ValueError(f"mode_shape {mode_shape} does not factor shape {shape} "
                             f"dimension by dimension")
        set_ = object.__setattr__
        set_(self, "shape", shape)
        set_(self, "mode_shape", mode_shape)
        set_(self, "spatial_modes", spatial_modes)
        set_(self, "local_modes", local_modes)
        set_(self, "_dims", tuple(dims))
        set_(self, "_cache", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("RegisterLayout is immutable")

    def __reduce__(self) -> tuple:
        return (RegisterLayout, (self.shape, self.mode_shape, self.spatial_modes,
                                 self.local_modes))

    # ---- sizes ---------------------------------------------------------------------------

    @property
    def mode_dims(self) -> tuple[int, ...]:
        """The tile dimension each mode belongs to."""
        return self._dims

    @property
    def rank(self) -> int:
        """The number of tile dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements of the tile."""
        return _prod(self.shape)

    def _entry_size(self, e: int) -> int:
        return self.mode_shape[e] if e >= 0 else -e

    @property
    def num_threads(self) -> int:
        """The number of threads the layout spreads over (replications included)."""
        return _prod(self._entry_size(e) for e in self.spatial_modes)

    @property
    def local_size(self) -> int:
        """The number of elements each thread holds."""
        return _prod(self.mode_shape[e] for e in self.local_modes)

    @property
    def replication(self) -> int:
        """How many threads hold each element."""
        return _prod(-e for e in self.spatial_modes if e < 0)

    # ---- the mapping -----------------------------------------------------------------------

    def coords(self, thread: int, local: int) -> tuple[int, ...]:
        """The tile index that ``thread`` holds in its register slot ``local``."""
        if not 0 <= thread < self.num_threads:
            raise ValueError(f"thread {thread} is outside [0, {self.num_threads})")
        if not 0 <= local < self.local_size:
            raise ValueError(f"local {local} is outside [0, {self.local_size})")
        digits = [0] * len(self.mode_shape)
        for chain, rem in ((self.spatial_modes, thread), (self.local_modes, local)):
            for e in reversed(chain):
                size = self._entry_size(e)
                if e >= 0:
                    digits[e] = rem % size
                rem //= size
        index = [0] * self.rank
        for i, m in enumerate(self.mode_shape):
            d = self._dims[i]
            index[d] = index[d] * m + digits[i]
        return tuple(index)

    def _mode_digits(self, index: Sequence[int]) -> list[int]:
        index = _ints("index", index)
        if len(index) != self.rank or any(not 0 <= i < s for i, s in zip(index, self.shape)):
            raise ValueError(f"index {index} is outside the tile shape {self.shape}")
        digits = [0] * len(self.mode_shape)
        rem = list(index)
        for i in reversed(range(len(self.mode_shape))):
            d = self._dims[i]
            digits[i] = rem[d] % self.mode_shape[i]
            rem[d] //= self.mode_shape[i]
        return digits

    def holders(self, index: Sequence[int]) -> list[tuple[int, int]]:
        """Every (thread, local) that holds the element at ``index``, sorted by thread."""
        digits = self._mode_digits(index)
        local = 0
        for e in self.local_modes:
            local = local * self.mode_shape[e] + digits[e]
        choices = [range(-e) if e < 0 else (digits[e],) for e in self.spatial_modes]
        out = []
        for pick in itertools.product(*choices):
            thread = 0
            for e, p in zip(self.spatial_modes, pick):
                thread = thread * self._entry_size(e) + p
            out.append((thread, local))
        return sorted(out)

    def thread_local_to_index(self) -> tuple[np.ndarray, ...]:
        """For every (thread, local), the tile index it holds: one int64 array of shape
        ``(num_threads, local_size)`` per tile dimension (read-only).

        ``regs = tile[L.thread_local_to_index()]`` scatters a tile to per-thread registers and
        ``tile[L.thread_local_to_index()] = regs`` gathers it back. (For a rank-0 tile the tuple is
        empty and numpy reads ``tile[()]`` as the scalar: broadcast it instead.)
        """
        if "tl2i" not in self._cache:
            t = np.arange(self.num_threads, dtype=np.int64)[:, None]
            loc = np.arange(self.local_size, dtype=np.int64)[None, :]
            digits: list[np.ndarray] = [np.zeros((1, 1), np.int64)] * len(self.mode_shape)
            for chain, rem in ((self.spatial_modes, t), (self.local_modes, loc)):
                for e in reversed(chain):
                    size = self._entry_size(e)
                    if e >= 0:
                        digits[e] = rem % size
                    rem = rem // size
            full = (self.num_threads, self.local_size)
            index = [np.zeros(full, np.int64) for _ in range(self.rank)]
            for i, m in enumerate(self.mode_shape):
                d = self._dims[i]
                index[d] = index[d] * m + digits[i]
            for a in index:
                a.setflags(write=False)
            self._cache["tl2i"] = tuple(index)
        return self._cache["tl2i"]

    def index_to_thread_local(self) -> tuple[np.ndarray, np.ndarray]:
        """For every tile element, the first of its holders (the one whose replication digits are
        all 0): two int64 arrays ``(thread, local)`` of the tile's shape (read-only).

        ``tile = regs[L.index_to_thread_local()]`` gathers per-thread registers into a tile.
        """
        if "i2tl" not in self._cache:
            grids = np.indices(self.shape, dtype=np.int64)
            digits: list[np.ndarray] = [np.zeros(self.shape, np.int64)] * len(self.mode_shape)
            rem = [grids[d] for d in range(self.rank)]
            for i in reversed(range(len(self.mode_shape))):
                d = self._dims[i]
                digits[i] = rem[d] % self.mode_shape[i]
                rem[d] = rem[d] // self.mode_shape[i]
            thread = np.zeros(self.shape, np.int64)
            for e in self.spatial_modes:
                thread = thread * self._entry_size(e) + (digits[e] if e >= 0 else 0)
            local = np.zeros(self.shape, np.int64)
            for e in self.local_modes:
                local = local * self.mode_shape[e] + digits[e]
            thread.setflags(write=False)
            local.setflags(write=False)
            self._cache["i2tl"] = (thread, local)
        return self._cache["i2tl"]

    # ---- canonical form and equality ------------------------------------------------------

    def canonical(self) -> RegisterLayout:
        """The canonical form: the same mapping with every mergeable pair of modes merged.

        Two modes merge when they are adjacent in one dimension (outer then inner) and adjacent in
        the same chain in the same order (both spatial or both local); two adjacent replications
        merge too. Layouts denote the same mapping exactly when their canonical forms are equal.
        """
        if "canonical" in self._cache:
            return self._cache["canonical"]
        modes = list(self.mode_shape)
        dims = list(self._dims)
        spatial = list(self.spatial_modes)
        local = list(self.local_modes)
        changed = True
        while changed:
            changed = False
            for k in range(len(spatial) - 1):
                if spatial[k] < 0 and spatial[k + 1] < 0:
                    spatial[k : k + 2] = [-(spatial[k] * spatial[k + 1])]
                    changed = True
                    break
            if changed:
                continue
            for i in range(len(modes) - 1):
                if dims[i] != dims[i + 1]:
                    continue
                for chain in (spatial, local):
                    if i in chain and i + 1 in chain and chain.index(i) + 1 == chain.index(i + 1):
                        modes[i] *= modes[i + 1]
                        del modes[i + 1], dims[i + 1]
                        chain.remove(i + 1)
                        spatial = [e - 1 if e > i + 1 else e for e in spatial]
                        local = [e - 1 if e > i + 1 else e for e in local]
                        changed = True
                        break
                if changed:
                    break
        result = RegisterLayout(self.shape, modes, spatial, local)
        result._cache["canonical"] = result
        self._cache["canonical"] = result
        return result

    def _key(self) -> tuple:
        c = self.canonical()
        return (c.shape, c.mode_shape, c.spatial_modes, c.local_modes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegisterLayout):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    # ---- algebra and text -----------------------------------------------------------------

    def __mul__(self, other: RegisterLayout) -> RegisterLayout:
        from tilevm.ir.layout.algebra import compose

        if not isinstance(other, RegisterLayout):
            return NotImplemented
        return compose(self, other)

    def __truediv__(self, other: RegisterLayout) -> RegisterLayout:
        from tilevm.ir.layout.algebra import divide

        if not isinstance(other, RegisterLayout):
            return NotImplemented
        return divide(self, other)

    def __repr__(self) -> str:
        from tilevm.ir.layout.text import layout_expression

        return layout_expression(self)

    def picture(self) -> str:
        """A text grid of the tile: each cell shows ``thread:local`` of its holders."""
        from tilevm.ir.layout.text import layout_picture

        return layout_picture(self)
