"""Lowering tests use the CPU backend's lane harness (``cpu_harness``) and the random program
generator next to this file, loaded by path (the suite runs with ``--import-mode=importlib``,
which keeps test folders off ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
if "cpu_harness" not in sys.modules:
    _path = Path(__file__).parents[1] / "cpu" / "cpu_harness.py"
    _spec = importlib.util.spec_from_file_location("cpu_harness", _path)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["cpu_harness"] = _module
    _spec.loader.exec_module(_module)
