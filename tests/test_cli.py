"""The `tilevm` command: `info` (the environment and the dtype table, as the README's main job
prints them), `compile`, `run` and `bench`; help for every command, user errors on one line."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tilevm.cli import main
from tilevm.ir.dtypes import all_dtypes


def test_info_prints_the_environment_and_every_float_type(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"nvrtc         {metadata.version('nvidia-cuda-nvrtc')}" in out
    assert f"cache         {tmp_path / 'cache'}" in out
    assert "gpu" in out and "driver" in out and sys.version.split()[0] in out
    rows = {line.split()[0]: line for line in out.splitlines() if line and line[0] in "uifb"}
    for dt in all_dtypes():
        if dt.is_float:
            assert dt.name in rows, dt.name
    assert ".e4m3" in rows["f8e4m3fn"] and "float8_e4m3fn" in rows["f8e4m3fn"]
    assert "-448 .. 448" in rows["f8e4m3fn"] and "fn" in rows["f8e4m3fn"]


def test_python_dash_m_and_bad_commands():
    done = subprocess.run([sys.executable, "-m", "tilevm", "info"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "f6e3m2fn" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "tilevm", "frobnicate"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_importing_tilevm_needs_numpy_only():
    code = ("import sys, tilevm; heavy = {'lark', 'llvmlite', 'torch', 'ml_dtypes', 'cuda'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_compile_prints_the_report_and_writes_the_cubin(capsys, tmp_path):
    cubin = tmp_path / "vector_add.cubin"
    argv = ["compile", f"{EXAMPLES / 'vector_add.py'}:vector_add", "--arch", "sm_80", "--aligned",
            "--const", "block=512", "--emit", "resources", "--emit", "report", "-o", str(cubin)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("registers ") and "kernel vector_add for sm_80" in out
    assert "  x: 16-byte aligned, strides [1]" in out and "  multiples of 16: n" in out
    assert "load global 'x': 128-bit" in out
    assert cubin.read_bytes()[:4] == b"\x7fELF"


def test_compile_reports_bad_input_without_a_traceback(capsys):
    kernel = f"{EXAMPLES / 'vector_add.py'}:vector_add"
    assert main(["compile", kernel, "--arch", "sm_70"]) == 1
    err = capsys.readouterr().err
    assert "sm_70" in err and "sm_80" in err and "Traceback" not in err
    for argv, message in ((["compile", f"{EXAMPLES / 'vector_add.py'}:nope"], "no kernel 'nope'"),
                          (["compile", "missing.py:k"], "no such file"),
                          (["compile", kernel, "--const", "=3"], "NAME=VALUE"),
                          (["compile", kernel, "--const", "bogus=3"],
                           "has no constant bogus (its constants: block)"),
                          (["run", kernel], "needs the sizes n; missing n"),
                          (["run", kernel, "--shape", "n=8", "--scalar", "q=1"],
                           "no scalar parameter q"),
                          (["run", kernel, "--shape", "n=-1"], "not a non-negative integer"),
                          (["run", kernel, "--shape", "n=8", "--device", "cuda", "--sanitize"],
                           "--sanitize needs --device cpu")):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_compile_prints_a_lowering_error_at_the_users_line(capsys, tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("import tilevm as tv\nfrom tilevm import f64\n\n\n@tv.kernel\n"
                      "def k(x: tv.Global[f64, 64]):\n    tv.launch(grid=1, warps=1)\n"
                      "    tv.store(x, tv.sin(tv.load(x, (0,), (64,))), (0,))\n")
    assert main(["compile", f"{source}:k"]) == 1
    err = capsys.readouterr().err
    assert "bad.py:8" in err and "f64" in err and "cast the operand to f32" in err


def test_compile_emits_sass(capsys):
    assert main(["compile", f"{EXAMPLES / 'matmul.py'}:matmul", "--arch", "sm_90", "--emit",
                 "sass"]) == 0
    out = capsys.readouterr().out
    assert "Function : matmul" in out and "HMMA" in out and "sm_90" in out


def test_run_checks_random_inputs_against_the_interpreter(capsys):
    argv = ["run", f"{EXAMPLES / 'softmax.py'}:softmax", "--shape", "m=5,n=70", "--seed", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "softmax on cpu" in out and "bounded (exp" in out
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()][:2]
    assert [r[:3] for r in rows] == [["x", "f16", "5x70"], ["y", "f16", "5x70"]]
    assert all(" ".join(r[3:]) == "within the bound" for r in rows)


def test_run_on_the_interpreter_and_under_the_sanitizer(capsys):
    kernel = f"{EXAMPLES / 'vector_add.py'}:vector_add"
    assert main(["run", kernel, "--shape", "n=1000", "--device", "interp"]) == 0
    assert main(["run", kernel, "--shape", "n=1000", "--sanitize"]) == 0
    out = capsys.readouterr().out
    assert out.count("same bits") == 6 and "check exact: bit for bit" in out


def test_bench_times_every_stage(capsys):
    assert main(["bench", f"{EXAMPLES / 'vector_add.py'}:vector_add", "--shape", "n=4096",
                 "--repeat", "2", "--arch", "sm_80"]) == 0
    out = capsys.readouterr().out
    for stage in ("lower for sm_80", "CUDA C++", "NVRTC", "lower for the CPU backend",
                  "CPU-backend JIT", "CPU-backend run (median of 2)", "GPU run"):
        assert stage in out, stage
    assert "0 B spilled" in out


def test_cache_lists_inspects_verifies_and_clears(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    kernel = f"{EXAMPLES / 'vector_add.py'}:vector_add"
    assert main(["cache", "list"]) == 0
    assert "no compiled kernels" in capsys.readouterr().out
    assert main(["compile", kernel, "--arch", "sm_80"]) == 0
    assert main(["compile", kernel, "--arch", "sm_80", "--aligned"]) == 0
    capsys.readouterr()
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and out.count("vector_add  sm_80") == 2
    assert "nothing known (the general kernel)" in out and "16-byte aligned" in out
    keys = sorted(p.stem for p in (tmp_path / "kernels").glob("*.json"))
    assert main(["cache", "info", keys[0][:10]]) == 0
    out = capsys.readouterr().out
    assert f"key           {keys[0]}" in out and "valid         yes" in out
    assert "kernel @vector_add" in out  # its Tile IR
    cubin = tmp_path / "kernels" / f"{keys[1]}.cubin"
    cubin.write_bytes(cubin.read_bytes()[:100])  # truncated
    assert main(["cache", "verify"]) == 1
    captured = capsys.readouterr()
    assert keys[1][:12] in captured.out and "1 of 2 entries valid" in captured.out
    assert "1 corrupt entry" in captured.err
    assert main(["cache", "info", "nope"]) == 1
    assert "no kernel cache entry 'nope'" in capsys.readouterr().err
    assert main(["cache", "clear"]) == 0 and main(["cache", "list"]) == 0
    assert "no compiled kernels" in capsys.readouterr().out


def test_tune_without_a_gpu_shows_the_heuristics_choice(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    tuned = f"{Path(__file__).parent / 'runtime' / 'tuning_kernels.py'}:doubled"
    assert main(["tune", tuned, "--shape", "n=1000", "--workers", "0", "--arch", "sm_80"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "doubled [n=1024] on sm_80, no GPU (static heuristic)"
    assert sum(line.split()[-1] == "*" or " * " in line for line in lines[2:6]) == 1
    assert "nothing was written to the tuning database" in captured.out
    assert "compile  [" in captured.err and "4/4" in captured.err  # the progress bar
    plain = f"{EXAMPLES / 'vector_add.py'}:vector_add"
    for argv, message in (([tuned, "--shape", "n=64", "--export", str(tmp_path / "t.json"),
                            "--workers", "0"], "nothing to export: no GPU measured"),
                          ([plain, "--shape", "n=64"], "not an @tilevm.autotune kernel"),
                          ([plain, "--shape", "n=64", "--space", "warps=1,2"],
                           "'warps' is not a constant of the kernel"),
                          ([tuned, "--shape", "n=64", "--space", "block=1"],
                           "declares its space")):
        assert main(["tune", *argv]) == 1, argv
        assert message in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("command", ["info", "compile", "run", "bench", "tune", "cache", "demo"])
def test_every_command_and_option_has_help(command, capsys):
    from tilevm.cli import parser

    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    sub = next(a for a in parser()._subparsers._group_actions[0].choices.items()
               if a[0] == command)[1]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        for option in action.option_strings:
            assert option in out


def test_a_dtype_variable_is_given_on_the_command_line(capsys, tmp_path):
    source = tmp_path / "generic.py"
    source.write_text("import tilevm as tv\n\n\n@tv.kernel\n"
                      "def double(x: tv.Global[tv.Dtype('T'), 'n'], "
                      "y: tv.Global[tv.Dtype('T'), 'n']):\n"
                      "    tv.launch(grid=1, warps=1)\n"
                      "    t = tv.load(x, (0,), (64,))\n    tv.store(y, t + t, (0,))\n")
    assert main(["run", f"{source}:double", "--shape", "n=50"]) == 1
    assert "dtype variable T: give it with --const T=f16" in capsys.readouterr().err
    assert main(["run", f"{source}:double", "--shape", "n=50", "--const", "T=bf16"]) == 0
    out = capsys.readouterr().out
    assert "x       bf16   50     same bits" in out
