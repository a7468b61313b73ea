"""Test session setup: one temporary cache directory shared by every xdist worker, and one CPU
backend thread per worker."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config) -> None:
    # Workers are started after the controller configures, so they inherit these variables and
    # share the compiled binaries and JIT objects of the session.
    if "TILEVM_CACHE_DIR" not in os.environ:
        os.environ["TILEVM_CACHE_DIR"] = tempfile.mkdtemp(prefix="tilevm-test-cache-")
    # Under xdist each worker already occupies a core: more CPU-backend threads only contend.
    if getattr(config.option, "numprocesses", None) and "TILEVM_CPU_THREADS" not in os.environ:
        os.environ["TILEVM_CPU_THREADS"] = "1"
