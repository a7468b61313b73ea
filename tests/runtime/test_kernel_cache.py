"""The binary cache of compiled kernels (tilevm/runtime/kernel_cache.py, issue 13): hits across
processes without NVRTC, one entry for eight concurrent compiles, corrupt and read-only caches,
one entry per specialization, a key that follows the compiler's sources and not the kernel's
place in its file; and the CPU backend's object key.

Oracles: NVRTC invocations counted at the NVRTC call, the cubin bytes NVRTC produced, the PTX's
instruction forms (PTX ISA: ``ld/st.global.v4.b32`` is a 128-bit access), the line numbers found
in the kernel's file by searching its text."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import tilevm as tv
from tilevm.backend.cuda import nvrtc_compile
from tilevm.runtime import cuda_device, kernel_cache

sys.path.insert(0, str(Path(__file__).parent))
from fake_gpu import FakeCudaArray, install_fake_gpu

REPO = Path(__file__).resolve().parents[2]

KERNEL_FILE = '''\
import tilevm as tv
from tilevm import f32


@tv.kernel
def scale_add(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"], alpha: tv.Scalar[f32],
              *, block: tv.Const = 256):
    tv.launch(grid=tv.cdiv(n, block), warps=2)
    start = tv.block_idx() * block
    tv.store(out, tv.load(x, (start,), (block,)) * alpha, (start,))


@tv.kernel
def tally(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"], *, block: tv.Const = 128):
    tv.launch(grid=(tv.cdiv(n, block), 2), warps=4)
    i, s = tv.block_idx()
    total = tv.workspace((n,), f32)  # zeroed
    scratch = tv.workspace((n,), f32, zeroed=False)
    tv.store(scratch, tv.load(x, (i * block,), (block,)), (i * block,))
    tv.atomic_add(total, tv.load(scratch, (i * block,), (block,)), (i * block,))
    if s == 1:
        tv.store(out, tv.load(total, (i * block,), (block,)), (i * block,))
'''

# A child process: counts NVRTC invocations, runs GPU calls on a fake GPU (tests/runtime/
# fake_gpu.py), optionally waits at a barrier so that several children compile at once, and
# prints what it saw as JSON.
CHILD = r'''
import hashlib, importlib.util, json, os, sys, time
import numpy as np
import tilevm as tv
from tilevm.backend.cuda import nvrtc_compile
from tilevm.frontend import device_tensors
from tilevm.runtime import cuda_driver
from fake_gpu import FakeCudaArray, FakeDevice

calls = []
run_nvrtc = nvrtc_compile._run_nvrtc
nvrtc_compile._run_nvrtc = lambda *a: calls.append(1) or run_nvrtc(*a)
device = FakeDevice(0)
cuda_driver.cuda_device = lambda index=0: device
device_tensors.pointer_device = lambda address: 0

kernel_file, barrier = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
spec = importlib.util.spec_from_file_location("kernel_module", kernel_file)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.scale_add.ir()
if barrier:
    open(os.path.join(barrier, f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(barrier, "go")):
        time.sleep(0.005)
x = FakeCudaArray((1024,), np.float32, 0x7F0000000000)
out = FakeCudaArray((1024,), np.float32, 0x7F0000010000)
module.scale_add(x, out, 2.0)
compiled = tv.compile(module.scale_add, "sm_90", (x, out, 2.0)) if not barrier else None
print(json.dumps({
    "nvrtc": len(calls),
    "cubins": [hashlib.sha256(m.cubin).hexdigest() for m in device.modules],
    "launches": len(device.launches),
    "cuda_source": compiled.cuda_source if compiled else "",
}))
'''


def _child_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TILEVM_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(Path(__file__).parent)])
    return env


def _run_child(cache: Path, kernel_file: Path, prefix: tuple[str, ...] = ()) -> dict:
    result = subprocess.run([*prefix, sys.executable, "-c", CHILD, str(kernel_file)],
                            env=_child_env(cache), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout.splitlines()[-1]), "stderr": result.stderr}


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "kernels").glob("*.json"))


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of ``text`` containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class CacheUnderTest:
    path: Path  # $TILEVM_CACHE_DIR
    calls: list[str]  # the CUDA sources NVRTC compiled, in order


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory, a fresh in-process memo of the GPU call path, and a counter of
    NVRTC invocations."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(directory))
    monkeypatch.setattr(cuda_device, "_memo", {})
    calls: list[str] = []
    run = nvrtc_compile._run_nvrtc

    def counted(source, *rest):
        calls.append(source)
        return run(source, *rest)

    monkeypatch.setattr(nvrtc_compile, "_run_nvrtc", counted)
    return CacheUnderTest(directory, calls)


@pytest.fixture
def fake_gpu(monkeypatch):
    return install_fake_gpu(monkeypatch)


@pytest.fixture
def kernel_module(tmp_path):
    path = tmp_path / "kernel_module.py"
    path.write_text(KERNEL_FILE)
    return _load_module(path, "tilevm_test_kernel_cache_module")


# -- across processes --------------------------------------------------------------------------


def test_a_second_process_loads_the_cubin_from_disk_and_a_moved_kernel_shows_its_new_lines(
        tmp_path):
    cache = tmp_path / "cache"
    first_file = tmp_path / "first.py"
    first_file.write_text(KERNEL_FILE)
    first = _run_child(cache, first_file)
    assert first["nvrtc"] == 1 and first["launches"] == 1
    (entry,) = _entries(cache)
    stored = hashlib.sha256(entry.with_suffix(".cubin").read_bytes()).hexdigest()
    assert first["cubins"] == [stored]

    # The same kernel three lines further down its file, in another process.
    moved = "# moved\n# down\n# three lines\n" + KERNEL_FILE
    moved_file = tmp_path / "moved.py"
    moved_file.write_text(moved)
    second = _run_child(cache, moved_file)
    assert second["nvrtc"] == 0, "the second process compiled instead of loading the cubin"
    assert second["cubins"] == [stored] and second["launches"] == 1
    assert len(_entries(cache)) == 1
    store_line = _line_of(moved, "tv.store(out")
    assert f"moved.py:{store_line}:" in second["cuda_source"]
    assert f"first.py:{store_line - 3}:" not in second["cuda_source"]


def test_eight_processes_compiling_one_kernel_compile_it_once_and_leave_one_valid_entry(
        tmp_path):
    cache, barrier = tmp_path / "cache", tmp_path / "barrier"
    barrier.mkdir()
    kernel_file = tmp_path / "kernel_module.py"
    kernel_file.write_text(KERNEL_FILE)
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(kernel_file), str(barrier)],
                                 env=_child_env(cache), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(8)]
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < 8 and time.monotonic() < deadline:
        if any(c.poll() not in (None, 0) for c in children):
            break
        time.sleep(0.01)
    (barrier / "go").touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        reports.append(json.loads(out.splitlines()[-1]))
    assert sum(r["nvrtc"] for r in reports) == 1
    assert all(r["launches"] == 1 for r in reports)
    (entry,) = _entries(cache)
    assert len(list((cache / "kernels").glob("*.cubin"))) == 1
    assert not list((cache / "kernels").glob("*.tmp"))
    stored = hashlib.sha256(entry.with_suffix(".cubin").read_bytes()).hexdigest()
    assert all(r["cubins"] == [stored] for r in reports)
    assert kernel_cache.verify(cache / "kernels") == [(entry.stem, None)]


def _without_write_permission() -> tuple[str, ...]:
    """A command prefix under which a read-only directory is read-only: root ignores
    permissions unless it drops the capabilities that override them."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root without setpriv: cannot make a directory read-only"
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner")


def test_a_read_only_cache_warns_and_compiles_in_memory_or_loads_what_it_holds(tmp_path):
    kernel_file = tmp_path / "kernel_module.py"
    kernel_file.write_text(KERNEL_FILE)
    empty, filled = tmp_path / "empty", tmp_path / "filled"
    (empty / "kernels").mkdir(parents=True)
    reference = _run_child(filled, kernel_file)  # a writable cache, filled by this run
    assert reference["nvrtc"] == 1
    for folder in (empty, empty / "kernels", filled, filled / "kernels"):
        folder.chmod(0o555)
    try:
        in_memory = _run_child(empty, kernel_file, _without_write_permission())
        from_disk = _run_child(filled, kernel_file, _without_write_permission())
    finally:
        for folder in (empty, empty / "kernels", filled, filled / "kernels"):
            folder.chmod(0o755)
    assert in_memory["nvrtc"] == 2  # the call and tv.compile: nothing could be kept
    assert "cannot be written" in in_memory["stderr"] and "RuntimeWarning" in in_memory["stderr"]
    assert in_memory["stderr"].count("cannot be written") == 1  # said once, not per kernel
    assert in_memory["cubins"] == reference["cubins"] and in_memory["launches"] == 1
    assert list((empty / "kernels").iterdir()) == []
    assert from_disk["nvrtc"] == 0 and from_disk["cubins"] == reference["cubins"]
    assert "Warning" not in from_disk["stderr"]


# -- corrupt entries ---------------------------------------------------------------------------


def _corrupt_truncated_cubin(meta: Path) -> None:
    cubin = meta.with_suffix(".cubin")
    cubin.write_bytes(cubin.read_bytes()[:200])


def _corrupt_garbled_json(meta: Path) -> None:
    meta.write_text(meta.read_text()[:-40] + "}{")


def _corrupt_body_changed(meta: Path) -> None:
    data = json.loads(meta.read_text())
    data["description"]["block_threads"] = 32  # valid JSON, a wrong kernel: the checksum says
    meta.write_text(json.dumps(data))


@pytest.mark.parametrize("corrupt, problem", [
    (_corrupt_truncated_cubin, "cubin .* does not match its checksum"),
    (_corrupt_garbled_json, "not JSON"),
    (_corrupt_body_changed, "metadata does not match its checksum"),
])
def test_a_corrupt_entry_is_rebuilt_with_a_warning_never_loaded(cache, kernel_module, corrupt,
                                                                 problem):
    spec = "aligned"
    good = tv.compile(kernel_module.scale_add, "sm_90", spec)
    assert len(cache.calls) == 1
    (meta,) = _entries(cache.path)
    corrupt(meta)
    assert re.search(problem, kernel_cache.verify()[0][1])
    with pytest.warns(RuntimeWarning, match=f"corrupt kernel cache entry .*{problem}"):
        again = tv.compile(kernel_module.scale_add, "sm_90", spec)
    assert len(cache.calls) == 2  # rebuilt by NVRTC, not loaded
    assert again.cubin == good.cubin
    assert again.resources == good.resources
    assert kernel_cache.verify() == [(meta.stem, None)]
    third = tv.compile(kernel_module.scale_add, "sm_90", spec)
    assert len(cache.calls) == 2 and third.cubin == good.cubin


def test_an_entry_of_another_kernel_under_this_key_is_never_loaded(cache, kernel_module,
                                                                   fake_gpu):
    ir = kernel_module.scale_add.ir()
    other = kernel_module.scale_add.ir(block=128)
    spec = tv.runtime.compile.specialization_of(ir, "aligned")
    art = kernel_cache.artifact_cached(ir, spec, "sm_90")
    other_art = kernel_cache.artifact_cached(other, spec, "sm_90")
    assert len(cache.calls) == 2
    key = kernel_cache.cache_key(kernel_cache.key_parts(ir, spec, tv.backend.cuda.cuda_target(90)))
    other_key = next(p.stem for p in _entries(cache.path) if p.stem != key)
    folder = cache.path / "kernels"
    for suffix in (".json", ".cubin"):  # a whole, valid entry of the other kernel, misfiled
        shutil.copy(folder / f"{other_key}{suffix}", folder / f"{key}{suffix}")
    with pytest.warns(RuntimeWarning, match="corrupt kernel cache entry"):
        again = kernel_cache.artifact_cached(ir, spec, "sm_90")
    assert again.cubin == art.cubin != other_art.cubin
    assert again.description["block_threads"] == art.description["block_threads"]


# -- specialization ----------------------------------------------------------------------------

_WIDE_ACCESS = re.compile(r"\b(?:ld|st)\.global(?:\.\w+)*\.(?:v4\.[bfsu]32|v2\.[bfsu]64)\b")


def test_aligned_and_misaligned_data_get_two_entries_and_the_misaligned_launch_never_runs_the_wide_binary(  # noqa: E501
        cache, kernel_module, fake_gpu):
    base = 0x7F0000000000
    aligned = (FakeCudaArray((1024,), np.float32, base),
               FakeCudaArray((1024,), np.float32, base + 0x10000))
    misaligned = (FakeCudaArray((1024,), np.float32, base + 4),  # one f32 past 16 bytes
                  FakeCudaArray((1024,), np.float32, base + 0x10000))
    kernel_module.scale_add(*aligned, 2.0)
    kernel_module.scale_add(*misaligned, 2.0)
    kernel_module.scale_add(*aligned, 2.0)
    entries = {e.key: e for e in kernel_cache.list_entries()}
    assert len(entries) == 2 and len(cache.calls) == 2
    by_cubin = {}
    for key in entries:
        info = kernel_cache.entry_info(key)
        meta = json.loads(Path(next(iter(info["files"]))).read_text())
        by_cubin[info["description"]["cubin_sha256"]] = meta
    launched = [hashlib.sha256(m.cubin).hexdigest() for m in fake_gpu.modules]
    assert len(launched) == 2 and len(fake_gpu.launches) == 3
    wide, narrow = by_cubin[launched[0]], by_cubin[launched[1]]
    assert wide["description"]["specialization"]["tensors"]["x"]["aligned"] is True
    assert narrow["description"]["specialization"]["tensors"]["x"]["aligned"] is False
    assert _WIDE_ACCESS.search(wide["ptx"]), "the aligned binary should use 128-bit accesses"
    # x, the only tensor loaded, is misaligned: every load of that binary is narrower than 128
    # bits (out is aligned in both calls, so its stores may be wide).
    loads = [line for line in narrow["ptx"].splitlines() if re.search(r"\bld\.global", line)]
    assert loads and not any(_WIDE_ACCESS.search(line) for line in loads)
    # The launches: aligned, misaligned, aligned again, each with the binary of its facts.
    functions = [f for m in fake_gpu.modules for f in m.functions.values()]
    assert [len(f.launches) for f in functions] == [2, 1]
    assert functions[1].launches[0].args[0].value == base + 4


# -- what the key follows ----------------------------------------------------------------------


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the tilevm package (with docs/ and tests/ beside it) whose sources the key
    hashes instead of the installed ones."""
    root = tmp_path / "copy"
    shutil.copytree(REPO / "tilevm", root / "tilevm",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for extra in ("docs", "tests"):
        (root / extra).mkdir()
        (root / extra / "notes.md").write_text("# notes\n")
    monkeypatch.setattr(kernel_cache, "_PACKAGE_ROOT", root / "tilevm")
    kernel_cache._installed_source_hash.cache_clear()
    yield root
    kernel_cache._installed_source_hash.cache_clear()


def _edit(path: Path) -> None:
    with path.open("a") as f:
        f.write("\n# an edit\n")


def test_a_change_under_ir_frontend_or_backend_misses_and_elsewhere_hits(
        cache, kernel_module, package_copy):
    package = package_copy / "tilevm"
    tv.compile(kernel_module.scale_add, "sm_90")
    assert len(cache.calls) == 1
    misses = ["ir/dtypes.py", "frontend/tile_ir.lark", "backend/cuda/emit_cuda.py",
              "backend/lower/specialization.py"]
    hits = ["ops/__init__.py", "runtime/launch_notes.txt", "runtime/kernel_cache.py",
            "cli/__init__.py", "../docs/notes.md", "../tests/notes.md", "../tests/new_test.py"]
    for name in hits:
        path = package / name
        path.touch()
        _edit(path)
        kernel_cache._installed_source_hash.cache_clear()
        tv.compile(kernel_module.scale_add, "sm_90")
        assert len(cache.calls) == 1, f"a change to {name} missed the cache"
    expected = 1
    for name in misses:
        _edit(package / name)
        kernel_cache._installed_source_hash.cache_clear()
        tv.compile(kernel_module.scale_add, "sm_90")
        expected += 1
        assert len(cache.calls) == expected, f"a change to {name} hit the cache"
    new_file = package / "backend" / "cuda" / "new_module.py"
    new_file.write_text("X = 1\n")
    kernel_cache._installed_source_hash.cache_clear()
    tv.compile(kernel_module.scale_add, "sm_90")
    assert len(cache.calls) == expected + 1, "a new compiler source file hit the cache"


def test_the_key_follows_each_of_its_parts(cache, kernel_module):
    ir, target = kernel_module.scale_add.ir(), tv.backend.cuda.cuda_target("sm_90")
    specialization_of = tv.runtime.compile.specialization_of
    generic, aligned = specialization_of(ir, None), specialization_of(ir, "aligned")
    base = kernel_cache.key_parts(ir, generic, target)
    assert set(base) == {"format", "tile_ir", "constants", "specialization", "target", "nvrtc",
                         "options", "compiler_sources"}
    assert "--fmad=false" in base["options"] and "sm_90" in base["options"]
    key = kernel_cache.cache_key(base)
    variants = [kernel_cache.key_parts(kernel_module.scale_add.ir(block=128), generic, target),
                kernel_cache.key_parts(ir, aligned, target),
                kernel_cache.key_parts(ir, generic, tv.backend.cuda.cuda_target("sm_80"))]
    for name in ("nvrtc", "options", "compiler_sources"):
        variants.append({**base, name: base[name] + "x"})
    keys = {kernel_cache.cache_key(v) for v in variants}
    assert len(keys) == len(variants) and key not in keys
    # The same IR built again, in another module object and file place: the same key.
    moved = Path(kernel_module.__file__).with_name("moved_module.py")
    moved.write_text("\n\n\n\n" + KERNEL_FILE)
    other = _load_module(moved, "tilevm_test_kernel_cache_moved").scale_add.ir()
    assert other is not ir
    assert kernel_cache.cache_key(kernel_cache.key_parts(other, generic, target)) == key


def test_a_repeated_call_does_no_hashing(cache, kernel_module, fake_gpu, monkeypatch):
    x = FakeCudaArray((1024,), np.float32, 0x7F0000000000)
    out = FakeCudaArray((1024,), np.float32, 0x7F0000010000)
    kernel_module.scale_add(x, out, 2.0)

    def no_hashing(*args):
        raise AssertionError("a repeated call computed the cache key")

    monkeypatch.setattr(kernel_cache, "key_parts", no_hashing)
    monkeypatch.setattr(kernel_cache, "cache_key", no_hashing)
    kernel_module.scale_add(x, out, 3.0)
    assert len(fake_gpu.launches) == 2 and len(fake_gpu.modules) == 1


def test_list_info_verify_and_clear(cache, kernel_module):
    assert kernel_cache.list_entries() == [] and kernel_cache.verify() == []
    tv.compile(kernel_module.scale_add, "sm_90")
    tv.compile(kernel_module.scale_add, "sm_90", "aligned")
    entries = kernel_cache.list_entries()
    assert {(e.kernel, e.target) for e in entries} == {("scale_add", "sm_90")}
    assert len(entries) == 2
    for e in entries:
        files = [e.path, e.path.with_suffix(".cubin")]
        assert e.size_bytes == sum(p.stat().st_size for p in files)
        assert 0 <= e.age_seconds < 600
    described = {e.specialization for e in entries}
    assert "nothing known (the general kernel)" in described
    info = kernel_cache.entry_info(entries[0].key[:10])
    assert info["valid"] and info["parts"]["target"] == "sm_90"
    assert info["tile_ir_text"].startswith("kernel @scale_add(") and "loc(" not in \
        info["tile_ir_text"]
    with pytest.raises(KeyError, match="no kernel cache entry"):
        kernel_cache.entry_info("zz")
    assert kernel_cache.clear() >= 4
    assert kernel_cache.list_entries() == []


# -- the CPU backend's object key --------------------------------------------------------------


def test_cpu_objects_are_keyed_by_thread_ir_llvmlite_and_the_host_cpu(monkeypatch, tmp_path):
    import llvmlite

    from tilevm.backend.cpu import jit
    from tilevm.backend.lower import lower
    from tilevm.ir.thread.printer import dump

    from_file = tmp_path / "cpu_kernel.py"
    from_file.write_text(KERNEL_FILE)
    module = _load_module(from_file, "tilevm_test_kernel_cache_cpu")
    text = dump(lower(module.scale_add.ir(), 80).thread)
    other_text = dump(lower(module.scale_add.ir(block=128), 80).thread)
    assert text != other_text

    def key(t: str = text) -> str:
        jit._environment_key.cache_clear()
        return jit.cache_key(t)

    base = key()
    assert key(other_text) != base
    assert jit.cache_key(text, sanitize=True) != base
    # Unrelated to the object: where the cache is, threads, the kernel's place in its file.
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("TILEVM_CPU_THREADS", "3")
    moved = tmp_path / "cpu_kernel_moved.py"
    moved.write_text("\n\n\n" + KERNEL_FILE)
    moved_text = dump(lower(_load_module(moved, "tilevm_test_kernel_cache_cpu2")
                            .scale_add.ir(), 80).thread)
    assert key(moved_text) == base
    llvm = jit._llvm()
    monkeypatch.setattr(llvmlite, "__version__", llvmlite.__version__ + ".post1")
    assert key() != base
    monkeypatch.undo()
    assert key() == base
    monkeypatch.setattr(llvm, "get_host_cpu_name", lambda: "some-other-cpu")
    assert key() != base
    monkeypatch.undo()
    assert key() == base
    jit._environment_key.cache_clear()


def test_the_docs_list_the_keys_parts():
    text = (REPO / "docs" / "gpu.md").read_text()
    section = text[text.index("## The binary cache"):]
    for part in ("Tile IR text", "constants", "specialization", "target", "NVRTC version",
                 "options", "`tilevm/ir`", "`tilevm/frontend`", "`tilevm/backend`",
                 "TILEVM_CACHE_DIR"):
        assert part in section, part


# -- the fast path of a repeated call ----------------------------------------------------------


def _launch_bytes(launch) -> tuple:
    return (launch.grid, launch.block, [bytes(a) for a in launch.args], launch.shared_bytes,
            launch.stream)


def _full_then_fast(k, calls: list, fake_gpu, monkeypatch) -> tuple[list, list]:
    """Run ``calls`` of ``k`` through the full path (no launcher remembered), again (remembered),
    then again with binding forbidden (the fast path only); the full path's launches and
    memsets."""
    from tilevm.frontend import arguments

    for args in calls:
        k._launchers.clear()
        k(*args)
    full, memsets = [_launch_bytes(x) for x in fake_gpu.launches], list(fake_gpu.memsets)
    for args in calls:  # remembered: binding must not run again
        k(*args)
    monkeypatch.setattr(arguments, "bind_arguments", _no_binding)
    for args in calls:
        k(*args)
    return full, memsets


def _every_launch(fake_gpu) -> list:
    # (the fake device lists launches by module, not in time order: compared as multisets)
    return sorted(repr(_launch_bytes(x)) for x in fake_gpu.launches)


def test_the_fast_path_launches_exactly_what_the_full_path_launches(cache, kernel_module,
                                                                    fake_gpu, monkeypatch):
    base = 0x7F0000000000
    calls = [
        (FakeCudaArray((1024,), np.float32, base), FakeCudaArray((1024,), np.float32, base + 4096),
         2.0),
        (FakeCudaArray((1000,), np.float32, base + 4), FakeCudaArray((1000,), np.float32, base),
         3),
        (FakeCudaArray((300,), np.float32, base + 8, strides=(8,)),  # every other element
         FakeCudaArray((300,), np.float32, base), -1.5),
    ]
    full, _ = _full_then_fast(kernel_module.scale_add, calls, fake_gpu, monkeypatch)
    assert len(full) == len(calls)
    assert _every_launch(fake_gpu) == sorted(repr(x) for x in full * 3)
    assert len(fake_gpu.modules) == 3  # three specializations, each loaded once


def test_the_fast_path_places_and_clears_workspaces_as_the_full_path_does(cache, kernel_module,
                                                                          fake_gpu, monkeypatch):
    base = 0x7F0000000000
    calls = [(FakeCudaArray((1024,), np.float32, base),
              FakeCudaArray((1024,), np.float32, base + 8192)),
             (FakeCudaArray((300,), np.float32, base), FakeCudaArray((300,), np.float32, base))]
    full, full_memsets = _full_then_fast(kernel_module.tally, calls, fake_gpu, monkeypatch)
    assert len(full) == 2 and _every_launch(fake_gpu) == sorted(repr(x) for x in full * 3)
    # One memset of the zeroed workspace per launch (4 bytes per element), the same addresses.
    assert full_memsets == [(full_memsets[0][0], 1024 * 4, 0), (full_memsets[0][0], 300 * 4, 0)]
    assert fake_gpu.memsets == full_memsets * 3


def _no_binding(*args, **kwargs):
    raise AssertionError("a repeated call took the full path")


def test_a_repeated_call_with_bad_arguments_gets_the_full_paths_errors(cache, kernel_module,
                                                                       fake_gpu):
    k = kernel_module.scale_add
    x = FakeCudaArray((256,), np.float32, 0x7F0000000000)
    out = FakeCudaArray((256,), np.float32, 0x7F0000001000)
    k(x, out, 1.0)
    k(x, out, 1.0)
    cases = [
        ((x, FakeCudaArray((256,), np.float16), 1.0), TypeError,
         "argument 'out': expected f32 data, got f16"),
        ((x, FakeCudaArray((255,), np.float32), 1.0), ValueError,
         "dimension 'n' is 255 here but 256 from argument 'x'"),
        ((x, FakeCudaArray((256,), np.float32, 0x7F0000000002), 1.0), ValueError,
         "argument 'out': address 0x7f0000000002 is not aligned"),
        # another rank: the fast path's description of the shape sends it to the full path
        ((x, FakeCudaArray((16, 16), np.float32), 1.0), ValueError,
         "argument 'out': expected 1 dimension"),
        ((x, out, "two"), TypeError, "argument 'alpha': expected a f32 number"),
        ((x, out), TypeError, "takes 3 arguments"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            k(*args)
    assert len(fake_gpu.launches) == 2
