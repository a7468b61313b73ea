"""`tilevm demo`: the library's low-bit linear layer (W4A16, W3A16, MXFP4) runs through QuantLinear
(or the numpy kernel path without torch) on the CPU backend, is checked against float64, compiles
for sm_90, and a wrong result makes the command fail."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from example_loader import load_example

from tilevm import demo
from tilevm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _rows(table_text: str, first_column: str) -> list[list[str]]:
    """The rows of the printed tables whose first cell is ``first_column``, split on runs of two
    or more spaces (cells such as '40 x 50 x 80' hold single spaces)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in table_text.splitlines()]
    return [row for row in rows if row[0] == first_column]


@pytest.fixture(scope="module")
def cpu_demo() -> tuple[int, str, str]:
    """One in-process run of ``tilevm demo --device cpu``: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["demo", "--device", "cpu"])
    return status, out.getvalue(), err.getvalue()


FORMATS = [("W4A16", "u4", "f16/32"), ("W3A16", "u3", "f16/32"),
           ("MXFP4", "f4e2m1fn", "f8e8m0fnu/32")]


def test_demo_passes_on_the_cpu_and_prints_a_row_per_format(cpu_demo):
    status, out, err = cpu_demo
    assert status == 0, err
    assert "Traceback" not in err
    runs = [row for name, _, _ in FORMATS for row in _rows(out, name) if "cpu" in row]
    # format, m x n x k, x, w, scales, y, via, device, max error, bound, check, first call,
    # warm call, vs torch f16
    assert [(r[0], r[3], r[4]) for r in runs] == FORMATS
    m, n, k = demo.SHAPE
    for row in runs:
        assert row[1] == f"{m} x {n} x {k}" and row[2] == row[5] == "f16"
        assert row[6] == "QuantLinear" and row[10] == "ok" and row[13] == "-"
        error, bound = float(row[8]), float(row[9])
        assert 0 < error <= bound  # an f16 result is never exact on these random inputs
        assert row[11].endswith(("ms", " s")) and row[12].endswith(("ms", " s"))
    # every slow step said what it was doing
    assert err.count("running on cpu") == 3 and err.count("compiling for sm_90") == 3


def test_the_demos_weights_are_the_float_weights_quantized():
    """The check compares with float64 on the layer's own dequantized weights; those must be
    the demo's float weights to within half a quantization step (so the check is of a real
    quantization, not of weights the layer made up)."""
    import torch

    from tilevm.ops import QuantLinear, dequantize

    _, weight = demo.inputs(demo.CASES[0])
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
    layer = QuantLinear.from_linear(linear, wtype="u4", group_size=demo.GROUP,
                                    dtype=torch.float16)
    ours = dequantize(layer).numpy()
    # u4 without zero points: codes 8 ± 7, a group's step its absmax / 7 (the scale, in f16)
    step = np.abs(weight).max() / 7
    assert np.max(np.abs(ours - weight)) <= step / 2 * 1.01
    assert np.max(np.abs(ours - weight)) > 0  # quantized, not copied


def test_demo_reports_sm90_resources_and_sass(cpu_demo):
    _, out, _ = cpu_demo
    compiled = [row for name, _, _ in FORMATS for row in _rows(out, name) if "cpu" not in row]
    assert [r[1] for r in compiled] == [w for _, w, _ in FORMATS]
    from tilevm.backend.cuda.sass import cuobjdump_path

    for row in compiled:
        registers, spills, stack = int(row[2]), row[3], row[4]
        assert 0 < registers <= 255 and spills == "0 B" and stack == "0 B"
        if cuobjdump_path() is not None:
            header = re.split(r"\s{2,}", _header(out, "registers"))
            # tv.dot on f16 is mma.sync.m16n8k16 (HMMA.16816): at least one per warp per step
            assert int(row[header.index("HMMA")]) >= 1
            loads = int(row[header.index("LDG")]) + int(row[header.index("LDGSTS")])
            assert loads > 0 and int(row[header.index("STG")]) > 0
    if cuobjdump_path() is None:
        assert "cuobjdump is not installed" in out


def _header(text: str, containing: str) -> str:
    return next(line for line in text.splitlines() if containing in line and "format" in line)


def test_a_wrong_result_fails_the_demo(monkeypatch, capsys):
    # The reference is computed from an x the layer never saw: the result must be caught.
    honest = demo.reference

    def tampered(x, weights):
        x = x.copy()
        x[3, 5] += np.float16(4.0)
        return honest(x, weights)

    monkeypatch.setattr(demo, "reference", tampered)
    monkeypatch.setattr(demo, "CASES", (demo.Case("W3A16", "u3"),))
    assert main(["demo", "--device", "cpu", "--no-sass"]) == 1
    captured = capsys.readouterr()
    (row,) = [r for r in _rows(captured.out, "W3A16") if "cpu" in r]
    assert row[10] == "MISMATCH" and float(row[8]) > float(row[9])
    assert "W3A16 (u3 weights) on cpu: error" in captured.err
    assert "exceeds the accuracy bound" in captured.err and "Traceback" not in captured.err
    assert "SASS counts: not shown (--no-sass)" in captured.out or "cuobjdump" in captured.out


def test_the_bound_is_the_accuracy_rule_of_the_examples():
    # examples/accuracy.py states the rule independently: it must accept exactly the errors up to
    # demo.accuracy_bound.
    check = load_example("accuracy").check_accuracy
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(50)
    base = (ref + rng.standard_normal(50) * 1e-3).astype(np.float16)
    bound = demo.accuracy_bound(ref, base, 2.0**-11)
    ours = ref.copy()
    ours[7] += bound * 0.999
    check("inside", ours, ref, base, 2.0**-11)
    ours[7] += bound * 0.002
    with pytest.raises(AssertionError):
        check("outside", ours, ref, base, 2.0**-11)


def test_device_cuda_without_a_gpu_is_one_line_and_non_zero(capsys):
    try:
        from tilevm.runtime.cuda_driver import gpu_available
    except ImportError:  # without the GPU runtime there is no GPU to run on either
        def gpu_available() -> bool:
            return False

    if gpu_available():
        pytest.skip("a GPU is present: --device cuda runs there")
    assert main(["demo", "--device", "cuda"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("tilevm demo: no CUDA device") and err.count("\n") == 1
    assert "Traceback" not in err


def test_the_demo_needs_no_torch():
    """Without torch the demo takes the numpy kernel path, with the same results."""
    code = ("import sys; sys.modules['torch'] = None; from tilevm.cli import main; "
            "status = main(['demo', '--device', 'cpu', '--no-sass']); print(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0"
    assert "through the kernel path (torch is not installed)" in done.stdout
    runs = [row for name, _, _ in FORMATS for row in _rows(done.stdout, name) if "cpu" in row]
    assert [(r[0], r[6], r[10]) for r in runs] == [(name, "kernel", "ok") for name, _, _ in
                                                   FORMATS]
