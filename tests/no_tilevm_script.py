"""The script the GPU halves' tests run in a subprocess (tests/backend/test_gpu_check.py,
test_quant_linear_gpu.py): it imports a bench module under a Python that refuses tilevm, lark,
llvmlite, ml_dtypes and platformdirs (the GPU machine has none of them), fakes a driver API
whose ``failing`` call fails with ``error``, runs the module's ``main`` on the script's
arguments and prints ``exit <code> <the watched packages' modules imported>``."""

from __future__ import annotations


def no_tilevm_script(module: str, failing: str, error: str, setup: str = "",
                     watched: tuple[str, ...] = ("tilevm", "torch")) -> str:
    """The script's source; ``argv[1]`` is the bench folder, the rest goes to ``main``.
    ``setup``: lines run after the fake driver is installed (module settings); ``watched``: the
    packages whose imported modules the last line lists."""
    return f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tilevm", "lark", "llvmlite", "ml_dtypes", "platformdirs"):
            raise ImportError(f"the GPU run imported {{name}}")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
import {module}
class Api:
    CUresult = type("R", (), {{"CUDA_SUCCESS": 0}})
    def __getattr__(self, name):
        if name == "{failing}":
            return lambda *a: (1, None)
        if name == "cuGetErrorName":
            return lambda status: (0, b"{error}")
        return lambda *a: (0, b"Fake GPU" if name == "cuDeviceGetName" else 1)
{module}.DRIVER_API = Api()
{setup}
code = {module}.main(sys.argv[2:])
print("exit", code, sorted(m for m in sys.modules if m.split(".")[0] in {watched!r}))
"""
