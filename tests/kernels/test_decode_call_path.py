"""A repeated decode call of the prepared linear layer on a GPU (issue 14: no host
synchronization, allocation or cache I/O after the first call): on a fake GPU that records what
a launch does (tests/runtime/fake_gpu.py), the second and later calls of the split-K kernel take
the fast path and do nothing but the launch itself: the kernel restores its workspaces (the
arrival counters and the sums), which were zeroed once, when the first call allocated them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tilevm as tv
from tilevm.frontend import arguments
from tilevm.kernels.prepared_layouts import chunk_words, value_words
from tilevm.kernels.prepared_linear import launch_prepared_linear
from tilevm.kernels.prepared_weights import PreparedWeights
from tilevm.runtime import kernel_cache

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))
from fake_gpu import FakeCudaArray, install_fake_gpu

N, K, GROUP, BK = 256, 512, 128, 128


@pytest.fixture
def fake_gpu(monkeypatch):
    return install_fake_gpu(monkeypatch)


def _operands() -> tuple:
    """x (1 × K), the prepared u4 weights with f16 scales and zero points, bias and y, each a
    fake device array at its own 256-byte aligned address."""
    address = iter(range(0x7F0000000000, 0x7F0000000000 + (1 << 32), 1 << 24))
    chunks = N // 32
    codes = FakeCudaArray((chunks, K // BK, 32 * chunk_words(BK, 4)), np.uint32, next(address))
    scales = FakeCudaArray((chunks, K // GROUP, 8 * value_words(16)), np.uint32, next(address))
    zeros = FakeCudaArray((chunks, K // GROUP, 8 * value_words(16)), np.uint32, next(address))
    weights = PreparedWeights(codes, scales, zeros, tv.u4, tv.f16, tv.f16, GROUP, BK, N, K)
    x = FakeCudaArray((1, K), np.float16, next(address))
    bias = FakeCudaArray((N,), np.float16, next(address))
    y = FakeCudaArray((1, N), np.float16, next(address))
    return x, weights, bias, y


def _forbidden(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"a repeated decode call did {what}")
    return fail


def test_a_repeated_decode_call_only_launches(fake_gpu, monkeypatch):
    x, weights, bias, y = _operands()
    launch_prepared_linear(x, weights, y, bias=bias, variant="split_k")  # compiles, allocates
    launch_prepared_linear(x, weights, y, bias=bias, variant="split_k")  # remembered
    allocations, memsets = len(fake_gpu.allocations), list(fake_gpu.memsets)
    # The counters and the sums, two (1 × N) 4-byte workspaces, the first rounded up to 256
    # bytes, were cleared once, when the first call allocated their region.
    assert allocations == 1
    assert memsets == [(memsets[0][0], 2 * (-(-N * 4 // 256) * 256), 0)]

    monkeypatch.setattr(arguments, "bind_arguments", _forbidden("the full path's binding"))
    monkeypatch.setattr(kernel_cache, "_lookup_or_build", _forbidden("a kernel cache lookup"))
    monkeypatch.setattr(Path, "read_bytes", _forbidden("file I/O"))
    monkeypatch.setattr(Path, "read_text", _forbidden("file I/O"))
    monkeypatch.setattr(fake_gpu, "allocate", _forbidden("a device allocation"))
    monkeypatch.setattr(fake_gpu, "synchronize", _forbidden("a host synchronization"))
    monkeypatch.setattr(fake_gpu, "memset_async", _forbidden("a memset"))
    for _ in range(3):
        launch_prepared_linear(x, weights, y, bias=bias, variant="split_k")

    launches = fake_gpu.launches
    assert len(launches) == 5 and len(fake_gpu.allocations) == allocations
    first = [bytes(a) for a in launches[0].args]  # the parameters' bytes, as the GPU gets them
    assert all([bytes(a) for a in launch.args] == first and launch.grid == launches[0].grid
               for launch in launches)
    region = memsets[0][0].to_bytes(8, "little")
    assert sum(a == region for a in first) == 1  # a workspace lies at the cleared region
