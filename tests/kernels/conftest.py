"""Kernel-library tests share the references next to this file (quant_reference.py); the suite
runs with ``--import-mode=importlib``, which keeps test folders off ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
