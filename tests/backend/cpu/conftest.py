"""CPU backend tests: make ``cpu_harness`` importable by name (the suite runs with
``--import-mode=importlib``, which keeps test folders off ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load_harness() -> None:
    if "cpu_harness" in sys.modules:
        return
    path = Path(__file__).with_name("cpu_harness.py")
    spec = importlib.util.spec_from_file_location("cpu_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cpu_harness"] = module
    spec.loader.exec_module(module)


_load_harness()
