"""Every example, on small shapes, runs under the sanitizer (``TILEVM_SANITIZE=1``) with no
report; each still checks its own result against its float64/numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from example_loader import load_example


@pytest.mark.parametrize(("name", "argv"), [
    ("vector_add", ["--n", "1000", "--block", "128"]),
    ("softmax", ["--m", "13", "--n", "75", "--rows", "4"]),
    ("matmul", ["--m", "70", "--n", "45", "--k", "72", "--bm", "32", "--bn", "32", "--bk", "32"]),
    ("matmul_w4a16", ["--m", "21", "--n", "37", "--k", "80", "--group", "32"]),
    ("matmul_wna16", ["--wtype", "u3", "--m", "21", "--n", "37", "--k", "80", "--group", "32"]),
    ("attention", ["--sq", "20", "--sk", "20", "--d", "16"]),
])
def test_example_has_no_sanitizer_report(name, argv, monkeypatch):
    monkeypatch.setenv("TILEVM_SANITIZE", "1")
    error = load_example(name, "sanitized_example_").main(
        [*argv, "--device", "cpu"])  # a report would raise
    assert np.isfinite(error)
