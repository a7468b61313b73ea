"""The CPU backend held to the golden outputs of the per-instruction conformance kernels
(``tilevm.conformance``; ``tests/golden/``, recorded by ``bench/gpu_check.py``).

Each golden launch is rebuilt from its fixed seeds (its inputs must hash to what the goldens were
recorded for), run on the CPU backend, and each checked output compared with the golden one: bit
for bit for the exact class (NaNs as a class), under the launch's bounds for ``mma`` and
``.approx`` (``tilevm/conformance/compare.py``). Until a GPU has recorded them, the goldens are
the CPU backend's own outputs: the comparisons still run (and catch any change of the CPU
emulation), each warns that the goldens are not GPU-recorded, and
``test_goldens_are_recorded_on_a_gpu`` is an expected failure saying so.

The cast launches convert every type of at most 8 bits; JIT-compiling all of them for both rule
sets takes minutes, so here the CPU backend runs a subset of types per family (``CAST_TYPES``,
with the inputs those types have in the whole launch) and every type's goldens are held to the
exact values (``exact_halves``), which ``tests/backend/lower/test_casts_*`` hold the CPU
backend's casts of every type to.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tilevm.conformance import conformance_launch, golden_launch_names, run_on_cpu_backend
from tilevm.conformance.casts import cast_launch, exact_halves, unpack_groups
from tilevm.conformance.compare import compare
from tilevm.conformance.goldens import inputs_digest, read_goldens
from tilevm.ir.dtypes import dtype

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
# Types whose casts the CPU backend runs here: one of each sequence family (1-, 2-, 3-bit
# fields, nibbles, bytes; the OCP fp4/fp6/fp8 types, fnuz NaN handling, the e8m0 scale).
CAST_TYPES = {"int": ["u1", "i2", "u3", "u4", "i8"],
              "float": ["f4e2m1fn", "f6e3m2fn", "f8e4m3fn", "f8e5m2fnuz", "f8e8m0fnu"]}


@pytest.fixture(scope="module")
def goldens():
    return read_goldens(GOLDEN_DIR)


def _not_on_gpu_warning(goldens) -> None:
    if not goldens.on_gpu:
        warnings.warn(f"tests/golden holds the CPU backend's outputs (source {goldens.source!r}): "
                      "no GPU has recorded them yet; see tests/golden/README.md", stacklevel=2)


def test_goldens_are_recorded_on_a_gpu(goldens) -> None:
    assert goldens.source == "cpu" or goldens.on_gpu, goldens.source
    if not goldens.on_gpu:
        pytest.xfail("tests/golden holds CPU-backend outputs: no GPU run has recorded the "
                     "goldens yet (bench/gpu_check.py --write-goldens on a GPU machine)")


def test_goldens_cover_exactly_the_golden_launches(goldens) -> None:
    assert sorted(goldens.outputs) == sorted(golden_launch_names())
    assert sorted(goldens.digests) == sorted(golden_launch_names())


def _check(launch, goldens, outputs: dict[str, np.ndarray], names) -> None:
    bounds = launch.bounds(outputs) if launch.bounds else {}
    recorded = goldens.outputs[launch.name]
    for name in names:
        golden = recorded[name]
        assert golden.dtype == outputs[name].dtype and golden.shape == outputs[name].shape, name
        result = compare(launch.checks[name].to_json(), golden, outputs[name],
                         {"bound": bounds.get(name)})
        assert result["ok"], (f"{launch.name}/{name}: the CPU backend differs from the goldens "
                              f"({goldens.source}): {result}")


NON_CAST = [n for n in golden_launch_names() if not n.startswith("conformance_cast_")]
CASTS = [n for n in golden_launch_names() if n.startswith("conformance_cast_")]


@pytest.mark.parametrize("name", NON_CAST)
def test_cpu_backend_matches_the_goldens(name, goldens) -> None:
    launch = conformance_launch(name)
    assert inputs_digest(launch.buffers) == goldens.digests[name], (
        f"{name}: its inputs changed since the goldens were recorded; record them again "
        "(bench/README.md, gpu_check)")
    _check(launch, goldens, run_on_cpu_backend(launch), launch.checks)
    _not_on_gpu_warning(goldens)


@pytest.mark.parametrize("name", CASTS)
def test_cpu_casts_match_the_goldens_and_every_golden_is_exact(name, goldens) -> None:
    whole = conformance_launch(name)
    assert inputs_digest(whole.buffers) == goldens.digests[name], (
        f"{name}: its inputs changed since the goldens were recorded; record them again")
    family, rules = name.split("_")[2], int(name.rsplit("sm", 1)[1])
    for src_name in [b.removeprefix("codes_") for b in whole.buffers if b.startswith("codes_")]:
        src = dtype(src_name)
        codes = unpack_groups(whole.buffers[f"codes_{src_name}"], src)
        for dst in ("f16", "bf16"):
            result = compare({"kind": "exact", "element": dst},
                             goldens.outputs[name][f"{dst}_{src_name}"],
                             exact_halves(src, codes, dst), {})
            assert result["ok"], f"{name}: golden {src_name} -> {dst} is not exact: {result}"
    subset = cast_launch(family, rules, "natural", types=CAST_TYPES[family])
    subset.name = name
    assert all(np.array_equal(subset.buffers[b], whole.buffers[b]) for b in subset.buffers)
    _check(subset, goldens, run_on_cpu_backend(subset), subset.checks)
    _not_on_gpu_warning(goldens)
