"""Fixed-seed random words that do not depend on numpy's generators.

The golden outputs under ``tests/golden/`` are recorded for inputs made here; a change in
numpy's bit generators must not change them, so the words come from SplitMix64 (Steele, Lea and
Flood, "Fast splittable pseudorandom number generators", 2014) evaluated with numpy's wrapping
``uint64`` arithmetic: word ``i`` of stream ``seed`` is the mix of ``(seed·φ' + i + 1)·φ``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_floats", "random_words"]

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SEED_MIX = 0xD1B54A32D192ED03
_MASK64 = (1 << 64) - 1


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_words(seed: int, shape: int | tuple[int, ...], bits: int = 32) -> np.ndarray:
    """Uniform random ``bits``-bit words (1 ≤ bits ≤ 64) of stream ``seed``, as ``uint64``;
    the same seed and shape always give the same words (row-major order)."""
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be 1..64, got {bits}")
    count = int(np.prod(shape))
    start = np.uint64((seed * _SEED_MIX) & _MASK64)
    with np.errstate(over="ignore"):
        state = (np.arange(1, count + 1, dtype=np.uint64) + start) * _GOLDEN_GAMMA
        words = _mix(state)
    return (words >> np.uint64(64 - bits)).reshape(shape)


def random_floats(seed: int, shape: int | tuple[int, ...]) -> np.ndarray:
    """Uniform random float64 values in [0, 1) (53 random bits each) of stream ``seed``."""
    return random_words(seed, shape, 53).astype(np.float64) * 2.0**-53
