"""The cases of ``bench/quant_linear_gpu.py`` and the dry run that builds their bundle (needs
tilevm and NVRTC, no GPU).

A case is one call of the low-bit linear layer ``y = x · Wᵀ``: W of shape (n, k) in ``u<bits>``
codes (packed LSB first), an f16 scale per 128 columns, the implicit zero point ``2^(bits−1)``,
x (m, k) and y (m, n) in f16. :func:`library_launch` is the one place that says which kernel, tiles
and arguments the library runs for a case; the rest compiles what it returns, so another kernel
(a tuned variant, a new layout) is measured by changing that function alone.

The bundle (``manifest.json`` and ``cubins/``) holds no input data: the GPU half makes its inputs
with torch. Its format is described in ``bench/quant_linear_gpu.md``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = "sm_90"
MANIFEST_VERSION = 1
GROUP = 128
# (n, k) of W, y = x·Wᵀ: Llama-2-7B's attention projections (4096, 4096), its MLP up/gate
# (11008, 4096) and down (4096, 11008), and Llama-2-70B's MLP up/gate (28672, 8192).
SHAPES: tuple[tuple[int, int], ...] = ((4096, 4096), (11008, 4096), (4096, 11008), (28672, 8192))
ROWS: tuple[int, ...] = (1, 16, 4096)  # M: one decode step, a small batch, a prefill
BITS: tuple[int, ...] = (2, 3, 4, 8)
GEMM_SIZE = 4096
# The f16 GEMMs whose best rate stands for the tensor cores' mma.sync rate: examples/matmul.py
# with its default tile and a larger one (fewer shared-memory loads per mma).
GEMM_TILES: tuple[dict[str, int], ...] = ({"bm": 64, "bn": 64, "bk": 32},
                                          {"bm": 128, "bn": 128, "bk": 32})


@dataclass(frozen=True)
class Case:
    """One shape, row count and bit width."""

    n: int
    k: int
    m: int
    bits: int

    @property
    def name(self) -> str:
        return f"u{self.bits}_n{self.n}_k{self.k}_m{self.m}"

    @property
    def groups(self) -> int:
        return -(-self.k // GROUP)

    @property
    def bytes_moved(self) -> int:
        """The bytes a call must move at least: x, the packed codes, the scales and y (the
        split-K workspaces are not counted: they are the kernel's choice, not the layer's)."""
        packed = -(-self.n * self.k * self.bits // 8)
        return 2 * self.m * self.k + packed + 2 * self.n * self.groups + 2 * self.m * self.n

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k


def all_cases(shapes: Iterable[tuple[int, int]] = SHAPES, rows: Iterable[int] = ROWS,
              bits: Iterable[int] = BITS, only: str | None = None) -> list[Case]:
    """Every (shape, bit width, m) in that nesting order (the GPU half reuses one weight
    matrix for the rows of a shape and bit width); ``only``: comma-separated ``fnmatch``
    patterns of case names (``u4_*_m1,u8_n4096_k4096_m16``)."""
    patterns = [p for p in (only or "").split(",") if p]
    out = [Case(n, k, m, b) for n, k in shapes for b in bits for m in rows]
    return [c for c in out if not patterns or any(fnmatch(c.name, p) for p in patterns)]


# == What the library runs for a case ===========================================================


@dataclass
class LibraryLaunch:
    """A kernel, its arguments (host tensors standing for the GPU tensors: the specialization
    sees their divisibility and alignment, not their data) and its constants."""

    kernel: Any
    args: tuple[Any, ...]
    constants: dict[str, Any]
    variant: str
    tiles: dict[str, int]


def library_launch(n: int, k: int, m: int, bits: int,
                   tiles: dict[str, int] | None = None) -> LibraryLaunch:
    """What ``launch_quant_linear(x, w, scales, y, group_size=128, **tiles)``
    (``variant="auto"``, no tuning) runs for these sizes: split-K up to ``DECODE_ROWS`` rows,
    the ``cp.async`` prefill kernel above, with its default tiles (``VARIANTS``) updated by
    ``tiles``. The only function to change to measure another kernel."""
    import tilevm as tv
    from tilevm.kernels.quant_linear import DECODE_ROWS, VARIANTS, quant_linear_call

    # As launch_quant_linear chooses (it runs the kernel; this needs it compiled instead).
    variant = "split_k" if m <= DECODE_ROWS else "prefill"
    kernel, _, defaults = VARIANTS[variant]
    wtype = tv.dtype(f"u{bits}")
    x = tv.HostTensor.empty((m, k), tv.f16)  # zero pages: nothing is touched
    w = tv.HostTensor.empty((n, k), wtype)
    scales = tv.HostTensor.empty((n, -(-k // GROUP)), tv.f16)
    y = tv.HostTensor.empty((m, n), tv.f16)
    args, constants = quant_linear_call(x, w, scales, y, group_size=GROUP, defaults=defaults,
                                        **(tiles or {}))
    if variant == "split_k":
        constants["deterministic"] = False
    tiles = {t: constants[t] for t in ("bm", "bn", "bk", "warps", "split", "stages")
             if t in constants}
    # tilevm.compile binds no dtype variables from spec arguments: name them.
    constants.update(A=tv.f16, W=wtype, S=tv.f16)
    return LibraryLaunch(kernel, args, constants, variant, tiles)


# The prefill tiles the GPU's tuning pass tries besides the defaults: six of PREFILL_SPACE's 24
# (each is a cubin of 200 to 420 KiB per bit width and specialization: all 24 would make a
# bundle of about 70 MiB, over what a run carries).
PREFILL_CANDIDATES: tuple[dict[str, int], ...] = (
    {"bm": 64, "bn": 128, "warps": 4, "stages": 3},
    {"bm": 128, "bn": 64, "warps": 4, "stages": 3},
    {"bm": 128, "bn": 128, "warps": 8, "stages": 3},
    {"bm": 128, "bn": 128, "warps": 8, "stages": 4},
    {"bm": 128, "bn": 128, "warps": 4, "stages": 3},
    {"bm": 64, "bn": 64, "warps": 8, "stages": 3})


def tuning_candidates(variant: str) -> list[dict[str, int]]:
    """The tiles a tuning pass tries for ``variant`` besides its defaults: split-K's whole
    autotuning space (``SPLIT_K_SPACE``, pruned as the autotuner prunes: at least one m16n8
    fragment per warp; its cubins are small), the prefill tiles of :data:`PREFILL_CANDIDATES`."""
    import itertools

    from tilevm.kernels.quant_linear import SPLIT_K_SPACE, VARIANTS

    defaults = VARIANTS[variant][2]
    if variant == "prefill":
        out = [{**defaults, **tiles} for tiles in PREFILL_CANDIDATES]
    elif variant != "split_k":
        raise ValueError(f"variant={variant!r}: candidates for 'split_k' and 'prefill' only")
    else:
        names = list(SPLIT_K_SPACE)
        out = [dict(zip(names, values)) for values in itertools.product(
            *(SPLIT_K_SPACE[n] for n in names))]
        out = [t for t in out if t["bm"] * t["bn"] >= 16 * 8 * t["warps"]]
    return [t for t in out if t != defaults]


def gemm_launch(size: int, tiles: dict[str, int]) -> LibraryLaunch:
    """examples/matmul.py (f16 in, f32 accumulation, f16 out) on ``size``³ with ``tiles``."""
    import sys

    import tilevm as tv

    sys.path.insert(0, str(ROOT / "bench"))
    from sass_examples import load_example

    a, b, c = (tv.HostTensor.empty((size, size), tv.f16) for _ in range(3))
    return LibraryLaunch(load_example("matmul"), (a, b, c), dict(tiles), "example_matmul",
                         dict(tiles))


# == Compile and describe ========================================================================


def _scalar_json(abi_name: str, arg: Any) -> dict[str, Any]:
    import numpy as np

    value = arg.value.item() if isinstance(arg.value, np.generic) else arg.value
    return {"abi": abi_name, "bits": arg.bits, "bytes": arg.nbytes, "value": value,
            "type": str(arg.type)}


def compile_launch(launch: LibraryLaunch, roles: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    """Compile ``launch`` for sm_90 (through the kernel cache) and describe it: function, grid,
    block, dynamic shared memory, each parameter in the cubin's order (a buffer's name, or a
    by-value scalar's bits and size), each buffer (dtype, shape, bytes, its ``role`` from
    ``roles``: what the GPU half fills it with; workspaces: ``workspace``, with ``zeroed``:
    clear before every launch). Returns (entry, cubin)."""
    import sys

    import tilevm as tv
    from tilevm.frontend.arguments import bind_arguments
    from tilevm.runtime.artifact import artifact_of

    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_check import abi_arguments

    compiled = tv.compile(launch.kernel, TARGET, spec=launch.args, **launch.constants)
    tile, lowered = compiled.source_ir, compiled.lowered
    bound = bind_arguments(tile, launch.args)
    args, tensors = abi_arguments(lowered, tile, bound)
    artifact = artifact_of(compiled)
    zeroed = {f"workspace_{w['name']}": w["zeroed"] for w in artifact.description["workspaces"]}
    params = [{"abi": a.name, "buffer": arg} if isinstance(arg, str) else _scalar_json(a.name, arg)
              for a, arg in zip(lowered.abi, args, strict=True)]
    buffers = {}
    for name, tensor in tensors.items():
        role = "workspace" if name in zeroed else roles.get(name, "dummy")
        buffers[name] = {"dtype": tensor.dtype.name, "shape": list(tensor.shape),
                         "nbytes": int(tensor.data.nbytes), "role": role}
        if name in zeroed:
            buffers[name]["zeroed"] = zeroed[name]
    resources = compiled.resources
    entry = {
        "function": lowered.thread.name,
        "grid": [*artifact.grid(bound.dims, bound.scalars), 1, 1][:3],
        "block": [lowered.thread.block_threads, 1, 1],
        "shared_bytes": lowered.thread.shared_bytes,
        "params": params, "buffers": buffers,
        "zero_before_launch": [n for n, z in zeroed.items() if z],
        "registers": resources.registers, "spills": resources.spills,
        "specialization": lowered.spec.describe(),
    }
    return entry, compiled.cubin


CASE_ROLES = {"x": "activations", "w": "codes", "scales": "scales", "y": "output"}
GEMM_ROLES = {"a": "activations", "b": "activations", "c": "output"}


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_bundle(bundle: Path, cases: list[Case], gemm_size: int = GEMM_SIZE,
                 gemm_tiles: Iterable[dict[str, int]] = GEMM_TILES,
                 candidates: int | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compile every case (with the first ``candidates`` of its variant's
    :func:`tuning_candidates`, all of them for None) and the f16 GEMMs, write
    ``bundle/manifest.json`` and ``bundle/cubins/<function>_<sha256[:12]>.cubin`` (one file per
    distinct cubin; a stale one of an earlier bundle is removed), and return the manifest."""
    cubins = bundle / "cubins"
    cubins.mkdir(parents=True, exist_ok=True)
    for stale in cubins.glob("*.cubin"):
        stale.unlink()
    written: dict[str, str] = {}

    def store(function: str, cubin: bytes) -> str:
        digest = hashlib.sha256(cubin).hexdigest()
        if digest not in written:
            written[digest] = f"cubins/{function}_{digest[:12]}.cubin"
            (bundle / written[digest]).write_bytes(cubin)
        return written[digest]

    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION, "target": TARGET, "commit": _commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "group": GROUP,
        "tuning": "each case first runs the static default tiles of the variant "
        "launch_quant_linear(variant='auto') picks (VARIANTS: the results' time_us); then, "
        "time permitting, a tuning pass on the GPU times the candidates listed with each case "
        "(split-K: SPLIT_K_SPACE; prefill: PREFILL_CANDIDATES) and records the fastest that "
        "passes the check under 'tuned'",
        "gemms": [], "cases": []}
    for tiles in gemm_tiles:
        t0 = time.perf_counter()
        entry, cubin = compile_launch(gemm_launch(gemm_size, tiles), GEMM_ROLES)
        entry.update(name=f"matmul_{gemm_size}_bm{tiles['bm']}_bn{tiles['bn']}_bk{tiles['bk']}",
                     m=gemm_size, n=gemm_size, k=gemm_size, tiles=dict(tiles),
                     flops=2 * gemm_size**3, cubin=store(entry["function"], cubin))
        manifest["gemms"].append(entry)
        log(f"  built {entry['name']} in {time.perf_counter() - t0:.1f} s")
    for case in cases:
        t0 = time.perf_counter()
        launch = library_launch(case.n, case.k, case.m, case.bits)
        entry, cubin = compile_launch(launch, CASE_ROLES)
        entry.update(name=case.name, n=case.n, k=case.k, m=case.m, bits=case.bits,
                     group=GROUP, variant=launch.variant, tiles=launch.tiles,
                     bytes_moved=case.bytes_moved, flops=case.flops,
                     cubin=store(entry["function"], cubin))
        entry["candidates"] = []
        for tiles in tuning_candidates(launch.variant)[:candidates]:
            try:
                other = library_launch(case.n, case.k, case.m, case.bits, tiles)
                candidate, cubin = compile_launch(other, CASE_ROLES)
            except Exception as error:  # a tile the kernel cannot take: said, not fatal
                entry["candidates"].append({"tiles": tiles,
                                            "error": f"{type(error).__name__}: {error}"})
                log(f"  {case.name}: tiles {tiles} do not compile: {error}")
                continue
            candidate.update(name=f"{case.name} {tiles}", tiles=other.tiles,
                             cubin=store(candidate["function"], cubin))
            del candidate["specialization"]  # the case's
            entry["candidates"].append(candidate)
        manifest["cases"].append(entry)
        log(f"  built {case.name}: {launch.variant} and {len(entry['candidates'])} candidates "
            f"in {time.perf_counter() - t0:.1f} s")
    manifest["cubins"] = len(written)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def describe(manifest: dict[str, Any], bundle: Path) -> str:
    """What a GPU run of the bundle does, launch by launch."""
    lines = [f"A GPU run of {bundle} ({manifest['target']} cubins, {manifest['cubins']} distinct, "
             f"tilevm {manifest['commit']}) would: measure the copy bandwidth (torch D2D copy), "
             "time torch.matmul f16 at "
             f"{manifest['gemms'][0]['m'] if manifest['gemms'] else 4096}³ (cuBLAS), then"]
    for e in manifest["gemms"]:
        lines.append(f"  time {e['name']}: {e['function']} ({e['cubin']}) grid {tuple(e['grid'])}"
                     f" block {e['block'][0]} shared {e['shared_bytes']} B, {e['registers']} "
                     "registers; check against an f32 matmul")
    for e in manifest["cases"]:
        tiles = " ".join(f"{k}={v}" for k, v in e["tiles"].items())
        tried = [c for c in e.get("candidates", []) if "error" not in c]
        zero = ", ".join(f"{n} {_size(e['buffers'][n]['nbytes'])}"
                         for n in e["zero_before_launch"])
        lines.append(
            f"  {e['name']}: {e['variant']} ({tiles}) {e['cubin']} grid {tuple(e['grid'])} block "
            f"{e['block'][0]} shared {e['shared_bytes']} B, {e['registers']} registers, "
            f"{len(e['params'])} parameters; zero before each launch: {zero or 'nothing'}; "
            f"{_size(e['bytes_moved'])} moved, {e['flops'] / 1e9:.3g} GFLOP; check, time "
            "(L2 flushed), time torch.matmul(x, W_f16.T)"
            + (f"; tuning pass: {len(tried)} other tiles" if tried else ""))
    return "\n".join(lines)
