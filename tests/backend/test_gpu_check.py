"""``bench/gpu_check.py`` without a GPU: the bundle it builds, its GPU half run against a fake
CUDA driver that executes each launch on the CPU backend from the bytes the loader packed, the
parameter packing, the comparisons, and the conformance kernels against oracles of their own.

The fake driver (:class:`FakeDriverAPI`) has the functions of ``cuda.bindings.driver`` that
``bench/cuda_loader.py`` calls, with their return convention (a status, then the results). Its
"device memory" is host memory, so a launch reads the ``void*`` array the loader built, takes
each parameter's bytes at the sizes of the kernel's C++ signature, and runs the Thread IR kernel
on the CPU backend with exactly those values: a mistake in the ABI order, the packing or the
buffer handling changes the outputs and fails the comparison.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from no_tilevm_script import no_tilevm_script

from tilevm.backend.cpu import compile_kernel
from tilevm.backend.cuda.cuda_types import c_type
from tilevm.conformance import ScalarArg, conformance_launch, run_on_cpu_backend
from tilevm.conformance.arith import APPROX_OPS, approx_bound
from tilevm.conformance.compare import check_accuracy, compare_bounded, compare_exact
from tilevm.conformance.goldens import read_goldens
from tilevm.conformance.memory import CP_ASYNC_VARIANTS
from tilevm.conformance.warp import LDMATRIX_VARIANTS, SHFL_VARIANTS
from tilevm.ir.thread import F32, S32, S64, U16
from tilevm.ir.thread.values import Const

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check")
cuda_loader = _load("cuda_loader")


# -- a fake cuda.bindings.driver ---------------------------------------------------------------

class FakeDriverAPI:
    """The driver calls the loader makes, on host memory; launches run on the CPU backend."""

    CUresult = SimpleNamespace(CUDA_SUCCESS=0, CUDA_ERROR_INVALID_VALUE=1)
    CUfunction_attribute = SimpleNamespace(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=8)

    def __init__(self, kernels: dict, corrupt: str | None = None) -> None:
        self.kernels = kernels  # function name -> Thread IR kernel
        self.memory: dict[int, np.ndarray] = {}
        self.launches: list[dict] = []
        self.corrupt = corrupt  # flip a bit of this function's first pointer's buffer

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGet(self, ordinal):
        return (0, f"device{ordinal}")

    def cuDevicePrimaryCtxRetain(self, device):
        return (0, "context")

    def cuCtxSetCurrent(self, context):
        return (0,)

    def cuDeviceGetName(self, length, device):
        return (0, b"Fake GPU\0\0\0")

    def cuDriverGetVersion(self):
        return (0, 13000)

    def cuGetErrorName(self, status):
        return (0, b"CUDA_ERROR_INVALID_VALUE")

    def cuModuleLoadData(self, image):
        assert ctypes.string_at(image, 4) == b"\x7fELF"  # a cubin's ELF header
        return (0, "module")

    def cuModuleGetFunction(self, module, name):
        if name.decode() not in self.kernels:
            return (1, None)
        return (0, name.decode())

    def cuFuncSetAttribute(self, function, attribute, value):
        return (0,)

    def cuMemAlloc(self, nbytes):
        buffer = np.zeros(nbytes, np.uint8)
        self.memory[buffer.ctypes.data] = buffer
        return (0, buffer.ctypes.data)

    def cuMemFree(self, address):
        del self.memory[address]
        return (0,)

    def cuMemcpyHtoD(self, dst, src, nbytes):
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cuMemcpyDtoH(self, dst, src, nbytes):
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cuLaunchKernel(self, function, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        kernel = self.kernels[function]
        assert (bx, by, bz) == (kernel.block_threads, 1, 1) and shared == kernel.shared_bytes
        pointers = (ctypes.c_void_p * len(kernel.params)).from_address(params)
        values = []
        for p, at in zip(kernel.params, pointers, strict=True):
            size = 8 if p.pointer else c_type(p.type).bits // 8
            bits = int.from_bytes(ctypes.string_at(at, size), "little")
            values.append(bits if p.pointer else Const(bits & ((1 << p.type.bits) - 1),
                                                        p.type).value)
        compile_kernel(kernel)((gx, gy, gz), *values)
        if function == self.corrupt:
            self.memory[values[-1]][0] ^= 1  # the last parameter: an output buffer
        self.launches.append({"function": function, "grid": (gx, gy, gz), "values": values})
        return (0,)

    def cuCtxSynchronize(self):
        return (0,)


# -- the bundle, built once ----------------------------------------------------------------------

SMALL = ["conformance_shfl", "conformance_cp_async", "conformance_mma_tf32"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle of three conformance launches and two examples (an f32 scalar parameter in
    attention; a u4 tensor in matmul_w4a16), no timings."""
    sys.path.insert(0, str(BENCH))
    launches = [conformance_launch(n) for n in SMALL]
    launches += [gpu_check.example_launch("attention", 90),
                 gpu_check.example_launch("matmul_w4a16", 80)]
    path = tmp_path_factory.mktemp("bundle")
    manifest = gpu_check.build_bundle(path, launches, [], log=lambda *_: None)
    return SimpleNamespace(path=path, manifest=manifest, launches=launches,
                           kernels={launch.kernel.name: launch.kernel for launch in launches})


def test_the_bundle_holds_cubins_inputs_and_expected_outputs(bundle) -> None:
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert [e["name"] for e in manifest["launches"]] == [x.name for x in bundle.launches]
    for entry, launch in zip(manifest["launches"], bundle.launches, strict=True):
        assert (bundle.path / entry["cubin"]).read_bytes()[:4] == b"\x7fELF"
        data = np.load(bundle.path / entry["data"])
        want = run_on_cpu_backend(launch)
        for name in launch.checks:
            assert np.array_equal(data[f"want/{name}"], want[name])
        for name, array in launch.buffers.items():
            assert np.array_equal(data[f"init/{name}"], array)
        assert len(entry["params"]) == len(launch.kernel.params)
    text = gpu_check.describe(manifest, bundle.path)
    assert "launch attention grid (3, 1, 1) block (128, 1, 1)" in text
    scale = [p for p in manifest["launches"][3]["params"] if p.get("type") == "f32"]
    assert [(p["bits"], p["bytes"]) for p in scale] == [  # attention's scale, 1/sqrt(40)
        (int(np.float32(1 / np.sqrt(40)).view(np.uint32)), 4)]


def test_example_launches_pass_what_the_cpu_device_passes() -> None:
    """The ABI arguments gpu_check builds give the outputs of ``kernel(..., device="cpu")``
    (the runtime's own argument packing), bit for bit."""
    sys.path.insert(0, str(BENCH))
    from sass_examples import load_example

    problem = gpu_check.example_problem("attention")
    launch = gpu_check.example_launch("attention", 80)  # the CPU device lowers for sm_80
    args = list(problem["args"])
    load_example("attention")(*args, device="cpu", **problem["constants"])
    got = run_on_cpu_backend(launch)["o"]
    assert np.array_equal(got.view(np.uint16), args[3].view(np.uint16).reshape(-1))


def test_gpu_half_runs_the_bundle_and_records_goldens(bundle, tmp_path, monkeypatch) -> None:
    api = FakeDriverAPI(bundle.kernels)
    monkeypatch.setattr(gpu_check, "DRIVER_API", api)
    code = gpu_check.main(["--bundle", str(bundle.path), "--results", str(tmp_path),
                           "--write-goldens", str(tmp_path / "golden"), "--no-timing"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 0, report
    assert [r["name"] for r in report["launches"]] == [x.name for x in bundle.launches]
    assert all(r["ok"] for r in report["launches"]) and report["failed"] == []
    assert report["device"] == "Fake GPU"
    attention = report["launches"][3]["checks"]["o"]
    assert attention["kind"] == "accuracy" and attention["cpu"]["mismatches"] == 0
    assert [x["function"] for x in api.launches] == [x.kernel.name for x in bundle.launches]
    goldens = read_goldens(tmp_path / "golden")
    assert goldens.source == "gpu:Fake GPU" and sorted(goldens.outputs) == sorted(SMALL)
    assert not api.memory  # every buffer freed


def test_gpu_half_reports_a_wrong_output(bundle, tmp_path, monkeypatch) -> None:
    api = FakeDriverAPI(bundle.kernels, corrupt="conformance_cp_async")
    monkeypatch.setattr(gpu_check, "DRIVER_API", api)
    code = gpu_check.main(["--bundle", str(bundle.path), "--results", str(tmp_path),
                           "--no-timing"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == ["conformance_cp_async"]
    check = report["launches"][1]["checks"]["out"]
    assert check["mismatches"] == 1 and check["first_mismatches"][0]["index"] == 0


def test_a_failing_driver_call_is_reported_by_name(bundle, tmp_path, monkeypatch) -> None:
    api = FakeDriverAPI({})  # no kernel: cuModuleGetFunction fails
    monkeypatch.setattr(gpu_check, "DRIVER_API", api)
    code = gpu_check.main(["--bundle", str(bundle.path), "--results", str(tmp_path),
                           "--no-timing", "--only", "conformance_shfl"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1
    assert report["launches"][0]["error"] == (
        "cuModuleGetFunction failed: CUDA_ERROR_INVALID_VALUE")


# -- parameter packing -----------------------------------------------------------------------

def test_pack_params_lays_out_each_value_at_its_size() -> None:
    params = [cuda_loader.Pointer(0x7F0012345678), cuda_loader.Value(0xFFFFFFFFFFFFFFF6, 8),
              cuda_loader.Value(1000, 4), cuda_loader.Value(0x3C00, 2), cuda_loader.Value(7, 1)]
    packed = cuda_loader.pack_params(params)
    slots = (ctypes.c_void_p * 5).from_address(packed.address)
    got = [ctypes.string_at(slots[i], n) for i, n in enumerate((8, 8, 4, 2, 1))]
    assert got == [(0x7F0012345678).to_bytes(8, "little"), (-10).to_bytes(8, "little",
                                                                           signed=True),
                   (1000).to_bytes(4, "little"), b"\x00\x3c", b"\x07"]
    with pytest.raises(ValueError, match="do not fit"):
        cuda_loader.pack_params([cuda_loader.Value(256, 1)])
    with pytest.raises(ValueError, match="only 1, 2, 4 or 8"):
        cuda_loader.pack_params([cuda_loader.Value(0, 3)])


def test_scalar_arguments_take_the_bits_and_size_of_the_cuda_signature() -> None:
    assert (ScalarArg(-1, S64).bits, ScalarArg(-1, S64).nbytes) == (2**64 - 1, 8)
    assert (ScalarArg(45, S32).bits, ScalarArg(45, S32).nbytes) == (45, 4)
    assert ScalarArg(0.5, F32).bits == 0x3F000000 and ScalarArg(0.5, F32).nbytes == 4
    assert ScalarArg(7, U16).nbytes == 2


# -- the comparisons --------------------------------------------------------------------------

def test_exact_comparison_allows_only_nan_payloads_to_differ() -> None:
    want = np.array([0x7E00, 0x3C00, 0xFC00, 0x0001], np.uint16)
    got = np.array([0x7FFF, 0x3C00, 0xFC00, 0x0001], np.uint16)
    result = compare_exact(got, want, "f16")
    assert result["ok"] and result["nan_payload_differences"] == 1
    assert not compare_exact(got, want, "u16")["ok"]  # integers have no NaN
    got[3] = 0x0000
    bad = compare_exact(got, want, "f16")
    assert not bad["ok"] and bad["first_mismatches"] == [
        {"index": 3, "got": "0x0000", "want": "0x0001"}]


def test_bounded_comparison_rules() -> None:
    f32 = np.float32
    want = np.array([1.0, 1.0, np.inf, np.nan, 3.39e38, np.inf, -np.inf], f32)
    got = np.array([1.0 + 2**-20, 1.0 + 2**-10, np.inf, np.nan, np.inf, 3.39e38, 3.39e38], f32)
    bound = np.array([2**-19, 2**-19, 0, 0, 1e37, 1e37, 1e37])
    result = compare_bounded(got, want, "f32", bound)
    # within, beyond, same inf, two NaNs, overflow within the bound (both ways), opposite signs
    assert result["mismatches"] == 2
    assert [m["index"] for m in result["first_mismatches"]] == [1, 6]
    assert not compare_bounded(np.array([1.0], f32), np.array([np.nan], f32), "f32",
                               np.array([np.inf]))["ok"]


def test_accuracy_rule() -> None:
    ref = np.array([1.0, 2.0])
    base = np.array([1.001, 2.0])
    ok = check_accuracy(np.array([1.002, 2.0], np.float32), "f32", ref, base, 2.0**-24)
    bad = check_accuracy(np.array([1.003, 2.0], np.float32), "f32", ref, base, 2.0**-24)
    assert ok["ok"] and not bad["ok"] and bad["max_error"] > bad["bound"]


# -- the conformance kernels do what they say (oracles from the PTX ISA) ------------------------

@pytest.fixture(scope="module")
def warp_and_memory():
    names = ("conformance_ldmatrix", "conformance_shfl", "conformance_cp_async",
             "conformance_half_arith", "conformance_approx")
    launches = {n: conformance_launch(n) for n in names}
    return {n: (launch, run_on_cpu_backend(launch)) for n, launch in launches.items()}


def test_ldmatrix_kernel_against_the_isa_fragment(warp_and_memory) -> None:
    launch, out = warp_and_memory["conformance_ldmatrix"]
    for block in range(len(launch.buffers["rows"])):
        mem, rows = launch.buffers["smem_init"][block], launch.buffers["rows"][block]
        k = 0
        for num, trans in LDMATRIX_VARIANTS:
            for q in range(num):  # matrix q's row r: the 8 b16 at lane 8q + r's address
                m = np.stack([mem[rows[8 * q + r] // 2:][:8] for r in range(8)])
                m = m.T if trans else m
                for i in range(32):
                    want = int(m[i // 4, 2 * (i % 4)]) | int(m[i // 4, 2 * (i % 4) + 1]) << 16
                    assert out["out"][block, k, i] == want, (num, trans, q, i)
                k += 1


def test_shfl_kernel_against_the_isa_formula(warp_and_memory) -> None:
    launch, out = warp_and_memory["conformance_shfl"]
    values, lane_b = launch.buffers["values"], launch.buffers["lane_b"]
    for v, (mode, b, c) in enumerate(SHFL_VARIANTS):
        for thread in range(values.size):
            warp0, i = thread - thread % 32, thread % 32
            bval = (int(lane_b[thread]) if b is None else b) & 31
            cval, mask = c & 31, (c >> 8) & 31
            max_lane = (i & mask) | (cval & ~mask)
            j = {"up": i - bval, "down": i + bval, "bfly": i ^ bval,
                 "idx": (i & mask) | (bval & ~mask)}[mode]
            valid = j >= max_lane if mode == "up" else j <= max_lane
            assert out["out"][v, thread] == values[warp0 + (j if valid else i)], (mode, b, c)


def test_cp_async_kernel_copies_src_size_bytes_and_zero_fills_the_rest(warp_and_memory) -> None:
    launch, out = warp_and_memory["conformance_cp_async"]
    src, sizes = launch.buffers["src"], launch.buffers["src_sizes"]
    for v, (_, size) in enumerate(CP_ASYNC_VARIANTS):
        assert set(sizes[v].tolist()) == set(range(size + 1))  # every src_size occurs
        for t in range(len(src)):
            s = int(sizes[v, t])
            want = np.full(16, 0xA5, np.uint8)
            want[:size] = 0
            want[:s] = src[t, 16 * v:16 * v + s]
            assert np.array_equal(out["out"][t, v], want), (v, t)


def test_half_arith_inputs_are_subnormal_where_they_say(warp_and_memory) -> None:
    launch, _ = warp_and_memory["conformance_half_arith"]
    for half, exponent_mask in (("bf16", 0x7F80), ("f16", 0x7C00)):
        a = launch.buffers[f"a_{half}"].view(np.uint16)
        c = launch.buffers[f"c_{half}"].view(np.uint16)
        subnormal_a = ((a & exponent_mask) == 0) & ((a & 0x7FFF) != 0)
        assert subnormal_a[0::4].all()  # category 0: a subnormal
        subnormal_c = ((c & exponent_mask) == 0) & ((c & 0x7FFF) != 0)
        assert subnormal_c[2::4].all()  # category 2: c subnormal


def test_half_arith_kernel_against_exact_rounding(warp_and_memory) -> None:
    """Each result is the exact ``a·b (+ c)`` rounded once: checked where that value is an f32
    (then numpy's / ml_dtypes' f32 → f16/bf16 rounding is the only one)."""
    import ml_dtypes

    launch, out = warp_and_memory["conformance_half_arith"]
    view = {"bf16": ml_dtypes.bfloat16, "f16": np.float16}
    for op, packed in (("fma", "bf16x2"), ("fma", "f16x2"), ("mul", "bf16x2")):
        half = packed[:-2]
        with np.errstate(invalid="ignore"):  # widening signalling NaNs
            a, b, c = (launch.buffers[f"{p}_{half}"].view(view[half]).astype(np.float64)
                       for p in "abc")
        with np.errstate(all="ignore"):
            exact = a * b + (c if op == "fma" else 0.0)  # a·b is exact in float64
            as_f32 = exact.astype(np.float32)
            sure = np.isfinite(exact) & (as_f32.astype(np.float64) == exact)
        got = out[f"out_{op}_{packed}"].view(view[half]).astype(np.float64)
        with np.errstate(over="ignore"):
            want = as_f32.astype(view[half]).astype(np.float64)
        agree = (got == want) | (np.isnan(got) & np.isnan(want))
        assert sure.mean() > 0.5 and agree[sure].all(), (op, packed,
                                                          np.flatnonzero(~agree & sure)[:4])


def test_approx_bounds_hold_the_isa_error_and_no_more(warp_and_memory) -> None:
    """Results off by the ISA's error pass, results off by 8 times more fail (moved toward
    zero by whole ulps of ``want``: every such value is an f32)."""
    launch, out = warp_and_memory["conformance_approx"]
    bounds = launch.bounds(out)["out"].reshape(len(APPROX_OPS), -1)
    for k, (op, ftz) in enumerate(APPROX_OPS):
        x, want = launch.buffers[f"x_{op}"], out["out"][k]
        finite = np.isfinite(want) & (np.abs(want) > 2.0**-100) & np.isfinite(x)
        bound = approx_bound(op, ftz, x, want)
        assert np.array_equal(bound, bounds[k])
        assert (bound[~np.isfinite(x)] == 0).all()
        ulp = np.spacing(np.abs(want)).astype(np.float64)
        for scale, ok in ((1.0, True), (8.0, False)):
            with np.errstate(invalid="ignore"):
                steps = np.floor(scale * bound / ulp)
                shifted = (want - np.sign(want) * steps * ulp).astype(np.float32)
            moved = finite & (shifted != want) & np.isfinite(bound)
            result = compare_bounded(np.where(moved, shifted, want), want, "f32", bound)
            assert result["ok"] == ok or not moved.any(), (op, ftz, scale)


_NO_TILEVM = no_tilevm_script("gpu_check", "cuModuleGetFunction", "CUDA_ERROR_NOT_FOUND")


def test_the_gpu_run_imports_no_tilevm(bundle, tmp_path) -> None:
    """The GPU half runs under a Python without tilevm, lark or llvmlite: it loads the
    comparisons by path (here it stops at a failing driver call, after everything is loaded)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _NO_TILEVM, str(BENCH), "--bundle", str(bundle.path),
         "--results", str(tmp_path), "--no-timing", "--only", "conformance_shfl"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 1 []"), done.stdout
    report = json.loads((tmp_path / "results.json").read_text())
    assert "CUDA_ERROR_NOT_FOUND" in report["launches"][0]["error"]


def test_partial_goldens_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_check.main(["--dry-run", "--only", "conformance_shfl", "--write-goldens", "x"])
    assert "cannot be combined with --only" in capsys.readouterr().err


def test_launch_overhead_fills_the_bundles_kernel_cache_and_fails_politely_without_a_gpu(
        tmp_path) -> None:
    """The dry run measures the launch path with the driver faked and leaves the compiled kernel
    in the bundle's cache for the GPU run (issue 13: the GPU check repeats the measurement with
    the real driver); without a GPU the real run reports why instead of raising."""
    line = gpu_check.launch_overhead(tmp_path, real=False, calls=200)
    assert line.startswith("launch overhead (torch arguments, cuLaunchKernel a no-op): median")
    entries = list((tmp_path / gpu_check.LAUNCH_OVERHEAD_CACHE / "kernels").glob("*.cubin"))
    assert len(entries) == 1
    assert gpu_check.launch_overhead(tmp_path, real=True, calls=10).startswith("failed (exit ")
