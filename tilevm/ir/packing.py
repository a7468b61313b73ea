"""Dense LSB-first packing of n-bit patterns into bytes (DESIGN §3).

Element k of an n-bit sequence occupies bits ``[k·n, (k+1)·n)`` of the buffer, bit 0 being the
least significant bit of byte 0. Bit offsets are 64-bit integers, so a buffer may hold more than
2**32 bits and a sequence may start anywhere, not only on a byte boundary.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack", "read_patterns", "storage_dtype_for", "unpack", "write_patterns"]


def storage_dtype_for(nbits: int) -> np.dtype:
    """The smallest unsigned numpy type holding ``nbits`` bits."""
    _check_width(nbits)
    for width, np_type in ((8, np.uint8), (16, np.uint16), (32, np.uint32)):
        if nbits <= width:
            return np.dtype(np_type)
    return np.dtype(np.uint64)


def pack(bits: np.ndarray, nbits: int) -> np.ndarray:
    """Pack bit patterns (any integer array, flattened in C order) into a dense uint8 buffer.

    Every pattern must fit in ``nbits`` (1–32, or 64); the result has ``ceil(len·nbits / 8)``
    bytes, the unused high bits of the last byte zero.
    """
    _check_width(nbits)
    flat = np.ascontiguousarray(bits).reshape(-1)
    _check_fits(flat, nbits, "pack")
    out = np.zeros((flat.size * nbits + 7) // 8, dtype=np.uint8)
    write_patterns(out, np.arange(flat.size, dtype=np.int64) * nbits, flat, nbits)
    return out


def unpack(buf: np.ndarray, nbits: int, count: int, bit_offset: int = 0) -> np.ndarray:
    """Read ``count`` consecutive ``nbits``-bit patterns starting at ``bit_offset`` of ``buf``.

    Returns them in :func:`storage_dtype_for` ``(nbits)``. Raises ``ValueError`` when the buffer
    is too short.
    """
    _check_width(nbits)
    data = _as_bytes(buf, "unpack")
    offsets = int(bit_offset) + np.arange(int(count), dtype=np.int64) * nbits
    return read_patterns(data, offsets, nbits)


def read_patterns(buf: np.ndarray, bit_offsets: np.ndarray, nbits: int) -> np.ndarray:
    """Gather the ``nbits``-bit patterns that start at each of ``bit_offsets`` (any shape)."""
    offsets = np.asarray(bit_offsets, dtype=np.int64)
    _check_range(buf, offsets, nbits, "read")
    out_dtype = storage_dtype_for(nbits)
    if offsets.size == 0:
        return np.zeros(offsets.shape, dtype=out_dtype)
    if nbits == 64:
        if np.any(offsets % 8):
            raise ValueError("64-bit elements must start on a byte boundary")
        starts = offsets // 8
        gathered = buf[starts[..., None] + np.arange(8)]
        return gathered.view(np.uint64).reshape(offsets.shape)
    # A pattern of at most 32 bits starting at bit s of its first byte spans at most 5 bytes.
    first_byte = offsets >> 3
    shift = (offsets & 7).astype(np.uint64)
    n_bytes = (7 + nbits + 7) // 8
    padded = np.concatenate([buf, np.zeros(n_bytes, dtype=np.uint8)])
    window = np.zeros(offsets.shape, dtype=np.uint64)
    for i in range(n_bytes):
        window |= padded[first_byte + i].astype(np.uint64) << np.uint64(8 * i)
    mask = np.uint64((1 << nbits) - 1)
    return ((window >> shift) & mask).astype(out_dtype)


def write_patterns(buf: np.ndarray, bit_offsets: np.ndarray, patterns: np.ndarray,
                   nbits: int) -> None:
    """Write ``patterns`` at ``bit_offsets`` of ``buf`` in place, leaving every other bit as it is.

    Offsets that overlap are written in order, the last one winning.
    """
    offsets = np.asarray(bit_offsets, dtype=np.int64).reshape(-1)
    values = np.asarray(patterns).reshape(-1)
    if values.size != offsets.size:
        raise ValueError(f"write: {values.size} patterns for {offsets.size} offsets")
    _check_range(buf, offsets, nbits, "write")
    _check_fits(values, nbits, "write")
    if offsets.size == 0:
        return
    if nbits in (8, 16, 32, 64) and not np.any(offsets % 8):
        width = nbits // 8
        as_bytes = values.astype(f"<u{width}").view(np.uint8).reshape(-1, width)
        buf[(offsets // 8)[:, None] + np.arange(width)] = as_bytes
        return
    # General case: edit the buffer as a bit array. np.packbits/unpackbits are LSB-first here.
    lo, hi = int(offsets.min()) >> 3, (int(offsets.max()) + nbits + 7) >> 3
    bits = np.unpackbits(buf[lo:hi], bitorder="little")
    positions = (offsets - lo * 8)[:, None] + np.arange(nbits)
    planes = (values.astype(np.uint64)[:, None] >> np.arange(nbits, dtype=np.uint64)) & np.uint64(1)
    bits[positions] = planes.astype(np.uint8)
    buf[lo:hi] = np.packbits(bits, bitorder="little")


def _check_width(nbits: int) -> None:
    if not isinstance(nbits, (int, np.integer)) or not (1 <= nbits <= 32 or nbits == 64):
        raise ValueError(f"nbits must be an integer in 1..32 or 64, got {nbits!r}")


def _check_fits(values: np.ndarray, nbits: int, what: str) -> None:
    if values.dtype.kind not in "iub":
        raise TypeError(f"{what}: bit patterns must be integers, got dtype {values.dtype}")
    if values.size == 0 or nbits == 64:
        return
    if values.dtype.kind == "i" and values.min() < 0:
        raise ValueError(f"{what}: bit pattern {values.min()} is negative")
    top = int(values.max())
    if top >> nbits:
        raise ValueError(f"{what}: bit pattern {top:#x} does not fit in {nbits} bits")


def _check_range(buf: np.ndarray, offsets: np.ndarray, nbits: int, what: str) -> None:
    _check_width(nbits)
    if offsets.size == 0:
        return
    if int(offsets.min()) < 0:
        raise ValueError(f"{what}: negative bit offset {int(offsets.min())}")
    end = int(offsets.max()) + nbits
    if end > buf.size * 8:
        raise ValueError(f"{what}: bits up to {end} needed but the buffer holds {buf.size * 8}")


def _as_bytes(buf: np.ndarray, what: str) -> np.ndarray:
    data = np.asarray(buf)
    if data.dtype != np.uint8:
        raise TypeError(f"{what}: the buffer must be uint8, got dtype {data.dtype}")
    return data.reshape(-1)
