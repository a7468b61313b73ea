"""Test session setup: one temporary cache directory shared by every xdist worker."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config) -> None:
    # Workers are started after the controller configures, so they inherit this variable and share
    # the compiled binaries and JIT objects of the session.
    if "TILEVM_CACHE_DIR" not in os.environ:
        os.environ["TILEVM_CACHE_DIR"] = tempfile.mkdtemp(prefix="tilevm-test-cache-")
