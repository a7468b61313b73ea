"""The library's W4A16 layer next to Triton's W4A16 kernel, statically (issue 14, item 5): both
compiled ahead of time for sm_80 and sm_90 in the decode and the prefill tile configuration, and
each cubin measured with ``sass_metrics.py`` (registers, spills, shared memory, the main loop's
instructions, instructions per m16n8k16 HMMA, dequantization instructions per weight).

- **decode**: tilevm's ``quant_linear_split_k`` (the decode variant, split 4) and Triton's
  ``matmul_w4a16_kernel``, both with a 16 × 64 tile of y, 32 columns of K per step, 4 warps;
- **prefill**: tilevm's ``quant_linear_prefill`` (3 ``cp.async`` stages) and the same Triton kernel
  with a 64 × 128 tile;
- **general**: tilevm's ``quant_linear_kernel`` (operands straight to registers) with that tile;
- **decode-prepared** / **prefill-prepared**: tilevm's kernels on prepared weights
  (``prepared_linear_split_k``, 2 warps = the same 16 × 64 tile; ``prepared_linear_prefill``, 4
  warps = 64 × 128, 3 stages), each also compiled with f16 "weights" (the same kernel with
  ``wtype=f16``: the cast a no-op, the scale multiply, loads and loop kept) so that the difference
  of the two is the conversion's own cost per weight (the usual way to count a conversion:
  differenced against a copy-only baseline). What is differenced is the data-flow slice of each
  loop's B operands (``operand_slice.py``: the instructions between the weights' loads and the
  MMAs); the difference of the opcode-based dequantization counts is reported beside it.

Both dequantize u4 codes with an f16 scale per 32 columns as ``(q − 8) · s`` and accumulate in
f32 with ``mma.sync``; Triton is compiled with its default pipelining (3 stages) and with none.
The weights are tilevm's dense packing in both (Triton's kernel reads the same bytes).

Usage: ``python bench/quant_linear_sass.py [--sass-metrics PATH]`` (Triton installed: the
``bench`` extra); writes ``results/quant_linear_sass.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
# Triton compiles here (w4a16_vs_triton.py runs its sass step in a child with this set too).
os.environ["W4A16_VS_TRITON_SASS_STEP"] = "1"

import w4a16_vs_triton as base  # noqa: E402  (the shared SASS machinery and records)
from operand_slice import b_operand_slice  # noqa: E402

import tilevm as tv  # noqa: E402
from tilevm.kernels.prepared_layouts import chunk_words, value_words  # noqa: E402
from tilevm.kernels.prepared_linear import (  # noqa: E402
    prepared_linear_prefill,
    prepared_linear_split_k,
)
from tilevm.kernels.quant_linear import (  # noqa: E402
    quant_linear_call,
    quant_linear_kernel,
    quant_linear_prefill,
    quant_linear_split_k,
)

GROUP = 32
CONFIGS = {
    "decode": {"bm": 16, "bn": 64, "bk": 32, "warps": 4, "split": 4, "m": 16},
    "prefill": {"bm": 64, "bn": 128, "bk": 32, "warps": 4, "stages": 3, "m": 256},
    "general": {"bm": 64, "bn": 128, "bk": 32, "warps": 4, "m": 256},
    "decode-prepared": {"bm": 16, "bn": 64, "bk": 32, "warps": 2, "split": 4, "m": 16},
    "prefill-prepared": {"bm": 64, "bn": 128, "bk": 32, "warps": 4, "stages": 3, "m": 256},
}
N = K = 1024  # the specialization sees only divisibility and alignment: any multiple of 128


def _problem(m: int) -> base.Problem:
    return base.Problem(m, N, K, GROUP)


def tilevm_cubin(config: str, problem: base.Problem, capability: int, folder: Path) -> Path:
    """tilevm's kernel of ``config`` for sm_``capability``, specialized to ``problem``'s
    arguments, written to ``folder``."""
    c = CONFIGS[config]
    y = np.zeros((problem.m, problem.n), np.float16)
    tiles = {key: c[key] for key in ("bm", "bn", "bk", "warps")}
    args, constants = quant_linear_call(problem.x, problem.w, problem.scales, y,
                                        group_size=GROUP, **tiles)
    kernel = {"decode": quant_linear_split_k, "prefill": quant_linear_prefill,
              "general": quant_linear_kernel}[config]
    for extra in ("split", "stages"):
        if extra in c:
            constants[extra] = c[extra]
    constants = kernel._bind_dtype_variables(args, constants)
    compiled = tv.compile(kernel, f"sm_{capability}", spec=args, **constants)
    path = folder / f"tilevm_quant_linear_{config}_sm{capability}.cubin"
    path.write_bytes(compiled.cubin)
    return path


def prepared_cubin(config: str, problem: base.Problem, capability: int, folder: Path,
                   wtype: tv.DType = tv.u4) -> Path:
    """tilevm's prepared-weight kernel of ``config`` for sm_``capability`` with ``wtype`` codes
    (``f16``: the baseline without a conversion), specialized to ``problem``'s sizes."""
    c = CONFIGS[config]
    m, n, k, bk = problem.m, problem.n, problem.k, c["bk"]
    spec = (np.zeros((m, k), np.float16),
            np.zeros((n // 32, k // bk, 32 * chunk_words(bk, wtype.nbits)), np.uint32),
            np.zeros((n // 32, k // GROUP, 8 * value_words(16)), np.uint32),
            np.zeros((1, 1, 1), np.uint32), np.zeros(1, np.float16),
            np.zeros((m, n), np.float16))
    kernel = prepared_linear_split_k if config.startswith("decode") else prepared_linear_prefill
    extra = {key: c[key] for key in ("split", "stages") if key in c}
    compiled = tv.compile(kernel, f"sm_{capability}", spec=spec, A=tv.f16, wtype=wtype,
                          stype=tv.f16, group=GROUP, bk=bk, zero=8.0 if wtype == tv.u4 else 0.0,
                          bm=c["bm"], warps=c["warps"], **extra)
    path = folder / f"tilevm_{config}_{wtype.name}_sm{capability}.cubin"
    path.write_bytes(compiled.cubin)
    return path


def triton_cubin(config: str, problem: base.Problem, capability: int,
                 num_stages: int | None) -> tuple[bytes, dict]:
    """Triton's W4A16 kernel with ``config``'s tile for sm_``capability``."""
    c = CONFIGS[config]
    module = base.triton_w4a16
    saved = module.BLOCK_M, module.BLOCK_N, module.NUM_WARPS
    module.BLOCK_M, module.BLOCK_N, module.NUM_WARPS = c["bm"], c["bn"], c["warps"]
    try:
        return base.triton_cubin(problem, capability, num_stages)
    finally:
        module.BLOCK_M, module.BLOCK_N, module.NUM_WARPS = saved


def _sliced_row(metrics: object, cubin: Path, c: dict) -> dict:
    """``base.sass_row`` of ``cubin`` with the data-flow slice of its B operands
    (:mod:`operand_slice`) and that slice's thread instructions per weight."""
    row = base.sass_row(metrics, cubin, c["warps"], c["bm"], c["bn"])
    loop = row["main_loop"]
    loop["b_operand_slice"] = b_operand_slice(metrics, cubin)
    loop["b_operand_per_weight"] = (loop["b_operand_slice"]["instructions"] * 32 * c["bm"]
                                    / loop["mma_macs_per_warp"])
    return row


def _prepared_row(metrics: object, config: str, problem: base.Problem, capability: int,
                  cubins: Path) -> dict:
    """The row of a prepared-weight kernel, with the conversion's own instructions per weight:
    the instructions that compute its B operands from loaded registers, less those of the same
    kernel on f16 "weights" (the scale multiply and its broadcast); beside it the difference of
    the two opcode-based dequantization counts, which also moves with address arithmetic."""
    c = CONFIGS[config]
    row = {"config": config, "producer": "tilevm", "target": f"sm_{capability}",
           **_sliced_row(metrics, prepared_cubin(config, problem, capability, cubins), c)}
    baseline = _sliced_row(metrics, prepared_cubin(config, problem, capability, cubins, tv.f16),
                           c)
    row["f16_baseline"] = baseline
    loop, other = row["main_loop"], baseline["main_loop"]
    loop["conversion_per_weight"] = loop["b_operand_per_weight"] - other["b_operand_per_weight"]
    per_weight = "dequant_thread_instructions_per_weight"
    loop["dequant_difference_per_weight"] = loop[per_weight] - other[per_weight]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sass-metrics", type=Path, default=BENCH / "sass_metrics.py",
                        help="the shared metric definitions (default: bench/sass_metrics.py)")
    parser.add_argument("--out-dir", type=Path, default=base.RESULTS)
    args = parser.parse_args()
    metrics = base.load_sass_metrics(args.sass_metrics)
    cubins = args.out_dir / "cubins"
    cubins.mkdir(parents=True, exist_ok=True)
    rows = []
    for config, c in CONFIGS.items():
        problem = _problem(c["m"])
        for capability in base.SASS_TARGETS:
            if config.endswith("prepared"):
                rows.append(_prepared_row(metrics, config, problem, capability, cubins))
                continue
            for num_stages in base.TRITON_NUM_STAGES:
                cubin, meta = triton_cubin(config, problem, capability, num_stages)
                path = cubins / (f"triton_w4a16_{config}_sm{capability}"
                                 f"_stages{meta['num_stages']}.cubin")
                path.write_bytes(cubin)
                rows.append({"config": config, "producer": "triton",
                             "target": f"sm_{capability}", "num_stages": meta["num_stages"],
                             "triton": meta,
                             **base.sass_row(metrics, path, c["warps"], c["bm"], c["bn"])})
            path = tilevm_cubin(config, problem, capability, cubins)
            rows.append({"config": config, "producer": "tilevm", "target": f"sm_{capability}",
                         **base.sass_row(metrics, path, c["warps"], c["bm"], c["bn"])})
    record = {
        "benchmark": "W4A16 linear layer: static SASS of tilevm's library kernels and Triton's",
        "date": datetime.date.today().isoformat(),
        "command": "python bench/quant_linear_sass.py",
        "machine": base.machine(), "versions": base.versions(),
        "configs": CONFIGS, "group": GROUP, "shape_specialized_for": {"n": N, "k": K},
        "rows": rows,
    }
    for config in CONFIGS:
        print(f"\n{config}: tile {CONFIGS[config]}")
        base.print_sass_table([r for r in rows if r["config"] == config])
        for r in rows:
            if r["config"] == config and "conversion_per_weight" in r["main_loop"]:
                loop = r["main_loop"]
                print(f"{r['target']}: conversion per weight (B-operand slice less the f16 "
                      f"baseline's) {loop['conversion_per_weight']:.3f}; difference of the "
                      f"dequant counts {loop['dequant_difference_per_weight']:.3f}")
    base.write_json(args.out_dir / "quant_linear_sass.json", record)


if __name__ == "__main__":
    main()
