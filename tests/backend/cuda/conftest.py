"""Fixtures of the CUDA backend tests: one NVRTC cache per test session, and the hand-written
Thread IR programs of ``cuda_programs.py``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def nvrtc_cache() -> Path:
    """The session's cache directory (tests/conftest.py sets ``TILEVM_CACHE_DIR`` once for all
    xdist workers), so a source compiled by one worker is reused by the others."""
    return Path(os.environ["TILEVM_CACHE_DIR"])


@pytest.fixture(scope="session")
def programs() -> ModuleType:
    """The module of hand-written programs (loaded by path: the tests run with
    ``--import-mode=importlib``, so their folder is not on ``sys.path``)."""
    path = Path(__file__).with_name("cuda_programs.py")
    spec = importlib.util.spec_from_file_location("tilevm_tests_cuda_programs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
