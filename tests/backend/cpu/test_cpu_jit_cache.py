"""The CPU JIT's disk cache and host parallelism: a second compile of the same Thread IR loads
the object from ``$TILEVM_CACHE_DIR``, a corrupt entry is rebuilt with a warning, a changed
program is a different entry, and blocks run on ``min(cores, TILEVM_CPU_THREADS)`` threads."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tilevm.backend.cpu import compile_kernel
from tilevm.backend.cpu.jit import cache_directory
from tilevm.backend.cpu.launch import worker_count
from tilevm.ir.thread import examples


def test_second_compile_loads_from_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    first = compile_kernel(examples.warp_reduce(threads=64))
    assert not first.compiled.cached
    assert cache_directory() == tmp_path / "cpu-jit"
    objects = sorted(p.name for p in cache_directory().glob("*.o"))
    assert len(objects) == 1
    again = compile_kernel(examples.warp_reduce(threads=64))
    assert again.compiled.cached
    x = np.arange(128, dtype=np.float32)
    out1, out2 = np.zeros(4, np.float32), np.zeros(4, np.float32)
    first(2, x, out1)
    again(2, x, out2)
    assert np.array_equal(out1, out2) and out1[0] == sum(range(32))
    compile_kernel(examples.warp_reduce(threads=128))     # another program, another entry
    assert len(list(cache_directory().glob("*.o"))) == 2


def test_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    compile_kernel(examples.warp_reduce(threads=32))
    (obj,) = cache_directory().glob("*.o")
    obj.write_bytes(obj.read_bytes()[:100])
    with pytest.warns(UserWarning, match="corrupt CPU JIT cache entry"):
        run = compile_kernel(examples.warp_reduce(threads=32))
    assert not run.compiled.cached
    out = np.zeros(1, np.float32)
    run(1, np.ones(32, np.float32), out)
    assert out[0] == 32


def test_worker_count_follows_cores_and_the_environment(monkeypatch) -> None:
    cores = os.cpu_count() or 1
    monkeypatch.delenv("TILEVM_CPU_THREADS", raising=False)
    assert worker_count(1000) == cores
    assert worker_count(1) == 1
    monkeypatch.setenv("TILEVM_CPU_THREADS", "1")
    assert worker_count(1000) == 1
    monkeypatch.setenv("TILEVM_CPU_THREADS", str(cores + 5))
    assert worker_count(1000) == cores
