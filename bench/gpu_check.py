"""GPU conformance check and timing: tilevm's conformance kernels and examples on a GPU.

Issue 10: run the conformance kernels and the examples on a GPU, compare them with the CPU
backend's outputs computed beforehand, time the matmul examples against torch, and record the
per-instruction kernels' outputs as golden files.

Two halves, so that the GPU machine needs neither NVRTC nor lark nor llvmlite:

- ``python bench/gpu_check.py --dry-run [--bundle DIR] [--write-goldens DIR]`` (any machine,
  tilevm installed): builds every conformance kernel (``tilevm.conformance``) and every example
  (lowered with the sm_80 rules and with the sm_90 rules), compiles each to an sm_90 cubin,
  runs each on the CPU backend with fixed-seed inputs, and writes a bundle: ``manifest.json``
  (launches, parameters, grids, checks, timings), ``cubins/*.cubin`` and ``data/*.npz``
  (inputs, expected outputs, bounds, float64 references). It prints every launch a GPU run
  would make. ``--write-goldens`` writes the CPU outputs as goldens (source ``cpu``).
- ``python bench/gpu_check.py --bundle DIR [--results DIR] [--write-goldens DIR]`` (the GPU
  machine, its own Python: numpy, ``cuda.bindings``, torch for the timing): loads the cubins
  with the driver API (``bench/cuda_loader.py``), launches each, compares (exact, bound or the
  accuracy rule: ``tilevm/conformance/compare.py``, loaded by file path), times ``matmul`` and
  ``matmul_w4a16`` against ``torch.matmul`` in f16 (CUDA events, L2 flushed, median after
  warm-up), writes ``results.json`` and, with ``--write-goldens``, the GPU's outputs as goldens
  (source ``gpu:<device>``). Exit status 1 if any check failed.

See ``bench/README.md`` ("gpu_check") for the bundle format and the command for the GPU machine.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DEFAULT_BUNDLE = BENCH / "results" / "gpu_check" / "bundle"
DEFAULT_RESULTS = BENCH / "results" / "gpu_check"
TARGET = "sm_90"
EXAMPLE_NAMES = ("vector_add", "softmax", "matmul", "matmul_w4a16", "attention")
EXAMPLE_RULES = (80, 90)
MANIFEST_VERSION = 1
# The driver API the GPU run uses: None for cuda.bindings.driver; the tests put a fake here.
DRIVER_API: Any = None


def load_by_path(name: str, path: Path) -> Any:
    """Import one file as module ``name`` without importing its package (``tilevm/__init__`` is
    not run: the GPU machine has no tilevm installed)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compare_module() -> Any:
    return load_by_path("gpu_check_compare", ROOT / "tilevm" / "conformance" / "compare.py")


def goldens_module() -> Any:
    return load_by_path("gpu_check_goldens", ROOT / "tilevm" / "conformance" / "goldens.py")


def source_commit() -> str:
    """The repository's short commit, or \"unknown\" outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# == The dry run: build the bundle (needs tilevm) =============================================


def example_problem(name: str) -> dict[str, Any]:
    """The inputs of ``examples/<name>.py``'s ``main()`` at its default sizes (seed 0), the
    constants it passes, its output's name and, for the accuracy rule, float64 ``ref`` and the
    f32-accumulating ``base`` (as the example computes them); ``vector_add`` is exact."""
    import tilevm as tv

    rng = np.random.default_rng(0)
    if name == "vector_add":
        x, y = (rng.standard_normal(1000).astype(np.float32) for _ in range(2))
        return {"args": (x, y, np.zeros(1000, np.float32)), "constants": {}, "output": "out",
                "element": "f32", "exact": True}
    if name == "softmax":
        x = (3 * rng.standard_normal((37, 100))).astype(np.float16)
        x64 = x.astype(np.float64)
        ref = np.exp(x64 - x64.max(1, keepdims=True))
        ref /= ref.sum(1, keepdims=True)
        x32 = x.astype(np.float32)
        base = np.exp(x32 - x32.max(1, keepdims=True))
        base = (base / base.sum(1, keepdims=True)).astype(np.float16)
        return {"args": (x, np.zeros_like(x)), "constants": {"width": 128}, "output": "y",
                "element": "f16", "ref": ref, "base": base}
    if name == "matmul":
        a = rng.standard_normal((100, 88)).astype(np.float16)
        b = rng.standard_normal((88, 72)).astype(np.float16)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        base = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
        return {"args": (a, b, np.zeros((100, 72), np.float16)), "constants": {},
                "output": "c", "element": "f16", "ref": ref, "base": base}
    if name == "matmul_w4a16":
        m, n, k, group = 40, 50, 80, 32
        groups = -(-k // group)
        x = rng.standard_normal((m, k)).astype(np.float16)
        codes = rng.integers(0, 16, size=(n, k))
        scales = (rng.uniform(0.5, 1.5, size=(n, groups)) / 8).astype(np.float16)
        w_real = (codes - 8) * np.repeat(scales.astype(np.float64), group, axis=1)[:, :k]
        ref = x.astype(np.float64) @ w_real.T
        base = (x.astype(np.float32) @ w_real.astype(np.float16).astype(np.float32).T).astype(
            np.float16)
        w = tv.HostTensor.from_bits(codes, "u4")
        return {"args": (x, w, scales, np.zeros((m, n), np.float16)),
                "constants": {"group": group}, "output": "y", "element": "f16", "ref": ref,
                "base": base}
    if name == "attention":
        sq = sk = 45
        d = 40
        q, k, v = (rng.standard_normal((s, d)).astype(np.float16) for s in (sq, sk, sk))
        scale = 1 / np.sqrt(d)
        allowed = np.arange(sk)[None, :] <= np.arange(sq)[:, None]

        def softmax_rows(s: np.ndarray) -> np.ndarray:
            s = np.where(allowed, s, -np.inf)
            e = np.exp(s - s.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

        ref = softmax_rows(q.astype(np.float64) @ k.astype(np.float64).T * scale) @ v.astype(
            np.float64)
        p32 = softmax_rows(q.astype(np.float32) @ k.astype(np.float32).T * np.float32(scale))
        base = (p32.astype(np.float16).astype(np.float32) @ v.astype(np.float32)).astype(
            np.float16)
        return {"args": (q, k, v, np.zeros((sq, d), np.float16), scale),
                "constants": {"hd": 64, "causal": True}, "output": "o", "element": "f16",
                "ref": ref, "base": base}
    raise KeyError(f"no example problem {name!r}")


def abi_arguments(lowered: Any, tile: Any, bound: Any) -> tuple[list[Any], dict[str, Any]]:
    """The lowered kernel's arguments in ABI order (``tilevm.backend.lower.abi``): a buffer's
    name for each pointer and workspace, a :class:`~tilevm.conformance.ScalarArg` of the
    parameter's type for each offset, stride, run-time scalar and size — the values
    ``tilevm.runtime.cpu_device.run_on_cpu`` passes. Returns (arguments, buffers) where buffers
    maps each name to its host tensor (tensors) or a new workspace tensor."""
    from tilevm.conformance import ScalarArg
    from tilevm.ir.host_tensor import HostTensor
    from tilevm.runtime.cpu_device import scalar_argument

    scalars = {p.name: p.type.dtype for p in tile.params if not hasattr(p.type, "scope")}
    workspaces = {w.name: w for w in lowered.workspaces}
    args: list[Any] = []
    buffers: dict[str, Any] = {}
    for a in lowered.abi:
        if a.kind == "pointer":
            args.append(a.source)
            buffers[a.source] = bound.tensors[a.source]
        elif a.kind == "offset":
            args.append(ScalarArg(bound.tensors[a.source].offset, a.type))
        elif a.kind == "stride":
            args.append(ScalarArg(bound.tensors[a.source].strides[a.dim], a.type))
        elif a.kind == "scalar":
            args.append(ScalarArg(scalar_argument(scalars[a.source], bound.scalars[a.source]),
                                  a.type))
        elif a.kind == "size":
            args.append(ScalarArg(bound.dims[a.source], a.type))
        elif a.kind == "workspace":
            w = workspaces[a.source]
            sizes = [bound.dims[s] if isinstance(s, str) else s for s in w.shape]
            tensor = HostTensor.empty(sizes, w.dtype)
            if not w.zeroed:
                tensor.data[:] = 0xFF  # unspecified bytes: as the CPU device fills them
            name = f"workspace_{a.source}"
            args.append(name)
            buffers[name] = tensor
        else:
            raise ValueError(f"unknown ABI parameter kind {a.kind!r} ({a.name})")
    return args, buffers


def _lower_example(name: str, rules: int, args: tuple, constants: dict[str, Any],
                   spec: Any = None) -> tuple[Any, Any, Any, tuple[int, int, int]]:
    """(Tile IR, bound arguments, lowered kernel, grid) of an example for ``args``."""
    from sass_examples import load_example

    from tilevm.backend.interp import launch_grid
    from tilevm.backend.lower import Specialization, lower
    from tilevm.frontend.arguments import bind_arguments

    tile = load_example(name).ir(**constants)
    bound = bind_arguments(tile, args)
    if spec is None:
        spec = Specialization.of_arguments(tile, bound.tensors, bound.dims)
    lowered = lower(tile, rules, spec)
    grid = tuple(launch_grid(tile, bound.scalars, bound.dims))
    return tile, bound, lowered, (*grid, 1, 1)[:3]  # type: ignore[return-value]


def example_launch(name: str, rules: int) -> Any:
    """The launch of ``examples/<name>.py`` lowered with the sm_``rules`` rules, on
    :func:`example_problem`'s inputs, its output checked by the accuracy rule (``vector_add``:
    bit for bit)."""
    from tilevm.conformance import Check, Launch

    problem = example_problem(name)
    tile, bound, lowered, grid = _lower_example(name, rules, problem["args"],
                                                problem["constants"])
    args, tensors = abi_arguments(lowered, tile, bound)
    buffers = {n: np.array(t.data, copy=True) for n, t in tensors.items()}
    output = problem["output"]
    if problem.get("exact"):
        checks = {output: Check("exact", problem["element"])}
        references: dict[str, dict[str, np.ndarray]] = {}
    else:
        u = {"f16": 2.0**-11, "bf16": 2.0**-8, "f32": 2.0**-24}[problem["element"]]
        checks = {output: Check("accuracy", problem["element"], u)}
        references = {output: {"ref": np.asarray(problem["ref"], np.float64),
                               "base": np.asarray(problem["base"], np.float64)}}
    return Launch(
        name=f"example_{name}_sm{rules}", family="example",
        description=f"examples/{name}.py lowered with the sm_{rules} rules, compiled for "
                    f"{TARGET}", kernel=lowered.thread, grid=grid, args=tuple(args),
        buffers=buffers, checks=checks, golden=False, references=references,
        target_rules=rules)


# (example, m, n, k): the shapes timed against torch.matmul in f16
TIMING_SHAPES = [("matmul", 2048, 2048, 2048), ("matmul", 4096, 4096, 4096),
                 ("matmul_w4a16", 16, 8192, 8192), ("matmul_w4a16", 4096, 4096, 4096)]
W4_GROUP = 32


def timing_spec(name: str, m: int, n: int, k: int) -> tuple[dict[str, Any], Any]:
    """The manifest entry (without its cubin) and the lowered kernel of one timing: the example
    lowered with the sm_90 rules, specialized for contiguous tensors of this shape (as host
    tensors of the shape would be), its buffers described for the GPU side to allocate with
    torch, and the torch baseline."""
    from tilevm.ir.host_tensor import HostTensor

    if name == "matmul":
        shapes = {"a": ((m, k), "f16"), "b": ((k, n), "f16"), "c": ((m, n), "f16")}
        fills = {"a": "randn", "b": "randn", "c": "zeros"}
        constants: dict[str, Any] = {}
        baseline = {"op": "matmul", "a": "a", "b": "b", "out": "c"}
    else:
        groups = -(-k // W4_GROUP)
        shapes = {"x": ((m, k), "f16"), "w": ((n, k), "u4"), "scales": ((n, groups), "f16"),
                  "y": ((m, n), "f16")}
        fills = {"x": "randn", "w": "bytes", "scales": "scale", "y": "zeros"}
        constants = {"group": W4_GROUP}
        baseline = {"op": "matmul_u4", "x": "x", "w": "w", "scales": "scales",
                    "group": W4_GROUP, "out": "y"}
    tensors = tuple(HostTensor.empty(shape, dt) for shape, dt in shapes.values())
    tile, bound, lowered, grid = _lower_example(name, 90, tensors, constants)
    args, buffers = abi_arguments(lowered, tile, bound)
    described = {}
    for buffer, tensor in buffers.items():
        shape, dt = shapes.get(buffer, (tensor.shape, tensor.dtype.name))
        described[buffer] = {"nbytes": int(tensor.data.nbytes), "shape": list(shape),
                             "dtype": dt, "fill": fills.get(buffer, "zeros")}
    entry = {
        "name": f"{name} {m}x{n}x{k}", "example": name, "m": m, "n": n, "k": k,
        "function": lowered.thread.name, "grid": list(grid),
        "block": [lowered.thread.block_threads, 1, 1],
        "shared_bytes": lowered.thread.shared_bytes,
        "params": [_param_json(a) for a in args], "buffers": described, "baseline": baseline,
        "flops": 2 * m * n * k, "specialization": str(lowered.spec),
    }
    return entry, lowered


def _param_json(arg: Any) -> dict[str, Any]:
    if isinstance(arg, str):
        return {"buffer": arg}
    value = arg.value.item() if isinstance(arg.value, np.generic) else arg.value
    return {"bits": arg.bits, "bytes": arg.nbytes, "value": value, "type": str(arg.type)}


def _compile(kernel: Any, cache: Path | None) -> Any:
    from tilevm.backend.cuda import compile_cuda, emit_cuda

    return compile_cuda(emit_cuda(kernel, TARGET), TARGET, name=f"{kernel.name}.cu",
                        cache_dir=cache)


def all_launches(only: set[str] | None = None) -> list[Any]:
    """Every conformance launch, then every example under each rule set (``only``: names to
    keep)."""
    from tilevm.conformance import conformance_launch, conformance_launch_names

    launches = [conformance_launch(n) for n in conformance_launch_names()
                if only is None or n in only]
    for name in EXAMPLE_NAMES:
        for rules in EXAMPLE_RULES:
            if only is None or f"example_{name}_sm{rules}" in only:
                launches.append(example_launch(name, rules))
    return launches


def build_bundle(bundle: Path, launches: list[Any], timings: list[tuple[str, int, int, int]],
                 cache: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Compile, run on the CPU backend and write every launch and timing into ``bundle``;
    returns the manifest (also written as ``manifest.json``) with each launch's CPU outputs
    under the private key ``_outputs`` (not written)."""
    from tilevm.conformance import run_on_cpu_backend

    goldens = goldens_module()
    for folder, pattern in (("cubins", "*.cubin"), ("data", "*.npz")):
        (bundle / folder).mkdir(parents=True, exist_ok=True)
        for stale in (bundle / folder).glob(pattern):  # an earlier bundle's files
            stale.unlink()
    manifest: dict[str, Any] = {"version": MANIFEST_VERSION, "target": TARGET,
                                "commit": source_commit(), "created": _now(), "launches": [],
                                "timings": []}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for launch in launches:
        t0 = time.perf_counter()
        binary = _compile(launch.kernel, cache)
        t1 = time.perf_counter()
        memory = run_on_cpu_backend(launch)
        t2 = time.perf_counter()
        bounds = launch.bounds(memory) if launch.bounds else {}
        cubin = f"cubins/{launch.name}.cubin"
        (bundle / cubin).write_bytes(binary.cubin)
        arrays: dict[str, np.ndarray] = {}
        for name, data in launch.buffers.items():
            arrays[f"init/{name}"] = np.ascontiguousarray(data)
        for name in launch.checks:
            arrays[f"want/{name}"] = memory[name]
            if name in bounds:
                arrays[f"bound/{name}"] = np.asarray(bounds[name], np.float64)
            for kind, ref in launch.references.get(name, {}).items():
                arrays[f"{kind}/{name}"] = ref
        data = f"data/{launch.name}.npz"
        np.savez_compressed(bundle / data, **arrays)
        resources = binary.resources[launch.kernel.name]
        manifest["launches"].append({
            "name": launch.name, "family": launch.family, "description": launch.description,
            "golden": launch.golden, "rules": launch.target_rules, "cubin": cubin,
            "function": launch.kernel.name, "grid": list(launch.grid),
            "block": [launch.block_threads, 1, 1], "shared_bytes": launch.shared_bytes,
            "params": [_param_json(a) for a in launch.args],
            "buffers": {n: int(np.asarray(b).nbytes) for n, b in launch.buffers.items()},
            "checks": {n: c.to_json() for n, c in launch.checks.items()}, "data": data,
            "inputs_sha256": goldens.inputs_digest(launch.buffers),
            "registers": resources.registers,
            "spills": resources.spill_store_bytes + resources.spill_load_bytes,
        })
        outputs[launch.name] = {n: memory[n] for n in launch.checks}
        log(f"  built {launch.name}: NVRTC {t1 - t0:.1f} s, CPU backend {t2 - t1:.1f} s")
    for example, m, n, k in timings:
        entry, lowered = timing_spec(example, m, n, k)
        binary = _compile(lowered.thread, cache)
        cubin = f"cubins/timing_{example}_{m}x{n}x{k}.cubin"
        (bundle / cubin).write_bytes(binary.cubin)
        entry["cubin"] = cubin
        entry["registers"] = binary.resources[lowered.thread.name].registers
        manifest["timings"].append(entry)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    manifest["_outputs"] = outputs
    return manifest


def _params_text(params: list[dict[str, Any]]) -> str:
    return ", ".join(p["buffer"] if "buffer" in p else f"{p['value']}:{p['type']}"
                     for p in params)


def describe(manifest: dict[str, Any], bundle: Path) -> str:
    """What a GPU run of the bundle does, launch by launch."""
    lines = [f"A GPU run of {bundle} ({manifest['target']} cubins, tilevm {manifest['commit']}) "
             "would:"]
    for e in manifest["launches"]:
        size = (bundle / e["cubin"]).stat().st_size
        checks = ", ".join(f"{n} {c['kind']} {c['element']}" for n, c in e["checks"].items())
        lines.append(
            f"  load {e['cubin']} ({size / 1024:.0f} KiB, {e['registers']} registers); launch "
            f"{e['function']} grid {tuple(e['grid'])} block {tuple(e['block'])} dynamic shared "
            f"{e['shared_bytes']} B ({_params_text(e['params'])}); compare {checks}"
            + ("; record golden" if e["golden"] else ""))
    for t in manifest["timings"]:
        lines.append(
            f"  time {t['name']}: {t['function']} grid {tuple(t['grid'])} block "
            f"{tuple(t['block'])} shared {t['shared_bytes']} B against torch "
            f"({t['baseline']['op']}, f16), CUDA events, L2 flushed, median of the timed runs")
    return "\n".join(lines)


def dry_run(args: argparse.Namespace) -> int:
    """Build the bundle, print the plan, optionally write the CPU outputs as goldens."""
    sys.path.insert(0, str(BENCH))  # sass_examples.load_example
    from tilevm.backend.cache_dir import cache_dir

    start = time.perf_counter()
    only = set(args.only.split(",")) if args.only else None
    bundle = Path(args.bundle)
    print(f"gpu_check --dry-run: building {bundle}")
    launches = all_launches(only)
    timings = [] if args.no_timing else [t for t in TIMING_SHAPES
                                         if only is None or t[0] in only]
    manifest = build_bundle(bundle, launches, timings, cache_dir() / "gpu_check_nvrtc")
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    print(describe(manifest, bundle))
    print(f"bundle: {len(manifest['launches'])} launches, {len(manifest['timings'])} timings, "
          f"{size / 2**20:.2f} MiB in {bundle}")
    if args.write_goldens:
        write_cpu_goldens(manifest, Path(args.write_goldens))
    if not args.no_timing:
        print(f"launch overhead, kernel cache for the GPU run: {launch_overhead(bundle, False)}")
    print(f"dry run done in {time.perf_counter() - start:.1f} s; on a GPU machine: python3 "
          f"bench/gpu_check.py --bundle {bundle} --write-goldens DIR")
    return 0


LAUNCH_OVERHEAD_CACHE = "kernel-cache"


def launch_overhead(bundle: Path, real: bool, calls: int = 10_000) -> str:
    """Run ``bench/launch_overhead.py`` (issue 13: the host-side cost of a cached kernel's GPU
    call) with the bundle's kernel cache: the dry run (the driver faked) compiles the kernel
    into it, so that the GPU run (``real``: CUDA tensors, the real driver, tilevm imported from
    the repository) finds the cubin there without NVRTC. Returns the script's result line, or
    what went wrong."""
    import os

    env = dict(os.environ, TILEVM_CACHE_DIR=str(bundle.resolve() / LAUNCH_OVERHEAD_CACHE),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, str(BENCH / "launch_overhead.py"), "--calls", str(calls)]
    try:
        done = subprocess.run(command + (["--real"] if real else []), capture_output=True,
                              text=True, timeout=180, env=env, cwd=ROOT)
    except (OSError, subprocess.SubprocessError) as error:
        return f"failed: {type(error).__name__}: {error}"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {done.returncode}): {tail}"
    return lines[-1]


def write_cpu_goldens(manifest: dict[str, Any], directory: Path) -> Path:
    """The CPU backend's outputs of the golden launches as goldens (source ``cpu``)."""
    goldens = goldens_module()
    golden = [e for e in manifest["launches"] if e["golden"]]
    record = goldens.Goldens({e["name"]: manifest["_outputs"][e["name"]] for e in golden},
                             {e["name"]: e["inputs_sha256"] for e in golden}, "cpu", _now(),
                             manifest["commit"])
    path = goldens.write_goldens(directory, record)
    print(f"goldens (CPU backend outputs, source 'cpu') written to {path}")
    return path


# == The GPU run: needs numpy, cuda.bindings (and torch for the timing), no tilevm ============


def _buffer_view(data: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Bytes downloaded from the GPU as an array of ``like``'s dtype and shape."""
    return data.view(like.dtype).reshape(like.shape)


def run_launch(device: Any, loader: Any, compare: Any, bundle: Path,
               entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Load, launch and check one manifest entry; returns (result, GPU outputs)."""
    data = np.load(bundle / entry["data"])
    module = device.load_module((bundle / entry["cubin"]).read_bytes())
    function = module.function(entry["function"], entry["shared_bytes"])
    addresses = {name: device.upload(data[f"init/{name}"]) for name in entry["buffers"]}
    params = [loader.Pointer(addresses[p["buffer"]]) if "buffer" in p else
              loader.Value(int(p["bits"]), int(p["bytes"])) for p in entry["params"]]
    t0 = time.perf_counter()
    device.launch(function, entry["grid"], entry["block"], entry["shared_bytes"], params)
    device.synchronize()
    elapsed = time.perf_counter() - t0
    result: dict[str, Any] = {"name": entry["name"], "family": entry["family"],
                              "golden": entry["golden"], "seconds": round(elapsed, 4),
                              "checks": {}}
    outputs = {}
    for name, check in entry["checks"].items():
        want = data[f"want/{name}"]
        got = _buffer_view(device.download(addresses[name], want.nbytes), want)
        outputs[name] = got
        extra = {k: data[f"{k}/{name}"] for k in ("bound", "ref", "base")
                 if f"{k}/{name}" in data.files}
        result["checks"][name] = compare.compare(check, got, want, extra)
    result["ok"] = all(c["ok"] for c in result["checks"].values())
    device.free_all()
    return result, outputs


def _torch_buffer(torch: Any, spec: dict[str, Any], generator: Any) -> Any:
    """A CUDA tensor for one timing buffer: ``randn`` f16, random ``bytes`` (u4 codes),
    ``scale`` (f16 in [1/16, 3/16]) or ``zeros`` (any type, as bytes)."""
    shape, fill = spec["shape"], spec["fill"]
    if fill == "randn":
        return torch.randn(*shape, dtype=torch.float16, device="cuda", generator=generator)
    if fill == "scale":
        return (torch.rand(*shape, device="cuda", generator=generator) / 8 + 1 / 16).half()
    if fill == "bytes":
        return torch.randint(0, 256, (spec["nbytes"],), dtype=torch.uint8, device="cuda",
                             generator=generator)
    return torch.zeros(spec["nbytes"], dtype=torch.uint8, device="cuda")


def dequantize_u4(torch: Any, w: Any, scales: Any, n: int, k: int, group: int) -> Any:
    """The f16 (n, k) weights of packed LSB-first u4 codes ``w`` (bytes): ``(code − 8)·scale``
    (the example's dequantization, exact in f16)."""
    codes = torch.stack([w & 0xF, w >> 4], dim=-1).reshape(-1)[: n * k].reshape(n, k)
    scale = scales.repeat_interleave(group, dim=1)[:, :k]
    return (codes.to(torch.float16) - 8) * scale


def run_timing(device: Any, loader: Any, bundle: Path, entry: dict[str, Any], reps: int,
               warmup: int) -> dict[str, Any]:
    """Time one manifest timing entry: the tilevm kernel and the torch baseline, each
    ``warmup`` runs then ``reps`` timed runs (CUDA events on torch's current stream, a 256 MiB
    write before each to flush the L2), median; and how far their outputs are apart."""
    import torch

    generator = torch.Generator(device="cuda").manual_seed(0)
    buffers = {name: _torch_buffer(torch, spec, generator)
               for name, spec in entry["buffers"].items()}
    module = device.load_module((bundle / entry["cubin"]).read_bytes())
    function = module.function(entry["function"], entry["shared_bytes"])
    params = [loader.Pointer(buffers[p["buffer"]].data_ptr()) if "buffer" in p else
              loader.Value(int(p["bits"]), int(p["bytes"])) for p in entry["params"]]
    stream = torch.cuda.current_stream()
    base = entry["baseline"]
    m, n, k = entry["m"], entry["n"], entry["k"]
    if base["op"] == "matmul":
        a, b = buffers[base["a"]], buffers[base["b"]]
    else:
        a = buffers[base["x"]]
        b = dequantize_u4(torch, buffers[base["w"]], buffers[base["scales"]], n, k,
                          base["group"]).t()
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")

    def tilevm_run() -> None:
        device.launch(function, entry["grid"], entry["block"], entry["shared_bytes"], params,
                      stream=stream.cuda_stream)

    def torch_run() -> Any:
        return torch.matmul(a, b)

    def median_ms(run: Any) -> float:
        for _ in range(warmup):
            run()
        times = []
        for _ in range(reps):
            flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            run()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
        return float(np.median(times))

    tilevm_ms = median_ms(tilevm_run)
    torch_ms = median_ms(torch_run)
    ours = buffers[base["out"]].view(torch.float16).reshape(m, n).float()
    ref = torch_run().float()
    difference = float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
    flops = entry["flops"]
    return {"name": entry["name"], "m": m, "n": n, "k": k, "tilevm_ms": tilevm_ms,
            "torch_ms": torch_ms, "tilevm_tflops": flops / tilevm_ms / 1e9,
            "torch_tflops": flops / torch_ms / 1e9, "tilevm_over_torch_time": tilevm_ms / torch_ms,
            "max_difference_over_max_torch": difference, "ok": difference <= 1e-2,
            "registers": entry.get("registers"), "reps": reps, "warmup": warmup}


def gpu_run(args: argparse.Namespace) -> int:
    """Run the bundle on the GPU; write results (and goldens)."""
    start = time.perf_counter()
    bundle = Path(args.bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        print(f"gpu_check: {bundle} has manifest version {manifest.get('version')}, this script "
              f"reads {MANIFEST_VERSION}: rebuild it with --dry-run", file=sys.stderr)
        return 2
    sys.path.insert(0, str(BENCH))
    import cuda_loader

    compare = compare_module()
    device = cuda_loader.Device(0, DRIVER_API)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    report: dict[str, Any] = {
        "device": device.name, "driver_version": device.driver_version,
        "bundle": {"commit": manifest["commit"], "created": manifest["created"],
                   "target": manifest["target"]},
        "started": _now(), "python": sys.version.split()[0], "numpy": np.__version__,
        "launches": [], "timings": []}
    path = results_dir / "results.json"

    def save() -> None:
        report["elapsed_s"] = round(time.perf_counter() - start, 1)
        path.write_text(json.dumps(report, indent=1) + "\n")

    print(f"gpu_check on {device.name} (driver {device.driver_version}): {bundle}", flush=True)
    golden_outputs: dict[str, dict[str, np.ndarray]] = {}
    for entry in manifest["launches"]:
        if only is not None and entry["name"] not in only:
            continue
        try:
            result, outputs = run_launch(device, cuda_loader, compare, bundle, entry)
            if entry["golden"]:
                golden_outputs[entry["name"]] = outputs
        except cuda_loader.CudaError as error:
            result = {"name": entry["name"], "family": entry["family"], "ok": False,
                      "error": str(error)}
        report["launches"].append(result)
        failed = [n for n, c in result.get("checks", {}).items() if not c["ok"]]
        status = "ok" if result["ok"] else f"FAILED {result.get('error', failed)}"
        print(f"  {entry['name']}: {status}", flush=True)
        save()
    if not args.no_timing and manifest["timings"]:
        try:
            import torch

            report["torch"] = torch.__version__
            for entry in manifest["timings"]:
                if only is not None and entry["example"] not in only:
                    continue
                timing = run_timing(device, cuda_loader, bundle, entry, args.reps, args.warmup)
                report["timings"].append(timing)
                print(f"  time {timing['name']}: tilevm {timing['tilevm_ms']:.3f} ms "
                      f"({timing['tilevm_tflops']:.1f} TFLOP/s), torch {timing['torch_ms']:.3f} "
                      f"ms ({timing['torch_tflops']:.1f} TFLOP/s), outputs "
                      f"{'agree' if timing['ok'] else 'DIFFER'}", flush=True)
                save()
        except Exception as error:  # the conformance results stand without the timings
            report["timing_error"] = f"{type(error).__name__}: {error}"
            print(f"  timing failed: {report['timing_error']}", flush=True)
    if not args.no_timing:
        report["launch_overhead"] = launch_overhead(bundle, True)
        print(f"  {report['launch_overhead']}", flush=True)
        save()
    bad = [r["name"] for r in report["launches"] if not r["ok"]]
    bad += [t["name"] for t in report["timings"] if not t["ok"]]
    report["failed"] = bad
    save()
    if args.write_goldens and golden_outputs:
        goldens = goldens_module()
        digests = {e["name"]: e["inputs_sha256"] for e in manifest["launches"]}
        record = goldens.Goldens(golden_outputs, {n: digests[n] for n in golden_outputs},
                                 f"gpu:{device.name}", _now(), manifest["commit"])
        print(f"goldens (source gpu:{device.name}) written to "
              f"{goldens.write_goldens(args.write_goldens, record)}")
    passed = sum(1 for r in report["launches"] if r["ok"])
    print(f"gpu_check: {passed}/{len(report['launches'])} launches passed, "
          f"{len(report['timings'])} timings, {report['elapsed_s']} s; results in {path}"
          + (f"; FAILED: {bad}" if bad else ""))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="build the bundle and print what a GPU run would do (no GPU)")
    parser.add_argument("--bundle", "--out", default=str(DEFAULT_BUNDLE),
                        help=f"the bundle directory (default {DEFAULT_BUNDLE.relative_to(ROOT)})")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS),
                        help="where the GPU run writes results.json")
    parser.add_argument("--write-goldens", metavar="DIR",
                        help="write the outputs of the per-instruction kernels as goldens "
                             "(CPU's with --dry-run, else the GPU's)")
    parser.add_argument("--only", help="comma-separated launch names (and timing examples)")
    parser.add_argument("--no-timing", action="store_true", help="skip the matmul timings")
    parser.add_argument("--reps", type=int, default=20, help="timed runs per timing")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before them")
    args = parser.parse_args(argv)
    if args.only and args.write_goldens:
        parser.error("--write-goldens needs every launch: it cannot be combined with --only")
    return dry_run(args) if args.dry_run else gpu_run(args)


if __name__ == "__main__":
    raise SystemExit(main())
