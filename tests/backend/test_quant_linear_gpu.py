"""``bench/quant_linear_gpu.py`` without a GPU: the dry run's bundle for a few small cases, and
its GPU half run end to end with torch on the CPU and a fake CUDA driver that executes each
launch on tilevm's CPU backend from the bytes ``bench/cuda_loader.py`` packed.

The fake finds a launch's kernel by the SHA-256 of the cubin loaded (the ELF header gives its
length) and reads each parameter at the size of the kernel's C++ signature, so a parameter out
of the kernel's order, a wrong size or stride, a workspace not cleared, or a buffer of the
preparation chain wired to the wrong launch changes what runs. The oracles are independent of
the GPU half's torch check: float64 numpy on the dense codes the preparation read (unpacked by
``tests/kernels/quant_reference.py``) for every output, and the numpy reference of the prepared
format (``tilevm.kernels.weight_preparation.prepare_weights``) for the words it wrote.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from no_tilevm_script import no_tilevm_script

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
        record = {"function": kernel.name, "grid": (gx, gy, gz), "values": values,
                  "cubin": function}
        # Split-K's workspaces, (m, n) of 4-byte counters and sums: zero before every launch.
        workspaces = [n for n in values if n.startswith("workspace")]
        if workspaces:
            nbytes = 4 * values["m"] * values["n"]
            record["workspaces_zero"] = all(
                not any(ctypes.string_at(values[n], nbytes)) for n in workspaces)
        # What the first launch of each cubin (and m) read, and after it ran, what it wrote.
        first = not any(r["cubin"] == function and r["values"].get("m") == values.get("m")
                        for r in self.launches)
        bits = self.bits[function]
        if first:
            record["inputs"] = self._inputs(kernel.name, values, bits)
        if id(kernel) not in self.compiled:
            self.compiled[id(kernel)] = compile_kernel(kernel)
        self.compiled[id(kernel)]((gx, gy, gz), *values.values())
        out = values.get("y", values.get("c", values.get("out")))
        if first:
            record["output"] = self._output(kernel.name, values, bits)
        if self.corrupt in (kernel.name, function):
            ctypes.memmove(out + 1, bytes([ctypes.string_at(out + 1, 1)[0] ^ 0xFF]), 1)
        self.launches.append(record)
        return (0,)

    @staticmethod
    def _inputs(name: str, values: dict, bits: int | None) -> dict:
        """What the kernel reads: the dense codes (preparation; the dense kernels), the scales,
        x, the prepared words (the prepared GEMMs)."""
        def read(key: str, nbytes: int, dtype) -> np.ndarray:
            return np.frombuffer(ctypes.string_at(values[key], nbytes), dtype).copy()

        if name == "prepare_codes_kernel":
            return {"packed": read("w", values["n"] * values["kp"] * bits // 8, np.uint8),
                    "n": values["n"], "k": values["kp"], "bits": bits}
        if name == "prepare_values_kernel":
            return {"scales": read("values", 2 * values["n"] * values["groups"], np.float16),
                    "groups": values["groups"]}
        if name.startswith(("quant_linear", "prepared_linear")):
            m, n, k = values["m"], values["n"], values["k"]
            out = {"m": m, "n": n, "k": k, "bits": bits,
                   "x": read("x", 2 * m * k, np.float16)}
            if name.startswith("quant_linear"):
                out["packed"] = read("w", n * k * bits // 8, np.uint8)
                out["scales"] = read("scales", 2 * n * values["groups"], np.float16)
            else:
                out["wp"] = read("wp", 4 * values["nc"] * values["kc"] * values["lw"], np.uint32)
                out["sp"] = read("sp", 4 * values["nc"] * values["groups"] * values["sw"],
                                 np.uint32)
            return out
        return {}

    @staticmethod
    def _output(name: str, values: dict, bits: int | None) -> np.ndarray | None:
        """What the kernel wrote: the prepared words, or y."""
        if name.startswith("prepare_"):
            count = values["chunks"] * values.get("steps", values.get("groups", 1)) * values.get(
                "lane_words", values.get("group_words"))
            return np.frombuffer(ctypes.string_at(values["out"], 4 * count), np.uint32).copy()
        if "y" in values:
            return np.frombuffer(ctypes.string_at(values["y"], 2 * values["m"] * values["n"]),
                                 np.float16).copy()
        return None


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
    launches = [(launch, b) for b in BITS for launch in cases_module.prepare_launches(*SHAPE, b)]
    launches += [(make(*SHAPE, m, b, tiles), b) for b in BITS for m in ROWS
                 for make, tiles in ((cases_module.library_launch, None),
                                     (cases_module.library_launch, _candidates(m)[0]),
                                     (cases_module.dense_launch, None))]
    launches += [(cases_module.gemm_launch(GEMM, t), None) for t in cases_module.GEMM_TILES]
    for launch, bits in launches:
        compiled = tv.compile(launch.kernel, "sm_90", spec=launch.args, **launch.constants)
        kernels[hashlib.sha256(compiled.cubin).hexdigest()] = (compiled.lowered.thread, bits)
    return SimpleNamespace(path=path, manifest=manifest, kernels=kernels)


def test_the_manifest_describes_every_case(bundle) -> None:
    m = bundle.manifest
    assert m["version"] == qlg.MANIFEST_VERSION == cases_module.MANIFEST_VERSION == 2
    want = [f"u{b}_n{SHAPE[0]}_k{SHAPE[1]}_m{r}" for b in BITS for r in ROWS]
    assert [e["name"] for e in m["cases"]] == want
    assert len(m["gemms"]) == len(cases_module.GEMM_TILES) and "tuning" in m
    files = sorted(p.name for p in (bundle.path / "cubins").iterdir())
    launches = [x for e in m["cases"] for x in [e, *e["prepare"], e["dense"], *e["candidates"]]]
    assert len(files) == m["cubins"] == len({x["cubin"] for x in launches + m["gemms"]})
    for e in m["cases"]:
        n, k, rows, bits = e["n"], e["k"], e["m"], e["bits"]
        bk = {2: 64, 3: 128, 4: 32, 8: 32}[bits]  # default_chunk_k's rule for groups of 128
        assert e["bk"] == bk == cases_module.chunk_k(bits)
        assert (bundle.path / e["cubin"]).read_bytes()[:4] == b"\x7fELF"
        assert e["function"] == ("prepared_linear_split_k" if rows <= 16
                                 else "prepared_linear_prefill")
        assert e["variant"] == ("split_k" if rows <= 16 else "prefill")
        assert e["flops"] == 2 * rows * n * k
        assert e["bytes_moved"] == 2 * rows * k + n * k * bits // 8 + 2 * n * (k // 128) \
            + 2 * rows * n
        # The chain: preparation writes wp and sp from the dense codes and scales; the prepared
        # GEMM reads them (and x), the dense kernel the dense codes.
        codes, values = e["prepare"]
        assert (codes["function"], values["function"]) == ("prepare_codes_kernel",
                                                           "prepare_values_kernel")
        assert (codes["writes"], values["writes"]) == (["wp"], ["sp"])
        words = 32 * bk * bits // 32  # 32-bit words of a 32 × bk chunk
        assert codes["buffers"]["w"] == {"dtype": f"u{bits}", "shape": [n, k],
                                         "nbytes": n * k * bits // 8, "role": "codes"}
        assert codes["buffers"]["wp"] == {"dtype": "u32", "shape": [n // 32, k // bk, words],
                                          "nbytes": 4 * n // 32 * k // bk * words,
                                          "role": "prepared"}
        assert values["buffers"]["scales"]["shape"] == [n, k // 128]
        assert values["buffers"]["sp"] == {"dtype": "u32", "shape": [n // 32, k // 128, 16],
                                           "nbytes": 64 * n // 32 * k // 128,
                                           "role": "prepared"}
        buffers = e["buffers"]
        assert {name: b["role"] for name, b in buffers.items()
                if b["role"] != "workspace"} == {"x": "activations", "wp": "prepared",
                                                  "sp": "prepared", "zp": "dummy",
                                                  "bias": "dummy", "y": "output"}
        assert buffers["wp"] == codes["buffers"]["wp"] and buffers["sp"] == values["buffers"]["sp"]
        assert "writes" not in e
        # The grid of the variant's tiles: 32 columns of y per warp; split-K splits K over the
        # grid's third axis.
        tiles = e["tiles"]
        assert e["grid"] == [-(-rows // tiles["bm"]), -(-n // (32 * tiles["warps"])),
                             tiles.get("split", 1)]
        sizes = {p["abi"]: p["value"] for p in e["params"] if "value" in p}
        assert (sizes["m"], sizes["n"], sizes["k"], sizes["x_stride0_0"]) == (rows, n, k, k)
        pointers = [p["buffer"] for p in e["params"] if "buffer" in p]
        assert pointers[:6] == ["x", "wp", "sp", "zp", "bias", "y"]
        dense = e["dense"]
        assert dense["function"] == f"quant_linear_{e['variant']}"
        assert [p["buffer"] for p in dense["params"] if "buffer" in p][:3] == [
            "x", "w", "scales"]
        assert dense["buffers"]["y"]["role"] == "output"
        assert dense["buffers"]["w"] == codes["buffers"]["w"]
        for launch in (e, dense):
            # Split-K's counters and sums are restored by the kernel: zeroed when allocated,
            # never cleared before a launch (the fake GPU runs every launch on them in turn).
            assert launch["zero_before_launch"] == []
            if launch["variant"] == "split_k":
                for w in ("workspace_arrivals", "workspace_partials"):
                    assert launch["buffers"][w]["nbytes"] == 4 * rows * n
                    assert launch["buffers"][w]["zeroed"] and launch["buffers"][w]["restored"]
        # One candidate (--candidates 1): the variant's first other tiles, its own grid.
        (candidate,) = e["candidates"]
        assert candidate["tiles"] == _candidates(rows)[0] != tiles
        assert candidate["grid"] == [-(-rows // candidate["tiles"]["bm"]),
                                     -(-n // (32 * candidate["tiles"]["warps"])),
                                     candidate["tiles"].get("split", 1)]
        assert [p["abi"] for p in candidate["params"]] == [p["abi"] for p in e["params"]]
    text = cases_module.describe(m, bundle.path)
    from tilevm.kernels.prepared_linear import PREPARED_VARIANTS

    defaults = " ".join(f"{k}={v}" for k, v in PREPARED_VARIANTS["split_k"][2].items())
    assert f"prepared split_k: prepared_linear_split_k ({defaults})" in text
    assert "prepare_codes_kernel (bk=128)" in text and "buffers w → wp" in text


def test_the_tuning_candidates_are_the_prepared_spaces() -> None:
    from tilevm.kernels.prepared_linear import PREPARED_VARIANTS

    split, prefill = (cases_module.tuning_candidates(v) for v in ("split_k", "prefill"))
    assert len(split) == 1 * 3 * 3 - 1 and len(prefill) == 2 * 3 * 3 - 1
    assert PREPARED_VARIANTS["split_k"][2] not in split
    assert {"bm": 128, "warps": 8, "stages": 4} in prefill
    with pytest.raises(ValueError, match="variant='general'"):
        cases_module.tuning_candidates("general")


def test_only_selects_cases_by_pattern() -> None:
    chosen = cases_module.all_cases(only="u4_*_m1,u8_n4096_k4096_m16")
    assert [c.name for c in chosen] == [
        "u4_n4096_k4096_m1", "u8_n4096_k4096_m16", "u4_n11008_k4096_m1", "u4_n4096_k11008_m1",
        "u4_n28672_k8192_m1"]
    assert len(cases_module.all_cases()) == 48
    assert qlg.main(["--dry-run", "--only", "nothing*"]) == 2


def _gpu_args(path, results) -> list[str]:
    return ["--bundle", str(path), "--results", str(results), "--reps", "2",
            "--max-reps", "2", "--warmup", "1", "--tune-reps", "2", "--copy-bytes", "4096",
            "--flush-bytes", "4096"]


@pytest.fixture
def cpu_standin(monkeypatch):
    monkeypatch.setattr(qlg, "TORCH_DEVICE", "cpu")
    return monkeypatch


def _dense_weights(packed: np.ndarray, scales: np.ndarray, bits: int, n: int,
                   k: int) -> np.ndarray:
    """The f16 weights (code − 2^(bits−1)) · scale of the dense codes, rounded once, in float64."""
    codes = quant_reference.unpack(packed, bits, (n, k)).astype(np.float64)
    scale = np.repeat(scales.reshape(n, -1).astype(np.float64), 128, axis=1)[:, :k]
    w = (codes - 2 ** (bits - 1)) * scale
    return w.astype(np.float16).astype(np.float64)  # the kernels round each weight once


def _oracle_check(x: np.ndarray, w16: np.ndarray, y: np.ndarray) -> bool:
    """y against float64 numpy; the bound is (2k+2)·2^-24·Σ|x·w| plus an f16 rounding, tv.dot's
    contract."""
    m, k = x.shape[0] // w16.shape[1], w16.shape[1]
    x = x.reshape(m, k).astype(np.float64)
    ref = x @ w16.T
    bound = (2 * k + 2) * 2.0**-24 * (np.abs(x) @ np.abs(w16).T) + 2.0**-11 * np.abs(ref)
    return bool(np.all(np.abs(y.reshape(ref.shape).astype(np.float64) - ref)
                       <= bound + 2.0**-24))


def _expected_words(packed: np.ndarray, scales: np.ndarray, bits: int, n: int, k: int,
                    bk: int) -> tuple[np.ndarray, np.ndarray]:
    """The prepared codes and scale words of the dense codes by the format's numpy reference."""
    import tilevm as tv
    from tilevm.kernels.prepared_layouts import chunk_layout, value_layout
    from tilevm.kernels.weight_preparation import prepare_weights

    codes = quant_reference.unpack(packed, bits, (n, k)).astype(np.int64)
    layout = tv.fast_cast_layout(chunk_layout(bk), f"u{bits}", "f16")
    wp = prepare_weights(codes, f"u{bits}", layout)
    groups = k // 128
    scale_bits = scales.reshape(n, groups).view(np.uint16).astype(np.int64)
    sp = prepare_weights(scale_bits, "f16", value_layout(32, 1))
    return wp.reshape(-1), sp.reshape(-1)


def test_gpu_half_runs_every_case_and_its_checks_pass(bundle, tmp_path, cpu_standin) -> None:
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main(_gpu_args(bundle.path, tmp_path))
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 0, report
    assert report["device"] == "Fake GPU" and report["failed"] == [] and report["skipped"] == []
    assert report["command"].startswith("python3 bench/quant_linear_gpu.py --bundle ")
    names = [e["name"] for e in bundle.manifest["cases"]]
    assert [r["name"] for r in report["cases"]] == names
    for r in report["cases"]:
        assert r["check"]["ok"] and r["check"]["mismatches"] == 0
        assert r["dense_check"]["ok"] and r["dense_time_us"] > 0 and r["dense_reps"] == 2
        assert r["speedup_over_dense"] == pytest.approx(r["dense_time_us"] / r["time_us"])
        assert r["prepare_us"] > 0 and r["prepare_reps"] == 2
        assert r["reps"] == 2 and r["time_us"] > 0 and r["torch_us"] > 0
        assert r["gb_per_s"] == pytest.approx(r["bytes_moved"] / r["time_us"] / 1e3)
        rates = report["rates"]
        assert r["fraction_of_mma"] == pytest.approx(r["tflops"] / rates["mma_tflops"])
        bound_us = max(r["bytes_moved"] / rates["copy_gb_per_s"] / 1e3,
                       r["flops"] / rates["mma_tflops"] / 1e6)
        assert r["fraction_of_roofline"] == pytest.approx(bound_us / r["time_us"])
        # The tuning pass: the prepared defaults and one candidate, both checked and timed, the
        # faster timed again; its rates from its own time.
        tuned = r["tuned"]
        assert [t["tiles"] for t in tuned["tried"]] == [r["tiles"], _candidates(r["m"])[0]]
        assert all(t["check_ok"] and t["median_us"] > 0 for t in tuned["tried"])
        assert tuned["tiles"] in [t["tiles"] for t in tuned["tried"]]
        assert tuned["gb_per_s"] == pytest.approx(r["bytes_moved"] / tuned["time_us"] / 1e3)
    assert all(g["check"]["ok"] for g in report["gemms"])
    # The preparation: once for the one weight matrix (both cases share it): 1 run, then
    # 1 warm-up + 2 timed of the chain.
    for function in ("prepare_codes_kernel", "prepare_values_kernel"):
        assert sum(x["function"] == function for x in api.launches) == 4
    # Each case: 1 checked + 1 warm-up + 2 timed launches of the prepared GEMM with the defaults,
    # then per tile tried 1 checked + 1 warm-up + 2 timed, and the fastest 1 + 2 more; the dense
    # kernel 1 checked + 1 warm-up + 2 timed. Nothing is cleared before a launch (no variant has
    # a workspace the kernel does not restore), so no time with the clearing either.
    prepared = [x for x in api.launches if x["function"].startswith("prepared_linear")]
    dense = [x for x in api.launches if x["function"].startswith("quant_linear")]
    assert len(prepared) == (4 + 2 * 4 + 3) * len(names)
    assert len(dense) == 4 * len(names)
    assert not any("time_with_clear_us" in r for r in report["cases"])
    # Every split-K launch found its counters and sums zero, though only their allocation
    # zeroed them: each launch before it (on the CPU backend) restored them.
    split = [x for x in api.launches if x["function"].endswith("split_k")]
    assert len(split) > 2 and all(x["workspaces_zero"] for x in split)
    # The words the preparation wrote are the format's reference bytes of the dense codes it
    # read; every GEMM's first output (the prepared defaults, the candidate, the dense kernel)
    # is float64 numpy's of those dense codes.
    (codes,) = (x for x in api.launches if x["function"] == "prepare_codes_kernel"
                and "inputs" in x)
    (values,) = (x for x in api.launches if x["function"] == "prepare_values_kernel"
                 and "inputs" in x)
    n, k, bits = (codes["inputs"][key] for key in ("n", "k", "bits"))
    packed, scales = codes["inputs"]["packed"], values["inputs"]["scales"]
    want_wp, want_sp = _expected_words(packed, scales, bits, n, k, cases_module.chunk_k(bits))
    assert np.array_equal(codes["output"], want_wp) and np.array_equal(values["output"], want_sp)
    w16 = _dense_weights(packed, scales, bits, n, k)
    checked = 0
    for launch in prepared + dense:
        if "inputs" in launch:
            inputs = launch["inputs"]
            entry, = (e for e in bundle.manifest["cases"] if e["m"] == inputs["m"])
            assert any(launch["cubin"][:12] in c["cubin"]
                       for c in [entry, entry["dense"], *entry["candidates"]])
            if launch in prepared:  # it read the words the preparation wrote
                assert np.array_equal(inputs["wp"], want_wp)
                assert np.array_equal(inputs["sp"], want_sp)
            else:
                assert np.array_equal(inputs["packed"], packed)
            assert _oracle_check(inputs["x"], w16, launch["output"])
            checked += 1
    assert checked == 3 * len(names)  # the defaults', the candidate's and the dense cubin
    text = qlg.table(report["cases"])
    assert text.count("| ok |") == len(names)


def test_gpu_half_fails_a_corrupted_output(bundle, tmp_path, cpu_standin) -> None:
    api = FakeDriverAPI(bundle.kernels, corrupt="prepared_linear_prefill")
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(bundle.path, tmp_path), "--only", "u3_*"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [f"u3_n64_k256_m{ROWS[1]}"]
    check = report["cases"][1]["check"]
    assert check["mismatches"] == 1 and check["first_mismatch"]["index"] == 0
    assert report["cases"][1]["dense_check"]["ok"]


def test_gpu_half_fails_a_corrupted_dense_output(bundle, tmp_path, cpu_standin) -> None:
    """The dense kernel's row is checked too (and reported under its own name)."""
    api = FakeDriverAPI(bundle.kernels, corrupt="quant_linear_split_k")
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(bundle.path, tmp_path), "--only", "u3_*_m1", "--no-tune"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == ["u3_n64_k256_m1 dense"]
    result = report["cases"][0]
    assert result["check"]["ok"] and result["dense_check"]["mismatches"] == 1
    assert "dense FAILED" in qlg.table(report["cases"])


def test_a_corrupted_prepared_word_fails_every_prepared_check(bundle, tmp_path,
                                                              cpu_standin) -> None:
    """Mutation: one byte of the prepared codes flipped after the preparation (the dense codes
    intact): the prepared GEMMs' checks fail, the dense kernel's pass."""
    api = FakeDriverAPI(bundle.kernels, corrupt="prepare_codes_kernel")
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(bundle.path, tmp_path), "--no-tune"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [e["name"] for e in bundle.manifest["cases"]]
    for r in report["cases"]:
        assert not r["check"]["ok"] and r["dense_check"]["ok"]


def _rewired(bundle, tmp_path, change) -> Path:
    """A copy of the bundle whose manifest ``change`` edited."""
    path = tmp_path / "bundle"
    shutil.copytree(bundle.path, path)
    manifest = json.loads((path / "manifest.json").read_text())
    for entry in manifest["cases"]:
        change(entry)
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def _read_instead(entry: dict, old: str, new: str) -> None:
    """The prepared GEMM (and its candidates) read the case's buffer ``new`` for ``old``."""
    for launch in [entry, *entry["candidates"]]:
        launch["buffers"][new] = launch["buffers"].pop(old)
        for p in launch["params"]:
            if p.get("buffer") == old:
                p["buffer"] = new


def test_the_gemm_wired_to_the_dense_codes_fails(bundle, tmp_path, cpu_standin) -> None:
    """Mutation: the prepared GEMM reads the dense codes (of the same size for u3 in chunks of
    128) instead of the prepared ones: its check fails."""
    path = _rewired(bundle, tmp_path, lambda e: _read_instead(e, "wp", "w"))
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(path, tmp_path), "--no-tune"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [e["name"] for e in bundle.manifest["cases"]]
    assert all(not r["check"]["ok"] and r["dense_check"]["ok"] for r in report["cases"])


def test_a_chain_whose_gemm_reads_unwritten_words_is_an_error(bundle, tmp_path,
                                                              cpu_standin) -> None:
    """Mutation: the preparation writes its scale words under another name than the GEMM
    reads: each case fails with an error naming the buffer, before any GEMM runs."""
    def rewire(entry: dict) -> None:
        values = entry["prepare"][1]
        values["buffers"]["sq"] = values["buffers"].pop("sp")
        values["writes"] = ["sq"]
        for p in values["params"]:
            if p.get("buffer") == "sp":
                p["buffer"] = "sq"

    path = _rewired(bundle, tmp_path, rewire)
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(path, tmp_path), "--no-tune"])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [e["name"] for e in bundle.manifest["cases"]]
    for r in report["cases"]:
        assert r["error"] == (f"ValueError: buffer sp of {r['name']}: prepared words that no "
                              "launch before it wrote")
    assert not any(x["function"].startswith(("prepared_linear", "quant_linear"))
                   for x in api.launches)


def test_a_buffer_of_the_wrong_size_is_an_error(bundle, tmp_path, cpu_standin) -> None:
    """Mutation: the prepared GEMM reads the prepared codes where it wants its scale words."""
    path = _rewired(bundle, tmp_path, lambda e: _read_instead(e, "sp", "wp"))
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(path, tmp_path), "--no-tune", "--only", "u3_*_m1"])
    report = json.loads((tmp_path / "results.json").read_text())
    buffers = bundle.manifest["cases"][0]["buffers"]
    assert code == 1 and report["cases"][0]["error"] == (
        f"ValueError: buffer wp of u3_n64_k256_m1: the launch reads {buffers['sp']['nbytes']} "
        f"bytes, the case's tensor has {buffers['wp']['nbytes']}")
    assert not any(x["function"].startswith("prepared_linear") for x in api.launches)


def test_a_candidate_with_a_wrong_output_is_reported_and_not_chosen(bundle, tmp_path,
                                                                    cpu_standin) -> None:
    case = next(e for e in bundle.manifest["cases"] if e["m"] == 1)
    candidate = case["candidates"][0]
    digest = next(d for d in bundle.kernels if d[:12] in candidate["cubin"])
    api = FakeDriverAPI(bundle.kernels, corrupt=digest)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    code = qlg.main([*_gpu_args(bundle.path, tmp_path), "--only", case["name"]])
    report = json.loads((tmp_path / "results.json").read_text())
    assert code == 1 and report["failed"] == [f"{case['name']} {candidate['tiles']}"]
    result = report["cases"][0]
    assert result["check"]["ok"] and result["tuned"]["tiles"] == case["tiles"]
    assert [t["check_ok"] for t in result["tuned"]["tried"]] == [True, False]


def test_workspaces_left_dirty_are_seen(bundle, tmp_path, cpu_standin) -> None:
    """Mutation: split-K's counters and sums allocated without zeroing them (as a bench that
    forgot it would): the fake sees every launch start from nonzero workspaces, and the
    checks fail (a tile's last block never sees the count it waits for)."""
    api = FakeDriverAPI(bundle.kernels)
    cpu_standin.setattr(qlg, "DRIVER_API", api)
    real = qlg.Bench.buffers

    def dirty(self, entry, given):
        out = real(self, entry, given)
        for name, spec in entry["buffers"].items():
            if spec["role"] == "workspace" and name not in given:
                out[name].fill_(0x3F)
        return out

    cpu_standin.setattr(qlg.Bench, "buffers", dirty)
    qlg.main([*_gpu_args(bundle.path, tmp_path), "--only", "u3_*_m1", "--no-tune"])
    report = json.loads((tmp_path / "results.json").read_text())
    for function in ("prepared_linear_split_k", "quant_linear_split_k"):
        split = [x for x in api.launches if x["function"] == function]
        assert split and not any(x["workspaces_zero"] for x in split)
    assert not any(r["check"]["ok"] for r in report["cases"])


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


_NO_TILEVM = no_tilevm_script("quant_linear_gpu", "cuModuleLoadData",
                              "CUDA_ERROR_INVALID_IMAGE",
                              setup='quant_linear_gpu.TORCH_DEVICE = "cpu"',
                              watched=("tilevm",))


def test_the_gpu_run_imports_no_tilevm(bundle, tmp_path) -> None:
    """The GPU half runs under a Python without tilevm, lark or llvmlite (here every cubin
    fails to load, after everything is imported, and each failure is recorded by name)."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_TILEVM, str(BENCH), *_gpu_args(bundle.path, tmp_path),
         "--only", "u3_*_m1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 1 []"), done.stdout
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["cases"][0]["error"] == (
        "CudaError: cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE")
