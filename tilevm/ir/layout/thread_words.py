"""Layouts for weights prepared offline: each thread's bits as contiguous words, and the element
order a fast cast wants (DESIGN §3: ``view`` is how a thread's weight bits become contiguous
bytes and back).

A low-bit weight tile is consumed in some register layout ``V`` (typically an ``mma`` B fragment,
transposed). If the weights are stored so that each thread's elements, in ``V``'s local order,
are one contiguous run of 32-bit words, a kernel loads those words as a tile in
:func:`thread_words_layout` (one row per distinct thread, vectorized) and ``view``\\ s them as
``V`` — no instruction rearranges a bit. A vectorized cast converts a group of a word's elements
at once and may be cheapest when it emits them in another order; :func:`permute_local_bits`
gives the layout whose local order is that permutation of ``V``'s, so that the cast's natural
output is ``V``'s order.
"""

from __future__ import annotations

from tilevm.ir.layout.register import RegisterLayout

__all__ = ["bit_permutation", "permute_local_bits", "thread_words_layout"]


def thread_words_layout(layout: RegisterLayout, nbits: int) -> RegisterLayout:
    """The layout of a ``(threads, words)`` tile of 32-bit words whose row ``d`` holds, LSB-first,
    the ``nbits``-bit elements that the ``d``-th distinct thread of ``layout`` holds, in its local
    order. Threads that hold replicas in ``layout`` hold the same row (its replication is kept).

    Raises ``ValueError`` when a thread's bits are not a whole number of words."""
    bits = layout.local_size * nbits
    if bits % 32:
        raise ValueError(f"a thread of {layout!r} holds {layout.local_size} elements of {nbits} "
                         f"bits = {bits} bits, not a whole number of 32-bit words")
    sizes = [layout.mode_shape[e] for e in layout.spatial_modes if e >= 0]
    spatial = []
    k = 0
    for e in layout.spatial_modes:
        if e >= 0:
            spatial.append(k)
            k += 1
        else:
            spatial.append(e)
    threads = 1
    for s in sizes:
        threads *= s
    return RegisterLayout((threads, bits // 32), [*sizes, bits // 32], spatial, [k])


def bit_permutation(perm: tuple[int, ...]) -> tuple[int, ...] | None:
    """For a permutation ``perm`` of ``range(2**b)`` that permutes the bits of the index
    (``perm[s]`` has bit ``j`` equal to bit ``pi[j]`` of ``s``), the tuple ``pi``; ``None`` for
    any other permutation."""
    n = len(perm)
    b = n.bit_length() - 1
    if n != 1 << b or sorted(perm) != list(range(n)):
        return None
    pi = [0] * b
    for i in range(b):
        e = perm[1 << i]
        if e & (e - 1) or e == 0:
            return None
        pi[e.bit_length() - 1] = i
    for s in range(n):
        if perm[s] != sum(1 << j for j in range(b) if s >> pi[j] & 1):
            return None
    return tuple(pi)


def permute_local_bits(layout: RegisterLayout, perm: tuple[int, ...]) -> RegisterLayout | None:
    """The layout ``V`` with ``V(t, g·G + perm[s]) = layout(t, g·G + s)`` for every group ``g``
    of ``G = len(perm)`` consecutive local elements: what a cast that emits group element
    ``perm[s]`` in output slot ``s`` must read so that its output is in ``layout``'s order.

    ``None`` when the algebra cannot express it: ``perm`` must permute the bits of the index
    (:func:`bit_permutation`) and ``layout``'s local modes must be powers of two where they cover
    the group's bits."""
    pi = bit_permutation(perm)
    if pi is None or layout.local_size % len(perm):
        return None
    b = len(pi)
    # Split every local mode into modes of size 2 (bits), most significant first, so that each
    # bit of the local index selects one mode; spatial modes keep their size.
    mode_shape: list[int] = []
    new_index: dict[int, list[int]] = {}
    local_set = set(layout.local_modes)
    for i, m in enumerate(layout.mode_shape):
        if i in local_set and m & (m - 1) == 0:
            bits = m.bit_length() - 1
            new_index[i] = list(range(len(mode_shape), len(mode_shape) + bits))
            mode_shape += [2] * bits
        else:
            new_index[i] = [len(mode_shape)]
            mode_shape.append(m)
    chain = [x for e in layout.local_modes for x in new_index[e]]
    low = chain[len(chain) - b:]  # low[b - 1 - j] is the mode of local bit j
    if len(low) < b or any(mode_shape[x] != 2 for x in low):
        return None
    by_bit = {j: low[b - 1 - j] for j in range(b)}
    permuted = [by_bit[pi[j]] for j in reversed(range(b))]
    spatial = [new_index[e][0] if e >= 0 else e for e in layout.spatial_modes]
    return RegisterLayout(layout.shape, mode_shape, spatial, chain[:len(chain) - b] + permuted)
