"""Test session setup: one temporary cache directory shared by every xdist worker, one CPU
backend thread per worker, and a text-form round trip of every kernel a test builds."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


def pytest_configure(config) -> None:
    # Workers are started after the controller configures, so they inherit these variables and
    # share the compiled binaries and JIT objects of the session.
    if "TILEVM_CACHE_DIR" not in os.environ:
        os.environ["TILEVM_CACHE_DIR"] = tempfile.mkdtemp(prefix="tilevm-test-cache-")
        config._tilevm_made_cache_dir = os.environ["TILEVM_CACHE_DIR"]


def pytest_unconfigure(config) -> None:
    # Only the process that made the directory removes it: the controller, after every worker.
    made = getattr(config, "_tilevm_made_cache_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
        del os.environ["TILEVM_CACHE_DIR"]
    # Under xdist each worker already occupies a core: more CPU-backend threads only contend.
    if getattr(config.option, "numprocesses", None) and "TILEVM_CPU_THREADS" not in os.environ:
        os.environ["TILEVM_CPU_THREADS"] = "1"


@pytest.fixture(autouse=True)
def every_built_kernel_reads_back_from_its_text(monkeypatch):
    """Every kernel any test builds must read back from its text form (issue 4: the text form
    round-trips every program built in the tests)."""
    from tilevm.frontend.kernel import KernelFunction
    from tilevm.frontend.text import parse
    from tilevm.ir.tile import print_kernel

    build = KernelFunction._build

    def build_and_read_back(self, constants):
        kernel = build(self, constants)
        text = print_kernel(kernel)
        assert parse(text) == kernel, f"the text form of {kernel.name} does not read back:\n{text}"
        return kernel

    monkeypatch.setattr(KernelFunction, "_build", build_and_read_back)
