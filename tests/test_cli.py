"""`tilevm info`: the environment and the dtype table, as the README's main job prints them."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

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
