"""The autotuner without a GPU: the tuning key, pruning by static resources (real NVRTC compiles
and synthetic records), the check against the reference and the measurement protocol on a fake
GPU (tests/runtime/fake_tuning.py: candidates run on the interpreter, a fake clock), the tuning
database, export and import across processes, and the static heuristic on the CPU."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from markdown_code import run_python_blocks

import tilevm as tv
from tilevm import f32
from tilevm.frontend import device_tensors
from tilevm.runtime import cuda_driver, tuning_db, tuning_device
from tilevm.runtime.autotune import default_key, next_power_of_two
from tilevm.runtime.tuner import (
    CandidateResources,
    ProgressBar,
    TimingSettings,
    TuningError,
    compile_candidates,
    prune_reason,
    tune,
)
from tilevm.runtime.tuning_db import Fingerprint, TuningDatabase

sys.path.insert(0, str(Path(__file__).parent))
from fake_gpu import FakeCudaArray, FakeDevice, fake_pointer_device
from fake_tuning import FakeTuningDevice
from tuning_kernels import column_sums, column_sums_numpy, doubled, scaled, staged

HERE = Path(__file__).parent
REPO = HERE.parent.parent
FAST = TimingSettings(warmup=1, repeats=3, input_copies=3)


@pytest.fixture(autouse=True)
def fresh_tuning_state(tmp_path, monkeypatch):
    """Each test starts with an empty cache dir, nothing loaded and no choice remembered."""
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path / "cache"))
    tuning_db.clear_loaded()
    for k in (doubled, column_sums, scaled, staged):
        k.clear()
    yield
    tuning_db.clear_loaded()


def doubled_times(config):
    """wrong=1 is the fastest on purpose: the check must keep it from winning."""
    return {(64, 0): 3.0, (128, 0): 2.0, (64, 1): 1.0, (128, 1): 0.5}[
        (config["block"], config["wrong"])]


# -- the key -----------------------------------------------------------------------------------


def test_the_key_rounds_the_first_dimension_up_to_a_power_of_two_and_keeps_the_others():
    assert [next_power_of_two(n) for n in (0, 1, 2, 3, 100, 128, 129, 4097)] == [
        1, 1, 2, 4, 128, 128, 256, 8192]
    assert default_key(["m", "k", "n"]) == {"m": "pow2", "k": "exact", "n": "exact"}
    # column_sums's dimensions are (s, n) in the order its parameters name them
    assert column_sums.key_of({"n": 100, "s": 40}) == {"s": 64, "n": 100}
    assert column_sums.key_of({"s": 64, "n": 100}) == column_sums.key_of({"s": 33, "n": 100})
    assert column_sums.key_of({"s": 65, "n": 100}) != column_sums.key_of({"s": 64, "n": 100})
    assert doubled.key_of({"n": 300}) == {"n": 512}


def test_the_key_rule_is_overridable():
    def make(key):
        return tv.autotune(space={"block": [32, 64]}, key=key)(column_sums.kernel)

    assert make({"n": 16}).key_of({"s": 40, "n": 100}) == {"n": 112}  # a multiple of 16
    assert make({"s": "exact", "n": "pow2"}).key_of({"s": 40, "n": 100}) == {"s": 40, "n": 128}
    assert make({"n": lambda v: v // 10}).key_of({"s": 1, "n": 100}) == {"n": 10}
    assert make(lambda d: {"rows": d["s"] > 1000}).key_of({"s": 40, "n": 1}) == {"rows": 0}
    with pytest.raises(ValueError, match="'t' is not a dimension"):
        make({"t": "exact"}).key_of({"s": 40, "n": 100})
    with pytest.raises(ValueError, match="key rule for 'n'"):
        make({"n": "log"}).key_of({"s": 40, "n": 100})


def test_autotune_also_makes_a_plain_function_a_kernel():
    scale = 2

    @tv.autotune(space={"block": [32, 64]})
    def local(x: tv.Global[f32, "n"], *, block: tv.Const = 32):
        tv.launch(grid=tv.cdiv(n, block), warps=1)
        start = tv.block_idx() * block
        tv.store(x, tv.load(x, (start,), (block,)) * scale, (start,))

    assert local.configs == [{"block": 32}, {"block": 64}] and local.dim_names == ("n",)
    assert dict(local.ir(block=64).constants)["block"] == 64
    x = np.arange(40, dtype=np.float32)
    local.kernel(x, device="interp")
    assert np.array_equal(x, 2 * np.arange(40))


def test_a_kernel_remembers_a_bounded_number_of_shapes(monkeypatch):
    """Each new shape's choice is remembered up to a bound (a server sees a new M per prompt
    length); past it, a new shape's choice is still found, and not remembered."""
    from tilevm.runtime import autotune as autotune_module

    @tv.autotune(space={"block": [32]})
    def local(x: tv.Global[f32, "n"], *, block: tv.Const = 32):
        tv.launch(grid=tv.cdiv(n, block), warps=1)
        start = tv.block_idx() * block
        tv.store(x, tv.load(x, (start,), (block,)) * 2, (start,))

    monkeypatch.setattr(autotune_module, "_SHAPES_REMEMBERED", 2)
    for size in (10, 20, 30, 10):
        choice = local.choose(np.zeros(size, np.float32), device="cpu")
        assert choice.config == {"block": 32} and choice.source == "given"
    assert len(local._by_shape) == 2


def test_a_space_naming_something_that_is_not_a_constant_is_refused():
    with pytest.raises(ValueError, match="'bloc' is not a constant of the kernel"):
        tv.autotune(space={"bloc": [32]})(column_sums.kernel)
    with pytest.raises(ValueError, match="the space is empty"):
        tv.autotune(space={})(column_sums.kernel)


def test_the_space_is_the_product_then_the_explicit_configs_without_duplicates():
    k = tv.autotune(space={"block": [32, 64], "split": [1, 2]},
                    configs=[{"block": 128, "split": 4}, {"block": 32, "split": 1}])(
        column_sums.kernel)
    assert k.configs == [{"block": 32, "split": 1}, {"block": 32, "split": 2},
                         {"block": 64, "split": 1}, {"block": 64, "split": 2},
                         {"block": 128, "split": 4}]
    assert k.candidates({"split": 2}) == [{"block": 32, "split": 2}, {"block": 64, "split": 2}]
    assert k.candidates({"block": 16, "split": 2}) == [{"block": 16, "split": 2}]


# -- pruning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("resources, arch, pruned", [
    # registers: ceil(regs/8)·8 × 32 × warps ≤ 65536 and regs ≤ 255
    (CandidateResources(255, 0, 0, 0, 0, 8), "sm_90", False),  # 256·32·8 = 65536
    (CandidateResources(256, 0, 0, 0, 0, 1), "sm_90", True),
    (CandidateResources(129, 0, 0, 0, 0, 16), "sm_90", True),  # 136·32·16 = 69632
    (CandidateResources(128, 0, 0, 0, 0, 16), "sm_90", False),  # 128·32·16 = 65536
    # static shared memory ≤ 48 KB
    (CandidateResources(32, 0, 0, 48 * 1024, 0, 4), "sm_90", False),
    (CandidateResources(32, 0, 0, 48 * 1024 + 1, 0, 4), "sm_90", True),
    # static + dynamic shared memory: 163 KB on sm_80, 99 KB on sm_86/89, 227 KB on sm_90
    (CandidateResources(32, 0, 0, 0, 163 * 1024, 4), "sm_80", False),
    (CandidateResources(32, 0, 0, 1024, 163 * 1024, 4), "sm_80", True),
    (CandidateResources(32, 0, 0, 0, 99 * 1024, 4), "sm_86", False),
    (CandidateResources(32, 0, 0, 0, 99 * 1024 + 4, 4), "sm_89", True),
    (CandidateResources(32, 0, 0, 0, 227 * 1024, 4), "sm_90", False),
    (CandidateResources(32, 0, 0, 0, 228 * 1024, 4), "sm_90", True),
    # spills are judged by the tuner, not here
    (CandidateResources(255, 4096, 4096, 0, 0, 1), "sm_90", False),
])
def test_the_static_resource_limits(resources, arch, pruned):
    assert (prune_reason(resources, arch) is not None) == pruned


@pytest.fixture(scope="module")
def scaled_on_sm80():
    """The candidates of `scaled` compiled for sm_80 (in two processes) at n = 1000, without a
    GPU."""
    return tune(scaled, {"n": 1000}, device=None, arch="sm_80", workers=2)


def test_real_compiles_are_pruned_by_spills_and_shared_memory_and_the_predicate(scaled_on_sm80):
    result = scaled_on_sm80
    by_config = {(c.config["block"], c.config["warps"]): c for c in result.candidates}
    assert by_config[(8192, 4)].status == "pruned"
    assert by_config[(8192, 4)].reason == "rejected by prune="
    spilled = by_config[(8192, 1)]  # 256 values per thread cannot stay in 255 registers
    assert spilled.status == "spills" and spilled.resources.spills > 0
    assert not spilled.chosen
    for c in result.candidates:
        if c.resources is not None and c.status != "spills":
            r = c.resources  # the rule, applied here to what ptxas reported
            assert r.registers <= 255 and math.ceil(r.registers / 8) * 8 * 32 * r.warps <= 65536
            assert c.status == "fits"
    shared = tune(staged, {"n": 1000}, device=None, arch="sm_86", workers=0)
    too_big = next(c for c in shared.candidates if c.config["stage"] == 65536)
    assert too_big.status == "error" and "262144 bytes of shared memory" in too_big.reason
    assert shared.config == {"block": 128, "stage": 1024}


def test_a_spilling_candidate_is_used_only_when_nothing_else_is_left():
    result = tune(scaled, {"n": 1000}, constants={"block": 8192, "warps": 1}, device=None,
                  arch="sm_80", workers=0)
    (only,) = result.candidates
    assert only.chosen and only.status == "spills" and "kept" in only.reason


def test_candidates_compile_in_parallel_processes_as_they_do_here():
    irs = [scaled.kernel.ir(block=b, warps=4) for b in (128, 256)]
    pooled = compile_candidates(irs, "sm_90", None, workers=2)  # None: the general kernel
    here = compile_candidates(irs, "sm_90", None, workers=0)
    assert [r["cubin"] for r in pooled] == [r["cubin"] for r in here]
    assert [r["resources"] for r in pooled] == [r["resources"] for r in here]


# -- checking and timing on a (fake) GPU ------------------------------------------------------


def test_a_candidate_with_wrong_results_is_rejected_and_never_chosen():
    device = FakeTuningDevice(doubled_times, ["out"])
    result = tune(doubled, {"n": 300}, device=device, workers=0, settings=FAST)
    status = {(c.config["block"], c.config["wrong"]): c.status for c in result.candidates}
    assert status == {(64, 0): "timed", (128, 0): "timed", (64, 1): "wrong", (128, 1): "wrong"}
    wrong = next(c for c in result.candidates if c.status == "wrong")
    assert "the reference says" in wrong.reason
    # the fastest of the correct ones, by the fake clock
    assert result.source == "tuned" and result.config == {"block": 128, "wrong": 0}
    assert result.best.time_ms == 2.0 and result.best.times_ms == [2.0] * FAST.repeats
    assert "timed *" in result.table() and "wrong" in result.table()
    json.dumps(result.to_json())  # the CLI's --json needs nothing more


def test_outputs_are_reset_before_every_run_of_an_accumulating_kernel():
    # column_sums adds each block's partial sums into `out` atomically (split-K style): a run
    # that starts from the previous run's output doubles it.
    times = {(32, 1): 4.0, (32, 2): 3.0, (64, 1): 2.0, (64, 2): 1.0}
    device = FakeTuningDevice(lambda c: times[(c["block"], c["split"])], ["out"])
    # s = 300 > 256: the check against the CPU backend runs at a reduced size (s = 256)
    result = tune(column_sums, {"s": 300, "n": 100}, device=device, workers=0, settings=FAST)
    assert [c.status for c in result.candidates] == ["timed"] * 4
    assert result.config == {"block": 64, "split": 2}
    x = np.random.default_rng(5).integers(-1000, 1000, (300, 100)).astype(np.int32)
    out = np.zeros(100, np.int32)
    column_sums.kernel(x, out, device="interp", **result.config)
    assert np.array_equal(out, column_sums_numpy(x))
    launches = device.launches()
    assert len(launches) == 4 * (FAST.warmup + 1 + FAST.repeats)
    for _, config, before, _ in launches:
        assert not before["out"].any(), f"{config}: a run started from a non-zero output"
    # the L2 is flushed before every timed run, and the inputs rotate over 3 copies
    timed = [i for i, e in enumerate(device.log) if e[0] == "launch"
             and len(e[2]["out"]) == 100 and device.log[i - 1] == ("flush",)]
    assert len(timed) == 4 * FAST.repeats
    x_buffers = {device.log[i][3][0] for i in timed}
    assert len(x_buffers) == FAST.input_copies
    # without the resets every candidate accumulates and fails the check
    stale = FakeTuningDevice(lambda c: 1.0, ["out"], reset=False)
    with pytest.raises(TuningError, match="no candidate of column_sums passed the check"):
        tune(column_sums, {"s": 40, "n": 100}, device=stale, workers=0, settings=FAST)


def test_progress_is_reported_per_stage():
    stream = io.StringIO()
    device = FakeTuningDevice(doubled_times)
    tune(doubled, {"n": 64}, device=device, workers=0, settings=FAST,
         progress=ProgressBar("doubled ", stream), write=False)
    text = stream.getvalue()
    for stage in ("compile", "measure"):
        assert f"doubled {stage}" in text
    assert "4/4" in text and text.endswith("\n")


# -- the database ------------------------------------------------------------------------------


def test_the_database_round_trip_ignores_other_fingerprints_and_keeps_them(tmp_path):
    device = FakeTuningDevice(doubled_times)
    result = tune(doubled, {"n": 300}, device=device, workers=0, settings=FAST)
    path = result.db_path
    assert path.parent == tmp_path / "cache" / "tuning"
    db = TuningDatabase()
    entry = db.lookup(result.entry.identity, device.fingerprint)
    assert entry is not None and entry.config == {"block": 128, "wrong": 0}
    assert entry.key == {"n": 512} and entry.fingerprint.gpu == "Fake GPU"
    for changed in ({"driver": "12.8"}, {"gpu": "Other GPU"}, {"compute_capability": "8.0"},
                    {"tilevm": "0.0.1"}):
        other = Fingerprint(**{**vars(device.fingerprint), **changed})
        assert db.lookup(result.entry.identity, other) is None
    # another driver's result goes into the same file; neither replaces the other
    older = FakeTuningDevice(lambda c: doubled_times({**c, "block": 192 - c["block"]}),
                             driver="12.8")
    tune(doubled, {"n": 300}, device=older, workers=0, settings=FAST)
    assert len(db.entries(doubled.qualname)) == 2
    assert db.lookup(result.entry.identity, device.fingerprint).config["block"] == 128
    assert db.lookup(result.entry.identity, older.fingerprint).config["block"] == 64
    # another bucket, another entry
    assert db.lookup((*result.entry.identity[:3], '{"n":1024}', result.entry.identity[4]),
                     device.fingerprint) is None


def test_a_corrupt_database_file_is_ignored_with_a_warning_and_rewritten():
    db = TuningDatabase()
    path = db.path(doubled.qualname)
    path.parent.mkdir(parents=True)
    device = FakeTuningDevice(doubled_times)
    for garbage in ('{"tilevm_tuning": 1, "entries": [{"kernel": 3}]}', "{not json", "\xff"):
        path.write_text(garbage)
        with pytest.warns(RuntimeWarning, match="corrupt tuning database file"):
            assert db.entries(doubled.qualname) == []
    with pytest.warns(RuntimeWarning, match="corrupt"):
        result = tune(doubled, {"n": 300}, device=device, workers=0, settings=FAST)
    assert db.lookup(result.entry.identity, device.fingerprint) is not None


def test_a_database_that_cannot_be_written_costs_a_warning_not_the_result(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tuning").write_text("a file where the folder should be")
    with pytest.warns(RuntimeWarning, match="was not saved"):
        result = tune(doubled, {"n": 300}, device=FakeTuningDevice(doubled_times), workers=0,
                      settings=FAST)
    assert result.db_path is None and result.config == {"block": 128, "wrong": 0}


@pytest.fixture
def fake_gpu(monkeypatch):
    """GPU 0 as a FakeDevice (launches recorded); a tuning run measures on a FakeTuningDevice
    of the same fingerprint. ``fake_gpu.tunings`` counts the tuning runs."""
    gpu = FakeDevice(0)
    gpu.driver = "13.0"
    monkeypatch.setattr(cuda_driver, "cuda_device", lambda index=0: gpu)
    monkeypatch.setattr(device_tensors, "pointer_device", fake_pointer_device({}))
    gpu.tunings = []

    def measuring_device(index=0):
        device = FakeTuningDevice(doubled_times, ["out"])
        gpu.tunings.append(device)
        return device

    monkeypatch.setattr(tuning_device, "CudaTuningDevice", measuring_device)
    return gpu


def gpu_arrays(n):
    return FakeCudaArray((n,), np.float32, 0x7F0000000000), FakeCudaArray(
        (n,), np.float32, 0x7F0000100000)


def test_a_gpu_call_tunes_once_per_bucket_then_reads_the_database(fake_gpu):
    x, out = gpu_arrays(300)
    doubled(x, out)
    assert doubled.last_choice.source == "tuned" and len(fake_gpu.tunings) == 1
    assert doubled.last_choice.config == {"block": 128, "wrong": 0}
    assert fake_gpu.launches[-1].grid[0] == 3  # cdiv(300, 128): the chosen block size
    doubled(*gpu_arrays(400))  # the same bucket (n ≤ 512): no second tuning run
    assert len(fake_gpu.tunings) == 1 and fake_gpu.launches[-1].grid[0] == 4
    doubled.clear()  # a new process, as far as the kernel knows
    assert doubled.choose(x, out).source == "database"
    assert "from the tuning database" in doubled.explain(x, out)
    assert len(fake_gpu.tunings) == 1
    doubled(x, out, block=64, wrong=0)  # every tuned constant given by the call: used as given
    assert doubled.last_choice.source == "given" and fake_gpu.launches[-1].grid[0] == 5
    doubled(x, out, block=64)  # some given: the rest is tuned within what they leave
    assert doubled.last_choice.source == "tuned" and len(fake_gpu.tunings) == 2
    assert doubled.last_choice.config == {"block": 64, "wrong": 0}


def test_a_tuning_run_ahead_of_the_calls_serves_them(fake_gpu):
    device = FakeTuningDevice(doubled_times)
    result = doubled.tune({"n": 300}, device=device, workers=0, settings=FAST, write=False)
    assert result.db_path is None and not TuningDatabase().entries(doubled.qualname)
    choice = doubled.choose(*gpu_arrays(260))
    assert choice.source == "tuned" and choice.config == result.config
    assert fake_gpu.tunings == []  # served by the run above, not by a new one


def test_an_exported_file_gives_a_fresh_process_the_same_choice_without_tuning(tmp_path):
    device = FakeTuningDevice(doubled_times)
    result = tune(doubled, {"n": 300}, device=device, workers=0, settings=FAST)
    shipped = tmp_path / "tuning.json"
    assert tv.export_tuning(shipped, [result.entry]) == 1
    script = f"""
import json, sys
import numpy as np
import tilevm as tv
from tilevm.frontend import device_tensors
from tilevm.runtime import cuda_driver, tuning_device
from fake_gpu import FakeCudaArray, FakeDevice, fake_pointer_device
from tuning_kernels import doubled

gpu = FakeDevice(0)
gpu.driver = "13.0"
cuda_driver.cuda_device = lambda index=0: gpu
device_tensors.pointer_device = fake_pointer_device({{}})

def no_tuning(index=0):
    raise RuntimeError("a tuning run started")

tuning_device.CudaTuningDevice = no_tuning
x = FakeCudaArray((300,), np.float32, 0x7F0000000000)
out = FakeCudaArray((300,), np.float32, 0x7F0000100000)
try:
    doubled.choose(x, out)
    before = "no tuning"
except RuntimeError as e:
    before = str(e)
tv.load_tuning({str(shipped)!r})
doubled(x, out)
print(json.dumps({{"before": before, "source": doubled.last_choice.source,
                  "config": doubled.last_choice.config, "grid": gpu.launches[-1].grid}}))
"""
    env = {**os.environ, "TILEVM_CACHE_DIR": str(tmp_path / "empty-cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["before"] == "a tuning run started"  # without the file it would tune
    assert answer["source"] == "loaded" and answer["config"] == result.config
    assert answer["grid"] == [3]


def test_export_merges_and_load_refuses_a_broken_file(tmp_path):
    device = FakeTuningDevice(doubled_times)
    first = tune(doubled, {"n": 300}, device=device, workers=0, settings=FAST)
    second = tune(doubled, {"n": 2000}, device=device, workers=0, settings=FAST)
    shipped = tmp_path / "t.json"
    tv.export_tuning(shipped, [first.entry])
    assert tv.export_tuning(shipped, [second.entry]) == 2
    assert tv.export_tuning(tmp_path / "all.json") == 2  # the database's entries
    assert tv.load_tuning(shipped) == 2
    shipped.write_text("[]")
    with pytest.raises(tuning_db.TuningFileError, match="not a tilevm tuning file"):
        tv.load_tuning(shipped)


# -- without a GPU: the static heuristic -------------------------------------------------------


def test_without_a_gpu_the_static_heuristic_chooses_and_says_so(scaled_on_sm80, caplog):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    out = np.zeros_like(x)
    with caplog.at_level("INFO", logger="tilevm.autotune"):
        scaled(x, out)
    choice = scaled.last_choice
    assert f"scaled: {choice}" in caplog.text  # the first choice of a key is logged
    assert choice.source == "heuristic" and "static heuristic" in scaled.explain(x, out)
    assert choice.where == "no GPU (sm_80)" and choice.key == {"n": 1024}
    assert np.array_equal(out, x * np.float32(3))
    # The rule of docs/tuning.md, applied here to the candidates' sizes: the spilling and the
    # pruned 8192 are out; of the rest, the fewest blocks at n = 1024 is cdiv(1024, 4096) = 1
    # (block 4096, with 1 or 4 warps); the tie goes to the occupancy closest to 1/2.
    assert choice.config["block"] == 4096
    result = scaled_on_sm80
    assert result.config == choice.config and result.source == "heuristic"
    with pytest.raises(ValueError, match="nothing to export: no GPU measured"):
        result.export(HERE / "never-written.json")
    occupancy = {}
    for c in result.candidates:
        if c.config["block"] == 4096:
            r = c.resources
            per_block = math.ceil(r.registers / 8) * 8 * 32 * r.warps
            blocks = min(65536 // per_block, 64 // r.warps, 32)  # sm_80: 64 warps, 32 blocks
            occupancy[c.config["warps"]] = blocks * r.warps / 64
    closest = min(occupancy, key=lambda w: abs(occupancy[w] - 0.5))
    assert choice.config["warps"] == closest


def test_the_python_blocks_of_docs_tuning_md_run_on_the_cpu(capsys):
    page = REPO / "docs" / "tuning.md"
    text = page.read_text()
    run_python_blocks(page, at_least=4)
    printed = capsys.readouterr().out
    # the choice the page shows in a comment is the one printed
    shown = re.search(r"print\(scale.last_choice\)\n# (.*?)\n# (.*?)\n", text)
    assert f"{shown.group(1)} {shown.group(2)}" in printed.replace("\n", " ")


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_driver.gpu_available(), reason="needs a CUDA GPU")
def test_on_a_real_gpu_candidates_are_checked_timed_stored_and_used():
    # the CUDA side of the tuner (tuning_device.CudaTuningDevice): real memory, copies, events
    result = tune(doubled, {"n": 5000}, workers=2, settings=FAST)
    assert result.source == "tuned" and result.config["wrong"] == 0
    assert {c.status for c in result.candidates if c.config["wrong"]} == {"wrong"}
    assert all(c.time_ms > 0 for c in result.candidates if c.status == "timed")
    sums = tune(column_sums, {"s": 300, "n": 1000}, workers=2, settings=FAST)
    assert [c.status for c in sums.candidates] == ["timed"] * 4  # reset between runs
    x = np.random.default_rng(0).integers(-1000, 1000, (300, 1000)).astype(np.int32)
    dx, dout = tv.DeviceArray.from_numpy(x), tv.DeviceArray.from_numpy(np.zeros(1000, np.int32))
    column_sums(dx, dout)
    assert column_sums.last_choice.source == "database"
    assert column_sums.last_choice.config == sums.config
    assert np.array_equal(dout.to_numpy(), column_sums_numpy(x))


def test_the_default_key_of_a_kernel_with_dtype_variables():
    """The key's dimensions come from the annotations: no dtype variable needs binding."""
    @tv.autotune(space={"block": [32, 64]})
    @tv.kernel
    def copy(x: tv.Global[tv.Dtype("T"), "rows", "cols"], y: tv.Global[tv.Dtype("T"), "rows",
                                                                         "cols"],
             *, block: tv.Const = 32):
        tv.launch(grid=rows, warps=1)
        r = tv.block_idx()
        tv.store(y, tv.load(x, (r, 0), (1, block)), (r, 0))

    assert copy.key_of({"rows": 100, "cols": 7}) == {"rows": 128, "cols": 7}
