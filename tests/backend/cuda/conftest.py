"""Fixtures of the CUDA backend tests: one NVRTC cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def nvrtc_cache() -> Path:
    """The session's cache directory (tests/conftest.py sets ``TILEVM_CACHE_DIR`` once for all
    xdist workers), so a source compiled by one worker is reused by the others."""
    return Path(os.environ["TILEVM_CACHE_DIR"])
