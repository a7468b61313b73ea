"""``bench/quant_linear_gpu.py`` without a GPU: the dry run's bundle for a few small cases, and
its GPU half run end to end with torch on the CPU and a fake CUDA driver that executes each
launch on tilevm's CPU backend from the bytes ``bench/cuda_loader.py`` packed.

The fake finds a launch's kernel by the SHA-256 of the cubin loaded (the ELF header gives its
length) and reads each parameter at the size of the kernel's C++ signature, so a parameter out
of the kernel's order, a wrong size or stride, or a workspace not cleared changes what runs. The
oracle of the outputs is float64 numpy on the bytes the kernel read (codes unpacked by
``tests/kernels/quant_reference.py``), not the GPU half's torch check.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
TESTS = Path(__file__).resolve().parents[1]
torch = pytest.importorskip("torch")  # the GPU half's tensors; torch's CPU build stands in


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


qlg = _load("quant_linear_gpu", BENCH / "quant_linear_gpu.py")
cases_module = _load("quant_linear_gpu_cases", BENCH / "quant_linear_gpu_cases.py")
quant_reference = _load("quant_reference", TESTS / "kernels" / "quant_reference.py")

# Small cases of the real kernels: a decode call (split-K, workspaces), a prefill call whose
# m is not a multiple of the tile; u3 codes straddle bytes (the unpacking of the other widths:
# test_dequantize_unpacks_lsb_first_codes).
SHAPE, ROWS, BITS, GEMM = (64, 256), (1, 24), (3,), 32


def _cubin_length(address: int) -> int:
    """A cubin's size from its ELF64 header: the end of its section or program header table."""
    header = ctypes.string_at(address, 64)
    (phoff,) = struct.unpack_from("<Q", header, 0x20)
    (shoff,) = struct.unpack_from("<Q", header, 0x28)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", header, 0x36)
    return max(phoff + phentsize * phnum, shoff + shentsize * shnum)


class FakeDriverAPI:
    """The driver calls ``cuda_loader`` makes; launches run on the CPU backend in host memory
    (torch's CPU tensors). Records every launch's parameter values, whether its workspaces
    were zero, and the first launch's inputs and output of each kernel."""

    CUresult = SimpleNamespace(CUDA_SUCCESS=0, CUDA_ERROR_INVALID_VALUE=1)
    CUfunction_attribute = SimpleNamespace(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=8)

    def __init__(self, kernels: dict[str, tuple], corrupt: str | None = None) -> None:
        # SHA-256 of a cubin -> (its Thread IR kernel, the bit width of its codes or None)
        self.kernels = {digest: kernel for digest, (kernel, _) in kernels.items()}
        self.bits = {digest: bits for digest, (_, bits) in kernels.items()}
        self.corrupt = corrupt  # after this function (or cubin) runs, flip a bit of y[0]
        self.launches: list[dict] = []
        self.compiled: dict[int, object] = {}

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGet(self, ordinal):
        return (0, ordinal)

    def cuDevicePrimaryCtxRetain(self, device):
        return (0, "context")

    def cuCtxSetCurrent(self, context):
        return (0,)

    def cuDeviceGetName(self, length, device):
        return (0, b"Fake GPU\0")

    def cuDriverGetVersion(self):
        return (0, 13000)

    def cuGetErrorName(self, status):
        return (0, b"CUDA_ERROR_INVALID_VALUE")

    def cuModuleLoadData(self, image):
        assert ctypes.string_at(image, 4) == b"\x7fELF"
        digest = hashlib.sha256(ctypes.string_at(image, _cubin_length(image))).hexdigest()
        return (0, digest) if digest in self.kernels else (1, None)

    def cuModuleGetFunction(self, module, name):
        kernel = self.kernels[module]
        return (0, module) if kernel.name == name.decode() else (1, None)

    def cuFuncSetAttribute(self, function, attribute, value):
        return (0,)

    def cuCtxSynchronize(self):
        return (0,)

    def cuLaunchKernel(self, function, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        from tilevm.backend.cpu import compile_kernel
        from tilevm.backend.cuda.cuda_types import c_type
        from tilevm.ir.thread.values import Const

        kernel = self.kernels[function]
        assert (bx, by, bz) == (kernel.block_threads, 1, 1) and shared == kernel.shared_bytes
        slots = (ctypes.c_void_p * len(kernel.params)).from_address(params)
        values = {}
        for p, at in zip(kernel.params, slots, strict=True):
            size = 8 if p.pointer else c_type(p.type).bits // 8
            bits = int.from_bytes(ctypes.string_at(at, size), "little")
            values[p.name] = bits if p.pointer else Const(
                bits & ((1 << p.type.bits) - 1), p.type).value
        record = {"function": kernel.name, "grid": (gx, gy, gz), "values": values}
        # Split-K's workspaces, (m, n) of 4-byte counters and sums: zero before every launch.
        workspaces = [n for n in values if n.startswith("workspace")]
        if workspaces:
            nbytes = 4 * values["m"] * values["n"]
            record["workspaces_zero"] = all(
                not any(ctypes.string_at(values[n], nbytes)) for n in workspaces)
        record["cubin"] = function
        first = not any(r["cubin"] == function and r["values"]["m"] == values.get("m")
                        for r in self.launches)
        if "w" in values and first:
            record["inputs"] = self._quant_inputs(values, self.bits[function])
        if id(kernel) not in self.compiled:
            self.compiled[id(kernel)] = compile_kernel(kernel)
        self.compiled[id(kernel)]((gx, gy, gz), *values.values())
        out = values.get("y", values.get("c"))
        if "inputs" in record:
            count = values["m"] * values["n"]
            record["y"] = np.frombuffer(ctypes.string_at(out, 2 * count), np.float16).copy()
        if self.corrupt in (kernel.name, function):
            ctypes.memmove(out + 1, bytes([ctypes.string_at(out + 1, 1)[0] ^ 0x40]), 1)
        self.launches.append(record)
        return (0,)

    @staticmethod
    def _quant_inputs(values: dict, bits: int) -> dict:
        """What the kernel reads: x, the codes and the scales."""
        m, n, k, groups = values["m"], values["n"], values["k"], values["groups"]
        packed = np.frombuffer(ctypes.string_at(values["w"], n * k * bits // 8), np.uint8)
        x = np.frombuffer(ctypes.string_at(values["x"], 2 * m * k), np.float16).copy()
        scales = np.frombuffer(ctypes.string_at(values["scales"], 2 * n * groups),
                               np.float16).copy()
        return {"m": m, "n": n, "k": k, "groups": groups, "bits": bits, "x": x,
                "scales": scales, "packed": packed.copy()}


def _candidates(m: int) -> list[dict]:
    return cases_module.tuning_candidates("split_k" if m <= 16 else "prefill")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The bundle of the small cases (the dry run's CLI) and the Thread IR of every cubin."""
    import tilevm as tv

    path = tmp_path_factory.mktemp("qlg_bundle")
    code = qlg.main(["--dry-run", "--bundle", str(path), "--shapes", "x".join(map(str, SHAPE)),
                     "--rows", ",".join(map(str, ROWS)), "--bits", ",".join(map(str, BITS)),
                     "--gemm-size", str(GEMM), "--only", "u*", "--candidates", "1"])
    assert code == 0
    manifest = json.loads((path / "manifest.json").read_text())
    kernels = {}
    launches = [(cases_module.library_launch(*SHAPE, m, b, tiles), b) for b in BITS
                for m in ROWS for tiles in (None, *_candidates(m)[:1])]
    launches += [(cases_module.gemm_launch(GEMM, t), None) for t in cases_module.GEMM_TILES]
    for launch, bits in launches:
        compiled = tv.compile(launch.kernel, "sm_90", spec=launch.args, **launch.constants)
        kernels[hashlib.sha256(compiled.cubin).hexdigest()] = (compiled.lowered.thread, bits)
    return SimpleNamespace(path=path, manifest=manifest, kernels=kernels)


def test_the_manifest_describes_every_case(bundle) -> None:
    m = bundle.manifest
    want = [f"u{b}_n{SHAPE[0]}_k{SHAPE[1]}_m{r}" for b in BITS for r in ROWS]
    assert [e["name"] for e in m["cases"]] == want
    assert len(m["gemms"]) == len(cases_module.GEMM_TILES) and "tuning" in m
    files = sorted(p.name for p in (bundle.path / "cubins").iterdir())
    candidates = [c for e in m["cases"] for c in e["candidates"]]
    assert len(files) == m["cubins"] == len({e["cubin"] for e in m["cases"] + m["gemms"]
                                              + candidates})
    for e in m["cases"]:
        n, k, rows, bits = e["n"], e["k"], e["m"], e["bits"]
        assert (bundle.path / e["cubin"]).read_bytes()[:4] == b"\x7fELF"
        assert e["variant"] == ("split_k" if rows <= 16 else "prefill")
        assert e["flops"] == 2 * rows * n * k
        assert e["bytes_moved"] == 2 * rows * k + n * k * bits // 8 + 2 * n * (k // 128) \
            + 2 * rows * n
        buffers = e["buffers"]
        assert buffers["w"] == {"dtype": f"u{bits}", "shape": [n, k],
                                "nbytes": n * k * bits // 8, "role": "codes"}
        assert buffers["scales"]["shape"] == [n, k // 128]
        assert buffers["y"]["role"] == "output" and buffers["x"]["role"] == "activations"
        # The grid of the variant's tiles: split-K splits K over the grid's third axis.
        tiles = e["tiles"]
        assert e["grid"] == [-(-rows // tiles["bm"]), -(-n // tiles["bn"]), tiles.get("split", 1)]
        names = [p["abi"] for p in e["params"]]
        assert names[:4] == ["x", "x_offset", "x_stride0_0", "x_stride1_0"]
        sizes = {p["abi"]: p["value"] for p in e["params"] if "value" in p}
        assert (sizes["m"], sizes["n"], sizes["k"], sizes["x_stride0_0"]) == (rows, n, k, k)
        if e["variant"] == "split_k":
            assert e["zero_before_launch"] == ["workspace_arrivals", "workspace_sums"]
            assert all(buffers[w]["nbytes"] == 4 * rows * n for w in e["zero_before_launch"])
        else:
            assert e["zero_before_launch"] == []
        # One candidate (--candidates 1): the variant's first other tiles, its own grid.
        (candidate,) = e["candidates"]
        assert candidate["tiles"] == _candidates(rows)[0] != tiles
        assert candidate["grid"] == [-(-rows // candidate["tiles"]["bm"]),
                                     -(-n // candidate["tiles"]["bn"]),
                                     candidate["tiles"].get("split", 1)]
        assert [p["abi"] for p in candidate["params"]] == names
    text = cases_module.describe(m, bundle.path)
    assert "u3_n64_k256_m1: split_k (bm=16 bn=64 bk=32 warps=4 split=4)" in text


def test_only_selects_cases_by_pattern() -> None:
    chosen = cases_module.all_cases(only="u4_*_m1,u8_n4096_k4096_m16")
    assert [c.name for c in chosen] == [
        "u4_n4096_k4096_m1", "u8_n4096_k4096_m16", "u4_n11008_k4096_m1", "u4_n4096_k11008_m1",
        "u4_n28672_k8192_m1"]
    assert len(cases_module.all_cases()) == 48
    assert qlg.main(["--dry-run", "--only", "nothing*"]) == 2


def _gpu_args(bundle, results) -> list[str]:
    return ["--bundle", str(bundle.path), "--results", str(results), "--reps", "2",
            "--max-reps", "2", "--warmup", "1", "--tune-reps", "2", "--copy-bytes", "4096",
            "--flush-bytes", "4096"]


@pytest.fixture
def cpu_standin(monkeypatch):
    monkeypatch.setattr(qlg, "TORCH_DEVICE", "cpu")
    return monkeypatch


def _oracle_check(inputs: dict, y: np.ndarray) -> None:
    """y against float64 numpy on the bytes the kernel read; the bound is (2k+2)·2^-24·Σ|x·w|
    plus an f16 rounding, tv.dot's contract."""
    m, n, k, groups = inputs["m"], inputs["n"], inputs["k"], inputs["groups"]
    bits = inputs["bits"]
    codes = quant_reference.unpack(inputs["packed"], bits, (n, k)).astype(np.float64)
    scale = np.repeat(inputs["scales"].reshape(n, groups).astype(np.float64), 128, axis=1)[:, :k]
    w = (codes - 2 ** (bits - 1)) * scale
    w16 = w.astype(np.float16).astype(np.float64)  # the kernel rounds each weight once
    x = inputs["x"].reshape(m, k).astype(np.float64)
    ref = x @ w16.T
    bound = (2 * k + 2) * 2.0**-24 * (np.abs(x) @ np.abs(w16).T) + 2.0**-11 * np.abs(ref)
    assert np.all(np.abs(y.reshape(m, n).astype(np.float64) - ref) <= bound + 2.0**-24)


def test_gpu_half_runs_every_case_and_its_checks_pass(bundle, tmp_path, cpu_standin) -> None:
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main(_gpu_args(bundle, tmp_path))
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 0, report
    assert report["device"] == "Fake GPU" and report["failed"] == [] and report["skipped"] == []
    assert report["command"].startswith("python3 bench/quant_linear_gpu.py --bundle ")
    names = [e["name"] for e in bundle.manifest["cases"]]
    assert [r["name"] for r in report["cases"]] == names
    for r in report["cases"]:
        assert r["check"]["ok"] and r["check"]["mismatches"] == 0
        assert r["reps"] == 2 and r["time_us"] > 0 and r["torch_us"] > 0
        assert r["gb_per_s"] == pytest.approx(r["bytes_moved"] / r["time_us"] / 1e3)
        rates = report["rates"]
        assert r["fraction_of_mma"] == pytest.approx(r["tflops"] / rates["mma_tflops"])
        bound_us = max(r["bytes_moved"] / rates["copy_gb_per_s"] / 1e3,
                       r["flops"] / rates["mma_tflops"] / 1e6)
        assert r["fraction_of_roofline"] == pytest.approx(bound_us / r["time_us"])
        # The tuning pass: the defaults and one candidate, both checked and timed, the faster
        # timed again; its rates from its own time.
        tuned = r["tuned"]
        assert [t["tiles"] for t in tuned["tried"]] == [r["tiles"], _candidates(r["m"])[0]]
        assert all(t["check_ok"] and t["median_us"] > 0 for t in tuned["tried"])
        assert tuned["tiles"] in [t["tiles"] for t in tuned["tried"]]
        assert tuned["gb_per_s"] == pytest.approx(r["bytes_moved"] / tuned["time_us"] / 1e3)
    assert all(g["check"]["ok"] for g in report["gemms"])
    # Each case: 1 checked + 1 warm-up + 2 timed launches with the defaults (split-K: 1 + 2
    # more timed with the clearing), then per tile tried 1 checked + 1 warm-up + 2 timed, and the
    # fastest 1 + 2 more; all found their workspaces zero.
    quant = [x for x in api.launches if x["function"].startswith("quant_linear")]
    split_cases = [r for r in report["cases"] if r["variant"] == "split_k"]
    assert len(quant) == (4 + 2 * 4 + 3) * len(names) + 3 * len(split_cases)
    assert all(("time_with_clear_us" in r) == (r["variant"] == "split_k")
               for r in report["cases"])
    split = [x for x in quant if x["function"] == "quant_linear_split_k"]
    assert split and all(x["workspaces_zero"] for x in split)
    # The outputs against the independent oracle: the first launch of each cubin and m.
    checked = 0
    for launch in quant:
        if "inputs" in launch:
            inputs = launch["inputs"]
            entry, = (e for e in bundle.manifest["cases"] if e["m"] == inputs["m"]
                      and e["bits"] == inputs["bits"])
            assert any(launch["cubin"][:12] in c["cubin"] for c in [entry, *entry["candidates"]])
            assert launch["values"]["w_stride0_0"] == entry["k"]
            _oracle_check(inputs, launch["y"])
            checked += 1
    assert checked == 2 * len(names)  # the defaults' cubin and the candidate's
    text = qlg.table(report["cases"])
    assert text.count("| ok |") == len(names)


def test_gpu_half_fails_a_corrupted_output(bundle, tmp_path, cpu_standin) -> None:
    api = FakeDriverAPI(bundle.kernels, corrupt="quant_linear_prefill")
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(bundle, tmp_path), "--only", "u3_*"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [f"u3_n64_k256_m{ROWS[1]}"]
    check = report["cases"][1]["check"]
    assert check["mismatches"] == 1 and check["first_mismatch"]["index"] == 0


def test_a_candidate_with_a_wrong_output_is_reported_and_not_chosen(bundle, tmp_path,
                                                                    cpu_standin) -> None:
    case = next(e for e in bundle.manifest["cases"] if e["m"] == 1)
    candidate = case["candidates"][0]
    digest = next(d for d in bundle.kernels if d[:12] in candidate["cubin"])
    api = FakeDriverAPI(bundle.kernels, corrupt=digest)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(bundle, tmp_path), "--only", case["name"]])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [f"{case['name']} {candidate['tiles']}"]
    result = report["cases"][0]
    assert result["check"]["ok"] and result["tuned"]["tiles"] == case["tiles"]
    assert [t["check_ok"] for t in result["tuned"]["tried"]] == [True, False]


def test_workspaces_left_dirty_are_seen(bundle, tmp_path, cpu_standin) -> None:
    """Mutation: without the clearing, split-K's counters and sums are left from the launch
    before (the first launch finds fresh zero buffers, so only the fake's check sees it: the
    last block of a tile never arrives again and y keeps the first launch's values)."""
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    real = qlg.Bench.launcher

    def no_clear(self, entry, buffers):
        launch = real(self, entry, buffers)
        launch.clear = lambda: None
        return launch

    cpu_standin.setattr(qlg.Bench, "launcher", no_clear)
    qlg.main([*_gpu_args(bundle, tmp_path), "--only", "u3_*_m1"])
    split = [x for x in api.launches if x["function"] == "quant_linear_split_k"]
    assert split[0]["workspaces_zero"] and not all(x["workspaces_zero"] for x in split)


def test_dequantize_unpacks_lsb_first_codes() -> None:
    rng = np.random.default_rng(1)
    for bits in (2, 3, 4, 5, 8):
        packed = rng.integers(0, 256, 24 * bits, dtype=np.uint8)  # 3 rows of 64 codes
        want = quant_reference.unpack(packed, bits, (3, 64))
        got = qlg.unpack_codes(torch, torch.from_numpy(packed), bits, 3, 64)
        assert np.array_equal(got.numpy(), want), bits
        scales = torch.from_numpy(rng.uniform(0.01, 0.02, (3, 1)).astype(np.float16))
        weights = qlg.dequantize(torch, torch.from_numpy(packed), scales, bits, 3, 64, 128)
        exact = (want - 2 ** (bits - 1)) * scales.numpy().astype(np.float64)
        assert np.array_equal(weights.numpy(), exact.astype(np.float16)), bits


def test_check_output_bound() -> None:
    """Within the bound for an f32-accumulated, f16-rounded result; a change of 5 % fails."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((4, 512)).astype(np.float16))
    w = torch.from_numpy((rng.standard_normal((8, 512)) * 0.05).astype(np.float16))
    y = (x.double() @ w.double().t()).half()
    assert qlg.check_output(torch, y, x, w)["ok"]
    y[2, 3] = y[2, 3] * 1.05 + 0.01
    bad = qlg.check_output(torch, y, x, w)
    assert not bad["ok"] and bad["first_mismatch"]["index"] == 2 * 8 + 3
    y[0, 0] = float("nan")
    assert qlg.check_output(torch, y, x, w)["mismatches"] == 2


_NO_TILEVM = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tilevm", "lark", "llvmlite", "ml_dtypes", "platformdirs"):
            raise ImportError(f"the GPU run imported {name}")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
import quant_linear_gpu
class Api:
    CUresult = type("R", (), {"CUDA_SUCCESS": 0})
    def __getattr__(self, name):
        if name == "cuModuleLoadData":
            return lambda *a: (1, None)
        if name == "cuGetErrorName":
            return lambda status: (0, b"CUDA_ERROR_INVALID_IMAGE")
        return lambda *a: (0, b"Fake GPU" if name == "cuDeviceGetName" else 1)
quant_linear_gpu.DRIVER_API = Api()
quant_linear_gpu.TORCH_DEVICE = "cpu"
code = quant_linear_gpu.main(sys.argv[2:])
print("exit", code, sorted(m for m in sys.modules if m.split(".")[0] == "tilevm"))
"""


def test_the_gpu_run_imports_no_tilevm(bundle, tmp_path) -> None:
    """The GPU half runs under a Python without tilevm, lark or llvmlite (here every cubin
    fails to load, after everything is imported, and each failure is recorded by name)."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_TILEVM, str(BENCH), *_gpu_args(bundle, tmp_path),
         "--only", "u3_*_m1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 1 []"), done.stdout
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["cases"][0]["error"] == (
        "CudaError: cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE")
