"""The repository's examples as modules, for tests (examples/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str, prefix: str = "example_") -> ModuleType:
    """``examples/<name>.py`` loaded as a fresh module named ``<prefix><name>`` (examples import
    their neighbours, such as ``accuracy``, so examples/ goes on ``sys.path``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"{prefix}{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
