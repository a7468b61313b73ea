"""What NVFP4's per-tensor scale would buy: the relative error ‖W − Ŵ‖ / ‖W‖ of NVFP4 weights
(f4e2m1 codes, an e4m3 scale per 16, ``quantize_weights``) on N(0, σ²) weights (256 × 1024,
seed 0), as tilevm quantizes them (no tensor scale) and with the weights first multiplied by a
per-tensor factor that puts the largest block scale at e4m3's largest value (448), the factor
divided out after decoding. Decoding is ``tv.f4e2m1.decode(code) · scale`` in float64.

Usage: ``python bench/nvfp4_tensor_scale.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import numpy as np

import tilevm as tv
from tilevm.kernels.quantize import quantize_weights

GROUP = 16


def relative_error(w: np.ndarray, factor: float) -> float:
    """The error of NVFP4 on ``w · factor``, decoded and divided by ``factor``."""
    q = quantize_weights(w * factor, "f4e2m1", GROUP, scale_dtype="f8e4m3fn", act_dtype="f16")
    values = tv.f4e2m1.decode(q.codes.bits()).astype(np.float64)
    scales = np.repeat(np.asarray(q.scales).astype(np.float64), GROUP, axis=1)
    decoded = (values * scales)[:, :w.shape[1]] / factor
    return float(np.linalg.norm(decoded - w) / np.linalg.norm(w))


def main() -> None:
    rng = np.random.default_rng(0)
    print("sigma   no tensor scale   tensor scale")
    for sigma in (1.0, 0.02, 0.005):
        w = (rng.standard_normal((256, 1024)) * sigma).astype(np.float32)
        factor = 448 * 6 / float(np.abs(w).max())
        print(f"{sigma:<7} {relative_error(w, 1.0):>15.4f} {relative_error(w, factor):>14.4f}")


if __name__ == "__main__":
    main()
