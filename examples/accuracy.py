"""The accuracy rule every example checks itself with (docs/numeric-contract.md).

``max|ours − ref| ≤ 2·max|base − ref| + u·max|ref|``: ``ref`` is computed in float64 on the same
(dequantized) inputs, ``base`` the same computation in the kernel's input precision with f32
accumulation (what a careful library would produce), and ``u`` the output type's unit roundoff.
"""

from __future__ import annotations

import numpy as np


def check_accuracy(name: str, ours: np.ndarray, ref: np.ndarray, base: np.ndarray,
                   unit_roundoff: float) -> float:
    """Assert the rule and return ``max|ours − ref|``."""
    ours64, base64 = np.asarray(ours, np.float64), np.asarray(base, np.float64)
    error = float(np.max(np.abs(ours64 - ref), initial=0.0))
    bound = 2 * float(np.max(np.abs(base64 - ref), initial=0.0)) + unit_roundoff * float(
        np.max(np.abs(ref), initial=0.0))
    assert error <= bound, f"{name}: error {error:.3g} exceeds the accuracy bound {bound:.3g}"
    print(f"{name}: max error {error:.3g} within the bound {bound:.3g}")
    return error
