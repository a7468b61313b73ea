"""Every tile of the low-bit linear layer's tuning spaces compiled for sm_80 and sm_90: registers,
spills, stack and shared memory (issue 14: every GEMM variant compiles with zero spills).

The prepared-weight variants (``prepared_linear_split_k`` over ``PREPARED_SPLIT_K_SPACE``,
``prepared_linear_prefill`` over ``PREPARED_PREFILL_SPACE``) for u4, u3 (steps of 128 codes), u8,
u2 and MX f8e4m3; the dense-code variants (``quant_linear_kernel`` over ``TUNING_SPACE``,
``quant_linear_split_k`` over ``SPLIT_K_SPACE``, ``quant_linear_prefill`` over
``PREFILL_SPACE``) for u4 and u3. Each is specialized for a 4096 × 4096 weight matrix (16 rows
for the decode variants, 256 for the others). A tile the target cannot hold (more shared memory
than it allows) is listed with the compiler's message: the autotuner prunes those per target.

Usage: ``python bench/quant_linear_resources.py`` (10 minutes on 2 cores with an empty cache);
writes ``results/quant_linear_resources.json`` and prints every tile that spills or fails.
"""

from __future__ import annotations

import datetime
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

import tilevm as tv
from tilevm.backend.cuda.spill_free import LIFTED_REGISTER_BUDGET
from tilevm.kernels import quant_linear as dense
from tilevm.kernels.prepared_layouts import chunk_words, value_words
from tilevm.kernels.prepared_linear import (
    PREPARED_PREFILL_SPACE,
    PREPARED_SPLIT_K_SPACE,
    prepared_linear_prefill,
    prepared_linear_split_k,
)
from tilevm.kernels.prepared_weights import default_chunk_k

RESULTS = Path(__file__).resolve().parent / "results" / "quant_linear_resources.json"
N = K = 4096
GROUP = 128
TARGETS = ("sm_80", "sm_90")
# (weights, scales, group) of the prepared variants; the dense ones take the first two.
FORMATS = (("u4", "f16", GROUP), ("u3", "f16", GROUP), ("u8", "f16", GROUP),
           ("u2", "f16", GROUP), ("f8e4m3fn", "f8e8m0fnu", 32))


def _tiles(space: dict[str, list[int]]) -> list[dict[str, int]]:
    names = list(space)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*space.values())]


def _prepared(kernel: Any, wname: str, sname: str, group: int, tiles: dict[str, int],
              target: str) -> tv.CompiledKernel:
    wt, st = tv.dtype(wname), tv.dtype(sname)
    bk = default_chunk_k(wt, group)
    m = 16 if kernel is prepared_linear_split_k else 256
    spec = (np.zeros((m, K), np.float16),
            np.zeros((N // 32, K // bk, 32 * chunk_words(bk, wt.nbits)), np.uint32),
            np.zeros((N // 32, K // group, 8 * value_words(st.nbits)), np.uint32),
            np.zeros((1, 1, 1), np.uint32), np.zeros(1, np.float16),
            np.zeros((m, N), np.float16))
    return tv.compile(kernel, target, spec=spec, A=tv.f16, wtype=wt, stype=st, group=group,
                      bk=bk, zero=dense.implicit_zero(wt),
                      block_scaled=sname in dense.BLOCK_SCALES, **tiles)


def _dense(kernel: Any, wname: str, tiles: dict[str, int], target: str) -> tv.CompiledKernel:
    wt = tv.dtype(wname)
    m = 16 if kernel is dense.quant_linear_split_k else 256
    x, y = tv.HostTensor.empty((m, K), tv.f16), tv.HostTensor.empty((m, N), tv.f16)
    w = tv.HostTensor.empty((N, K), wt)
    scales = tv.HostTensor.empty((N, K // GROUP), tv.f16)
    args, constants = dense.quant_linear_call(x, w, scales, y, group_size=GROUP, **tiles)
    return tv.compile(kernel, target, spec=args, A=tv.f16, W=wt, S=tv.f16, **constants)


def main() -> None:
    jobs: list[tuple[str, str, dict[str, int], Any]] = []
    for wname, sname, group in FORMATS:
        for name, kernel, space in (("prepared_split_k", prepared_linear_split_k,
                                     PREPARED_SPLIT_K_SPACE),
                                    ("prepared_prefill", prepared_linear_prefill,
                                     PREPARED_PREFILL_SPACE)):
            for tiles in _tiles(space):
                jobs.append((name, wname, tiles, lambda t, k=kernel, w=wname, s=sname, g=group,
                             c=tiles: _prepared(k, w, s, g, c, t)))
    for wname, _, _ in FORMATS[:2]:
        for name, kernel, space in (("general", dense.quant_linear_kernel, dense.TUNING_SPACE),
                                    ("split_k", dense.quant_linear_split_k,
                                     dense.SPLIT_K_SPACE),
                                    ("prefill", dense.quant_linear_prefill,
                                     dense.PREFILL_SPACE)):
            for tiles in _tiles(space):
                if kernel is not dense.quant_linear_prefill and tiles["bm"] * tiles["bn"] < (
                        128 * tiles["warps"]):
                    continue  # pruned by the autotuner: less than one m16n8 atom per warp
                jobs.append((name, wname, tiles, lambda t, k=kernel, w=wname, c=tiles:
                             _dense(k, w, c, t)))
    rows: list[dict[str, Any]] = []
    for index, (variant, wname, tiles, build) in enumerate(jobs):
        for target in TARGETS:
            row: dict[str, Any] = {"variant": variant, "weights": wname, "tiles": tiles,
                                   "target": target}
            try:
                compiled = build(target)
                r = compiled.resources
                row.update(registers=r.registers, spills=r.spills, stack=r.stack,
                           shared=r.shared,
                           lifted_budget=LIFTED_REGISTER_BUDGET in compiled.binary.options)
                if r.spills or r.stack:
                    print(f"SPILLS {row}", flush=True)
            except tv.CompileError as error:
                row["error"] = str(error).splitlines()[0]
                print(f"does not compile: {row}", flush=True)
            rows.append(row)
        if index % 20 == 0:
            print(f"{index + 1}/{len(jobs)} tiles compiled", flush=True)
    compiled = [r for r in rows if "error" not in r]
    summary = {"compiled": len(compiled), "refused": len(rows) - len(compiled),
               "with_spills_or_stack": sum(1 for r in compiled if r["spills"] or r["stack"]),
               "spill_free_only_with_lifted_budget": sum(1 for r in compiled
                                                         if r["lifted_budget"]),
               "max_registers": max(r["registers"] for r in compiled)}
    print(summary)
    head = json.dumps({
        "benchmark": "the low-bit linear layer's tuning spaces: registers, spills, shared memory",
        "date": datetime.date.today().isoformat(),
        "command": "python bench/quant_linear_resources.py", "summary": summary}, indent=1)
    # One row per line: 574 rows stay readable and diffable.
    body = ",\n".join("  " + json.dumps(r) for r in rows)
    RESULTS.write_text(f'{head[:-2]},\n "rows": [\n{body}\n ]\n}}\n')
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
