"""The cases of ``bench/quant_linear_gpu.py`` and the dry run that builds their bundle (needs
tilevm and NVRTC, no GPU).

A case is one call of the low-bit linear layer ``y = x · Wᵀ``: W of shape (n, k) in ``u<bits>``
codes (packed LSB first), an f16 scale per 128 columns, the implicit zero point ``2^(bits−1)``,
x (m, k) and y (m, n) in f16. What the library's layer (``QuantLinear``) runs for it is a short
chain of launches sharing buffers by name: the preparation kernels (:func:`prepare_launches`:
the dense codes ``w`` and ``scales`` into the prepared words ``wp`` and ``sp``, once per weight
matrix), then the prepared-weight GEMM (:func:`library_launch`: ``x``, ``wp``, ``sp`` into
``y``). :func:`dense_launch` is the kernel of the dense codes, measured beside it. These three
functions are the one place that says which kernels, tiles and arguments run; the rest compiles
what they return.

The bundle (``manifest.json`` and ``cubins/``) holds no input data: the GPU half makes its inputs
with torch. Its format is described in ``bench/README.md`` ("quant_linear_gpu.py").
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = "sm_90"
MANIFEST_VERSION = 2
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
    sees their divisibility and alignment, not their data), its constants, and ``names``: the
    case's name of each buffer parameter whose name differs (the buffers a case's launches
    share are named by the case: ``{"out": "wp"}`` — the kernel's ``out`` is the case's
    ``wp``)."""

    kernel: Any
    args: tuple[Any, ...]
    constants: dict[str, Any]
    variant: str
    tiles: dict[str, int]
    names: dict[str, str] = field(default_factory=dict)


def chunk_k(bits: int) -> int:
    """The chunk width ``bk`` QuantLinear prepares ``u<bits>`` weights with for groups of
    :data:`GROUP` (``default_chunk_k``): 64 for u2, 128 for u3, 32 for u4 and u8."""
    from tilevm.kernels.prepared_weights import default_chunk_k

    return default_chunk_k(f"u{bits}", GROUP)


def _prepared_shapes(n: int, k: int, bits: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shapes of the prepared codes ``wp`` and scale words ``sp`` of an (n, k) matrix."""
    from tilevm.kernels.prepared_layouts import CHUNK_N, chunk_words, value_words

    bk, chunks = chunk_k(bits), -(-n // CHUNK_N)
    return ((chunks, -(-k // bk), CHUNK_N * chunk_words(bk, bits)),
            (chunks, -(-k // GROUP), 8 * value_words(16)))


def prepare_launches(n: int, k: int, bits: int) -> list[LibraryLaunch]:
    """What ``prepare_linear_weights(w, scales, act=f16, group_size=128)`` (QuantLinear's
    ``prepare``) runs, in order: ``prepare_codes_kernel`` (the dense codes ``w`` into the
    prepared codes ``wp``, chunk width :func:`chunk_k`) and ``prepare_values_kernel`` (the
    scales into the scale words ``sp``)."""
    import tilevm as tv
    from tilevm.kernels.prepared_weights import prepare_codes_kernel, prepare_values_kernel

    wtype = tv.dtype(f"u{bits}")
    codes_shape, scales_shape = _prepared_shapes(n, k, bits)
    w = tv.HostTensor.empty((n, k), wtype)
    wp = tv.HostTensor.empty(codes_shape, tv.u32)
    scales = tv.HostTensor.empty((n, -(-k // GROUP)), tv.f16)
    sp = tv.HostTensor.empty(scales_shape, tv.u32)
    return [LibraryLaunch(prepare_codes_kernel, (w, wp),
                          {"W": wtype, "act": tv.f16, "bk": chunk_k(bits)}, "prepare_codes",
                          {"bk": chunk_k(bits)}, {"out": "wp"}),
            LibraryLaunch(prepare_values_kernel, (scales, sp), {"V": tv.f16, "value_type": tv.f16},
                          "prepare_values", {}, {"values": "scales", "out": "sp"})]


def library_launch(n: int, k: int, m: int, bits: int,
                   tiles: dict[str, int] | None = None) -> LibraryLaunch:
    """What ``launch_prepared_linear(x, prepared, y)`` (``variant="auto"``, no tuning: the call
    ``QuantLinear`` makes without a bias) runs for these sizes on the words of
    :func:`prepare_launches`: split-K up to ``DECODE_ROWS`` rows, the ``cp.async`` prefill kernel
    above, with its default tiles (``PREPARED_VARIANTS``) updated by ``tiles``; the absent zero
    points and bias are one-element dummies, as the library passes them."""
    import tilevm as tv
    from tilevm.kernels.prepared_linear import PREPARED_VARIANTS, prepared_linear_call
    from tilevm.kernels.prepared_weights import PreparedWeights

    codes_shape, scales_shape = _prepared_shapes(n, k, bits)
    weights = PreparedWeights(tv.HostTensor.empty(codes_shape, tv.u32),
                              tv.HostTensor.empty(scales_shape, tv.u32), None,
                              tv.dtype(f"u{bits}"), tv.f16, tv.f16, GROUP, chunk_k(bits), n, k)
    variant, args, constants = prepared_linear_call(
        tv.HostTensor.empty((m, k), tv.f16), weights, tv.HostTensor.empty((m, n), tv.f16),
        **(tiles or {}))
    chosen = {t: constants[t] for t in PREPARED_VARIANTS[variant][2]}
    return LibraryLaunch(PREPARED_VARIANTS[variant][0], args, constants, variant, chosen)


def dense_launch(n: int, k: int, m: int, bits: int,
                 tiles: dict[str, int] | None = None) -> LibraryLaunch:
    """What ``launch_quant_linear(x, w, scales, y, group_size=128, **tiles)`` (the kernels of the
    dense codes, ``variant="auto"``, no tuning) runs for these sizes: split-K up to
    ``DECODE_ROWS`` rows, the ``cp.async`` prefill kernel above, with its default tiles
    (``VARIANTS``) updated by ``tiles``."""
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


def tuning_candidates(variant: str) -> list[dict[str, int]]:
    """The tiles a tuning pass tries for the prepared ``variant`` besides its defaults: the whole
    autotuning space (``PREPARED_SPLIT_K_SPACE``: 9 tiles, split 4 to 16;
    ``PREPARED_PREFILL_SPACE``: 18), pruned as the autotuner prunes (``bm`` ≤ 128); the tiles
    whose cubin does not compile (too much shared memory, too many registers) are pruned by the
    dry run."""
    import itertools

    from tilevm.kernels.prepared_linear import (
        PREPARED_PREFILL_SPACE,
        PREPARED_SPLIT_K_SPACE,
        PREPARED_VARIANTS,
    )

    spaces = {"split_k": PREPARED_SPLIT_K_SPACE, "prefill": PREPARED_PREFILL_SPACE}
    if variant not in spaces:
        raise ValueError(f"variant={variant!r}: candidates for 'split_k' and 'prefill' only")
    space, defaults = spaces[variant], PREPARED_VARIANTS[variant][2]
    names = list(space)
    out = [dict(zip(names, values, strict=True))
           for values in itertools.product(*(space[n] for n in names))]
    return [t for t in out if t["bm"] <= 128 and t != defaults]


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
    block, dynamic shared memory, each parameter in the cubin's order (a buffer's name — the
    case's, through ``launch.names`` —, or a by-value scalar's bits and size), each buffer
    (dtype, shape, bytes, its ``role`` from ``roles``: what the GPU half fills it with, ``dummy``
    for one not named there; workspaces: ``workspace``, with ``zeroed``: clear before every
    launch, unless ``restored``: the kernel leaves it zeroed, so it is zeroed once, when it is
    allocated). Returns (entry, cubin)."""
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
    workspaces = {f"workspace_{w['name']}": w for w in artifact.description["workspaces"]}
    params = [{"abi": a.name, "buffer": launch.names.get(arg, arg)} if isinstance(arg, str)
              else _scalar_json(a.name, arg) for a, arg in zip(lowered.abi, args, strict=True)]
    buffers = {}
    for parameter, tensor in tensors.items():
        name = launch.names.get(parameter, parameter)
        role = "workspace" if name in workspaces else roles.get(name, "dummy")
        buffers[name] = {"dtype": tensor.dtype.name, "shape": list(tensor.shape),
                         "nbytes": int(tensor.data.nbytes), "role": role}
        if name in workspaces:
            buffers[name]["zeroed"] = workspaces[name]["zeroed"]
            buffers[name]["restored"] = bool(workspaces[name].get("restored"))
    resources = compiled.resources
    entry = {
        "function": lowered.thread.name,
        "grid": [*artifact.grid(bound.dims, bound.scalars), 1, 1][:3],
        "block": [lowered.thread.block_threads, 1, 1],
        "shared_bytes": lowered.thread.shared_bytes,
        "params": params, "buffers": buffers,
        "zero_before_launch": [n for n, w in workspaces.items()
                               if w["zeroed"] and not w.get("restored")],
        "registers": resources.registers, "spills": resources.spills,
        "specialization": lowered.spec.describe(),
    }
    return entry, compiled.cubin


# The buffers of a case's launches, by the case's names: "prepared" ones are written by a
# preparation launch (its "writes") and read by the GEMMs after it.
CASE_ROLES = {"x": "activations", "w": "codes", "scales": "scales", "y": "output",
              "wp": "prepared", "sp": "prepared"}
GEMM_ROLES = {"a": "activations", "b": "activations", "c": "output"}


def build_bundle(bundle: Path, cases: list[Case], gemm_size: int = GEMM_SIZE,
                 gemm_tiles: Iterable[dict[str, int]] = GEMM_TILES,
                 candidates: int | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compile every case — its preparation launches, its prepared GEMM with the default tiles
    and the first ``candidates`` of its variant's :func:`tuning_candidates` (all of them for
    None), and the dense kernel with its default tiles — and the f16 GEMMs, write
    ``bundle/manifest.json`` and ``bundle/cubins/<function>_<sha256[:12]>.cubin`` (one file per
    distinct cubin; a stale one of an earlier bundle is removed), and return the manifest."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_check import source_commit

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

    def described(launch: LibraryLaunch, name: str) -> dict[str, Any]:
        entry, cubin = compile_launch(launch, CASE_ROLES)
        entry.update(name=name, variant=launch.variant, tiles=launch.tiles,
                     cubin=store(entry["function"], cubin))
        return entry

    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION, "target": TARGET, "commit": source_commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "group": GROUP,
        "tuning": "each case measures what QuantLinear runs: the weights prepared once by "
        "prepare_linear_weights' kernels (prepare_us, not part of a call), then the prepared-"
        "weight GEMM launch_prepared_linear(variant='auto') picks with the static default tiles "
        "of PREPARED_VARIANTS (the results' time_us); beside it the dense-code kernel "
        "launch_quant_linear(variant='auto') picks with the default tiles of VARIANTS, untuned "
        "(dense_time_us). Then, time permitting, a tuning pass on the GPU times the prepared "
        "candidates listed with each case (PREPARED_SPLIT_K_SPACE or PREPARED_PREFILL_SPACE, "
        "less the tiles that do not compile) and records the fastest that passes the check "
        "under 'tuned'",
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
        prepare = []
        for launch in prepare_launches(case.n, case.k, case.bits):
            step = described(launch, f"{case.name} {launch.variant}")
            # What the launch writes: the prepared words the GEMMs after it read.
            step["writes"] = [b for b, spec in step["buffers"].items()
                              if spec["role"] == "prepared"]
            prepare.append(step)
        launch = library_launch(case.n, case.k, case.m, case.bits)
        entry = described(launch, case.name)
        entry.update(n=case.n, k=case.k, m=case.m, bits=case.bits, group=GROUP,
                     bk=chunk_k(case.bits), bytes_moved=case.bytes_moved, flops=case.flops,
                     prepare=prepare)
        entry["dense"] = described(dense_launch(case.n, case.k, case.m, case.bits),
                                   f"{case.name} dense")
        entry["candidates"] = []
        for tiles in tuning_candidates(launch.variant)[:candidates]:
            try:
                candidate = described(library_launch(case.n, case.k, case.m, case.bits, tiles),
                                      f"{case.name} {tiles}")
            except Exception as error:  # too much shared memory, a tile the kernel cannot take
                entry["candidates"].append({"tiles": tiles,
                                            "error": f"{type(error).__name__}: {error}"})
                log(f"  {case.name}: tiles {tiles} do not compile: {error}")
                continue
            del candidate["specialization"]  # the case's
            entry["candidates"].append(candidate)
        manifest["cases"].append(entry)
        log(f"  built {case.name}: preparation, prepared {launch.variant} and "
            f"{len(entry['candidates'])} candidates, dense {entry['dense']['variant']} "
            f"in {time.perf_counter() - t0:.1f} s")
    manifest["cubins"] = len(written)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _launch_line(e: dict[str, Any]) -> str:
    """One launch of a case: kernel, tiles, cubin, grid, block, resources, what is cleared."""
    tiles = " ".join(f"{k}={v}" for k, v in e["tiles"].items())
    zero = ", ".join(f"{n} {_size(e['buffers'][n]['nbytes'])}" for n in e["zero_before_launch"])
    reads = ", ".join(n for n, b in e["buffers"].items()
                      if b["role"] not in ("workspace", "dummy") and n not in e.get("writes", []))
    return (f"{e['function']}{f' ({tiles})' if tiles else ''} {e['cubin']} grid "
            f"{tuple(e['grid'])} block {e['block'][0]} shared {e['shared_bytes']} B, "
            f"{e['registers']} registers, {len(e['params'])} parameters; buffers {reads}"
            + (f" → {', '.join(e['writes'])}" if e.get("writes") else "")
            + f"; zero before each launch: {zero or 'nothing'}")


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
    weights = None
    for e in manifest["cases"]:
        tried = [c for c in e.get("candidates", []) if "error" not in c]
        pruned = len(e.get("candidates", [])) - len(tried)
        lines.append(f"  {e['name']}: {_size(e['bytes_moved'])} moved, "
                     f"{e['flops'] / 1e9:.3g} GFLOP")
        if (e["n"], e["k"], e["bits"]) != weights:  # prepared once per weight matrix
            weights = (e["n"], e["k"], e["bits"])
            for step in e["prepare"]:
                lines.append(f"    prepare (timed: prepare_us): {_launch_line(step)}")
        lines.append(f"    prepared {e['variant']}: {_launch_line(e)}; check, time (L2 "
                     "flushed), time torch.matmul(x, W_f16.T)")
        lines.append(f"    dense {e['dense']['variant']}: {_launch_line(e['dense'])}; check, time")
        if tried or pruned:
            lines.append(f"    tuning pass: {len(tried)} other prepared tiles"
                         + (f" ({pruned} do not compile)" if pruned else ""))
    return "\n".join(lines)
